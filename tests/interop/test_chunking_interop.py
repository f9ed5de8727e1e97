"""BDAT (RFC 3030 CHUNKING) against servers that implement it: Postfix smtpd, Dovecot LMTP.

The CHUNKING switch stays off by default until interop proves it (rule 15.4); these tests are
that proof, one run per adapter. Deliveries are checked in the maildir the server wrote.
"""

from __future__ import annotations

import dataclasses

import pytest

from .servers import (
    DOMAIN,
    DOVECOT_OVER_QUOTA_USER,
    Client,
    DovecotServer,
    PostfixServer,
    Transaction,
    client_config,
)

pytestmark = pytest.mark.interop

# Lines starting with dots (stuffed under DATA, never under BDAT), a bare LF, and a body big
# enough to take several 64 KiB chunks.
BODY_LINES = [b".leading dot", b"..two dots", b"."] + [
    b"line %06d " % n + b"x" * 60 for n in range(6000)
]


def _message(subject: str) -> bytes:
    return b"Subject: " + subject.encode() + b"\r\n\r\n" + b"\r\n".join(BODY_LINES) + b"\nend\r\n"


def _config(lmtp: bool = False) -> object:
    return dataclasses.replace(client_config(lmtp=lmtp), chunking=True)


def test_bdat_delivers_the_exact_content_to_postfix(
    client: Client, postfix_server: PostfixServer
) -> None:
    subject = f"bdat-{client.adapter}"
    message = _message(subject)
    report = client.deliver(
        f"[{postfix_server.host}]:{postfix_server.port}",
        recipients=[f"alice@{DOMAIN}", f"nobody@{DOMAIN}"],
        message=message,
        config=_config(),
    )
    assert [(r.status, r.dsn) for r in report.recipients] == [
        ("sent", "2.0.0"),
        ("bounced", "5.1.1"),
    ]
    sent = [line for line in report.transcript if line.startswith("Out: ")]
    assert not any(line == "Out: DATA" for line in sent)
    chunks = [line for line in sent if line.startswith("Out: BDAT ")]
    assert len(chunks) >= 3 and chunks[-1].endswith(" LAST")
    (stored,) = postfix_server.wait_for_delivery(f"alice@{DOMAIN}", contains=subject.encode())
    body = stored.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
    # No dot-stuffing under BDAT, and the bare LF became a line end like any other.
    assert body == b"\n".join(BODY_LINES) + b"\nend\n"


def _flights(transcript: tuple[str, ...]) -> list[list[str]]:
    """The client's lines grouped by flight: each run of "Out:" lines between replies."""
    flights: list[list[str]] = []
    writing = False
    for line in transcript:
        if line.startswith("Out: "):
            if not writing:
                flights.append([])
            flights[-1].append(line.removeprefix("Out: "))
        writing = line.startswith("Out: ")
    return flights


def test_held_session_sends_each_small_message_in_one_flight_to_postfix(
    client: Client, postfix_server: PostfixServer
) -> None:
    # chunking_one_flight_limit: MAIL, RCPT and BDAT n LAST in one flight (RFC 3030 4.2).
    # When smtpd refuses every recipient it refuses the chunk too ("554 5.5.1 Error: no valid
    # recipients"): nobody is sent, and the session goes on with the next message.
    subjects = [f"one-flight-{n}-{client.adapter}" for n in range(3)]
    alice, nobody = f"alice@{DOMAIN}", f"nobody@{DOMAIN}"
    transactions = [
        Transaction((alice,), b"Subject: %s\r\n\r\nhello\r\n" % subjects[0].encode()),
        Transaction((nobody,), b"Subject: %s\r\n\r\nlost\r\n" % subjects[1].encode()),
        Transaction((nobody, alice), b"Subject: %s\r\n\r\nagain\r\n" % subjects[2].encode()),
    ]
    reports = client.session(
        f"[{postfix_server.host}]:{postfix_server.port}", transactions, config=_config()
    )
    outcomes = [[(r.status, r.dsn) for r in report.recipients] for report in reports]
    assert outcomes == [
        [("sent", "2.0.0")],
        [("bounced", "5.1.1")],
        [("bounced", "5.1.1"), ("sent", "2.0.0")],
    ]
    for report, transaction in zip(reports, transactions, strict=True):
        (flight,) = _flights(report.transcript)
        assert flight[0].startswith("MAIL FROM:")
        assert flight[-1] == f"BDAT {len(transaction.message)} LAST"
    assert "In: 554 5.5.1 Error: no valid recipients" in reports[1].transcript
    for subject in (subjects[0], subjects[2]):
        postfix_server.wait_for_delivery(alice, contains=subject.encode())


def test_bdat_to_dovecot_lmtp_gets_one_reply_per_recipient(
    client: Client, dovecot_server: DovecotServer
) -> None:
    subject = f"lmtp-bdat-{client.adapter}"
    report = client.deliver(
        f"inet:{dovecot_server.host}:{dovecot_server.lmtp_port}",
        recipients=[f"bob@{DOMAIN}", DOVECOT_OVER_QUOTA_USER, f"nosuchuser@{DOMAIN}"],
        message=_message(subject),
        config=_config(lmtp=True),
    )
    statuses = {r.address: r.status for r in report.recipients}
    assert statuses == {
        f"bob@{DOMAIN}": "sent",
        DOVECOT_OVER_QUOTA_USER: "bounced",
        f"nosuchuser@{DOMAIN}": "bounced",
    }
    assert any(
        line.startswith("Out: BDAT ") and line.endswith(" LAST") for line in report.transcript
    )
    dovecot_server.wait_for_delivery(f"bob@{DOMAIN}", contains=subject.encode())
