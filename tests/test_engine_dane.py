"""DANE, the fingerprint level and TLS-RPT data in deliveries (RFC 7672; Postfix dane_init()).

The engine's requests are the evidence: which lookups it makes with the DO bit, whether it
connects at all, what the StartTLS request asks (SNI, no PKIX), and what it makes of the
chain a scripted handshake returns. Certificates are trustme's, so the TLSA records and the
fingerprints are those of real certificates.
"""

from __future__ import annotations

import hashlib
import ssl
import time
from collections.abc import Mapping
from typing import Any

import pytest
import trustme
from support.world import GREETING, Clock, Rng, Script, Session, run, statuses

from smtpproto._x509 import Certificate
from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.engine.tlsrpt import ReportAggregator
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import (
    Connect,
    DNSAnswer,
    DNSError,
    MXRecord,
    Resolve,
    StartTLS,
    TLSInfo,
)

MX = "mx.example.com"
ADDR = "192.0.2.25"
EHLO_TLS = b"250-mx.example.com\r\n250-PIPELINING\r\n250 STARTTLS\r\n"
EHLO_AFTER = b"250-mx.example.com\r\n250 PIPELINING\r\n"
OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
QUIT = b"221 bye\r\n"


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


CA = trustme.CA()
LEAF = CA.issue_cert(MX)
OTHER = CA.issue_cert("other.example.net")
LEAF_DER = _der(LEAF.cert_chain_pems[0].bytes())
OTHER_DER = _der(OTHER.cert_chain_pems[0].bytes())
CA_DER = _der(CA.cert_pem.bytes())


def _spki_sha256(der: bytes) -> str:
    return hashlib.sha256(Certificate.from_der(der).spki).hexdigest()


def tlsa(text: str) -> bytes:
    """The wire RDATA of a TLSA record written ``3 1 1 <hex>``."""
    usage, selector, mtype, data = text.split()
    return bytes((int(usage), int(selector), int(mtype))) + bytes.fromhex(data)


EE_MATCH = tlsa(f"3 1 1 {_spki_sha256(LEAF_DER)}")
EE_OTHER = tlsa(f"3 1 1 {_spki_sha256(OTHER_DER)}")
TA_KEY = tlsa(f"2 1 0 {Certificate.from_der(CA_DER).spki.hex()}")


def secure(*records: Any, canonical: str | None = None) -> DNSAnswer:
    """A DNSSEC-validated answer (AD bit)."""
    return DNSAnswer(tuple(records), authenticated=True, canonical_name=canonical)


def insecure(*records: Any) -> DNSAnswer:
    """An answer without the AD bit."""
    return DNSAnswer(tuple(records), authenticated=False)


def world(
    *, mx: DNSAnswer | None = None, address: DNSAnswer | None = None, **tlsa: Any
) -> dict[tuple[str, str], Any]:
    """The DNS of example.com: its MX, the MX host's address, TLSA records by port."""
    table: dict[tuple[str, str], Any] = {
        ("example.com", "MX"): mx if mx is not None else secure(MXRecord(10, MX)),
        (MX, "A"): address if address is not None else secure(ADDR),
        (MX, "AAAA"): secure(),
    }
    for port, answer in tlsa.items():
        table[(f"_{port.lstrip('_')}._tcp.{MX}", "TLSA")] = answer
    return table


def tls_server(chain: tuple[bytes, ...], *tail: Any) -> Session:
    """Greeting, EHLO with STARTTLS, the handshake presenting `chain`, then `tail`."""
    info = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", False, None, peer_chain=chain)
    return Session([GREETING, EHLO_TLS, b"220 go\r\n", info, EHLO_AFTER, *tail])


def deliver_to(
    dns: Mapping[tuple[str, str], Any],
    *sessions: Session,
    destination: str = "example.com",
    wall_clock: Any = time.time,
    **settings: str,
) -> tuple[DeliveryReport, Any]:
    """Deliver one message with Postfix-style `settings` (``smtp_dns_support_level`` is
    ``dnssec`` unless given)."""
    config = ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", "smtp_dns_support_level": "dnssec", **settings}
    )
    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(
        destination,
        envelope,
        b"Subject: t\r\n\r\nhello\r\n",
        config=config,
        clock=Clock(),
        rng=Rng(),
        wall_clock=wall_clock,
    )
    return run(engine, Script(dns=dns, servers={ADDR: list(sessions)}))


def _result(report: DeliveryReport) -> Any:
    (result,) = report.recipients
    return result


# -- dane with usable records ------------------------------------------------------------


@pytest.mark.parameter("smtp_tls_security_level", "smtp_dns_support_level")
def test_dane_ee_match_delivers_verified_with_sni_and_no_pkix() -> None:
    # RFC 7672 3.1.1: DANE-EE ignores names and dates; RFC 7672 8.1: SNI is the MX name.
    report, record = deliver_to(
        world(_25=secure(EE_MATCH)),
        tls_server((LEAF_DER,), *OK),
        smtp_tls_security_level="dane",
    )
    result = _result(report)
    assert (result.status, result.dsn) == ("sent", "2.0.0")
    assert result.tls is not None
    assert (result.tls.trust, result.tls.level) == ("Verified", "dane")
    assert result.tls.matched == f"3 1 1 {_spki_sha256(LEAF_DER).upper()}"
    (starttls,) = record.of_type(StartTLS)
    assert starttls.server_hostname == MX
    assert not starttls.parameters.verify
    assert starttls.parameters.min_version == "TLSv1.2"
    # Every lookup asks for validation (Postfix RES_USE_DNSSEC at smtp_dns_support_level=dnssec).
    lookups = record.of_type(Resolve)
    assert all(r.dnssec for r in lookups)
    assert (f"_25._tcp.{MX}", "TLSA") in [(r.name, r.rrtype) for r in lookups]
    assert any(
        line.startswith(f"{MX}[{ADDR}]:25: Matched DANE EE certificate at depth 0: 3 1 1 ")
        for line in report.transcript
    )
    assert f"Verified TLS connection established to {MX}[{ADDR}]:25" in "\n".join(report.transcript)
    (attempt,) = report.tls_attempts
    assert attempt.success and attempt.policy.policy_type == "tlsa"
    assert attempt.policy.domain == MX
    assert attempt.policy.strings == (f"3 1 1 {_spki_sha256(LEAF_DER).upper()}",)
    assert (attempt.receiving_mx_hostname, attempt.receiving_ip) == (MX, ADDR)


@pytest.mark.parameter("smtp_tls_security_level")
def test_dane_ee_mismatch_defers_after_quit_over_tls() -> None:
    report, record = deliver_to(
        world(_25=secure(EE_OTHER)), tls_server((LEAF_DER,), QUIT), smtp_tls_security_level="dane"
    )
    result = _result(report)
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert result.diagnostic == "Server certificate not verified"
    assert result.tls is not None and result.tls.trust == "Untrusted"
    assert b"MAIL FROM" not in record.sent()
    assert record.sent().endswith(b"QUIT\r\n")
    (attempt,) = report.tls_attempts
    assert (attempt.success, attempt.result_type) == (False, "certificate-not-trusted")
    assert "no TLSA record matches" in (attempt.failure_reason_code or "")


@pytest.mark.parameter("smtp_tls_security_level")
def test_dane_ta_key_in_dns_verifies_the_chain_and_the_mx_name() -> None:
    # RFC 7671 5.2.2: a bare trust-anchor key (2 1 0) need not come from the server.
    report, _ = deliver_to(
        world(_25=secure(TA_KEY)), tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane"
    )
    result = _result(report)
    assert result.status == "sent"
    assert result.tls is not None and result.tls.matched is not None
    assert result.tls.matched.startswith("2 1 0 ")
    assert "Matched DANE TA public key verified certificate at depth 0" in "\n".join(
        report.transcript
    )


def test_dane_ta_certificate_for_another_name_is_a_host_mismatch() -> None:
    # RFC 7672 3.2.2: DANE-TA checks the names; the reference names are the MX host and the
    # next-hop domain (Postfix dane_init()).
    report, _ = deliver_to(
        world(_25=secure(TA_KEY)), tls_server((OTHER_DER,), QUIT), smtp_tls_security_level="dane"
    )
    assert statuses(report) == [("deferred", "4.7.5")]
    (attempt,) = report.tls_attempts
    assert attempt.result_type == "certificate-host-mismatch"
    assert f"matches none of {MX}, example.com" in (attempt.failure_reason_code or "")


def test_dane_ta_without_a_wall_clock_never_verifies() -> None:
    # Dates matter below a DANE-TA anchor; a core without the time of day fails closed.
    report, _ = deliver_to(
        world(_25=secure(TA_KEY)),
        tls_server((LEAF_DER,), QUIT),
        wall_clock=None,
        smtp_tls_security_level="dane",
    )
    assert statuses(report) == [("deferred", "4.7.5")]
    assert report.tls_attempts[0].result_type == "certificate-expired"


def test_tlsa_lookup_follows_the_destination_port() -> None:
    # Postfix tls_dane_resolve() queries _<port>._tcp of the port it connects to.
    report, record = deliver_to(
        world(_2525=secure(EE_MATCH)),
        tls_server((LEAF_DER,), *OK),
        destination="example.com:2525",
        smtp_tls_security_level="dane",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert (f"_2525._tcp.{MX}", "TLSA") in [(r.name, r.rrtype) for r in record.of_type(Resolve)]


def test_tlsa_records_of_a_secure_cname_target_come_first() -> None:
    # RFC 7672 2.2.2: the TLSA base domain is the CNAME-expanded name when that is secure.
    dns = world(address=secure(ADDR, canonical="real.example.net"))
    dns[("_25._tcp.real.example.net", "TLSA")] = secure(EE_MATCH)
    report, record = deliver_to(dns, tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane")
    assert statuses(report) == [("sent", "2.0.0")]
    (starttls,) = record.of_type(StartTLS)
    assert starttls.server_hostname == "real.example.net"
    tlsa_names = [r.name for r in record.of_type(Resolve) if r.rrtype == "TLSA"]
    assert tlsa_names == ["_25._tcp.real.example.net"]


# -- dane without usable records -----------------------------------------------------------


@pytest.mark.parameter("smtp_tls_security_level")
def test_dane_without_tlsa_records_falls_back_to_may() -> None:
    # RFC 7672 2.2: validated denial of TLSA records: opportunistic TLS, unauthenticated.
    dns = world(_25=DNSError("nxdomain", "no such name"))
    report, _record = deliver_to(dns, tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane")
    result = _result(report)
    assert result.status == "sent"
    assert result.tls is not None and (result.tls.trust, result.tls.level) == ("Untrusted", "may")
    (attempt,) = report.tls_attempts
    assert attempt.success and attempt.policy.policy_type == "no-policy-found"
    assert attempt.policy.domain == "example.com"


@pytest.mark.parameter("smtp_tls_security_level")
def test_dane_only_without_tlsa_records_defers_without_connecting() -> None:
    dns = world(_25=secure())
    report, record = deliver_to(dns, smtp_tls_security_level="dane-only")
    result = _result(report)
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert result.diagnostic == "no TLSA records found"
    assert record.of_type(Connect) == []
    assert report.tls_attempts[0].result_type == "dane-required"


@pytest.mark.parameter("smtp_tls_security_level")
def test_tlsa_lookup_failure_defers_even_at_dane() -> None:
    # RFC 7672 2.2: a bogus (SERVFAIL) TLSA answer may hide records: never fall back.
    dns = world(_25=DNSError("temporary", "SERVFAIL"))
    report, record = deliver_to(dns, smtp_tls_security_level="dane")
    result = _result(report)
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert result.diagnostic == f"TLSA lookup error for {MX}:25"
    assert record.of_type(Connect) == []
    assert report.tls_attempts[0].result_type == "dnssec-invalid"


def test_unusable_tlsa_records_mean_encrypt_and_are_reported() -> None:
    # RFC 7672 3.1.3: PKIX-EE(1) is unusable for SMTP; Postfix then requires TLS, unverified.
    dns = world(_25=secure(tlsa(f"1 1 1 {_spki_sha256(LEAF_DER)}")))
    report, _record = deliver_to(dns, tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane")
    result = _result(report)
    assert result.status == "sent"
    assert result.tls is not None and result.tls.level == "encrypt"
    (attempt,) = report.tls_attempts
    assert (attempt.policy.policy_type, attempt.result_type) == ("tlsa", "tlsa-invalid")


def test_unusable_tlsa_records_at_dane_only_defer() -> None:
    dns = world(_25=secure(tlsa(f"0 0 1 {_spki_sha256(LEAF_DER)}")))
    report, _ = deliver_to(dns, smtp_tls_security_level="dane-only")
    assert statuses(report) == [("deferred", "4.7.5")]
    assert _result(report).diagnostic == "TLSA records unusable"


@pytest.mark.parameter("tls_dane_digests")
def test_dane_digests_decide_which_matching_types_count() -> None:
    # A SHA2-512 record with sha512 left out of tls_dane_digests is unusable: encrypt.
    sha512 = hashlib.sha512(Certificate.from_der(LEAF_DER).spki).hexdigest()
    dns = world(_25=secure(tlsa(f"3 1 2 {sha512}")))
    with_sha512, _ = deliver_to(dns, tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane")
    assert _result(with_sha512).tls.level == "dane"
    without, _ = deliver_to(
        dns, tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane", tls_dane_digests="sha256"
    )
    assert _result(without).tls.level == "encrypt"


# -- the MX RRset and the address lookups ----------------------------------------------------


@pytest.mark.parameter("smtp_tls_security_level")
def test_dane_only_with_an_insecure_mx_defers_as_non_dnssec_destination() -> None:
    dns = world(mx=insecure(MXRecord(10, MX)), _25=secure(EE_MATCH))
    report, record = deliver_to(dns, smtp_tls_security_level="dane-only")
    assert statuses(report) == [("deferred", "4.7.5")]
    assert _result(report).diagnostic == "non DNSSEC destination"
    assert not [r for r in record.of_type(Resolve) if r.rrtype == "TLSA"]


@pytest.mark.parameter("smtp_tls_dane_insecure_mx_policy")
@pytest.mark.parametrize(
    ("policy", "level", "trust"),
    [
        (None, "half-dane", "Trusted"),
        ("may", "may", "Untrusted"),
        ("encrypt", "encrypt", "Untrusted"),
    ],
)
def test_insecure_mx_policy_decides_what_usable_records_behind_an_insecure_mx_mean(
    policy: str | None, level: str, trust: str
) -> None:
    # Postfix >= 3.6 default at level dane: "dane" (logged Trusted, the MX might be forged).
    dns = world(mx=insecure(MXRecord(10, MX)), _25=secure(EE_MATCH))
    settings = {} if policy is None else {"smtp_tls_dane_insecure_mx_policy": policy}
    report, _ = deliver_to(
        dns, tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane", **settings
    )
    result = _result(report)
    assert result.status == "sent"
    assert result.tls is not None and (result.tls.level, result.tls.trust) == (level, trust)


@pytest.mark.parameter("smtp_tls_force_insecure_host_tlsa_lookup")
@pytest.mark.parametrize(("force", "level"), [("no", "may"), ("yes", "dane")])
def test_insecure_host_address_skips_tlsa_unless_forced(force: str, level: str) -> None:
    # RFC 7672 2.2.3: no TLSA lookup for a host whose address lookup was insecure.
    dns = world(address=insecure(ADDR), _25=secure(EE_MATCH))
    report, record = deliver_to(
        dns,
        tls_server((LEAF_DER,), *OK),
        smtp_tls_security_level="dane",
        smtp_tls_force_insecure_host_tlsa_lookup=force,
    )
    assert _result(report).tls.level == level
    asked = [r.name for r in record.of_type(Resolve) if r.rrtype == "TLSA"]
    assert asked == ([] if force == "no" else [f"_25._tcp.{MX}"])


def test_bracketed_host_is_its_own_secure_mx() -> None:
    # postconf(5) smtp_dns_support_level: "[nexthop]" is a statically validated MX.
    report, record = deliver_to(
        world(_25=secure(EE_MATCH)),
        tls_server((LEAF_DER,), *OK),
        destination=f"[{MX}]",
        smtp_tls_security_level="dane-only",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert not [r for r in record.of_type(Resolve) if r.rrtype == "MX"]


@pytest.mark.parameter("smtp_dns_support_level")
@pytest.mark.parametrize(("level", "status"), [("dane", "sent"), ("dane-only", "deferred")])
def test_dane_without_dnssec_lookups_is_may_or_a_configuration_problem(
    level: str, status: str
) -> None:
    # Postfix dane_incompat(NONDANE_CONFIG): a warning and "may", or at dane-only 4.7.0.
    plain = {("example.com", "MX"): (MXRecord(10, MX),), (MX, "A"): (ADDR,), (MX, "AAAA"): ()}
    report, record = deliver_to(
        plain,
        tls_server((LEAF_DER,), *OK),
        smtp_tls_security_level=level,
        smtp_dns_support_level="enabled",
    )
    result = _result(report)
    assert result.status == status
    assert not [r for r in record.of_type(Resolve) if r.dnssec]
    if status == "deferred":
        assert result.dsn == "4.7.0"
        assert result.diagnostic.startswith("client TLS configuration problem")


@pytest.mark.parameter("smtp_tls_policy_maps")
def test_policy_map_entry_selects_dane_only_for_one_destination() -> None:
    dns = world(_25=secure(EE_OTHER))
    report, _ = deliver_to(
        dns,
        tls_server((LEAF_DER,), QUIT),
        smtp_tls_security_level="may",
        smtp_tls_policy_maps="inline:{example.com=dane-only}",
    )
    assert statuses(report) == [("deferred", "4.7.5")]


# -- fingerprint -------------------------------------------------------------------------------


def _fingerprint(data: bytes, digest: str = "sha256") -> str:
    return hashlib.new(digest, data).digest().hex(":").upper()


@pytest.mark.parameter("smtp_tls_fingerprint_cert_match", "smtp_tls_fingerprint_digest")
@pytest.mark.parametrize(
    ("digest", "of"),
    [("sha256", "cert"), ("sha256", "key"), ("md5", "cert"), ("sha512", "key")],
)
def test_fingerprint_level_matches_the_certificate_or_its_key(digest: str, of: str) -> None:
    # postconf(5): certificate or public key fingerprints (Postfix >= 2.9), colons optional.
    data = LEAF_DER if of == "cert" else Certificate.from_der(LEAF_DER).spki
    report, record = deliver_to(
        {},
        tls_server((LEAF_DER,), *OK),
        destination=f"[{ADDR}]",
        smtp_tls_security_level="fingerprint",
        smtp_tls_fingerprint_digest=digest,
        smtp_tls_fingerprint_cert_match=f"00:11, {_fingerprint(data, digest)}",
    )
    result = _result(report)
    assert result.status == "sent"
    assert result.tls is not None and result.tls.trust == "Verified"
    assert result.tls.matched == _fingerprint(data, digest)
    assert not record.of_type(StartTLS)[0].parameters.verify


def test_fingerprint_mismatch_defers_and_policy_map_fingerprints_replace_the_parameter() -> None:
    wrong = _fingerprint(OTHER_DER)
    right = _fingerprint(LEAF_DER).replace(":", "").lower()
    refused, _ = deliver_to(
        {},
        tls_server((LEAF_DER,), QUIT),
        destination=f"[{ADDR}]",
        smtp_tls_security_level="fingerprint",
        smtp_tls_fingerprint_cert_match=wrong,
    )
    assert statuses(refused) == [("deferred", "4.7.5")]
    accepted, _ = deliver_to(
        {},
        tls_server((LEAF_DER,), *OK),
        destination=f"[{ADDR}]",
        smtp_tls_fingerprint_cert_match=wrong,
        smtp_tls_policy_maps=f"inline:{{ {{ [{ADDR}] = fingerprint match={wrong}|{right} }} }}",
    )
    assert statuses(accepted) == [("sent", "2.0.0")]


def test_fingerprint_level_without_a_chain_fails_closed() -> None:
    report, _ = deliver_to(
        {},
        tls_server((), QUIT),
        destination=f"[{ADDR}]",
        smtp_tls_security_level="fingerprint",
        smtp_tls_fingerprint_cert_match=_fingerprint(LEAF_DER),
    )
    assert statuses(report) == [("deferred", "4.7.5")]


# -- TLS-RPT -------------------------------------------------------------------------------------


def test_attempts_of_deliveries_aggregate_into_one_rfc8460_report() -> None:
    # RFC 8460 4.4: per policy, successes counted, failures by detail.
    good, _ = deliver_to(
        world(_25=secure(EE_MATCH)), tls_server((LEAF_DER,), *OK), smtp_tls_security_level="dane"
    )
    bad, _ = deliver_to(
        world(_25=secure(EE_MATCH)), tls_server((OTHER_DER,), QUIT), smtp_tls_security_level="dane"
    )
    aggregator = ReportAggregator()
    for report in (good, bad, good):
        aggregator.add_report(report)
    assert aggregator.domains() == (MX,)
    document = aggregator.report(
        MX,
        organization_name="Example",
        contact_info="tlsrpt@example.org",
        report_id="1",
        start=0,
        end=86400,
    )
    (policy,) = document["policies"]  # type: ignore[misc]
    assert policy["policy"]["policy-type"] == "tlsa"
    assert policy["summary"] == {
        "total-successful-session-count": 2,
        "total-failure-session-count": 1,
    }
    (detail,) = policy["failure-details"]
    assert detail["result-type"] == "certificate-not-trusted"
    assert (detail["receiving-mx-hostname"], detail["receiving-ip"]) == (MX, ADDR)


# -- smtp_tls_trust_anchor_file ------------------------------------------------------------------


def _pem(label: str, der: bytes) -> str:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----\n"


INTERMEDIATE = CA.create_child_ca()
BEHIND = INTERMEDIATE.issue_cert(MX)
BEHIND_CHAIN = tuple(_der(pem.bytes()) for pem in BEHIND.cert_chain_pems)


def _anchored(anchors: str, chain: tuple[bytes, ...], *tail: bytes, **settings: str) -> Any:
    files = {"/etc/postfix/ta.pem": anchors}
    config = ClientConfig.from_postconf(
        {
            "smtp_helo_name": "client.example",
            "smtp_tls_security_level": "verify",
            "smtp_tls_trust_anchor_file": "/etc/postfix/ta.pem",
            **settings,
        },
        reader=files.__getitem__,
    )
    engine = deliver(
        f"[{MX}]",
        Envelope("a@example.org", (Recipient("b@example.com"),)),
        b"Subject: t\r\n\r\nhello\r\n",
        config=config,
        clock=Clock(),
        rng=Rng(),
        wall_clock=time.time,
    )
    dns = {(MX, "A"): (ADDR,), (MX, "AAAA"): ()}
    return run(engine, Script(dns=dns, servers={ADDR: [tls_server(chain, *tail)]}))


@pytest.mark.parameter("smtp_tls_trust_anchor_file")
@pytest.mark.parametrize(
    ("anchor", "chain"),
    [
        (_pem("CERTIFICATE", CA_DER), (LEAF_DER,)),
        (_pem("PUBLIC KEY", Certificate.from_der(CA_DER).spki), (LEAF_DER,)),
        # An intermediate is anchor enough; the root above it is never consulted.
        (_pem("CERTIFICATE", BEHIND_CHAIN[1]), BEHIND_CHAIN),
    ],
)
def test_trust_anchors_replace_the_cas_at_verify(anchor: str, chain: tuple[bytes, ...]) -> None:
    # postconf(5): the chain must lead to one of the anchors, certificate or bare key.
    report, record = _anchored(anchor, chain, *OK)
    result = _result(report)
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None and (result.tls.trust, result.tls.matched) == ("Verified", MX)
    assert not record.of_type(StartTLS)[0].parameters.verify
    assert any("Matched trust anchor at depth" in line for line in report.transcript)


def test_trust_anchors_still_check_the_name_and_refuse_other_chains() -> None:
    other_ca = _pem("CERTIFICATE", _der(trustme.CA().cert_pem.bytes()))
    refused, _ = _anchored(other_ca, (LEAF_DER,), QUIT)
    assert statuses(refused) == [("deferred", "4.7.5")]
    mismatch, _ = _anchored(
        _pem("CERTIFICATE", CA_DER), (OTHER_DER,), QUIT, smtp_tls_verify_cert_match="hostname"
    )
    assert statuses(mismatch) == [("deferred", "4.7.5")]
    assert mismatch.tls_attempts[0].result_type == "certificate-host-mismatch"


def test_trust_anchor_files_are_read_through_the_reader_only() -> None:
    with pytest.raises(ValueError, match="reads no files"):
        ClientConfig.from_postconf({"smtp_tls_trust_anchor_file": "/etc/postfix/ta.pem"})
    key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    with pytest.raises(ValueError, match="PRIVATE KEY is not a trust anchor"):
        ClientConfig.from_postconf(
            {"smtp_tls_trust_anchor_file": "/ta.pem"}, reader={"/ta.pem": key}.__getitem__
        )
