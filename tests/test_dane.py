"""DANE for SMTP in the core (smtpproto.engine.dane): TLSA records, matching, chains, policy.

Certificates come from trustme (ordinary chains) and tests/certs.py (the odd ones); the
policy table follows Postfix's dane_init() (smtp_tls_policy.c) and RFC 7672 2.2.
"""

from __future__ import annotations

import datetime
import hashlib
import itertools

import pytest
from certs import DAY, NOW, NOW_TS, issue, new_key, spki_of, trustme_chain
from hypothesis import given
from hypothesis import strategies as st

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.engine.dane import (
    DEFAULT_DIGESTS,
    Lookup,
    TLSARecord,
    dane_policy,
    default_insecure_mx_policy,
    describe_match,
    parse_digests,
    tlsa_name,
    tlsa_wanted,
    unusable_reason,
    usable_records,
    verify_chain,
)

CHAIN = trustme_chain("mx.example.test")
OTHER = trustme_chain("mx.example.test")
NAMES = ("mx.example.test",)


def tlsa(usage: int, selector: int, mtype: int, der: bytes) -> TLSARecord:
    """The TLSA record for certificate `der` with these parameters."""
    content = der if selector == 0 else spki_of(der)
    data = {0: content, 1: hashlib.sha256(content).digest(), 2: hashlib.sha512(content).digest()}
    return TLSARecord(usage, selector, mtype, data[mtype])


def chain_of(chain: object = CHAIN) -> list[bytes]:
    return [chain.server, chain.intermediate]  # type: ignore[attr-defined]


# --- the record type ---------------------------------------------------------------------


def test_presentation_form_round_trip() -> None:
    record = TLSARecord.parse("3 1 1 0a0B 0c0d")
    assert record == TLSARecord(3, 1, 1, bytes.fromhex("0a0b0c0d"))
    assert str(record) == "3 1 1 0A0B0C0D"
    assert TLSARecord.from_rdata(bytes([3, 1, 1, 10, 11, 12, 13])) == record


@pytest.mark.parametrize("text", ["3 1 1", "3 1 x 00", "3 1 1 0g", "3 1 1 abc", "-1 1 1 00"])
def test_bad_presentation_forms_are_refused(text: str) -> None:
    with pytest.raises(LocalProtocolError):
        TLSARecord.parse(text)


@pytest.mark.parametrize(
    "fields", [(256, 1, 1, b"x"), (3, -1, 1, b"x"), (3, 1, True, b"x"), (3, 1, 1, "x")]
)
def test_out_of_range_fields_are_refused(fields: tuple[object, ...]) -> None:
    with pytest.raises(LocalProtocolError):
        TLSARecord(*fields)  # type: ignore[arg-type]


def test_truncated_rdata_is_the_peers_fault() -> None:
    # RFC 6698 2.1: usage, selector and matching type are one octet each.
    with pytest.raises(RemoteProtocolError):
        TLSARecord.from_rdata(b"\x03\x01")


@given(st.binary(min_size=4, max_size=80))
def test_rdata_and_presentation_agree(rdata: bytes) -> None:
    record = TLSARecord.from_rdata(rdata)
    assert TLSARecord.parse(str(record)) == record
    assert bytes([record.usage, record.selector, record.mtype]) + record.data == rdata


# --- which records count ------------------------------------------------------------------

SHA256 = bytes(32)
SHA512 = bytes(64)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (TLSARecord(0, 0, 1, SHA256), "PKIX certificate usage unusable with SMTP"),
        (TLSARecord(1, 1, 1, SHA256), "PKIX certificate usage unusable with SMTP"),
        (TLSARecord(4, 1, 1, SHA256), "unsupported certificate usage"),
        (TLSARecord(3, 2, 1, SHA256), "unsupported selector"),
        (TLSARecord(3, 1, 3, SHA256), "unsupported matching type"),
        (TLSARecord(3, 1, 255, SHA256), "unsupported matching type"),
        (TLSARecord(3, 1, 1, b""), "empty certificate association data"),
        (TLSARecord(3, 1, 1, bytes(31)), "sha256 digest of the wrong length"),
        (TLSARecord(3, 1, 2, SHA256), "sha512 digest of the wrong length"),
        (TLSARecord(3, 0, 0, b"\x30\x00"), "malformed certificate association data"),
        (TLSARecord(2, 1, 0, b"junk"), "malformed certificate association data"),
    ],
)
def test_unusable_records_say_why(record: TLSARecord, reason: str) -> None:
    assert unusable_reason(record) == reason
    assert usable_records([record]) == ()


def test_digest_agility_rfc7671_section_9() -> None:
    # RFC 7671 9's example: with 3 1 1, 3 1 2 and 3 1 0 published, a key matching only the
    # weaker 3 1 1 record is not accepted; 3 1 0 and 3 1 2 are.
    weak, strong, full = (tlsa(3, 1, m, CHAIN.server) for m in (1, 2, 0))
    assert usable_records([weak, strong, full]) == (strong, full)
    # A client that does not do SHA2-512 keeps the SHA2-256 record.
    assert usable_records([weak, strong, full], digests=((1, "sha256"),)) == (weak, full)
    # Agility is per usage and selector: a 2 0 1 record is not masked by 3 1 2.
    ta = tlsa(2, 0, 1, CHAIN.intermediate)
    assert usable_records([ta, strong, weak]) == (ta, strong)


def test_malformed_strong_digest_does_not_mask_a_good_weak_one() -> None:
    weak = tlsa(3, 1, 1, CHAIN.server)
    broken = TLSARecord(3, 1, 2, bytes(10))
    assert usable_records([broken, weak]) == (weak,)
    assert verify_chain(chain_of(), [broken, weak], names=NAMES, now=NOW_TS).authenticated


def test_parse_digests() -> None:
    assert parse_digests("sha512 sha256") == DEFAULT_DIGESTS
    assert parse_digests("sha256=1, sha512=2") == ((1, "sha256"), (2, "sha512"))
    assert parse_digests("sha384=3 sha256") == ((3, "sha384"), (1, "sha256"))
    for bad in ("", "sha256=2", "md99", "sha256 sha256", "sha384=0", "nosuchhash=7"):
        with pytest.raises(LocalProtocolError):
            parse_digests(bad)


# --- DANE-EE ------------------------------------------------------------------------------


@pytest.mark.parametrize(("selector", "mtype"), list(itertools.product((0, 1), (0, 1, 2))))
def test_dane_ee_every_selector_and_matching_type(selector: int, mtype: int) -> None:
    record = tlsa(3, selector, mtype, CHAIN.server)
    result = verify_chain(chain_of(), [record], names=NAMES, now=NOW_TS)
    assert result.authenticated and result.record == record and result.depth == 0
    other = verify_chain(chain_of(OTHER), [record], names=NAMES, now=NOW_TS)
    assert not other.authenticated
    assert other.failure == "certificate-not-trusted"


def test_dane_ee_ignores_names_and_dates() -> None:
    # RFC 7672 3.1.1: the TLSA record binds the key to the name; the certificate's own
    # names and validity period do not matter.
    expired = issue("wrong.example", not_after=NOW - 400 * DAY, not_before=NOW - 800 * DAY)
    record = tlsa(3, 1, 1, expired.der)
    result = verify_chain([expired.der], [record], names=NAMES, now=NOW_TS)
    assert result.authenticated
    assert describe_match(result) == (
        f"Matched DANE EE certificate at depth 0: 3 1 1 {record.data.hex().upper()}"
    )


def test_dane_ee_only_looks_at_the_server_certificate() -> None:
    # An EE record matching the intermediate authenticates nothing.
    record = tlsa(3, 1, 1, CHAIN.intermediate)
    assert not verify_chain(chain_of(), [record], names=NAMES, now=NOW_TS).authenticated


# --- DANE-TA ------------------------------------------------------------------------------


@pytest.mark.parametrize(("selector", "mtype"), list(itertools.product((0, 1), (0, 1, 2))))
@pytest.mark.parametrize("anchor", ["intermediate", "root"])
def test_dane_ta_every_selector_and_matching_type(selector: int, mtype: int, anchor: str) -> None:
    record = tlsa(2, selector, mtype, getattr(CHAIN, anchor))
    chain = [*chain_of(), CHAIN.root]
    now = int(datetime.datetime.now(datetime.UTC).timestamp())  # trustme dates its certs now
    result = verify_chain(chain, [record], names=NAMES, now=now)
    assert result.authenticated, result.reason
    assert result.matched_name == "mx.example.test"
    assert result.depth == (1 if anchor == "intermediate" else 2)
    # A full SPKI record (2 1 0) is a bare key: it anchors the certificate it signed.
    assert result.anchor_key == (selector == 1 and mtype == 0)
    what = (
        f"TA public key verified certificate at depth {result.depth - 1}"
        if result.anchor_key
        else f"TA certificate at depth {result.depth}"
    )
    assert describe_match(result).startswith(f"Matched DANE {what}: 2 {selector} {mtype} ")


def _ta_chain(**server_options: object) -> tuple[list[bytes], TLSARecord]:
    root = issue("Root CA", ca=True)
    intermediate = issue("Intermediate CA", issuer=root, ca=True)
    options = {"dns_names": ("mx.example.test",), **server_options}
    server = issue("mx.example.test", issuer=intermediate, **options)  # type: ignore[arg-type]
    return [server.der, intermediate.der, root.der], tlsa(2, 0, 1, root.der)


def test_dane_ta_checks_names_rfc7672_3_2_2() -> None:
    chain, record = _ta_chain()
    ok = verify_chain(chain, [record], names=("other.example", "mx.example.test"), now=NOW_TS)
    assert ok.authenticated and ok.matched_name == "mx.example.test"
    bad = verify_chain(chain, [record], names=("other.example",), now=NOW_TS)
    assert not bad.authenticated
    assert bad.failure == "certificate-host-mismatch"


def test_dane_ta_accepts_a_leftmost_wildcard() -> None:
    chain, record = _ta_chain(dns_names=("*.example.test",))
    assert verify_chain(chain, [record], names=NAMES, now=NOW_TS).authenticated
    assert not verify_chain(chain, [record], names=("a.mx.example.test",), now=NOW_TS).authenticated


def test_dane_ta_checks_dates_below_the_anchor() -> None:
    chain, record = _ta_chain(not_before=NOW - 60 * DAY, not_after=NOW - DAY)
    result = verify_chain(chain, [record], names=NAMES, now=NOW_TS)
    assert not result.authenticated
    assert result.failure == "certificate-expired"


def test_dane_ta_ignores_the_anchors_own_dates() -> None:
    root = issue("Old Root", ca=True, not_before=NOW - 900 * DAY, not_after=NOW - 400 * DAY)
    server = issue("mx.example.test", issuer=root, dns_names=NAMES)
    result = verify_chain(
        [server.der, root.der], [tlsa(2, 1, 1, root.der)], names=NAMES, now=NOW_TS
    )
    assert result.authenticated


def test_dane_ta_full_certificate_in_dns_need_not_be_sent() -> None:
    chain, _ = _ta_chain()
    record = tlsa(2, 0, 0, chain[2])
    assert verify_chain(chain[:2], [record], names=NAMES, now=NOW_TS).authenticated


def test_dane_ta_bare_public_key_anchors_what_it_signed() -> None:
    root = issue("Root CA", ca=True)
    server = issue("mx.example.test", issuer=root, dns_names=NAMES)
    record = tlsa(2, 1, 0, root.der)
    result = verify_chain([server.der], [record], names=NAMES, now=NOW_TS)
    assert result.authenticated and result.anchor_key
    assert describe_match(result).startswith(
        "Matched DANE TA public key verified certificate at depth 0: 2 1 0 "
    )


def test_dane_ta_chain_order_does_not_matter() -> None:
    chain, record = _ta_chain()
    assert verify_chain(
        [chain[0], chain[2], chain[1]], [record], names=NAMES, now=NOW_TS
    ).authenticated


def test_dane_ta_missing_intermediate_is_not_trusted() -> None:
    chain, record = _ta_chain()
    result = verify_chain([chain[0], chain[2]], [record], names=NAMES, now=NOW_TS)
    assert not result.authenticated
    assert result.failure == "certificate-not-trusted"


def test_dane_ta_refuses_a_forged_issuer() -> None:
    # Same issuer name as the real intermediate, signed by another key: linkage by name
    # alone must never be enough.
    root = issue("Root CA", ca=True)
    intermediate = issue("Intermediate CA", issuer=root, ca=True)
    impostor = issue("Intermediate CA", key=new_key(), ca=True)
    forged = issue("mx.example.test", issuer=impostor, dns_names=NAMES)
    chain = [forged.der, intermediate.der, root.der]
    result = verify_chain(chain, [tlsa(2, 0, 1, root.der)], names=NAMES, now=NOW_TS)
    assert not result.authenticated


def test_dane_ta_refuses_a_non_ca_issuer() -> None:
    root = issue("Root CA", ca=True)
    not_ca = issue("Leafy", issuer=root, ca=False)
    server = issue("mx.example.test", issuer=not_ca, dns_names=NAMES)
    chain = [server.der, not_ca.der, root.der]
    assert not verify_chain(chain, [tlsa(2, 0, 1, root.der)], names=NAMES, now=NOW_TS).authenticated


def test_dane_ta_enforces_path_length() -> None:
    root = issue("Root CA", ca=True)
    capped = issue("Capped CA", issuer=root, ca=True, path_length=0)
    below = issue("Below CA", issuer=capped, ca=True)
    server = issue("mx.example.test", issuer=below, dns_names=NAMES)
    chain = [server.der, below.der, capped.der, root.der]
    record = tlsa(2, 0, 1, root.der)
    assert not verify_chain(chain, [record], names=NAMES, now=NOW_TS).authenticated
    # The same chain anchored at the capped CA itself: the anchor's constraints are the
    # domain owner's statement, not checked (RFC 7671 5.2).
    assert verify_chain(chain, [tlsa(2, 0, 1, capped.der)], names=NAMES, now=NOW_TS).authenticated


def test_dane_ta_refuses_an_unknown_critical_extension() -> None:
    chain, record = _ta_chain(critical_unknown=True)
    result = verify_chain(chain, [record], names=NAMES, now=NOW_TS)
    assert not result.authenticated
    assert "critical extension" in result.reason


def test_dane_ta_with_an_unverifiable_signature_fails_closed() -> None:
    root = issue("Root CA", ca=True, key=new_key("ed25519"))
    server = issue("mx.example.test", issuer=root, dns_names=NAMES)
    assert not verify_chain(
        [server.der, root.der], [tlsa(2, 0, 1, root.der)], names=NAMES, now=NOW_TS
    ).authenticated


def test_dane_ta_rsa_and_p384_chains() -> None:
    for kind in ("rsa", "p384"):
        root = issue("Root CA", ca=True, key=new_key(kind))
        intermediate = issue("Intermediate CA", issuer=root, ca=True, key=new_key(kind))
        server = issue("mx.example.test", issuer=intermediate, dns_names=NAMES)
        # RFC 7671 5.2.2: with a digest record the server must send the anchor too.
        chain = [server.der, intermediate.der]
        record = tlsa(2, 1, 1, root.der)
        assert not verify_chain(chain, [record], names=NAMES, now=NOW_TS).authenticated
        chain.append(root.der)
        assert verify_chain(chain, [record], names=NAMES, now=NOW_TS).authenticated


def test_dane_ta_matching_the_server_certificate_still_checks_names() -> None:
    server = issue("mx.example.test", dns_names=NAMES)
    record = tlsa(2, 0, 1, server.der)
    assert verify_chain([server.der], [record], names=NAMES, now=NOW_TS).authenticated
    assert not verify_chain([server.der], [record], names=("x.example",), now=NOW_TS).authenticated


def test_no_usable_records_and_no_chain() -> None:
    assert verify_chain(
        chain_of(), [TLSARecord(1, 1, 1, SHA256)], names=NAMES, now=NOW_TS
    ).failure == ("validation-failure")
    assert not verify_chain(
        [], [tlsa(3, 1, 1, CHAIN.server)], names=NAMES, now=NOW_TS
    ).authenticated


def test_look_alike_issuers_are_bounded() -> None:
    # Many certificates with the intermediate's name but other keys: the search checks a
    # bounded number of signatures and fails, rather than exploring every path.
    chain, record = _ta_chain()
    decoys = [issue("Intermediate CA", ca=True).der for _ in range(9)]
    result = verify_chain([chain[0], *decoys], [record], names=NAMES, now=NOW_TS)
    assert not result.authenticated


@given(st.lists(st.binary(max_size=200), max_size=4), st.binary(min_size=3, max_size=40))
def test_garbage_chains_never_raise(chain: list[bytes], rdata: bytes) -> None:
    result = verify_chain(chain, [TLSARecord.from_rdata(rdata)], names=NAMES, now=NOW_TS)
    assert not result.authenticated


# --- policy (Postfix dane_init(), RFC 7672 2.2) -----------------------------------------------

SECURE = Lookup("found", authenticated=True)
RECORDS = (tlsa(3, 1, 1, CHAIN.server),)


def policy(level: str = "dane", **overrides: object) -> object:
    options: dict[str, object] = {
        "hostname": "MX.example.test.",
        "mx_authenticated": True,
        "address_authenticated": True,
        "tlsa": SECURE,
        "records": RECORDS,
        "insecure_mx_policy": default_insecure_mx_policy(level),
    }
    options.update(overrides)
    return dane_policy(level, **options)  # type: ignore[arg-type]


def outcome(result: object) -> tuple[object, ...]:
    return (result.level, result.dsn, result.tlsrpt)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("level", "overrides", "expected"),
    [
        # Secure MX, secure host, secure usable TLSA: DANE authentication is required.
        ("dane", {}, ("dane", None, None)),
        ("dane-only", {}, ("dane", None, None)),
        # Non-MX destination ([host], or no MX records: RFC 7672 2.2.2).
        ("dane", {"mx_authenticated": None}, ("dane", None, None)),
        # Validated denial, or an insecure TLSA answer: no DANE.
        ("dane", {"tlsa": Lookup("nxdomain", True), "records": ()}, ("may", None, None)),
        ("dane", {"tlsa": Lookup("nodata", True), "records": ()}, ("may", None, None)),
        ("dane", {"tlsa": Lookup("found", False)}, ("may", None, None)),
        (
            "dane-only",
            {"tlsa": Lookup("nxdomain", True), "records": ()},
            ("defer", "4.7.5", "dane-required"),
        ),
        ("dane-only", {"tlsa": Lookup("found", False)}, ("defer", "4.7.5", "dane-required")),
        # A failed (bogus, SERVFAIL) TLSA lookup defers at both levels.
        ("dane", {"tlsa": Lookup("error")}, ("defer", "4.7.5", "dnssec-invalid")),
        ("dane-only", {"tlsa": Lookup("error")}, ("defer", "4.7.5", "dnssec-invalid")),
        # Only unusable records: TLS without authentication at dane, defer at dane-only.
        ("dane", {"records": (TLSARecord(1, 1, 1, SHA256),)}, ("encrypt", None, "tlsa-invalid")),
        (
            "dane-only",
            {"records": (TLSARecord(1, 1, 1, SHA256),)},
            ("defer", "4.7.5", "tlsa-invalid"),
        ),
        # Host address insecure: no TLSA lookup at all (RFC 7672 2.2.3).
        ("dane", {"address_authenticated": False, "tlsa": None}, ("may", None, None)),
        (
            "dane-only",
            {"address_authenticated": False, "tlsa": None},
            ("defer", "4.7.5", "dane-required"),
        ),
        # Insecure MX (RFC 7672 2.2.1) with smtp_tls_dane_insecure_mx_policy.
        (
            "dane",
            {"mx_authenticated": False, "insecure_mx_policy": "may", "tlsa": None},
            ("may", None, None),
        ),
        (
            "dane",
            {"mx_authenticated": False, "insecure_mx_policy": "encrypt"},
            ("encrypt", None, "tlsa-invalid"),
        ),
        (
            "dane",
            {"mx_authenticated": False, "insecure_mx_policy": "dane"},
            ("half-dane", None, None),
        ),
        (
            "dane-only",
            {"mx_authenticated": False, "tlsa": None},
            ("defer", "4.7.5", "dane-required"),
        ),
        (
            "dane-only",
            {"mx_authenticated": False, "insecure_mx_policy": "dane", "tlsa": None},
            ("defer", "4.7.5", "dane-required"),
        ),
    ],
)
def test_policy_table(
    level: str, overrides: dict[str, object], expected: tuple[object, ...]
) -> None:
    assert outcome(policy(level, **overrides)) == expected


def test_dane_policy_carries_usable_records_and_names() -> None:
    weak = tlsa(3, 1, 1, CHAIN.server)
    strong = tlsa(3, 1, 2, CHAIN.server)
    result = policy(records=(weak, strong), aliases=("mx-alias.example.test", "mx.example.test"))
    assert result.records == (strong,)  # type: ignore[attr-defined]
    assert result.names == ("mx.example.test", "mx-alias.example.test")  # type: ignore[attr-defined]


def test_reasons_are_postfix_texts() -> None:
    assert policy(tlsa=Lookup("error")).reason == "TLSA lookup error for mx.example.test:25"  # type: ignore[attr-defined]
    assert policy("dane-only", mx_authenticated=False, tlsa=None).reason == "non DNSSEC destination"  # type: ignore[attr-defined]
    assert policy(records=(TLSARecord(0, 0, 1, SHA256),)).reason == "TLSA records unusable"  # type: ignore[attr-defined]


def test_tlsa_lookup_wanted_only_when_it_can_matter() -> None:
    kwargs: dict[str, object] = {"insecure_mx_policy": "dane"}
    assert tlsa_wanted("dane", mx_authenticated=True, address_authenticated=True, **kwargs)  # type: ignore[arg-type]
    assert not tlsa_wanted("dane", mx_authenticated=True, address_authenticated=False, **kwargs)  # type: ignore[arg-type]
    assert tlsa_wanted(
        "dane",
        mx_authenticated=True,
        address_authenticated=False,
        force_insecure_host_lookup=True,
        **kwargs,  # type: ignore[arg-type]
    )
    assert not tlsa_wanted(
        "dane-only", mx_authenticated=False, address_authenticated=True, **kwargs
    )  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="TLSA lookup is needed"):
        policy(tlsa=None)


def test_policy_misuse_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        policy("verify")
    with pytest.raises(LocalProtocolError):
        policy(insecure_mx_policy="none")
    with pytest.raises(LocalProtocolError):
        Lookup("error", authenticated=True)
    with pytest.raises(LocalProtocolError):
        Lookup("servfail")  # type: ignore[arg-type]


def test_defaults_and_names() -> None:
    assert default_insecure_mx_policy("dane") == "dane"
    assert default_insecure_mx_policy("may") == "may"
    assert tlsa_name("MX.Example.test.") == "_25._tcp.mx.example.test"
    assert tlsa_name("mx.example.test", 587) == "_587._tcp.mx.example.test"
    with pytest.raises(LocalProtocolError):
        tlsa_name("mx.example.test", 0)
