"""STARTTLS through the security policy, SMTPUTF8 and 8BITMIME checks (rules 3.10, 5.2-5.7, 6.1;
NS-03..NS-05)."""

from __future__ import annotations

import pytest
from support.world import DEFAULT_TLS, GREETING, Session, go, smtp, statuses

from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import StartTLS, TLSFailed

OK_TRANSACTION = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
EHLO_TLS = b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"


def test_ns03_encrypt_without_starttls_offered_defers_4_7_4_and_sends_no_mail() -> None:
    report, record = go(smtp(), tls_security_level="encrypt")
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.7.4")
    assert r.diagnostic == "TLS is required, but was not offered by host 192.0.2.1[192.0.2.1]"
    assert b"MAIL" not in record.sent()


def test_ns04_encrypt_starttls_refused_is_a_site_failure_without_mail() -> None:
    report, record = go(
        smtp(b"454 4.7.0 TLS not available\r\n", ehlo=EHLO_TLS), tls_security_level="encrypt"
    )
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.7.0")
    assert r.diagnostic.startswith("TLS is required, but host 192.0.2.1[192.0.2.1] refused")
    assert b"MAIL" not in record.sent()


def test_ns05_encrypt_handshake_failure_closes_without_quit() -> None:
    # rule 5.5: no more I/O after a failed handshake
    report, record = go(
        smtp(b"220 go ahead\r\n", TLSFailed("bad record mac"), ehlo=EHLO_TLS),
        tls_security_level="encrypt",
    )
    assert statuses(report) == [("deferred", "4.7.5")]
    assert record.sent().endswith(b"STARTTLS\r\n")
    assert record.channels[0].closed


def test_may_level_runs_starttls_then_ehlo_again() -> None:
    # rules 5.2, 5.7: a second EHLO after TLS; the report carries the TLS parameters
    report, record = go(
        Session(
            [
                GREETING,
                EHLO_TLS,
                b"220 go ahead\r\n",
                DEFAULT_TLS,
                b"250-mx\r\n250 PIPELINING\r\n",
                *OK_TRANSACTION,
            ]
        ),
        tls_security_level="may",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert len(record.of_type(StartTLS)) == 1
    assert record.sent().count(b"EHLO client.example\r\n") == 2
    assert report.tls is not None


def test_may_level_goes_on_in_plaintext_when_starttls_is_refused() -> None:
    # rule 5.3
    report, record = go(
        smtp(b"454 4.7.0 no\r\n", *OK_TRANSACTION, ehlo=EHLO_TLS), tls_security_level="may"
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert record.sent().count(b"EHLO") == 1


def test_none_level_never_sends_starttls() -> None:
    # rule 5.2
    _, record = go(smtp(*OK_TRANSACTION, ehlo=EHLO_TLS), tls_security_level="none")
    assert b"STARTTLS" not in record.sent()


def test_smtputf8_required_but_not_offered_bounces_5_6_7_at_the_final_server() -> None:
    # rule 3.10
    env = Envelope("a@example.org", (Recipient("bé@example.com"),))
    report, record = go(smtp(), envelope=env)
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("bounced", "5.6.7")
    assert b"MAIL" not in record.sent()


def test_smtputf8_offered_adds_the_mail_parameter() -> None:
    # rule 6.1 (5)
    env = Envelope("a@example.org", (Recipient("bé@example.com"),))
    _, record = go(
        smtp(*OK_TRANSACTION, ehlo=b"250-mx\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"),
        envelope=env,
    )
    assert b"MAIL FROM:<a@example.org> SMTPUTF8\r\n" in record.sent()


def test_8bit_message_gets_body_8bitmime_when_offered() -> None:
    # rule 6.1 (2)
    _, record = go(smtp(*OK_TRANSACTION), message="Subject: t\r\n\r\ncafé\r\n".encode())
    assert b"MAIL FROM:<a@example.org> BODY=8BITMIME\r\n" in record.sent()


@pytest.mark.parameter("smtp_tls_connection_reuse")
def test_tls_session_is_not_reused_for_the_next_batch() -> None:
    # rule 9.6: smtp_tls_connection_reuse=no; the second batch opens a new connection
    tls_server = [GREETING, EHLO_TLS, b"220 go\r\n", DEFAULT_TLS, b"250-mx\r\n250 PIPELINING\r\n"]
    report, record = go(
        Session([*tls_server, *OK_TRANSACTION]),
        Session([*tls_server, *OK_TRANSACTION]),
        recipients=("a@x", "b@x"),
        destination_recipient_limit=1,
        tls_connection_reuse=False,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 2
    assert b"RSET" not in record.sent()


@pytest.mark.parameter("smtp_tls_connection_reuse")
def test_tls_connection_reuse_keeps_a_tls_session_for_the_next_batch() -> None:
    # rule 9.6: with smtp_tls_connection_reuse=yes a TLS session is cached like any other:
    # the second batch follows an RSET probe, with no second handshake
    tls_server = [GREETING, EHLO_TLS, b"220 go\r\n", DEFAULT_TLS, b"250-mx\r\n250 PIPELINING\r\n"]
    report, record = go(
        Session([*tls_server, *OK_TRANSACTION, b"250 reset\r\n", *OK_TRANSACTION]),
        recipients=("a@x", "b@x"),
        destination_recipient_limit=1,
        tls_connection_reuse=True,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 1 and len(record.of_type(StartTLS)) == 1
    assert record.sent().count(b"RSET\r\n") == 1
    assert all(r.tls is not None for r in report.recipients)


def test_starttls_offered_in_the_first_ehlo_only_is_used_once_and_not_missed_after() -> None:
    # Rule 4.3: the post-TLS EHLO drops STARTTLS (as every server does); the client neither
    # asks again nor treats the missing keyword as a downgrade, since TLS is already up.
    report, record = go(
        Session(
            [
                *(GREETING, EHLO_TLS, b"220 go\r\n", DEFAULT_TLS),
                b"250-mx\r\n250 PIPELINING\r\n",
                *OK_TRANSACTION,
            ]
        ),
        tls_security_level="encrypt",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert record.sent().count(b"STARTTLS") == 1
    assert report.recipients[0].tls is not None


def test_starttls_stripped_from_a_reconnect_is_refused_at_encrypt_but_not_at_may() -> None:
    # A man in the middle strips STARTTLS on the next connection: encrypt defers, may goes on
    # in plaintext (opportunistic TLS is downgradable by design, rule 5.1).
    stripped = Session([GREETING, b"250-mx.example\r\n250 PIPELINING\r\n", *OK_TRANSACTION])
    report, record = go(stripped, tls_security_level="encrypt")
    assert statuses(report) == [("deferred", "4.7.4")]
    assert b"MAIL" not in record.sent()
    stripped = Session([GREETING, b"250-mx.example\r\n250 PIPELINING\r\n", *OK_TRANSACTION])
    report, _ = go(stripped, tls_security_level="may")
    assert statuses(report) == [("sent", "2.0.0")]
    assert report.recipients[0].tls is None


def test_starttls_request_carries_policy_parameters() -> None:
    # Mandatory levels use tls_mandatory_protocols (TLS 1.2 and up) and no verification at
    # encrypt; may uses Postfix's opportunistic floor; SNI is the server name.
    _, record = go(
        Session([GREETING, EHLO_TLS, b"220 go\r\n", DEFAULT_TLS, b"250 mx\r\n", *OK_TRANSACTION]),
        tls_security_level="encrypt",
        tls_CAfile="/nonexistent/ca.pem",
    )
    (request,) = record.of_type(StartTLS)
    assert (request.parameters.verify, request.parameters.min_version) == (False, "TLSv1.2")
    assert request.parameters.ca_file == "/nonexistent/ca.pem"
    assert request.server_hostname is None  # an address literal is never sent as SNI
    _, record = go(
        Session([GREETING, EHLO_TLS, b"220 go\r\n", DEFAULT_TLS, b"250 mx\r\n", *OK_TRANSACTION]),
        tls_security_level="may",
    )
    (request,) = record.of_type(StartTLS)
    assert request.parameters.min_version == "TLSv1"


def test_lmtp_over_unix_socket_never_starts_tls_at_may() -> None:
    from smtpproto.config import ClientConfig
    from smtpproto.engine.security import default_policy

    policy = default_policy(
        ClientConfig(lmtp=True, tls_security_level="may"), unix=True, nexthop="x"
    )
    assert policy.lookup().level == "none"
