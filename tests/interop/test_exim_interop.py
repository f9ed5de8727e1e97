"""Delivery to Exim 4, a second real MTA beside Postfix, through every adapter.

Exim offers PIPELINING, CHUNKING and DSN, refuses some recipients at RCPT (its own
"550 Unrouteable address" for an unknown user, fixed 550/451 answers from its ACL) and
answers the last BDAT chunk with a multi-line reply. Each test runs once per adapter and, where
it matters, over DATA and over BDAT (``ClientConfig.chunking``). Outcomes are checked from both
ends: the per-recipient report, and what Exim logged and stored (each accepted recipient holds
the exact bytes exactly once; a refused one holds nothing).
"""

from __future__ import annotations

import dataclasses
import re
import time
import uuid
from typing import Any

import pytest

from smtpproto.envelope import Recipient

from .exim import (
    EXIM_DEFERRED_RCPT,
    EXIM_REJECT_HEADER,
    EXIM_REJECTED_RCPT,
    EXIM_UNKNOWN_RCPT,
    EximServer,
    exim_id,
)
from .servers import (
    DELIVERY_TIMEOUT,
    DOMAIN,
    SENDER,
    Client,
    Transaction,
    client_config,
    fail_with_logs,
    make_message,
)

pytestmark = pytest.mark.interop

ALICE, BOB, CAROL, DAVE = (f"{name}@{DOMAIN}" for name in ("alice", "bob", "carol", "dave"))
# Accepted, refused by Exim itself, refused and deferred by its ACL, interleaved so that a
# reply matched to the wrong RCPT would show.
MIXED = (ALICE, EXIM_UNKNOWN_RCPT, BOB, EXIM_REJECTED_RCPT, EXIM_DEFERRED_RCPT, CAROL)
MIXED_OUTCOMES = {
    ALICE: ("sent", "2.0.0"),
    # No enhanced code in Exim's reply: the status is made up from the reply code (rule 1.8).
    EXIM_UNKNOWN_RCPT: ("bounced", "5.0.0"),
    BOB: ("sent", "2.0.0"),
    EXIM_REJECTED_RCPT: ("bounced", "5.7.1"),
    EXIM_DEFERRED_RCPT: ("deferred", "4.3.2"),
    CAROL: ("sent", "2.0.0"),
}
ACCEPTED = (ALICE, BOB, CAROL)
# Exim's "<=" (message received) line; with log_selector +pipelining it carries "L", then "."
# (PIPECONNECT offered, not used) and "-" when the client did NOT pipeline; "K" means CHUNKING.
RECEIVED = re.compile(
    r" (?P<id>\S+) <= (?P<sender>\S+) H=\S+ \[[\d.]+\]:(?P<port>\d+) P=\S+"
    r" L[.*]?(?P<unpipelined>-?)(?P<chunked> K)? S=\d+ id=(?P<msgid>\S+) for (?P<rcpts>.+)$"
)

CHUNKING = pytest.mark.parametrize("chunking", [False, True], ids=["DATA", "BDAT"])


def _config(chunking: bool) -> Any:
    return dataclasses.replace(client_config(), chunking=chunking)


def _token(what: str, client: Client, chunking: bool) -> str:
    mode = "bdat" if chunking else "data"
    return f"{what}-{client.adapter}-{mode}-{uuid.uuid4().hex[:12]}"


def _received(exim: EximServer, token: str) -> list[re.Match[str]]:
    """Exim's "<=" lines for the message whose Message-ID carries token."""
    lines = exim.log_text().splitlines()
    found = [RECEIVED.search(line) for line in lines if f"id={token}@" in line and " <= " in line]
    assert all(found), [line for line in lines if token in line]
    return [match for match in found if match is not None]


def _outcomes(report: Any) -> dict[str, tuple[str, str]]:
    return {r.address: (r.status, r.dsn) for r in report.recipients}


def _first_flight(report: Any) -> list[str]:
    """The commands written after the EHLO reply and before the next reply was read."""
    transcript = list(report.transcript)
    # The EHLO reply's last line is the first "250 " line (the greeting is 220).
    ehlo_end = next(i for i, line in enumerate(transcript) if line.startswith("In: 250 "))
    flight = []
    for line in transcript[ehlo_end + 1 :]:
        if not line.startswith("Out: "):
            break
        flight.append(line.removeprefix("Out: "))
    return flight


def _landed_once(exim: EximServer, token: str, message: bytes, accepted: tuple[str, ...]) -> None:
    """Exim received the message once, and each accepted mailbox holds exactly its bytes."""
    [received] = _received(exim, token)
    exim.wait_completed(received["id"])
    assert set(received["rcpts"].split()) == set(accepted)
    for address in accepted:
        copies = [m for m in exim.messages(address) if token.encode() in m]
        # received_header_text is empty and use_crlf is set: the file is the client's message.
        assert copies == [message], address


def _wait_success_dsn(exim: EximServer, token: str, recipient: str) -> bytes:
    """The success DSN Exim sent the sender for the message carrying token (NOTIFY=SUCCESS)."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while True:
        reports = [m for m in exim.messages(SENDER) if f"<{token}@".encode() in m]
        if reports:
            [dsn] = reports
            assert b"Action: delivered" in dsn
            assert f"Final-Recipient: rfc822;{recipient}".encode() in dsn
            return dsn
        if time.monotonic() >= deadline:
            fail_with_logs(
                f"no success DSN for {token} within {DELIVERY_TIMEOUT:.0f} s", [exim.log]
            )
        time.sleep(0.02)


@CHUNKING
def test_pipelined_delivery_with_refused_recipients(
    client: Client, exim_server: EximServer, chunking: bool
) -> None:
    token = _token("mixed", client, chunking)
    message = make_message(token, "One line.\r\n.Leading dot.\r\n")
    recipients = [Recipient(ALICE, notify=("SUCCESS", "FAILURE")), *MIXED[1:]]
    report = client.deliver(
        exim_server.destination, recipients=recipients, message=message, config=_config(chunking)
    )

    assert _outcomes(report) == MIXED_OUTCOMES
    assert [r.address for r in report.recipients] == list(MIXED)
    by_address = {r.address: r for r in report.recipients}
    unknown = by_address[EXIM_UNKNOWN_RCPT].reply
    assert unknown is not None and (unknown.code, unknown.lines) == (550, ("Unrouteable address",))
    # Every accepted recipient is credited with the one end-of-content reply, Exim's "id=".
    ids = {exim_id(by_address[a].diagnostic) for a in ACCEPTED}
    assert len(ids) == 1

    # PIPELINING (RFC 2920, rule 7.3): MAIL, every RCPT and DATA go in one flight after EHLO.
    # Under BDAT a message this small goes with them as BDAT n LAST, and QUIT behind it
    # (docs/guide.md, "Options beyond smtp(8)": chunking_one_flight_limit).
    flight = _first_flight(report)
    rcpts = [f"RCPT TO:<{a}>" for a in MIXED]
    rcpts[0] += " NOTIFY=SUCCESS,FAILURE"
    expected_tail = [f"BDAT {len(message)} LAST", "QUIT"] if chunking else ["DATA"]
    assert flight[0].startswith(f"MAIL FROM:<{SENDER}>")
    assert flight[1:] == rcpts + expected_tail
    sent = [line for line in report.transcript if line.startswith("Out: ")]
    if chunking:
        assert "Out: DATA" not in sent
        assert any(line.startswith("Out: BDAT ") and line.endswith(" LAST") for line in sent)
    else:
        assert not any(line.startswith("Out: BDAT") for line in sent)

    [received] = _received(exim_server, token)
    assert received["id"] in ids
    assert received["unpipelined"] == "", "Exim saw no pipelining"
    assert bool(received["chunked"]) is chunking
    _landed_once(exim_server, token, message, ACCEPTED)
    # DSN (RFC 3461): Exim honoured the NOTIFY the client passed on.
    _wait_success_dsn(exim_server, token, ALICE)


@CHUNKING
def test_large_message_exact_bytes(client: Client, exim_server: EximServer, chunking: bool) -> None:
    token = _token("large", client, chunking)
    # Several 64 KiB BDAT chunks; dot lines that DATA must stuff and BDAT must not; 8-bit text.
    lines = [".", "..", ".leading", "caf\u00e9 \u00fcber"] + [
        f"line {n:06d} " + "x" * 60 for n in range(4000)
    ]
    message = make_message(token, "\r\n".join(lines) + "\r\n")
    report = client.deliver(
        exim_server.destination, recipients=[BOB, DAVE], message=message, config=_config(chunking)
    )

    assert _outcomes(report) == {BOB: ("sent", "2.0.0"), DAVE: ("sent", "2.0.0")}
    sent = [line for line in report.transcript if line.startswith("Out: ")]
    assert any(line.startswith("Out: MAIL FROM:") and "BODY=8BITMIME" in line for line in sent)
    if chunking:
        chunks = [line for line in sent if line.startswith("Out: BDAT ")]
        assert len(chunks) >= 3 and chunks[-1].endswith(" LAST")
        assert sum(int(line.split()[2]) for line in chunks) == len(message)
        # Exim answers the last chunk with two lines ("250- N byte chunk, total T" and
        # "250 OK id=..."): one reply, credited to every recipient.
        reply = report.recipients[0].reply
        assert reply is not None and reply.code == 250 and len(reply.lines) == 2
        assert reply.lines[0].strip() == f"{int(chunks[-1].split()[2])} byte chunk, total " + str(
            len(message)
        )
    _landed_once(exim_server, token, message, (BOB, DAVE))


@CHUNKING
def test_held_session_carries_several_transactions(
    client: Client, exim_server: EximServer, chunking: bool
) -> None:
    token = _token("session", client, chunking)
    first = make_message(f"{token}-1")
    refused = make_message(f"{token}-2", **{EXIM_REJECT_HEADER.replace("-", "_"): "yes"})
    third = make_message(f"{token}-3", "Third message.\r\n")
    transactions = [
        Transaction((ALICE, EXIM_REJECTED_RCPT), first),
        # Refused after its content (Exim's DATA ACL): every recipient bounces, and the session
        # goes on.
        Transaction((BOB, CAROL), refused),
        Transaction((CAROL, EXIM_DEFERRED_RCPT, ALICE), third),
    ]
    since = exim_server.log_offset()
    reports = client.session(exim_server.destination, transactions, config=_config(chunking))

    assert [_outcomes(r) for r in reports] == [
        {ALICE: ("sent", "2.0.0"), EXIM_REJECTED_RCPT: ("bounced", "5.7.1")},
        {BOB: ("bounced", "5.7.0"), CAROL: ("bounced", "5.7.0")},
        {
            CAROL: ("sent", "2.0.0"),
            EXIM_DEFERRED_RCPT: ("deferred", "4.3.2"),
            ALICE: ("sent", "2.0.0"),
        },
    ]
    [one] = _received(exim_server, f"{token}-1")
    [three] = _received(exim_server, f"{token}-3")
    # One TCP connection (one client port) carried all three transactions; the refused one was
    # never received, only logged as "rejected after DATA" (under BDAT too).
    port = one["port"]
    assert three["port"] == port
    assert not _received(exim_server, f"{token}-2")
    log = exim_server.log_text(since).splitlines()
    connection = [line for line in log if f"]:{port} " in line]
    assert sum("rejected after DATA: 5.7.0" in line for line in connection) == 1
    assert sum(" SMTP connection from [127.0.0.1]:" in line for line in connection) == 1
    _landed_once(exim_server, f"{token}-1", first, (ALICE,))
    _landed_once(exim_server, f"{token}-3", third, (CAROL, ALICE))
    assert not any(
        f"{token}-2".encode() in m for a in (BOB, CAROL) for m in exim_server.messages(a)
    )
