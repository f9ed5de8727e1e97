"""DANE for SMTP (RFC 7672) with Postfix's semantics: TLSA records, matching, and policy.

Three pure pieces, each usable alone:

- :class:`TLSARecord`, the frozen TLSA RR (RFC 6698 2.1), and :func:`usable_records`, which
  drops the records an SMTP client cannot use and applies digest agility (RFC 7671 9);
- :func:`verify_chain`, which authenticates the server's certificate chain (DER, as the
  adapter got it from the handshake) against usable records: DANE-EE(3) by the server's own
  certificate or key, names and dates ignored (RFC 7672 3.1.1); DANE-TA(2) by a chain to the
  matched trust anchor, dates and names checked (RFC 7671 5.2, RFC 7672 3.2.2);
- :func:`dane_policy`, Postfix's ``dane_init()`` (``smtp_tls_policy.c``) as a function of
  the lookups' outcomes and their AD bits (RFC 7672 2.2): usable records require
  authenticated TLS, no records fall back to ``may`` at ``dane`` and defer at ``dane-only``,
  unusable records mean ``encrypt``, and a failed (bogus) lookup defers.

Why the core checks DANE-TA chains itself: a DANE-TA record usually names its trust anchor
by digest, and the anchor certificate arrives only in the server's handshake, so no CA file
can be prepared for the adapter's ``ssl`` module beforehand, and Python's ``ssl`` cannot
verify a chain after the handshake. So the adapter handshakes without verification (DANE
replaces PKIX here) and hands over the peer chain; this module builds the path from the
server certificate up to the anchor (issuer/subject linkage, CA flag, keyCertSign, path
length, validity, no unhandled critical extension) and checks each signature with
`smtpproto._signatures` (RSA PKCS#1 v1.5 and ECDSA P-256/P-384, stdlib only). An algorithm
outside that set fails the chain: closed, never open.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._errors import LocalProtocolError, RemoteProtocolError
from .._signatures import verify_signature
from .._x509 import KEY_CERT_SIGN, Certificate, check_spki
from .tlspolicy import matched_name

__all__ = [
    "DEFAULT_DIGESTS",
    "DaneLevel",
    "DanePolicy",
    "DaneResult",
    "Lookup",
    "TLSARecord",
    "dane_policy",
    "default_insecure_mx_policy",
    "describe_match",
    "parse_digests",
    "record_matches",
    "tlsa_name",
    "tlsa_wanted",
    "unusable_reason",
    "usable_records",
    "verify_chain",
]

# RFC 6698 2.1 and the IANA registries it created.
PKIX_TA, PKIX_EE, DANE_TA, DANE_EE = 0, 1, 2, 3
CERT, SPKI = 0, 1
FULL = 0

DigestPreference = tuple[tuple[int, str], ...]
DEFAULT_DIGESTS: DigestPreference = ((2, "sha512"), (1, "sha256"))
"""``tls_dane_digests = sha512 sha256``: matching types with their hashes, strongest first."""

_KNOWN_DIGESTS = {"sha256": 1, "sha512": 2}
_MAX_CHAIN = 10  # certificates looked at beyond the server's own (OpenSSL's depth is larger)
_MAX_SIGNATURE_CHECKS = 64  # a hostile chain of look-alike issuers cannot make this quadratic
_HEX = re.compile(r"[0-9a-fA-F\s]*")


def _octet(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise LocalProtocolError(f"{what}: expected an integer 0..255, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class TLSARecord:
    """One TLSA record (RFC 6698 2.1): certificate usage, selector, matching type and data.

    Any octet values are representable, as DNS may carry them; whether an SMTP client can use
    the record is :func:`unusable_reason`'s question, not a construction error.
    """

    usage: int
    selector: int
    mtype: int
    data: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _octet(self.usage, "usage")
        _octet(self.selector, "selector")
        _octet(self.mtype, "mtype")
        if not isinstance(self.data, bytes):
            raise LocalProtocolError("data: expected bytes")

    @classmethod
    def from_rdata(cls, rdata: bytes) -> TLSARecord:
        """A record from its wire RDATA; fewer than 3 octets is a `RemoteProtocolError`."""
        if not isinstance(rdata, (bytes, bytearray, memoryview)):
            raise LocalProtocolError("rdata: expected bytes")
        rdata = bytes(rdata)
        if len(rdata) < 3:
            raise RemoteProtocolError(f"truncated TLSA RDATA ({len(rdata)} octets)")
        return cls(rdata[0], rdata[1], rdata[2], rdata[3:])

    @classmethod
    def parse(cls, text: str) -> TLSARecord:
        """A record from its presentation form, ``3 1 1 <hex>`` (RFC 6698 2.2)."""
        if not isinstance(text, str):
            raise LocalProtocolError("text: expected a str")
        parts = text.split(None, 3)
        if len(parts) != 4 or not all(p.isdigit() and p.isascii() for p in parts[:3]):
            raise LocalProtocolError(f"TLSA record: expected 'usage selector mtype hex': {text!r}")
        if not _HEX.fullmatch(parts[3]):
            raise LocalProtocolError(f"TLSA record: data is not hexadecimal: {text!r}")
        digits = "".join(parts[3].split())
        if len(digits) % 2:
            raise LocalProtocolError(f"TLSA record: odd number of hex digits: {text!r}")
        return cls(int(parts[0]), int(parts[1]), int(parts[2]), bytes.fromhex(digits))

    def __str__(self) -> str:
        # Postfix logs TLSA data in upper-case hex (hex_encode()).
        return f"{self.usage} {self.selector} {self.mtype} {self.data.hex().upper()}"


def parse_digests(value: str | Iterable[str]) -> DigestPreference:
    """Parse ``tls_dane_digests`` (``sha512 sha256``, ``sha512=2``): strongest first.

    A known name with another number, an unknown name without a number, a hash this Python
    lacks, or a repeated number is a `ValueError` (Postfix: a warning, and DANE is off).
    """
    items = [value] if isinstance(value, str) else list(value)
    words = [w for item in items for w in re.split(r"[\s,]+", item.strip()) if w]
    found: list[tuple[int, str]] = []
    for word in words:
        name, sep, number = word.lower().partition("=")
        if sep and not (number.isdigit() and number.isascii() and 0 < int(number) < 255):
            raise LocalProtocolError(f"tls_dane_digests: bad matching type in {word!r}")
        known = _KNOWN_DIGESTS.get(name)
        mtype = int(number) if sep else known
        if mtype is None:
            raise LocalProtocolError(f"tls_dane_digests: {name!r} needs an '=number' suffix")
        if known is not None and mtype != known:
            raise LocalProtocolError(f"tls_dane_digests: {name} is matching type {known}")
        if name not in hashlib.algorithms_available:
            raise LocalProtocolError(f"tls_dane_digests: no {name!r} digest available")
        if any(mtype == m for m, _ in found):
            raise LocalProtocolError(f"tls_dane_digests: matching type {mtype} given twice")
        found.append((mtype, name))
    if not found:
        raise LocalProtocolError("tls_dane_digests: empty")
    return tuple(found)


def _digest_name(mtype: int, digests: DigestPreference) -> str | None:
    return next((name for m, name in digests if m == mtype), None)


def unusable_reason(
    record: TLSARecord, *, digests: DigestPreference = DEFAULT_DIGESTS
) -> str | None:
    """``None`` if an SMTP client can use `record`, else why not (RFC 7672 3.1, RFC 7671 4)."""
    if record.usage in (PKIX_TA, PKIX_EE):
        # RFC 7672 3.1.3: an SMTP client has no set of trusted CAs to apply them with.
        return "PKIX certificate usage unusable with SMTP"
    if record.usage not in (DANE_TA, DANE_EE):
        return "unsupported certificate usage"
    if record.selector not in (CERT, SPKI):
        return "unsupported selector"
    if not record.data:
        return "empty certificate association data"
    if record.mtype == FULL:
        try:
            if record.selector == CERT:
                Certificate.from_der(record.data)
            else:
                check_spki(record.data)
        except RemoteProtocolError:
            return "malformed certificate association data"
        return None
    name = _digest_name(record.mtype, digests)
    if name is None:
        return "unsupported matching type"
    if len(record.data) != hashlib.new(name).digest_size:
        return f"{name} digest of the wrong length"
    return None


def usable_records(
    records: Iterable[TLSARecord], *, digests: DigestPreference = DEFAULT_DIGESTS
) -> tuple[TLSARecord, ...]:
    """The records an SMTP client uses: unusable ones dropped, then digest agility applied.

    RFC 7671 9: for each usage and selector, only the strongest matching type present (by
    `digests` order) counts; Full(0) records always do. Unusable records are dropped first,
    so a malformed SHA2-512 record cannot mask a good SHA2-256 one.
    """
    kept = [r for r in records if unusable_reason(r, digests=digests) is None]
    rank = {mtype: position for position, (mtype, _) in enumerate(digests)}
    best: dict[tuple[int, int], int] = {}
    for record in kept:
        if record.mtype != FULL:
            key = (record.usage, record.selector)
            best[key] = min(best.get(key, len(rank)), rank[record.mtype])
    return tuple(r for r in kept if r.mtype == FULL or rank[r.mtype] == best[(r.usage, r.selector)])


def record_matches(
    record: TLSARecord, certificate: Certificate, *, digests: DigestPreference = DEFAULT_DIGESTS
) -> bool:
    """Whether `certificate` (selector Cert(0)) or its key (SPKI(1)) matches `record`."""
    content = certificate.der if record.selector == CERT else certificate.spki
    if record.mtype == FULL:
        return content == record.data
    name = _digest_name(record.mtype, digests)
    return name is not None and hashlib.new(name, content).digest() == record.data


RptFailure = Literal[
    "certificate-not-trusted",
    "certificate-host-mismatch",
    "certificate-expired",
    "validation-failure",
]


@dataclass(frozen=True)
class DaneResult:
    """The outcome of :func:`verify_chain`: authenticated or not, by which record, and why.

    `depth` is where the matched record applied (0: the server's certificate); `anchor_key`
    says a bare DANE-TA public key (``2 1 0``) verified the certificate at `depth` - 1.
    `failure` is the RFC 8460 4.3.1 result type when not authenticated.
    """

    authenticated: bool
    reason: str
    record: TLSARecord | None = None
    depth: int | None = None
    matched_name: str | None = None
    anchor_key: bool = False
    failure: RptFailure | None = None


def _fail(reason: str, failure: RptFailure = "certificate-not-trusted") -> DaneResult:
    return DaneResult(False, reason, failure=failure)


class _PathSearch:
    """Depth-first path building from the server certificate to a DANE-TA trust anchor."""

    def __init__(
        self,
        pool: Sequence[Certificate],
        anchors: Sequence[TLSARecord],
        digests: DigestPreference,
        now: int,
    ) -> None:
        self.pool = pool
        self.anchors = anchors
        self.digests = digests
        self.now = now
        self.checks = 0
        self.problem = "no chain to a DANE-TA trust anchor"
        self.verified: dict[tuple[bytes, bytes], bool] = {}

    def anchor_for(self, certificate: Certificate) -> TLSARecord | None:
        return next(
            (r for r in self.anchors if record_matches(r, certificate, digests=self.digests)),
            None,
        )

    def signed_by(self, spki: bytes, certificate: Certificate) -> bool:
        key = (spki, certificate.der)
        if key not in self.verified:
            if self.checks >= _MAX_SIGNATURE_CHECKS:
                self.problem = "too many candidate issuers"
                return False
            self.checks += 1
            self.verified[key] = verify_signature(
                spki,
                certificate.signature_algorithm,
                certificate.signature_parameters,
                certificate.tbs,
                certificate.signature,
            )
        return self.verified[key]

    def search(
        self, certificate: Certificate, path: tuple[Certificate, ...]
    ) -> tuple[TLSARecord, int, bool] | None:
        """(record, depth, bare key) of a path from `certificate` to an anchor, or ``None``."""
        depth = len(path)
        anchor = self.anchor_for(certificate)
        if anchor is not None:
            return anchor, depth, False
        if not self._acceptable(certificate, path):
            return None
        # A bare key in DNS (2 1 0) anchors whatever it signed; the server need not send it.
        for record in self.anchors:
            bare = record.selector == SPKI and record.mtype == FULL
            if bare and self.signed_by(record.data, certificate):
                return record, depth + 1, True
        if depth >= _MAX_CHAIN:
            self.problem = "certificate chain too long"
            return None
        for issuer in self.pool:
            if issuer.subject != certificate.issuer or issuer in path or issuer == certificate:
                continue
            if not self._can_issue(issuer, (*path, certificate)):
                continue
            if self.signed_by(issuer.spki, certificate):
                found = self.search(issuer, (*path, certificate))
                if found is not None:
                    return found
        return None

    def _acceptable(self, certificate: Certificate, path: tuple[Certificate, ...]) -> bool:
        # Everything below the trust anchor is checked as RFC 5280 6.1 would (RFC 7671 5.2).
        if not certificate.valid_at(self.now):
            self.problem = "certificate expired or not yet valid"
            return False
        if certificate.unhandled_critical:
            self.problem = f"unhandled critical extension {certificate.unhandled_critical[0]}"
            return False
        return True

    def _can_issue(self, issuer: Certificate, below: tuple[Certificate, ...]) -> bool:
        if self.anchor_for(issuer) is not None:
            return True  # the domain owner vouches for its anchor, constraints and all
        if not issuer.is_ca:
            return False
        if issuer.key_usage is not None and KEY_CERT_SIGN not in issuer.key_usage:
            return False
        # RFC 5280 4.2.1.9: the non-self-issued intermediates under `issuer`, the server's
        # own certificate not counted.
        intermediates = sum(1 for c in below[1:] if not c.self_issued)
        return issuer.path_length is None or intermediates <= issuer.path_length


def verify_chain(
    chain: Sequence[bytes],
    records: Iterable[TLSARecord],
    *,
    names: Sequence[str],
    now: int,
    digests: DigestPreference = DEFAULT_DIGESTS,
) -> DaneResult:
    """Authenticate the server's chain (DER, server certificate first) by DANE TLSA records.

    DANE-EE(3) records match the server's certificate or key alone: its names and dates do
    not matter (RFC 7672 3.1.1). DANE-TA(2) records need a path from the server certificate
    to a certificate (or key) they match, every certificate below the anchor valid at `now`
    (seconds since the epoch), and the server certificate must match one of `names`
    (RFC 7672 3.2.2; :func:`dane_policy` computes them). Records are filtered with
    :func:`usable_records` first; extra certificates that do not parse are ignored.
    """
    usable = usable_records(records, digests=digests)
    if not usable:
        return _fail("no usable TLSA records", "validation-failure")
    if not chain:
        return _fail("server sent no certificate")
    try:
        server = Certificate.from_der(chain[0])
    except RemoteProtocolError as error:
        return _fail(f"server certificate: {error}", "validation-failure")
    for record in usable:
        if record.usage == DANE_EE and record_matches(record, server, digests=digests):
            return DaneResult(True, "DANE-EE match", record=record, depth=0)
    anchors = [r for r in usable if r.usage == DANE_TA]
    if not anchors:
        return _fail("no TLSA record matches the server certificate")
    pool: list[Certificate] = []
    # RFC 7671 5.2.2: a full anchor certificate in DNS need not also come from the server.
    in_dns = [r.data for r in anchors if r.selector == CERT and r.mtype == FULL]
    for der in [*chain[1 : _MAX_CHAIN + 1], *in_dns]:
        try:
            pool.append(Certificate.from_der(der))
        except RemoteProtocolError:
            continue
    search = _PathSearch(pool, anchors, digests, now)
    found = search.search(server, ())
    if found is None:
        expired = search.problem.startswith("certificate expired")
        return _fail(
            search.problem, "certificate-expired" if expired else "certificate-not-trusted"
        )
    record, depth, anchor_key = found
    name = matched_name(server.peercert(), names)
    if name is None:
        return DaneResult(
            False,
            "server certificate matches none of " + ", ".join(names),
            record=record,
            depth=depth,
            anchor_key=anchor_key,
            failure="certificate-host-mismatch",
        )
    return DaneResult(True, "DANE-TA match", record, depth, name, anchor_key)


def describe_match(result: DaneResult) -> str:
    """Postfix's log text for a DANE match (``tls_dane_log()``), e.g. ``Matched DANE EE ...``."""
    if not result.authenticated or result.record is None or result.depth is None:
        return f"DANE verification failed: {result.reason}"
    if result.anchor_key:
        what = "TA public key verified certificate"
    elif result.depth:
        what = "TA certificate"
    else:
        what = "EE certificate"
    record = result.record
    data = record.data.hex().upper()
    if len(record.data) > 64:
        data = f"{data[:64]}...{data[-64:]}"
    depth = result.depth - 1 if result.anchor_key else result.depth
    return (
        f"Matched DANE {what} at depth {depth}: "
        f"{record.usage} {record.selector} {record.mtype} {data}"
    )


def tlsa_name(hostname: str, port: int = 25) -> str:
    """The TLSA query name for an SMTP server: ``_25._tcp.<host>`` (RFC 7672 2.2.3)."""
    host = hostname.rstrip(".").lower()
    if not host or not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise LocalProtocolError(f"tlsa_name: bad host or port {hostname!r}:{port!r}")
    return f"_{port}._tcp.{host}"


@dataclass(frozen=True)
class Lookup:
    """What one DNS lookup gave the adapter: its outcome and the AD bit.

    ``found``: records; ``nodata`` / ``nxdomain``: none; ``error``: SERVFAIL (which is how a
    validating resolver reports a bogus answer), timeout or other failure. `authenticated`
    is the AD bit of a trusted local validating resolver (Postfix trusts it the same way).
    """

    outcome: Literal["found", "nodata", "nxdomain", "error"]
    authenticated: bool = False

    def __post_init__(self) -> None:
        if self.outcome not in ("found", "nodata", "nxdomain", "error"):
            raise LocalProtocolError(f"outcome: unknown {self.outcome!r}")
        if self.outcome == "error" and self.authenticated:
            raise LocalProtocolError("authenticated: a failed lookup has no AD bit")


DaneLevel = Literal["may", "encrypt", "dane", "half-dane", "defer"]
InsecureMxPolicy = Literal["may", "encrypt", "dane"]
_TLSA_FAILURES = Literal["dnssec-invalid", "tlsa-invalid", "dane-required"]


@dataclass(frozen=True)
class DanePolicy:
    """What DANE means for one MX host: the effective level and what it needs.

    ``dane``: TLS authenticated by `records`, names `names` for DANE-TA, logged "Verified";
    ``half-dane``: the same, but the MX lookup was insecure, so logged "Trusted"
    (``smtp_tls_dane_insecure_mx_policy = dane``); ``encrypt`` / ``may``: the Postfix level
    DANE fell back to; ``defer``: skip this host with `dsn` (4.7.5) and `reason`.
    `tlsrpt` is the RFC 8460 4.3.2.1 result type when the decision is a policy failure.
    """

    level: DaneLevel
    reason: str = ""
    records: tuple[TLSARecord, ...] = ()
    names: tuple[str, ...] = ()
    dsn: str | None = None
    tlsrpt: _TLSA_FAILURES | None = None


def default_insecure_mx_policy(security_level: str) -> InsecureMxPolicy:
    """Postfix >= 3.6's default: ``dane`` when ``smtp_tls_security_level = dane``, else ``may``."""
    return "dane" if security_level == "dane" else "may"


def _check_level(level: str, insecure_mx_policy: str) -> None:
    if level not in ("dane", "dane-only"):
        raise LocalProtocolError(f"level: expected 'dane' or 'dane-only', got {level!r}")
    if insecure_mx_policy not in ("may", "encrypt", "dane"):
        raise LocalProtocolError(f"insecure_mx_policy: unknown {insecure_mx_policy!r}")


def tlsa_wanted(
    level: str,
    *,
    mx_authenticated: bool | None,
    address_authenticated: bool,
    insecure_mx_policy: InsecureMxPolicy,
    force_insecure_host_lookup: bool = False,
) -> bool:
    """Whether :func:`dane_policy` needs the host's TLSA lookup (Postfix asks only then).

    `mx_authenticated` is ``None`` for a destination without MX lookup (``[host]``, or a
    domain without MX records, RFC 7672 2.2.2). No TLSA lookup when an insecure MX already
    decides (RFC 7672 2.2.1), nor for a host whose address lookup was insecure unless
    ``smtp_tls_force_insecure_host_tlsa_lookup`` (RFC 7672 2.2.3).
    """
    _check_level(level, insecure_mx_policy)
    if mx_authenticated is False and (level == "dane-only" or insecure_mx_policy == "may"):
        return False
    return address_authenticated or force_insecure_host_lookup


def dane_policy(
    level: str,
    *,
    hostname: str,
    mx_authenticated: bool | None,
    address_authenticated: bool,
    tlsa: Lookup | None,
    records: Iterable[TLSARecord] = (),
    aliases: Sequence[str] = (),
    insecure_mx_policy: InsecureMxPolicy,
    force_insecure_host_lookup: bool = False,
    port: int = 25,
    digests: DigestPreference = DEFAULT_DIGESTS,
) -> DanePolicy:
    """The DANE decision for MX host `hostname` at `level` ``dane`` or ``dane-only``.

    `tlsa` is the outcome of the ``_25._tcp.<hostname>`` lookup, ``None`` when
    :func:`tlsa_wanted` said not to look; `records` are its records. `aliases` are other
    names of the host (the MX name when `hostname` is its CNAME target): with `hostname`
    they are the DANE-TA reference names (Postfix: the TLSA base domain and the MX name).
    The order of the checks is Postfix's ``dane_init()``.
    """
    wanted = tlsa_wanted(
        level,
        mx_authenticated=mx_authenticated,
        address_authenticated=address_authenticated,
        insecure_mx_policy=insecure_mx_policy,
        force_insecure_host_lookup=force_insecure_host_lookup,
    )
    host = hostname.rstrip(".").lower()
    only = level == "dane-only"

    def nondane(reason: str) -> DanePolicy:
        # No DANE for this host: `dane` falls back to opportunistic TLS, `dane-only` defers.
        if only:
            return DanePolicy("defer", reason, dsn="4.7.5", tlsrpt="dane-required")
        return DanePolicy("may", reason)

    def cannot_authenticate(reason: str) -> DanePolicy:
        if only:
            return DanePolicy("defer", reason, dsn="4.7.5", tlsrpt="tlsa-invalid")
        return DanePolicy("encrypt", reason, tlsrpt="tlsa-invalid")

    if mx_authenticated is False and not wanted and (only or insecure_mx_policy == "may"):
        return nondane("non DNSSEC destination")
    if tlsa is None:
        if wanted:
            raise LocalProtocolError("tlsa: the TLSA lookup is needed (tlsa_wanted)")
        return nondane("no TLSA records found")
    if tlsa.outcome == "error":
        # RFC 7672 2.2: a failed or bogus lookup may hide records: never fall back.
        return DanePolicy(
            "defer",
            f"TLSA lookup error for {host}:{port}",
            dsn="4.7.5",
            tlsrpt="dnssec-invalid",
        )
    found = tuple(records) if tlsa.outcome == "found" else ()
    if not found or not tlsa.authenticated:
        return nondane("no TLSA records found")
    usable = usable_records(found, digests=digests)
    if not usable:
        return cannot_authenticate("TLSA records unusable")
    if mx_authenticated is False:
        if insecure_mx_policy == "encrypt":
            return cannot_authenticate("Verification not possible, MX RRset is insecure")
        names = _names(host, aliases)
        return DanePolicy("half-dane", "MX RRset is insecure", usable, names)
    return DanePolicy("dane", "", usable, _names(host, aliases))


def _names(host: str, aliases: Sequence[str]) -> tuple[str, ...]:
    names: list[str] = []
    for name in (host, *aliases):
        name = name.rstrip(".").lower()
        if name and name not in names:
            names.append(name)
    return tuple(names)
