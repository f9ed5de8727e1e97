"""The asyncio adapter: the engine over a transport and protocol, and `loop.start_tls`.

Streams cost a task switch per read and a timer per request; here a `Send` is one
`transport.write` (it waits only while the transport's buffer is above its high-water mark),
a `Receive` returns what has arrived without waiting when anything has, and each connection
keeps one timer for its deadlines, moved only when a wait must end sooner than it fires
(docs/performance.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from smtpproto.body import MessageSource
from smtpproto.config import ClientConfig
from smtpproto.envelope import Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import (
    Close,
    Connect,
    ConnectionLost,
    DeriveKey,
    HTTPSGet,
    IORequest,
    IOTimeout,
    Receive,
    Resolve,
    Send,
    Sleep,
    StartTLS,
    TLSFailed,
)

from ._dns import AsyncResolver, DefaultAsyncResolver
from ._driver import (
    AsyncMailer,
    AsyncSession,
    connect_async,
    connect_failure,
    deliver_async,
    make_envelope,
)
from ._https import fetch
from ._tls import client_context, handshake_failure, tls_info

__all__ = ["Mailer", "Session", "connect", "deliver"]

T = TypeVar("T")

# Unread octets past which the transport stops reading until a Receive takes some: the
# server cannot make this side's memory grow while the engine is busy writing.
READ_LIMIT = 65536
# Each read of a transport fills a buffer of this size (asyncio's own read size), and
# buffer_updated copies out what came, at once: a plain Protocol gets a new 256 KiB bytes
# object per read instead, allocated and shrunk each time. As no read outlives its
# buffer_updated, the channels of a thread (of an event loop) share one buffer.
READ_SIZE = 262144
_BUFFERS = threading.local()


def _read_buffer() -> memoryview:
    buffer: memoryview | None = getattr(_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _BUFFERS.buffer = memoryview(bytearray(READ_SIZE))
    return buffer


class _Channel(asyncio.BufferedProtocol):
    """One connection: what the server sent and no Receive took yet, and at most one waiter.

    The engine performs one request at a time, so a connection has at most one waiter: a
    Receive waiting for data, or a Send waiting for the transport's buffer to drain.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.received: list[bytes] = []
        self.size = 0
        self.eof = False
        self.lost: Exception | None = None
        self.paused = False  # the transport's write buffer is above its high-water mark
        self.reading = True
        self.waiter: asyncio.Future[None] | None = None
        self.deadline: float | None = None  # of the waiter, in loop time
        self.timer: asyncio.TimerHandle | None = None
        self.buffer = _read_buffer()

    # -- asyncio.BufferedProtocol -------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again by start_tls with the TLS transport that replaces the plain one.
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        data = bytes(self.buffer[:nbytes])
        self.received.append(data)
        self.size += len(data)
        if self.size > READ_LIMIT and self.reading and self.transport is not None:
            self.reading = False
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.lost = exc
        self.paused = False
        self._wake()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    # -- waiting ------------------------------------------------------------------------------

    def _wake(self, error: Exception | None = None) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)

    async def _wait(self, timeout: float | None) -> None:
        waiter = self.loop.create_future()
        self.waiter = waiter
        if timeout is not None:
            deadline = self.loop.time() + timeout
            self.deadline = deadline
            timer = self.timer
            # One timer per connection: kept when it fires first (it then moves itself on to
            # the deadline), replaced only when this wait must end before it.
            if timer is None or timer.when() > deadline:
                if timer is not None:
                    timer.cancel()
                self.timer = self.loop.call_at(deadline, self._expire)
        try:
            await waiter
        finally:
            self.waiter = None
            self.deadline = None

    def _expire(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None:
            return
        if self.loop.time() < deadline:
            self.timer = self.loop.call_at(deadline, self._expire)
            return
        self._wake(TimeoutError())

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- requests -----------------------------------------------------------------------------

    async def send(self, data: bytes, timeout: float | None) -> None:
        transport = self.transport
        if self.lost is not None or transport is None or transport.is_closing():
            raise ConnectionLost(f"lost connection: {self.lost or 'connection closed'}")
        transport.write(data)
        while self.paused:
            await self._wait(timeout)
            if self.lost is not None:
                raise ConnectionLost(f"lost connection: {self.lost}")

    async def receive(self, max_bytes: int, timeout: float | None) -> bytes:
        while not self.received:
            if self.lost is not None:
                raise ConnectionLost(f"lost connection: {self.lost}")
            if self.eof:
                return b""
            await self._wait(timeout)
        data = self.received[0] if len(self.received) == 1 else b"".join(self.received)
        if len(data) > max_bytes:
            self.received = [data[max_bytes:]]
            data = data[:max_bytes]
        else:
            self.received = []
        self.size -= len(data)
        if not self.reading and self.size <= READ_LIMIT and self.transport is not None:
            self.reading = True
            self.transport.resume_reading()
        return data


class _IO:
    """Performs requests on the running loop; remembers what it opened to close it."""

    def __init__(self, resolver: AsyncResolver | None) -> None:
        self.resolver = resolver if resolver is not None else DefaultAsyncResolver()
        self.open: set[_Channel] = set()

    async def perform(self, request: IORequest) -> Any:
        match request:
            case Send(channel=_Channel() as channel):
                try:
                    return await channel.send(request.data, request.timeout)
                except TimeoutError:
                    raise IOTimeout(f"timed out after {request.timeout}s") from None
            case Receive(channel=_Channel() as channel):
                try:
                    return await channel.receive(request.max_bytes, request.timeout)
                except TimeoutError:
                    raise IOTimeout(f"timed out after {request.timeout}s") from None
            case Resolve():
                return await self.resolver.resolve(request)
            case Connect():
                return await self._connect(request)
            case StartTLS(channel=_Channel() as channel):
                return await self._starttls(channel, request)
            case HTTPSGet():
                # fetch() bounds its own time; a thread keeps the loop free meanwhile.
                return await asyncio.to_thread(fetch, request)
            case Sleep():
                await asyncio.sleep(request.seconds)
                return None
            case DeriveKey():
                # AU-19: thousands of HMAC rounds would stall every other task on the loop.
                if request.blocking:
                    return await asyncio.to_thread(request.derive)
                return request.derive()
            case Close(channel=_Channel() as channel):
                self.close(channel)
                return None
        raise TypeError(f"not a request for this adapter: {request!r}")

    async def _connect(self, request: Connect) -> _Channel:
        loop = asyncio.get_running_loop()
        channel: _Channel
        try:
            async with asyncio.timeout(request.timeout):
                if request.family == "unix":
                    _, channel = await loop.create_unix_connection(
                        lambda: _Channel(loop), request.address
                    )
                else:
                    # asyncio sets TCP_NODELAY: the engine writes whole flights.
                    assert request.port is not None
                    local = None if request.bind_address is None else (request.bind_address, 0)
                    _, channel = await loop.create_connection(
                        lambda: _Channel(loop), request.address, request.port, local_addr=local
                    )
        except (OSError, TimeoutError) as error:
            raise connect_failure(request, error) from None
        self.open.add(channel)
        return channel

    async def _starttls(self, channel: _Channel, request: StartTLS) -> Any:
        # NS-01: plaintext received past the 220 and not yet taken by a Receive would be read
        # back as if it had come through TLS (the CVE-2011-0411 class); the engine never saw
        # it, so refuse here. start_tls takes the transport over synchronously, so this check
        # and the switch have no await between them.
        if channel.received:
            self.close(channel)
            raise TLSFailed("plaintext received after the STARTTLS reply (response injection)")
        transport = channel.transport
        assert transport is not None
        try:
            context = client_context(request.parameters)
            async with asyncio.timeout(request.timeout):
                tls = await asyncio.get_running_loop().start_tls(
                    transport, channel, context, server_hostname=request.server_hostname or None
                )
        except (OSError, ValueError, TimeoutError) as error:
            self.close(channel)
            raise handshake_failure(error) from None
        if tls is None:
            self.close(channel)
            raise TLSFailed("TLS handshake failed: connection closed")
        channel.transport = tls
        ssl_object = tls.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        return tls_info(ssl_object, request.parameters)

    def close(self, channel: _Channel) -> None:
        # abort(), not close(): it needs no await, so it also runs while being cancelled.
        self.open.discard(channel)
        channel.cancel_timer()
        if channel.transport is not None:
            channel.transport.abort()

    async def close_all(self) -> None:
        for channel in list(self.open):
            self.close(channel)


async def deliver(
    destination: str,
    *,
    sender: str,
    recipients: Iterable[str | Recipient],
    message: MessageSource,
    config: ClientConfig | None = None,
    ret: str | None = None,
    envid: str | None = None,
    arrival: float | None = None,
    resolver: AsyncResolver | None = None,
) -> DeliveryReport:
    """Deliver one message to `destination` and report on every recipient."""
    envelope = make_envelope(sender, recipients, ret, envid, arrival)
    return await deliver_async(_IO(resolver), destination, envelope, message, config)


Session = AsyncSession
"""An open connection for several transactions; ``await session.send(...)`` runs one."""


def connect(
    destination: str, *, config: ClientConfig | None = None, resolver: AsyncResolver | None = None
) -> AbstractAsyncContextManager[AsyncSession]:
    """Open a session to `destination`; QUIT when the block ends, abort if it raises.

    Raises `smtpproto.ConnectionFailed`, `TLSPolicyFailed` or `AuthenticationFailed` (each a
    `smtpproto.SessionFailed` with the DSN status) when no server completes the handshake.
    """
    return connect_async(_IO(resolver), destination, config)


class _Tasks:
    """asyncio's side of a Mailer (`_driver.Concurrency`)."""

    def event(self) -> asyncio.Event:
        return asyncio.Event()

    async def wait(self, event: asyncio.Event, timeout: float | None) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()

    async def gather(self, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(_coroutine(job)) for job in jobs]
        return [task.result() for task in tasks]

    def group(self) -> AbstractAsyncContextManager[asyncio.TaskGroup]:
        return asyncio.TaskGroup()

    def start(self, group: asyncio.TaskGroup, job: Callable[[], Awaitable[None]]) -> None:
        group.create_task(_coroutine(job))


async def _coroutine(job: Callable[[], Awaitable[T]]) -> T:
    return await job()


class Mailer(AsyncMailer):
    """Many messages to many destinations over shared connections: Postfix's connection
    cache, per-destination and total connection limits, and back-off, for every task of one
    event loop. ``async with Mailer(config) as m: report = await m.send(...)``."""

    def __init__(
        self, config: ClientConfig | None = None, *, resolver: AsyncResolver | None = None
    ) -> None:
        super().__init__(config, _IO(resolver), _Tasks())
