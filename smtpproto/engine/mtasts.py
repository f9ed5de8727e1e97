"""MTA-STS (RFC 8461) as pure policy: records, policy files, the cache, and what they mean.

The adapters look up ``_mta-sts.<domain>`` TXT and fetch the policy over HTTPS (certificate
verified, no redirects, bounded in size and time); everything they get back is judged here:

- :func:`select_record` picks the one ``v=STSv1`` TXT record (RFC 8461 3.1);
- :func:`check_response` and :meth:`STSPolicy.parse` accept a policy file only whole: a
  malformed one is refused, never half applied (RFC 8461 3.2, 3.3);
- :class:`PolicyCache` keeps policies by domain with their ``id`` and ``max_age`` and says
  when to fetch, with `now` (seconds) always an argument (RFC 8461 3.3, 5, 5.1);
- :func:`apply_policy` says what a policy means for the MX list and TLS (RFC 8461 4):
  ``enforce`` uses only matching MX hosts and requires TLS verified against the MX name,
  ``testing`` delivers as before and records what would have failed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._errors import LocalProtocolError, RemoteProtocolError
from .tlspolicy import TLSPolicy

__all__ = [
    "FETCH_TIMEOUT",
    "MAX_AGE_LIMIT",
    "MAX_POLICY_SIZE",
    "RETRY_AFTER",
    "PolicyCache",
    "Refresh",
    "STSPlan",
    "STSPolicy",
    "STSRecord",
    "apply_policy",
    "check_response",
    "mx_matches",
    "policy_url",
    "select_record",
]

MAX_POLICY_SIZE = 65536
"""The largest policy body accepted, in octets (RFC 8461 3.3 recommends 64 KB)."""
FETCH_TIMEOUT = 60.0
"""Seconds an adapter allows the HTTPS policy fetch (RFC 8461 3.3 recommends one minute)."""
RETRY_AFTER = 300.0
"""Seconds between fetch attempts for one policy id after a failure (RFC 8461 3.3)."""
MAX_AGE_LIMIT = 31557600
"""The largest ``max_age`` honoured, in seconds (RFC 8461 3.2); larger values are capped."""

Mode = Literal["enforce", "testing", "none"]

# RFC 8461 3.1 (TXT record) and 3.2 (policy file) ABNF.
_WSP = r"[ \t]"
_EXT_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}"
_TXT_FIELD = re.compile(rf"({_EXT_NAME})=([\x21-\x3a\x3c\x3e-\x7e]+)")
_TXT_VERSION = re.compile(rf"v=STSv1(?:{_WSP}*;|{_WSP}*$)")
_TXT_DELIM = re.compile(rf"{_WSP}*;{_WSP}*")
_ID = re.compile(r"[A-Za-z0-9]{1,32}")
_POLICY_LINE = re.compile(rf"({_EXT_NAME}):{_WSP}*(.*?){_WSP}*")
_EXT_VALUE = re.compile(r"[^\x00-\x20\x7f](?:[ \t]*[^\x00-\x20\x7f])*")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_MX_PATTERN = re.compile(rf"(\*\.)?({_LABEL}(?:\.{_LABEL})+)")
_MAX_AGE = re.compile(r"[0-9]{1,10}")


def _domain(name: str, what: str) -> str:
    if not isinstance(name, str):
        raise LocalProtocolError(f"{what}: expected a str")
    folded = name.strip().rstrip(".").lower()
    if not folded.isascii():
        try:
            folded = folded.encode("idna").decode("ascii")
        except UnicodeError:
            raise LocalProtocolError(f"{what}: not a domain name: {name!r}") from None
    if not re.fullmatch(rf"{_LABEL}(?:\.{_LABEL})*", folded):
        raise LocalProtocolError(f"{what}: not a domain name: {name!r}")
    return folded


@dataclass(frozen=True)
class STSRecord:
    """The ``_mta-sts`` TXT record: its policy `id` (RFC 8461 3.1)."""

    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _ID.fullmatch(self.id):
            raise LocalProtocolError(f"id: expected 1 to 32 letters or digits, got {self.id!r}")

    @classmethod
    def parse(cls, text: str) -> STSRecord:
        """Parse ``v=STSv1; id=...``; unknown fields are ignored, the first ``id`` counts."""
        if not _TXT_VERSION.match(text):
            raise RemoteProtocolError(f"MTA-STS record does not start with v=STSv1: {text!r}")
        fields = _TXT_DELIM.split(text[len("v=STSv1") :].strip(" \t"))
        if fields and fields[0] == "":
            fields = fields[1:]
        if fields and fields[-1] == "":
            fields = fields[:-1]
        if not fields:
            raise RemoteProtocolError("MTA-STS record without an id")
        found: str | None = None
        for item in fields:
            match = _TXT_FIELD.fullmatch(item)
            if match is None:
                raise RemoteProtocolError(f"malformed MTA-STS record field {item!r}")
            if match[1] == "id" and found is None:
                if not _ID.fullmatch(match[2]):
                    raise RemoteProtocolError(f"malformed MTA-STS id {match[2]!r}")
                found = match[2]
        if found is None:
            raise RemoteProtocolError("MTA-STS record without an id")
        return cls(found)


def select_record(texts: Sequence[str]) -> STSRecord | None:
    """The policy record among a name's TXT strings, or ``None`` (RFC 8461 3.1).

    Records not starting with ``v=STSv1`` are ignored; with none left, several left, or a
    malformed one, the domain has no MTA-STS record.
    """
    candidates = [t for t in texts if _TXT_VERSION.match(t)]
    if len(candidates) != 1:
        return None
    try:
        return STSRecord.parse(candidates[0])
    except RemoteProtocolError:
        return None


def policy_url(domain: str) -> str:
    """Where the policy of `domain` lives: ``https://mta-sts.<domain>/.well-known/mta-sts.txt``."""
    return f"https://mta-sts.{_domain(domain, 'domain')}/.well-known/mta-sts.txt"


def mx_matches(pattern: str, host: str) -> bool:
    """Whether MX `host` matches policy `pattern`; ``*.`` stands for exactly one label."""
    name = host.rstrip(".").lower()
    pattern = pattern.lower()
    if pattern.startswith("*."):
        first, _, parent = name.partition(".")
        return bool(first) and parent == pattern[2:]
    return name == pattern


@dataclass(frozen=True)
class STSPolicy:
    """One MTA-STS policy (RFC 8461 3.2): mode, lifetime and the MX patterns.

    `lines` keeps the policy file as served, one string per line, for the RFC 8460
    ``policy-string`` of a TLS-RPT report.
    """

    mode: Mode
    max_age: int
    mx: tuple[str, ...] = ()
    lines: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.mode not in ("enforce", "testing", "none"):
            raise LocalProtocolError(f"mode: unknown {self.mode!r}")
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, int):
            raise LocalProtocolError("max_age: expected an int")
        if not 0 <= self.max_age < 10**10:
            raise LocalProtocolError(f"max_age: out of range: {self.max_age}")
        for pattern in self.mx:
            if not isinstance(pattern, str) or not _MX_PATTERN.fullmatch(pattern):
                raise LocalProtocolError(f"mx: invalid pattern {pattern!r}")
        if self.mode != "none" and not self.mx:
            raise LocalProtocolError(f"mx: mode {self.mode!r} needs at least one pattern")

    @property
    def lifetime(self) -> int:
        """Seconds the policy may be cached: ``max_age``, capped at :data:`MAX_AGE_LIMIT`."""
        return min(self.max_age, MAX_AGE_LIMIT)

    def matches(self, host: str) -> bool:
        """Whether MX `host` matches one of the policy's ``mx`` patterns (RFC 8461 4.1)."""
        return any(mx_matches(pattern, host) for pattern in self.mx)

    @classmethod
    def parse(cls, body: bytes | str) -> STSPolicy:
        """Parse a policy file; anything malformed is a `RemoteProtocolError`, whole.

        Lines end with LF or CRLF; unknown fields are ignored; of a repeated field other than
        ``mx`` the first counts (RFC 8461 3.2).
        """
        if isinstance(body, bytes):
            if len(body) > MAX_POLICY_SIZE:
                raise RemoteProtocolError(f"MTA-STS policy larger than {MAX_POLICY_SIZE} octets")
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                raise RemoteProtocolError("MTA-STS policy is not UTF-8") from None
        elif isinstance(body, str):
            text = body
        else:
            raise LocalProtocolError("body: expected bytes or str")
        if text.endswith("\n"):
            text = text[:-1]
        lines = tuple(line[:-1] if line.endswith("\r") else line for line in text.split("\n"))
        seen: dict[str, str] = {}
        patterns: list[str] = []
        for line in lines:
            match = _POLICY_LINE.fullmatch(line)
            if match is None or not _EXT_VALUE.fullmatch(match[2]):
                raise RemoteProtocolError(f"malformed MTA-STS policy line {line!r}")
            name, value = match[1], match[2]
            if name == "mx":
                if not _MX_PATTERN.fullmatch(value):
                    raise RemoteProtocolError(f"malformed MTA-STS mx pattern {value!r}")
                patterns.append(value.lower())
            else:
                seen.setdefault(name, value)
        for required in ("version", "mode", "max_age"):
            if required not in seen:
                raise RemoteProtocolError(f"MTA-STS policy without {required!r}")
        if seen["version"] != "STSv1":
            raise RemoteProtocolError(f"unknown MTA-STS version {seen['version']!r}")
        mode = seen["mode"]
        if mode not in ("enforce", "testing", "none"):
            raise RemoteProtocolError(f"unknown MTA-STS mode {mode!r}")
        if not _MAX_AGE.fullmatch(seen["max_age"]):
            raise RemoteProtocolError(f"malformed MTA-STS max_age {seen['max_age']!r}")
        if mode != "none" and not patterns:
            raise RemoteProtocolError(f"MTA-STS policy in mode {mode!r} without mx")
        return cls(mode, int(seen["max_age"]), tuple(patterns), lines)  # type: ignore[arg-type]


def check_response(status: int, content_type: str | None, body: bytes) -> STSPolicy:
    """Judge an HTTPS policy fetch: 200 only (redirects are not followed), ``text/plain``,
    at most :data:`MAX_POLICY_SIZE` octets, and a well-formed policy (RFC 8461 3.3)."""
    if status != 200:
        raise RemoteProtocolError(f"MTA-STS policy fetch: HTTP status {status}")
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != "text/plain":
        raise RemoteProtocolError(f"MTA-STS policy fetch: media type {content_type!r}")
    return STSPolicy.parse(body)


@dataclass(frozen=True)
class STSPlan:
    """What a policy means for one delivery: which MX hosts, and what TLS they need.

    `hosts` are the MX hosts to try, in the given order; `refused` those the policy rules
    out (``enforce``) or would have (``testing``), for the report. `tls` is the TLS policy
    the hosts need (``verify`` against the MX name, TLS 1.2 or newer), ``None`` without a
    policy; it is binding only when `enforce` is true.
    """

    mode: Mode | None
    hosts: tuple[str, ...]
    refused: tuple[str, ...] = ()
    tls: TLSPolicy | None = None
    enforce: bool = False


def apply_policy(policy: STSPolicy | None, mx_hosts: Sequence[str]) -> STSPlan:
    """The MX hosts and TLS requirement for a domain with `policy` (RFC 8461 4.1, 4.2).

    In ``enforce`` an empty `hosts` means the message must not be delivered now (defer).
    """
    hosts = tuple(mx_hosts)
    if policy is None or policy.mode == "none":
        return STSPlan(None if policy is None else "none", hosts)
    allowed = tuple(h for h in hosts if policy.matches(h))
    refused = tuple(h for h in hosts if not policy.matches(h))
    # RFC 8461 4.2: a certificate valid for the MX host name, and TLS 1.2 or newer.
    tls = TLSPolicy(level="verify", match=("hostname",), protocols=(">=TLSv1.2",))
    if policy.mode == "enforce":
        return STSPlan("enforce", allowed, refused, tls, enforce=True)
    return STSPlan("testing", hosts, refused, tls, enforce=False)


@dataclass(frozen=True)
class CachedPolicy:
    """A policy in the cache: the record `id` it was fetched for, and when."""

    domain: str
    id: str
    policy: STSPolicy
    fetched_at: float

    @property
    def expires_at(self) -> float:
        """When the cached policy stops applying (fetch time plus capped ``max_age``)."""
        return self.fetched_at + self.policy.lifetime


@dataclass(frozen=True)
class Refresh:
    """What to do for a domain now: fetch `url` (for record `id`), and which policy applies
    meanwhile, or if the fetch fails (`policy`, the cached one, or ``None``)."""

    policy: STSPolicy | None
    url: str | None = None
    id: str | None = None


class PolicyCache:
    """Cached MTA-STS policies by domain; time is always an argument (RFC 8461 5, 5.1).

    A policy stays in force until its ``max_age`` runs out, even when the TXT record goes
    away (that is what defeats an attacker who strips DNS answers); a changed record ``id``
    or a policy older than `refresh_after` leads to a fetch; a failed fetch keeps the old
    policy and is not retried for the same id within `retry_after` seconds.

    A blocking Mailer's worker threads share one: every change is a single dict operation
    and nothing iterates a live dict, so two threads at worst fetch the same policy twice.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10000,
        retry_after: float = RETRY_AFTER,
        refresh_after: float = 86400.0,
    ) -> None:
        if max_entries < 1 or retry_after < 0 or refresh_after < 0:
            raise LocalProtocolError("PolicyCache: limits must be positive")
        self.max_entries = max_entries
        self.retry_after = retry_after
        self.refresh_after = refresh_after
        self._entries: dict[str, CachedPolicy] = {}
        self._failures: dict[tuple[str, str], float] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, domain: str, now: float) -> CachedPolicy | None:
        """The unexpired cached policy of `domain`, or ``None``."""
        key = _domain(domain, "domain")
        entry = self._entries.get(key)
        if entry is not None and now >= entry.expires_at:
            self._entries.pop(key, None)
            return None
        return entry

    def plan(self, domain: str, txt: Sequence[str] | None, now: float) -> Refresh:
        """Decide for `domain` given its ``_mta-sts`` TXT strings (``None``: lookup failed)."""
        key = _domain(domain, "domain")
        cached = self.get(key, now)
        fallback = cached.policy if cached is not None else None
        record = select_record(txt) if txt is not None else None
        if record is None:
            return Refresh(fallback)
        fresh = cached is not None and now - cached.fetched_at < self.refresh_after
        if cached is not None and cached.id == record.id and fresh:
            return Refresh(fallback)
        failed = self._failures.get((key, record.id))
        if failed is not None and now - failed < self.retry_after:
            return Refresh(fallback)
        return Refresh(fallback, policy_url(key), record.id)

    def fetched(self, domain: str, record_id: str, policy: STSPolicy, now: float) -> STSPolicy:
        """Store a policy fetched for record `record_id`; it replaces the cached one."""
        key = _domain(domain, "domain")
        STSRecord(record_id)
        self._failures.pop((key, record_id), None)
        self._entries.pop(key, None)
        if len(self._entries) >= self.max_entries:
            soonest = min(list(self._entries.values()), key=lambda entry: entry.expires_at)
            self._entries.pop(soonest.domain, None)
        self._entries[key] = CachedPolicy(key, record_id, policy, now)
        return policy

    def fetch_failed(self, domain: str, record_id: str, now: float) -> STSPolicy | None:
        """Note a failed fetch (or a refused policy); return the policy that still applies."""
        key = _domain(domain, "domain")
        STSRecord(record_id)
        stale = [k for k, when in list(self._failures.items()) if now - when >= self.retry_after]
        for old in stale:
            self._failures.pop(old, None)
        if len(self._failures) < self.max_entries:
            self._failures[(key, record_id)] = now
        cached = self.get(key, now)
        return cached.policy if cached is not None else None
