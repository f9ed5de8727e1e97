"""DANE and MTA-STS against real peers: NSD + Unbound (DNSSEC), Postfix smtpd, an HTTPS server.

The lab's private root ``test.`` is signed and validated by Unbound; its names lead to the
private Postfix smtpd on loopback, whose trustme certificate the TLSA records describe
(RFC 7672): ``dane-ok.test`` has a matching DANE-EE record, ``dane-bad.test`` a record of
another key, ``dane-ta.test`` a DANE-TA record of the test CA's key, ``dane-none.test`` none;
``insecure.test`` is unsigned (its TLSA record must not count) and ``bogus.test`` fails
validation. Unbound listens on port 53 of a loopback address of its own, so that Postfix
3.7's smtp(8), the differential oracle, can use it as its system resolver too (through a
private /etc/resolv.conf, `postfix_client.private_resolv_conf`): both clients meet the same
zone, the same validator and the same server, and must decide the same for each recipient.

MTA-STS (RFC 8461): ``sts-ok.test`` and ``sts-bad.test`` publish ``_mta-sts`` records, and a
stdlib HTTPS server with a trustme certificate, on port 443 of another loopback address,
serves their ``enforce`` policies: one names the MX, the other does not.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import http.server
import logging
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from smtpproto._x509 import Certificate
from smtpproto.config import ClientConfig

from . import dnssec
from .dnssec import ANCHOR, BOGUS, INSECURE, DnssecLab
from .postfix_client import PostfixOracle, run_postfix_oracle
from .servers import (
    DOMAIN,
    SENDER,
    Client,
    PostfixServer,
    TLSMaterial,
    Transaction,
    client_config,
)

pytestmark = pytest.mark.interop

# RFC 8461 3.2 policies, by the domain whose mta-sts host serves them.
POLICIES = {
    domain: f"version: STSv1\r\nmode: enforce\r\nmx: {mx}\r\nmax_age: 600\r\n".encode()
    for domain, mx in (("sts-ok.test", "*.interop.test"), ("sts-bad.test", "mail.elsewhere.test"))
}


def _der(pem: bytes) -> bytes:
    return ssl.PEM_cert_to_DER_cert(pem.decode("ascii"))


@dataclass(frozen=True)
class Lab:
    """The DNSSEC lab with the server's TLSA records, and the MTA-STS policy server."""

    dns: DnssecLab
    port: int
    """The Postfix smtpd's port: next hops are ``domain:port``, TLSA names ``_port._tcp``."""
    ee_record: str
    """The DANE-EE record that matches the server's key, as the lab publishes it."""


class _PolicyHandler(http.server.BaseHTTPRequestHandler):
    """Serves /.well-known/mta-sts.txt for the domain named in the Host header."""

    fetched: list[str] = []
    """The Host header of every request, in order (a test counts the fetches)."""

    def do_GET(self) -> None:
        _PolicyHandler.fetched.append(self.headers.get("Host") or "")
        host = (self.headers.get("Host") or "").removeprefix("mta-sts.")
        body = POLICIES.get(host)
        if self.path != "/.well-known/mta-sts.txt" or body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what the client reports."""


@contextlib.contextmanager
def policy_server(host: str, tls: TLSMaterial) -> Iterator[None]:
    """HTTPS on `host`:443 with a certificate from the test CA for each mta-sts host."""
    cert = tls.ca.issue_cert(*(f"mta-sts.{domain}" for domain in POLICIES))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    server = http.server.ThreadingHTTPServer((host, 443), _PolicyHandler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(scope="module")
def lab(postfix_server: PostfixServer, tls_material: TLSMaterial) -> Iterator[Lab]:
    """The lab zones for the smtpd's port and certificate, and the policy server."""
    port = postfix_server.port
    leaf = Certificate.from_der(_der(tls_material.cert.cert_chain_pems[0].bytes()))
    ca = Certificate.from_der(_der(tls_material.ca.cert_pem.bytes()))
    good = hashlib.sha256(leaf.spki).hexdigest()
    wrong = hashlib.sha256(ca.spki).hexdigest()
    https = dnssec.loopback_address(443)
    records = {
        ANCHOR: [
            # Every MX host is a name under interop.test, which the certificate covers.
            *(f"mx-{k}.interop A 127.0.0.1" for k in ("ok", "bad", "ta", "none", "sts")),
            f"_{port}._tcp.mx-ok.interop TLSA 3 1 1 {good}",
            f"_{port}._tcp.mx-bad.interop TLSA 3 1 1 {wrong}",
            f"_{port}._tcp.mx-ta.interop TLSA 2 1 0 {ca.spki.hex()}",
            *(f"dane-{k} MX 10 mx-{k}.interop" for k in ("ok", "bad", "ta", "none")),
            *(f"sts-{k} MX 10 mx-sts.interop" for k in ("ok", "bad")),
            *(f'_mta-sts.sts-{k} TXT "v=STSv1; id=20240101"' for k in ("ok", "bad")),
            *(f"mta-sts.sts-{k} A {https}" for k in ("ok", "bad")),
        ],
        INSECURE: [f"_{port}._tcp.mx TLSA 3 1 1 {good}"],
        BOGUS: [f"_{port}._tcp.mx TLSA 3 1 1 {good}"],
    }
    resolver = dnssec.loopback_address(53)
    with (
        dnssec.run_dnssec_lab(records, resolver_host=resolver, resolver_port=53) as dns,
        policy_server(https, tls_material),
    ):
        yield Lab(dns, port, f"3 1 1 {good.upper()}")


@pytest.fixture(scope="module")
def dane_oracle(lab: Lab) -> Iterator[PostfixOracle]:
    """Postfix 3.7's smtp(8), its system resolver the lab's Unbound."""
    with run_postfix_oracle(nameserver=lab.dns.host) as oracle:
        yield oracle


def _config(level: str, **parameters: object) -> Any:
    return client_config(tls_security_level=level, dns_support_level="dnssec", **parameters)


def _deliver(
    client: Client, lab: Lab, domain: str, level: str, rcpt: str, **parameters: object
) -> Any:
    message = f"Subject: {domain} at {level}\r\n\r\n{client.adapter} {rcpt}\r\n".encode()
    return client.using_dns(lab.dns).deliver(  # type: ignore[arg-type]
        f"{domain}:{lab.port}",
        recipients=[f"{rcpt}@{DOMAIN}"],
        message=message,
        config=client_config(tls_security_level=level, dns_support_level="dnssec", **parameters),
    )


# -- DANE: smtpproto against Unbound and Postfix smtpd ----------------------------------------


@pytest.mark.parameter("smtp_tls_security_level", "smtp_dns_support_level")
def test_dane_delivers_with_a_matching_dane_ee_record(
    client: Client, lab: Lab, postfix_server: PostfixServer
) -> None:
    report = _deliver(client, lab, "dane-ok.test", "dane", "alice")
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("sent", "2.0.0"), result.diagnostic
    assert result.relay == f"mx-ok.interop.test[127.0.0.1]:{lab.port}"
    assert result.tls is not None
    assert (result.tls.trust, result.tls.level, result.tls.matched) == (
        "Verified",
        "dane",
        lab.ee_record,
    )
    (attempt,) = report.tls_attempts
    assert attempt.success and attempt.policy.policy_type == "tlsa"
    postfix_server.wait_for_delivery(f"alice@{DOMAIN}", contains=client.adapter.encode())


def test_dane_ta_key_verifies_the_servers_chain_and_name(client: Client, lab: Lab) -> None:
    # RFC 7672 3.2.2: the test CA's key in DNS, the certificate's *.interop.test name.
    report = _deliver(client, lab, "dane-ta.test", "dane-only", "bob")
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None and result.tls.trust == "Verified"
    assert result.tls.matched is not None and result.tls.matched.startswith("2 1 0 ")


def test_dane_only_defers_with_a_non_matching_record(client: Client, lab: Lab) -> None:
    report = _deliver(client, lab, "dane-bad.test", "dane-only", "carol")
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert result.diagnostic == "Server certificate not verified"
    assert report.tls_attempts[0].result_type == "certificate-not-trusted"


@pytest.mark.parametrize(("level", "status"), [("dane", "sent"), ("dane-only", "deferred")])
def test_an_insecure_zone_falls_back_to_may_at_dane_only(
    client: Client, lab: Lab, level: str, status: str
) -> None:
    # The insecure zone's TLSA record matches, but without the AD bit it does not count.
    report = _deliver(client, lab, "insecure.test", level, "dave")
    (result,) = report.recipients
    assert result.status == status, result.diagnostic
    if status == "sent":
        assert result.tls is not None and result.tls.level == "may"
    else:
        assert (result.dsn, result.diagnostic) == ("4.7.5", "non DNSSEC destination")


def test_a_bogus_zone_defers(client: Client, lab: Lab) -> None:
    report = _deliver(client, lab, "bogus.test", "dane", "rcpt1")
    (result,) = report.recipients
    assert result.status == "deferred"
    assert report.tls_attempts == ()


# -- the same zone and server for Postfix 3.7's own smtp(8) ------------------------------------


def _oracle_params(level: str) -> dict[str, str]:
    return {
        "smtp_tls_security_level": level,
        "smtp_dns_support_level": "dnssec",
        "smtp_tls_loglevel": "1",
        # The lab's root answers nothing for "."; its own anchor is what is validated.
        "dnssec_probe": "ns:test",
    }


CASES = [
    ("dane-ok.test", "dane"),
    ("dane-ok.test", "dane-only"),
    ("dane-ta.test", "dane-only"),
    ("dane-bad.test", "dane"),
    ("dane-bad.test", "dane-only"),
    ("dane-none.test", "dane"),
    ("dane-none.test", "dane-only"),
    ("insecure.test", "dane"),
    ("insecure.test", "dane-only"),
    ("bogus.test", "dane"),
]


@pytest.mark.parametrize(("domain", "level"), CASES)
def test_postfix_smtp_decides_the_same_per_recipient(
    lab: Lab, dane_oracle: PostfixOracle, domain: str, level: str
) -> None:
    rcpt = f"rcpt{CASES.index((domain, level)) + 10}@{DOMAIN}"
    message = f"Subject: oracle {domain} {level}\r\n\r\nbody\r\n".encode()
    theirs = dane_oracle.deliver(
        f"{domain}:{lab.port}",
        SENDER,
        [rcpt],
        message,
        params=_oracle_params(level),
    )[rcpt]
    report = (
        Client("blocking")
        .using_dns(lab.dns)
        .deliver(  # type: ignore[arg-type]
            f"{domain}:{lab.port}", recipients=[rcpt], message=message, config=_config(level)
        )
    )
    (ours,) = report.recipients
    assert (ours.status, ours.dsn) == (theirs.status, theirs.dsn), (ours, theirs)
    if theirs.status == "deferred" and theirs.dsn == "4.7.5":
        # TLS policy failures: Postfix's words (smtp_tls_policy.c, smtp_proto.c).
        assert ours.diagnostic == theirs.text, (ours, theirs)


def test_postfix_logs_the_same_verified_dane_connection(
    lab: Lab, dane_oracle: PostfixOracle, caplog: pytest.LogCaptureFixture
) -> None:
    since = dane_oracle.log.stat().st_size
    rcpt = f"rcpt40@{DOMAIN}"
    message = b"Subject: log\r\n\r\nbody\r\n"
    dane_oracle.deliver(
        f"dane-ok.test:{lab.port}", SENDER, [rcpt], message, params=_oracle_params("dane")
    )
    theirs = dane_oracle.log_text(since)
    client = Client("blocking").using_dns(lab.dns)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="smtpproto.connection"):
        client.deliver(
            f"dane-ok.test:{lab.port}", recipients=[rcpt], message=message, config=_config("dane")
        )
    ours = [r.getMessage() for r in caplog.records if r.name == "smtpproto.connection"]
    relay = f"mx-ok.interop.test[127.0.0.1]:{lab.port}"
    prefix = f"Verified TLS connection established to {relay}: "
    assert "postfix/smtp[" in theirs and prefix in theirs
    assert any(line.startswith(prefix) for line in ours), ours
    assert f"{relay}: Matched DANE EE certificate at depth 0: {lab.ee_record}" in ours


# -- MTA-STS -------------------------------------------------------------------------------------


def _sts_deliver(client: Client, lab: Lab, domain: str, rcpt: str, ca: Path | None) -> Any:
    """Deliver to `domain` with MTA-STS on, the test CA trusted when `ca` is given."""
    return client.using_dns(lab.dns).deliver(  # type: ignore[arg-type]
        f"{domain}:{lab.port}",
        recipients=[f"{rcpt}@{DOMAIN}"],
        message=b"Subject: sts\r\n\r\nbody\r\n",
        config=dataclasses.replace(
            client_config(
                tls_security_level="may", **({} if ca is None else {"tls_CAfile": str(ca)})
            ),
            mta_sts_enable=True,
        ),
    )


@pytest.mark.parameter("smtpproto_mta_sts_enable")
def test_mta_sts_enforce_with_a_matching_mx_delivers_verified(
    client: Client, lab: Lab, tls_material: TLSMaterial
) -> None:
    report = _sts_deliver(client, lab, "sts-ok.test", "rcpt2", tls_material.ca_pem)
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None
    assert (result.tls.level, result.tls.trust) == ("verify", "Verified")
    (attempt,) = report.tls_attempts
    assert attempt.success and attempt.policy.policy_type == "sts"
    assert attempt.policy.mx_host == ("*.interop.test",)


def test_mta_sts_enforce_with_a_non_matching_mx_defers(
    client: Client, lab: Lab, tls_material: TLSMaterial
) -> None:
    report = _sts_deliver(client, lab, "sts-bad.test", "rcpt3", tls_material.ca_pem)
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.5")
    assert result.diagnostic == (
        "MX host mx-sts.interop.test does not match the MTA-STS policy of sts-bad.test"
    )
    (attempt,) = report.tls_attempts
    assert (attempt.policy.policy_type, attempt.result_type) == ("sts", "validation-failure")


@pytest.mark.parameter("smtpproto_mta_sts_enable")
def test_a_mailer_fetches_a_policy_once_for_all_its_messages(
    client: Client, lab: Lab, tls_material: TLSMaterial
) -> None:
    # RFC 8461 5.1: the policy is cached for its max_age; a Mailer keeps one cache for its
    # life, so its six sends to one policy domain cost one fetch. Without connection caching
    # each send is a new connection that needs the policy.
    config = dataclasses.replace(
        client_config(tls_security_level="may", tls_CAfile=str(tls_material.ca_pem)),
        mta_sts_enable=True,
        connection_cache_on_demand=False,
    )
    before = len(_PolicyHandler.fetched)
    sends = [
        Transaction((f"rcpt{n}@{DOMAIN}",), f"Subject: sts {n}\r\n\r\nbody\r\n".encode())
        for n in range(6)
    ]
    reports = client.using_dns(lab.dns).mail(  # type: ignore[arg-type]
        sends, config=config, destination=f"sts-ok.test:{lab.port}", at_once=False
    )
    assert [r.status for report in reports for r in report.recipients] == ["sent"] * 6
    assert [a.policy.policy_type for report in reports for a in report.tls_attempts] == ["sts"] * 6
    assert _PolicyHandler.fetched[before:] == ["mta-sts.sts-ok.test"]


def test_mta_sts_policy_from_an_untrusted_server_is_no_policy(client: Client, lab: Lab) -> None:
    # RFC 8461 3.3: the policy host's certificate must verify; without the test CA it does
    # not, so the domain has no policy (and the failure is reported, RFC 8460 4.3.2.2).
    report = _sts_deliver(client, lab, "sts-bad.test", "rcpt4", None)
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert report.tls_attempts[0].result_type == "sts-webpki-invalid"


# -- the adapters' resolvers against the validating resolver -----------------------------------


def test_resolvers_report_the_ad_bit_tlsa_rdata_and_txt(client: Client, lab: Lab) -> None:
    # RFC 4035 3.2.3: the AD bit of a validating resolver; RFC 6698 2.1: TLSA wire RDATA.
    from smtpproto.engine.dane import TLSARecord
    from smtpproto.requests import DNSAnswer, Resolve

    resolver = client.using_dns(lab.dns).resolver()  # type: ignore[arg-type]

    def ask(name: str, rrtype: str) -> Any:
        request = Resolve(name, rrtype, 5.0, dnssec=True)  # type: ignore[arg-type]
        if client.adapter == "blocking":
            return resolver.resolve(request)
        return client._run(lambda: resolver.resolve(request))

    tlsa = ask(f"_{lab.port}._tcp.mx-ok.interop.test", "TLSA")
    assert isinstance(tlsa, DNSAnswer) and tlsa.authenticated
    assert [str(TLSARecord.from_rdata(r)) for r in tlsa.records] == [lab.ee_record]
    unsigned = ask("mx.insecure.test", "A")
    assert isinstance(unsigned, DNSAnswer) and not unsigned.authenticated
    assert unsigned.records == ("127.0.0.1",)
    txt = ask("_mta-sts.sts-ok.test", "TXT")
    assert txt.records == ("v=STSv1; id=20240101",) and txt.authenticated


# -- smtp_tls_trust_anchor_file against the smtpd ----------------------------------------------


def test_trust_anchor_key_verifies_the_smtpd_at_verify(
    client: Client, lab: Lab, tls_material: TLSMaterial, tmp_path: Path
) -> None:
    # The test CA's public key alone, no CA file: the chain and the name must still hold.
    from smtpproto.adapters.postfix import read_file

    ca = Certificate.from_der(_der(tls_material.ca.cert_pem.bytes()))
    body = base64.encodebytes(ca.spki).decode()
    anchor = tmp_path / "ta.pem"
    anchor.write_text(f"-----BEGIN PUBLIC KEY-----\n{body}-----END PUBLIC KEY-----\n")
    config = ClientConfig.from_postconf(
        {
            "smtp_helo_name": "client.example.test",
            "smtp_tls_security_level": "verify",
            "smtp_tls_trust_anchor_file": str(anchor),
        },
        reader=read_file,
    )
    report = client.using_dns(lab.dns).deliver(  # type: ignore[arg-type]
        f"[mx-ok.interop.test]:{lab.port}",
        recipients=[f"rcpt5@{DOMAIN}"],
        message=b"Subject: anchors\r\n\r\nbody\r\n",
        config=config,
    )
    (result,) = report.recipients
    assert result.status == "sent", result.diagnostic
    assert result.tls is not None
    assert (result.tls.trust, result.tls.matched) == ("Verified", "mx-ok.interop.test")
