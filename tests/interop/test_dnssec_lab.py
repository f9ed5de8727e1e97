"""The DNSSEC lab itself: a real validating resolver tells secure, insecure and bogus apart.

Only dnspython talks to the lab here, so a failure is the fixture's, never smtpproto's. These
are the three outcomes RFC 7672 2.1 makes a DANE client act on: secure answers (AD bit),
insecure answers (no AD) and bogus ones (SERVFAIL from the validator).
"""

from __future__ import annotations

from collections.abc import Callable

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from .dnssec import BOGUS, INSECURE, SECURE, DnssecLab

pytestmark = pytest.mark.interop

DIGEST = "8a9a70596e869bed72c69d97a8895dfa" * 2


def _rrset(response: object, rdtype: str) -> list[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return [r.to_text() for rrset in response.answer if rrset.rdtype == wanted for r in rrset]  # type: ignore[attr-defined]


def test_secure_zone_answers_carry_the_ad_bit(dnssec_lab: DnssecLab) -> None:
    response = dnssec_lab.query(f"mx.{SECURE}", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert response.flags & dns.flags.AD
    assert _rrset(response, "A") == ["127.0.0.1"]
    # The DO bit brings the signatures along: the validator passed them on.
    assert _rrset(response, "RRSIG")


def test_secure_mx_lookup_is_authenticated(dnssec_lab: DnssecLab) -> None:
    answer = dnssec_lab.resolver().resolve(SECURE, "MX")
    assert answer.response.flags & dns.flags.AD
    assert [r.to_text() for r in answer] == [f"10 mx.{SECURE}."]


def test_insecure_zone_answers_without_the_ad_bit(dnssec_lab: DnssecLab) -> None:
    response = dnssec_lab.query(f"mx.{INSECURE}", "A")
    assert response.rcode() == dns.rcode.NOERROR
    assert not response.flags & dns.flags.AD
    assert _rrset(response, "A") == ["127.0.0.1"]


def test_bogus_zone_is_servfail(dnssec_lab: DnssecLab) -> None:
    response = dnssec_lab.query(f"mx.{BOGUS}", "A")
    assert response.rcode() == dns.rcode.SERVFAIL
    assert not response.answer


def test_secure_denial_of_existence_is_authenticated(dnssec_lab: DnssecLab) -> None:
    # RFC 7672 2.2: a validated "no TLSA records" is what lets `dane` fall back to `may`.
    response = dnssec_lab.query(f"_25._tcp.mx.{SECURE}", "TLSA")
    assert response.rcode() == dns.rcode.NXDOMAIN
    assert response.flags & dns.flags.AD


def test_names_outside_the_lab_fail_without_leaving_loopback(dnssec_lab: DnssecLab) -> None:
    # The "." stub points at NSD, which refuses what it does not serve.
    response = dnssec_lab.query("example.com", "A")
    assert response.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED)
    assert not response.answer


def test_tlsa_records_added_by_a_test_validate(
    make_dnssec_lab: Callable[..., DnssecLab],
) -> None:
    lab = make_dnssec_lab(
        {
            SECURE: [f"_25._tcp.mx TLSA 3 1 1 {DIGEST}"],
            INSECURE: [f"_25._tcp.mx TLSA 3 1 1 {DIGEST}"],
        }
    )
    secure = lab.query(f"_25._tcp.mx.{SECURE}", "TLSA", tcp=True)
    assert secure.flags & dns.flags.AD
    assert _rrset(secure, "TLSA") == [f"3 1 1 {DIGEST}"]
    insecure = lab.query(f"_25._tcp.mx.{INSECURE}", "TLSA")
    assert not insecure.flags & dns.flags.AD
    assert _rrset(insecure, "TLSA") == [f"3 1 1 {DIGEST}"]


def test_unknown_zone_in_records_is_refused(make_dnssec_lab: Callable[..., DnssecLab]) -> None:
    with pytest.raises(ValueError, match="no such lab zone"):
        make_dnssec_lab({"example.com": ["@ A 127.0.0.1"]})
