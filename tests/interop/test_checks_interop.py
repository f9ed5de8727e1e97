"""header_checks(5) in the client and smtp_generic_maps against the real Postfix smtpd, and the
same tables given to Postfix 3.7's own smtp(8) (the oracle, tests/interop/postfix_client.py).

The evidence is the message as Postfix's virtual(8) stored it: rewritten headers, lines left
out or replaced, addresses mapped in the envelope (Return-Path, the mailbox) and in headers.
The differential cases store one message sent by smtpproto and one sent by Postfix's smtp(8)
with the same table files, and compare them with the trace headers (Received, Return-Path,
Delivered-To) left out.
"""

from __future__ import annotations

import email.message
import uuid
from pathlib import Path

import pytest

from . import servers
from .postfix_client import PostfixOracle
from .servers import DOMAIN, SENDER, Client, PostfixServer

pytestmark = pytest.mark.interop

RECIPIENT = f"carol@{DOMAIN}"
TRACE = frozenset({"received", "return-path", "delivered-to"})

HEADER_RULES = r"""
/^Subject: (.*)$/ REPLACE Subject: [checked] $1
/^X-Internal:/ IGNORE
/^From: / PREPEND X-Checked: yes
"""
MIME_RULES = r"""
/^Content-Disposition:.*filename="?secret\.txt/
    REPLACE Content-Disposition: attachment; filename="public.txt"
"""
NESTED_RULES = r"""
/^Subject: inner/ REPLACE Subject: inner (checked)
"""
BODY_RULES = r"""
/^a secret line$/ REPLACE [removed]
/^drop this line$/ IGNORE
"""
GENERIC_RULES = f"""
sender@{DOMAIN} mapped-sender@{DOMAIN}
@old.{DOMAIN} @{DOMAIN}
"""


def _message(token: str) -> bytes:
    return (
        f"From: Sender <{SENDER}>\r\n"
        f"To: Carol <carol@old.{DOMAIN}>\r\n"
        f"Subject: {token}\r\n"
        f"Message-ID: <{token}@{servers.CLIENT_HELO}>\r\n"
        "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n"
        "X-Internal: not for the outside\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n'
        "\r\n"
        "--b1\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "a public line\r\n"
        "a secret line\r\n"
        "drop this line\r\n"
        "--b1\r\n"
        "Content-Type: text/plain\r\n"
        'Content-Disposition: attachment; filename="secret.txt"\r\n'
        "\r\n"
        "attached\r\n"
        "--b1\r\n"
        "Content-Type: message/rfc822\r\n"
        "\r\n"
        "Subject: inner message\r\n"
        "\r\n"
        "inner body\r\n"
        "--b1--\r\n"
    ).encode()


def _tables(directory: Path) -> dict[str, str]:
    """The check and generic tables as files `directory`, as smtp(8) parameters."""
    files = {
        "smtp_header_checks": ("regexp", HEADER_RULES),
        "smtp_mime_header_checks": ("regexp", MIME_RULES),
        "smtp_nested_header_checks": ("regexp", NESTED_RULES),
        "smtp_body_checks": ("regexp", BODY_RULES),
        "smtp_generic_maps": ("texthash", GENERIC_RULES),
    }
    parameters = {}
    for name, (kind, rules) in files.items():
        path = directory / f"{name}-{uuid.uuid4().hex[:8]}"
        path.write_text(rules.lstrip(), encoding="utf-8")
        path.chmod(0o644)
        parameters[name] = f"{kind}:{path}"
    return parameters


_config = servers.postconf_config


def _fields(raw: bytes) -> tuple[list[tuple[str, str]], bytes]:
    header, body = servers.split_message(raw)
    assert isinstance(header, email.message.Message)
    return [(k, v) for k, v in header.items() if k.lower() not in TRACE], body


def _token() -> str:
    return f"checks-{uuid.uuid4().hex}"


@pytest.mark.parameter(
    "smtp_header_checks",
    "smtp_mime_header_checks",
    "smtp_nested_header_checks",
    "smtp_body_checks",
    "smtp_generic_maps",
)
def test_postfix_stores_the_message_as_the_checks_rewrote_it(
    client: Client, postfix_server: PostfixServer, tmp_path: Path
) -> None:
    token = _token()
    config = _config(**_tables(tmp_path))
    report = client.deliver(
        f"[{postfix_server.host}]:{postfix_server.port}",
        recipients=[f"carol@old.{DOMAIN}"],
        message=_message(token),
        config=config,
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.address == f"carol@old.{DOMAIN}"
    (stored,) = postfix_server.wait_for_delivery(RECIPIENT, contains=token.encode())
    fields, body = _fields(stored)
    assert stored.startswith(f"Return-Path: <mapped-sender@{DOMAIN}>".encode())
    assert ("Subject", f"[checked] {token}") in fields
    assert ("X-Checked", "yes") in fields
    assert [k for k, _ in fields].index("X-Checked") + 1 == [k for k, _ in fields].index("From")
    assert ("From", f"Sender <mapped-sender@{DOMAIN}>") in fields
    assert ("To", f"Carol <carol@{DOMAIN}>") in fields
    assert "X-Internal" not in dict(fields)
    assert b"a public line\n[removed]\n--b1\n" in body
    assert b'Content-Disposition: attachment; filename="public.txt"\n' in body
    assert b"Subject: inner (checked)\n" in body
    assert b"secret" not in stored and b"drop this line" not in stored


@pytest.mark.parameter("smtp_body_checks")
def test_a_rejected_message_never_reaches_postfix(
    client: Client, postfix_server: PostfixServer
) -> None:
    since = postfix_server.log_offset()
    config = _config(smtp_body_checks="regexp:{ {/^a secret line$$/ REJECT 5.7.1 no secrets} }")
    report = client.deliver(
        f"[{postfix_server.host}]:{postfix_server.port}",
        recipients=[RECIPIENT],
        message=_message(_token()),
        config=config,
    )
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("bounced", "5.7.1")
    assert result.diagnostic == "smtp_body_checks: no secrets"
    assert not any(line.startswith("Out:") for line in report.transcript)
    # Postfix logs asynchronously: the previous test's "disconnect from" may land after
    # `since`, so look for a session that *starts* here, not for the substring.
    started = [
        m
        for m in servers.SMTPD_LINE.finditer(postfix_server.log_text()[since:])
        if m.group(3).startswith("connect from ")
    ]
    assert started == []


@pytest.mark.parameter(
    "smtp_header_checks",
    "smtp_mime_header_checks",
    "smtp_nested_header_checks",
    "smtp_body_checks",
    "smtp_generic_maps",
)
def test_the_same_tables_rewrite_as_postfixs_own_smtp(
    postfix_oracle: PostfixOracle, postfix_server: PostfixServer
) -> None:
    # The table files live where the oracle's smtp(8) can read them.
    parameters = _tables(postfix_oracle.base / "etc")
    destination = f"[{postfix_server.host}]:{postfix_server.port}"
    ours, theirs = _token(), _token()
    report = Client("blocking").deliver(
        destination,
        recipients=[f"carol@old.{DOMAIN}"],
        message=_message(ours),
        config=_config(**parameters),
    )
    assert report.recipients[0].status == "sent", report.recipients[0].diagnostic
    results = postfix_oracle.deliver(
        destination, SENDER, [f"carol@old.{DOMAIN}"], _message(theirs), params=parameters
    )
    assert results[f"carol@old.{DOMAIN}"].status == "sent", results
    (mine,) = postfix_server.wait_for_delivery(RECIPIENT, contains=ours.encode())
    (postfix,) = postfix_server.wait_for_delivery(RECIPIENT, contains=theirs.encode())
    assert _fields(mine) == _fields(postfix.replace(theirs.encode(), ours.encode()))
    assert mine.startswith(postfix.split(b"\n", 1)[0])  # Return-Path: the mapped sender
