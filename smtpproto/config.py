"""Client configuration: the smtp(8) parameters under their Postfix names, without ``smtp_``.

Every parameter is declared once, on its `ClientConfig` field (``metadata["parameter"]``, a
`Declaration`: Postfix's names and default, the value type that parses and checks it, the
module where it takes effect, and whether it is in effect yet). Parameters that do not apply
to a library are declared in ``smtpproto._parameters.NOT_APPLICABLE`` with the reason:
`from_postconf` accepts and checks them, and they change nothing. ``docs/parameters.md`` is
generated from these declarations.

`ClientConfig.from_postconf` reads Postfix's names and value syntax (``300s``, ``yes``,
``a, b``, ``$name``, lookup tables); `ClientConfig.from_main_cf` reads a whole ``main.cf``
(``postconf -n`` output) and a ``master.cf`` service's ``-o`` overrides. Neither reads a
file: tables that live in files are opened through the `reader` argument (see
:mod:`smtpproto.tables`).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Any, TypeVar

from ._errors import LocalProtocolError
from ._parameters import (
    BOOL,
    NOT_APPLICABLE,
    TEXT,
    CheckAction,
    Declaration,
    Kind,
    MasterService,
    address,
    check_table,
    choice,
    expand,
    integer,
    match_list,
    optional,
    parse_main_cf,
    parse_master_cf,
    seconds,
    table,
    words,
    wordset,
)
from ._x509 import TrustAnchors
from .destinations import KNOWN_PORTS, parse_destinations
from .tables import Lookup, MatchList, Reader, split_list

__all__ = [
    "EXTENSION_FIELDS",
    "LEGACY",
    "ClientConfig",
    "Declaration",
    "MasterService",
    "TrustAnchors",
    "checked_config",
    "declaration",
    "declarations",
    "parse_main_cf",
    "parse_master_cf",
]

EXTENSION_FIELDS = frozenset(
    {"chunking", "chunking_one_flight_limit", "mta_sts_enable", "sasl_scram_max_iterations"}
)
"""`ClientConfig` fields with no Postfix parameter behind them (``-o`` names them
``smtpproto_*``)."""

_UNSET = object()


def _p(
    default: Any,
    name: str,
    kind: Kind,
    postfix_default: str,
    effect: str,
    *,
    status: str = "supported",
    why: str = "",
    lmtp: str | None = None,
    aliases: tuple[str, ...] = (),
    fallbacks: tuple[str, ...] = (),
    lmtp_default: Any = _UNSET,
    differs: str = "",
) -> Any:
    """A `ClientConfig` field declared as the Postfix parameter `name` (see `Declaration`)."""
    declared = Declaration(
        name,
        kind,
        postfix_default,
        status,  # type: ignore[arg-type]
        effect=effect,
        why=why,
        lmtp=lmtp,
        aliases=aliases,
        fallbacks=fallbacks,
        lmtp_default=lmtp_default,
        differs=differs,
    )
    metadata = {"parameter": declared}
    if isinstance(default, Mapping):
        return dataclasses.field(default_factory=lambda: default, metadata=metadata, hash=False)
    return dataclasses.field(
        default=default, metadata=metadata, hash=not isinstance(default, Lookup | MatchList)
    )


# -- value kinds of this module's parameters -------------------------------------------------

# RFC 5321 4.1.2: the EHLO/HELO argument is a domain or an address literal; no spaces or controls.
_HELO = re.compile(r"[!-~]+", re.ASCII)
_PROTOCOL = re.compile(
    r"(!?(SSLv2|SSLv3|TLSv1|TLSv1\.1|TLSv1\.2|TLSv1\.3)|[<>]=(TLSv1|TLSv1\.1|TLSv1\.2|TLSv1\.3))",
    re.ASCII,
)
_DOMAIN = re.compile(r"\.?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?", re.ASCII)
_PIX = ("disable_esmtp", "delay_dotcrlf")
_SASL_OPTIONS = (
    "noplaintext", "noanonymous", "noactive", "nodictionary", "mutual_auth", "forward_secrecy",
)  # fmt: skip
_TLS_LEVELS = ("none", "may", "encrypt", "fingerprint", "dane", "dane-only", "verify", "secure")
# tls_dane_digests items: "sha256", "sha512=2" (engine/dane.py parse_digests checks the rest).
_DIGEST_ITEM = re.compile(r"[a-z0-9-]+(=[0-9]{1,3})?", re.ASCII)


def _helo(value: Any) -> str:
    if not isinstance(value, str) or not _HELO.fullmatch(value):
        raise LocalProtocolError("expected a non-empty ASCII name without spaces or controls")
    return value


def _optional_helo(value: Any) -> str:
    # Empty means "not set": filled in by `ClientConfig.with_hostname`.
    return value if value == "" else _helo(value)


def _tls_level(value: Any) -> str:
    if value not in _TLS_LEVELS:
        raise LocalProtocolError(f"expected one of {', '.join(_TLS_LEVELS)}")
    return str(value)


def _protocol(value: Any) -> str:
    if not isinstance(value, str) or not _PROTOCOL.fullmatch(value):
        raise LocalProtocolError(f"unknown TLS protocol {value!r}")
    return value


def _parse_protocols(text: str, reader: Reader | None) -> Any:
    # Postfix >= 3.6 writes a range as ">=TLSv1.2"; older configurations list exclusions.
    return split_list(re.sub(r"([<>]=)\s+", r"\1", text))


def _cert_match(value: Any) -> str:
    # Postfix: the strategies, or a literal name, or ".domain" for its sub-domains only.
    if value in ("hostname", "nexthop", "dot-nexthop"):
        return str(value)
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value) or value in (".", ".."):
        raise LocalProtocolError(
            f"{value!r}: expected hostname, nexthop, dot-nexthop, a name or a .domain"
        )
    return value.lower()


def _servername(value: Any) -> str:
    # Postfix smtp_tls_servername: empty (no SNI), hostname, nexthop, or an A-label name.
    if value in ("", "hostname", "nexthop"):
        return str(value)
    if not isinstance(value, str) or not _DOMAIN.fullmatch(value) or value.startswith("."):
        raise LocalProtocolError("expected hostname, nexthop, a DNS name, or empty for no SNI")
    return value.lower().rstrip(".")


def _port(value: Any) -> int:
    port: int = integer(1, 65535).check(value)
    return port


def _parse_port(text: str, reader: Reader | None) -> Any:
    word = text.strip().lower()
    if word in KNOWN_PORTS:
        return KNOWN_PORTS[word]
    if not word.isdigit():
        raise LocalProtocolError(f"unknown service {word!r} (known: {', '.join(KNOWN_PORTS)})")
    return int(word)


def _known_ports(value: Any) -> Mapping[str, int]:
    if not isinstance(value, Mapping):
        raise TypeError("expected a mapping of service names to ports")
    ports: dict[str, int] = {}
    for name, port in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise LocalProtocolError(f"{name!r} is not a service name")
        ports[name] = _port(port)
    return MappingProxyType(ports)


def _parse_known_ports(text: str, reader: Reader | None) -> Any:
    # postconf(5) known_tcp_ports: "lmtp=24, smtp=25, smtps=submissions=465, submission=587".
    ports: dict[str, int] = {}
    for item in split_list(text):
        *names, number = (part.strip() for part in item.split("="))
        if not names or not number.isdigit():
            raise LocalProtocolError(f"expected name=port, got {item!r}")
        for name in names:
            ports[name.lower()] = int(number)
    return ports


def _parse_interfaces(text: str, reader: Reader | None) -> Any:
    word = text.strip().lower()
    if word == "all":
        raise LocalProtocolError("'all' needs the interface list (I/O); list the addresses")
    if word == "loopback-only":
        return ("127.0.0.1", "::1")
    return split_list(text)


def _parse_families(text: str, reader: Reader | None) -> Any:
    if text.strip().lower() == "all":
        return ("ipv4", "ipv6")
    return split_list(text)


def _dns_level(value: Any) -> str:
    if value not in ("enabled", "disabled", "dnssec"):
        raise LocalProtocolError("expected enabled, disabled or dnssec")
    return str(value)


def _digest_item(value: Any) -> str:
    if not isinstance(value, str) or not _DIGEST_ITEM.fullmatch(value.lower()):
        raise LocalProtocolError(f"expected a digest name, optionally =number: {value!r}")
    return value.lower()


def _trust_anchors(value: Any) -> TrustAnchors:
    if not isinstance(value, TrustAnchors):
        raise TypeError(
            "expected TrustAnchors.from_pem(...), or file names through from_postconf(reader=)"
        )
    return value


def _parse_trust_anchors(text: str, reader: Reader | None) -> Any:
    anchors = TrustAnchors()
    for path in split_list(text):
        if reader is None:
            raise LocalProtocolError(
                f"{path}: the library reads no files; pass reader= (for example "
                "smtpproto.adapters.postfix.read_file) or TrustAnchors.from_pem(text)"
            )
        try:
            anchors += TrustAnchors.from_pem(reader(path), what=path)
        except OSError as error:
            raise LocalProtocolError(f"cannot read {path}: {error.strerror or error}") from None
    return anchors


def _bounded_words(options: Iterable[str]) -> Kind:
    allowed = tuple(options)
    return words(choice(*allowed).check, label=" | ".join(allowed))


def _status_text(value: Any) -> str:
    # Postfix dsn_filter.c: "X.Y.Z text", the class 2, 4 or 5.
    text: str = TEXT.check(value)
    if not re.fullmatch(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}(?:[ \t].*)?", text.strip()):
        raise LocalProtocolError(f"{text!r}: expected 'X.Y.Z text' with X 2, 4 or 5")
    return text


def _dns_filter_action(value: Any) -> str:
    # Postfix dns_rr_filter.c knows one action, IGNORE (optional text after it).
    text: str = TEXT.check(value)
    words = text.split()
    if not words or words[0].upper() != "IGNORE":
        raise LocalProtocolError(f"{text!r}: the only DNS reply filter action is IGNORE")
    return text


OPTIONAL_HOST_NAME = Kind("host name", _optional_helo)
TLS_LEVEL = Kind("TLS level", _tls_level, lambda text, reader: text.strip().lower())
PROTOCOLS = Kind("protocols", words(_protocol).check, _parse_protocols)
CERT_MATCH = words(_cert_match, label="strategies or names")
PATH = optional(TEXT)
PORT = Kind("port", _port, _parse_port)
KNOWN_PORT_MAP = Kind("service=port list", _known_ports, _parse_known_ports)
INTERFACES = Kind("addresses", words(address(None).check).check, _parse_interfaces)
FAMILIES = Kind("ipv4 | ipv6", wordset(("ipv4", "ipv6")).check, _parse_families)
TRUST_ANCHORS = Kind("PEM files", _trust_anchors, _parse_trust_anchors)
DNS_LEVEL = Kind(
    "enabled | disabled | dnssec", _dns_level, lambda text, reader: text.strip().lower()
)
SASL_OPTIONS = wordset(_SASL_OPTIONS)
TIME = seconds()
CIPHER_GRADE = choice("high", "medium", "low", "null")
DESTINATIONS = words(label="destinations")
STATUS_TEXT = Kind("X.Y.Z text", _status_text)
DNS_FILTER_ACTION = Kind("IGNORE", _dns_filter_action)

_SMTP_ONLY = ""  # Declaration.lmtp for parameters lmtp(8) has no name for
_NO_TABLE: Lookup[Any] = Lookup()
_NO_LIST = MatchList()


_DERIVED = "_derived_values"  # the attribute that holds them, not a field
_DERIVED_LIMIT = 256
"""How many `ClientConfig._derived` values one configuration keeps at most."""
_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class ClientConfig:
    """The Postfix smtp(8)/lmtp(8) parameters that apply to a library, with Postfix's defaults."""

    lmtp: bool = False
    # Empty: not set. The core cannot ask the system for its name, so the adapters pass the
    # machine's name to the engine, which fills both in (`with_hostname`), as Postfix's
    # $myhostname and smtp_helo_name = $myhostname would be; "localhost" only when nobody did.
    myhostname: str = _p(
        "",
        "myhostname",
        OPTIONAL_HOST_NAME,
        "(the system's host name)",
        "engine/routing.py",
        lmtp=_SMTP_ONLY,
    )
    helo_name: str = _p(
        "",
        "smtp_helo_name",
        OPTIONAL_HOST_NAME,
        "$myhostname",
        "engine/session.py",
        lmtp="lmtp_lhlo_name",
    )
    tcp_port: int = _p(25, "smtp_tcp_port", PORT, "smtp", "destinations.py", lmtp=_SMTP_ONLY)
    lmtp_tcp_port: int = _p(24, "lmtp_tcp_port", PORT, "24", "destinations.py", lmtp=_SMTP_ONLY)
    known_tcp_ports: Mapping[str, int] = _p(
        KNOWN_PORTS,
        "known_tcp_ports",
        KNOWN_PORT_MAP,
        "lmtp=24, smtp=25, smtps=submissions=465, submission=587",
        "destinations.py",
        lmtp=_SMTP_ONLY,
    )

    # COMPATIBILITY CONTROLS
    ignore_mx_lookup_error: bool = _p(
        False, "ignore_mx_lookup_error", BOOL, "no", "engine/routing.py", lmtp=_SMTP_ONLY
    )
    always_send_ehlo: bool = _p(
        True, "smtp_always_send_ehlo", BOOL, "yes", "engine/session.py", lmtp=_SMTP_ONLY
    )
    # Postfix: never_send_ehlo wins over always_send_ehlo.
    never_send_ehlo: bool = _p(
        False, "smtp_never_send_ehlo", BOOL, "no", "engine/session.py", lmtp=_SMTP_ONLY
    )
    defer_if_no_mx_address_found: bool = _p(
        False, "smtp_defer_if_no_mx_address_found", BOOL, "no", "engine/routing.py"
    )
    # 0 = no limit.
    line_length_limit: int = _p(998, "smtp_line_length_limit", integer(0), "998", "body.py")
    pix_workaround_delay_time: float = _p(
        10.0, "smtp_pix_workaround_delay_time", TIME, "10s", "engine/transaction.py"
    )
    # 0: every message counts as queued long enough.
    pix_workaround_threshold_time: float = _p(
        500.0,
        "smtp_pix_workaround_threshold_time",
        seconds(zero=True),
        "500s",
        "engine/session.py",
    )
    pix_workarounds: frozenset[str] = _p(
        frozenset(_PIX),
        "smtp_pix_workarounds",
        wordset(_PIX),
        "disable_esmtp,delay_dotcrlf",
        "engine/session.py",
    )
    pix_workaround_maps: Lookup[frozenset[str]] = _p(
        _NO_TABLE,
        "smtp_pix_workaround_maps",
        table(wordset(_PIX), substitution=False),
        "",
        "engine/session.py",
    )
    quote_rfc821_envelope: bool = _p(
        True, "smtp_quote_rfc821_envelope", BOOL, "yes", "engine/transaction.py"
    )
    skip_5xx_greeting: bool = _p(True, "smtp_skip_5xx_greeting", BOOL, "yes", "engine/session.py")
    skip_4xx_greeting: bool = _p(
        True, "smtp_skip_4xx_greeting", BOOL, "yes", "engine/session.py", lmtp=_SMTP_ONLY
    )
    skip_quit_response: bool = _p(
        True,
        "smtp_skip_quit_response",
        BOOL,
        "yes",
        "engine/session.py",
        lmtp_default=False,
    )
    discard_ehlo_keyword_address_maps: Lookup[frozenset[str]] = _p(
        _NO_TABLE,
        "smtp_discard_ehlo_keyword_address_maps",
        table(wordset(upper=True), substitution=False),
        "",
        "engine/delivery.py",
        lmtp="lmtp_discard_lhlo_keyword_address_maps",
    )
    discard_ehlo_keywords: frozenset[str] = _p(
        frozenset(),
        "smtp_discard_ehlo_keywords",
        wordset(upper=True),
        "",
        "capabilities.py",
        lmtp="lmtp_discard_lhlo_keywords",
    )
    generic_maps: Lookup[str] = _p(_NO_TABLE, "smtp_generic_maps", table(), "", "engine/generic.py")
    cname_overrides_servername: bool = _p(
        False, "smtp_cname_overrides_servername", BOOL, "no", "engine/lookups.py"
    )

    # MIME PROCESSING CONTROLS
    disable_mime_output_conversion: bool = _p(
        False,
        "disable_mime_output_conversion",
        BOOL,
        "no",
        "engine/refusals.py",
        lmtp=_SMTP_ONLY,
    )
    mime_boundary_length_limit: int = _p(
        2048,
        "mime_boundary_length_limit",
        integer(1),
        "2048",
        "engine/transaction.py",
        lmtp=_SMTP_ONLY,
    )
    mime_nesting_limit: int = _p(
        100,
        "mime_nesting_limit",
        integer(1),
        "100",
        "engine/transaction.py",
        lmtp=_SMTP_ONLY,
    )
    smtputf8_enable: bool = _p(
        True,
        "smtputf8_enable",
        BOOL,
        "yes",
        "engine/refusals.py",
        lmtp=_SMTP_ONLY,
    )
    enable_idna2003_compatibility: bool = _p(
        False,
        "enable_idna2003_compatibility",
        BOOL,
        "no",
        "destinations.py",
        lmtp=_SMTP_ONLY,
    )

    # EXTERNAL CONTENT INSPECTION CONTROLS
    send_xforward_command: bool = _p(
        False, "smtp_send_xforward_command", BOOL, "no", "engine/transaction.py"
    )
    # header_checks(5) applied while the message streams (Postfix smtp_proto.c
    # smtp_header_rewrite()); smtpproto/engine/checks.py says what each action does.
    header_checks: Lookup[CheckAction] = _p(
        _NO_TABLE,
        "smtp_header_checks",
        check_table(header=True),
        "",
        "engine/checks.py",
    )
    mime_header_checks: Lookup[CheckAction] = _p(
        _NO_TABLE,
        "smtp_mime_header_checks",
        check_table(header=True),
        "",
        "engine/checks.py",
    )
    nested_header_checks: Lookup[CheckAction] = _p(
        _NO_TABLE,
        "smtp_nested_header_checks",
        check_table(header=True),
        "",
        "engine/checks.py",
    )
    body_checks: Lookup[CheckAction] = _p(
        _NO_TABLE,
        "smtp_body_checks",
        check_table(header=False),
        "",
        "engine/checks.py",
    )
    reply_filter: Lookup[str] = _p(
        _NO_TABLE, "smtp_reply_filter", table(TEXT), "", "engine/session.py"
    )
    delivery_status_filter: Lookup[str] = _p(
        _NO_TABLE,
        "smtp_delivery_status_filter",
        table(STATUS_TEXT),
        "$default_delivery_status_filter",
        "engine/trouble.py",
    )

    # SMTPPROTO EXTENSIONS (no Postfix parameter)
    # BDAT (RFC 3030) instead of DATA when the server offers CHUNKING (rule 15.4). Off by
    # default: Postfix's client never sends BDAT, so DATA is what its peers have been tested with.
    chunking: bool = _p(
        False,
        "smtpproto_chunking",
        BOOL,
        "(none: Postfix never sends BDAT)",
        "engine/transaction.py",
        lmtp=_SMTP_ONLY,
    )
    # With PIPELINING and CHUNKING, a message of at most this many octets (its SIZE, RFC 1870)
    # goes as ``BDAT n LAST`` in the flight that carries MAIL and RCPT: one round trip per
    # message, as Exim's client does. RFC 3030 4.2 allows it, and a server refuses the chunk
    # when no recipient was accepted. A larger message waits for the RCPT replies first, so
    # that no content goes to a transaction without recipients. 0: every message waits.
    # SMTP only: LMTP servers disagree on what answers BDAT LAST without a recipient.
    chunking_one_flight_limit: int = _p(
        65536,
        "smtpproto_chunking_one_flight_limit",
        integer(0),
        "(none: Postfix never sends BDAT)",
        "engine/transaction.py",
        lmtp=_SMTP_ONLY,
    )
    mta_sts_enable: bool = _p(
        False,
        "smtpproto_mta_sts_enable",
        BOOL,
        "(none: Postfix leaves MTA-STS to a policy server behind smtp_tls_policy_maps)",
        "engine/authtls.py",
        lmtp=_SMTP_ONLY,
    )
    """MTA-STS (RFC 8461) for domain next hops: discover and fetch each domain's policy,
    and enforce it where the configured level does not already authenticate the server."""

    # SASL AUTHENTICATION CONTROLS
    sasl_auth_enable: bool = _p(False, "smtp_sasl_auth_enable", BOOL, "no", "engine/security.py")
    sasl_password_maps: Lookup[str] = _p(
        _NO_TABLE, "smtp_sasl_password_maps", table(), "", "engine/security.py"
    )
    sasl_security_options: frozenset[str] = _p(
        frozenset({"noplaintext", "noanonymous"}),
        "smtp_sasl_security_options",
        SASL_OPTIONS,
        "noplaintext, noanonymous",
        "engine/security.py",
    )
    # AU-20: PLAIN, LOGIN and XOAUTH2 only over TLS whose certificate verified and matched,
    # at every level; a caller opts in to less by naming the options. Postfix never sends
    # them by default (quirk Q9: every option repeats $smtp_sasl_security_options), and
    # from_postconf and from_main_cf keep that.
    sasl_tls_security_options: frozenset[str] = _p(
        frozenset({"noplaintext", "noanonymous"}),
        "smtp_sasl_tls_security_options",
        SASL_OPTIONS,
        "$smtp_sasl_security_options",
        "engine/security.py",
    )
    # None: the same as sasl_tls_security_options (Postfix's $smtp_sasl_tls_security_options).
    sasl_tls_verified_security_options: frozenset[str] | None = _p(
        frozenset({"noanonymous"}),
        "smtp_sasl_tls_verified_security_options",
        optional(SASL_OPTIONS),
        "$smtp_sasl_tls_security_options",
        "engine/security.py",
        differs="PLAIN, LOGIN and XOAUTH2 go to a verified peer, the one TLS peer known not "
        "to be a man in the middle (AU-20), and to no other; RFC 4954 names PLAIN over TLS as "
        "what every server implements. from_postconf and from_main_cf keep Postfix's default",
    )
    sasl_mechanism_filter: MatchList = _p(
        _NO_LIST, "smtp_sasl_mechanism_filter", match_list(), "", "engine/security.py"
    )
    sender_dependent_authentication: bool = _p(
        False, "smtp_sender_dependent_authentication", BOOL, "no", "engine/security.py"
    )
    sasl_auth_soft_bounce: bool = _p(
        True, "smtp_sasl_auth_soft_bounce", BOOL, "yes", "engine/security.py"
    )
    send_cyrus_sasl_authzid: bool = _p(
        False, "send_cyrus_sasl_authzid", BOOL, "no", "engine/security.py", lmtp=_SMTP_ONLY
    )
    # SMTPPROTO EXTENSION: the most SCRAM iterations a server may ask for (AU-13, AU-19);
    # more fails the AUTH, which defers.
    sasl_scram_max_iterations: int = _p(
        100_000,
        "smtpproto_sasl_scram_max_iterations",
        integer(4096),
        "(none: Cyrus SASL refuses more than 65,536)",
        "engine/security.py",
        differs="room above Cyrus SASL's 65,536 for servers that ask more, bounded so that a "
        "hostile server cannot pin the CPU (AU-19)",
    )
    send_dummy_mail_auth: bool = _p(
        False,
        "smtp_send_dummy_mail_auth",
        BOOL,
        "no",
        "engine/transaction.py",
    )

    # STARTTLS SUPPORT CONTROLS (Postfix >= 3.11 compatibility level: "may")
    tls_security_level: str = _p(
        "may",
        "smtp_tls_security_level",
        TLS_LEVEL,
        "",
        "engine/security.py",
        lmtp_default="none",
        differs="opportunistic TLS by default, as Postfix >= 3.11; Postfix 3.7's empty value "
        "means none",
    )
    tls_policy_maps: Lookup[str] = _p(
        _NO_TABLE, "smtp_tls_policy_maps", table(), "", "engine/tlspolicy.py"
    )
    tls_wrappermode: bool = _p(False, "smtp_tls_wrappermode", BOOL, "no", "engine/security.py")
    tls_servername: str = _p(
        "hostname",
        "smtp_tls_servername",
        Kind("hostname | nexthop | name", _servername),
        "",
        "engine/tlspolicy.py",
        differs="SNI carries the server name by default, so a server with several "
        "certificates presents the one verify checks; Postfix sends none",
    )
    starttls_timeout: float = _p(300.0, "smtp_starttls_timeout", TIME, "300s", "engine/security.py")
    tls_CAfile: str | None = _p(None, "smtp_tls_CAfile", PATH, "", "engine/security.py")
    tls_CApath: str | None = _p(None, "smtp_tls_CApath", PATH, "", "engine/security.py")
    tls_chain_files: tuple[str, ...] = _p(
        (), "smtp_tls_chain_files", words(label="files"), "", "engine/security.py"
    )
    tls_cert_file: str | None = _p(None, "smtp_tls_cert_file", PATH, "", "engine/security.py")
    # None: the key is in tls_cert_file (Postfix's $smtp_tls_cert_file).
    tls_key_file: str | None = _p(
        None, "smtp_tls_key_file", PATH, "$smtp_tls_cert_file", "engine/security.py"
    )
    tls_eccert_file: str | None = _p(None, "smtp_tls_eccert_file", PATH, "", "engine/security.py")
    tls_eckey_file: str | None = _p(
        None, "smtp_tls_eckey_file", PATH, "$smtp_tls_eccert_file", "engine/security.py"
    )
    tls_ciphers: str = _p(
        "medium", "smtp_tls_ciphers", CIPHER_GRADE, "medium", "engine/tlspolicy.py"
    )
    tls_mandatory_ciphers: str = _p(
        "medium", "smtp_tls_mandatory_ciphers", CIPHER_GRADE, "medium", "engine/tlspolicy.py"
    )
    tls_exclude_ciphers: tuple[str, ...] = _p(
        (), "smtp_tls_exclude_ciphers", words(), "", "engine/tlspolicy.py"
    )
    tls_mandatory_exclude_ciphers: tuple[str, ...] = _p(
        (), "smtp_tls_mandatory_exclude_ciphers", words(), "", "engine/tlspolicy.py"
    )
    tls_protocols: tuple[str, ...] = _p(
        (">=TLSv1",), "smtp_tls_protocols", PROTOCOLS, ">=TLSv1", "engine/tlspolicy.py"
    )
    tls_mandatory_protocols: tuple[str, ...] = _p(
        (">=TLSv1.2",),
        "smtp_tls_mandatory_protocols",
        PROTOCOLS,
        ">=TLSv1",
        "engine/tlspolicy.py",
        differs="TLS 1.0 and 1.1 are deprecated (RFC 8996); mandatory TLS starts at 1.2",
    )
    tls_note_starttls_offer: bool = _p(
        False, "smtp_tls_note_starttls_offer", BOOL, "no", "engine/security.py"
    )
    tls_secure_cert_match: tuple[str, ...] = _p(
        ("nexthop", "dot-nexthop"),
        "smtp_tls_secure_cert_match",
        CERT_MATCH,
        "nexthop, dot-nexthop",
        "engine/tlspolicy.py",
    )
    tls_verify_cert_match: tuple[str, ...] = _p(
        ("hostname",), "smtp_tls_verify_cert_match", CERT_MATCH, "hostname", "engine/tlspolicy.py"
    )
    # Rule 9.6: a session that started TLS may be kept for reuse (the Mailer's cache holds
    # the connection in this process, where Postfix needs tlsproxy(8) for it).
    tls_connection_reuse: bool = _p(
        False, "smtp_tls_connection_reuse", BOOL, "no", "engine/session.py"
    )
    tls_fingerprint_cert_match: tuple[str, ...] = _p(
        (),
        "smtp_tls_fingerprint_cert_match",
        words(),
        "",
        "engine/authtls.py",
    )
    tls_fingerprint_digest: str = _p(
        "sha256",
        "smtp_tls_fingerprint_digest",
        choice("md5", "sha1", "sha256", "sha512"),
        "sha256",
        "engine/authtls.py",
    )
    tls_trust_anchor_file: TrustAnchors = _p(
        TrustAnchors(),
        "smtp_tls_trust_anchor_file",
        TRUST_ANCHORS,
        "",
        "engine/authtls.py",
    )
    """The anchors of ``verify`` and ``secure`` when not empty: they replace the CAs, need
    not be roots, and are not subject to expiry (postconf(5)). From Python:
    ``TrustAnchors.from_pem(text)``; ``from_postconf`` reads the files through `reader`."""
    tls_dane_insecure_mx_policy: str | None = _p(
        None,
        "smtp_tls_dane_insecure_mx_policy",
        optional(choice("may", "encrypt", "dane")),
        "${{$smtp_tls_security_level} == {dane} ? {dane} : {may}}",
        "engine/authtls.py",
    )
    """``None``: Postfix's default, ``dane`` when ``tls_security_level`` is ``dane``, else
    ``may`` (the global level decides, as in Postfix, even for a policy-table ``dane``)."""
    tls_force_insecure_host_tlsa_lookup: bool = _p(
        False,
        "smtp_tls_force_insecure_host_tlsa_lookup",
        BOOL,
        "no",
        "engine/authtls.py",
    )
    tls_dane_digests: tuple[str, ...] = _p(
        ("sha512", "sha256"),
        "tls_dane_digests",
        words(_digest_item, label="digests"),
        "sha512 sha256",
        "engine/authtls.py",
        lmtp=_SMTP_ONLY,
    )
    tls_high_cipherlist: str = _p(
        "aNULL:-aNULL:HIGH:@STRENGTH",
        "tls_high_cipherlist",
        TEXT,
        "aNULL:-aNULL:HIGH:@STRENGTH",
        "engine/tlspolicy.py",
        lmtp=_SMTP_ONLY,
    )
    tls_medium_cipherlist: str = _p(
        "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
        "tls_medium_cipherlist",
        TEXT,
        "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
        "engine/tlspolicy.py",
        lmtp=_SMTP_ONLY,
    )
    tls_low_cipherlist: str = _p(
        "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH",
        "tls_low_cipherlist",
        TEXT,
        "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH",
        "engine/tlspolicy.py",
        lmtp=_SMTP_ONLY,
    )
    tls_null_cipherlist: str = _p(
        "eNULL:!aNULL",
        "tls_null_cipherlist",
        TEXT,
        "eNULL:!aNULL",
        "engine/tlspolicy.py",
        lmtp=_SMTP_ONLY,
    )

    # RESOURCE AND RATE CONTROLS (seconds)
    destination_recipient_limit: int = _p(
        50,
        "transport_destination_recipient_limit",
        integer(1),
        "$default_destination_recipient_limit",
        "engine/delivery.py",
        lmtp=_SMTP_ONLY,
        fallbacks=("default_destination_recipient_limit",),
    )
    # A Mailer's connections at once to one next hop (0: no limit, as in Postfix's qmgr).
    destination_concurrency_limit: int = _p(
        20,
        "transport_destination_concurrency_limit",
        integer(0),
        "$default_destination_concurrency_limit",
        "engine/cache.py",
        lmtp=_SMTP_ONLY,
        fallbacks=("default_destination_concurrency_limit",),
    )
    # A Mailer's connections in use at once, in all: the smtp service's process limit in Postfix.
    process_limit: int = _p(
        100, "default_process_limit", integer(1), "100", "engine/cache.py", lmtp=_SMTP_ONLY
    )
    # 0: no limit of the library's own, the operating system's applies (lmtp(8)'s default).
    connect_timeout: float = _p(
        30.0,
        "smtp_connect_timeout",
        seconds(zero=True),
        "30s",
        "engine/delivery.py",
        lmtp_default=0.0,
    )
    helo_timeout: float = _p(
        300.0,
        "smtp_helo_timeout",
        TIME,
        "300s",
        "engine/session.py",
        lmtp="lmtp_lhlo_timeout",
    )
    xforward_timeout: float = _p(
        300.0, "smtp_xforward_timeout", TIME, "300s", "engine/transaction.py"
    )
    mail_timeout: float = _p(300.0, "smtp_mail_timeout", TIME, "300s", "engine/transaction.py")
    rcpt_timeout: float = _p(300.0, "smtp_rcpt_timeout", TIME, "300s", "engine/transaction.py")
    data_init_timeout: float = _p(
        120.0, "smtp_data_init_timeout", TIME, "120s", "engine/transaction.py"
    )
    data_xfer_timeout: float = _p(
        180.0, "smtp_data_xfer_timeout", TIME, "180s", "engine/transaction.py"
    )
    data_done_timeout: float = _p(
        600.0, "smtp_data_done_timeout", TIME, "600s", "engine/transaction.py"
    )
    quit_timeout: float = _p(300.0, "smtp_quit_timeout", TIME, "300s", "engine/session.py")
    rset_timeout: float = _p(20.0, "smtp_rset_timeout", TIME, "20s", "engine/delivery.py")
    # Each timeout above limits a whole request and its reply (rule 10.2), not each read or
    # write. smtp_per_record_deadline, the name before Postfix 3.7, is what it defaults to.
    per_request_deadline: bool = _p(
        True,
        "smtp_per_request_deadline",
        BOOL,
        "${smtp_per_record_deadline?{$smtp_per_record_deadline}:{no}}",
        "engine/session.py",
        fallbacks=("smtp_per_record_deadline",),
        differs="on, so a peer that trickles bytes cannot stretch a request past its timeout; "
        "from_postconf and from_main_cf keep Postfix's no",
    )
    # Octets per second of content that earn more time under the deadline (rule 10.2).
    min_data_rate: int = _p(500, "smtp_min_data_rate", integer(1), "500", "engine/transaction.py")
    mx_address_limit: int = _p(5, "smtp_mx_address_limit", integer(0), "5", "engine/routing.py")
    mx_session_limit: int = _p(2, "smtp_mx_session_limit", integer(0), "2", "engine/routing.py")
    connection_cache_destinations: MatchList = _p(
        _NO_LIST,
        "smtp_connection_cache_destinations",
        match_list(),
        "",
        "engine/delivery.py",
    )
    connection_cache_on_demand: bool = _p(
        True, "smtp_connection_cache_on_demand", BOOL, "yes", "engine/delivery.py"
    )
    connection_reuse_time_limit: float = _p(
        300.0, "smtp_connection_reuse_time_limit", TIME, "300s", "engine/session.py"
    )
    # 0: no limit; N: N reuses, so N + 1 transactions per connection.
    connection_reuse_count_limit: int = _p(
        0, "smtp_connection_reuse_count_limit", integer(0), "0", "engine/session.py"
    )
    connection_cache_time_limit: float = _p(
        2.0, "smtp_connection_cache_time_limit", TIME, "2s", "engine/delivery.py"
    )
    # How long a Mailer backs off a destination that failed or said to slow down, as Postfix's
    # queue manager does (qmgr_queue_throttle); and, as in Postfix's smtp(8), how long a
    # message must have been queued before a failed TLS handshake at level may is retried in
    # plaintext (rule 5.5, engine/delivery.py).
    minimal_backoff_time: float = _p(
        300.0,
        "minimal_backoff_time",
        TIME,
        "300s",
        "engine/cache.py",
        lmtp=_SMTP_ONLY,
    )

    # TROUBLE SHOOTING CONTROLS: none apply (see NOT_APPLICABLE).

    # MISCELLANEOUS CONTROLS
    # A next-hop destination (destination syntax) for mail whose best MX is this host; Postfix
    # names a transport here. Empty: such mail bounces as a loop (rule 14.6).
    best_mx_transport: str = _p(
        "",
        "best_mx_transport",
        TEXT,
        "",
        "engine/delivery.py",
        lmtp=_SMTP_ONLY,
        differs="a next-hop destination here (such as [127.0.0.1]:10025), where Postfix "
        "names a master.cf transport",
    )
    delay_logging_resolution_limit: int = _p(
        2, "delay_logging_resolution_limit", integer(0, 6), "2", "report.py", lmtp=_SMTP_ONLY
    )
    # Our own addresses, for loop detection (rule 14.6). Postfix's "all" would need the
    # interface list, which is I/O: list the addresses.
    inet_interfaces: tuple[str, ...] = _p(
        (),
        "inet_interfaces",
        INTERFACES,
        "all",
        "engine/routing.py",
        lmtp=_SMTP_ONLY,
        differs="'all' needs the machine's interface list (I/O): list the addresses",
    )
    proxy_interfaces: tuple[str, ...] = _p(
        (), "proxy_interfaces", INTERFACES, "", "engine/routing.py", lmtp=_SMTP_ONLY
    )
    inet_protocols: frozenset[str] = _p(
        frozenset({"ipv4", "ipv6"}),
        "inet_protocols",
        FAMILIES,
        "all",
        "engine/routing.py",
        lmtp=_SMTP_ONLY,
    )
    bind_address: str | None = _p(
        None, "smtp_bind_address", optional(address(4)), "", "engine/delivery.py"
    )
    bind_address6: str | None = _p(
        None, "smtp_bind_address6", optional(address(6)), "", "engine/delivery.py"
    )
    bind_address_enforce: bool = _p(
        True,
        "smtp_bind_address_enforce",
        BOOL,
        "no",
        "engine/delivery.py",
        differs="a source address that cannot be bound defers rather than going out from "
        "another address (Postfix's yes); from_postconf keeps Postfix's no",
    )
    host_lookup: tuple[str, ...] = _p(
        ("dns", "native"),
        "smtp_host_lookup",
        _bounded_words(("dns", "native")),
        "dns",
        "engine/lookups.py",
        differs="dns, native: a host the DNS does not know is looked up natively too "
        "(/etc/hosts), so [localhost] works without a DNS entry or the dns extra",
    )
    dns_support_level: str = _p(
        "enabled",
        "smtp_dns_support_level",
        DNS_LEVEL,
        "",
        "engine/delivery.py",
    )
    randomize_addresses: bool = _p(
        True, "smtp_randomize_addresses", BOOL, "yes", "engine/routing.py"
    )
    address_preference: str = _p(
        "any",
        "smtp_address_preference",
        choice("any", "ipv4", "ipv6"),
        "any",
        "engine/routing.py",
    )
    balance_inet_protocols: bool = _p(
        True, "smtp_balance_inet_protocols", BOOL, "yes", "engine/routing.py"
    )
    fallback_relay: tuple[str, ...] = _p(
        (),
        "smtp_fallback_relay",
        DESTINATIONS,
        "$fallback_relay",
        "engine/routing.py",
        fallbacks=("fallback_relay",),
    )
    dns_reply_filter: Lookup[str] = _p(
        _NO_TABLE, "smtp_dns_reply_filter", table(DNS_FILTER_ACTION), "", "engine/lookups.py"
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            declared: Declaration | None = f.metadata.get("parameter")
            check = declared.kind.check if declared is not None else BOOL.check
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
        if len(self.tls_chain_files) > 1:
            raise LocalProtocolError(
                "tls_chain_files: the adapters present one client certificate; name one file"
            )
        if self.tls_cert_file is not None and self.tls_eccert_file is not None:
            raise LocalProtocolError(
                "tls_eccert_file: the adapters present one client certificate; set it or "
                "tls_cert_file, not both"
            )

    def __repr__(self) -> str:
        """Every field, with SASL passwords masked."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "sasl_password_maps":
                text = value.describe(redact=True)
            elif isinstance(value, Lookup):
                text = value.describe()
            elif isinstance(value, MappingProxyType):
                text = repr(dict(value))
            else:
                text = repr(value)
            parts.append(f"{f.name}={text}")
        return f"ClientConfig({', '.join(parts)})"

    def with_hostname(self, machine: str) -> ClientConfig:
        """This config with an empty `myhostname` set to `machine` (or ``localhost``) and an
        empty `helo_name` to `myhostname`; the engine calls it with the adapter's name."""
        if self.myhostname and self.helo_name:
            return self
        return self._derived(("with_hostname", machine), lambda: self._named(machine))

    def _named(self, machine: str) -> ClientConfig:
        myhostname = self.myhostname or _helo(machine or "localhost")
        if (myhostname, self.helo_name or myhostname) == (self.myhostname, self.helo_name):
            return self
        # Every other field was checked when this config was made and is immutable; only the
        # two names change, and `_helo` checked the new one. A full replace would check all
        # two hundred fields again, for every delivery. (The copy gets no `_derived` values.)
        named = copy.copy(self)
        object.__setattr__(named, "myhostname", myhostname)
        object.__setattr__(named, "helo_name", self.helo_name or myhostname)
        return named

    def _derived(self, key: Hashable, make: Callable[[], _T]) -> _T:
        """``make()``, remembered with this configuration under `key`.

        For what the engine derives from the configuration (immutable) and a destination
        alone, by pure functions, and would derive again for every delivery with the same
        configuration: `with_hostname`, the next hops, the TLS parameters. `key` names the
        function and its other arguments. A failure is not remembered. At most
        `_DERIVED_LIMIT` values are kept, so a Mailer with many destinations does not grow
        it for ever; a copy of the configuration starts without them.
        """
        memo: dict[Hashable, Any] | None = self.__dict__.get(_DERIVED)
        if memo is None:
            memo = {}
            object.__setattr__(self, _DERIVED, memo)
        try:
            value: _T = memo[key]
        except KeyError:
            value = make()
            if len(memo) >= _DERIVED_LIMIT:
                memo.clear()
            memo[key] = value
        except TypeError:
            return make()  # an unhashable argument (a caller's object): nothing to key it by
        return value

    def __getstate__(self) -> dict[str, Any]:
        """The fields, without the `_derived` values (for `copy`)."""
        state = dict(self.__dict__)
        state.pop(_DERIVED, None)
        return state

    @property
    def default_port(self) -> int:
        """The port for destinations that name none (``lmtp_tcp_port`` for LMTP)."""
        return self.lmtp_tcp_port if self.lmtp else self.tcp_port

    @property
    def client_certificate(self) -> tuple[str, str | None] | None:
        """The client certificate file and key file to present, in Postfix's order.

        ``smtp_tls_chain_files`` (key and chain in one file), else ``smtp_tls_cert_file``
        with ``smtp_tls_key_file``, else the ECDSA pair; ``None`` for no certificate.
        """
        if self.tls_chain_files:
            return self.tls_chain_files[0], None
        if self.tls_cert_file is not None:
            return self.tls_cert_file, self.tls_key_file
        if self.tls_eccert_file is not None:
            return self.tls_eccert_file, self.tls_eckey_file
        return None

    @classmethod
    def from_postconf(
        cls,
        mapping: Mapping[str, Any],
        *,
        lmtp: bool = False,
        reader: Reader | None = None,
        service: str | None = None,
    ) -> ClientConfig:
        """Build a config from Postfix parameter names and value syntax (``smtp_*``/``lmtp_*``).

        Values are strings in postconf syntax (``300s``, ``yes``, ``a, b``, ``$name``,
        ``texthash:/path``) or already-typed Python values (a mapping or callable for a
        lookup table). `reader` returns the text of a table file (see
        :mod:`smtpproto.tables`); `service` is the master.cf service name, which picks
        ``<service>_destination_recipient_limit``. An unknown name, a name of the other
        protocol, or a bad value is a `LocalProtocolError` naming the parameter; a parameter
        that does not apply to a library is checked and has no effect.
        """
        return _build(cls, mapping, mapping, lmtp=lmtp, reader=reader, service=service)

    @classmethod
    def from_main_cf(
        cls,
        main_cf: str,
        *,
        master_cf: str | None = None,
        service: str | None = None,
        lmtp: bool | None = None,
        reader: Reader | None = None,
    ) -> ClientConfig:
        """Build a config from the text of a ``main.cf`` (or ``postconf -n`` output).

        With `master_cf` and `service` (a master.cf service name such as ``relay``), that
        service's ``-o`` overrides apply on top, and its command (``smtp`` or ``lmtp``)
        decides `lmtp` unless given. Parameters of other Postfix programs (``smtpd_*``,
        ``virtual_*``, ...) and of the other protocol are left alone; they still serve
        ``$name`` expansion. `reader` opens table files, as for `from_postconf`.
        """
        settings: dict[str, Any] = dict(parse_main_cf(main_cf))
        if master_cf is not None:
            if service is None:
                raise LocalProtocolError("service: name the master.cf service to read")
            wanted = [s for s in parse_master_cf(master_cf) if s.name == service]
            if not wanted:
                raise LocalProtocolError(f"service: no {service!r} service in master.cf")
            chosen = wanted[-1]
            if chosen.command not in ("smtp", "lmtp"):
                raise LocalProtocolError(
                    f"service: {service!r} runs {chosen.command}, not smtp(8) or lmtp(8)"
                )
            if lmtp is None:
                lmtp = chosen.lmtp
            settings.update(chosen.overrides)
        mode = bool(lmtp)
        own = {name: value for name, value in settings.items() if _belongs(name, mode, service)}
        return _build(cls, own, settings, lmtp=mode, reader=reader, service=service)


# -- the declarations --------------------------------------------------------------------


def _legacy(name: str, default: str, why: str) -> Declaration:
    # lmtp(8) reads lmtp_use_tls and friends; disable_dns_lookups is global.
    return Declaration(name, BOOL, default, effect="config.py", differs=why)


LEGACY: tuple[Declaration, ...] = (
    _legacy("smtp_use_tls", "no", "read only when smtp_tls_security_level is empty: yes = may"),
    _legacy(
        "smtp_enforce_tls",
        "no",
        "read only when smtp_tls_security_level is empty: yes = encrypt, or verify with "
        "smtp_tls_enforce_peername",
    ),
    _legacy(
        "smtp_tls_enforce_peername",
        "yes",
        "read only with smtp_enforce_tls = yes and an empty smtp_tls_security_level",
    ),
    _legacy(
        "disable_dns_lookups",
        "no",
        "read only when smtp_dns_support_level is empty: yes = disabled",
    ),
)
"""Obsolete Postfix parameters that `from_postconf` turns into their modern field, as Postfix
does when the modern parameter is empty (``tls_security_level``, ``dns_support_level``)."""

_DERIVED_WHEN_EMPTY = frozenset({"tls_security_level", "dns_support_level"})
_LEGACY_FIELDS: Mapping[str, str] = MappingProxyType(
    {
        "smtp_use_tls": "tls_security_level",
        "smtp_enforce_tls": "tls_security_level",
        "smtp_tls_enforce_peername": "tls_security_level",
        "disable_dns_lookups": "dns_support_level",
    }
)


def _field_declarations() -> tuple[Declaration, ...]:
    found = []
    for f in fields(ClientConfig):
        declared = f.metadata.get("parameter")
        if declared is not None:
            found.append(dataclasses.replace(declared, field=f.name))
    return tuple(found)


_FIELDS = _field_declarations()
_ALL: tuple[Declaration, ...] = (
    _FIELDS
    + tuple(dataclasses.replace(d, field=_LEGACY_FIELDS[d.name]) for d in LEGACY)
    + NOT_APPLICABLE
)


def declarations() -> tuple[Declaration, ...]:
    """Every declared parameter: fields, obsolete parameters read into fields, and the not
    applicable ones (each `Declaration` has `field` set when it feeds one)."""
    return _ALL


_BY_NAME: Mapping[str, Declaration] = MappingProxyType(
    {name: d for d in reversed(_ALL) for name in d.names()}
)


def declaration(name: str) -> Declaration | None:
    """The declaration that the Postfix parameter `name` belongs to, or ``None``."""
    return _BY_NAME.get(name)


# -- from_postconf -------------------------------------------------------------------------


def _transport(lmtp: bool, service: str | None) -> str:
    return service or ("lmtp" if lmtp else "smtp")


# Postfix's <transport>_destination_*_limit: named after the master.cf service.
_PER_TRANSPORT = ("_destination_recipient_limit", "_destination_concurrency_limit")


def _resolve(name: str, lmtp: bool, service: str | None) -> tuple[Declaration, int]:
    """The declaration `name` sets in this mode, and its precedence (fallbacks lose)."""
    if not isinstance(name, str):
        raise LocalProtocolError(f"parameter names are strings: {name!r}")
    transport = _transport(lmtp, service)
    for suffix in _PER_TRANSPORT:
        if name == transport + suffix:
            return _BY_NAME["transport" + suffix], 1
    declared = _BY_NAME.get(name)
    if declared is None:
        for suffix in _PER_TRANSPORT:
            if name.endswith(suffix):
                raise LocalProtocolError(
                    f"{name}: this is {transport}'s configuration "
                    f"(read {transport + suffix} instead)"
                )
        raise LocalProtocolError(f"{name}: unknown parameter")
    client = declared.client_of(name)
    if lmtp and client == "smtp":
        raise LocalProtocolError(f"{name}: lmtp(8) reads {declared.counterpart(name)} instead")
    if not lmtp and client == "lmtp":
        raise LocalProtocolError(f"{name}: an LMTP parameter; pass lmtp=True")
    return declared, 0 if declared.is_fallback(name) else 1


def _belongs(name: str, lmtp: bool, service: str | None) -> bool:
    try:
        _resolve(name, lmtp, service)
    except LocalProtocolError:
        return False
    return True


def _literal_default(name: str) -> str | None:
    declared = _BY_NAME.get(name)
    if declared is None or declared.postfix_default.startswith("("):
        return None
    return declared.postfix_default


def _build(
    cls: type[ClientConfig],
    mapping: Mapping[str, Any],
    context: Mapping[str, Any],
    *,
    lmtp: bool,
    reader: Reader | None,
    service: str | None,
) -> ClientConfig:
    values: dict[str, Any] = {"lmtp": lmtp}
    if lmtp:
        for declared in _FIELDS:
            if declared.lmtp_default is not _UNSET:
                assert declared.field is not None
                values[declared.field] = declared.lmtp_default

    def resolve(name: str) -> str | None:
        raw = context.get(name)
        if isinstance(raw, str):
            return raw
        return _literal_default(name) if raw is None else None

    legacy: dict[str, Any] = {}
    chosen: dict[str, tuple[int, str]] = {}
    resolved = [(name, *_resolve(name, lmtp, service)) for name in mapping]
    for name, declared, rank in sorted(resolved, key=lambda item: item[2]):
        given = mapping[name]
        try:
            if isinstance(given, str):
                raw = expand(given, resolve)
                if not raw.strip() and declared.field in _DERIVED_WHEN_EMPTY:
                    # Postfix reads the obsolete switches then (_apply_legacy).
                    values.pop(declared.field, None)
                    chosen[declared.field] = (rank, name)
                    continue
                if not raw.strip() and rank == 0 and "?{" in declared.postfix_default:
                    # ${name?{$name}:{default}}: an empty fallback is no fallback.
                    continue
                value = declared.kind.from_text(raw, reader)
            else:
                value = declared.kind.check(given)
        except (TypeError, ValueError) as error:
            raise LocalProtocolError(f"{name}: malformed value {given!r}: {error}") from None
        if declared.status == "not applicable":
            continue
        if declared.name in _LEGACY_FIELDS:
            legacy[declared.name] = value
            continue
        assert declared.field is not None
        if chosen.get(declared.field, (-1, ""))[0] > rank:
            continue
        chosen[declared.field] = (rank, name)
        values[declared.field] = value
    _apply_legacy(values, legacy, mapping, lmtp)
    if "myhostname" in values and "helo_name" not in values:
        values["helo_name"] = values["myhostname"]
    if "per_request_deadline" not in values:
        values["per_request_deadline"] = False  # Postfix 3.7's default, unlike ClientConfig()'s
    if "bind_address_enforce" not in values:
        values["bind_address_enforce"] = False  # likewise
    if "sasl_tls_security_options" not in values:
        # From Postfix, the TLS options default to the plaintext ones ($smtp_sasl_security_options).
        values["sasl_tls_security_options"] = values.get(
            "sasl_security_options",
            ClientConfig.__dataclass_fields__["sasl_security_options"].default,
        )
    if "sasl_tls_verified_security_options" not in values:
        values["sasl_tls_verified_security_options"] = None  # $smtp_sasl_tls_security_options
    return cls(**values)


def _apply_legacy(
    values: dict[str, Any], legacy: Mapping[str, Any], mapping: Mapping[str, Any], lmtp: bool
) -> None:
    """Postfix's reading of the obsolete TLS and DNS switches when the modern one is empty.

    Given empty, or not given while an obsolete switch is: derived as Postfix 3.7 derives it
    (smtp_tls_policy.c ``global_tls_level()``, smtp.c ``smtp_dns_support``). Neither given:
    the library's default stays.
    """
    prefix = "lmtp_" if lmtp else "smtp_"
    explicit_level = prefix + "tls_security_level" in mapping and "tls_security_level" in values
    if not explicit_level and (
        prefix + "tls_security_level" in mapping
        or "smtp_use_tls" in legacy
        or "smtp_enforce_tls" in legacy
    ):
        if legacy.get("smtp_enforce_tls"):
            peername = legacy.get("smtp_tls_enforce_peername", True)
            values["tls_security_level"] = "verify" if peername else "encrypt"
        else:
            values["tls_security_level"] = "may" if legacy.get("smtp_use_tls") else "none"
    explicit_dns = prefix + "dns_support_level" in mapping and "dns_support_level" in values
    if not explicit_dns and (
        prefix + "dns_support_level" in mapping or "disable_dns_lookups" in legacy
    ):
        disabled = legacy.get("disable_dns_lookups", False)
        values["dns_support_level"] = "disabled" if disabled else "enabled"


def checked_config(config: object) -> ClientConfig:
    """`config`, or the default for ``None``; anything else is the caller's mistake, named
    here rather than as an AttributeError from inside the engine."""
    if config is None:
        return ClientConfig()
    if not isinstance(config, ClientConfig):
        raise LocalProtocolError(
            f"config: expected a ClientConfig (ClientConfig.from_postconf for Postfix "
            f"names), got {type(config).__name__}"
        )
    return config
