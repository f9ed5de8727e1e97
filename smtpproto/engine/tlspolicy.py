"""Postfix TLS security levels as pure policy: which level, which names, which parameters.

The engine asks :func:`policy_for` once per next-hop destination (``smtp_tls_policy_maps``),
hands :func:`tls_parameters` to the adapter's ``StartTLS`` request and, after the handshake,
checks the server with :func:`check_peer`. Host-name matching lives here, not in the adapters:
they verify the certificate chain only (``requests.TLSParameters``), and this module matches
the names the way Postfix does (rule 5.8), so all three adapters agree.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from .._errors import LocalProtocolError
from ..requests import TLSInfo, TLSParameters
from ..tables import KeyLookup

__all__ = [
    "CHAIN_LEVELS",
    "CIPHER_GRADES",
    "HALF_DANE",
    "LEVELS",
    "TLSPolicy",
    "certificate_matches",
    "certificate_names",
    "check_peer",
    "cipher_list",
    "established_message",
    "match_names",
    "matched_name",
    "min_protocol",
    "needs_match",
    "nexthop_domain",
    "parse_fingerprints",
    "parse_level",
    "parse_policy",
    "policy_for",
    "server_name",
    "tls_parameters",
    "tls_required",
    "trust_word",
]

LEVELS: tuple[str, ...] = (
    "none", "may", "encrypt", "fingerprint", "dane", "dane-only", "verify", "secure",
)  # fmt: skip
"""The ``smtp_tls_security_level`` values (rule 5.1)."""

# Postfix's level after dane_init() (smtp_tls_policy.c): usable TLSA records, but an insecure
# MX RRset (smtp_tls_dane_insecure_mx_policy = dane). Never configured, only derived.
HALF_DANE = "half-dane"
# Levels at which no message byte travels without TLS, once DANE has been resolved for the
# server: "dane" then means usable TLSA records (Postfix keeps the name, smtp_tls_policy.c).
_REQUIRED = frozenset(
    {"encrypt", "fingerprint", HALF_DANE, "dane", "dane-only", "verify", "secure"}
)
# Levels that authenticate the server in the core from the DER chain, not through PKIX.
CHAIN_LEVELS = frozenset({"fingerprint", HALF_DANE, "dane", "dane-only"})
"""Levels whose server check is the core's (DANE records, fingerprints), not the adapter's."""
_MATCH_KEYWORDS = frozenset({"hostname", "nexthop", "dot-nexthop"})
_POLICY_ATTRIBUTES = frozenset({"match", "protocols", "ciphers", "exclude", "servername"})
_FINGERPRINT = re.compile(r"[0-9a-f]{2}(?::?[0-9a-f]{2})*")

CIPHER_GRADES = frozenset({"high", "medium", "low", "null"})
"""``smtp_tls_mandatory_ciphers`` grades (``export`` went with Postfix 3.8 and OpenSSL 1.1)."""

# Postfix's defaults for tls_<grade>_cipherlist (postconf(5), Postfix >= 3.6).
_POSTFIX_CIPHERLISTS: Mapping[str, str] = {
    "high": "aNULL:-aNULL:HIGH:@STRENGTH",
    "medium": "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH",
    "low": "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH",
    "null": "eNULL:!aNULL",
}
_PROTOCOLS: tuple[str, ...] = ("SSLv2", "SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")
_SUPPORTED_PROTOCOLS = frozenset({"TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"})
_PROTOCOL_ITEM = re.compile(r"(>=|<=|!)?(SSLv2|SSLv3|TLSv1|TLSv1\.1|TLSv1\.2|TLSv1\.3)", re.I)
# Postfix destination forms (rule 14.1): [host]:port, host:port; LMTP inet:host[:port].
_BRACKETED = re.compile(r"(?:inet:)?\[([^\]]*)\](?::[^:\[\]]*)?", re.I)
_HOST_PORT = re.compile(r"(?:inet:)?([^:\[\]]+)(?::[^:\[\]]*)?", re.I)
_HOSTNAME = re.compile(
    r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*"
)


def parse_level(text: str) -> str:
    """Parse a security level; empty means ``none`` (Postfix). Unknown: `ValueError`."""
    if not isinstance(text, str):
        raise LocalProtocolError("tls_security_level: expected a str")
    level = text.strip().lower() or "none"
    if level == HALF_DANE:
        raise LocalProtocolError(f"tls_security_level: {level!r} is derived, never configured")
    if level not in LEVELS:
        raise LocalProtocolError(f"tls_security_level: unknown level {level!r}")
    return level


def _known(level: str) -> str:
    if level != HALF_DANE:
        parse_level(level)
    return level


def tls_required(level: str) -> bool:
    """True for every level above ``may``: no MAIL, AUTH or message byte without TLS (5.1).

    ``dane`` counts as the level DANE resolution leaves when the server has usable TLSA
    records; before that resolution it falls back to ``may`` (`smtpproto.engine.dane`).
    """
    return _known(level) in _REQUIRED


def needs_match(level: str) -> bool:
    """True for ``verify`` and ``secure``: the chain must verify and a name must match (5.6)."""
    return _known(level) in ("verify", "secure")


def parse_fingerprints(value: str | Iterable[str]) -> tuple[str, ...]:
    """Certificate or key fingerprints (``smtp_tls_fingerprint_cert_match``, ``match=a|b``),
    as lower-case hex; the colons between octets are optional (Postfix >= 3.6)."""
    items = [value] if isinstance(value, str) else list(value)
    found: list[str] = []
    for item in items:
        for word in re.split(r"[\s,|]+", item.strip().lower()):
            if not word:
                continue
            if not _FINGERPRINT.fullmatch(word):
                raise LocalProtocolError(f"fingerprint: not hexadecimal octets: {word!r}")
            digits = word.replace(":", "")
            if digits not in found:
                found.append(digits)
    return tuple(found)


def _name_list(value: str | Iterable[str], what: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else list(value)
    names = tuple(n.lower() for item in items for n in re.split(r"[\s,:]+", item.strip()) if n)
    for name in names:
        if "*" in name or not name.isprintable():
            raise LocalProtocolError(f"{what}: invalid name {name!r}")
    return names


@dataclass(frozen=True)
class TLSPolicy:
    """The TLS policy for one next-hop: level, certificate names and per-site overrides.

    `match` holds Postfix's match words (``hostname``, ``nexthop``, ``dot-nexthop``) and
    literal names (``.example.com`` for sub-domains only); it is used at ``verify`` and
    ``secure`` only and must not be empty there (rule 5.8: no names, no verification). At
    ``fingerprint`` it holds the accepted fingerprints (lower-case hex, `parse_fingerprints`).
    `protocols`, `ciphers` (a grade), `exclude` and `servername` are the policy-table
    attributes of the same names; ``None`` means the configured parameter applies.
    """

    level: str
    match: tuple[str, ...] = ()
    protocols: tuple[str, ...] | None = None
    ciphers: str | None = None
    exclude: tuple[str, ...] = ()
    servername: str | None = None

    def __post_init__(self) -> None:
        if self.level != HALF_DANE and parse_level(self.level) != self.level:
            raise LocalProtocolError(
                f"level: write {parse_level(self.level)!r}, not {self.level!r}"
            )
        if self.level == "fingerprint":
            if parse_fingerprints(self.match) != self.match or not self.match:
                raise LocalProtocolError("match: level 'fingerprint' needs fingerprints")
        elif _name_list(self.match, "match") != self.match:
            raise LocalProtocolError("match: names must be lower case, one per item")
        if needs_match(self.level) and not self.match:
            raise LocalProtocolError(f"match: level {self.level!r} needs at least one name")
        if self.protocols is not None:
            min_protocol(self.protocols)
        if self.ciphers is not None and self.ciphers not in CIPHER_GRADES:
            raise LocalProtocolError(f"ciphers: unknown grade {self.ciphers!r}")


def parse_policy(
    value: str,
    *,
    verify_match: Iterable[str] = ("hostname",),
    secure_match: Iterable[str] = ("nexthop", "dot-nexthop"),
    fingerprint_match: Iterable[str] = (),
) -> TLSPolicy:
    """Parse a ``smtp_tls_policy_maps`` value: ``secure match=nexthop:dot-nexthop ciphers=high``.

    Without ``match=``, ``verify`` uses `verify_match`, ``secure`` `secure_match` and
    ``fingerprint`` `fingerprint_match` (``smtp_tls_verify_cert_match``,
    ``smtp_tls_secure_cert_match``, ``smtp_tls_fingerprint_cert_match``); ``match=`` may be
    given more than once, and is an error at any other level (smtp_tls_policy.c). An unknown
    attribute is a `ValueError`, never ignored: a policy that cannot be read must not be
    weakened.
    """
    words = value.split()
    if not words:
        raise LocalProtocolError("empty policy")
    level = parse_level(words[0])
    attributes: dict[str, str] = {}
    matches: list[str] = []
    for word in words[1:]:
        key, sep, item = word.partition("=")
        key = key.lower()
        if not sep or key not in _POLICY_ATTRIBUTES:
            raise LocalProtocolError(f"unknown policy attribute {word!r}")
        if key == "match":
            if level not in ("fingerprint", "verify", "secure") or not item:
                raise LocalProtocolError(f"attribute 'match' invalid at level {level!r}")
            matches.append(item)
            continue
        if key in attributes:
            raise LocalProtocolError(f"policy attribute {key!r} given twice")
        attributes[key] = item
    if level == "fingerprint":
        match = parse_fingerprints(matches or tuple(fingerprint_match))
    elif matches:
        match = _name_list(matches, "match")
    elif level == "verify":
        match = _name_list(tuple(verify_match), "tls_verify_cert_match")
    elif level == "secure":
        match = _name_list(tuple(secure_match), "tls_secure_cert_match")
    else:
        match = ()
    protocols = attributes.get("protocols")
    ciphers = attributes.get("ciphers")
    servername = attributes.get("servername")
    return TLSPolicy(
        level=level,
        match=match,
        protocols=None if protocols is None else tuple(p for p in protocols.split(":") if p),
        ciphers=None if ciphers is None else ciphers.lower(),
        exclude=tuple(c for c in attributes.get("exclude", "").split(":") if c),
        servername=servername or None,
    )


def policy_for(
    nexthop: str,
    *,
    default_level: str,
    policy_maps: Mapping[str, str] | KeyLookup[str],
    verify_match: Iterable[str] = ("hostname",),
    secure_match: Iterable[str] = ("nexthop", "dot-nexthop"),
    fingerprint_match: Iterable[str] = (),
) -> TLSPolicy:
    """The policy for next-hop destination `nexthop` (``smtp_tls_policy_maps``, rule 5.1).

    Keys tried, case-insensitively: the destination as given (``example.com``,
    ``[mx.example.com]:587``); then, for a bare domain only, its parents as ``.parent``
    (``.example.com``, ``.com``), as ``parent_domain_matches_subdomains`` leaves it. No entry:
    `default_level`. `policy_maps` is a `smtpproto.tables.Lookup` (any table type) or a plain
    mapping. A bad entry is a `ValueError` naming its key (rule 5.10: Postfix skips the
    destination with ``4.7.0 client TLS configuration problem``).
    """
    matching = {
        "verify_match": tuple(verify_match),
        "secure_match": tuple(secure_match),
        "fingerprint_match": tuple(fingerprint_match),
    }
    candidates = [nexthop.lower()]
    domain = nexthop.lower().rstrip(".")
    if _HOSTNAME.fullmatch(domain):
        labels = domain.split(".")
        candidates += ["." + ".".join(labels[i:]) for i in range(1, len(labels))]
    for candidate in candidates:
        value = _get(policy_maps, candidate)
        if value is not None:
            try:
                return parse_policy(value, **matching)
            except ValueError as error:
                raise LocalProtocolError(f"tls_policy_maps[{candidate!r}]: {error}") from None
    level = parse_level(default_level)
    return parse_policy(level, **matching)


def _get(table: Mapping[str, str] | KeyLookup[str], key: str) -> str | None:
    """`key` in `table`, case-insensitively for a plain mapping (a Lookup folds itself)."""
    value = table.get(key)
    if value is None and isinstance(table, Mapping):
        folded = {k.lower(): k for k in table}
        original = folded.get(key)
        value = None if original is None else table[original]
    if value is not None and not isinstance(value, str):
        raise LocalProtocolError(f"tls_policy_maps[{key!r}]: expected text, got {value!r}")
    return value


def nexthop_domain(destination: str) -> str:
    """The next-hop domain of a destination: ``[mx.example.com]:587`` -> ``mx.example.com``."""
    match = _BRACKETED.fullmatch(destination) or _HOST_PORT.fullmatch(destination)
    if match is None:
        raise LocalProtocolError(f"destination: cannot find a domain in {destination!r}")
    return match[1].lower().rstrip(".")


def _a_label(name: str) -> str | None:
    # Next hops reach the policy in A-label form (smtpproto.destinations, IDNA 2008). A
    # non-ASCII name here was never converted; Python's codec is IDNA 2003 (faß -> fass, a
    # different domain), so such a name matches nothing rather than the wrong certificate.
    name = name.lower().rstrip(".")
    return name if name.isascii() else None


def match_names(policy: TLSPolicy, *, hostname: str, nexthop: str) -> tuple[str, ...]:
    """The reference names a certificate must match, for this MX `hostname` (rule 5.8).

    ``hostname`` is the server name as looked up (the MX host, or the host in ``[host]``),
    ``nexthop`` the next-hop domain, ``dot-nexthop`` any sub-domain of it (written
    ``.nexthop``); literals stay as they are. Empty below ``verify``.
    """
    if not needs_match(policy.level):
        return ()
    domain = nexthop_domain(nexthop)
    names: list[str] = []
    for word in policy.match:
        if word == "hostname":
            resolved: str | None = _a_label(hostname)
        elif word == "nexthop":
            resolved = _a_label(domain)
        elif word == "dot-nexthop":
            label = _a_label(domain)
            resolved = None if label is None else "." + label
        else:
            resolved = _a_label(word) if not word.startswith(".") else word
        if resolved and resolved not in names and resolved != ".":
            names.append(resolved)
    return tuple(names)


def server_name(
    policy: TLSPolicy, *, hostname: str, nexthop: str | None = None, default: str = "hostname"
) -> str | None:
    """The SNI name to send: the policy's ``servername=``, else `default`.

    `default` is ``smtp_tls_servername``: empty for no SNI, ``hostname`` for the MX host
    name, ``nexthop`` for the next-hop domain, or a name. Unlike Postfix (whose default is
    empty), ``hostname`` is the library's default: it lets a server with several
    certificates present the one a ``verify`` match expects. An address is never sent
    (RFC 6066 3).
    """
    choice = default if policy.servername is None else policy.servername
    if choice == "hostname":
        name = hostname
    elif choice == "nexthop":
        name = nexthop_domain(nexthop) if nexthop else hostname
    else:
        name = choice
    name = name.rstrip(".")
    if not name or name.startswith("[") or re.fullmatch(r"[0-9.]+|.*:.*", name):
        return None
    return _a_label(name)


def certificate_names(peercert: Mapping[str, object]) -> tuple[str, ...]:
    """The DNS names a certificate asserts: subjectAltName DNS entries, else the subject CNs."""
    dns: list[str] = []
    for entry in _tuple(peercert.get("subjectAltName")):
        pair = _tuple(entry)
        if len(pair) == 2 and pair[0] == "DNS" and isinstance(pair[1], str):
            dns.append(pair[1].lower())
    if dns:
        # RFC 6125 6.4.4 (and Postfix): the CN counts only when there is no DNS-ID.
        return tuple(dns)
    common: list[str] = []
    for rdn in _tuple(peercert.get("subject")):
        for attribute in _tuple(rdn):
            pair = _tuple(attribute)
            if len(pair) == 2 and pair[0] == "commonName" and isinstance(pair[1], str):
                common.append(pair[1].lower())
    return tuple(common)


def _tuple(value: object) -> tuple[object, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else ()


def _name_matches(certid: str, reference: str) -> bool:
    # A "*" is honoured only as a whole leftmost label: "foo*.example.com" never matches.
    wildcard = certid.startswith("*.")
    if "*" in (certid[2:] if wildcard else certid):
        return False
    if reference.startswith("."):
        # Postfix match_servername(): ".example.com" matches sub-domains only; a "*.example.com"
        # certificate names a sub-domain too.
        return certid.endswith(reference) and len(certid) > len(reference)
    if certid == reference:
        return True
    first, _, parent = reference.partition(".")
    # A wildcard covers exactly one label, and never a bare TLD ("*.com").
    return wildcard and bool(first) and parent == certid[2:] and "." in parent


def matched_name(peercert: Mapping[str, object] | None, names: Iterable[str]) -> str | None:
    """The first reference name in `names` that the certificate matches, or ``None``."""
    if not peercert:
        return None
    certids = certificate_names(peercert)
    for reference in names:
        reference = reference.lower()
        if not reference.startswith("."):
            reference = reference.rstrip(".")
        if not reference.strip(".") or "*" in reference:
            continue
        for certid in certids:
            if _name_matches(certid.rstrip("."), reference):
                return reference
    return None


def certificate_matches(peercert: Mapping[str, object] | None, names: Iterable[str]) -> bool:
    """True if the certificate matches one of `names` (rule 5.8); no names never match."""
    return matched_name(peercert, names) is not None


def check_peer(policy: TLSPolicy, info: TLSInfo, names: Iterable[str]) -> str | None:
    """After the handshake: ``None`` if the server passes `policy`, else Postfix's reason.

    Both reasons are ``4.7.5`` site failures; the session is sound, so QUIT goes over it (5.6).
    """
    if not needs_match(policy.level):
        return None
    if not info.chain_verified or info.peer_certificate is None:
        return "Server certificate not trusted"
    names = tuple(names)
    if not certificate_matches(info.peer_certificate, names):
        # Postfix logs the names on a line of their own; a result line must say it alone.
        presented = certificate_names(info.peer_certificate)
        return (
            f"Server certificate not verified (expected {_listed(names)}; "
            f"presented {_listed(presented)})"
        )
    return None


def _listed(names: Sequence[str], limit: int = 5) -> str:
    # Certificate names come from the peer: printable ASCII only, so that no control byte or
    # look-alike reaches a log line, and a bounded count and length (NS-14).
    shown = ["".join(c if " " < c < "\x7f" else "?" for c in name[:255]) for name in names[:limit]]
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return (", ".join(shown) or "none") + more


TrustWord = Literal["Anonymous", "Untrusted", "Trusted", "Verified"]


def trust_word(info: TLSInfo, matched: bool) -> TrustWord:
    """Postfix's word for a TLS session: Anonymous, Untrusted, Trusted or Verified."""
    if not info.chain_verified:
        # An anonymous (aNULL) suite has no server certificate at all.
        anonymous = info.cipher.startswith(("ADH", "AECDH")) or "anon" in info.cipher.lower()
        return "Anonymous" if anonymous else "Untrusted"
    return "Verified" if matched else "Trusted"


def established_message(
    info: TLSInfo, *, matched: bool, peer: str, trust: TrustWord | None = None
) -> str:
    """Postfix's log line: ``Verified TLS connection established to H[A]:25: TLSv1.3 with ...``
    (tls_misc.c tls_log_summary()); `trust` overrides the word `info` and `matched` give,
    for a server the core authenticated itself (DANE, fingerprints)."""
    word = trust or trust_word(info, matched)
    return f"{word} TLS connection established to {peer}: {info.version} with cipher {info.cipher}"


def min_protocol(protocols: str | Iterable[str]) -> str:
    """The lowest TLS version a ``smtp_tls_mandatory_protocols`` value allows.

    Both Postfix syntaxes: ``>=TLSv1.2`` and ``!SSLv2, !SSLv3, !TLSv1, !TLSv1.1`` (and the old
    inclusion list ``TLSv1.2, TLSv1.3``). Only the floor is enforced: a ceiling, or a version
    excluded above the floor, is not, because a newer TLS version is never the weaker one.
    Empty: everything from ``TLSv1``. Nothing allowed at all: `ValueError`.
    """
    items = [protocols] if isinstance(protocols, str) else list(protocols)
    words = [w for item in items for w in re.split(r"[\s,:]+", item.strip()) if w]
    allowed = set(_PROTOCOLS)
    included: set[str] = set()
    canonical = {p.lower(): p for p in _PROTOCOLS}
    for word in words:
        match = _PROTOCOL_ITEM.fullmatch(word)
        if match is None:
            raise LocalProtocolError(f"tls_mandatory_protocols: unknown protocol {word!r}")
        operator, version = match[1], canonical[match[2].lower()]
        position = _PROTOCOLS.index(version)
        if operator == ">=":
            allowed -= set(_PROTOCOLS[:position])
        elif operator == "<=":
            allowed -= set(_PROTOCOLS[position + 1 :])
        elif operator == "!":
            allowed.discard(version)
        else:
            included.add(version)
    if included:
        allowed &= included
    usable = [p for p in _PROTOCOLS if p in allowed and p in _SUPPORTED_PROTOCOLS]
    if not usable:
        raise LocalProtocolError(
            f"tls_mandatory_protocols: {' '.join(words)!r} allows no TLS version"
        )
    return usable[0]


def cipher_list(
    grade: str,
    *,
    cipherlists: Mapping[str, str] | None = None,
    exclude: Iterable[str] = (),
) -> str | None:
    """The OpenSSL cipher string for a grade (``tls_<grade>_cipherlist``), minus `exclude`.

    ``None`` for Postfix's own ``medium`` list with nothing excluded: the adapter then keeps
    Python's default list, which is a subset of it (forward-secret AEAD suites only), rather
    than re-enabling the weaker suites Postfix's list admits. TLS 1.3 suites are unaffected
    by cipher strings in OpenSSL.
    """
    if grade == "export":
        raise LocalProtocolError("tls_mandatory_ciphers: 'export' is obsolete (Postfix 3.8)")
    if grade not in CIPHER_GRADES:
        raise LocalProtocolError(f"tls_mandatory_ciphers: unknown grade {grade!r}")
    lists = {**_POSTFIX_CIPHERLISTS, **(cipherlists or {})}
    excluded = [e for item in exclude for e in re.split(r"[\s,:]+", item.strip()) if e]
    for name in excluded:
        if not re.fullmatch(r"[A-Za-z0-9+_.-]+", name):
            raise LocalProtocolError(f"tls_exclude_ciphers: invalid cipher name {name!r}")
    if grade == "medium" and not excluded and lists["medium"] == _POSTFIX_CIPHERLISTS["medium"]:
        return None
    return ":".join([lists[grade], *("!" + name for name in excluded)])


def tls_parameters(
    policy: TLSPolicy,
    *,
    ca_file: str | None = None,
    ca_path: str | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
    mandatory_protocols: str | Iterable[str] = (">=TLSv1.2",),
    protocols: str | Iterable[str] = (">=TLSv1",),
    mandatory_ciphers: str = "medium",
    ciphers: str = "medium",
    cipherlists: Mapping[str, str] | None = None,
    exclude_ciphers: Iterable[str] = (),
    mandatory_exclude_ciphers: Iterable[str] = (),
) -> TLSParameters:
    """The adapter's `TLSParameters` for `policy` (chain verification at verify and secure).

    As in Postfix, levels that require TLS use the ``mandatory_*`` protocol floor and cipher
    grade; ``may`` uses `protocols` and `ciphers` (``smtp_tls_protocols`` ``>=TLSv1`` and
    ``smtp_tls_ciphers`` ``medium`` since Postfix 3.6). Policy-table attributes win.
    """
    if policy.level == "none":
        raise LocalProtocolError("policy: level 'none' never starts TLS")
    mandatory = tls_required(policy.level)
    floor: str | Iterable[str]
    if policy.protocols is not None:
        floor = policy.protocols
    else:
        floor = mandatory_protocols if mandatory else protocols
    grade = policy.ciphers or (mandatory_ciphers if mandatory else ciphers)
    excluded = [
        *exclude_ciphers,
        *(mandatory_exclude_ciphers if mandatory else ()),
        *policy.exclude,
    ]
    return TLSParameters(
        verify=needs_match(policy.level),
        ca_file=ca_file,
        ca_path=ca_path,
        cert_file=cert_file,
        key_file=key_file,
        min_version=min_protocol(floor),
        ciphers=cipher_list(grade, cipherlists=cipherlists, exclude=excluded),
    )
