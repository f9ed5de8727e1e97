"""The trio adapter: the engine over `trio.open_tcp_stream`, `trio.SSLStream` and
`trio.fail_after`."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import trio

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


class _Channel:
    """A stream that STARTTLS replaces in place by an `SSLStream` wrapped around it."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream


def _limit(timeout: float | None) -> float:
    return math.inf if timeout is None else timeout


class _IO:
    """Performs requests in the current trio task; remembers what it opened to close it."""

    def __init__(self, resolver: AsyncResolver | None) -> None:
        self.resolver = resolver if resolver is not None else TrioResolver()
        self.open: set[_Channel] = set()

    async def perform(self, request: IORequest) -> Any:
        match request:
            case Resolve():
                return await self.resolver.resolve(request)
            case Connect():
                return await self._connect(request)
            case Send(channel=_Channel() as channel):
                with _failures(request.timeout), trio.fail_after(_limit(request.timeout)):
                    await channel.stream.send_all(request.data)
                return None
            case Receive(channel=_Channel() as channel):
                with _failures(request.timeout), trio.fail_after(_limit(request.timeout)):
                    return bytes(await channel.stream.receive_some(request.max_bytes))
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
        stream: trio.abc.Stream
        try:
            with trio.fail_after(_limit(request.timeout)):
                if request.family == "unix":
                    stream = await trio.open_unix_socket(request.address)
                else:
                    assert request.port is not None
                    stream = await trio.open_tcp_stream(
                        request.address, request.port, local_address=request.bind_address
                    )
        except (OSError, trio.TooSlowError) as error:
            # trio reports "all attempts ... failed" over a group holding the OS's own reason.
            cause = error.__cause__
            if isinstance(cause, BaseExceptionGroup) and cause.exceptions:
                raise connect_failure(request, cause.exceptions[0]) from None
            raise connect_failure(request, error) from None
        channel = _Channel(stream)
        self.open.add(channel)
        return channel

    async def _starttls(self, channel: _Channel, request: StartTLS) -> Any:
        try:
            context = client_context(request.parameters)
            tls = trio.SSLStream(
                channel.stream, context, server_hostname=request.server_hostname or None
            )
            channel.stream = tls
            with trio.fail_after(_limit(request.timeout)):
                await tls.do_handshake()
        except (OSError, ValueError, trio.BrokenResourceError, trio.TooSlowError) as error:
            await self.close(channel)
            raise handshake_failure(error) from None
        return tls_info(tls, request.parameters)  # type: ignore[arg-type]

    async def close(self, channel: _Channel) -> None:
        # aclose_forcefully closes at once, also inside a cancelled scope.
        self.open.discard(channel)
        await trio.aclose_forcefully(channel.stream)

    async def close_all(self) -> None:
        for channel in list(self.open):
            await self.close(channel)


@contextlib.contextmanager
def _failures(timeout: float | None) -> Iterator[None]:
    try:
        yield
    except trio.TooSlowError:
        raise IOTimeout(f"timed out after {timeout}s") from None
    except (OSError, trio.BrokenResourceError, trio.ClosedResourceError) as error:
        raise ConnectionLost(f"lost connection: {error or 'broken stream'}") from None


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
