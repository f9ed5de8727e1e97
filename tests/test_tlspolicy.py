"""TLS security levels, policy-table lookups and certificate name matching (rule 5; NS-*)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.engine.tlspolicy import (
    LEVELS,
    TLSPolicy,
    certificate_matches,
    certificate_names,
    check_peer,
    cipher_list,
    established_message,
    match_names,
    matched_name,
    min_protocol,
    needs_match,
    nexthop_domain,
    parse_level,
    parse_policy,
    policy_for,
    server_name,
    tls_parameters,
    tls_required,
    trust_word,
)
from smtpproto.requests import TLSInfo, TLSParameters

FAST = settings(max_examples=200, deadline=None)


def cert(*dns: str, cn: str | None = None) -> dict[str, object]:
    """A getpeercert() dictionary with these DNS subjectAltNames and subject CN."""
    peer: dict[str, object] = {"subject": ((("countryName", "XX"),),)}
    if cn is not None:
        peer["subject"] = ((("countryName", "XX"),), (("commonName", cn),))
    if dns:
        peer["subjectAltName"] = tuple(("DNS", name) for name in dns)
    return peer


# -- levels (rule 5.1) ------------------------------------------------------------------------


def test_levels_order_and_requirements() -> None:
    assert LEVELS == (
        "none", "may", "encrypt", "fingerprint", "dane", "dane-only", "verify", "secure",
    )  # fmt: skip
    # "dane" as the level DANE resolution leaves when the server has usable TLSA records.
    assert [tls_required(level) for level in LEVELS] == [False, False, *[True] * 6]
    assert [needs_match(level) for level in LEVELS] == [*[False] * 6, True, True]
    assert tls_required("half-dane") and not needs_match("half-dane")


@pytest.mark.parametrize(("text", "level"), [("", "none"), (" MAY ", "may"), ("Secure", "secure")])
def test_parse_level(text: str, level: str) -> None:
    assert parse_level(text) == level


def test_half_dane_is_derived_never_configured() -> None:
    # Postfix sets TLS_LEV_HALF_DANE in dane_init() only (smtp_tls_policy.c).
    with pytest.raises(ValueError, match="derived, never configured"):
        parse_level("half-dane")
    assert TLSPolicy("half-dane").level == "half-dane"


def test_unknown_level_is_value_error() -> None:
    with pytest.raises(ValueError, match="unknown level 'encrypted'"):
        parse_level("encrypted")


def test_policy_validates() -> None:
    with pytest.raises(ValueError, match="needs at least one name"):
        TLSPolicy("verify")
    with pytest.raises(ValueError, match="write 'may'"):
        TLSPolicy("MAY")
    with pytest.raises(ValueError, match="grade"):
        TLSPolicy("encrypt", ciphers="export")
    with pytest.raises(ValueError, match="allows no TLS version"):
        TLSPolicy("encrypt", protocols=("<=SSLv3",))
    with pytest.raises(ValueError, match="invalid name"):
        TLSPolicy("secure", match=("*.example.com",))


# -- smtp_tls_policy_maps (rules 5.1, 5.10) ---------------------------------------------------

MAPS = {
    "example.com": "secure",
    ".example.com": "verify match=hostname:.example.net",
    "[mail.example.org]:587": "encrypt protocols=>=TLSv1.3 ciphers=high exclude=3DES:RC4",
    "Example.NET": "none",
    "bad.example": "secure frobnicate=1",
    "dane.example": "dane match=hostname",
}


@pytest.mark.parametrize(
    ("nexthop", "level", "match"),
    [
        ("example.com", "secure", ("nexthop", "dot-nexthop")),
        ("EXAMPLE.com", "secure", ("nexthop", "dot-nexthop")),
        ("mx.example.com", "verify", ("hostname", ".example.net")),
        ("a.b.example.com", "verify", ("hostname", ".example.net")),
        ("[mail.example.org]:587", "encrypt", ()),
        ("[mail.example.org]", "may", ()),
        ("mail.example.org", "may", ()),
        ("example.net", "none", ()),
        ("sub.example.net", "may", ()),
        ("[example.com]", "may", ()),
        ("example.com.", "may", ()),
    ],
)
def test_policy_map_lookup(nexthop: str, level: str, match: tuple[str, ...]) -> None:
    policy = policy_for(nexthop, default_level="may", policy_maps=MAPS)
    assert (policy.level, policy.match) == (level, match)


def test_policy_map_attributes() -> None:
    policy = policy_for("[mail.example.org]:587", default_level="may", policy_maps=MAPS)
    assert policy.protocols == (">=TLSv1.3",)
    assert policy.ciphers == "high"
    assert policy.exclude == ("3DES", "RC4")


@pytest.mark.parametrize(
    ("nexthop", "error"), [("bad.example", "frobnicate"), ("dane.example", "invalid at level")]
)
def test_policy_map_errors_name_the_key(nexthop: str, error: str) -> None:
    with pytest.raises(ValueError, match=error) as info:
        policy_for(nexthop, default_level="may", policy_maps=MAPS)
    assert repr(nexthop) in str(info.value)


def test_default_level_and_configured_match_words() -> None:
    policy = policy_for(
        "x.example", default_level="verify", policy_maps={}, verify_match=("nexthop",)
    )
    assert (policy.level, policy.match) == ("verify", ("nexthop",))
    secure = policy_for(
        "x.example",
        default_level="",
        policy_maps={"x.example": "secure"},
        secure_match=("nexthop",),
    )
    assert secure.match == ("nexthop",)
    assert policy_for("x.example", default_level="", policy_maps={}).level == "none"


@pytest.mark.parametrize(
    "value",
    ["", "may match=a", "verify match", "verify match=", "secure tafile=/x", "may servername"],
)
def test_parse_policy_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        parse_policy(value)


def test_parse_policy_servername() -> None:
    assert parse_policy("encrypt servername=hostname").servername == "hostname"


# -- reference names (rule 5.8) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("destination", "domain"),
    [
        ("example.com", "example.com"),
        ("Example.COM:25", "example.com"),
        ("[mx.example.com]", "mx.example.com"),
        ("[mx.example.com]:587", "mx.example.com"),
        ("inet:[lmtp.example]:24", "lmtp.example"),
        ("example.com.", "example.com"),
    ],
)
def test_nexthop_domain(destination: str, domain: str) -> None:
    assert nexthop_domain(destination) == domain


def test_nexthop_domain_rejects_garbage() -> None:
    with pytest.raises(LocalProtocolError):
        nexthop_domain("[a]b]")


@pytest.mark.parametrize(
    ("policy", "names"),
    [
        (TLSPolicy("verify", ("hostname",)), ("mx1.mail.example.net",)),
        (TLSPolicy("secure", ("nexthop", "dot-nexthop")), ("example.com", ".example.com")),
        (
            TLSPolicy("secure", ("hostname", "example.org", ".example.org")),
            ("mx1.mail.example.net", "example.org", ".example.org"),
        ),
        (TLSPolicy("encrypt", ("hostname",)), ()),
        (TLSPolicy("may"), ()),
    ],
)
def test_match_names(policy: TLSPolicy, names: tuple[str, ...]) -> None:
    assert match_names(policy, hostname="MX1.mail.example.net.", nexthop="example.com") == names


def test_ns14_a_name_mismatch_shows_hostile_certificate_names_tamed() -> None:
    names = ("evil\r\n.example", "a" * 300, *(f"n{i}.example" for i in range(6)))
    info = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", True, cert(*names))
    reason = check_peer(TLSPolicy("verify", ("hostname",)), info, ("mx.example.com",))
    assert reason is not None and reason.isprintable()
    assert "evil??.example" in reason and "a" * 256 not in reason
    assert reason.endswith("n2.example and 3 more)")


def test_match_names_never_encodes_a_u_label_with_idna_2003() -> None:
    # Next hops arrive as A-labels (smtpproto.destinations, IDNA 2008). Python's codec is
    # IDNA 2003, which would turn faß into fass, another domain: a U-label matches nothing.
    policy = TLSPolicy("verify", ("hostname",))
    assert match_names(policy, hostname="mx.xn--bcher-kva.example", nexthop="x") == (
        "mx.xn--bcher-kva.example",
    )
    assert match_names(policy, hostname="mx.faß.example", nexthop="x") == ()


# -- certificate matching (rule 5.8; Postfix match_servername) -------------------------------


@pytest.mark.parametrize(
    ("certificate_names_", "reference", "matches"),
    [
        # Literal names.
        (("example.com",), "example.com", True),
        (("EXAMPLE.com",), "example.COM", True),
        (("example.com",), "mx.example.com", False),
        (("mx.example.com",), "example.com", False),
        # ".example.com": sub-domains only, at any depth, never the domain itself.
        (("mx.example.com",), ".example.com", True),
        (("a.b.example.com",), ".example.com", True),
        (("example.com",), ".example.com", False),
        (("badexample.com",), ".example.com", False),
        (("*.example.com",), ".example.com", True),
        # Wildcards: exactly one leftmost label.
        (("*.example.com",), "mx.example.com", True),
        (("*.example.com",), "a.b.example.com", False),
        (("*.example.com",), "example.com", False),
        (("*.com",), "example.com", False),
        (("mx*.example.com",), "mx1.example.com", False),
        (("*mx.example.com",), "amx.example.com", False),
        (("m*x.example.com",), ".example.com", False),
        (("mx.*.example.com",), "mx.a.example.com", False),
        (("*",), "example", False),
        # A reference is never a pattern.
        (("mx.example.com",), "*.example.com", False),
        (("example.com", "mx.example.org"), "mx.example.org", True),
    ],
)
def test_certificate_name_table(
    certificate_names_: tuple[str, ...], reference: str, matches: bool
) -> None:
    assert certificate_matches(cert(*certificate_names_), [reference]) is matches


def test_subject_alt_name_dns_wins_over_cn() -> None:
    peer = cert("mx.example.com", cn="other.example.com")
    assert certificate_names(peer) == ("mx.example.com",)
    assert not certificate_matches(peer, ["other.example.com"])


def test_cn_used_only_without_dns_san() -> None:
    peer = cert(cn="Mx.Example.com")
    assert certificate_names(peer) == ("mx.example.com",)
    assert certificate_matches(peer, ["mx.example.com"])
    ip_only = {**cert(cn="mx.example.com"), "subjectAltName": (("IP Address", "192.0.2.1"),)}
    assert certificate_matches(ip_only, ["mx.example.com"])


def test_no_names_or_no_certificate_never_match() -> None:
    assert not certificate_matches(cert("example.com"), [])
    assert not certificate_matches(None, ["example.com"])
    assert not certificate_matches({}, ["example.com"])
    assert not certificate_matches(cert("example.com"), [".", ""])


def test_malformed_certificate_dictionary_is_harmless() -> None:
    odd = {"subjectAltName": ("DNS", 7, ("DNS",), ("DNS", None)), "subject": "nonsense"}
    assert certificate_names(odd) == ()
    assert not certificate_matches(odd, ["example.com"])


def test_matched_name_reports_the_reference() -> None:
    peer = cert("*.example.com")
    assert matched_name(peer, ["example.org", "mx.example.com"]) == "mx.example.com"


@FAST
@given(
    label=st.from_regex(r"[a-z0-9]{1,10}", fullmatch=True),
    domain=st.from_regex(r"[a-z]{1,8}\.[a-z]{2,4}", fullmatch=True),
)
def test_wildcard_covers_exactly_one_label(label: str, domain: str) -> None:
    peer = cert("*." + domain)
    assert certificate_matches(peer, [f"{label}.{domain}"])
    assert not certificate_matches(peer, [domain])
    assert not certificate_matches(peer, [f"{label}.{label}.{domain}"])
    assert not certificate_matches(cert(f"{label}*.{domain}"), [f"{label}x.{domain}"])


# -- after the handshake (rule 5.6; NS-14) -----------------------------------------------------

VERIFIED = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", True, cert("mx.example.com"))
UNVERIFIED = TLSInfo("TLSv1.3", "TLS_AES_256_GCM_SHA384", False, None)


@pytest.mark.parametrize(
    ("level", "info", "names", "reason"),
    [
        ("may", UNVERIFIED, (), None),
        ("encrypt", UNVERIFIED, (), None),
        ("verify", UNVERIFIED, ("mx.example.com",), "Server certificate not trusted"),
        ("verify", VERIFIED, ("mx.example.com",), None),
        (
            "verify",
            VERIFIED,
            ("mx.example.org",),
            "Server certificate not verified (expected mx.example.org; presented mx.example.com)",
        ),
        ("secure", VERIFIED, ("example.com", ".example.com"), None),
        (
            "secure",
            VERIFIED,
            (),
            "Server certificate not verified (expected none; presented mx.example.com)",
        ),
    ],
)
def test_ns14_check_peer(
    level: str, info: TLSInfo, names: tuple[str, ...], reason: str | None
) -> None:
    policy = TLSPolicy(level, ("hostname",) if needs_match(level) else ())
    assert check_peer(policy, info, names) == reason


def test_trust_words() -> None:
    assert trust_word(UNVERIFIED, False) == "Untrusted"
    assert trust_word(TLSInfo("TLSv1.2", "ADH-AES256-GCM-SHA384", False), False) == "Anonymous"
    assert trust_word(VERIFIED, False) == "Trusted"
    assert trust_word(VERIFIED, True) == "Verified"
    assert established_message(VERIFIED, matched=True, peer="mx.example.com[192.0.2.1]:25") == (
        "Verified TLS connection established to mx.example.com[192.0.2.1]:25: "
        "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384"
    )


# -- protocols and ciphers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "floor"),
    [
        (">=TLSv1.2", "TLSv1.2"),
        ([">=TLSv1.2"], "TLSv1.2"),
        ("!SSLv2, !SSLv3, !TLSv1, !TLSv1.1", "TLSv1.2"),
        ("!SSLv2:!SSLv3", "TLSv1"),
        ("!SSLv2 !SSLv3 !TLSv1", "TLSv1.1"),
        ("TLSv1.2, TLSv1.3", "TLSv1.2"),
        ("SSLv3, TLSv1", "TLSv1"),
        ("", "TLSv1"),
        (">=tlsv1.3", "TLSv1.3"),
        (">=TLSv1 <=TLSv1.2", "TLSv1"),
        ("!TLSv1.2", "TLSv1"),
    ],
)
def test_min_protocol(value: str | list[str], floor: str) -> None:
    assert min_protocol(value) == floor


@pytest.mark.parametrize(
    "value",
    ["TLSv1.4", ">TLSv1.2", "!TLSv1, !TLSv1.1, !TLSv1.2, !TLSv1.3", "SSLv3", ">=TLSv1.3 <=TLSv1.2"],
)
def test_min_protocol_rejects(value: str) -> None:
    with pytest.raises(ValueError):
        min_protocol(value)


def test_cipher_list_grades() -> None:
    assert cipher_list("medium") is None
    assert cipher_list("high") == "aNULL:-aNULL:HIGH:@STRENGTH"
    assert cipher_list("null") == "eNULL:!aNULL"
    assert cipher_list("medium", exclude=["3DES", "RC4:aNULL"]) == (
        "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!3DES:!RC4:!aNULL"
    )
    assert cipher_list("medium", cipherlists={"medium": "HIGH"}) == "HIGH"
    with pytest.raises(ValueError, match="obsolete"):
        cipher_list("export")
    with pytest.raises(ValueError, match="unknown grade"):
        cipher_list("strong")
    with pytest.raises(ValueError, match="invalid cipher"):
        cipher_list("high", exclude=["A!B"])


def test_tls_parameters_per_level() -> None:
    assert tls_parameters(TLSPolicy("may")) == TLSParameters(verify=False, min_version="TLSv1")
    assert tls_parameters(TLSPolicy("encrypt")) == TLSParameters(
        verify=False, min_version="TLSv1.2"
    )
    verify = tls_parameters(
        TLSPolicy("verify", ("hostname",)), ca_file="/ca.pem", cert_file="/c.pem"
    )
    assert verify == TLSParameters(
        verify=True, ca_file="/ca.pem", cert_file="/c.pem", min_version="TLSv1.2"
    )
    assert tls_parameters(TLSPolicy("secure", ("nexthop",))).verify


def test_tls_parameters_mandatory_settings_apply_above_may() -> None:
    kwargs = {
        "mandatory_protocols": "!SSLv2, !SSLv3, !TLSv1, !TLSv1.1, !TLSv1.2",
        "mandatory_ciphers": "high",
        "mandatory_exclude_ciphers": ["3DES"],
        "exclude_ciphers": ["RC4"],
    }
    encrypt = tls_parameters(TLSPolicy("encrypt"), **kwargs)  # type: ignore[arg-type]
    assert encrypt.min_version == "TLSv1.3"
    assert encrypt.ciphers == "aNULL:-aNULL:HIGH:@STRENGTH:!RC4:!3DES"
    may = tls_parameters(TLSPolicy("may"), **kwargs)  # type: ignore[arg-type]
    assert may.min_version == "TLSv1"
    assert may.ciphers == "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH:!RC4"


def test_tls_parameters_policy_attributes_win() -> None:
    policy = parse_policy("encrypt protocols=>=TLSv1.3 ciphers=high exclude=3DES")
    parameters = tls_parameters(policy, mandatory_protocols=">=TLSv1")
    assert parameters.min_version == "TLSv1.3"
    assert parameters.ciphers == "aNULL:-aNULL:HIGH:@STRENGTH:!3DES"


def test_tls_parameters_for_none_is_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        tls_parameters(TLSPolicy("none"))


@pytest.mark.parametrize(
    ("policy", "hostname", "sni"),
    [
        ("encrypt", "MX.example.com.", "mx.example.com"),
        ("encrypt servername=hostname", "mx.example.com", "mx.example.com"),
        ("verify servername=smtp.example.net", "mx.example.com", "smtp.example.net"),
        ("encrypt", "192.0.2.1", None),
        ("encrypt", "2001:db8::1", None),
        ("encrypt", "mx.xn--bcher-kva.example", "mx.xn--bcher-kva.example"),
        ("encrypt", "mx.faß.example", None),
    ],
)
def test_server_name_for_sni(policy: str, hostname: str, sni: str | None) -> None:
    assert server_name(parse_policy(policy), hostname=hostname) == sni
