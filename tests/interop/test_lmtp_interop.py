"""LMTP through each adapter to a real Dovecot LMTP server.

Dovecot answers RCPT for unknown users at once (550 5.1.1) and, with lmtp_rcpt_check_quota
off, refuses the over-quota user only after DATA (552 5.2.2): one reply per accepted
recipient (RFC 2033 section 4.2), which the client must map back to the right recipient.
"""

from __future__ import annotations

import uuid

import pytest

from .servers import (
    CLIENT_HELO,
    DOMAIN,
    HOST,
    SENDER,
    Client,
    DovecotServer,
    Transaction,
    client_config,
    make_message,
    split_message,
)

pytestmark = pytest.mark.interop

ALICE, BOB, CAROL = (f"{user}@{DOMAIN}" for user in ("alice", "bob", "carol"))
UNKNOWN = f"nobody@{DOMAIN}"


def new_token(what: str) -> str:
    """A unique Subject, to find this test's copies among the session's deliveries."""
    return f"{what}-{uuid.uuid4().hex}"


def test_each_recipient_gets_its_own_lmtp_reply(
    client: Client, dovecot_server: DovecotServer
) -> None:
    token = new_token("lmtp")
    full = dovecot_server.over_quota_user
    report = client.deliver(
        f"inet:[{dovecot_server.host}]:{dovecot_server.lmtp_port}",
        recipients=[ALICE, UNKNOWN, full, BOB],
        message=make_message(token),
        config=client_config(lmtp=True),
    )

    outcome = [
        (r.address, r.status, r.dsn, r.reply.code if r.reply else None) for r in report.recipients
    ]
    assert outcome == [
        (ALICE, "sent", "2.0.0", 250),
        (UNKNOWN, "bounced", "5.1.1", 550),
        (full, "bounced", "5.2.2", 552),
        (BOB, "sent", "2.0.0", 250),
    ]
    unknown, over_quota = report.recipients[1], report.recipients[2]
    assert unknown.diagnostic.endswith("(in reply to RCPT TO command)"), unknown.diagnostic
    assert over_quota.diagnostic.endswith("(in reply to end of DATA command)")
    # Each reply after DATA names its own recipient: the mapping was not shifted.
    for result in (report.recipients[0], over_quota, report.recipients[3]):
        assert result.reply is not None and f"<{result.address}>" in result.reply.text
        assert result.relay == f"{HOST}[{HOST}]:{dovecot_server.lmtp_port}"
    for address in (ALICE, BOB):
        [stored] = dovecot_server.wait_for_delivery(address, contains=token.encode())
        header, _ = split_message(stored)
        assert header["Subject"] == token
        assert header["Return-Path"] == f"<{SENDER}>"
        received = str(header["Received"])
        assert received.startswith(f"from {CLIENT_HELO} ") and "with LMTP" in received


def test_lmtp_over_the_unix_socket(client: Client, dovecot_server: DovecotServer) -> None:
    token = new_token("lmtp-unix")
    report = client.deliver(
        f"unix:{dovecot_server.lmtp_socket}",
        recipients=[CAROL],
        message=make_message(token),
        config=client_config(lmtp=True),
    )

    [result] = report.recipients
    assert (result.status, result.dsn) == ("sent", "2.0.0"), result
    [stored] = dovecot_server.wait_for_delivery(CAROL, contains=token.encode())
    assert split_message(stored)[0]["Subject"] == token


def test_several_lmtp_transactions_over_one_connection(
    client: Client, dovecot_server: DovecotServer
) -> None:
    token = new_token("lmtp-session")
    full = dovecot_server.over_quota_user
    subjects = [f"{token}-{n}" for n in range(5)]
    reports = client.session(
        f"inet:[{dovecot_server.host}]:{dovecot_server.lmtp_port}",
        [
            Transaction((full, ALICE) if n % 2 else (ALICE, full), make_message(s))
            for n, s in enumerate(subjects)
        ],
        config=client_config(lmtp=True),
    )

    assert len(reports) == 5
    for n, report in enumerate(reports):
        statuses = {r.address: (r.status, r.dsn) for r in report.recipients}
        assert statuses == {ALICE: ("sent", "2.0.0"), full: ("bounced", "5.2.2")}, n
        assert [r.address for r in report.recipients] == ([full, ALICE] if n % 2 else [ALICE, full])
    stored = dovecot_server.wait_for_delivery(ALICE, count=5, contains=token.encode())
    assert sorted(split_message(m)[0]["Subject"] for m in stored) == subjects
