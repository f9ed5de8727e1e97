"""smtpproto's asyncio adapter and driver with an engine that checks nothing: a yardstick.

The engine here is a plain generator that yields the same requests the real engine yields on
a held session (one `Send` per flight, a `Receive` until the flight's replies are in), with
bytes built once (`floor.flights`) and replies only counted. Run by ``bench/clients.py`` as
``floor-smtpproto-asyncio`` (and ``floor-smtpproto-trio``, through the trio adapter): against
``floor-asyncio`` it shows what the adapter's glue (the request loop, the transcript logger,
the protocol and its one timer) adds to the event loop; against ``smtpproto-asyncio`` (or
``smtpproto-trio``), what the real engine costs.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from floor import flights
from smtpproto.adapters import asyncio as smtpproto_asyncio
from smtpproto.adapters import trio as smtpproto_trio
from smtpproto.adapters._driver import RunLog, drive_async

from smtpproto.requests import Close, Connect, IORequest, Receive, Send

TIMEOUT = 30.0


def _replies(count: int, channel: Any) -> Generator[IORequest, Any, None]:
    # Read until `count` final reply lines are in: "250-" continuation lines do not count.
    data = b""
    while sum(1 for line in data.split(b"\n")[:-1] if line[3:4] != b"-") < count:
        more = yield Receive(channel, TIMEOUT)
        if not more:
            raise SystemExit("floor-smtpproto-asyncio: the server closed the connection")
        data += more
    for line in data.split(b"\n")[:-1]:
        if line[:1] not in (b"2", b"3"):
            raise SystemExit(f"floor-smtpproto-asyncio: unexpected reply {line!r}")


def session(
    host: str,
    port: int,
    helo: str,
    sender: str,
    recipients: list[str],
    message: bytes,
    more: Callable[[], bool],
    fresh: bool,
) -> Generator[IORequest, Any, int]:
    """Messages while `more()` says so, on one connection (or, `fresh`, one each)."""
    envelope, content = flights(sender, recipients, message)
    sent = 0
    while not fresh or more():
        channel = yield Connect(host, host, port, TIMEOUT)
        yield from _replies(1, channel)
        yield Send(channel, f"EHLO {helo}\r\n".encode(), TIMEOUT)
        yield from _replies(1, channel)
        while fresh or more():
            yield Send(channel, envelope, TIMEOUT)
            yield from _replies(len(recipients) + 2, channel)
            yield Send(channel, content, TIMEOUT)
            yield from _replies(1, channel)
            sent += 1
            if fresh:
                break
        yield Send(channel, b"QUIT\r\n", TIMEOUT)
        yield from _replies(1, channel)
        yield Close(channel)
        if not fresh:
            break
    return sent


async def run(engine: Generator[IORequest, Any, int], *, trio: bool = False) -> int:
    """Drive `engine` as the asyncio (or, with `trio`, the trio) adapter drives the real one."""
    io = smtpproto_trio._IO(None) if trio else smtpproto_asyncio._IO(None)
    try:
        return await drive_async(engine, io.perform, RunLog())
    finally:
        await io.close_all()
