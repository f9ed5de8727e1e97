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
