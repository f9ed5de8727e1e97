"""ClientConfig and from_postconf: every smtp(8) parameter is either read or refused with a
reason (smtpproto/_parameters.py, docs/parameters.md)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto._parameters import EXTRA_PARAMETERS, PARAMETERS
from smtpproto.config import EXTENSION_FIELDS, ClientConfig

# One from_postconf case per supported parameter: (postconf value, expected field value).
CASES: dict[str, tuple[Any, Any]] = {
    "best_mx_transport": ("[192.0.2.7]", "[192.0.2.7]"),
    "debug_peer_list": ("mx.example, 192.0.2.0/24", ("mx.example", "192.0.2.0/24")),
    "delay_logging_resolution_limit": ("3", 3),
    "disable_mime_output_conversion": ("yes", True),
    "fallback_relay": (
        "[relay1.example], relay2.example:2525",
        ("[relay1.example]", "relay2.example:2525"),
    ),
    "ignore_mx_lookup_error": ("yes", True),
    "inet_interfaces": ("192.0.2.1 2001:db8::1", ("192.0.2.1", "2001:db8::1")),
    "inet_protocols": ("ipv4", frozenset({"ipv4"})),
    "lmtp_discard_lhlo_keyword_address_maps": (
        {"192.0.2.1": "pipelining, starttls"},
        {"192.0.2.1": frozenset({"PIPELINING", "STARTTLS"})},
    ),
    "lmtp_discard_lhlo_keywords": ("pipelining", frozenset({"PIPELINING"})),
    "lmtp_lhlo_name": ("lmtp.example", "lmtp.example"),
    "lmtp_lhlo_timeout": ("2m", 120.0),
    "lmtp_tcp_port": ("2424", 2424),
    "mime_boundary_length_limit": ("1000", 1000),
    "mime_nesting_limit": ("20", 20),
    "proxy_interfaces": ("198.51.100.9", ("198.51.100.9",)),
    "smtp_always_send_ehlo": ("no", False),
    "smtp_bind_address": ("192.0.2.2", "192.0.2.2"),
    "smtp_bind_address6": ("2001:db8::2", "2001:db8::2"),
    "smtp_cname_overrides_servername": ("yes", True),
    "smtp_connect_timeout": ("1m", 60.0),
    "smtp_connection_cache_destinations": ("example.com", ("example.com",)),
    "smtp_connection_cache_on_demand": ("no", False),
    "smtp_connection_cache_time_limit": ("5s", 5.0),
    "smtp_connection_reuse_time_limit": ("1h", 3600.0),
    "smtp_data_done_timeout": ("1d", 86400.0),
    "smtp_data_init_timeout": ("60", 60.0),
    "smtp_data_xfer_timeout": ("1w", 604800.0),
    "smtp_defer_if_no_mx_address_found": ("yes", True),
    "smtp_destination_recipient_limit": ("10", 10),
    "smtp_discard_ehlo_keyword_address_maps": (
        {"192.0.2.1": "auth"},
        {"192.0.2.1": frozenset({"AUTH"})},
    ),
    "smtp_discard_ehlo_keywords": ("pipelining, DSN", frozenset({"PIPELINING", "DSN"})),
    "smtp_fallback_relay": ("[backup.example]", ("[backup.example]",)),
    "smtp_generic_maps": (
        {"root@localhost": "admin@example.com"},
        {"root@localhost": "admin@example.com"},
    ),
    "smtp_helo_name": ("client.example", "client.example"),
    "smtp_helo_timeout": ("5m", 300.0),
    "smtp_host_lookup": ("dns, native", ("dns", "native")),
    "smtp_line_length_limit": ("990", 990),
    "smtp_mail_timeout": ("30s", 30.0),
    "smtp_mx_address_limit": ("0", 0),
    "smtp_mx_session_limit": ("3", 3),
    "smtp_never_send_ehlo": ("yes", True),
    "smtp_pix_workaround_delay_time": ("2s", 2.0),
    "smtp_pix_workaround_maps": (
        {"192.0.2.1": "delay_dotcrlf"},
        {"192.0.2.1": frozenset({"delay_dotcrlf"})},
    ),
    "smtp_pix_workaround_threshold_time": ("0", 0.0),
    "smtp_pix_workarounds": ("", frozenset()),
    "smtp_quit_timeout": ("10s", 10.0),
    "smtp_quote_rfc821_envelope": ("no", False),
    "smtp_randomize_addresses": ("false", False),
    "smtp_rcpt_timeout": ("90s", 90.0),
    "smtp_rset_timeout": ("1m", 60.0),
    "smtp_per_request_deadline": ("yes", True),
    "smtp_min_data_rate": ("1000", 1000),
    "smtp_sasl_auth_enable": ("yes", True),
    "smtp_sasl_mechanism_filter": ("plain, login", ("plain", "login")),
    "smtp_sasl_password_maps": (
        {"[mail.example]": "user:secret"},
        {"[mail.example]": "user:secret"},
    ),
    "smtp_sasl_security_options": ("noanonymous", frozenset({"noanonymous"})),
    "smtp_sasl_tls_security_options": ("", frozenset()),
    "smtp_sasl_tls_verified_security_options": ("noanonymous", frozenset({"noanonymous"})),
    "smtp_send_xforward_command": ("yes", True),
    "smtp_sender_dependent_authentication": ("yes", True),
    "smtp_skip_4xx_greeting": ("no", False),
    "smtp_skip_5xx_greeting": ("no", False),
    "smtp_skip_quit_response": ("no", False),
    "smtp_starttls_timeout": ("1m", 60.0),
    "smtp_tls_CAfile": ("/etc/ssl/ca.pem", "/etc/ssl/ca.pem"),
    "smtp_tls_CApath": ("/etc/ssl/certs", "/etc/ssl/certs"),
    "smtp_tls_cert_file": ("/etc/ssl/client.pem", "/etc/ssl/client.pem"),
    "smtp_tls_exclude_ciphers": ("aNULL, RC4", ("aNULL", "RC4")),
    "smtp_tls_key_file": ("/etc/ssl/client.key", "/etc/ssl/client.key"),
    "smtp_tls_mandatory_ciphers": ("high", "high"),
    "smtp_tls_mandatory_exclude_ciphers": ("MD5", ("MD5",)),
    "smtp_tls_mandatory_protocols": (">= TLSv1.3", (">=TLSv1.3",)),
    "smtp_tls_note_starttls_offer": ("yes", True),
    "smtp_tls_policy_maps": ({"example.com": "secure"}, {"example.com": "secure"}),
    "smtp_tls_secure_cert_match": ("nexthop", ("nexthop",)),
    "smtp_tls_security_level": ("verify", "verify"),
    "smtp_tls_session_cache_timeout": ("2h", 7200.0),
    "smtp_tls_verify_cert_match": ("hostname, nexthop", ("hostname", "nexthop")),
    "smtp_xforward_timeout": ("3m", 180.0),
    "tls_high_cipherlist": ("HIGH:!aNULL", "HIGH:!aNULL"),
    "tls_low_cipherlist": ("LOW", "LOW"),
    "tls_medium_cipherlist": ("MEDIUM", "MEDIUM"),
    "tls_null_cipherlist": ("eNULL", "eNULL"),
    "myhostname": ("host.example", "host.example"),
    "smtp_tcp_port": ("submission", 587),
    "smtp_address_preference": ("ipv6", "ipv6"),
    "smtp_balance_inet_protocols": ("no", False),
    "smtp_connection_reuse_count_limit": ("10", 10),
}

SUPPORTED = [p for p in PARAMETERS + EXTRA_PARAMETERS if p.status == "supported"]
NOT_APPLICABLE = [p for p in PARAMETERS if p.status == "not applicable"]


def test_every_supported_parameter_has_a_from_postconf_case() -> None:
    assert sorted(CASES) == sorted(p.name for p in SUPPORTED)


def test_the_table_lists_the_113_parameters_of_smtp8_once_in_listing_order() -> None:
    names = [p.name for p in PARAMETERS]
    assert len(names) == 113 and len(set(names)) == 113 and names == sorted(names)
    extra = {p.name for p in EXTRA_PARAMETERS}
    assert not extra & set(names)


def test_every_field_is_reachable_from_a_postfix_name() -> None:
    fields = set(ClientConfig.__dataclass_fields__) - {"lmtp"} - EXTENSION_FIELDS
    assert fields == {p.field for p in SUPPORTED}


@pytest.mark.parametrize("parameter", SUPPORTED, ids=lambda p: p.name)
def test_from_postconf_reads_each_supported_parameter(parameter: Any) -> None:
    raw, expected = CASES[parameter.name]
    lmtp = parameter.name.startswith("lmtp_") and parameter.name != "lmtp_tcp_port"
    config = ClientConfig.from_postconf({parameter.name: raw}, lmtp=lmtp)
    value = getattr(config, parameter.field)
    assert (dict(value) if isinstance(expected, dict) else value) == expected


@pytest.mark.parametrize("parameter", NOT_APPLICABLE, ids=lambda p: p.name)
def test_not_applicable_parameters_are_refused_with_the_reason(parameter: Any) -> None:
    name = parameter.name
    lmtp = name.startswith("lmtp_")
    with pytest.raises(ValueError, match="not applicable") as info:
        ClientConfig.from_postconf({name: "x"}, lmtp=lmtp)
    assert name in str(info.value) and parameter.why in str(info.value)


def test_defaults_follow_postfix_appendix_a() -> None:
    c = ClientConfig()
    assert (c.line_length_limit, c.skip_quit_response, c.mx_address_limit) == (998, True, 5)
    assert (c.mx_session_limit, c.always_send_ehlo, c.never_send_ehlo) == (2, True, False)
    assert c.pix_workarounds == frozenset({"disable_esmtp", "delay_dotcrlf"})
    assert (c.connect_timeout, c.helo_timeout, c.data_init_timeout) == (30.0, 300.0, 120.0)
    assert (c.data_xfer_timeout, c.data_done_timeout, c.rset_timeout) == (180.0, 600.0, 20.0)
    assert (c.tcp_port, c.lmtp_tcp_port, c.destination_recipient_limit) == (25, 24, 50)
    assert c.sasl_security_options == frozenset({"noplaintext", "noanonymous"})
    assert c.tls_security_level == "may" and c.default_port == 25


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


def test_unknown_parameter_is_named() -> None:
    with pytest.raises(ValueError, match="smtp_no_such_thing: unknown parameter"):
        ClientConfig.from_postconf({"smtp_no_such_thing": "1"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtp_helo_timeout", "5x"),
        ("smtp_helo_timeout", "-1s"),
        ("smtp_helo_timeout", "1.5s"),
        ("smtp_skip_quit_response", "maybe"),
        ("smtp_mx_address_limit", "five"),
        ("smtp_tcp_port", "70000"),
        ("smtp_tcp_port", "nosuchservice"),
        ("smtp_tls_security_level", "paranoid"),
        ("smtp_sasl_security_options", "noplaintext, bogus"),
        ("smtp_pix_workarounds", "disable_esmtp, frobnicate"),
        ("smtp_tls_mandatory_protocols", "TLSv9"),
        ("smtp_bind_address", "2001:db8::1"),
        ("smtp_bind_address6", "192.0.2.1"),
        ("inet_interfaces", "all"),
        ("inet_protocols", "ipx"),
        ("smtp_generic_maps", "hash:/etc/postfix/generic"),
        ("smtp_helo_name", "bad name"),
        ("delay_logging_resolution_limit", "7"),
        ("smtp_destination_recipient_limit", "0"),
    ],
)
def test_malformed_value_names_parameter_and_value(name: str, value: str) -> None:
    with pytest.raises(ValueError) as info:
        ClientConfig.from_postconf({name: value})
    assert name in str(info.value)


def test_malformed_value_message_quotes_the_value() -> None:
    with pytest.raises(ValueError, match=r"smtp_helo_timeout: malformed value '5x'"):
        ClientConfig.from_postconf({"smtp_helo_timeout": "5x"})


def test_dollar_references_resolve_against_given_parameters() -> None:
    config = ClientConfig.from_postconf(
        {"myhostname": "mx.example", "smtp_helo_name": "${myhostname}"}
    )
    assert config.helo_name == "mx.example"
    with pytest.raises(ValueError, match=r"\$nothere is not among the given parameters"):
        ClientConfig.from_postconf({"smtp_helo_name": "$nothere"})


def test_prefixed_fallback_relay_wins_over_global() -> None:
    config = ClientConfig.from_postconf(
        {"smtp_fallback_relay": "[a.example]", "fallback_relay": "[b.example]"}
    )
    assert config.fallback_relay == ("[a.example]",)


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
        {"smtp_helo_timeout": 12.5, "smtp_skip_quit_response": False}
    )
    assert config.helo_timeout == 12.5 and config.skip_quit_response is False


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
        ("helo_name", " "),
        ("helo_name", "a\r\nMAIL FROM:<x>"),
        ("tls_CAfile", "a\nb"),
        ("bind_address", "not-an-ip"),
        ("best_mx_transport", "[broken"),
    ],
)
def test_invalid_field_values_raise_valueerror_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=f"^{field}: "):
        ClientConfig(**{field: value})


def test_collections_are_normalized_and_frozen() -> None:
    config = ClientConfig(
        discard_ehlo_keywords=["pipelining"],  # type: ignore[arg-type]
        fallback_relay=["[a.example]"],  # type: ignore[arg-type]
        tls_policy_maps={"example.com": "secure"},
    )
    assert config.discard_ehlo_keywords == frozenset({"PIPELINING"})
    assert config.fallback_relay == ("[a.example]",)
    with pytest.raises(TypeError):
        config.tls_policy_maps["x"] = "y"  # type: ignore[index]


def test_repr_never_shows_sasl_passwords() -> None:
    config = ClientConfig(sasl_password_maps={"[mail.example]": "user:hunter2"})
    text = repr(config)
    assert "hunter2" not in text and "[mail.example]" in text and "<redacted>" in text


def test_config_is_frozen_and_comparable() -> None:
    assert ClientConfig(helo_name="a.example") == ClientConfig(helo_name="a.example")
    with pytest.raises(AttributeError):
        ClientConfig().helo_name = "x"  # type: ignore[misc]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["", "s", "m", "h", "d", "w", "S", "M"]))
def test_time_units_multiply_out(amount: int, unit: str) -> None:
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit.lower()]
    config = ClientConfig.from_postconf({"smtp_mail_timeout": f"{amount}{unit}"})
    assert config.mail_timeout == amount * factor


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_arbitrary_timeout_text_is_parsed_or_refused_by_name(text: str) -> None:
    try:
        ClientConfig.from_postconf({"smtp_rset_timeout": text})
    except ValueError as error:
        assert "smtp_rset_timeout" in str(error)
