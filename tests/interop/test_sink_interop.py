"""Volume and failure paths against Postfix's smtp-sink, through each adapter.

smtp-sink dumps every transaction it receives, so the tests compare what each recipient's
status claims with what really arrived. Its fault options are deterministic per command
(-r 4xx, -f 5xx, -q hang up, -Q 421 and hang up; smtp-sink has no random replies), so the
tests walk every fault over every command instead of sampling: each recipient must get
exactly one status, the one Postfix's smtp(8) would give, and none may be delivered twice.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from .servers import (
    CLIENT_HELO,
    DOMAIN,
    SENDER,
    Client,
    SinkFactory,
    SinkServer,
    Transaction,
    client_config,
    make_message,
)

pytestmark = pytest.mark.interop

# Seconds for 100 one-recipient transactions over one loopback session (measured: 0.15 s).
SESSION_BUDGET = 2.0
RECIPIENTS = tuple(f"{user}@{DOMAIN}" for user in ("alice", "bob", "carol"))


def new_token(what: str) -> str:
    """A unique Subject, to find this test's transactions in the dumps."""
    return f"{what}-{uuid.uuid4().hex}"


def destination(sink: SinkServer) -> str:
    """The sink as a next hop without DNS (``inet:`` form for LMTP)."""
    return f"{'inet:' if sink.lmtp else ''}[{sink.host}]:{sink.port}"


def dumped_recipients(sink: SinkServer) -> Counter[str]:
    """How often each recipient appears in the transactions smtp-sink received."""
    return Counter(arg.strip("<>") for t in sink.transactions() for arg in t.rcpt_args)


def assert_accounted(report: Any, recipients: Sequence[str], sink: SinkServer) -> None:
    """One status per recipient, in order; sent ones arrived once, none arrived twice."""
    assert [r.address for r in report.recipients] == list(recipients)
    dumped = dumped_recipients(sink)
    assert max(dumped.values(), default=0) <= 1, f"delivered more than once: {dumped}"
    for result in report.recipients:
        if result.status == "sent":
            assert dumped[result.address] == 1, (result, dumped)


# --- volume -----------------------------------------------------------------------------------


def test_five_hundred_recipients_in_batches_of_fifty(
    client: Client, smtp_sink: SinkFactory
) -> None:
    sink = smtp_sink()
    recipients = [f"rcpt{n}@{DOMAIN}" for n in range(500)]
    token = new_token("volume")
    report = client.deliver(
        destination(sink),
        recipients=recipients,
        message=make_message(token),
        config=client_config(destination_recipient_limit=50),
    )

    assert {(r.status, r.dsn) for r in report.recipients} == {("sent", "2.0.0")}
    assert_accounted(report, recipients, sink)
    transactions = sink.transactions()
    assert [len(t.rcpt_args) for t in transactions] == [50] * 10
    received = [arg.strip("<>") for t in transactions for arg in t.rcpt_args]
    assert sorted(received) == sorted(recipients)
    assert all(t.mail_args.startswith(f"<{SENDER}>") for t in transactions)


def test_one_hundred_messages_over_one_session(client: Client, smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    token = new_token("session")
    subjects = [f"{token}-{n:03d}" for n in range(100)]
    started = time.monotonic()
    reports = client.session(
        destination(sink), [Transaction(RECIPIENTS[:1], make_message(s)) for s in subjects]
    )
    elapsed = time.monotonic() - started

    # About 1 ms per transaction on loopback; a small write held back by Nagle's algorithm
    # until the peer's delayed ACK (about 40 ms each) would take more than 4 s here.
    assert elapsed < SESSION_BUDGET, f"100 transactions took {elapsed:.2f} s"

    assert [r.recipients[0].status for r in reports] == ["sent"] * 100
    contents = [t.content for t in sink.transactions()]
    assert len(contents) == 100
    assert sorted(c.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].decode() for c in contents) == (
        subjects
    )


def test_large_message_arrives_unchanged(client: Client, smtp_sink: SinkFactory) -> None:
    sink = smtp_sink()
    token = new_token("large")
    # Dot lines at every position the stuffing must handle, long lines up to the limit.
    pattern = [".", "..", ". leading dot", "x" * 997, "", "end of block."]
    lines = [pattern[n % len(pattern)] + (f" {n}" if n % 6 != 3 else "") for n in range(12000)]
    body = "\r\n".join(lines) + "\r\n"
    message = make_message(token, body)
    assert len(message) > 2_000_000
    report = client.deliver(destination(sink), recipients=RECIPIENTS, message=message)

    assert {r.status for r in report.recipients} == {"sent"}
    [transaction] = sink.transactions()
    assert transaction.content == message.replace(b"\r\n", b"\n")
    assert transaction.mail_args.startswith(f"<{SENDER}>")


# --- fault injection --------------------------------------------------------------------------

COMMANDS = ("CONNECT", "EHLO", "MAIL", "RCPT", "DATA", ".", "QUIT")
FAULTS = ("-r", "-f", "-q", "-Q")


def expected_status(fault: str, command: str) -> str:
    """What Postfix's smtp(8) makes of `fault` on `command` at its only (final) server."""
    if command == "QUIT":
        return "sent"  # the QUIT reply never matters (rule 9.7)
    if command == "EHLO" and fault in ("-r", "-f"):
        return "sent"  # EHLO refused: HELO instead (rule 3.5), which smtp-sink accepts
    if fault == "-f" and command != "CONNECT":
        return "bounced"
    # 4xx, lost connections, 421, and a 5xx greeting under skip_5xx_greeting (rule 3.1).
    return "deferred"


FAULT_CASES = [
    pytest.param((fault, command), id=f"{fault}{command}")
    for fault in FAULTS
    for command in COMMANDS
] + [
    # smtp-sink -r/-f turn PIPELINING off themselves; -q/-Q do not, so try both ways.
    pytest.param(("-p", fault, command), id=f"-p{fault}{command}")
    for fault in ("-q", "-Q")
    for command in ("MAIL", "RCPT", "DATA")
]


@pytest.mark.parametrize("options", FAULT_CASES)
def test_fault_gives_every_recipient_exactly_one_status(
    client: Client, smtp_sink: SinkFactory, options: tuple[str, ...]
) -> None:
    fault, command = options[-2:]
    sink = smtp_sink(*options)
    report = client.deliver(destination(sink), recipients=RECIPIENTS, message=make_message("fault"))

    assert_accounted(report, RECIPIENTS, sink)
    expected = expected_status(fault, command)
    assert [r.status for r in report.recipients] == [expected] * 3, report.recipients
    if expected == "sent":
        assert {r.dsn for r in report.recipients} == {"2.0.0"}
        if command == "EHLO":
            assert f"Out: HELO {CLIENT_HELO}" in report.transcript
    elif fault == "-r":
        assert {(r.dsn, r.reply.code) for r in report.recipients} == {("4.3.0", 450)}
    elif fault == "-f" and expected == "bounced":
        assert {(r.dsn, r.reply.code) for r in report.recipients} == {("5.3.0", 500)}
    else:
        assert all(r.dsn.startswith("4.") for r in report.recipients), report.recipients
        if fault == "-Q":
            # The first failure carries the 421; anything after it met a closed connection.
            assert report.recipients[0].reply.code == 421, report.recipients[0]
        elif fault == "-q":
            assert {r.dsn for r in report.recipients} == {"4.4.2"}


REUSE_CASES = [
    # An RSET probe that fails only costs a new connection (rule 9.4): all sent.
    pytest.param(("-q", "RSET"), "sent", id="-qRSET"),
    pytest.param(("-Q", "RSET"), "sent", id="-QRSET"),
    pytest.param(("-f", "RSET"), "sent", id="-fRSET"),
    # Every batch refused or cut off at end of data: all deferred, never lost or retried.
    pytest.param(("-r", "."), "deferred", id="-r."),
    pytest.param(("-q", "."), "deferred", id="-q."),
    pytest.param(("-Q", "."), "deferred", id="-Q."),
]


@pytest.mark.parametrize(("options", "expected"), REUSE_CASES)
def test_faults_between_batches_on_a_reused_connection(
    client: Client, smtp_sink: SinkFactory, options: tuple[str, ...], expected: str
) -> None:
    sink = smtp_sink(*options)
    recipients = [f"rcpt{n}@{DOMAIN}" for n in range(7)]
    report = client.deliver(
        destination(sink),
        recipients=recipients,
        message=make_message("batches"),
        config=client_config(destination_recipient_limit=3),
    )

    assert_accounted(report, recipients, sink)
    assert [r.status for r in report.recipients] == [expected] * 7, report.recipients
    # Three transactions of 3, 3 and 1 recipients reached the sink in every case.
    assert sorted(len(t.rcpt_args) for t in sink.transactions()) == [1, 3, 3]


SESSION_CASES = [
    # A held session sends no RSET probe between transactions (rule 9.4 probes cached
    # sessions only), so a fault armed on RSET never fires and every message goes through.
    pytest.param(("-Q", "RSET"), ["sent", "sent", "sent"], id="-QRSET"),
    pytest.param(("-q", "RSET"), ["sent", "sent", "sent"], id="-qRSET"),
    # The first transaction already ends the session.
    pytest.param(("-Q", "."), ["deferred"] * 3, id="-Q."),
    pytest.param(("-q", "."), ["deferred"] * 3, id="-q."),
    pytest.param(("-Q", "MAIL"), ["deferred"] * 3, id="-QMAIL"),
]


@pytest.mark.parametrize(("options", "expected"), SESSION_CASES)
def test_session_defers_what_follows_a_lost_connection(
    client: Client, smtp_sink: SinkFactory, options: tuple[str, ...], expected: list[str]
) -> None:
    sink = smtp_sink(*options)
    token = new_token("session-fault")
    transactions = [
        Transaction(RECIPIENTS[n : n + 1], make_message(f"{token}-{n}")) for n in range(3)
    ]
    reports = client.session(destination(sink), transactions)

    results = [report.recipients for report in reports]
    assert [[r.address for r in rs] for rs in results] == [[r] for r in RECIPIENTS]
    assert [rs[0].status for rs in results] == expected, results
    for [result] in results:
        assert result.dsn[0] == {"sent": "2", "deferred": "4"}[result.status], result
    # Only what was reported sent went through (-Q/-q "." lose the reply, not the message).
    dumped = dumped_recipients(sink)
    assert max(dumped.values(), default=0) <= 1, dumped
    assert all(dumped[rs[0].address] == 1 for rs in results if rs[0].status == "sent")


# --- LMTP mode --------------------------------------------------------------------------------

LMTP_CASES = [
    pytest.param((), "sent", id="clean"),
    pytest.param(("-f", "."), "bounced", id="-f."),
    pytest.param(("-r", "."), "deferred", id="-r."),
    pytest.param(("-q", "."), "deferred", id="-q."),
    pytest.param(("-Q", "."), "deferred", id="-Q."),
    pytest.param(("-f", "RCPT"), "bounced", id="-fRCPT"),
    pytest.param(("-Q", "LHLO"), "deferred", id="-QLHLO"),
]


@pytest.mark.parametrize(("options", "expected"), LMTP_CASES)
def test_lmtp_sink_replies_per_recipient(
    client: Client, smtp_sink: SinkFactory, options: tuple[str, ...], expected: str
) -> None:
    sink = smtp_sink(*options, lmtp=True)
    report = client.deliver(
        destination(sink),
        recipients=RECIPIENTS,
        message=make_message("lmtp-sink"),
        config=client_config(lmtp=True),
    )

    assert_accounted(report, RECIPIENTS, sink)
    assert [r.status for r in report.recipients] == [expected] * 3, report.recipients
    if expected == "sent":
        # One reply per recipient after end of data (RFC 2033 4.2), each taken as it came.
        assert all(r.reply is not None and r.reply.code == 250 for r in report.recipients)
        assert [t.rcpt_args for t in sink.transactions()] == [tuple(f"<{r}>" for r in RECIPIENTS)]
