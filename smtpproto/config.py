"""Client configuration: the smtp(8) parameters under their Postfix names, without ``smtp_``.

`ClientConfig` holds Postfix's defaults (client-rules Appendix A) except where noted on the field.
`ClientConfig.from_postconf` reads Postfix's own names and value syntax, so a main.cf excerpt
can be used as it is. Every parameter smtp(8) lists is either a field here or rejected with
the reason it does not apply to a library (``smtpproto/_parameters.py``): nothing is ignored
silently.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from . import _parameters
from ._errors import LocalProtocolError
from .destinations import KNOWN_PORTS, parse_destinations

__all__ = ["EXTENSION_FIELDS", "ClientConfig"]

EXTENSION_FIELDS = frozenset({"chunking", "sasl_scram_max_iterations"})
"""`ClientConfig` fields with no smtp(8) parameter behind them (set them by keyword)."""


def _frozen_map(**kw: Any) -> Any:
    return field(default_factory=lambda: MappingProxyType({}), hash=False, **kw)


# Postfix's time units (postconf(5) "time value"); a bare number uses the default unit, which is
# seconds for every time parameter of smtp(8).
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TIME = re.compile(r"(\d+)([smhdw]?)", re.ASCII | re.IGNORECASE)
_BOOLEANS = {"yes": True, "true": True, "no": False, "false": False}
_LIST_SPLIT = re.compile(r"[\s,]+")
_REFERENCE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|\(([A-Za-z0-9_]+)\)|([A-Za-z0-9_]+))")
# RFC 5321 4.1.2: the EHLO/HELO argument is a domain or an address literal; no spaces or controls.
_HELO = re.compile(r"[!-~]+", re.ASCII)
_PROTOCOL = re.compile(
    r"(!?(SSLv2|SSLv3|TLSv1|TLSv1\.1|TLSv1\.2|TLSv1\.3)|[<>]=(TLSv1|TLSv1\.1|TLSv1\.2|TLSv1\.3))",
    re.ASCII,
)

_TLS_LEVELS = frozenset({"none", "may", "encrypt", "verify", "secure"})
_SASL_OPTIONS = frozenset(
    {"noplaintext", "noactive", "nodictionary", "noanonymous", "mutual_auth", "forward_secrecy"}
)
_PIX = frozenset({"disable_esmtp", "delay_dotcrlf"})
_CIPHER_GRADES = frozenset({"high", "medium", "low", "null"})
_CERT_MATCH = frozenset({"hostname", "nexthop", "dot-nexthop"})
_FAMILIES = frozenset({"ipv4", "ipv6"})


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """The Postfix smtp(8)/lmtp(8) parameters that apply to a library, with Postfix's defaults."""

    lmtp: bool = False
    # Empty: the machine's name as Postfix's $myhostname would be. The core cannot ask the
    # system, so the adapters pass that name to the engine (`with_hostname`); "localhost" only
    # when nobody did. helo_name empty: $myhostname, Postfix's default.
    myhostname: str = ""
    helo_name: str = ""
    tcp_port: int = 25
    lmtp_tcp_port: int = 24

    # COMPATIBILITY CONTROLS
    ignore_mx_lookup_error: bool = False
    always_send_ehlo: bool = True
    # Postfix: never_send_ehlo wins over always_send_ehlo.
    never_send_ehlo: bool = False
    defer_if_no_mx_address_found: bool = False
    # Postfix >= 2.9 uses 998 (RFC 5322 2.1.1); the manual's 990 is accepted too. 0 = no limit.
    line_length_limit: int = 998
    pix_workaround_delay_time: float = 10.0
    pix_workaround_threshold_time: float = 500.0
    pix_workarounds: frozenset[str] = frozenset({"disable_esmtp", "delay_dotcrlf"})
    pix_workaround_maps: Mapping[str, frozenset[str]] = _frozen_map()
    quote_rfc821_envelope: bool = True
    skip_5xx_greeting: bool = True
    skip_4xx_greeting: bool = True
    skip_quit_response: bool = True
    discard_ehlo_keyword_address_maps: Mapping[str, frozenset[str]] = _frozen_map()
    discard_ehlo_keywords: frozenset[str] = frozenset()
    generic_maps: Mapping[str, str] = _frozen_map()
    cname_overrides_servername: bool = False

    # MIME PROCESSING CONTROLS
    disable_mime_output_conversion: bool = False
    mime_boundary_length_limit: int = 2048
    mime_nesting_limit: int = 100

    # EXTERNAL CONTENT INSPECTION CONTROLS
    send_xforward_command: bool = False

    # SMTPPROTO EXTENSIONS (no smtp(8) parameter)
    # BDAT (RFC 3030) instead of DATA when the server offers CHUNKING (rule 15.4). Off by
    # default: Postfix's client never sends BDAT, so DATA is what its peers have been tested with.
    chunking: bool = False

    # SASL AUTHENTICATION CONTROLS
    sasl_auth_enable: bool = False
    sasl_password_maps: Mapping[str, str] = _frozen_map()
    sasl_security_options: frozenset[str] = frozenset({"noplaintext", "noanonymous"})
    # AU-20: PLAIN, LOGIN and XOAUTH2 only over TLS whose certificate verified and matched,
    # at every level; opt in to less by name here. Postfix never sends them by default
    # (quirk Q9: every option repeats $sasl_security_options); from_postconf keeps that.
    sasl_tls_security_options: frozenset[str] = frozenset({"noplaintext", "noanonymous"})
    # None: the same as sasl_tls_security_options (Postfix's $smtp_sasl_tls_security_options).
    sasl_tls_verified_security_options: frozenset[str] | None = frozenset({"noanonymous"})
    sasl_mechanism_filter: tuple[str, ...] = ()
    sender_dependent_authentication: bool = False
    # SMTPPROTO EXTENSION: the most SCRAM iterations a server may ask for (AU-13, AU-19);
    # more fails the AUTH, which defers. Cyrus SASL's own client limit is 65,536.
    sasl_scram_max_iterations: int = 100_000

    # STARTTLS SUPPORT CONTROLS (Postfix >= 3.11 compatibility level: "may")
    tls_security_level: str = "may"
    tls_policy_maps: Mapping[str, str] = _frozen_map()
    starttls_timeout: float = 300.0
    tls_CAfile: str | None = None
    tls_CApath: str | None = None
    tls_cert_file: str | None = None
    # None: the key is in tls_cert_file (Postfix's $smtp_tls_cert_file).
    tls_key_file: str | None = None
    tls_mandatory_ciphers: str = "medium"
    tls_exclude_ciphers: tuple[str, ...] = ()
    tls_mandatory_exclude_ciphers: tuple[str, ...] = ()
    # TLS 1.2 and up (the manual's "SSLv3, TLSv1" predates Postfix 3.6).
    tls_mandatory_protocols: tuple[str, ...] = (">=TLSv1.2",)
    tls_note_starttls_offer: bool = False
    tls_secure_cert_match: tuple[str, ...] = ("nexthop", "dot-nexthop")
    tls_verify_cert_match: tuple[str, ...] = ("hostname",)
    tls_session_cache_timeout: float = 3600.0
    # Postfix 3 grade definitions; the manual's RC4/EXPORT lists predate them.
    tls_high_cipherlist: str = "aNULL:-aNULL:HIGH:@STRENGTH"
    tls_medium_cipherlist: str = "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH"
    tls_low_cipherlist: str = "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH"
    tls_null_cipherlist: str = "eNULL:!aNULL"

    # RESOURCE AND RATE CONTROLS (seconds; 0 connect_timeout = the operating system's limit)
    destination_recipient_limit: int = 50
    connect_timeout: float = 30.0
    helo_timeout: float = 300.0
    xforward_timeout: float = 300.0
    mail_timeout: float = 300.0
    rcpt_timeout: float = 300.0
    data_init_timeout: float = 120.0
    data_xfer_timeout: float = 180.0
    data_done_timeout: float = 600.0
    quit_timeout: float = 300.0
    rset_timeout: float = 20.0
    # Postfix 3.7: each timeout above limits a whole request and its reply, not each read or
    # write, so a peer that trickles bytes cannot stretch it. Postfix's default is "no"; the
    # library's is on (docs/security.md); from_postconf keeps Postfix's.
    per_request_deadline: bool = True
    min_data_rate: int = 500
    mx_address_limit: int = 5
    mx_session_limit: int = 2
    connection_cache_destinations: tuple[str, ...] = ()
    connection_cache_on_demand: bool = True
    connection_reuse_time_limit: float = 300.0
    connection_reuse_count_limit: int = 0
    connection_cache_time_limit: float = 2.0

    # TROUBLE SHOOTING CONTROLS
    debug_peer_list: tuple[str, ...] = ()

    # MISCELLANEOUS CONTROLS
    # A next-hop destination (destination syntax) for mail that loops back to myself; Postfix
    # names a transport here. Empty: defer or bounce (rule 14.6).
    best_mx_transport: str = ""
    delay_logging_resolution_limit: int = 2
    # Our own addresses, for loop detection (rule 14.6). Postfix's "all" would need the
    # interface list, which is I/O: list the addresses.
    inet_interfaces: tuple[str, ...] = ()
    proxy_interfaces: tuple[str, ...] = ()
    inet_protocols: frozenset[str] = frozenset({"ipv4", "ipv6"})
    bind_address: str | None = None
    bind_address6: str | None = None
    host_lookup: tuple[str, ...] = ("dns",)
    randomize_addresses: bool = True
    address_preference: str = "any"
    balance_inet_protocols: bool = True
    fallback_relay: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in fields(self):
            check = _CHECKS[f.name]
            value = getattr(self, f.name)
            try:
                normalized = check(value)
            except (TypeError, ValueError) as error:
                raise LocalProtocolError(f"{f.name}: {error} (got {value!r})") from None
            if normalized is not value:
                object.__setattr__(self, f.name, normalized)
        if self.best_mx_transport:
            try:
                parse_destinations(self.best_mx_transport, lmtp=self.lmtp)
            except LocalProtocolError as error:
                raise LocalProtocolError(f"best_mx_transport: {error}") from None

    def __repr__(self) -> str:
        """Every field, with SASL passwords masked."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "sasl_password_maps":
                value = {key: "<redacted>" for key in value}
            elif isinstance(value, MappingProxyType):
                value = dict(value)
            parts.append(f"{f.name}={value!r}")
        return f"ClientConfig({', '.join(parts)})"

    def with_hostname(self, machine: str) -> ClientConfig:
        """This config with an empty `myhostname` set to `machine` (or ``localhost``) and an
        empty `helo_name` to `myhostname`; the engine calls it with the adapter's name."""
        myhostname = self.myhostname or _helo(machine or "localhost")
        if (myhostname, self.helo_name or myhostname) == (self.myhostname, self.helo_name):
            return self
        return replace(self, myhostname=myhostname, helo_name=self.helo_name or myhostname)

    @property
    def default_port(self) -> int:
        """The port for destinations that name none (``lmtp_tcp_port`` for LMTP)."""
        return self.lmtp_tcp_port if self.lmtp else self.tcp_port

    @classmethod
    def from_postconf(cls, mapping: Mapping[str, Any], *, lmtp: bool = False) -> ClientConfig:
        """Build a config from Postfix parameter names and value syntax (``smtp_*``/``lmtp_*``).

        Values are strings in postconf syntax (``300s``, ``yes``, ``a, b``, ``$name``) or
        already-typed Python values; lookup-table parameters take a mapping.
        """
        values: dict[str, Any] = {"lmtp": lmtp}
        if lmtp:
            values.update(_LMTP_DEFAULTS)
        # Global names first: smtp_fallback_relay defaults to $fallback_relay, so the
        # prefixed name wins when both are given.
        for name in sorted(mapping, key=lambda n: n.startswith(("smtp_", "lmtp_"))):
            parameter = _lookup(name, lmtp)
            raw = mapping[name]
            if isinstance(raw, str):
                raw = _expand(name, raw, mapping)
            assert parameter.field is not None
            try:
                parsed = _PARSERS[parameter.field](raw)
                values[parameter.field] = _CHECKS[parameter.field](parsed)
            except (TypeError, ValueError) as error:
                raise LocalProtocolError(f"{name}: malformed value {raw!r}: {error}") from None
        if "myhostname" in values and "helo_name" not in values:
            values["helo_name"] = values["myhostname"]
        if "per_request_deadline" not in values:
            values["per_request_deadline"] = False  # Postfix 3.7's default
        if "sasl_tls_security_options" not in values:
            # Quirk Q9: from_postconf keeps Postfix's $smtp_sasl_security_options default.
            values["sasl_tls_security_options"] = values.get(
                "sasl_security_options", cls.sasl_security_options
            )
        if "sasl_tls_verified_security_options" not in values:
            values["sasl_tls_verified_security_options"] = None  # $smtp_sasl_tls_security_options
        return cls(**values)


# lmtp(8) defaults that differ from smtp(8) (rules 10.1, 12.5, Appendix A).
_LMTP_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"skip_quit_response": False, "connect_timeout": 0.0, "tls_security_level": "none"}
)
# lmtp(8) names whose smtp(8) counterpart is not simply "smtp_" -> "lmtp_".
_LMTP_RENAMES: Mapping[str, str] = MappingProxyType(
    {
        "lmtp_lhlo_name": "smtp_helo_name",
        "lmtp_lhlo_timeout": "smtp_helo_timeout",
        "lmtp_discard_lhlo_keywords": "smtp_discard_ehlo_keywords",
        "lmtp_discard_lhlo_keyword_address_maps": "smtp_discard_ehlo_keyword_address_maps",
    }
)


def _lookup(name: str, lmtp: bool) -> _parameters.Parameter:
    if not isinstance(name, str):
        raise LocalProtocolError(f"parameter names are strings: {name!r}")
    canonical = name
    if name.startswith("lmtp_") and name != "lmtp_tcp_port":
        if not lmtp:
            raise LocalProtocolError(f"{name}: an LMTP parameter; pass lmtp=True")
        if _parameters.by_name(name) is None:
            canonical = _LMTP_RENAMES.get(name, "smtp_" + name[5:])
    elif name.startswith("smtp_") and lmtp and name != "smtp_tcp_port":
        mirror = next((k for k, v in _LMTP_RENAMES.items() if v == name), "lmtp_" + name[5:])
        raise LocalProtocolError(f"{name}: lmtp(8) reads {mirror} instead")
    parameter = _parameters.by_name(canonical)
    if parameter is None:
        raise LocalProtocolError(f"{name}: unknown parameter")
    if parameter.field is None:
        raise LocalProtocolError(f"{name}: not applicable to this library: {parameter.why}")
    return parameter


def _expand(name: str, value: str, mapping: Mapping[str, Any], depth: int = 0) -> str:
    # postconf(5) "$name" references, resolved against the given parameters only.
    if "$" not in value:
        return value
    if depth > 10:
        raise LocalProtocolError(f"{name}: $references nest too deeply")

    def replace(match: re.Match[str]) -> str:
        ref = match.group(1) or match.group(2) or match.group(3)
        target = mapping.get(ref)
        if not isinstance(target, str):
            raise LocalProtocolError(f"{name}: ${ref} is not among the given parameters")
        return _expand(ref, target, mapping, depth + 1)

    return _REFERENCE.sub(replace, value)


# Checkers: value -> normalized value, raising TypeError/ValueError with a short reason.
Check = Callable[[Any], Any]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected a bool")
    return value


def _int(low: int, high: int | None = None) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an int")
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise LocalProtocolError(f"out of range ({bound})")
        return value

    return check


def _seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError("expected seconds as a number")
    if not math.isfinite(value) or value < 0:
        raise LocalProtocolError("expected a finite number of seconds >= 0")
    return float(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a str")
    if any(c in value for c in "\r\n\0"):
        raise LocalProtocolError("CR, LF and NUL are not allowed")
    return value


def _helo(value: Any) -> str:
    if not isinstance(value, str) or not _HELO.fullmatch(value):
        raise LocalProtocolError("expected a non-empty ASCII name without spaces or controls")
    return value


def _optional_helo(value: Any) -> str:
    # Empty means "not set": filled in by `ClientConfig.with_hostname`.
    return value if value == "" else _helo(value)


def _optional(check: Check) -> Check:
    return lambda value: None if value is None else check(value)


def _choice(options: frozenset[str]) -> Check:
    def check(value: Any) -> str:
        if value not in options:
            raise LocalProtocolError(f"expected one of {', '.join(sorted(options))}")
        return str(value)

    return check


def _words(item: Check = _text) -> Check:
    def check(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError("expected a sequence of strings")
        items = tuple(item(v) for v in value)
        if any(not v or _LIST_SPLIT.search(v) for v in items if isinstance(v, str)):
            raise LocalProtocolError("list items must be non-empty, without spaces or commas")
        return items

    return check


def _wordset(options: frozenset[str] | None = None, upper: bool = False) -> Check:
    def check(value: Any) -> frozenset[str]:
        items = _words()(value)
        folded = frozenset(v.upper() if upper else v.lower() for v in items)
        if options is not None and not folded <= options:
            raise LocalProtocolError(f"unknown {', '.join(sorted(folded - options))}")
        return folded

    return check


def _address(version: int | None) -> Check:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("expected an IP address string")
        parsed = ipaddress.ip_address(value)
        if version is not None and parsed.version != version:
            raise LocalProtocolError(f"expected an IPv{version} address")
        return str(parsed)

    return check


def _mapping(values: Check) -> Check:
    def check(value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise TypeError("expected a mapping")
        frozen = {_text(k): values(v) for k, v in value.items()}
        return MappingProxyType(frozen)

    return check


def _protocols(value: Any) -> tuple[str, ...]:
    items: tuple[str, ...] = _words()(value)
    bad = [v for v in items if not _PROTOCOL.fullmatch(v)]
    if bad:
        raise LocalProtocolError(f"unknown TLS protocol {bad[0]!r}")
    return items


def _port(value: Any) -> int:
    port: int = _int(1, 65535)(value)
    return port


def _destination_list(value: Any) -> tuple[str, ...]:
    items: tuple[str, ...] = _words()(value)
    return items


_CHECKS: Mapping[str, Check] = MappingProxyType(
    {
        "lmtp": _bool,
        "myhostname": _optional_helo,
        "helo_name": _optional_helo,
        "tcp_port": _port,
        "lmtp_tcp_port": _port,
        "ignore_mx_lookup_error": _bool,
        "always_send_ehlo": _bool,
        "never_send_ehlo": _bool,
        "defer_if_no_mx_address_found": _bool,
        "line_length_limit": _int(0),
        "pix_workaround_delay_time": _seconds,
        "pix_workaround_threshold_time": _seconds,
        "pix_workarounds": _wordset(_PIX),
        "pix_workaround_maps": _mapping(_wordset(_PIX)),
        "quote_rfc821_envelope": _bool,
        "skip_5xx_greeting": _bool,
        "skip_4xx_greeting": _bool,
        "skip_quit_response": _bool,
        "discard_ehlo_keyword_address_maps": _mapping(_wordset(upper=True)),
        "discard_ehlo_keywords": _wordset(upper=True),
        "generic_maps": _mapping(_text),
        "cname_overrides_servername": _bool,
        "disable_mime_output_conversion": _bool,
        "mime_boundary_length_limit": _int(1),
        "mime_nesting_limit": _int(1),
        "send_xforward_command": _bool,
        "chunking": _bool,
        "sasl_scram_max_iterations": _int(4096),
        "sasl_auth_enable": _bool,
        "sasl_password_maps": _mapping(_text),
        "sasl_security_options": _wordset(_SASL_OPTIONS),
        "sasl_tls_security_options": _wordset(_SASL_OPTIONS),
        "sasl_tls_verified_security_options": _optional(_wordset(_SASL_OPTIONS)),
        "sasl_mechanism_filter": _words(),
        "sender_dependent_authentication": _bool,
        "tls_security_level": _choice(_TLS_LEVELS),
        "tls_policy_maps": _mapping(_text),
        "starttls_timeout": _seconds,
        "tls_CAfile": _optional(_text),
        "tls_CApath": _optional(_text),
        "tls_cert_file": _optional(_text),
        "tls_key_file": _optional(_text),
        "tls_mandatory_ciphers": _choice(_CIPHER_GRADES),
        "tls_exclude_ciphers": _words(),
        "tls_mandatory_exclude_ciphers": _words(),
        "tls_mandatory_protocols": _protocols,
        "tls_note_starttls_offer": _bool,
        "tls_secure_cert_match": _words(_choice(_CERT_MATCH)),
        "tls_verify_cert_match": _words(_choice(_CERT_MATCH)),
        "tls_session_cache_timeout": _seconds,
        "tls_high_cipherlist": _text,
        "tls_medium_cipherlist": _text,
        "tls_low_cipherlist": _text,
        "tls_null_cipherlist": _text,
        "destination_recipient_limit": _int(1),
        "connect_timeout": _seconds,
        "helo_timeout": _seconds,
        "xforward_timeout": _seconds,
        "mail_timeout": _seconds,
        "rcpt_timeout": _seconds,
        "data_init_timeout": _seconds,
        "data_xfer_timeout": _seconds,
        "data_done_timeout": _seconds,
        "quit_timeout": _seconds,
        "rset_timeout": _seconds,
        "per_request_deadline": _bool,
        "min_data_rate": _int(1),
        "mx_address_limit": _int(0),
        "mx_session_limit": _int(0),
        "connection_cache_destinations": _destination_list,
        "connection_cache_on_demand": _bool,
        "connection_reuse_time_limit": _seconds,
        "connection_reuse_count_limit": _int(0),
        "connection_cache_time_limit": _seconds,
        "debug_peer_list": _words(),
        "best_mx_transport": _text,
        # Postfix accepts 0..6 digits after the decimal point.
        "delay_logging_resolution_limit": _int(0, 6),
        "inet_interfaces": _words(_address(None)),
        "proxy_interfaces": _words(_address(None)),
        "inet_protocols": _wordset(_FAMILIES),
        "bind_address": _optional(_address(4)),
        "bind_address6": _optional(_address(6)),
        "host_lookup": _words(_choice(frozenset({"dns", "native"}))),
        "randomize_addresses": _bool,
        "address_preference": _choice(frozenset({"any", "ipv4", "ipv6"})),
        "balance_inet_protocols": _bool,
        "fallback_relay": _destination_list,
    }
)


# Parsers for postconf value syntax: a string in, a value the checker accepts out. A value that
# is not a string is passed through for the checker to judge.
def _p_bool(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return _BOOLEANS[raw.strip().lower()]
        except KeyError:
            raise LocalProtocolError("expected yes or no") from None
    return raw


def _p_int(raw: Any) -> Any:
    if isinstance(raw, str):
        if not raw.strip().isdigit():
            raise LocalProtocolError("expected a whole number")
        return int(raw.strip())
    return raw


def _p_time(raw: Any) -> Any:
    if isinstance(raw, str):
        match = _TIME.fullmatch(raw.strip())
        if match is None:
            raise LocalProtocolError("expected a time such as 300s, 5m, 1h, 1d or 1w")
        return int(match.group(1)) * _TIME_UNITS[(match.group(2) or "s").lower()]
    return raw


def _p_list(raw: Any) -> Any:
    if isinstance(raw, str):
        return tuple(item for item in _LIST_SPLIT.split(raw.strip()) if item)
    return raw


def _p_str(raw: Any) -> Any:
    return raw.strip() if isinstance(raw, str) else raw


def _p_optional_str(raw: Any) -> Any:
    # Postfix's "empty" means unset.
    if isinstance(raw, str):
        return raw.strip() or None
    return raw


def _p_port(raw: Any) -> Any:
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text in KNOWN_PORTS:
            return KNOWN_PORTS[text]
        return _p_int(text)
    return raw


def _p_map(raw: Any) -> Any:
    if isinstance(raw, str):
        if not raw.strip():
            return {}
        raise LocalProtocolError(
            "lookup tables are not opened by the library (no I/O); pass a mapping instead"
        )
    return raw


def _p_map_of_lists(raw: Any) -> Any:
    raw = _p_map(raw)
    if isinstance(raw, Mapping):
        return {k: _p_list(v) for k, v in raw.items()}
    return raw


def _p_protocols(raw: Any) -> Any:
    if isinstance(raw, str):
        # Postfix >= 3.6 writes a range as ">=TLSv1.2"; older configurations list exclusions.
        return _p_list(raw.replace(">= ", ">=").replace("<= ", "<="))
    return raw


def _p_tls_level(raw: Any) -> Any:
    # An empty smtp_tls_security_level means "none" unless the obsolete parameters say
    # otherwise, and those are rejected (see _parameters.py).
    if isinstance(raw, str):
        return raw.strip().lower() or "none"
    return raw


def _p_interfaces(raw: Any) -> Any:
    if isinstance(raw, str):
        text = raw.strip().lower()
        if text == "all":
            raise LocalProtocolError("'all' needs the interface list (I/O); list the addresses")
        if text == "loopback-only":
            return ("127.0.0.1", "::1")
        return _p_list(raw)
    return raw


def _p_protocol_families(raw: Any) -> Any:
    if isinstance(raw, str) and raw.strip().lower() == "all":
        return ("ipv4", "ipv6")
    return _p_list(raw)


_BY_CHECK: Mapping[str, Callable[[Any], Any]] = MappingProxyType(
    {
        "tls_CAfile": _p_optional_str,
        "tls_CApath": _p_optional_str,
        "tls_cert_file": _p_optional_str,
        "tls_key_file": _p_optional_str,
        "bind_address": _p_optional_str,
        "bind_address6": _p_optional_str,
        "tcp_port": _p_port,
        "lmtp_tcp_port": _p_port,
        "tls_mandatory_protocols": _p_protocols,
        "tls_security_level": _p_tls_level,
        "inet_interfaces": _p_interfaces,
        "proxy_interfaces": _p_interfaces,
        "inet_protocols": _p_protocol_families,
        "pix_workaround_maps": _p_map_of_lists,
        "discard_ehlo_keyword_address_maps": _p_map_of_lists,
        "sasl_tls_verified_security_options": _p_list,
    }
)


def _parser_for(name: str) -> Callable[[Any], Any]:
    if name in _BY_CHECK:
        return _BY_CHECK[name]
    default = ClientConfig.__dataclass_fields__[name].default
    factory = ClientConfig.__dataclass_fields__[name].default_factory
    if isinstance(default, bool):
        return _p_bool
    if isinstance(default, float):
        return _p_time
    if isinstance(default, int):
        return _p_int
    if isinstance(default, tuple | frozenset):
        return _p_list
    if callable(factory):
        return _p_map
    return _p_str


_PARSERS: Mapping[str, Callable[[Any], Any]] = MappingProxyType(
    {name: _parser_for(name) for name in _CHECKS}
)
