"""What MAIL FROM carries: smtp_send_dummy_mail_auth and smtputf8_enable (rules 6.1, 3.10).

Scripted servers; the client's octets are the evidence. aiosmtpd's view of the same
parameters is in tests/interop/test_params2_interop.py.
"""

from __future__ import annotations

import pytest
from support.world import ADDR, go, smtp, statuses

from smtpproto.config import ClientConfig
from smtpproto.envelope import Envelope, Recipient

OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
EHLO_AUTH = b"250-mx.example\r\n250-PIPELINING\r\n250 AUTH PLAIN\r\n"
EHLO_UTF8 = b"250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"


def _config(**parameters: str) -> ClientConfig:
    return ClientConfig.from_postconf(
        {
            "smtp_helo_name": "client.example",
            "smtp_tls_security_level": "none",
            "smtp_sasl_auth_enable": "yes",
            "smtp_sasl_security_options": "noanonymous",
            **parameters,
        }
    )


def _mail_line(sent: bytes) -> bytes:
    (line,) = [w for w in sent.split(b"\r\n") if w.startswith(b"MAIL FROM:")]
    return line


@pytest.mark.parameter("smtp_send_dummy_mail_auth")
@pytest.mark.parametrize(
    ("dummy", "credentials", "mail"),
    [
        ("yes", True, b"MAIL FROM:<a@example.org> AUTH=<>"),
        ("no", True, b"MAIL FROM:<a@example.org>"),
        # Postfix clears its AUTH feature when no credentials exist: nothing to vouch for.
        ("yes", False, b"MAIL FROM:<a@example.org>"),
    ],
)
def test_send_dummy_mail_auth_adds_auth_empty_after_a_login(
    dummy: str, credentials: bool, mail: bytes
) -> None:
    config = _config(
        smtp_send_dummy_mail_auth=dummy,
        smtp_sasl_password_maps={f"[{ADDR}]": "user:secret"} if credentials else "",  # type: ignore[dict-item]
    )
    steps = (b"235 2.7.0 ok\r\n", *OK) if credentials else OK
    report, record = go(smtp(*steps, ehlo=EHLO_AUTH), config=config)
    assert statuses(report) == [("sent", "2.0.0")]
    assert _mail_line(record.sent()) == mail


UTF8_HEADER = "Subject: héllo\r\n\r\nbody\r\n".encode()


@pytest.mark.parameter("smtputf8_enable")
@pytest.mark.parametrize(("enable", "mail"), [("yes", b" SMTPUTF8"), ("no", b"")])
def test_smtputf8_enable_decides_whether_mail_asks_for_smtputf8(enable: str, mail: bytes) -> None:
    envelope = Envelope("a@example.org", (Recipient("b@example.com"),), smtputf8=True)
    report, record = go(
        smtp(*OK, ehlo=EHLO_UTF8),
        config=_config(smtputf8_enable=enable),
        envelope=envelope,
        message=UTF8_HEADER,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert _mail_line(record.sent()) == b"MAIL FROM:<a@example.org> BODY=8BITMIME" + mail


@pytest.mark.parameter("smtputf8_enable")
def test_smtputf8_disabled_refuses_a_non_ascii_envelope_before_mail() -> None:
    # Without SMTPUTF8 no server may get a UTF-8 address (RFC 6531 3.4): 5.6.7, nothing sent.
    envelope = Envelope("a@example.org", (Recipient("bé@example.com"),))
    report, record = go(
        smtp(*OK, ehlo=EHLO_UTF8), config=_config(smtputf8_enable="no"), envelope=envelope
    )
    assert statuses(report) == [("bounced", "5.6.7")]
    assert "smtputf8_enable = no" in report.recipients[0].diagnostic
    assert b"MAIL FROM" not in record.sent()
    enabled, record = go(smtp(*OK, ehlo=EHLO_UTF8), config=_config(), envelope=envelope)
    assert statuses(enabled) == [("sent", "2.0.0")]
    assert "RCPT TO:<bé@example.com>".encode() in record.sent()
