"""How smtp(8) parameters are declared, parsed and checked; Postfix's configuration text.

Each parameter is declared once. A parameter the library uses is a `ClientConfig` field whose
metadata holds its `Declaration` (``smtpproto/config.py``); a parameter it cannot use is a
`Declaration` in `NOT_APPLICABLE` below, with the reason. Both carry a `Kind`: the value
type, which parses Postfix's text syntax and checks Python values, in one place for every
parameter of that type. ``docs/parameters.md`` is generated from these declarations
(``docs/gen_parameters.py``); which tests exercise a parameter is said by the tests
themselves (``@pytest.mark.parameter("smtp_helo_timeout")``), not here.

The rest of the module is Postfix's configuration text: ``$name`` expansion (``mac_expand``),
``main.cf`` and ``master.cf``.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from ._errors import LocalProtocolError
from .tables import Lookup, MatchList, Reader, logical_lines, split_list

__all__ = [
    "BOOL",
    "MAX_SECONDS",
    "NOT_APPLICABLE",
    "TEXT",
    "Declaration",
    "Kind",
    "MasterService",
    "Status",
    "expand",
    "parse_main_cf",
    "parse_master_cf",
]

Status = Literal["supported", "declared", "not applicable"]

MAX_SECONDS = 10_000_000
"""The longest time any time parameter may hold (about 115 days).

Every adapter can wait that long (`socket.settimeout` overflows near 9.2e9 s), and it covers
every Postfix default, the longest being ``smtp_sasl_auth_cache_time = 90d``.
"""

# -- value kinds ---------------------------------------------------------------------------

Check = Callable[[Any], Any]
Parse = Callable[[str, Reader | None], Any]


def _stripped(text: str, reader: Reader | None) -> Any:
    return text.strip()


@dataclass(frozen=True)
class Kind:
    """A parameter's value type: `parse` reads Postfix text, `check` validates a Python value.

    Both raise `TypeError` or `ValueError` with a short reason; the caller names the
    parameter. `check` returns the value normalized (tuples, frozensets, floats).
    """

    label: str
    check: Check
    parse: Parse = _stripped

    def from_text(self, text: str, reader: Reader | None = None) -> Any:
        """The checked value of postconf text `text`."""
        return self.check(self.parse(text, reader))


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError("expected a bool")
    return value


def _parse_bool(text: str, reader: Reader | None) -> Any:
    # mail_conf_bool.c: "yes" or "no", case-insensitively, nothing else.
    word = text.strip().lower()
    if word not in ("yes", "no"):
        raise LocalProtocolError("expected yes or no")
    return word == "yes"


BOOL = Kind("yes/no", _check_bool, _parse_bool)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a str")
    if any(c in value for c in "\r\n\0"):
        raise LocalProtocolError("CR, LF and NUL are not allowed")
    return value


TEXT = Kind("text", _text)


def integer(low: int, high: int | None = None) -> Kind:
    """A whole number in ``low..high``."""

    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an int")
        if value < low or (high is not None and value > high):
            raise LocalProtocolError(f"out of range ({low}..{high if high is not None else ''})")
        return value

    def parse(text: str, reader: Reader | None) -> Any:
        text = text.strip()
        if not re.fullmatch(r"-?[0-9]+", text, re.ASCII):
            raise LocalProtocolError("expected a whole number")
        return int(text)

    return Kind("number", check, parse)


# Postfix conv_time.c: a whole number and one optional unit letter; a bare number is seconds
# for every time parameter of smtp(8).
_TIME = re.compile(r"([0-9]+)([smhdw]?)", re.ASCII)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(*, zero: bool = False) -> Kind:
    """A time: ``300s``, ``5m``, ``1h``, ``1d``, ``1w`` or a number of seconds.

    Above 0 (Postfix refuses 0 for these), or from 0 with `zero` (where Postfix allows it,
    saying what 0 means on the field), and at most `MAX_SECONDS`.
    """
    low = "0" if zero else "above 0"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("expected seconds as a number")
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise LocalProtocolError(f"expected a time from {low} to {MAX_SECONDS}s")
        if value > MAX_SECONDS:
            raise LocalProtocolError(f"more than {MAX_SECONDS}s (about 115 days)")
        return float(value)

    def parse(text: str, reader: Reader | None) -> Any:
        match = _TIME.fullmatch(text.strip())
        if match is None:
            raise LocalProtocolError("expected a time such as 300s, 5m, 1h, 1d or 1w")
        return int(match.group(1)) * _UNITS[match.group(2)]

    return Kind("time", check, parse)


def optional(kind: Kind) -> Kind:
    """`kind`, or ``None`` (Postfix's empty value)."""

    def parse(text: str, reader: Reader | None) -> Any:
        return None if not text.strip() else kind.parse(text, reader)

    return Kind(kind.label, lambda v: None if v is None else kind.check(v), parse)


def choice(*options: str, empty: str | None = None) -> Kind:
    """One word of `options` (case-insensitive in text); an empty text means `empty`."""

    def check(value: Any) -> str:
        if value not in options:
            raise LocalProtocolError(f"expected one of {', '.join(options)}")
        return str(value)

    def parse(text: str, reader: Reader | None) -> Any:
        word = text.strip().lower()
        if not word and empty is not None:
            return empty
        return word

    return Kind(" | ".join(options), check, parse)


def _list_text(text: str, reader: Reader | None) -> Any:
    return split_list(text)


def words(item: Check = _text, label: str = "list") -> Kind:
    """A list of words (``a, b c``) as a tuple; each word checked by `item`."""

    def check(value: Any) -> tuple[Any, ...]:
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise TypeError("expected a sequence of strings")
        items = tuple(item(v) for v in value)
        for v in items:
            if isinstance(v, str) and (not v or re.search(r"[\s,]", v)):
                raise LocalProtocolError("list items must be non-empty, without spaces or commas")
        return items

    return Kind(label, check, _list_text)


def wordset(options: Iterable[str] | None = None, *, upper: bool = False) -> Kind:
    """A set of words, folded to one case; only `options` when given."""
    allowed = None if options is None else frozenset(options)
    as_words = words()

    def check(value: Any) -> frozenset[str]:
        items = as_words.check(value)
        folded = frozenset(v.upper() if upper else v.lower() for v in items)
        if allowed is not None and not folded <= allowed:
            raise LocalProtocolError(f"unknown {', '.join(sorted(folded - allowed))}")
        return folded

    return Kind("list", check, _list_text)


def match_list() -> Kind:
    """A Postfix match list: names, ``!name``, ``/file/name`` and ``type:table`` items."""

    def parse(text: str, reader: Reader | None) -> Any:
        return MatchList.of(text, reader=reader)

    return Kind("list", lambda value: MatchList.of(value), parse)


def table(values: Kind | None = None, *, substitution: bool = True) -> Kind:
    """Lookup tables (``type:name, ...``; a mapping or callable from Python) whose results
    are checked by `values`; `substitution` allows ``$n`` in pattern-table results."""
    convert: Check | None = None
    if values is not None:
        kind = values

        def convert(value: Any) -> Any:
            return kind.check(kind.parse(value, None) if isinstance(value, str) else value)

    def parse(text: str, reader: Reader | None) -> Any:
        return Lookup.of(text, convert, reader=reader, substitution=substitution)

    def check(value: Any) -> Lookup[Any]:
        return Lookup.of(value, convert, substitution=substitution)

    return Kind("table", check, parse)


def address(version: int | None) -> Kind:
    """An IP address (of one version when given), in canonical form."""

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise TypeError("expected an IP address string")
        parsed = ipaddress.ip_address(value)
        if version is not None and parsed.version != version:
            raise LocalProtocolError(f"expected an IPv{version} address")
        return str(parsed)

    return Kind(f"IPv{version} address" if version else "address", check)


# -- declarations --------------------------------------------------------------------------


@dataclass(frozen=True)
class Declaration:
    """One smtp(8) parameter: its names, type, defaults, status, and where it takes effect.

    `name` is the smtp(8) name; `lmtp` the lmtp(8) name when it is not ``lmtp_`` + the rest
    (``""``: none); `aliases` are other names for the same thing; `fallbacks` are names it
    defaults to, which lose to it when both are set: global (``fallback_relay`` for
    ``smtp_fallback_relay``) or an older ``smtp_*`` name, which lmtp(8) reads as ``lmtp_*``
    (``smtp_per_record_deadline`` for ``smtp_per_request_deadline``). `postfix_default` is
    what ``postconf -d`` prints; `differs` says why the library's default is not Postfix's.
    `effect` is the module where the value takes effect; `why` the reason for ``not
    applicable``, or what is missing for ``declared`` (accepted and checked, not yet in
    effect).
    """

    name: str
    kind: Kind
    postfix_default: str
    status: Status = "supported"
    effect: str = ""
    why: str = ""
    lmtp: str | None = None
    aliases: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()
    lmtp_default: Any = None
    differs: str = ""
    field: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if (self.status == "supported") == bool(self.why):
            raise ValueError(f"{self.name}: a reason exactly when not supported")
        if self.status != "not applicable" and not self.effect:
            raise ValueError(f"{self.name}: say where it takes (or will take) effect")

    @property
    def lmtp_name(self) -> str | None:
        """The lmtp(8) name of this parameter, or ``None`` when it has none."""
        if self.lmtp is not None:
            return self.lmtp or None
        return "lmtp_" + self.name[5:] if self.name.startswith("smtp_") else None

    @property
    def lmtp_fallbacks(self) -> tuple[str, ...]:
        """The `fallbacks` lmtp(8) reads: the ``lmtp_*`` mirror of each ``smtp_*`` one."""
        if self.lmtp_name is None:
            return self.fallbacks
        return tuple(_lmtp_mirror(name) for name in self.fallbacks)

    def names(self) -> tuple[str, ...]:
        """Every Postfix name that sets this parameter."""
        lmtp = self.lmtp_name
        mirrored = tuple(n for n in self.lmtp_fallbacks if n not in self.fallbacks)
        return (self.name, *self.aliases, *self.fallbacks, *((lmtp,) if lmtp else ()), *mirrored)

    def client_of(self, name: str) -> Literal["smtp", "lmtp"] | None:
        """Which client alone reads `name` (one of `names`); ``None`` when both do."""
        if self.lmtp_name is None or name in self.aliases:
            return None
        if name == self.lmtp_name or name in self.lmtp_fallbacks:
            return None if name in self.fallbacks else "lmtp"
        if name == self.name or name in self.fallbacks:
            return "smtp"
        return None

    def counterpart(self, name: str) -> str:
        """The name the other client reads for what `name` sets (`name` when both read it)."""
        pairs = [
            (self.name, self.lmtp_name),
            *zip(self.fallbacks, self.lmtp_fallbacks, strict=True),
        ]
        for smtp, lmtp in pairs:
            if name == smtp and lmtp is not None:
                return lmtp
            if name == lmtp:
                return smtp
        return name

    def is_fallback(self, name: str) -> bool:
        """Whether `name` is one of the names this parameter only defaults to."""
        return name in self.fallbacks or name in self.lmtp_fallbacks


def _lmtp_mirror(name: str) -> str:
    return "lmtp_" + name[5:] if name.startswith("smtp_") else name


def _na(name: str, kind: Kind, postfix_default: str, why: str) -> Declaration:
    return Declaration(name, kind, postfix_default, "not applicable", why=why)


_DAEMON = "a Postfix daemon's own process management; the caller owns its processes"
_NO_NOTICES = "a library mails no postmaster notices; every outcome is in the DeliveryReport"
_SYSLOG = "the library never writes to syslog; the adapters log through the logging module"
_OBSOLETE = "removed from Postfix (postconf 3.7 no longer knows it)"

NOT_APPLICABLE: tuple[Declaration, ...] = (
    _na(
        "config_directory",
        TEXT,
        "/etc/postfix",
        "the library reads no directory: from_main_cf takes main.cf text, and "
        "smtpproto.adapters.postfix.load() reads a configuration directory",
    ),
    _na(
        "connection_cache_protocol_timeout",
        seconds(),
        "5s",
        "no scache(8) daemon: the connection cache lives in the caller's process",
    ),
    _na("daemon_timeout", seconds(), "18000s", _DAEMON),
    _na(
        "debug_peer_level",
        integer(1),
        "2",
        "the full dialogue of every session is in DeliveryReport.transcript; verbosity "
        "belongs to the logging module",
    ),
    _na(
        "debug_peer_list",
        TEXT,
        "",
        "the full dialogue of every session is always in DeliveryReport.transcript, so no "
        "peer needs to be singled out",
    ),
    _na(
        "dnssec_probe",
        TEXT,
        "ns:.",
        "a start-up self-test of the system resolver's DNSSEC support; the library runs no "
        "start-up probe",
    ),
    _na("error_notice_recipient", TEXT, "postmaster", _NO_NOTICES),
    _na(
        "header_from_format",
        choice("standard", "obsolete"),
        "standard",
        "the form of From: headers Postfix itself writes; the library writes no From: header",
    ),
    _na(
        "info_log_address_format",
        choice("external", "internal"),
        "external",
        "DeliveryReport keeps each address exactly as the caller gave it",
    ),
    _na(
        "internal_mail_filter_classes",
        words(),
        "",
        "the client generates no mail of its own and runs no content filters",
    ),
    _na("ipc_timeout", seconds(), "3600s", "no internal IPC channels between Postfix daemons"),
    _na(
        "lmtp_assume_final",
        BOOL,
        "no",
        "it chooses between 'delivered' and 'relayed' DSN notices; the library sends no "
        "notices, the caller decides what a sent result means",
    ),
    _na(
        "lmtp_cache_connection",
        BOOL,
        "yes",
        "obsolete since Postfix 2.3 (" + _OBSOLETE + "); reuse is "
        "smtp_connection_cache_on_demand or a connect() session",
    ),
    _na("max_idle", seconds(), "100s", _DAEMON),
    _na("max_use", integer(1), "100", _DAEMON),
    _na("notify_classes", words(), "resource, software", _NO_NOTICES),
    _na("process_id", TEXT, "(read-only)", "read-only information about a Postfix process"),
    _na("process_name", TEXT, "(read-only)", "read-only information about a Postfix process"),
    _na(
        "service_name",
        TEXT,
        "(read-only)",
        "read-only: the master.cf service name; from_main_cf takes it as service=",
    ),
    _na(
        "smtp_address_verify_target",
        choice("rcpt", "data"),
        "rcpt",
        "address verification probes come from Postfix's verify(8) service; the library "
        "sends no probes",
    ),
    _na(
        "smtp_dns_resolver_options",
        words(),
        "",
        "resolver options belong to the resolver an adapter is given (dnspython's or the "
        "embedder's own)",
    ),
    _na(
        "smtp_sasl_auth_cache_name",
        TEXT,
        "",
        "a database file of failed logins shared by Postfix's delivery processes; the "
        "library keeps no state across deliveries",
    ),
    _na(
        "smtp_sasl_auth_cache_time",
        seconds(zero=True),
        "90d",
        "a database file of failed logins shared by Postfix's delivery processes; the "
        "library keeps no state across deliveries",
    ),
    _na(
        "smtp_sasl_path",
        TEXT,
        "",
        "no SASL plug-in: the mechanisms are built in (smtpproto.sasl)",
    ),
    _na(
        "smtp_sasl_type",
        TEXT,
        "cyrus",
        "no SASL plug-in: the mechanisms are built in (smtpproto.sasl)",
    ),
    _na(
        "smtp_tls_block_early_mail_reply",
        BOOL,
        "no",
        "it detects commands injected through insecure TLS renegotiation (CVE-2009-3555); "
        "the OpenSSL behind Python's ssl refuses such renegotiation, and TLS 1.3 has none",
    ),
    _na(
        "smtp_tls_cipherlist",
        TEXT,
        "",
        _OBSOLETE + "; set smtp_tls_mandatory_ciphers and the tls_*_cipherlist grades",
    ),
    _na(
        "smtp_tls_dcert_file",
        TEXT,
        "",
        "DSA certificates are obsolete (OpenSSL 3 and TLS 1.3 have no DSA); use "
        "smtp_tls_chain_files or smtp_tls_cert_file",
    ),
    _na(
        "smtp_tls_dkey_file",
        TEXT,
        "$smtp_tls_dcert_file",
        "DSA certificates are obsolete (OpenSSL 3 and TLS 1.3 have no DSA); use "
        "smtp_tls_chain_files or smtp_tls_key_file",
    ),
    _na(
        "smtp_tls_loglevel",
        TEXT,
        "0",
        "the TLS outcome is in DeliveryReport.tls and each result; log volume belongs to "
        "the logging module",
    ),
    _na(
        "smtp_tls_per_site",
        TEXT,
        "",
        "obsolete since Postfix 2.3; smtp_tls_policy_maps replaces it",
    ),
    _na(
        "smtp_tls_scert_verifydepth",
        integer(1),
        "9",
        "Python's ssl module has no verify-depth setting; OpenSSL's own limit (100) applies",
    ),
    _na(
        "smtp_tls_session_cache_database",
        TEXT,
        "",
        "no TLS session cache file: every connection makes a full handshake",
    ),
    _na(
        "smtp_tls_session_cache_timeout",
        seconds(zero=True),
        "3600s",
        "no TLS session cache: every connection makes a full handshake",
    ),
    _na(
        "smtputf8_autodetect_classes",
        words(),
        "sendmail, verify",
        "which locally submitted mail Postfix's cleanup(8) flags as SMTPUTF8; the caller says "
        "so itself in Envelope.smtputf8",
    ),
    _na("syslog_facility", TEXT, "mail", _SYSLOG),
    _na("syslog_name", TEXT, "postfix", _SYSLOG),
    _na(
        "tcp_windowsize",
        integer(0),
        "0",
        "a workaround for routers that break TCP window scaling, set on Postfix's own "
        "sockets; the adapters leave socket buffers to the operating system",
    ),
    _na(
        "tls_config_file",
        TEXT,
        "default",
        "OpenSSL configuration belongs to the Python process (OPENSSL_CONF)",
    ),
    _na(
        "tls_config_name",
        TEXT,
        "",
        "OpenSSL configuration belongs to the Python process (OPENSSL_CONF)",
    ),
    _na(
        "tls_daemon_random_bytes",
        integer(1),
        "32",
        "no tlsmgr(8): OpenSSL seeds its own generator",
    ),
    _na(
        "tls_dane_digest_agility",
        TEXT,
        "on",
        _OBSOLETE + "; DANE digests follow RFC 7671",
    ),
    _na(
        "tls_dane_trust_anchor_digest_enable",
        BOOL,
        "yes",
        _OBSOLETE + "; DANE digests follow RFC 7671",
    ),
    _na(
        "tls_disable_workarounds",
        words(),
        "",
        "OpenSSL bug workarounds are Python's ssl defaults",
    ),
    _na(
        "tls_export_cipherlist",
        TEXT,
        "aNULL:-aNULL:HIGH:MEDIUM:LOW:EXPORT:+RC4:@STRENGTH",
        "the export grade is gone from OpenSSL and from Postfix 3.8",
    ),
    _na(
        "tls_fast_shutdown_enable",
        BOOL,
        "yes",
        "always fast: the adapters close a TLS connection without waiting for the server's "
        "close_notify",
    ),
    _na("tlsmgr_service_name", TEXT, "tlsmgr", "no tlsmgr(8) daemon"),
)
"""smtp(8) parameters that do not apply to a library, each with the reason."""


# -- $name expansion -----------------------------------------------------------------------

_NAME = re.compile(r"[A-Za-z0-9_]+", re.ASCII)
_MAX_DEPTH = 20


def _closing(text: str, start: int, opening: str) -> int:
    """Index of the bracket closing the `opening` at `start` (same kind, nested)."""
    closing = "}" if opening == "{" else ")"
    depth = 0
    for i in range(start, len(text)):
        if text[i] == opening:
            depth += 1
        elif text[i] == closing:
            depth -= 1
            if depth == 0:
                return i
    raise LocalProtocolError(f"truncated macro reference in {text!r}")


def _braced(text: str) -> tuple[str, str]:
    """``{inner} rest`` -> (inner, rest); the text must start with ``{`` after spaces."""
    text = text.lstrip()
    if not text.startswith("{"):
        raise LocalProtocolError(f"expected {{...}} in {text!r}")
    end = _closing(text, 0, "{")
    return text[1:end], text[end + 1 :]


def _version(text: str) -> tuple[int, ...]:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)*", text):
        raise LocalProtocolError(f"not a compatibility level: {text!r}")
    return tuple(int(p) for p in text.split("."))


_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = MappingProxyType(
    {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
)
_RELATION = re.compile(r"\s*(==|!=|<=|>=|<|>)(level)?\s*", re.ASCII)


def expand(value: str, resolve: Callable[[str], str | None], *, _depth: int = 0) -> str:
    """Expand Postfix's ``$name`` references in `value` (``mac_expand`` with its 3.x forms).

    ``$name``, ``${name}``, ``$(name)``; ``${name?text}`` (text when name is non-empty),
    ``${name:text}`` (text when it is empty), their ``{text}`` forms and
    ``${name?{a}:{b}}``; ``${{x} == {y} ? {a} : {b}}`` with ``==``, ``!=``, ``<``, ``<=``,
    ``>``, ``>=`` and their ``level`` forms; ``$$`` is a literal ``$``. `resolve` returns a
    name's raw value, or ``None`` when it is not defined (a plain reference to it is then a
    `LocalProtocolError`; a conditional one treats it as empty).
    """
    if "$" not in value:
        return value
    if _depth > _MAX_DEPTH:
        raise LocalProtocolError("$name references nest too deeply (a loop?)")

    def lookup(name: str, *, required: bool) -> str:
        raw = resolve(name)
        if raw is None:
            if required:
                raise LocalProtocolError(f"${name} is not defined")
            return ""
        return expand(raw, resolve, _depth=_depth + 1)

    def sub(text: str) -> str:
        return expand(text, resolve, _depth=_depth + 1)

    def evaluate(inner: str) -> str:
        if inner.startswith("{"):
            left, rest = _braced(inner)
            relation = _RELATION.match(rest)
            if relation is None:
                raise LocalProtocolError(f"expected an operator in ${{{inner}}}")
            right, rest = _braced(rest[relation.end() :])
            a, b = sub(left).strip(), sub(right).strip()
            operator, level = relation.group(1), relation.group(2)
            try:
                pair: tuple[Any, Any] = (
                    (_version(a), _version(b))
                    if level
                    else (int(a), int(b))
                    if operator not in ("==", "!=")
                    else (a, b)
                )
            except ValueError:
                raise LocalProtocolError(f"cannot compare {a!r} and {b!r}") from None
            outcome = _COMPARE[operator](*pair)
            rest = rest.strip()
            if not rest.startswith("?"):
                raise LocalProtocolError(f"expected '?' in ${{{inner}}}")
            yes, rest = _braced(rest[1:])
            rest = rest.strip()
            no = ""
            if rest.startswith(":"):
                no, rest = _braced(rest[1:])
            if rest.strip():
                raise LocalProtocolError(f"text after the expression in ${{{inner}}}")
            return sub(yes if outcome else no)
        match = _NAME.match(inner)
        if match is None:
            raise LocalProtocolError(f"empty macro name in ${{{inner}}}")
        name, rest = match.group(), inner[match.end() :]
        if not rest:
            return lookup(name, required=True)
        operator, text = rest[0], rest[1:]
        if operator not in "?:":
            raise LocalProtocolError(f"unexpected {operator!r} after ${name}")
        present = bool(lookup(name, required=False).strip())
        if text.lstrip().startswith("{"):
            first, after = _braced(text)
            second = ""
            after = after.strip()
            if operator == "?" and after.startswith(":"):
                second, after = _braced(after[1:])
            if after.strip():
                raise LocalProtocolError(f"text after the braces in ${{{inner}}}")
        else:
            first, second = text, ""
        wanted = present if operator == "?" else not present
        return sub(first if wanted else second)

    out: list[str] = []
    i, n = 0, len(value)
    while i < n:
        c = value[i]
        if c != "$":
            out.append(c)
            i += 1
        elif value[i + 1 : i + 2] == "$":
            out.append("$")
            i += 2
        elif value[i + 1 : i + 2] in ("{", "("):
            end = _closing(value, i + 1, value[i + 1])
            out.append(evaluate(value[i + 2 : end]))
            i = end + 1
        else:
            match = _NAME.match(value, i + 1)
            if match is None:
                raise LocalProtocolError(f"empty macro name after '$' in {value!r}")
            out.append(lookup(match.group(), required=True))
            i = match.end()
    return "".join(out)


# -- main.cf and master.cf -----------------------------------------------------------------


def parse_main_cf(text: str) -> dict[str, str]:
    """The ``name = value`` settings of a ``main.cf`` (or of ``postconf -n`` output).

    Logical lines as Postfix reads them (comments, continuation lines that start with
    whitespace); values are kept unexpanded; a later setting of a name replaces an earlier
    one, as in Postfix.
    """
    settings: dict[str, str] = {}
    for line, logical in logical_lines(text):
        name, sep, value = logical.partition("=")
        name = name.strip()
        if not sep or not _NAME.fullmatch(name):
            raise LocalProtocolError(f"main.cf, line {line}: expected 'name = value'")
        settings[name] = value.strip()
    return settings


@dataclass(frozen=True)
class MasterService:
    """One ``master.cf`` service: its name, type, command, and ``-o`` overrides in order."""

    name: str
    type: str
    command: str
    overrides: tuple[tuple[str, str], ...]
    line: int

    @property
    def lmtp(self) -> bool:
        """Whether the service runs lmtp(8) (the command decides, as in Postfix)."""
        return self.command == "lmtp"


def _master_words(text: str) -> list[str]:
    # Postfix 3.0: "{ text with spaces }" is one word; it keeps its braces for -o below.
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if text[i] == "{":
            i = _closing(text, i, "{") + 1
        else:
            while i < n and not text[i].isspace():
                i += 1
        out.append(text[start:i])
    return out


def parse_master_cf(text: str) -> tuple[MasterService, ...]:
    """The services of a ``master.cf``, each with its ``-o name=value`` overrides.

    Both forms of an override are read: ``-o name=value`` and ``-o { name = value }``.
    """
    services: list[MasterService] = []
    for line, logical in logical_lines(text):
        fields = _master_words(logical)
        if len(fields) < 8:
            raise LocalProtocolError(f"master.cf, line {line}: expected at least 8 fields")
        name, kind = fields[0], fields[1]
        command, arguments = fields[7], fields[8:]
        overrides: list[tuple[str, str]] = []
        k = 0
        while k < len(arguments):
            if arguments[k] != "-o" and not arguments[k].startswith("-o"):
                k += 1
                continue
            setting = arguments[k][2:] if arguments[k] != "-o" else None
            if setting is None:
                if k + 1 >= len(arguments):
                    raise LocalProtocolError(f"master.cf, line {line}: -o without a setting")
                setting = arguments[k + 1]
                k += 1
            k += 1
            if setting.startswith("{"):
                setting = setting[1 : _closing(setting, 0, "{")].strip()
            key, sep, value = setting.partition("=")
            if not sep or not _NAME.fullmatch(key.strip()):
                raise LocalProtocolError(f"master.cf, line {line}: bad -o {setting!r}")
            overrides.append((key.strip(), value.strip()))
        services.append(MasterService(name, kind, command, tuple(overrides), line))
    return tuple(services)
