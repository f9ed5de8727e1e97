"""Scripted dialogues for a session the caller holds: open_session, transact, close_session."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from support.world import ADDR, DEST, Clock, Rng, Script, run, smtp, statuses

from smtpproto.config import ClientConfig
from smtpproto.engine import close_session, open_session, transact
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import ConnectionLost, IORequest

CONFIG = ClientConfig(helo_name="client.example")
ENVELOPE = Envelope("a@example.org", (Recipient("b@example.com"),))
TRANSACTION = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n")


def batch(count: int) -> Generator[IORequest, Any, list[DeliveryReport]]:
    session = yield from open_session(DEST, config=CONFIG, clock=Clock(), rng=Rng())
    reports = []
    for n in range(count):
        message = b"Subject: %d\r\n\r\nhello\r\n" % n
        reports.append((yield from transact(session, ENVELOPE, message)))
    yield from close_session(session)
    return reports


def test_transactions_on_a_held_session_need_no_rset_probe() -> None:
    # The probe of rule 9.4 is for cached sessions; the caller's own session goes straight on,
    # so each transaction is one flight of MAIL/RCPT/DATA and one of content.
    reports, record = run(batch(3), Script(servers={ADDR: [smtp(*TRANSACTION * 3)]}))
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 3
    sent = record.sent()
    assert b"RSET" not in sent
    assert sent.count(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n") == 3
    assert sent.endswith(b"QUIT\r\n")


def test_a_dead_held_session_defers_the_next_transaction() -> None:
    # Without the probe a dead connection shows on MAIL: the recipient is deferred, not lost.
    reports, record = run(
        batch(2), Script(servers={ADDR: [smtp(*TRANSACTION, ConnectionLost("reset"))]})
    )
    assert statuses(reports[0]) == [("sent", "2.0.0")]
    assert statuses(reports[1]) == [("deferred", "4.4.2")]
    assert record.channels[0].closed


def test_a_held_session_sends_each_envelope_with_its_own_size() -> None:
    # EnvelopeCommands.for_session keeps the last envelope's checked commands: the same
    # envelope again changes only SIZE, another envelope is built (and checked) anew.
    other = Envelope("c@example.org", (Recipient("d@example.com"), Recipient("e@example.com")))
    sends = [(ENVELOPE, b"a\r\n"), (ENVELOPE, b"bb\r\n"), (other, b"bb\r\n"), (ENVELOPE, b"a\r\n")]

    def held() -> Generator[IORequest, Any, list[DeliveryReport]]:
        session = yield from open_session(DEST, config=CONFIG, clock=Clock(), rng=Rng())
        reports = []
        for envelope, message in sends:
            reports.append((yield from transact(session, envelope, message)))
        yield from close_session(session)
        return reports

    three = (b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n")
    ehlo = b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"
    server = smtp(*TRANSACTION, *TRANSACTION, *three, *TRANSACTION, ehlo=ehlo)
    reports, record = run(held(), Script(servers={ADDR: [server]}))
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 2 + [
        [("sent", "2.0.0")] * 2
    ] + [[("sent", "2.0.0")]]
    mail = [line for line in record.sent().split(b"\r\n") if line.startswith(b"MAIL")]
    assert mail == [
        b"MAIL FROM:<a@example.org> SIZE=3",
        b"MAIL FROM:<a@example.org> SIZE=4",
        b"MAIL FROM:<c@example.org> SIZE=4",
        b"MAIL FROM:<a@example.org> SIZE=3",
    ]
    assert record.sent().count(b"RCPT TO:<d@example.com>\r\nRCPT TO:<e@example.com>\r\n") == 1
