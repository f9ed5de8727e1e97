"""The asyncio adapter: the engine over asyncio streams, `start_tls` and `asyncio.timeout`."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
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


class _Channel:
    """A reader/writer pair; `start_tls` swaps the transport under the same writer."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer


class _IO:
    """Performs requests on the running loop; remembers what it opened to close it."""

    def __init__(self, resolver: AsyncResolver | None) -> None:
        self.resolver = resolver if resolver is not None else DefaultAsyncResolver()
        self.open: set[_Channel] = set()

    async def perform(self, request: IORequest) -> Any:
        match request:
            case Resolve():
                return await self.resolver.resolve(request)
            case Connect():
                return await self._connect(request)
            case Send(channel=_Channel() as channel):
                with _failures(request.timeout):
                    async with asyncio.timeout(request.timeout):
                        channel.writer.write(request.data)
                        await channel.writer.drain()
                return None
            case Receive(channel=_Channel() as channel):
                with _failures(request.timeout):
                    async with asyncio.timeout(request.timeout):
                        return await channel.reader.read(request.max_bytes)
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
        try:
            async with asyncio.timeout(request.timeout):
                if request.family == "unix":
                    reader, writer = await asyncio.open_unix_connection(request.address)
                else:
                    local = None if request.bind_address is None else (request.bind_address, 0)
                    reader, writer = await asyncio.open_connection(
                        request.address, request.port, local_addr=local
                    )
        except (OSError, TimeoutError) as error:
            raise connect_failure(request, error) from None
        channel = _Channel(reader, writer)
        self.open.add(channel)
        return channel

    async def _starttls(self, channel: _Channel, request: StartTLS) -> Any:
        # NS-01: plaintext the StreamReader holds past the 220 would be read back as if it had
        # come through TLS (the CVE-2011-0411 class); the engine never saw it, so refuse here.
        # start_tls moves the transport to the TLS protocol synchronously, so this check and
        # the switch have no await between them.
        # StreamReader has no public way to peek at its buffer.
        if getattr(channel.reader, "_buffer", b""):
            self.close(channel)
            raise TLSFailed("plaintext received after the STARTTLS reply (response injection)")
        try:
            context = client_context(request.parameters)
            async with asyncio.timeout(request.timeout):
                await channel.writer.start_tls(
                    context, server_hostname=request.server_hostname or None
                )
        except (OSError, ValueError, TimeoutError) as error:
            self.close(channel)
            raise handshake_failure(error) from None
        ssl_object = channel.writer.get_extra_info("ssl_object")
        assert isinstance(ssl_object, ssl.SSLObject)
        return tls_info(ssl_object, request.parameters)

    def close(self, channel: _Channel) -> None:
        # abort(), not close(): it needs no await, so it also runs while being cancelled.
        self.open.discard(channel)
        channel.writer.transport.abort()

    async def close_all(self) -> None:
        for channel in list(self.open):
            self.close(channel)


@contextlib.contextmanager
def _failures(timeout: float | None) -> Iterator[None]:
    try:
        yield
    except TimeoutError:
        raise IOTimeout(f"timed out after {timeout}s") from None
    except OSError as error:
        raise ConnectionLost(f"lost connection: {error}") from None


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
