"""Every NS-* and AU-* case of docs/reference/security-cases.md as a named scripted dialogue.

The engine runs against scripted servers (``tests/support/world.py``); cases tagged
``[conn]`` or ``[wire]`` in the catalogue are checked where they bite, at the connection or
SASL layer, and again through the engine when the engine decides the outcome. The
``[adapter]`` halves of NS-02b and NS-14 (real sockets, trustme certificates) are in
test_adapters.py.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import pytest
from support.world import (
    ADDR,
    DEFAULT_TLS,
    DEST,
    GREETING,
    Clock,
    Record,
    Rng,
    Script,
    Session,
    go,
    run,
    statuses,
)
from test_sasl import (
    SHA256_CLIENT_FINAL,
    SHA256_NONCE,
    SHA256_SERVER_FINAL,
    SHA256_SERVER_FIRST,
    ScramServer,
)

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.commands import Auth, Ehlo, Mail, Rcpt, StartTLS
from smtpproto.config import ClientConfig
from smtpproto.connection import ClientConnection
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.events import CommandReply
from smtpproto.report import DeliveryReport
from smtpproto.requests import IOTimeout, MXRecord, TLSFailed, TLSInfo
from smtpproto.requests import StartTLS as StartTLSRequest
from smtpproto.sasl import SaslCredentials, create_mechanism

USER, PASSWORD = "user", "S3cr3t-π"
PLAIN_IR = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode())
# These tests exercise the AUTH exchange over scripted, unverified TLS: they opt in to PLAIN
# and LOGIN there by name. The default refuses them (AU-20: tests/test_hardening.py).
CREDENTIALS = {
    "sasl_auth_enable": True,
    "sasl_password_maps": {DEST: f"{USER}:{PASSWORD}"},
    "sasl_tls_security_options": frozenset({"noanonymous"}),
}

EHLO_TLS = b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
EHLO_TLS_AUTH = b"250-mx.example\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n"
EHLO_AUTH = b"250-mx.example\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"
POST_TLS = b"250-mx.example\r\n250 PIPELINING\r\n"
POST_TLS_AUTH = b"250-mx.example\r\n250-PIPELINING\r\n250 AUTH PLAIN LOGIN\r\n"
OK = (b"250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n")
TLS_UP = (b"220 2.0.0 go ahead\r\n", DEFAULT_TLS)

MX_DNS: Mapping[tuple[str, str], Any] = {
    ("example.com", "MX"): (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")),
    ("mx1.example.com", "A"): ("192.0.2.1",),
    ("mx1.example.com", "AAAA"): (),
    ("mx2.example.com", "A"): ("192.0.2.2",),
    ("mx2.example.com", "AAAA"): (),
}
NAMED_DNS: Mapping[tuple[str, str], Any] = {
    ("mx.example.com", "A"): (ADDR,),
    ("mx.example.com", "AAAA"): (),
}


def cert(*names: str) -> dict[str, object]:
    """A getpeercert() dictionary naming `names` as DNS subjectAltNames."""
    return {"subjectAltName": tuple(("DNS", n) for n in names)}


def tls(*, verified: bool = False, names: tuple[str, ...] = ()) -> TLSInfo:
    return TLSInfo(
        "TLSv1.3", "TLS_AES_256_GCM_SHA384", verified, cert(*names) if verified else None
    )


def only(report: DeliveryReport) -> tuple[str, str, str]:
    (r,) = report.recipients
    return r.status, r.dsn, r.diagnostic


def nothing_after_hello(record: Record) -> None:
    """Fail closed: neither MAIL nor AUTH nor any message byte was written."""
    sent = record.sent()
    for verb in (b"MAIL", b"AUTH", b"RCPT", b"DATA", b"hello"):
        assert verb not in sent


# -- NS: STARTTLS --------------------------------------------------------------------------

INJECTIONS = {
    "same-read": b"220 Ready to start TLS\r\n250-example.org\r\n250 AUTH LOGIN\r\n",
    "fake-session": b"220 go\r\n235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n",
    "fragment": b"220 ok\r\n250-AUTH PLA",
    "multi-line-220": b"220-Ready\r\n220 go\r\n250 AUTH PLAIN\r\n",
}


@pytest.mark.parametrize("level", ["may", "encrypt"])
@pytest.mark.parametrize("injected", list(INJECTIONS.values()), ids=list(INJECTIONS))
def test_ns01_bytes_after_starttls_220_are_an_error_never_parsed_after_tls(
    level: str, injected: bytes
) -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS_AUTH, injected]), tls_security_level=level, **CREDENTIALS
    )
    status, dsn, diagnostic = only(report)
    assert (status, dsn) == ("deferred", "4.5.0")
    assert "response injection" in diagnostic
    assert not record.of_type(StartTLSRequest)  # no handshake on a poisoned stream
    nothing_after_hello(record)


def test_ns01a_injection_in_a_later_read_before_the_handshake_is_an_error() -> None:
    conn = ClientConnection()
    conn.receive_data(GREETING)
    conn.next_event()
    conn.send(Ehlo("c"))
    conn.receive_data(EHLO_TLS)
    conn.next_event()
    conn.send(StartTLS())
    conn.receive_data(b"220 go\r\n")
    assert isinstance(conn.next_event(), CommandReply)
    conn.receive_data(b"250 AUTH PLAIN\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.tls_established()


def test_ns01e_a_clean_220_leads_to_the_handshake_with_nothing_left_over() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS, *OK]), tls_security_level="encrypt"
    )
    assert statuses(report) == [("sent", "2.0.0")]
    (request,) = record.of_type(StartTLSRequest)
    assert request.parameters.verify is False
    assert record.sent().count(b"EHLO client.example\r\n") == 2


def test_ns02_silent_server_after_tls_times_out_and_the_next_mx_is_tried() -> None:
    report, record = go(
        destination="example.com",
        dns=MX_DNS,
        servers={
            "192.0.2.1": [Session([GREETING, EHLO_TLS, *TLS_UP, IOTimeout("helo timeout")])],
            "192.0.2.2": [Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS, *OK])],
        },
        tls_security_level="encrypt",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    first = record.sent(record.channels[0])
    assert first.endswith(b"STARTTLS\r\nEHLO client.example\r\n")  # nothing after EHLO
    assert report.recipients[0].relay == "mx2.example.com[192.0.2.2]:25"


def test_ns02b_injection_that_reaches_the_tls_layer_fails_the_handshake() -> None:
    # The bytes arrived after the 220 was consumed: the adapter hands them to TLS, which fails.
    report, record = go(
        Session([GREETING, EHLO_TLS, b"220 go\r\n", TLSFailed("wrong version number")]),
        tls_security_level="encrypt",
    )
    assert only(report)[:2] == ("deferred", "4.7.5")
    assert record.channels[0].closed
    assert record.sent().endswith(b"STARTTLS\r\n")


@pytest.mark.parametrize("level", ["encrypt", "verify", "secure"])
def test_ns03_starttls_not_offered_at_required_levels_defers_4_7_4(level: str) -> None:
    report, record = go(
        Session([GREETING, EHLO_AUTH]),
        destination="[mx.example.com]",
        dns=NAMED_DNS,
        tls_security_level=level,
        sasl_security_options=frozenset(),  # even a plaintext opt-in never helps here
        **{**CREDENTIALS, "sasl_password_maps": {"[mx.example.com]": "u:p"}},
    )
    status, dsn, diagnostic = only(report)
    assert (status, dsn) == ("deferred", "4.7.4")
    assert diagnostic == "TLS is required, but was not offered by host mx.example.com[192.0.2.1]"
    nothing_after_hello(record)
    assert record.sent().endswith(b"QUIT\r\n")


def test_ns04_502_to_starttls_defers_at_encrypt_and_drops_auth_at_may() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS_AUTH, b"502 5.5.1 not implemented\r\n"]),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    status, dsn, diagnostic = only(report)
    assert (status, dsn) == ("deferred", "4.5.1")
    assert "refused to start TLS: 502 5.5.1 not implemented" in diagnostic
    nothing_after_hello(record)
    report, record = go(
        Session([GREETING, EHLO_TLS_AUTH, b"502 5.5.1 not implemented\r\n", *OK]),
        tls_security_level="may",
        sasl_security_options=frozenset(),
        **CREDENTIALS,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH" not in record.sent()


def test_ns05_454_to_starttls_defers_at_encrypt_after_trying_the_next_mx() -> None:
    refusing = Session([GREETING, EHLO_TLS, b"454 4.7.0 TLS not available\r\n"])
    report, record = go(
        destination="example.com",
        dns=MX_DNS,
        servers={"192.0.2.1": [refusing], "192.0.2.2": [refusing]},
        tls_security_level="encrypt",
    )
    assert only(report)[:2] == ("deferred", "4.7.0")
    assert len(record.channels) == 2  # next MX tried
    assert report.recipients[0].relay == "mx2.example.com[192.0.2.2]:25"
    nothing_after_hello(record)


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_ns06_354_to_starttls_is_a_protocol_error_never_data(level: str) -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, b"354 do something else\r\n"]), tls_security_level=level
    )
    assert only(report)[:2] == ("deferred", "4.5.0")
    assert not record.of_type(StartTLSRequest)
    nothing_after_hello(record)


def test_ns07_220_to_starttls_starts_the_handshake_whatever_its_text() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, b"220 EHLO client!\r\n", DEFAULT_TLS, POST_TLS, *OK]),
        tls_security_level="encrypt",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert len(record.of_type(StartTLSRequest)) == 1


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_ns07_another_2xx_to_starttls_is_never_a_handshake_nor_plaintext(level: str) -> None:
    # NS-07 lets us pick: RFC 3207 4 names only 220 (Postfix takes any 2xx). A 250 is a reply
    # to something else; the session ends without a handshake and without plaintext mail.
    report, record = go(
        Session([GREETING, EHLO_TLS, b"250 go\r\n", DEFAULT_TLS, POST_TLS, *OK]),
        tls_security_level=level,
    )
    assert only(report)[:2] == ("deferred", "4.5.0")
    assert not record.of_type(StartTLSRequest)
    nothing_after_hello(record)


@pytest.mark.parametrize(
    "reply",
    [
        b"221 bye\r\n",
        b"421 4.3.2 bye\r\n",
        b"500 what\r\n",
        b"501 no\r\n",
        b"530 x\r\n",
        b"554 no\r\n",
    ],
)
@pytest.mark.parametrize("level", ["encrypt", "verify"])
def test_ns07_refusals_at_required_levels_defer_never_plaintext(reply: bytes, level: str) -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, reply, DEFAULT_TLS]),
        destination="[mx.example.com]",
        dns=NAMED_DNS,
        tls_security_level=level,
    )
    status, dsn, _ = only(report)
    assert status == "deferred" and dsn.startswith("4.")
    nothing_after_hello(record)


def test_ns07_421_at_may_ends_the_session() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, b"421 4.3.2 shutting down\r\n"]), tls_security_level="may"
    )
    assert only(report)[:2] == ("deferred", "4.3.2")
    nothing_after_hello(record)


def test_ns08_non_esmtp_server_defers_at_encrypt_and_goes_plain_at_may() -> None:
    helo_only = [GREETING, b"502 5.5.2 what\r\n", b"250 mx\r\n"]
    report, record = go(Session(helo_only), tls_security_level="encrypt", **CREDENTIALS)
    assert only(report)[:2] == ("deferred", "4.7.4")
    nothing_after_hello(record)
    plain = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
    report, record = go(Session([*helo_only, *plain]), tls_security_level="may", **CREDENTIALS)
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH" not in record.sent() and b"HELO client.example" in record.sent()


EAST_X1 = (
    b"250-mx.example\r\n250-PIPELINING\r\n250 AUTH 0SNET ANONYMOUS PLAIN LOGIN XOAUTH2 NTLM "
    b"GSSAPI LOGIN_MYSQL OAUTHBEARER KERBEROS_V4 DIGEST-MD5 OTP SKEY X-JUNK\r\n"
)


@pytest.mark.parametrize("mechanism_filter", [(), ("plain", "login", "xoauth2", "anonymous")])
def test_ns09_east_x1_mechanism_list_in_plaintext_gets_no_auth(
    mechanism_filter: tuple[str, ...],
) -> None:
    report, record = go(
        Session([GREETING, EAST_X1]),
        tls_security_level="may",
        sasl_mechanism_filter=mechanism_filter,
        **CREDENTIALS,
    )
    status, dsn, diagnostic = only(report)
    assert (status, dsn) == ("deferred", "4.7.0")
    assert "offered no compatible authentication mechanisms" in diagnostic
    nothing_after_hello(record)
    assert PASSWORD.encode() not in record.sent()


def scram_steps() -> list[bytes]:
    """The RFC 7677 exchange, server side, for user/pencil with the vector's nonce."""
    return [
        b"334 " + base64.b64encode(SHA256_SERVER_FIRST) + b"\r\n",
        b"334 " + base64.b64encode(SHA256_SERVER_FINAL) + b"\r\n",
        b"235 2.7.0 Authentication successful\r\n",
    ]


def test_ns10_only_post_tls_capabilities_count() -> None:
    pre = (
        b"250-mx.example\r\n250-STARTTLS\r\n250-PIPELINING\r\n250-SIZE 10\r\n250-8BITMIME\r\n"
        b"250 AUTH PLAIN\r\n"
    )
    post = b"250-mx\r\n250 AUTH SCRAM-SHA-256\r\n"
    steps = [b"250 2.1.0 ok\r\n", b"250 2.1.5 ok\r\n", b"354 go\r\n", b"250 2.0.0 ok\r\n"]
    report, record = go(
        Session([GREETING, pre, *TLS_UP, post, *scram_steps(), *steps]),
        tls_security_level="encrypt",
        nonce=SHA256_NONCE,
        sasl_auth_enable=True,
        sasl_password_maps={DEST: "user:pencil"},
        message=b"Subject: longer than ten octets\r\n\r\nhello\r\n",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    sent = record.sent()
    assert b"AUTH SCRAM-SHA-256 " in sent and b"AUTH PLAIN" not in sent
    assert b"SIZE=" not in sent and b"BODY=8BITMIME" not in sent
    flights = record.flights()
    assert b"MAIL FROM:<a@example.org>\r\n" in flights  # alone: no PIPELINING after TLS


def test_ns10_commands_before_the_new_ehlo_are_refused() -> None:
    conn = ClientConnection()
    conn.receive_data(GREETING)
    conn.next_event()
    conn.send(Ehlo("c"))
    conn.receive_data(EHLO_TLS)
    conn.next_event()
    conn.send(StartTLS())
    conn.receive_data(b"220 go\r\n")
    conn.next_event()
    conn.tls_established()
    with pytest.raises(LocalProtocolError):
        conn.send(Mail("a@example.org"))


def test_ns11_starttls_offered_again_after_tls_is_ignored() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, EHLO_TLS, *OK]), tls_security_level="encrypt"
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert len(record.of_type(StartTLSRequest)) == 1
    assert record.sent().count(b"STARTTLS") == 1


def test_ns11_second_starttls_is_a_local_error() -> None:
    conn = ClientConnection()
    conn.receive_data(GREETING)
    conn.next_event()
    conn.send(Ehlo("c"))
    conn.receive_data(EHLO_TLS)
    conn.next_event()
    conn.send(StartTLS())
    conn.receive_data(b"220 go\r\n")
    conn.next_event()
    conn.tls_established()
    conn.send(Ehlo("c"))
    conn.receive_data(EHLO_TLS)
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(StartTLS())


def test_ns12_nothing_is_pipelined_with_starttls() -> None:
    _, record = go(Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS, *OK]), tls_security_level="may")
    assert record.flights()[:3] == [
        b"EHLO client.example\r\n",
        b"STARTTLS\r\n",
        b"EHLO client.example\r\n",
    ]


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_ns13_handshake_failure_closes_without_quit_and_tries_the_next_mx(level: str) -> None:
    failing = Session([GREETING, EHLO_TLS, b"220 go\r\n", TLSFailed("alert handshake failure")])
    report, record = go(
        destination="example.com",
        dns=MX_DNS,
        servers={
            "192.0.2.1": [failing, Session([GREETING, EHLO_TLS, *OK])],
            "192.0.2.2": [Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS, *OK])],
        },
        tls_security_level=level,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    first = record.channels[0]
    assert first.closed and record.sent(first).endswith(b"STARTTLS\r\n")
    # Never a plaintext retry on the same address (rule 5.5: a fresh message).
    assert [c.address for c in record.channels] == ["192.0.2.1", "192.0.2.2"]


def test_ns13_handshake_failure_at_the_last_mx_defers_4_7_5() -> None:
    report, _ = go(
        Session([GREETING, EHLO_TLS, b"220 go\r\n", TLSFailed("bad record mac")]),
        tls_security_level="may",
    )
    assert only(report) == ("deferred", "4.7.5", "Cannot start TLS: handshake failure")


def test_a_chain_the_adapter_could_not_verify_is_not_trusted_not_a_handshake_failure() -> None:
    # The adapters verify the chain inside the handshake (TLSParameters.verify), so an
    # untrusted server fails there; the result names the cause as Postfix does.
    untrusted = TLSFailed("certificate verify failed", certificate=True)
    report, _ = go(
        Session([GREETING, EHLO_TLS, b"220 go\r\n", untrusted]), tls_security_level="verify"
    )
    assert only(report) == ("deferred", "4.7.5", "Server certificate not trusted")


CERT_CASES = [
    # level, TLSInfo, outcome, diagnostic or trust word
    ("may", tls(), "sent", "Untrusted"),
    ("encrypt", tls(), "sent", "Untrusted"),
    ("verify", tls(), "deferred", "Server certificate not trusted"),
    ("verify", tls(verified=True, names=("other.example.net",)), "deferred", "not verified"),
    ("verify", tls(verified=True, names=("mx.example.com",)), "sent", "Verified"),
    ("verify", tls(verified=True, names=("*.example.com",)), "sent", "Verified"),
    ("secure", tls(verified=True, names=("mx.example.net",)), "deferred", "not verified"),
    ("secure", tls(verified=True, names=("mx.example.com",)), "sent", "Verified"),
    ("secure", tls(verified=True, names=("example.com",)), "sent", "Verified"),
    ("secure", tls(verified=True, names=("relay.example.com",)), "deferred", "not verified"),
]


@pytest.mark.parametrize(("level", "info", "outcome", "expected"), CERT_CASES)
def test_ns14_certificate_checks_per_level(
    level: str, info: TLSInfo, outcome: str, expected: str
) -> None:
    # Next hop example.com via its MX mx.example.com: "hostname" is mx.example.com (verify),
    # "nexthop, dot-nexthop" is example.com and its sub-domains (secure)... except that
    # relay.example.com is a sub-domain, so dot-nexthop accepts it: see the next test.
    dns = {
        ("example.com", "MX"): (MXRecord(10, "mx.example.com"),),
        **NAMED_DNS,
    }
    report, record = go(
        Session([GREETING, EHLO_TLS, b"220 go\r\n", info, POST_TLS, *OK]),
        destination="example.com",
        dns=dns,
        tls_security_level=level,
    )
    (request,) = record.of_type(StartTLSRequest)
    assert request.parameters.verify is (level in ("verify", "secure"))
    assert request.server_hostname == "mx.example.com"
    (r,) = report.recipients
    if outcome == "sent" and expected:
        assert r.status == "sent"
        assert r.tls is not None and r.tls.trust == expected
        assert any(line.startswith(f"{expected} TLS connection") for line in report.transcript)
        return
    if level == "secure" and info.peer_certificate == cert("relay.example.com"):
        # dot-nexthop: any sub-domain of the next hop is accepted.
        assert r.status == "sent" and r.tls is not None and r.tls.trust == "Verified"
        return
    assert (r.status, r.dsn) == ("deferred", "4.7.5")
    assert expected in r.diagnostic
    expected_trust = "Untrusted" if "not trusted" in expected else "Trusted"
    assert r.tls is not None and r.tls.trust == expected_trust  # TLS was up, unverified
    # Rule 5.6: the TLS session works, so QUIT goes over it; nothing else does.
    assert record.sent().endswith(b"STARTTLS\r\nQUIT\r\n")


def test_ns14_secure_with_explicit_match_from_the_policy_map() -> None:
    report, _ = go(
        Session([GREETING, EHLO_TLS, b"220 go\r\n", tls(verified=True, names=("mx.example.com",))]),
        destination="[mx.example.com]",
        dns=NAMED_DNS,
        tls_security_level="may",
        tls_policy_maps={"[mx.example.com]": "secure match=other.example.net"},
    )
    assert only(report)[:2] == ("deferred", "4.7.5")


def test_ns15_post_tls_ehlo_5xx_falls_back_to_helo_without_auth() -> None:
    plain = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
    report, record = go(
        Session([GREETING, EHLO_TLS_AUTH, *TLS_UP, b"500 no EHLO\r\n", b"250 mx\r\n", *plain]),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH" not in record.sent()
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, b"421 4.3.2 bye\r\n"]), tls_security_level="encrypt"
    )
    assert only(report)[:2] == ("deferred", "4.3.2")
    assert b"HELO" not in record.sent()


@pytest.mark.parametrize(
    ("greeting", "expected"),
    [
        (b"220 mx ESMTP\r\n", ("sent", "2.0.0")),
        (b"421 4.3.2 busy\r\n", ("deferred", "4.3.2")),
        (b"554 5.7.1 go away\r\n", ("deferred", "4.7.1")),
    ],
)
def test_ns16_greeting_matrix(greeting: bytes, expected: tuple[str, str]) -> None:
    report, record = go(Session([greeting, EHLO_TLS, *TLS_UP, POST_TLS, *OK]))
    assert statuses(report) == [expected]
    if expected[0] != "sent":
        nothing_after_hello(record)
        assert b"EHLO" not in record.sent()  # nothing written before a good greeting


def test_ns16_554_greeting_tries_the_next_mx_and_bounces_only_without_skipping() -> None:
    report, _ = go(
        destination="example.com",
        dns=MX_DNS,
        servers={
            "192.0.2.1": [Session([b"554 5.7.1 no\r\n"])],
            "192.0.2.2": [Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS, *OK])],
        },
    )
    assert statuses(report) == [("sent", "2.0.0")]
    report, _ = go(Session([b"554 5.7.1 no\r\n"]), skip_5xx_greeting=False)
    assert statuses(report) == [("bounced", "5.7.1")]


@pytest.mark.parametrize("code", [500, 501, 502, 504, 530, 550])
def test_ns17_ehlo_refusals_fall_back_to_helo(code: int) -> None:
    plain = [b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
    report, record = go(
        Session([GREETING, f"{code} no\r\n".encode(), b"250 mx\r\n", *plain]),
        tls_security_level="may",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"HELO client.example\r\n" in record.sent()


def test_ns17_ehlo_421_closes_and_354_is_a_protocol_error() -> None:
    report, record = go(Session([GREETING, b"421 4.3.2 bye\r\n"]))
    assert only(report)[:2] == ("deferred", "4.3.2")
    assert b"HELO" not in record.sent()
    report, record = go(Session([GREETING, b"354 what\r\n"]))
    assert only(report)[0] == "deferred"
    nothing_after_hello(record)


@pytest.mark.parametrize("code", [421, 500, 501, 530, 554])
def test_ns18_helo_after_ehlo_500_proceeds_only_on_2xx(code: int) -> None:
    report, record = go(Session([GREETING, b"500 no\r\n", f"{code} 4.0.0 no\r\n".encode()]))
    assert only(report)[0] in ("deferred", "bounced")
    nothing_after_hello(record)


@pytest.mark.parametrize("quit_reply", [b"500 what\r\n", b"", b"250 odd\r\n"])
def test_ns19_odd_quit_replies_never_change_the_outcome(quit_reply: bytes) -> None:
    steps = [GREETING, EHLO_TLS, *TLS_UP, POST_TLS, *OK, quit_reply]
    report, record = go(Session(steps), skip_quit_response=False)
    assert statuses(report) == [("sent", "2.0.0")]
    assert record.channels[0].closed


def test_ns19_odd_rset_reply_drops_the_cached_session() -> None:
    env = Envelope("a@example.org", (Recipient("a@x.example"), Recipient("b@x.example")))
    plain = [GREETING, b"250-mx\r\n250 PIPELINING\r\n", *OK]
    script = Script(servers={ADDR: [Session([*plain, b"500 what\r\n"]), Session(plain)]})
    cfg = ClientConfig(
        helo_name="client.example", tls_security_level="none", destination_recipient_limit=1
    )
    report, record = run(deliver(DEST, env, b"x\r\n", config=cfg, clock=Clock(), rng=Rng()), script)
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert b"RSET\r\n" in record.sent(record.channels[0])
    assert len(record.channels) == 2 and record.channels[0].closed


def test_ns20_results_of_a_tls_session_carry_post_tls_replies_only() -> None:
    pre = b"250-evil.example pre-TLS text\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
    report, _ = go(Session([GREETING, pre, *TLS_UP, POST_TLS, *OK]), tls_security_level="encrypt")
    (r,) = report.recipients
    assert r.reply is not None and str(r.reply) == "250 2.0.0 queued"
    assert r.tls is not None and (r.tls.trust, r.tls.version) == ("Untrusted", "TLSv1.3")
    marker = next(i for i, t in enumerate(report.transcript) if "TLS connection established" in t)
    assert any("pre-TLS text" in t for t in report.transcript[:marker])
    assert not any("pre-TLS text" in t for t in report.transcript[marker:])


# -- AU: SASL AUTH -------------------------------------------------------------------------


def test_au01_plaintext_session_never_sends_credentials_by_default() -> None:
    report, record = go(Session([GREETING, EHLO_AUTH]), tls_security_level="may", **CREDENTIALS)
    status, dsn, diagnostic = only(report)
    assert (status, dsn) == ("deferred", "4.7.0")
    assert "offered no compatible authentication mechanisms" in diagnostic
    nothing_after_hello(record)
    assert PLAIN_IR not in record.sent()


def test_au02_plain_under_tls_in_one_line_then_delivery() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, b"235 2.7.0 ok\r\n", *OK]),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH PLAIN " + PLAIN_IR + b"\r\n" in record.flights()
    assert "Out: AUTH PLAIN [redacted]" in report.transcript


@pytest.mark.parametrize("options", [frozenset(), frozenset({"noanonymous"})])
def test_au03_auth_learned_in_plaintext_is_dropped_when_starttls_is_refused(
    options: frozenset[str],
) -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS_AUTH, b"454 4.7.0 TLS not available\r\n", *OK]),
        tls_security_level="may",
        sasl_security_options=options,  # even with plaintext mechanisms allowed
        **CREDENTIALS,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH" not in record.sent()
    assert record.sent().count(b"EHLO") == 1


def test_au04_explicit_opt_in_allows_plain_in_cleartext() -> None:
    report, record = go(
        Session([GREETING, EHLO_AUTH, b"235 2.7.0 ok\r\n", *OK]),
        tls_security_level="none",
        sasl_security_options=frozenset({"noanonymous"}),
        **CREDENTIALS,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH PLAIN " + PLAIN_IR + b"\r\n" in record.sent()


def test_au05_decision_follows_the_channel_not_the_server_claims() -> None:
    claims = Session([b"220 localhost ESMTP secure\r\n", b"250-localhost\r\n250 AUTH PLAIN\r\n"])
    report, record = go(
        destination="[127.0.0.1]",
        servers={"127.0.0.1": [claims]},
        tls_security_level="none",
        sasl_auth_enable=True,
        sasl_password_maps={"[127.0.0.1]": f"{USER}:{PASSWORD}"},
    )
    assert only(report)[:2] == ("deferred", "4.7.0")
    assert b"AUTH" not in record.sent()


def test_au06_initial_response_too_long_for_the_line_goes_after_334() -> None:
    long_password = "p" * 600
    ir = base64.b64encode(f"\0{USER}\0{long_password}".encode())
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, b"334 \r\n", b"235 ok\r\n", *OK]),
        tls_security_level="encrypt",
        sasl_auth_enable=True,
        sasl_password_maps={DEST: f"{USER}:{long_password}"},
        sasl_tls_security_options=frozenset({"noanonymous"}),  # opt in (AU-20)
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH PLAIN\r\n" in record.flights()
    assert ir + b"\r\n" in record.flights()
    xoauth2 = create_mechanism("XOAUTH2", SaslCredentials("u", token="t" * 2000))
    assert xoauth2.initial_response(max_line=512) is None
    assert Auth("XOAUTH2").encode() == b"AUTH XOAUTH2\r\n"
    assert Auth("EXTERNAL", b"").encode() == b"AUTH EXTERNAL =\r\n"


@pytest.mark.parametrize(
    "challenge", [b"Password:", b"====", b"AAA=BBB", b"=AAA", b"ab cd", b"***"]
)
def test_au07_garbage_challenge_is_cancelled_with_star(challenge: bytes) -> None:
    report, record = go(
        Session(
            [
                GREETING,
                EHLO_TLS,
                *TLS_UP,
                b"250-mx\r\n250 AUTH LOGIN\r\n",
                b"334 " + challenge + b"\r\n",
                b"501 5.5.2 cancelled\r\n",
            ]
        ),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert only(report)[:2] == ("deferred", "4.7.0")
    flights = record.flights()
    assert flights[flights.index(b"AUTH LOGIN\r\n") + 1] == b"*\r\n"
    assert base64.b64encode(USER.encode()) not in record.sent()
    assert b"MAIL" not in record.sent()


def test_au08_plain_answered_by_a_second_334_is_cancelled() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, b"334 \r\n", b"501 cancelled\r\n"]),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert only(report)[:2] == ("deferred", "4.7.0")
    assert record.flights()[-2:] == [b"*\r\n", b"QUIT\r\n"]


def test_au08_endless_challenges_are_bounded() -> None:
    endless = [b"334 VXNlcm5hbWU6\r\n"] * 50
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, b"250-mx\r\n250 AUTH LOGIN\r\n", *endless]),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert only(report)[:2] == ("deferred", "4.7.0")
    answers = record.sent().split(b"AUTH LOGIN\r\n", 1)[1]
    assert answers.count(b"\r\n") == 3  # user, password, "*"; no QUIT into an endless AUTH
    assert answers.endswith(b"*\r\n") and record.channels[0].closed


def test_au09_no_star_after_a_final_reply() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, b"535 5.7.8 bad credentials\r\n"]),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert only(report)[:2] == ("deferred", "4.7.8")
    assert b"*\r\n" not in record.sent()
    assert record.flights()[-1] == b"QUIT\r\n"


@pytest.mark.parametrize(
    ("reply", "dsn"),
    [
        (b"535 5.7.8 bad credentials\r\n", "4.7.8"),
        (b"454 4.7.0 try later\r\n", "4.7.0"),
        (b"534 5.7.9 mechanism too weak\r\n", "4.7.9"),
        (b"538 5.7.11 encryption required\r\n", "4.7.11"),
        (b"503 5.5.1 already authenticated\r\n", "4.5.1"),
    ],
)
def test_au10_auth_failures_try_the_next_mx_then_defer_never_bounce(reply: bytes, dsn: str) -> None:
    failing = Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, reply])
    maps = {"example.com": f"{USER}:{PASSWORD}"}
    report, record = go(
        destination="example.com",
        dns=MX_DNS,
        servers={"192.0.2.1": [failing], "192.0.2.2": [failing]},
        tls_security_level="encrypt",
        sasl_auth_enable=True,
        sasl_password_maps=maps,
        sasl_tls_security_options=frozenset({"noanonymous"}),  # opt in (AU-20)
    )
    status, got, diagnostic = only(report)
    assert (status, got) == ("deferred", dsn)
    assert diagnostic.startswith("SASL authentication failed; server mx2.example.com[192.0.2.2]")
    assert len(record.channels) == 2
    assert b"MAIL" not in record.sent()


def test_au11_login_answers_by_position_not_by_prompt() -> None:
    prompts = [b"334 " + base64.b64encode(b"Who goes there?") + b"\r\n", b"334 QUFBQQ==\r\n"]
    report, record = go(
        Session(
            [
                GREETING,
                EHLO_TLS,
                *TLS_UP,
                b"250-mx\r\n250-PIPELINING\r\n250 AUTH LOGIN\r\n",
                *prompts,
                b"235 ok\r\n",
                *OK,
            ]
        ),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    flights = record.flights()
    start = flights.index(b"AUTH LOGIN\r\n")
    assert flights[start + 1 : start + 3] == [
        base64.b64encode(USER.encode()) + b"\r\n",
        base64.b64encode(PASSWORD.encode()) + b"\r\n",
    ]


def test_au11_a_third_login_challenge_is_cancelled() -> None:
    report, record = go(
        Session(
            [
                *(GREETING, EHLO_TLS, *TLS_UP, b"250-mx\r\n250 AUTH LOGIN\r\n"),
                *(b"334 VXNlcm5hbWU6\r\n", b"334 UGFzc3dvcmQ6\r\n", b"334 UGFzc3dvcmQ6\r\n"),
                b"501 cancelled\r\n",
            ]
        ),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    assert only(report)[:2] == ("deferred", "4.7.0")
    assert record.flights()[-2:] == [b"*\r\n", b"QUIT\r\n"]


def test_au12_cram_md5_rfc2195_vector_on_the_wire() -> None:
    challenge = base64.b64encode(b"<1896.697170952@postoffice.reston.mci.net>")
    report, record = go(
        Session(
            [
                GREETING,
                b"250-mx\r\n250-PIPELINING\r\n250 AUTH CRAM-MD5\r\n",
                b"334 " + challenge + b"\r\n",
                b"235 ok\r\n",
                *OK,
            ]
        ),
        tls_security_level="none",  # CRAM-MD5 sends no password: allowed in clear by default
        sasl_auth_enable=True,
        sasl_password_maps={DEST: "tim:tanstaaftanstaaf"},
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n" in record.flights()


def scram_session(*steps: bytes) -> Session:
    post = b"250-mx\r\n250-PIPELINING\r\n250 AUTH SCRAM-SHA-256 PLAIN\r\n"
    return Session([GREETING, EHLO_TLS, *TLS_UP, post, *steps])


def scram_go(*steps: bytes) -> tuple[DeliveryReport, Record]:
    return go(
        scram_session(*steps),
        tls_security_level="encrypt",
        nonce=SHA256_NONCE,
        sasl_auth_enable=True,
        sasl_password_maps={DEST: "user:pencil"},
    )


def test_au13_scram_sha256_rfc7677_vector_byte_exact() -> None:
    report, record = scram_go(*scram_steps(), *OK)
    assert statuses(report) == [("sent", "2.0.0")]
    flights = record.flights()
    client_first = base64.b64encode(b"n,,n=user,r=" + SHA256_NONCE.encode())
    assert b"AUTH SCRAM-SHA-256 " + client_first + b"\r\n" in flights
    assert base64.b64encode(SHA256_CLIENT_FINAL) + b"\r\n" in flights
    assert b"\r\n" in flights  # the empty answer to the server-final 334


def b64(data: bytes) -> bytes:
    return b"334 " + base64.b64encode(data) + b"\r\n"


SCRAM_NEGATIVES = {
    "nonce-not-ours": b64(b"r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
    "i=1": b64(b"r=" + SHA256_NONCE.encode() + b"x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1"),
    "i=0": b64(b"r=" + SHA256_NONCE.encode() + b"x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0"),
    "i=2e9": b64(b"r=" + SHA256_NONCE.encode() + b"x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000"),
    "salt": b64(b"r=" + SHA256_NONCE.encode() + b"x,s=!!!,i=4096"),
    "m=": b64(b"m=ext,r=" + SHA256_NONCE.encode() + b"x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
}


@pytest.mark.parametrize("server_first", list(SCRAM_NEGATIVES.values()), ids=list(SCRAM_NEGATIVES))
def test_au13_bad_server_first_is_cancelled(server_first: bytes) -> None:
    report, record = scram_go(server_first, b"501 cancelled\r\n")
    assert only(report)[:2] == ("deferred", "4.7.0")
    assert record.flights()[-2:] == [b"*\r\n", b"QUIT\r\n"]


@pytest.mark.parametrize(
    "server_final", [b"e=invalid-proof", b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
)
def test_au13_bad_server_final_is_cancelled(server_final: bytes) -> None:
    first = b"334 " + base64.b64encode(SHA256_SERVER_FIRST) + b"\r\n"
    report, record = scram_go(first, b64(server_final), b"501 cancelled\r\n")
    assert only(report)[:2] == ("deferred", "4.7.0")
    assert record.flights()[-2:] == [b"*\r\n", b"QUIT\r\n"]


def test_au13_235_without_server_final_fails_and_closes() -> None:
    first = b"334 " + base64.b64encode(SHA256_SERVER_FIRST) + b"\r\n"
    report, record = scram_go(first, b"235 2.7.0 trust me\r\n")
    status, dsn, diagnostic = only(report)
    assert (status, dsn) == ("deferred", "4.7.0")
    assert "not authenticated" in diagnostic
    assert b"MAIL" not in record.sent() and b"*\r\n" not in record.sent()
    assert record.channels[0].closed


def test_au13_scram_round_trip_through_the_engine_with_the_test_server() -> None:
    server = ScramServer("sha256", "pencil", b"salty", 4096, "srvnonce")
    client_first = b"n,,n=user,r=" + SHA256_NONCE.encode()
    server_first = server.first(client_first)
    expected_final = create_mechanism(
        "SCRAM-SHA-256", SaslCredentials("user", "pencil"), nonce=SHA256_NONCE
    )
    expected_final.initial_response()
    client_final = expected_final.respond(server_first)
    report, record = scram_go(
        b64(server_first), b64(server.final(client_final)), b"235 ok\r\n", *OK
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert base64.b64encode(client_final) + b"\r\n" in record.flights()


def test_au14_xoauth2_error_path_and_bad_token() -> None:
    mechanism = create_mechanism("XOAUTH2", SaslCredentials("u", token="ya29.TOKEN"))
    assert mechanism.initial_response(max_line=512) is not None
    assert mechanism.respond(b'{"status":"400"}') == b""
    with pytest.raises(RemoteProtocolError):
        mechanism.verify_success()
    with pytest.raises(LocalProtocolError):
        create_mechanism("XOAUTH2", SaslCredentials("u", token="a\x01b"))


def test_au15_no_secret_in_transcript_reports_or_config_repr() -> None:
    echo = b"501 5.5.2 cannot decode " + PLAIN_IR[:20] + b" " + PLAIN_IR + b"\r\n"
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, echo]),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    (r,) = report.recipients
    assert r.status == "deferred"
    config = ClientConfig(**CREDENTIALS)
    texts = [*report.transcript, r.diagnostic, str(r.reply), repr(r), repr(config), repr(report)]
    forbidden = [
        PASSWORD,
        base64.b64encode(PASSWORD.encode()).decode(),
        PLAIN_IR.decode(),
        PLAIN_IR[:20].decode(),
    ]
    for text in texts:
        for secret in forbidden:
            assert secret not in text, (secret, text)
    assert "Out: AUTH PLAIN [redacted]" in report.transcript
    assert any(
        line.startswith("In: 501 5.5.2 cannot decode [redacted]") for line in report.transcript
    )
    assert PLAIN_IR in record.sent()  # the secret did go to the server, over TLS


def test_au15_login_exchange_lines_are_redacted_but_star_is_visible() -> None:
    report, _ = go(
        Session(
            [
                GREETING,
                EHLO_TLS,
                *TLS_UP,
                b"250-mx\r\n250 AUTH LOGIN\r\n",
                b"334 VXNlcm5hbWU6\r\n",
                b"334 bad!\r\n",
                b"501 cancelled\r\n",
            ]
        ),
        tls_security_level="encrypt",
        **CREDENTIALS,
    )
    out = [line for line in report.transcript if line.startswith("Out:")]
    assert out[-4:] == ["Out: AUTH LOGIN", "Out: [redacted]", "Out: *", "Out: QUIT"]
    assert base64.b64encode(USER.encode()).decode() not in "\n".join(report.transcript)


def _ready_connection(ehlo: bytes) -> ClientConnection:
    conn = ClientConnection()
    conn.receive_data(GREETING)
    conn.next_event()
    conn.send(Ehlo("c"))
    conn.receive_data(ehlo)
    conn.next_event()
    return conn


def test_au16_auth_inside_a_transaction_is_a_local_error() -> None:
    conn = _ready_connection(EHLO_AUTH)
    conn.send(Mail("a@example.org"))
    with pytest.raises(LocalProtocolError):
        conn.send(Auth("PLAIN", b"\0u\0p"))


def test_au16_second_auth_after_235_is_a_local_error() -> None:
    conn = _ready_connection(EHLO_AUTH)
    conn.send(Auth("PLAIN", b"\0u\0p"))
    conn.receive_data(b"235 ok\r\n")
    conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.send(Auth("PLAIN", b"\0u\0p"))
    conn.send(Mail("a@example.org"))
    conn.send(Rcpt("b@example.com"))


def test_au17_filter_order_and_post_tls_list_decide_the_mechanism() -> None:
    post = b"250-mx\r\n250-PIPELINING\r\n250 AUTH GSSAPI NTLM PLAIN SCRAM-SHA-256\r\n"
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, post, *scram_steps(), *OK]),
        tls_security_level="encrypt",
        nonce=SHA256_NONCE,
        sasl_auth_enable=True,
        sasl_password_maps={DEST: "user:pencil"},
        sasl_mechanism_filter=("scram-sha-256", "plain"),
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH SCRAM-SHA-256 " in record.sent()
    # The pre-TLS list offered SCRAM; the post-TLS one only PLAIN: PLAIN is used.
    pre = b"250-mx\r\n250-STARTTLS\r\n250 AUTH SCRAM-SHA-256\r\n"
    report, record = go(
        Session([GREETING, pre, *TLS_UP, POST_TLS_AUTH, b"235 ok\r\n", *OK]),
        tls_security_level="encrypt",
        nonce=SHA256_NONCE,
        **CREDENTIALS,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH PLAIN " in record.sent() and b"SCRAM" not in record.sent()


# -- the wiring around the cases ------------------------------------------------------------


def test_policy_map_raises_the_level_for_one_next_hop_only() -> None:
    report, _ = go(
        Session([GREETING, EHLO_AUTH]),
        tls_security_level="may",
        tls_policy_maps={DEST: "encrypt"},
    )
    assert only(report)[:2] == ("deferred", "4.7.4")
    report, _ = go(
        Session([GREETING, EHLO_AUTH, *OK]),
        tls_security_level="may",
        tls_policy_maps={"[192.0.2.99]": "encrypt"},
    )
    assert statuses(report) == [("sent", "2.0.0")]


def test_unreadable_policy_entry_fails_closed_with_4_7_0() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *OK]), tls_policy_maps={DEST: "secure bogus=1"}
    )
    assert only(report) == ("deferred", "4.7.0", "client TLS configuration problem")
    nothing_after_hello(record)
    assert b"STARTTLS" not in record.sent()


def test_sasl_credentials_by_sender_disable_reuse() -> None:
    env = Envelope("a@example.org", (Recipient("a@x.example"), Recipient("b@x.example")))
    auth_session = [GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, b"235 ok\r\n", *OK]
    script = Script(servers={ADDR: [Session(auth_session), Session(auth_session)]})
    cfg = ClientConfig(
        helo_name="client.example",
        tls_security_level="encrypt",
        sasl_auth_enable=True,
        sender_dependent_authentication=True,
        sasl_tls_security_options=frozenset({"noanonymous"}),  # opt in (AU-20)
        sasl_password_maps={"a@example.org": "sender:pw"},
        destination_recipient_limit=1,
    )
    report, record = run(deliver(DEST, env, b"x\r\n", config=cfg, clock=Clock(), rng=Rng()), script)
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 2
    assert b"AUTH PLAIN " + base64.b64encode(b"\0sender\0pw") in record.sent()


def test_tls_note_starttls_offer_at_level_none() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *OK]), tls_security_level="none", tls_note_starttls_offer=True
    )
    assert "Host offered STARTTLS: [192.0.2.1]" in report.transcript
    assert b"STARTTLS" not in record.sent()


def test_no_credentials_for_this_server_means_no_auth() -> None:
    report, record = go(
        Session([GREETING, EHLO_TLS, *TLS_UP, POST_TLS_AUTH, *OK]),
        tls_security_level="encrypt",
        sasl_auth_enable=True,
        sasl_password_maps={"[192.0.2.99]": "u:p"},
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"AUTH" not in record.sent()
