"""What the three adapters share: running an engine generator, and building its inputs."""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any, Protocol, TypeVar

from smtpproto import engine
from smtpproto._errors import LocalProtocolError
from smtpproto.body import MessageSource
from smtpproto.config import ClientConfig
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import IOFailure, IORequest

__all__ = [
    "AsyncIO",
    "AsyncSession",
    "connect_async",
    "deliver_async",
    "drive",
    "drive_async",
    "engine_inputs",
    "make_envelope",
]

T = TypeVar("T")
Engine = Generator[IORequest, Any, T]


def drive(engine: Engine[T], perform: Callable[[IORequest], Any]) -> T:
    """Run `engine` to completion, performing each request; failures go back in."""
    result: Any = None
    failure: IOFailure | None = None
    try:
        while True:
            try:
                request = engine.send(result) if failure is None else engine.throw(failure)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                result, failure = perform(request), None
            except IOFailure as error:
                result, failure = None, error
    finally:
        engine.close()


async def drive_async(engine: Engine[T], perform: Callable[[IORequest], Awaitable[Any]]) -> T:
    """As `drive`, awaiting each request (asyncio and trio alike)."""
    result: Any = None
    failure: IOFailure | None = None
    try:
        while True:
            try:
                request = engine.send(result) if failure is None else engine.throw(failure)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                result, failure = await perform(request), None
            except IOFailure as error:
                result, failure = None, error
    finally:
        engine.close()


def make_envelope(
    sender: str,
    recipients: Iterable[str | Recipient],
    ret: str | None = None,
    envid: str | None = None,
) -> Envelope:
    """The engine's `Envelope` from the adapters' keyword arguments."""
    if isinstance(recipients, str):
        raise LocalProtocolError("recipients: expected a list of addresses, got one string")
    return Envelope(
        sender=sender,
        recipients=tuple(r if isinstance(r, Recipient) else Recipient(r) for r in recipients),
        ret=None if ret is None else ret.upper(),  # type: ignore[arg-type]
        envid=envid,
    )


def engine_inputs() -> dict[str, Any]:
    """The clock, randomness and SCRAM nonce source the core takes as arguments."""
    return {
        "clock": time.monotonic,
        "rng": random.SystemRandom(),
        "nonce": lambda: secrets.token_urlsafe(24),
    }


class AsyncIO(Protocol):
    """What the asyncio and trio adapters each supply: perform a request, close everything."""

    async def perform(self, request: IORequest) -> Any:
        """Carry out one engine request and return its result."""
        ...

    async def close_all(self) -> None:
        """Abort every channel still open."""
        ...


async def deliver_async(
    io: AsyncIO,
    destination: str,
    *,
    sender: str,
    recipients: Iterable[str | Recipient],
    message: MessageSource,
    config: ClientConfig | None,
    ret: str | None,
    envid: str | None,
) -> DeliveryReport:
    """The body of both async ``deliver`` functions: run the engine, then close what is open."""
    envelope = make_envelope(sender, recipients, ret, envid)
    try:
        return await drive_async(
            engine.deliver(
                destination, envelope, message, config=config or ClientConfig(), **engine_inputs()
            ),
            io.perform,
        )
    finally:
        await io.close_all()


class AsyncSession:
    """An open connection (greeting, EHLO, STARTTLS and AUTH done) for several transactions."""

    def __init__(self, session: engine.Session, io: AsyncIO) -> None:
        self._session = session
        self._io = io

    async def send(
        self,
        *,
        sender: str,
        recipients: Iterable[str | Recipient],
        message: MessageSource,
        ret: str | None = None,
        envid: str | None = None,
    ) -> DeliveryReport:
        """Run one mail transaction on this connection."""
        envelope = make_envelope(sender, recipients, ret, envid)
        return await drive_async(
            engine.transact(self._session, envelope, message), self._io.perform
        )


@contextlib.asynccontextmanager
async def connect_async(
    io: AsyncIO, destination: str, config: ClientConfig | None
) -> AsyncIterator[AsyncSession]:
    """The body of both async ``connect`` functions: QUIT at the end, abort if it raises."""
    try:
        session = await drive_async(
            engine.open_session(destination, config=config or ClientConfig(), **engine_inputs()),
            io.perform,
        )
        yield AsyncSession(session, io)
        await drive_async(engine.close_session(session), io.perform)
    finally:
        await io.close_all()
