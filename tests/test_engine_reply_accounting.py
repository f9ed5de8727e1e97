"""Reply accounting: a recipient is ``sent`` only after its own final positive reply.

Each test is a way a broken or hostile server made an earlier version credit the wrong reply:
a success before the content, a 221 taken for the end of data, a surplus reply shifting the
next transaction, replies sent before their command. The same cases run on every adapter
over real sockets in tests/test_adapters_reply_accounting.py.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
from support.world import (
    ADDR,
    DEST,
    EHLO_PLAIN,
    Clock,
    FailSend,
    Rng,
    Script,
    Session,
    go,
    run,
    smtp,
    statuses,
)

from smtpproto import LocalProtocolError
from smtpproto.config import ClientConfig
from smtpproto.engine import close_session, deliver, open_session, transact
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import Connect, IORequest, IOTimeout

ACCEPTED = b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n"
LHLO = b"250-mx.example\r\n250 PIPELINING\r\n"
TWO_ACCEPTED = b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.1.5 ok\r\n354 go\r\n"


def never_sent(report: DeliveryReport) -> None:
    assert all(r.status != "sent" for r in report.recipients), statuses(report)


def test_a_success_right_after_354_is_not_the_end_of_data_reply() -> None:
    # The server says 250 with its 354 and stops reading: the content write times out. The
    # early 250 answers nothing the client sent; the message is deferred, never sent.
    report, record = go(smtp(ACCEPTED + b"250 2.0.0 queued\r\n", FailSend(IOTimeout("slow"))))
    assert statuses(report) == [("deferred", "4.4.2")]
    assert "while sending message body" in report.recipients[0].diagnostic
    assert not record.sent().endswith(b"\r\n.\r\n")


def test_a_success_after_a_failed_content_write_is_not_trusted() -> None:
    report, _ = go(smtp(ACCEPTED, FailSend(IOTimeout("slow")), b"250 2.0.0 queued\r\n"))
    assert statuses(report) == [("deferred", "4.4.2")]


def test_a_refusal_after_a_failed_content_write_still_decides() -> None:
    # Rule 7.9: the one reply read after a write failure may be an early refusal.
    report, _ = go(smtp(ACCEPTED, FailSend(IOTimeout("slow")), b"552 5.3.4 too big\r\n"))
    assert statuses(report) == [("bounced", "5.3.4")]


def test_a_221_is_never_the_end_of_data_reply() -> None:
    # "." and QUIT go out together (rule 7.3); a server that answers only 221 gets no credit.
    report, record = go(smtp(ACCEPTED, b"221 2.0.0 bye\r\n"))
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.5.0")
    assert "reply 221 to the end of data" in result.diagnostic
    assert record.sent().endswith(b".\r\nQUIT\r\n")


def test_lmtp_a_221_is_never_a_recipients_reply() -> None:
    report, _ = go(
        Session(
            [
                b"220 lmtp ready\r\n",
                LHLO,
                ACCEPTED[:14] + ACCEPTED,
                b"250 2.0.0 b ok\r\n221 bye\r\n",
            ]
        ),
        recipients=("b@example.com", "c@example.com"),
        lmtp=True,
    )
    assert statuses(report) == [("sent", "2.0.0"), ("deferred", "4.5.0")]


def test_a_success_sent_before_any_content_is_not_the_final_reply() -> None:
    # The real reply after the dot is 550; the 250 that came with the 354 must not win.
    report, _ = go(smtp(ACCEPTED + b"250 2.0.0 early\r\n", b"550 5.7.1 no\r\n"))
    never_sent(report)
    assert statuses(report) == [("deferred", "4.5.0")]
    assert "before the end of data was sent" in report.recipients[0].diagnostic


def test_a_surplus_reply_before_a_reused_transaction_drops_the_connection() -> None:
    # Two batches on one cached connection; the first end of data gets two replies. The
    # surplus would have answered the next RSET probe or MAIL and shifted every reply after
    # it (an accepted recipient bounced 5.5.0). The connection is dropped instead and the
    # second batch goes over a new one.
    first = smtp(ACCEPTED, b"250 2.0.0 queued\r\n250 2.0.0 again\r\n")
    second = smtp(ACCEPTED, b"250 2.0.0 queued\r\n")
    report, record = go(
        first,
        second,
        recipients=("b@example.com", "c@example.com"),
        destination_recipient_limit=1,
    )
    assert statuses(report) == [("sent", "2.0.0"), ("sent", "2.0.0")]
    assert len(record.of_type(Connect)) == 2


def held(count: int) -> Generator[IORequest, Any, list[DeliveryReport]]:
    config = ClientConfig(helo_name="client.example")
    session = yield from open_session(DEST, config=config, clock=Clock(), rng=Rng())
    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))
    reports = []
    for _ in range(count):
        reports.append((yield from transact(session, envelope, b"Subject: t\r\n\r\nhi\r\n")))
    yield from close_session(session)
    return reports


def test_a_surplus_reply_on_a_held_session_defers_the_next_send() -> None:
    reports, record = run(
        held(2),
        Script(servers={ADDR: [smtp(ACCEPTED, b"250 2.0.0 queued\r\n250 2.0.0 again\r\n")]}),
    )
    assert statuses(reports[0]) == [("sent", "2.0.0")]
    assert statuses(reports[1]) == [("deferred", "4.5.0")]
    assert "before MAIL was sent" in reports[1].recipients[0].diagnostic
    assert record.sent().count(b"MAIL FROM") == 1


def test_replies_sent_before_their_commands_are_never_matched_to_them() -> None:
    # No PIPELINING: the client waits for MAIL's reply; the server answers RCPT and DATA
    # in advance. Taking those as replies would send the content to a server that reads it
    # as commands; the session ends before RCPT instead.
    report, record = go(smtp(ACCEPTED, ehlo=EHLO_PLAIN))
    assert statuses(report) == [("deferred", "4.5.0")]
    assert "before RCPT was sent" in report.recipients[0].diagnostic
    assert b"RCPT TO" not in record.sent()


def test_an_invalid_recipient_is_refused_before_anything_is_sent() -> None:
    # 60 recipients in batches of 50, the 56th not an address: it used to raise after the
    # first batch was delivered, so a retry sent those 50 twice.
    recipients = [Recipient(f"r{n}@example.com") for n in range(60)]
    recipients[55] = Recipient("bad address@exa mple.com")
    envelope = Envelope("a@example.org", tuple(recipients))
    engine = deliver(
        DEST,
        envelope,
        b"Subject: t\r\n\r\nhi\r\n",
        config=ClientConfig(helo_name="client.example", quote_rfc821_envelope=False),
        clock=Clock(),
        rng=Rng(),
    )
    with pytest.raises(LocalProtocolError, match=r"recipients\[55\]"):
        next(engine)  # before its first request


def test_an_invalid_dsn_parameter_is_refused_before_anything_is_sent() -> None:
    envelope = Envelope(
        "a@example.org",
        (Recipient("b@example.com"), Recipient("c@example.com", orcpt="rfc822;c\u00e9@x")),
    )
    engine = deliver(
        DEST,
        envelope,
        b"hi\r\n",
        config=ClientConfig(helo_name="client.example"),
        clock=Clock(),
        rng=Rng(),
    )
    with pytest.raises(LocalProtocolError, match=r"recipients\[1\].*orcpt"):
        next(engine)


def test_an_engine_bug_after_bytes_went_out_defers_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # DESIGN.md: nothing is raised to the caller after bytes were sent. A bug that strikes
    # while the content goes out (here: the end of data cannot be written) leaves mail in an
    # unknown state; raising would invite a retry that sends it twice.
    from smtpproto.engine import transaction

    def broken(txn: object, keep_open: bool) -> object:
        raise KeyError("planted engine bug")
        yield  # a generator, like the function it replaces

    monkeypatch.setattr(transaction, "_end_of_data", broken)
    report, record = go(smtp(ACCEPTED, b"250 2.0.0 queued\r\n"))
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.3.0")
    assert "internal error: KeyError" in result.diagnostic
    assert b"MAIL FROM" in record.sent()


def test_an_engine_bug_on_a_held_session_defers_and_closes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from smtpproto.engine import transaction

    def broken(txn: object, keep_open: bool) -> object:
        raise KeyError("planted engine bug")
        yield

    monkeypatch.setattr(transaction, "_end_of_data", broken)
    reports, record = run(held(1), Script(servers={ADDR: [smtp(ACCEPTED)]}))
    assert statuses(reports[0]) == [("deferred", "4.3.0")]
    assert record.channels[0].closed
