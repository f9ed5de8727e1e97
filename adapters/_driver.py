"""What the three adapters share: running an engine generator, and building its inputs."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, TypeVar

from smtpproto._errors import LocalProtocolError
from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import IOFailure, IORequest

__all__ = ["drive", "drive_async", "engine_inputs", "make_envelope"]

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
