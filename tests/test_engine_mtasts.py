"""MTA-STS in deliveries (RFC 8461): discovery, the fetch request, enforce and testing.

A scripted world answers the engine's requests, the HTTPS policy fetch included; what the
engine asks for (the TXT lookup, the `HTTPSGet`, whether it connects, the `StartTLS`
parameters) and the report it returns are the evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from support.world import GREETING, Clock, Rng, Script, Session, World, drive, statuses

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.engine.mtasts import MAX_POLICY_SIZE, PolicyCache
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import (
    Connect,
    DNSAnswer,
    HTTPResponse,
    HTTPSFailed,
    HTTPSGet,
    IORequest,
    MXRecord,
    Resolve,
    StartTLS,
    TLSInfo,
)

MX = "mx1.example.com"
ADDR = "192.0.2.25"
POLICY_HOST = "mta-sts.example.com"
POLICY_ADDR = "192.0.2.80"
EHLO_TLS = b"250-mx1.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
EHLO_AFTER = b"250-mx1.example.com\r\n250 PIPELINING\r\n"
OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
QUIT = b"221 bye\r\n"
ENFORCE = b"version: STSv1\r\nmode: enforce\r\nmx: *.example.com\r\nmax_age: 86400\r\n"
TESTING = b"version: STSv1\nmode: testing\nmx: other.example.net\nmax_age: 86400\n"
ELSEWHERE = b"version: STSv1\nmode: enforce\nmx: other.example.net\nmax_age: 86400\n"


def dns(record: str = "v=STSv1; id=20240101") -> dict[tuple[str, str], Any]:
    """example.com with one MX, its MTA-STS record and the policy host's address."""
    return {
        ("example.com", "MX"): (MXRecord(10, MX),),
        (MX, "A"): (ADDR,),
        (MX, "AAAA"): (),
        ("_mta-sts.example.com", "TXT"): (record, "unrelated text"),
        (POLICY_HOST, "A"): (POLICY_ADDR,),
        (POLICY_HOST, "AAAA"): (),
    }


def served(body: bytes, status: int = 200, kind: str = "text/plain") -> Callable[[HTTPSGet], Any]:
    """An HTTPS server that answers every fetch with `body`."""
    return lambda request: HTTPResponse(status, kind, body)


def verified_server(*names: str, tail: tuple[bytes, ...] = OK) -> Session:
    """A server whose handshake verified, with a certificate for `names`."""
    peer = {"subjectAltName": tuple(("DNS", n) for n in names)}
    info = TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", True, peer)
    return Session([GREETING, EHLO_TLS, b"220 go\r\n", info, EHLO_AFTER, *tail])


def unverified_server(tail: tuple[bytes, ...] = OK) -> Session:
    """A server whose handshake was not verified (level may)."""
    info = TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", False)
    return Session([GREETING, EHLO_TLS, b"220 go\r\n", info, EHLO_AFTER, *tail])


def deliver_sts(
    https: Callable[[HTTPSGet], Any],
    *sessions: Session,
    table: Mapping[tuple[str, str], Any] | None = None,
    cache: PolicyCache | None = None,
    **settings: str,
) -> tuple[DeliveryReport, World]:
    """Deliver to example.com with MTA-STS on, the world answering fetches with `https`."""
    config = ClientConfig.from_postconf(
        {
            "smtp_helo_name": "client.example",
            "smtpproto_mta_sts_enable": "yes",
            "smtp_tls_CAfile": "/etc/ssl/ca.pem",
            **settings,
        }
    )
    world = World.from_script(Script(dns=table or dns(), servers={ADDR: list(sessions)}))

    def answer(index: int, request: IORequest) -> Any:
        if isinstance(request, HTTPSGet):
            result = https(request)
            if isinstance(result, Exception):
                raise result
            return result
        return world.answer(index, request)

    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(
        "example.com",
        envelope,
        b"Subject: t\r\n\r\nhello\r\n",
        config=config,
        clock=Clock(),
        rng=Rng(),
        wall_clock=lambda: 1_700_000_000.0,
        sts_cache=cache,
    )
    return drive(engine, answer, world.record), world


@pytest.mark.parameter("smtpproto_mta_sts_enable")
def test_enforce_with_a_matching_mx_requires_a_verified_certificate_for_the_mx_name() -> None:
    # RFC 8461 4.1, 4.2: the MX matches "*.example.com"; TLS 1.2+, PKIX, the MX host name.
    report, world = deliver_sts(served(ENFORCE), verified_server(MX))
    assert statuses(report) == [("sent", "2.0.0")]
    (fetch,) = world.record.of_type(HTTPSGet)
    assert (fetch.host, fetch.address, fetch.path) == (
        POLICY_HOST,
        POLICY_ADDR,
        "/.well-known/mta-sts.txt",
    )
    assert (fetch.max_bytes, fetch.ca_file) == (MAX_POLICY_SIZE, "/etc/ssl/ca.pem")
    (starttls,) = world.record.of_type(StartTLS)
    assert starttls.parameters.verify and starttls.parameters.min_version == "TLSv1.2"
    assert starttls.server_hostname == MX
    result = report.recipients[0]
    assert result.tls is not None and (result.tls.level, result.tls.trust) == ("verify", "Verified")
    assert result.tls.matched == MX
    (attempt,) = report.tls_attempts
    assert attempt.success and attempt.policy.policy_type == "sts"
    assert attempt.policy.domain == "example.com" and attempt.policy.mx_host == ("*.example.com",)
    assert attempt.policy.strings[1] == "mode: enforce"


def test_enforce_with_no_matching_mx_defers_without_connecting() -> None:
    report, world = deliver_sts(served(ELSEWHERE))
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert result.diagnostic == f"MX host {MX} does not match the MTA-STS policy of example.com"
    assert world.record.of_type(Connect) == []
    (attempt,) = report.tls_attempts
    assert attempt.result_type == "validation-failure"


def test_enforce_with_a_certificate_for_another_name_defers() -> None:
    report, _ = deliver_sts(served(ENFORCE), verified_server("mail.example.net", tail=(QUIT,)))
    assert statuses(report) == [("deferred", "4.7.5")]
    assert report.tls_attempts[0].result_type == "certificate-host-mismatch"


def test_testing_mode_delivers_as_configured_and_reports_the_mismatch() -> None:
    # RFC 8461 5: testing never changes delivery; the failure goes to TLS-RPT only.
    report, world = deliver_sts(served(TESTING), unverified_server())
    assert statuses(report) == [("sent", "2.0.0")]
    assert not world.record.of_type(StartTLS)[0].parameters.verify
    (attempt,) = report.tls_attempts
    assert (attempt.policy.policy_type, attempt.result_type) == ("sts", "validation-failure")


@pytest.mark.parametrize(
    ("https", "result_type"),
    [
        (
            lambda r: HTTPSFailed("certificate verify failed", certificate=True),
            "sts-webpki-invalid",
        ),
        (lambda r: HTTPSFailed("connection refused"), "sts-policy-fetch-error"),
        (served(b"version: STSv1\nmode: enforce\n"), "sts-policy-invalid"),
        (served(ENFORCE, status=301), "sts-policy-invalid"),
        (served(ENFORCE, kind="text/html"), "sts-policy-invalid"),
    ],
)
def test_a_failed_fetch_is_reported_and_delivery_goes_on_without_a_policy(
    https: Callable[[HTTPSGet], Any], result_type: str
) -> None:
    # RFC 8461 3.3: a policy not fetched whole, with a valid certificate, is no policy.
    report, world = deliver_sts(https, unverified_server())
    assert statuses(report) == [("sent", "2.0.0")]
    assert not world.record.of_type(StartTLS)[0].parameters.verify
    failure = report.tls_attempts[0]
    assert (failure.policy.policy_type, failure.result_type) == ("sts", result_type)


def test_a_cached_policy_is_not_fetched_again_until_the_id_changes() -> None:
    # RFC 8461 5.1: the TXT id says when the policy changed.
    cache = PolicyCache()
    fetches: list[HTTPSGet] = []

    def https(request: HTTPSGet) -> Any:
        fetches.append(request)
        return HTTPResponse(200, "text/plain; charset=utf-8", ENFORCE)

    deliver_sts(https, verified_server(MX), cache=cache)
    deliver_sts(https, verified_server(MX), cache=cache)
    assert len(fetches) == 1
    deliver_sts(https, verified_server(MX), table=dns("v=STSv1; id=2"), cache=cache)
    assert len(fetches) == 2


def test_a_cached_enforce_policy_survives_a_stripped_txt_record() -> None:
    # RFC 8461 5.1: an attacker who removes the TXT record cannot turn the policy off.
    cache = PolicyCache()
    deliver_sts(served(ELSEWHERE), cache=cache)
    stripped = {k: v for k, v in dns().items() if k[1] != "TXT"}
    report, world = deliver_sts(served(ENFORCE), table=stripped, cache=cache)
    assert statuses(report) == [("deferred", "4.7.5")]
    assert world.record.of_type(HTTPSGet) == []


def test_without_the_option_no_policy_is_looked_up() -> None:
    report, world = deliver_sts(served(ENFORCE), unverified_server(), smtpproto_mta_sts_enable="no")
    assert statuses(report) == [("sent", "2.0.0")]
    asked = [(r.name, r.rrtype) for r in world.record.of_type(Resolve)]
    assert ("_mta-sts.example.com", "TXT") not in asked


def test_dane_takes_precedence_over_mta_sts_for_a_server_with_usable_tlsa() -> None:
    # RFC 8461 2: DANE wins; the enforce policy names another MX, yet the server is used.
    import hashlib
    import ssl

    import trustme

    from smtpproto._x509 import Certificate

    leaf = trustme.CA().issue_cert(MX)
    der = ssl.PEM_cert_to_DER_cert(leaf.cert_chain_pems[0].bytes().decode())
    rdata = bytes((3, 1, 1)) + hashlib.sha256(Certificate.from_der(der).spki).digest()
    table = {k: DNSAnswer(v if isinstance(v, tuple) else (v,), True) for k, v in dns().items()}
    table[(f"_25._tcp.{MX}", "TLSA")] = DNSAnswer((rdata,), True)
    info = TLSInfo("TLSv1.3", "TLS_AES_128_GCM_SHA256", False, peer_chain=(der,))
    server = Session([GREETING, EHLO_TLS, b"220 go\r\n", info, EHLO_AFTER, *OK])
    report, _ = deliver_sts(
        served(ELSEWHERE),
        server,
        table=table,
        smtp_tls_security_level="dane",
        smtp_dns_support_level="dnssec",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    result = report.recipients[0]
    assert result.tls is not None and result.tls.level == "dane"
    assert [a.policy.policy_type for a in report.tls_attempts] == ["tlsa"]
