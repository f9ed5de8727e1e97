"""ClientConfig, from_postconf and from_main_cf: every smtp(8) parameter is read with Postfix's
syntax and rules, or refused naming the parameter; time values are checked in one place."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto._parameters import MAX_SECONDS, NOT_APPLICABLE, CheckAction, expand, parse_main_cf
from smtpproto.config import (
    EXTENSION_FIELDS,
    LEGACY,
    ClientConfig,
    TrustAnchors,
    declaration,
    declarations,
    parse_master_cf,
)
from smtpproto.tables import Lookup, MatchList

# One from_postconf case per field: Postfix name -> (postconf text, expected field value).
CASES: dict[str, tuple[Any, Any]] = {
    "myhostname": ("host.example", "host.example"),
    "smtp_helo_name": ("client.example", "client.example"),
    "smtp_tcp_port": ("submission", 587),
    "lmtp_tcp_port": ("2424", 2424),
    "known_tcp_ports": (
        "smtp=25, smtps=submissions=465",
        {"smtp": 25, "smtps": 465, "submissions": 465},
    ),
    "ignore_mx_lookup_error": ("yes", True),
    "smtp_always_send_ehlo": ("no", False),
    "smtp_never_send_ehlo": ("yes", True),
    "smtp_defer_if_no_mx_address_found": ("yes", True),
    "smtp_line_length_limit": ("990", 990),
    "smtp_pix_workaround_delay_time": ("2s", 2.0),
    "smtp_pix_workaround_threshold_time": ("0", 0.0),
    "smtp_pix_workarounds": ("", frozenset()),
    "smtp_pix_workaround_maps": (
        "inline:{ 192.0.2.1=delay_dotcrlf }",
        ("192.0.2.1", frozenset({"delay_dotcrlf"})),
    ),
    "smtp_quote_rfc821_envelope": ("no", False),
    "smtp_skip_5xx_greeting": ("no", False),
    "smtp_skip_4xx_greeting": ("no", False),
    "smtp_skip_quit_response": ("no", False),
    "smtp_discard_ehlo_keyword_address_maps": (
        "inline:{ 192.0.2.1=auth }",
        ("192.0.2.1", frozenset({"AUTH"})),
    ),
    "smtp_discard_ehlo_keywords": ("pipelining, DSN", frozenset({"PIPELINING", "DSN"})),
    "smtp_generic_maps": (
        "inline:{ root@localhost=admin@example.com }",
        ("root@localhost", "admin@example.com"),
    ),
    "smtp_cname_overrides_servername": ("yes", True),
    "disable_mime_output_conversion": ("yes", True),
    "mime_boundary_length_limit": ("1000", 1000),
    "mime_nesting_limit": ("20", 20),
    "smtputf8_enable": ("no", False),
    "enable_idna2003_compatibility": ("yes", True),
    "smtp_send_xforward_command": ("yes", True),
    "smtp_header_checks": (
        "regexp:{ {/^Subject: spam/ REJECT} }",
        ("Subject: spam", CheckAction("REJECT", "", "5.7.1")),
    ),
    "smtp_mime_header_checks": (
        "pcre:{ {/name=.*\\.exe/ REJECT 4.7.0 later} }",
        ("name=x.exe", CheckAction("REJECT", "later", "4.7.0")),
    ),
    "smtp_nested_header_checks": ("static:IGNORE", ("X-Any: 1", CheckAction("IGNORE"))),
    "smtp_body_checks": (
        "regexp:{ {/viagra/ DISCARD} }",
        ("buy viagra", CheckAction("DISCARD", "", "5.7.1")),
    ),
    "smtp_reply_filter": ("pcre:{ {/^(\\d\\d\\d)-/ $$1 } }", ("250-x", "250")),
    "smtp_delivery_status_filter": ("inline:{ 5.1.1=4.1.1 }", ("5.1.1", "4.1.1")),
    "smtpproto_chunking": ("yes", True),
    "smtpproto_chunking_one_flight_limit": ("0", 0),
    "smtpproto_mta_sts_enable": ("yes", True),
    "smtp_sasl_auth_enable": ("yes", True),
    "smtp_sasl_password_maps": (
        "inline:{ [mail.example]=user:secret }",
        ("[MAIL.example]", "user:secret"),
    ),
    "smtp_sasl_security_options": ("noanonymous", frozenset({"noanonymous"})),
    "smtp_sasl_tls_security_options": ("", frozenset()),
    "smtp_sasl_tls_verified_security_options": ("noanonymous", frozenset({"noanonymous"})),
    "smtp_sasl_mechanism_filter": ("plain, login", ("plain", "login")),
    "smtp_sender_dependent_authentication": ("yes", True),
    "smtp_sasl_auth_soft_bounce": ("no", False),
    "send_cyrus_sasl_authzid": ("yes", True),
    "smtpproto_sasl_scram_max_iterations": ("65536", 65536),
    "smtp_send_dummy_mail_auth": ("yes", True),
    "smtp_tls_security_level": ("verify", "verify"),
    "smtp_tls_policy_maps": ("inline:{ example.com=secure }", ("EXAMPLE.COM", "secure")),
    "smtp_tls_wrappermode": ("yes", True),
    "smtp_tls_servername": ("nexthop", "nexthop"),
    "smtp_starttls_timeout": ("1m", 60.0),
    "smtp_tls_CAfile": ("/etc/ssl/ca.pem", "/etc/ssl/ca.pem"),
    "smtp_tls_CApath": ("/etc/ssl/certs", "/etc/ssl/certs"),
    "smtp_tls_chain_files": ("/etc/ssl/chain.pem", ("/etc/ssl/chain.pem",)),
    "smtp_tls_cert_file": ("/etc/ssl/client.pem", "/etc/ssl/client.pem"),
    "smtp_tls_key_file": ("/etc/ssl/client.key", "/etc/ssl/client.key"),
    "smtp_tls_eccert_file": ("/etc/ssl/ec.pem", "/etc/ssl/ec.pem"),
    "smtp_tls_eckey_file": ("/etc/ssl/ec.key", "/etc/ssl/ec.key"),
    "smtp_tls_ciphers": ("high", "high"),
    "smtp_tls_mandatory_ciphers": ("high", "high"),
    "smtp_tls_exclude_ciphers": ("aNULL, RC4", ("aNULL", "RC4")),
    "smtp_tls_mandatory_exclude_ciphers": ("MD5", ("MD5",)),
    "smtp_tls_protocols": ("!SSLv2, !SSLv3", ("!SSLv2", "!SSLv3")),
    "smtp_tls_mandatory_protocols": (">= TLSv1.3", (">=TLSv1.3",)),
    "smtp_tls_note_starttls_offer": ("yes", True),
    "smtp_tls_secure_cert_match": ("nexthop, .Example.COM", ("nexthop", ".example.com")),
    "smtp_tls_verify_cert_match": ("hostname, example.com", ("hostname", "example.com")),
    "smtp_tls_connection_reuse": ("yes", True),
    "smtp_tls_fingerprint_cert_match": ("3D:95:34", ("3D:95:34",)),
    "smtp_tls_fingerprint_digest": ("sha512", "sha512"),
    "smtp_tls_trust_anchor_file": ("", TrustAnchors()),
    "smtp_tls_dane_insecure_mx_policy": ("encrypt", "encrypt"),
    "smtp_tls_force_insecure_host_tlsa_lookup": ("yes", True),
    "tls_dane_digests": ("SHA512=2, sha256", ("sha512=2", "sha256")),
    "tls_high_cipherlist": ("HIGH:!aNULL", "HIGH:!aNULL"),
    "tls_medium_cipherlist": ("MEDIUM", "MEDIUM"),
    "tls_low_cipherlist": ("LOW", "LOW"),
    "tls_null_cipherlist": ("eNULL", "eNULL"),
    "transport_destination_recipient_limit": ("10", 10),
    "transport_destination_concurrency_limit": ("0", 0),
    "default_process_limit": ("250", 250),
    "smtp_connect_timeout": ("1m", 60.0),
    "smtp_helo_timeout": ("5m", 300.0),
    "smtp_xforward_timeout": ("3m", 180.0),
    "smtp_mail_timeout": ("30s", 30.0),
    "smtp_rcpt_timeout": ("90s", 90.0),
    "smtp_data_init_timeout": ("60", 60.0),
    "smtp_data_xfer_timeout": ("1w", 604800.0),
    "smtp_data_done_timeout": ("1d", 86400.0),
    "smtp_quit_timeout": ("10s", 10.0),
    "smtp_rset_timeout": ("1m", 60.0),
    "smtp_per_request_deadline": ("yes", True),
    "smtp_min_data_rate": ("1000", 1000),
    "smtp_mx_address_limit": ("0", 0),
    "smtp_mx_session_limit": ("3", 3),
    "smtp_connection_cache_destinations": ("example.com, !example.net", ("example.com",)),
    "smtp_connection_cache_on_demand": ("no", False),
    "smtp_connection_reuse_time_limit": ("1h", 3600.0),
    "smtp_connection_reuse_count_limit": ("10", 10),
    "smtp_connection_cache_time_limit": ("5s", 5.0),
    "minimal_backoff_time": ("5m", 300.0),
    "best_mx_transport": ("[192.0.2.7]", "[192.0.2.7]"),
    "delay_logging_resolution_limit": ("3", 3),
    "inet_interfaces": ("192.0.2.1 2001:db8::1", ("192.0.2.1", "2001:db8::1")),
    "proxy_interfaces": ("198.51.100.9", ("198.51.100.9",)),
    "inet_protocols": ("ipv4", frozenset({"ipv4"})),
    "smtp_bind_address": ("192.0.2.2", "192.0.2.2"),
    "smtp_bind_address6": ("2001:db8::2", "2001:db8::2"),
    "smtp_bind_address_enforce": ("yes", True),
    "smtp_host_lookup": ("dns, native", ("dns", "native")),
    "smtp_dns_support_level": ("dnssec", "dnssec"),
    "smtp_randomize_addresses": ("no", False),
    "smtp_address_preference": ("ipv6", "ipv6"),
    "smtp_balance_inet_protocols": ("no", False),
    "smtp_fallback_relay": (
        "[relay1.example], relay2.example:2525",
        ("[relay1.example]", "relay2.example:2525"),
    ),
    "smtp_dns_reply_filter": ("static:ignore", ("mx.example. IN MX 10 x.", "ignore")),
}

FIELDS = [d for d in declarations() if d.status != "not applicable" and d not in LEGACY]


def _value(config: ClientConfig, field: str, expected: Any) -> Any:
    """The field's value in the shape of `expected` (a lookup table: the probed entry)."""
    value = getattr(config, field)
    if isinstance(value, Lookup):
        return (expected[0], value.get(expected[0]))
    if isinstance(value, MatchList):
        return value.names()
    if field == "known_tcp_ports":
        return dict(value)
    return value


def test_every_field_has_a_from_postconf_case() -> None:
    assert sorted(CASES) == sorted(d.name for d in FIELDS)


def test_every_field_but_lmtp_and_the_extensions_is_a_declared_parameter() -> None:
    declared = {d.field for d in FIELDS}
    assert set(ClientConfig.__dataclass_fields__) - {"lmtp"} == declared
    assert declared >= EXTENSION_FIELDS


@pytest.mark.parametrize("declared", FIELDS, ids=lambda d: d.name)
def test_from_postconf_reads_each_field_in_postfix_syntax(declared: Any) -> None:
    raw, expected = CASES[declared.name]
    config = ClientConfig.from_postconf({declared.name: raw})
    assert _value(config, declared.field, expected) == expected


@pytest.mark.parametrize("declared", NOT_APPLICABLE, ids=lambda d: d.name)
def test_not_applicable_parameters_are_accepted_and_change_nothing(declared: Any) -> None:
    sample = {
        "time": "10s",
        "number": "5",
        "yes/no": "yes",
        "text": "/some/thing",
        "list": "a, b",
    }.get(declared.kind.label, declared.postfix_default)
    lmtp = declared.name.startswith("lmtp_")
    assert ClientConfig.from_postconf({declared.name: sample}, lmtp=lmtp) == (
        ClientConfig.from_postconf({}, lmtp=lmtp)
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("daemon_timeout", "0"),
        ("daemon_timeout", "soon"),
        ("debug_peer_level", "-1"),
        ("smtp_tls_block_early_mail_reply", "maybe"),
        ("header_from_format", "fancy"),
        ("smtp_sasl_auth_cache_time", "200d"),
    ],
)
def test_a_bad_value_of_a_not_applicable_parameter_is_still_refused(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError, match=f"^{name}: malformed value"):
        ClientConfig.from_postconf({name: value})


def test_defaults_follow_postfix_except_where_declared() -> None:
    c = ClientConfig()
    assert (c.line_length_limit, c.skip_quit_response, c.mx_address_limit) == (998, True, 5)
    assert (c.mx_session_limit, c.always_send_ehlo, c.never_send_ehlo) == (2, True, False)
    assert c.pix_workarounds == frozenset({"disable_esmtp", "delay_dotcrlf"})
    assert (c.connect_timeout, c.helo_timeout, c.data_init_timeout) == (30.0, 300.0, 120.0)
    assert (c.data_xfer_timeout, c.data_done_timeout, c.rset_timeout) == (180.0, 600.0, 20.0)
    assert (c.tcp_port, c.lmtp_tcp_port, c.destination_recipient_limit) == (25, 24, 50)
    assert c.sasl_security_options == frozenset({"noplaintext", "noanonymous"})
    assert c.tls_security_level == "may" and c.default_port == 25
    assert (c.tls_protocols, c.tls_ciphers, c.sasl_auth_soft_bounce) == (
        (">=TLSv1",),
        "medium",
        True,
    )


def test_lmtp_defaults_differ_as_lmtp8_does() -> None:
    c = ClientConfig.from_postconf({}, lmtp=True)
    assert c.lmtp and not c.skip_quit_response and c.connect_timeout == 0.0
    assert c.tls_security_level == "none" and c.default_port == 24


def test_lmtp_mirror_names_need_lmtp_mode_and_smtp_names_are_refused_in_it() -> None:
    assert ClientConfig.from_postconf({"lmtp_rcpt_timeout": "7s"}, lmtp=True).rcpt_timeout == 7
    with pytest.raises(ValueError, match="lmtp_rcpt_timeout: an LMTP parameter"):
        ClientConfig.from_postconf({"lmtp_rcpt_timeout": "7s"})
    with pytest.raises(ValueError, match=r"smtp_helo_name: lmtp\(8\) reads lmtp_lhlo_name"):
        ClientConfig.from_postconf({"smtp_helo_name": "x"}, lmtp=True)
    lmtp = ClientConfig.from_postconf({"lmtp_tls_wrappermode": "yes"}, lmtp=True)
    assert lmtp.tls_wrappermode


def test_every_lmtp_mirror_name_of_postconf_is_known() -> None:
    # postconf -d of Postfix 3.7 lists these lmtp_* names for smtp(8) parameters
    for d in declarations():
        mirror = d.lmtp_name
        if mirror is not None:
            assert declaration(mirror) is not None, mirror


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(ValueError, match="smtp_no_such_thing: unknown parameter"):
        ClientConfig.from_postconf({"smtp_no_such_thing": "1"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtp_helo_timeout", "5x"),
        ("smtp_helo_timeout", "-1s"),
        ("smtp_helo_timeout", "1.5s"),
        ("smtp_helo_timeout", "5M"),
        ("smtp_helo_timeout", "0"),
        ("smtp_helo_timeout", "200d"),
        ("smtp_skip_quit_response", "maybe"),
        ("smtp_skip_quit_response", "true"),
        ("smtp_mx_address_limit", "five"),
        ("smtp_tcp_port", "70000"),
        ("smtp_tcp_port", "nosuchservice"),
        ("smtp_tls_security_level", "paranoid"),
        ("smtp_tls_security_level", "half-dane"),
        ("tls_dane_digests", "sha256, sha512=two"),
        ("smtp_sasl_security_options", "noplaintext, bogus"),
        ("smtp_pix_workarounds", "disable_esmtp, frobnicate"),
        ("smtp_tls_mandatory_protocols", "TLSv9"),
        ("smtp_bind_address", "2001:db8::1"),
        ("smtp_bind_address6", "192.0.2.1"),
        ("inet_interfaces", "all"),
        ("inet_protocols", "ipx"),
        ("smtp_generic_maps", "hash:/etc/postfix/generic"),
        ("smtp_sasl_password_maps", "texthash:/etc/postfix/sasl_passwd"),
        ("smtp_sasl_mechanism_filter", "/etc/postfix/mechs"),
        ("smtp_pix_workaround_maps", "regexp:{ {/(.*)/ $$1} }"),
        ("smtp_helo_name", "bad name"),
        ("delay_logging_resolution_limit", "7"),
        ("smtp_destination_recipient_limit", "0"),
        ("smtp_destination_concurrency_limit", "-1"),
        ("default_process_limit", "0"),
        ("smtp_tls_verify_cert_match", "*.example.com"),
        ("smtp_tls_servername", ".example.com"),
        ("known_tcp_ports", "smtp=abc"),
    ],
)
def test_malformed_value_names_parameter_and_value(name: str, value: str) -> None:
    with pytest.raises(LocalProtocolError) as info:
        ClientConfig.from_postconf({name: value})
    assert str(info.value).startswith(f"{name}: malformed value {value!r}")


def test_binary_tables_are_refused_with_their_texthash_source_named() -> None:
    with pytest.raises(LocalProtocolError, match="name its source file instead: texthash:/etc/x"):
        ClientConfig.from_postconf({"smtp_tls_policy_maps": "lmdb:/etc/x"})


def test_file_tables_need_a_reader_and_get_the_files_text_from_it() -> None:
    files = {"/etc/postfix/sasl": "[mx.example]  u:p\n"}
    config = ClientConfig.from_postconf(
        {"smtp_sasl_password_maps": "texthash:/etc/postfix/sasl"}, reader=files.__getitem__
    )
    assert config.sasl_password_maps.get("[MX.example]") == "u:p"
    with pytest.raises(LocalProtocolError, match="cannot read /etc/postfix/other"):
        ClientConfig.from_postconf(
            {"smtp_sasl_password_maps": "texthash:/etc/postfix/other"}, reader=files.__getitem__
        )


def test_dollar_references_resolve_against_given_parameters_and_literal_defaults() -> None:
    config = ClientConfig.from_postconf(
        {"myhostname": "mx.example", "smtp_helo_name": "${myhostname}"}
    )
    assert config.helo_name == "mx.example"
    # smtp_sasl_security_options' Postfix default is a literal: it may be referred to.
    tls = ClientConfig.from_postconf(
        {"smtp_sasl_tls_security_options": "$smtp_sasl_security_options"}
    )
    assert tls.sasl_tls_security_options == frozenset({"noplaintext", "noanonymous"})
    with pytest.raises(ValueError, match=r"\$nothere is not defined"):
        ClientConfig.from_postconf({"smtp_helo_name": "$nothere"})


def test_prefixed_fallback_relay_wins_over_global() -> None:
    config = ClientConfig.from_postconf(
        {"smtp_fallback_relay": "[a.example]", "fallback_relay": "[b.example]"}
    )
    assert config.fallback_relay == ("[a.example]",)
    assert ClientConfig.from_postconf({"fallback_relay": "[b.example]"}).fallback_relay == (
        "[b.example]",
    )


def test_myhostname_becomes_the_helo_name_when_none_is_given() -> None:
    assert ClientConfig.from_postconf({"myhostname": "h.example"}).helo_name == "h.example"


def test_empty_names_take_the_machine_name_the_adapter_passes() -> None:
    # Postfix: smtp_helo_name = $myhostname, myhostname = the machine's name; the core cannot
    # ask the system, so the engine fills in the name the adapter found (with_hostname).
    assert (ClientConfig().myhostname, ClientConfig().helo_name) == ("", "")
    filled = ClientConfig().with_hostname("vm.localdomain")
    assert (filled.myhostname, filled.helo_name) == ("vm.localdomain", "vm.localdomain")
    assert ClientConfig().with_hostname("").helo_name == "localhost"
    own = ClientConfig(helo_name="client.example").with_hostname("vm.localdomain")
    assert (own.myhostname, own.helo_name) == ("vm.localdomain", "client.example")
    kept = ClientConfig(myhostname="mx.example")
    assert kept.with_hostname("vm.localdomain").helo_name == "mx.example"
    with pytest.raises(ValueError, match="non-empty ASCII name"):
        ClientConfig().with_hostname("bad name")


def test_from_postconf_keeps_postfix_meaning_of_sasl_tls_security_options() -> None:
    # AU-20, quirk Q9: the constructor lifts noplaintext for a verified peer only; a Postfix
    # configuration keeps Postfix's defaults, which never lift it.
    library = ClientConfig()
    assert library.sasl_tls_security_options == frozenset({"noplaintext", "noanonymous"})
    assert library.sasl_tls_verified_security_options == frozenset({"noanonymous"})
    postfix = ClientConfig.from_postconf({})
    assert postfix.sasl_tls_security_options == frozenset({"noplaintext", "noanonymous"})
    assert postfix.sasl_tls_verified_security_options is None
    given_ = ClientConfig.from_postconf({"smtp_sasl_security_options": "noanonymous, noactive"})
    assert given_.sasl_tls_security_options == frozenset({"noanonymous", "noactive"})


def test_empty_tls_security_level_means_none() -> None:
    assert ClientConfig.from_postconf({"smtp_tls_security_level": ""}).tls_security_level == "none"


def test_loopback_only_interfaces() -> None:
    config = ClientConfig.from_postconf({"inet_interfaces": "loopback-only"})
    assert config.inet_interfaces == ("127.0.0.1", "::1")


def test_typed_python_values_pass_through_from_postconf() -> None:
    config = ClientConfig.from_postconf(
        {
            "smtp_helo_timeout": 12.5,
            "smtp_skip_quit_response": False,
            "smtp_tls_policy_maps": lambda key: "encrypt" if key == "x.example" else None,
        }
    )
    assert config.helo_timeout == 12.5 and config.skip_quit_response is False
    assert config.tls_policy_maps.get("x.example") == "encrypt"


# -- time values: one place, Postfix's rules ------------------------------------------------

TIMES = [d for d in declarations() if d.kind.label == "time" and d.field is not None]


def test_the_time_parameters_are_the_expected_ones() -> None:
    names = {d.name for d in TIMES}
    assert {
        "smtp_helo_timeout",
        "smtp_connect_timeout",
        "smtp_connection_cache_time_limit",
    } <= names
    assert len(names) >= 15


@pytest.mark.parametrize("declared", TIMES, ids=lambda d: d.name)
@pytest.mark.parametrize(
    "bad", [1e10, MAX_SECONDS + 1, -1, math.inf, math.nan, True, "300"], ids=repr
)
def test_every_time_field_refuses_what_no_adapter_can_wait(declared: Any, bad: Any) -> None:
    # A timeout of 1e10 s once reached the blocking adapter and raised OverflowError.
    with pytest.raises(LocalProtocolError, match=f"^{declared.field}: "):
        ClientConfig(**{declared.field: bad})


@pytest.mark.parametrize("declared", TIMES, ids=lambda d: d.name)
def test_every_time_field_takes_up_to_the_bound_and_zero_only_where_postfix_does(
    declared: Any,
) -> None:
    assert getattr(ClientConfig(**{declared.field: MAX_SECONDS}), declared.field) == MAX_SECONDS
    zero_allowed = declared.name in {
        "smtp_connect_timeout",
        "smtp_pix_workaround_threshold_time",
    }
    if zero_allowed:
        assert getattr(ClientConfig(**{declared.field: 0}), declared.field) == 0
    else:
        with pytest.raises(LocalProtocolError, match=f"^{declared.field}: expected a time"):
            ClientConfig(**{declared.field: 0})
        with pytest.raises(LocalProtocolError, match=f"^{declared.name}: malformed value '0s'"):
            ClientConfig.from_postconf({declared.name: "0s"})


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 10**5), st.sampled_from(["", "s", "m", "h", "d", "w"]))
def test_time_units_multiply_out_within_the_bound(amount: int, unit: str) -> None:
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    seconds = amount * factor
    try:
        config = ClientConfig.from_postconf({"smtp_mail_timeout": f"{amount}{unit}"})
    except LocalProtocolError as error:
        assert seconds > MAX_SECONDS and "smtp_mail_timeout" in str(error)
    else:
        assert config.mail_timeout == seconds <= MAX_SECONDS


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_arbitrary_timeout_text_is_parsed_or_refused_by_name(text: str) -> None:
    try:
        ClientConfig.from_postconf({"smtp_rset_timeout": text})
    except LocalProtocolError as error:
        assert str(error).startswith("smtp_rset_timeout: ")


# -- checks of the Python API ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("helo_timeout", -1),
        ("helo_timeout", float("inf")),
        ("helo_timeout", "300"),
        ("helo_timeout", True),
        ("mx_address_limit", -1),
        ("mx_address_limit", 1.5),
        ("tcp_port", 0),
        ("skip_quit_response", 1),
        ("tls_security_level", "strict"),
        ("discard_ehlo_keywords", "pipelining"),
        ("sasl_password_maps", [("a", "b")]),
        ("sasl_password_maps", 42),
        ("helo_name", " "),
        ("helo_name", "a\r\nMAIL FROM:<x>"),
        ("tls_CAfile", "a\nb"),
        ("bind_address", "not-an-ip"),
        ("best_mx_transport", "[broken"),
        ("sasl_mechanism_filter", "texthash:/etc/postfix/mechs"),
        ("tls_verify_cert_match", ("*.example.com",)),
        ("known_tcp_ports", {"smtp": 0}),
    ],
)
def test_invalid_field_values_raise_valueerror_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        ClientConfig(**{field: value})


def test_collections_are_normalized_and_frozen() -> None:
    config = ClientConfig(
        discard_ehlo_keywords=["pipelining"],  # type: ignore[arg-type]
        fallback_relay=["[a.example]"],  # type: ignore[arg-type]
        tls_policy_maps={"example.com": "secure"},  # type: ignore[arg-type]
    )
    assert config.discard_ehlo_keywords == frozenset({"PIPELINING"})
    assert config.fallback_relay == ("[a.example]",)
    assert config.tls_policy_maps.get("EXAMPLE.com") == "secure"
    with pytest.raises(TypeError):
        config.tls_policy_maps["x"] = "y"  # type: ignore[index]


def test_repr_never_shows_sasl_passwords() -> None:
    for maps in ({"[mail.example]": "user:hunter2"}, "inline:{ [mail.example]=user:hunter2 }"):
        config = ClientConfig(sasl_password_maps=maps)  # type: ignore[arg-type]
        text = repr(config)
        assert "hunter2" not in text and "[mail.example]" in text and "<redacted>" in text


def test_config_is_frozen_and_comparable() -> None:
    assert ClientConfig(helo_name="a.example") == ClientConfig(helo_name="a.example")
    assert ClientConfig.from_postconf({"smtp_tls_policy_maps": "inline:{ a=may }"}) == (
        ClientConfig.from_postconf({"smtp_tls_policy_maps": "inline:{ a=may }"})
    )
    with pytest.raises(AttributeError):
        ClientConfig().helo_name = "x"  # type: ignore[misc]


# -- $name expansion (Postfix mac_expand) ---------------------------------------------------

DEFINED = {"a": "alpha", "empty": "", "n": "3", "ref": "$a!", "loop": "$loop"}


@pytest.mark.parametrize(
    ("text", "expanded"),
    [
        ("plain", "plain"),
        ("$a", "alpha"),
        ("${a}/$(a)", "alpha/alpha"),
        ("$ref", "alpha!"),
        ("$$a", "$a"),
        ("${a?yes}", "yes"),
        ("${empty?yes}", ""),
        ("${undefined?yes}", ""),
        ("${a:no}", ""),
        ("${empty:no}", "no"),
        ("${a?{x y}:{z}}", "x y"),
        ("${empty?{x y}:{z}}", "z"),
        ("${a:{fallback}}", ""),
        ("${{$a} == {alpha} ? {same} : {different}}", "same"),
        ("${{$a} != {alpha} ? {same} : {different}}", "different"),
        ("${{$n} < {10} ? {small} : {big}}", "small"),
        ("${{3.6} <level {3.10} ? {older} : {newer}}", "older"),
    ],
)
def test_expand_follows_postfix_mac_expand(text: str, expanded: str) -> None:
    assert expand(text, DEFINED.get) == expanded


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("$undefined", r"\$undefined is not defined"),
        ("$loop", "nest too deeply"),
        ("${a", "truncated"),
        ("$ alone", "empty macro name"),
        ("${a!x}", "unexpected"),
        ("${{a} = {b} ? {c} : {d}}", "operator"),
    ],
)
def test_expand_refuses_what_postfix_refuses(text: str, error: str) -> None:
    with pytest.raises(LocalProtocolError, match=error):
        expand(text, DEFINED.get)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="${}():?!=<> a1_", max_size=30))
def test_expand_raises_nothing_but_local_protocol_error(text: str) -> None:
    try:
        result = expand(text, DEFINED.get)
    except LocalProtocolError:
        return
    assert isinstance(result, str)


# -- main.cf and master.cf -------------------------------------------------------------------

MAIN_CF = """\
# a comment
myhostname = mx.example.com
smtp_helo_name = $myhostname
smtp_tls_security_level = encrypt
smtp_tls_policy_maps = texthash:/etc/postfix/tls_policy,
    inline:{ example.net=verify }
smtpd_banner = $myhostname ESMTP
    # a comment inside a continued value is skipped
alias_maps = hash:/etc/aliases
lmtp_lhlo_name = lmtp.example.com
smtp_tls_security_level = verify
"""
MASTER_CF = """\
smtp      inet  n       -       y       -       -       smtpd
relay     unix  -       -       n       -       -       smtp
    -o smtp_helo_timeout=5s -o smtp_fallback_relay=
    -o { smtp_tls_policy_maps = inline:{ { example.org = none } } }
dovecot   unix  -       -       n       -       -       lmtp -o lmtp_lhlo_timeout=9s
"""
FILES = {"/etc/postfix/tls_policy": "example.com  secure\n"}


def test_parse_main_cf_reads_logical_lines_and_keeps_the_last_setting() -> None:
    settings_ = parse_main_cf(MAIN_CF)
    assert settings_["smtp_tls_security_level"] == "verify"
    assert settings_["smtp_tls_policy_maps"] == (
        "texthash:/etc/postfix/tls_policy,    inline:{ example.net=verify }"
    )
    assert settings_["alias_maps"] == "hash:/etc/aliases"
    with pytest.raises(LocalProtocolError, match="line 2"):
        parse_main_cf("a = b\nnot a setting\n")


def test_parse_master_cf_reads_both_forms_of_o_overrides() -> None:
    smtpd, relay, dovecot = parse_master_cf(MASTER_CF)
    assert (smtpd.name, smtpd.command, smtpd.overrides) == ("smtp", "smtpd", ())
    assert relay.overrides == (
        ("smtp_helo_timeout", "5s"),
        ("smtp_fallback_relay", ""),
        ("smtp_tls_policy_maps", "inline:{ { example.org = none } }"),
    )
    assert dovecot.lmtp and dovecot.overrides == (("lmtp_lhlo_timeout", "9s"),)


def test_from_main_cf_reads_the_client_parameters_and_leaves_the_rest() -> None:
    config = ClientConfig.from_main_cf(MAIN_CF, reader=FILES.__getitem__)
    assert (config.myhostname, config.helo_name) == ("mx.example.com", "mx.example.com")
    assert config.tls_security_level == "verify"
    assert config.tls_policy_maps.get("example.com") == "secure"
    assert config.tls_policy_maps.get("example.net") == "verify"


def test_from_main_cf_applies_a_master_cf_services_overrides() -> None:
    relay = ClientConfig.from_main_cf(
        MAIN_CF, master_cf=MASTER_CF, service="relay", reader=FILES.__getitem__
    )
    assert not relay.lmtp and relay.helo_timeout == 5
    assert relay.tls_policy_maps.get("example.org") == "none"
    assert relay.tls_policy_maps.get("example.com") is None
    dovecot = ClientConfig.from_main_cf(
        MAIN_CF, master_cf=MASTER_CF, service="dovecot", reader=FILES.__getitem__
    )
    assert dovecot.lmtp and dovecot.helo_timeout == 9 and dovecot.helo_name == "lmtp.example.com"
    with pytest.raises(LocalProtocolError, match="runs smtpd"):
        ClientConfig.from_main_cf(MAIN_CF, master_cf=MASTER_CF, service="smtp")
    with pytest.raises(LocalProtocolError, match="no 'nope' service"):
        ClientConfig.from_main_cf(MAIN_CF, master_cf=MASTER_CF, service="nope")


def test_a_bad_client_setting_in_main_cf_is_still_refused_by_name() -> None:
    with pytest.raises(LocalProtocolError, match=r"^smtp_helo_timeout: malformed value '0'"):
        ClientConfig.from_main_cf("smtp_helo_timeout = 0\nsmtpd_whatever = 1\n")


def test_lmtp_reads_the_obsolete_tls_switches_under_its_own_names() -> None:
    config = ClientConfig.from_postconf({"lmtp_use_tls": "yes"}, lmtp=True)
    assert config.tls_security_level == "may"
    enforced = ClientConfig.from_postconf(
        {"lmtp_enforce_tls": "yes", "lmtp_tls_enforce_peername": "no"}, lmtp=True
    )
    assert enforced.tls_security_level == "encrypt"
    with pytest.raises(LocalProtocolError, match="lmtp_use_tls instead"):
        ClientConfig.from_postconf({"smtp_use_tls": "yes"}, lmtp=True)


# -- the adapters' reader and loader ---------------------------------------------------------


def test_read_file_returns_utf8_text_and_refuses_other_bytes(tmp_path: Any) -> None:
    from smtpproto.adapters.postfix import read_file

    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_bytes("k caf\u00e9\n".encode())
    bad.write_bytes(b"k caf\xe9\n")
    assert read_file(str(good)) == "k caf\u00e9\n"
    with pytest.raises(OSError, match="not UTF-8"):
        read_file(str(bad))
    with pytest.raises(LocalProtocolError, match=r"cannot read .*: not UTF-8"):
        ClientConfig.from_postconf({"smtp_generic_maps": f"texthash:{bad}"}, reader=read_file)


def test_load_reads_a_configuration_directory(tmp_path: Any) -> None:
    from smtpproto.adapters.postfix import load

    (tmp_path / "main.cf").write_text(
        "myhostname = mx.example.com\n"
        "smtp_tls_policy_maps = texthash:$config_directory/tls_policy\n"
        "smtpd_banner = $myhostname ESMTP\n"
    )
    (tmp_path / "master.cf").write_text("relay unix - - n - - smtp\n  -o smtp_helo_timeout=5s\n")
    (tmp_path / "tls_policy").write_text("example.com  secure\n")
    config = load(str(tmp_path), service="relay")
    assert config.helo_name == "mx.example.com" and config.helo_timeout == 5
    assert config.tls_policy_maps.get("example.com") == "secure"
    assert load(str(tmp_path)).helo_timeout == 300


def test_which_client_reads_a_name_and_what_the_other_reads_instead() -> None:
    # The -o warning and from_postconf's refusals rest on these: smtp_* names, their lmtp_*
    # mirrors (renamed ones included), older names mirrored alike, and names both read.
    cases = {
        "smtp_helo_name": ("smtp", "lmtp_lhlo_name"),
        "lmtp_lhlo_name": ("lmtp", "smtp_helo_name"),
        "smtp_per_record_deadline": ("smtp", "lmtp_per_record_deadline"),
        "lmtp_per_record_deadline": ("lmtp", "smtp_per_record_deadline"),
        "fallback_relay": (None, "fallback_relay"),
        "myhostname": (None, "myhostname"),
        "lmtp_tcp_port": (None, "lmtp_tcp_port"),
    }
    for name, (client, other) in cases.items():
        declared = declaration(name)
        assert declared is not None, name
        assert (declared.client_of(name), declared.counterpart(name)) == (client, other), name


def test_derived_values_are_remembered_per_configuration_and_not_copied() -> None:
    # ClientConfig._derived keeps what the engine derives from a configuration alone; a copy
    # (with_hostname's, copy) starts without them, since its fields may differ.
    import copy

    config = ClientConfig(helo_name="client.example")
    calls: list[int] = []

    def make() -> int:
        calls.append(1)
        return len(calls)

    assert config._derived(("k", 1), make) == 1
    assert config._derived(("k", 1), make) == 1
    assert config._derived(("k", 2), make) == 2
    assert copy.copy(config)._derived(("k", 1), make) == 3
    assert copy.copy(config) == config
    # An unhashable key: computed every time, never an error.
    assert config._derived(("k", []), make) == 4
    assert config._derived(("k", []), make) == 5


def test_with_hostname_is_remembered_and_names_the_copy_only() -> None:
    config = ClientConfig()
    named = config.with_hostname("mx.example")
    assert config.with_hostname("mx.example") is named
    assert (named.myhostname, named.helo_name) == ("mx.example", "mx.example")
    assert (config.myhostname, config.helo_name) == ("", "")
    other = config.with_hostname("other.example")
    assert other.helo_name == "other.example"
    assert named.with_hostname("ignored.example") is named
