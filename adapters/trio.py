"""The trio adapter: the engine over non-blocking sockets that trio waits on, `trio.SSLStream`
after STARTTLS, and cancel scopes for the timeouts.

A plain connection's `Send` and `Receive` try the socket first and wait (`wait_writable`,
`wait_readable`, under a cancel scope with the request's deadline) only when it is not ready,
so most requests cost one system call and no task switch (docs/performance.md).
"""

from __future__ import annotations

import math
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

try:
    import trio
except ImportError as error:
    raise ImportError(
        "the trio adapter needs trio: pip install 'smtpproto-client[trio]'", name=error.name
    ) from error

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
    IOFailure,
    IORequest,
    IOTimeout,
    Receive,
    Resolve,
    Send,
    Sleep,
    StartTLS,
)

from ._dns import AsyncResolver, TrioResolver
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

# Requests in a row served without waiting; then one checkpoint, so that a peer that always
# has data ready cannot keep the other tasks from running.
_QUICK_LIMIT = 64


class _Channel:
    """A connection: its socket, used directly while plain; STARTTLS moves it into `stream`."""

    def __init__(self, sock: socket.socket, trio_socket: trio.socket.SocketType) -> None:
        self.sock: socket.socket | None = sock
        self.trio_socket = trio_socket
        self.stream: trio.abc.Stream | None = None
        self.quick = 0

    async def _checkpoint(self) -> None:
        # Served without waiting: a cancellation still ends the request, and every so often
        # the other tasks get their turn.
        self.quick += 1
        if self.quick < _QUICK_LIMIT:
            await trio.lowlevel.checkpoint_if_cancelled()
        else:
            self.quick = 0
            await trio.lowlevel.checkpoint()

    async def send(self, sock: socket.socket, data: bytes, timeout: float | None) -> None:
        view = memoryview(data)
        while True:
            try:
                sent = sock.send(view)
            except BlockingIOError:
                sent = 0
            view = view[sent:]
            if not view:
                return await self._checkpoint()
            self.quick = 0
            with trio.move_on_after(_limit(timeout)) as scope:
                await trio.lowlevel.wait_writable(sock)
            if scope.cancelled_caught:
                raise trio.TooSlowError

    async def receive(self, sock: socket.socket, max_bytes: int, timeout: float | None) -> bytes:
        while True:
            try:
                data = sock.recv(max_bytes)
            except BlockingIOError:
                pass
            else:
                await self._checkpoint()
                return data
            self.quick = 0
            with trio.move_on_after(_limit(timeout)) as scope:
                await trio.lowlevel.wait_readable(sock)
            if scope.cancelled_caught:
                raise trio.TooSlowError


def _limit(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


class _IO:
    """Performs requests in the current trio task; remembers what it opened to close it."""

    def __init__(self, resolver: AsyncResolver | None) -> None:
        self.resolver = resolver if resolver is not None else TrioResolver()
        self.open: set[_Channel] = set()

    async def perform(self, request: IORequest) -> Any:
        match request:
            case Send(channel=_Channel() as channel):
                try:
                    if channel.sock is not None:
                        return await channel.send(channel.sock, request.data, request.timeout)
                    assert channel.stream is not None
                    with trio.fail_after(_limit(request.timeout)):
                        await channel.stream.send_all(request.data)
                except _FAILURES as error:
                    raise _failure(error, request.timeout) from None
                return None
            case Receive(channel=_Channel() as channel):
                try:
                    if channel.sock is not None:
                        return await channel.receive(
                            channel.sock, request.max_bytes, request.timeout
                        )
                    assert channel.stream is not None
                    with trio.fail_after(_limit(request.timeout)):
                        return bytes(await channel.stream.receive_some(request.max_bytes))
                except _FAILURES as error:
                    raise _failure(error, request.timeout) from None
            case Resolve():
                return await self.resolver.resolve(request)
            case Connect():
                return await self._connect(request)
            case StartTLS(channel=_Channel() as channel):
                return await self._starttls(channel, request)
            case HTTPSGet():
                # fetch() bounds its own time; a thread keeps the run loop free meanwhile.
                return await trio.to_thread.run_sync(fetch, request, abandon_on_cancel=True)
            case Sleep():
                await trio.sleep(request.seconds)
                return None
            case DeriveKey():
                # AU-19: thousands of HMAC rounds would stall every other task on the loop.
                if request.blocking:
                    return await trio.to_thread.run_sync(request.derive)
                return request.derive()
            case Close(channel=_Channel() as channel):
                await self.close(channel)
                return None
        raise TypeError(f"not a request for this adapter: {request!r}")

    async def _connect(self, request: Connect) -> _Channel:
        if request.family == "unix":
            family, target = socket.AF_UNIX, request.address
        else:
            family = socket.AF_INET6 if ":" in request.address else socket.AF_INET
            target = (request.address, request.port)  # type: ignore[assignment]
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as error:
            raise connect_failure(request, error) from None
        trio_socket = trio.socket.from_stdlib_socket(sock)
        try:
            with trio.fail_after(_limit(request.timeout)):
                if family != socket.AF_UNIX:
                    # The engine writes whole flights; Nagle would hold a flight's tail.
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if request.bind_address is not None:
                        await trio_socket.bind((request.bind_address, 0))
                await trio_socket.connect(target)
        except (OSError, trio.TooSlowError) as error:
            trio_socket.close()
            timed_out = isinstance(error, trio.TooSlowError)
            raise connect_failure(request, TimeoutError() if timed_out else error) from None
        except BaseException:
            trio_socket.close()
            raise
        channel = _Channel(sock, trio_socket)
        self.open.add(channel)
        return channel

    async def _starttls(self, channel: _Channel, request: StartTLS) -> Any:
        # NS-01 needs no check here: nothing is read ahead of a Receive, so any plaintext past
        # the 220 is still in the kernel and goes into the TLS handshake, which fails on it.
        try:
            context = client_context(request.parameters)
            tls = trio.SSLStream(
                trio.SocketStream(channel.trio_socket),
                context,
                server_hostname=request.server_hostname or None,
            )
            channel.sock, channel.stream = None, tls
            with trio.fail_after(_limit(request.timeout)):
                await tls.do_handshake()
        except (OSError, ValueError, trio.BrokenResourceError, trio.TooSlowError) as error:
            await self.close(channel)
            raise handshake_failure(error) from None
        return tls_info(tls, request.parameters)  # type: ignore[arg-type]

    async def close(self, channel: _Channel) -> None:
        # aclose_forcefully closes at once, also inside a cancelled scope.
        self.open.discard(channel)
        if channel.stream is not None:
            await trio.aclose_forcefully(channel.stream)
        else:
            channel.trio_socket.close()

    async def close_all(self) -> None:
        for channel in list(self.open):
            await self.close(channel)


_FAILURES = (OSError, trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError)


def _failure(error: Exception, timeout: float | None) -> IOFailure:
    if isinstance(error, trio.TooSlowError):
        return IOTimeout(f"timed out after {timeout}s")
    return ConnectionLost(f"lost connection: {error or 'broken stream'}")


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


class _Nursery:
    """trio's side of a Mailer (`_driver.Concurrency`)."""

    def event(self) -> trio.Event:
        return trio.Event()

    async def wait(self, event: trio.Event, timeout: float | None) -> None:
        with trio.move_on_after(_limit(timeout)):
            await event.wait()

    async def gather(self, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        results: dict[int, T] = {}

        async def run(n: int, job: Callable[[], Awaitable[T]]) -> None:
            results[n] = await job()

        async with trio.open_nursery() as nursery:
            for n, job in enumerate(jobs):
                nursery.start_soon(run, n, job)
        return [results[n] for n in range(len(jobs))]

    def group(self) -> AbstractAsyncContextManager[trio.Nursery]:
        return trio.open_nursery()

    def start(self, group: trio.Nursery, job: Callable[[], Awaitable[None]]) -> None:
        group.start_soon(job)


class Mailer(AsyncMailer):
    """Many messages to many destinations over shared connections: Postfix's connection
    cache, per-destination and total connection limits, and back-off, for every task of one
    trio run. ``async with Mailer(config) as m: report = await m.send(...)``."""

    def __init__(
        self, config: ClientConfig | None = None, *, resolver: AsyncResolver | None = None
    ) -> None:
        super().__init__(config, _IO(resolver), _Nursery())
