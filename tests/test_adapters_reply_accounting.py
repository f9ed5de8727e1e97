"""Reply accounting on every adapter, over real loopback sockets.

The same hostile servers as tests/test_engine_reply_accounting.py, served by the shared
`support.sockets.LoopbackServer` with byte-exact `Dialogue` scripts and transport `Faults`,
and driven through each adapter's public ``deliver``/``connect``: what the engine promises
must survive real reads and writes, where an early reply and the bytes after it may arrive
in one read or in many.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator
from typing import Any

import pytest
import trio
from smtpproto.adapters import asyncio as aio_adapter
from smtpproto.adapters import blocking as blocking_adapter
from smtpproto.adapters import trio as trio_adapter
from support.model import Dialogue, Faults, ehlo_reply
from support.sockets import LoopbackServer

from smtpproto import LocalProtocolError
from smtpproto.config import ClientConfig
from smtpproto.report import DeliveryReport

BANNER = b"220 mx.example ESMTP\r\n"
EHLO = ehlo_reply("PIPELINING", "8BITMIME")
MESSAGE = b"Subject: accounting\r\n\r\nhello\r\n"


def config(**extra: Any) -> ClientConfig:
    """Short limits: every hostile server here ends by a timeout or a close."""
    limits = {
        "helo_timeout": 5.0,
        "mail_timeout": 5.0,
        "rcpt_timeout": 5.0,
        "data_init_timeout": 5.0,
        "data_xfer_timeout": 2.0,
        "data_done_timeout": 5.0,
        "quit_timeout": 2.0,
    }
    limits.update(extra)
    return ClientConfig(helo_name="client.example", **limits)


@pytest.fixture(params=["blocking", "asyncio", "trio"])
def adapter(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[LoopbackServer] = []

    def start(replies: list[bytes], *, lmtp: bool = False, **faults: Any) -> LoopbackServer:
        server = LoopbackServer(
            Dialogue(BANNER, replies), lmtp=lmtp, faults=Faults(**faults), timeout=30.0
        )
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def deliver(adapter: str, server: LoopbackServer, recipients: list[str], **kw: Any) -> Any:
    arguments: dict[str, Any] = {
        "sender": "a@client.example",
        "recipients": recipients,
        "message": kw.pop("message", MESSAGE),
        "config": kw.pop("config", config()),
    }
    if adapter == "blocking":
        return blocking_adapter.deliver(server.destination, **arguments)
    if adapter == "asyncio":
        return asyncio.run(aio_adapter.deliver(server.destination, **arguments))
    return trio.run(functools.partial(trio_adapter.deliver, server.destination, **arguments))


def outcomes(report: DeliveryReport) -> list[tuple[str, str]]:
    return [(r.status, r.dsn) for r in report.recipients]


def lines(server: LoopbackServer) -> list[bytes]:
    """Every line the client sent on the first connection (commands and content)."""
    server.wait_done(1)
    return list(server.connections[0].model.lines)


def test_an_early_250_then_a_server_that_stops_reading_is_never_sent(
    adapter: str, serve: Any
) -> None:
    # The 250 comes with the 354, then the server reads nothing more: the content write
    # times out. The 250 answers nothing the client sent.
    server = serve(
        [EHLO, b"250 2.1.0 ok\r\n", b"250 2.1.5 ok\r\n", b"354 go\r\n250 2.0.0 queued\r\n"],
        stop_reading_at=200,
    )
    big = b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 40_000  # 40 MB: fills the buffers
    report = deliver(adapter, server, ["b@example.com"], message=big)
    assert outcomes(report) == [("deferred", "4.4.2")]
    assert "while sending message body" in report.recipients[0].diagnostic


def test_a_221_after_the_dot_is_never_the_end_of_data_reply(adapter: str, serve: Any) -> None:
    server = serve([EHLO, b"250 2.1.0 ok\r\n", b"250 2.1.5 ok\r\n", b"354 go\r\n", b"221 bye\r\n"])
    report = deliver(adapter, server, ["b@example.com"])
    assert outcomes(report) == [("deferred", "4.5.0")]
    assert b"QUIT" in lines(server)[-1]


def test_lmtp_a_221_is_never_a_recipients_reply(adapter: str, serve: Any) -> None:
    server = serve(
        [
            EHLO,
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go\r\n",
            b"250 b ok\r\n221 bye\r\n",
        ],
        lmtp=True,
    )
    cfg = ClientConfig(lmtp=True, helo_name="client.example", data_done_timeout=5.0)
    report = deliver(adapter, server, ["b@example.com", "c@example.com"], config=cfg)
    assert outcomes(report) == [("sent", "2.0.0"), ("deferred", "4.5.0")]


def test_a_250_before_any_content_is_not_the_final_reply(adapter: str, serve: Any) -> None:
    server = serve(
        [EHLO, b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n250 2.0.0 early\r\n", b"550 5.7.1 no\r\n"]
    )
    report = deliver(adapter, server, ["b@example.com"])
    assert outcomes(report) == [("deferred", "4.5.0")]


def test_a_surplus_reply_on_a_held_session_defers_the_next_send(adapter: str, serve: Any) -> None:
    server = serve(
        [EHLO, b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 2.0.0 queued\r\n250 again\r\n"]
    )
    kwargs = {"sender": "a@client.example", "message": MESSAGE}

    async def twice(module: Any) -> list[Any]:
        async with module.connect(server.destination, config=config()) as session:
            return [await session.send(recipients=[r], **kwargs) for r in ("b@x.test", "c@x.test")]

    if adapter == "blocking":
        with blocking_adapter.connect(server.destination, config=config()) as session:
            reports = [session.send(recipients=[r], **kwargs) for r in ("b@x.test", "c@x.test")]
    elif adapter == "asyncio":
        reports = asyncio.run(twice(aio_adapter))
    else:
        reports = trio.run(twice, trio_adapter)
    assert [outcomes(r) for r in reports] == [[("sent", "2.0.0")], [("deferred", "4.5.0")]]
    assert sum(line.startswith(b"MAIL") for line in lines(server)) == 1


def test_replies_in_advance_without_pipelining_send_no_content(adapter: str, serve: Any) -> None:
    server = serve([ehlo_reply("8BITMIME"), b"250 ok\r\n250 ok\r\n354 go\r\n"])
    report = deliver(adapter, server, ["b@example.com"])
    assert outcomes(report) == [("deferred", "4.5.0")]
    sent = lines(server)
    assert not any(line.startswith((b"RCPT", b"DATA", b"Subject")) for line in sent), sent


def test_an_invalid_recipient_is_refused_before_connecting(adapter: str, serve: Any) -> None:
    server = serve([EHLO])
    recipients = [f"r{n}@example.com" for n in range(60)]
    recipients[55] = "bad address@exa mple.com"
    cfg = config(quote_rfc821_envelope=False)
    with pytest.raises(LocalProtocolError, match=r"recipients\[55\]"):
        deliver(adapter, server, recipients, config=cfg)
    assert server.connections == []


def test_a_trickled_greeting_ends_at_the_deadline(adapter: str, serve: Any) -> None:
    # One octet every half second: with the per-request deadline the greeting gets
    # helo_timeout in all, not helo_timeout per octet.
    server = serve([EHLO], drip=1, delay=0.5)
    report = deliver(adapter, server, ["b@example.com"], config=config(helo_timeout=2.0))
    assert outcomes(report) == [("deferred", "4.4.2")]
    assert "timed out while receiving the initial server greeting" in (
        report.recipients[0].diagnostic
    )


@pytest.mark.parametrize(
    "end",
    [
        pytest.param(b"250 2.0.0 " + b"x" * 3000 + b"\r\n", id="line-over-2048-octets"),
        pytest.param(b"250 2.0.0 Ok\r\r\n", id="cr-cr-lf"),
        pytest.param(
            b"".join(b"250-2.0.0 line %d\r\n" % n for n in range(150)) + b"250 2.0.0 Ok\r\n",
            id="151-lines",
        ),
    ],
)
def test_replies_postfix_37_reads_are_read_the_same(adapter: str, serve: Any, end: bytes) -> None:
    # Rules 1.1, 1.2 and 1.7 (Postfix 3.7): a long line is cut at 2048 octets, CRs before
    # the LF are stripped, and a reply has no line limit; the mail is sent, not deferred.
    server = serve([EHLO, b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", end])
    report = deliver(adapter, server, ["b@example.com"])
    assert outcomes(report) == [("sent", "2.0.0")]
