"""Delivery through each adapter to a real Postfix smtpd, checked in what Postfix stored.

Every test runs once per adapter (the `client` fixture). Outcomes are read from the maildir
files virtual(8) wrote and from the command counts smtpd logs per session, not only from the
reply codes the client saw.
"""

from __future__ import annotations

import email
import email.policy
import re
import uuid

import pytest

from .servers import (
    CLIENT_HELO,
    DOMAIN,
    HOST,
    SENDER,
    Client,
    PostfixServer,
    Transaction,
    client_config,
    make_message,
    split_message,
)

pytestmark = pytest.mark.interop

QUEUED_AS = re.compile(r"queued as (\w+)")


def new_token(what: str) -> str:
    """A unique Subject, to find this test's copies among the session's deliveries."""
    return f"{what}-{uuid.uuid4().hex}"


def destination(server: PostfixServer, *, no8bitmime: bool = False) -> str:
    """The smtpd listener as a next hop without DNS."""
    return f"[{server.host}]:{server.port_no8bitmime if no8bitmime else server.port}"


def queue_id(result: object) -> str:
    """The Postfix queue id from a recipient's ``250 2.0.0 Ok: queued as ID`` reply."""
    match = QUEUED_AS.search(str(getattr(result, "diagnostic", "")))
    assert match, result
    return match.group(1)


def test_plain_delivery_is_stored_byte_for_byte(
    client: Client, postfix_server: PostfixServer
) -> None:
    token = new_token("plain")
    body = "First line.\r\n.A line that starts with a dot.\r\n..And two.\r\n\r\nLast line.\r\n"
    message = make_message(token, body, To=f"bob@{DOMAIN}")
    report = client.deliver(
        destination(postfix_server), recipients=[f"bob@{DOMAIN}"], message=message
    )

    [result] = report.recipients
    assert (result.address, result.status, result.dsn) == (f"bob@{DOMAIN}", "sent", "2.0.0")
    assert result.reply is not None and result.reply.code == 250
    assert result.relay == f"{HOST}[{HOST}]:{postfix_server.port}"
    [stored] = postfix_server.wait_for_delivery(f"bob@{DOMAIN}", contains=token.encode())
    header, stored_body = split_message(stored)
    assert header["Return-Path"] == f"<{SENDER}>"
    assert header["Delivered-To"] == f"bob@{DOMAIN}"
    received = str(header["Received"])
    assert received.startswith(f"from {CLIENT_HELO} ") and f"id {queue_id(result)}" in received
    assert header["Subject"] == token
    assert header["Message-ID"] == f"<{token}@{CLIENT_HELO}>"
    # Dot-stuffing undone by smtpd, nothing added or lost (maildir stores LF line ends).
    assert stored_body == body.replace("\r\n", "\n").encode()


def test_fifty_messages_over_one_connection(client: Client, postfix_server: PostfixServer) -> None:
    token = new_token("reuse")
    subjects = [f"{token}-{n:02d}" for n in range(50)]
    since = postfix_server.log_offset()
    reports = client.session(
        destination(postfix_server),
        [Transaction((f"carol@{DOMAIN}",), make_message(s)) for s in subjects],
    )

    assert len(reports) == 50
    for report in reports:
        [result] = report.recipients
        assert (result.status, result.dsn) == ("sent", "2.0.0"), result
    assert len({queue_id(r.recipients[0]) for r in reports}) == 50
    stored = postfix_server.wait_for_delivery(f"carol@{DOMAIN}", count=50, contains=token.encode())
    assert sorted(split_message(m)[0]["Subject"] for m in stored) == subjects
    # smtpd counts one session with one EHLO and fifty transactions: all fifty messages.
    ids = [queue_id(r.recipients[0]) for r in reports]
    [session] = postfix_server.wait_for_sessions(since, queue_ids=ids)
    assert session.queue_ids == tuple(ids), session
    counts = session.counts
    assert (counts["ehlo"], counts["mail"], counts["rcpt"], counts["data"]) == (
        "1",
        "50",
        "50",
        "50",
    ), session


def test_one_hundred_recipients_split_by_destination_recipient_limit(
    client: Client, postfix_server: PostfixServer
) -> None:
    token = new_token("split")
    recipients = [f"rcpt{n}@{DOMAIN}" for n in range(100)]
    since = postfix_server.log_offset()
    report = client.deliver(
        destination(postfix_server),
        recipients=recipients,
        message=make_message(token),
        config=client_config(destination_recipient_limit=30),
    )

    assert [r.address for r in report.recipients] == recipients
    assert {(r.status, r.dsn) for r in report.recipients} == {("sent", "2.0.0")}
    # Four transactions of 30, 30, 30 and 10 recipients, in envelope order.
    ids = [queue_id(r) for r in report.recipients]
    batches = [ids[i : i + 30] for i in range(0, 100, 30)]
    assert [len(set(b)) for b in batches] == [1, 1, 1, 1]
    assert len({b[0] for b in batches}) == 4
    for address, expected_id in zip(recipients, ids, strict=True):
        [stored] = postfix_server.wait_for_delivery(address, contains=token.encode())
        header, _ = split_message(stored)
        assert header["Delivered-To"] == address
        assert f"id {expected_id}" in str(header["Received"]), (address, header["Received"])
    # The session was kept between the batches: one connection, four transactions.
    [session] = postfix_server.wait_for_sessions(since, queue_ids=set(ids))
    counts = session.counts
    assert (counts["mail"], counts["rcpt"], counts["data"]) == ("4", "100", "4"), session


def test_rejected_recipients_among_accepted_ones(
    client: Client, postfix_server: PostfixServer
) -> None:
    token = new_token("mixed")
    recipients = [
        f"alice@{DOMAIN}",
        postfix_server.rejected_recipient,
        f"nobody@{DOMAIN}",
        postfix_server.deferred_recipient,
        f"dave@{DOMAIN}",
    ]
    since = postfix_server.log_offset()
    report = client.deliver(
        destination(postfix_server), recipients=recipients, message=make_message(token)
    )

    outcome = [
        (r.address, r.status, r.dsn, r.reply.code if r.reply else None) for r in report.recipients
    ]
    assert outcome == [
        (f"alice@{DOMAIN}", "sent", "2.0.0", 250),
        (postfix_server.rejected_recipient, "bounced", "5.7.1", 550),
        (f"nobody@{DOMAIN}", "bounced", "5.1.1", 550),
        (postfix_server.deferred_recipient, "deferred", "4.7.1", 450),
        (f"dave@{DOMAIN}", "sent", "2.0.0", 250),
    ]
    for result in report.recipients[1:4]:
        assert result.diagnostic.startswith(f"host {HOST}[{HOST}] said: "), result.diagnostic
        assert result.diagnostic.endswith("(in reply to RCPT TO command)"), result.diagnostic
    # One message for the two accepted recipients, stored once for each.
    assert queue_id(report.recipients[0]) == queue_id(report.recipients[4])
    for address in (f"alice@{DOMAIN}", f"dave@{DOMAIN}"):
        [stored] = postfix_server.wait_for_delivery(address, contains=token.encode())
        assert split_message(stored)[0]["Delivered-To"] == address
    [session] = postfix_server.wait_for_sessions(since, queue_ids=[queue_id(report.recipients[0])])
    counts = session.counts
    assert (counts["mail"], counts["rcpt"], counts["data"]) == ("1", "2/5", "1"), session


def test_message_over_the_advertised_size_bounces_without_a_transaction(
    client: Client, postfix_server: PostfixServer
) -> None:
    token = new_token("size")
    body = ("x" * 76 + "\r\n") * (postfix_server.message_size_limit // 78 + 100)
    message = make_message(token, body)
    assert len(message) > postfix_server.message_size_limit
    since = postfix_server.log_offset()
    report = client.deliver(
        destination(postfix_server),
        recipients=[f"alice@{DOMAIN}", f"bob@{DOMAIN}"],
        message=message,
    )

    for result in report.recipients:
        assert (result.status, result.dsn, result.reply) == ("bounced", "5.3.4", None), result
        assert result.diagnostic == (
            f"message size {len(message)} exceeds size limit "
            f"{postfix_server.message_size_limit} of server {HOST}[{HOST}]"
        )
    # Rule 6.8: after the EHLO reply showed the limit, the client only says goodbye.
    sent = [line for line in report.transcript if line.startswith("Out: ")]
    assert sent == [f"Out: EHLO {CLIENT_HELO}", "Out: QUIT"], report.transcript
    [session] = postfix_server.wait_for_sessions(since)
    assert not {"mail", "data", "bdat"} & set(session.counts), session


def test_eight_bit_message_is_converted_for_a_server_without_8bitmime(
    client: Client, postfix_server: PostfixServer
) -> None:
    token = new_token("8bit")
    text = "Grüße aus Köln, à bientôt.\r\n"
    html = "<p>café crème</p>\r\n"
    body = (
        "This is a MIME message.\r\n"
        "--frontier\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        f"{text}"
        "--frontier\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n"
        f"{html}"
        "--frontier--\r\n"
    )
    message = make_message(
        token,
        body,
        MIME_Version="1.0",
        Content_Type='multipart/alternative; boundary="frontier"',
    )
    report = client.deliver(
        destination(postfix_server, no8bitmime=True),
        recipients=[f"dave@{DOMAIN}"],
        message=message,
    )

    [result] = report.recipients
    assert (result.status, result.dsn) == ("sent", "2.0.0"), result
    assert not any(
        line.removeprefix("In: 250-").removeprefix("In: 250 ") in ("8BITMIME", "SMTPUTF8")
        for line in report.transcript
    ), "the fixture's second port must offer neither 8BITMIME nor SMTPUTF8"
    # No BODY=8BITMIME, and no SIZE= either: conversion changes the size (rule 6.1).
    assert f"Out: MAIL FROM:<{SENDER}>" in report.transcript, report.transcript
    [stored] = postfix_server.wait_for_delivery(f"dave@{DOMAIN}", contains=token.encode())
    assert stored.isascii(), "8-bit octets reached a server that did not offer 8BITMIME"
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    parts = list(parsed.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part, original in zip(parts, (text, html), strict=True):
        assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64"), part
        # The CRLF before a boundary belongs to the boundary (RFC 2046 5.1.1).
        assert part.get_content() == original.removesuffix("\r\n")
