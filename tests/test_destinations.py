"""Destination syntax of smtp(8) and lmtp(8) (rules 14.1, 12.1; DN-15, DN-16)."""

from __future__ import annotations

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.config import ClientConfig
from smtpproto.destinations import Destination, normalize_domain, parse_destinations


def one(text: str, **kw: object) -> Destination:
    (destination,) = parse_destinations(text, **kw)  # type: ignore[arg-type]
    return destination


def uts46(name: str) -> str:
    """IDNA 2008 with UTS #46 mapping, the encoder the adapters pass."""
    return idna.encode(name, uts46=True).decode("ascii")


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("example.com", "mx", "example.com", 25),
        ("Example.COM:2525", "mx", "example.com", 2525),
        ("example.com:submission", "mx", "example.com", 587),
        ("example.com:SMTPS", "mx", "example.com", 465),
        ("example.com:submissions", "mx", "example.com", 465),
        ("example.com:lmtp", "mx", "example.com", 24),
        ("example.com:", "mx", "example.com", 25),
        ("[mx.example]", "host", "mx.example", 25),
        ("[mx.example]:587", "host", "mx.example", 587),
        ("[192.0.2.1]", "address", "192.0.2.1", 25),
        ("[192.0.2.1]:2525", "address", "192.0.2.1", 2525),
        ("[ipv6:2001:db8::1]:2525", "address", "2001:db8::1", 2525),
        ("[IPv6:2001:DB8:0:0:0:0:0:1]", "address", "2001:db8::1", 25),
        ("192.0.2.1:26", "address", "192.0.2.1", 26),
        ("example.com.", "mx", "example.com", 25),
    ],
)
def test_dn15_smtp_destination_forms(text: str, kind: str, host: str, port: int) -> None:
    assert one(text) == Destination(kind, host, port, text)  # type: ignore[arg-type]


def test_dn15_brackets_suppress_mx_lookup() -> None:
    assert [d.mx_lookup for d in parse_destinations("a.example [b.example] [192.0.2.1]")] == [
        True,
        False,
        False,
    ]


@pytest.mark.parametrize(
    ("text", "kind", "host", "port", "nexthop"),
    [
        ("bücher.example", "mx", "xn--bcher-kva.example", 25, "xn--bcher-kva.example"),
        ("[Bücher.example]:26", "host", "xn--bcher-kva.example", 26, "[xn--bcher-kva.example]:26"),
    ],
)
def test_dn16_a_non_ascii_destination_is_used_in_its_a_label_form(
    text: str, kind: str, host: str, port: int, nexthop: str
) -> None:
    # `text` is the next hop TLS policy and SASL lookups see: one spelling, the A-label.
    assert one(text, idna=uts46) == Destination(kind, host, port, nexthop)  # type: ignore[arg-type]


def test_dn16_idn_is_queried_as_a_label_and_trailing_dot_is_dropped() -> None:
    assert normalize_domain("bücher.example", uts46) == "xn--bcher-kva.example"
    assert normalize_domain("example.com.") == normalize_domain("example.com")


def test_dn16_idna_2008_keeps_sharp_s_so_fass_and_fass_stay_two_domains() -> None:
    # Postfix 3.7 (UTS #46 non-transitional): faß.de is xn--fa-hia.de; IDNA 2003, Python's
    # built-in codec, would send the mail to fass.de, another registered domain.
    assert normalize_domain("faß.de", uts46) == "xn--fa-hia.de"
    assert normalize_domain("FASS.de", uts46) == "fass.de"
    assert "faß.de".encode("idna") == b"fass.de"  # the codec the core must never use


def test_dn16_non_ascii_without_an_encoder_is_refused_naming_the_extra() -> None:
    with pytest.raises(LocalProtocolError, match=r"smtpproto-client\[idna\]"):
        normalize_domain("faß.de")
    with pytest.raises(LocalProtocolError, match="IDNA 2008"):
        parse_destinations("[faß.de]:25")


def test_dn16_an_encoder_error_or_bad_output_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError, match="invalid host name"):
        normalize_domain("a\u200db.example", uts46)  # ZWJ outside a joining context
    with pytest.raises(LocalProtocolError, match="encoder returned"):
        normalize_domain("bücher.example", lambda name: name)
    with pytest.raises(LocalProtocolError, match="invalid host name"):
        normalize_domain("bücher.example", lambda name: "not a name")


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,3}", fullmatch=True))
def test_dn16_ascii_names_never_reach_the_encoder(name: str) -> None:
    def refuse(text: str) -> str:
        raise AssertionError(f"the encoder was asked about {text!r}")

    assert normalize_domain(name, refuse) == name


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("unix:/var/run/dovecot/lmtp", "unix", "/var/run/dovecot/lmtp", None),
        ("inet:lmtp.example", "host", "lmtp.example", 24),
        ("inet:lmtp.example:2424", "host", "lmtp.example", 2424),
        ("inet:[192.0.2.5]", "address", "192.0.2.5", 24),
        ("inet:[192.0.2.5]:2003", "address", "192.0.2.5", 2003),
        ("inet:[ipv6:::1]:24", "address", "::1", 24),
        ("lmtp.example", "host", "lmtp.example", 24),
        ("lmtp.example:25", "host", "lmtp.example", 25),
    ],
)
def test_lmtp_destination_forms_never_look_up_mx(
    text: str, kind: str, host: str, port: int | None
) -> None:
    assert one(text, lmtp=True) == Destination(kind, host, port, text)  # type: ignore[arg-type]


def test_list_is_separated_by_commas_and_spaces_in_order() -> None:
    hosts = [d.host for d in parse_destinations(" a.example,b.example  c.example ,, [d.example]")]
    assert hosts == ["a.example", "b.example", "c.example", "d.example"]


def test_default_port_comes_from_argument_then_config() -> None:
    assert one("example.com", default_port=2525).port == 2525
    assert one("example.com", config=ClientConfig(tcp_port=26)).port == 26
    assert one("inet:h.example", lmtp=True, config=ClientConfig(lmtp_tcp_port=2003)).port == 2003


@pytest.mark.parametrize(
    ("text", "lmtp", "message"),
    [
        ("", False, "destination: empty"),
        (" , ", False, "destination: empty"),
        ("[192.0.2.1]x", False, 'garbage after "]"'),
        ("[192.0.2.1]:25:26", False, "unknown service"),
        ("[192.0.2.1", False, 'missing "]"'),
        ("[]", False, "empty host name"),
        ("[ipv6:nonsense]", False, "invalid IPv6 address"),
        ("[ipv6:192.0.2.1]", False, "invalid IPv6 address"),
        ("[2001:db8::1]", False, r"\[ipv6:address\]"),
        ("[300.1.1.1]", False, "invalid IPv4 address"),
        ("example.com:0", False, "out of range"),
        ("example.com:65536", False, "out of range"),
        ("example.com:pop3", False, "unknown service 'pop3'"),
        ("example.com:²", False, "unknown service"),
        ("-example.com", False, "invalid host name"),
        ("exa!mple.com", False, "invalid host name"),
        ("a..example", False, "invalid host name"),
        ("x" * 64 + ".example", False, "invalid host name"),
        ("exam\x00ple.com", False, "control characters"),
        ("unix:/tmp/lmtp", False, "LMTP only"),
        ("inet:host.example", False, "LMTP only"),
        ("unix:", True, "empty socket path"),
        (":25", False, "empty host name"),
    ],
)
def test_malformed_destinations_name_the_entry_and_the_problem(
    text: str, lmtp: bool, message: str
) -> None:
    with pytest.raises(LocalProtocolError, match=message) as info:
        parse_destinations(text, lmtp=lmtp)
    if text.strip(" ,"):
        assert repr(text) in str(info.value)


def test_non_string_destination_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="destination: expected a str"):
        parse_destinations(b"example.com")  # type: ignore[arg-type]


def test_destination_validates_itself() -> None:
    with pytest.raises(LocalProtocolError, match="port"):
        Destination("mx", "example.com", 0, "example.com:0")
    with pytest.raises(LocalProtocolError, match="unix destination has no port"):
        Destination("unix", "/x", 24, "unix:/x")
    with pytest.raises(LocalProtocolError, match="kind"):
        Destination("srv", "x", 25, "x")  # type: ignore[arg-type]


_label = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@settings(max_examples=200, deadline=None)
@given(st.lists(_label, min_size=1, max_size=4), st.integers(1, 65535) | st.none())
def test_valid_domains_round_trip(labels: list[str], port: int | None) -> None:
    domain = ".".join(labels)
    text = domain if port is None else f"{domain}:{port}"
    parsed = one(text)
    assert (parsed.host, parsed.port) == (domain, 25 if port is None else port)
    assert parsed.kind in ("mx", "address")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.booleans())
def test_arbitrary_text_parses_or_raises_local_protocol_error(text: str, lmtp: bool) -> None:
    try:
        result = parse_destinations(text, lmtp=lmtp)
    except LocalProtocolError:
        return
    assert all(isinstance(d, Destination) for d in result)
