"""Authenticated TLS between MTAs for one server: DANE, MTA-STS, fingerprints, TLS-RPT data.

Postfix decides the TLS policy of a connection in smtp_tls_policy.c: the next hop's level
(``smtp_tls_policy_maps``, :mod:`.tlspolicy`), then, at ``dane`` and ``dane-only``,
``dane_init()`` per server, from the DNSSEC status of the MX and address lookups and the
server's TLSA records (:mod:`.dane`). :func:`server_policy` is that step, a generator that
yields the TLSA lookups; MTA-STS (RFC 8461, :mod:`.mtasts`) is a second source beside the
policy table, discovered once per next-hop domain by :func:`discover_sts`. After the
handshake, :func:`judge` checks the servers whose authentication is the core's own (DANE
records, certificate fingerprints) on the DER chain the adapter handed over. Every attempt
becomes an RFC 8460 `AttemptResult` (:func:`attempt`).

Precedence, per server: DANE, when the server has usable TLSA records (RFC 8461 2: DANE
wins over MTA-STS), then MTA-STS, for next hops whose configured level does not already
authenticate the server (``none``, ``may``, ``encrypt``, or ``dane`` that found nothing),
then the configured level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from .._errors import LocalProtocolError, RemoteProtocolError
from ..config import ClientConfig
from ..report import Trust
from ..requests import (
    DNSAnswer,
    DNSError,
    HTTPResponse,
    HTTPSFailed,
    HTTPSGet,
    Resolve,
    TLSInfo,
)
from ..tlsreport import AttemptResult, ReportPolicy, ResultType
from .dane import (
    DEFAULT_DIGESTS,
    DaneResult,
    DigestPreference,
    Lookup,
    TLSARecord,
    dane_policy,
    default_insecure_mx_policy,
    describe_match,
    parse_digests,
    tlsa_name,
    tlsa_wanted,
    verify_chain,
)
from .mtasts import FETCH_TIMEOUT, MAX_POLICY_SIZE, PolicyCache, STSPolicy, check_response
from .session import IO
from .tlspolicy import HALF_DANE, TLSPolicy, match_names, nexthop_domain
from .trouble import Trouble, local_trouble

__all__ = [
    "Judgement",
    "Refusal",
    "STSState",
    "ServerDNS",
    "ServerTLS",
    "attempt",
    "discover_sts",
    "judge",
    "records_of",
    "server_policy",
]

_CONFIG_PROBLEM = "client TLS configuration problem"  # rule 5.10, Postfix MARK_INVALID
_WELL_KNOWN = "/.well-known/mta-sts.txt"  # RFC 8461 3.3
# Postfix's synthetic DANE-EE matching type for fingerprints (tls_dane.c, private use).
_FINGERPRINT_MTYPE = 255


def records_of(answer: object) -> tuple[tuple[object, ...], bool, str | None]:
    """(records, authenticated, canonical name) of a `Resolve` result, plain tuple or
    `DNSAnswer`: an adapter that knows nothing of DNSSEC has validated nothing."""
    if isinstance(answer, DNSAnswer):
        return tuple(answer.records), answer.authenticated, answer.canonical_name
    if isinstance(answer, tuple):
        return answer, False, None
    raise RemoteProtocolError(f"resolver answered {type(answer).__name__}, not records")


@dataclass(frozen=True)
class ServerDNS:
    """What DNS said about one server: the names, and which answers DNSSEC validated.

    `mx_secure` is ``None`` when no MX records led here (``[host]``, or a domain without
    MX records: Postfix's ``iter->mx`` is null); `canonical` is where CNAMEs led the
    address lookup, when elsewhere.
    """

    host: str
    address: str
    port: int | None
    mx_secure: bool | None = None
    address_secure: bool = False
    canonical: str | None = None


@dataclass(frozen=True)
class STSState:
    """MTA-STS for one next-hop domain: the policy in force (``None``: none), and the
    failure of this delivery's discovery or fetch, for TLS-RPT."""

    domain: str
    policy: STSPolicy | None = None
    failure: tuple[ResultType, str] | None = None


@dataclass(frozen=True)
class ServerTLS:
    """The TLS policy of one server once DANE and MTA-STS had their say.

    `policy` is what the handshake needs (its level ``dane``/``half-dane`` after DANE found
    usable records); `records` are the TLSA records (or a fingerprint's synthetic DANE-EE
    records) that :func:`judge` matches, `names` the DANE-TA reference names, `sni` the
    name DANE requires in SNI (RFC 7672 8.1), `digests` the matching types in use.
    `report` is the TLS-RPT policy its attempts count under; `failure` a policy failure to
    report whatever the handshake does (unusable TLSA records); `testing` an MTA-STS policy
    in ``testing`` mode, whose failures are reported and never enforced. `now` is the time
    (seconds since the epoch) certificate dates are judged at, ``None`` without a clock.
    """

    policy: TLSPolicy
    report: ReportPolicy
    records: tuple[TLSARecord, ...] = ()
    names: tuple[str, ...] = ()
    sni: str | None = None
    digests: DigestPreference = ()
    failure: tuple[ResultType, str] | None = None
    testing: bool = False
    now: int | None = None


@dataclass(frozen=True)
class Refusal:
    """A server the TLS policy rules out before connecting: the site `trouble` (4.7.5, or
    4.7.0 for a configuration problem) and its TLS-RPT `result` (``None`` for the latter)."""

    trouble: Trouble
    result: AttemptResult | None = None


@dataclass(frozen=True)
class Judgement:
    """The core's verdict on a handshake: ``None`` `failure` when the server passed."""

    trust: Trust
    failure: str | None = None
    result_type: ResultType | None = None
    matched: str | None = None
    detail: str = ""


def attempt(
    server: ServerTLS,
    dns: ServerDNS,
    *,
    result_type: ResultType | None = None,
    reason: str | None = None,
    helo: str | None = None,
) -> AttemptResult:
    """The RFC 8460 result of one attempt to `dns`'s server under `server`'s policy;
    a policy failure `server` carries wins over a successful handshake."""
    if result_type is None and server.failure is not None:
        result_type, reason = server.failure
    text = reason
    if text is not None and not text.isprintable():
        text = "".join(c if c.isprintable() else "?" for c in text)
    return AttemptResult(
        server.report,
        success=result_type is None,
        result_type=result_type,
        receiving_mx_hostname=dns.host,
        receiving_mx_helo=helo or None,
        receiving_ip=dns.address if dns.port is not None else None,
        failure_reason_code=(text or None) if result_type is not None else None,
    )


def _plain(policy: TLSPolicy, level: str, nexthop: str, now: int | None) -> ServerTLS:
    return ServerTLS(
        replace(policy, level=level, match=()), ReportPolicy.none(nexthop_domain(nexthop)), now=now
    )


def _fingerprints(
    policy: TLSPolicy, config: ClientConfig, nexthop: str, now: int | None
) -> ServerTLS:
    # Postfix tls_dane_add_fpt_digests(): each fingerprint matches the certificate or its key.
    records = tuple(
        TLSARecord(3, selector, _FINGERPRINT_MTYPE, bytes.fromhex(fp))
        for fp in policy.match
        for selector in (0, 1)
    )
    return ServerTLS(
        policy,
        ReportPolicy.none(nexthop_domain(nexthop)),
        records,
        digests=((_FINGERPRINT_MTYPE, config.tls_fingerprint_digest),),
        now=now,
    )


def _anchored(
    policy: TLSPolicy, dns: ServerDNS, config: ClientConfig, nexthop: str, now: int | None
) -> ServerTLS:
    # Postfix loads smtp_tls_trust_anchor_file as DANE-TA records (tls_dane.c): a chain to
    # one of them, through the server's certificates, names per the level's match list.
    anchors = config.tls_trust_anchor_file
    records = (
        *(TLSARecord(2, 0, 0, der) for der in anchors.certificates),
        *(TLSARecord(2, 1, 0, der) for der in anchors.keys),
    )
    names = match_names(policy, hostname=dns.host, nexthop=nexthop)
    return ServerTLS(
        policy,
        ReportPolicy.none(nexthop_domain(nexthop)),
        records,
        names,
        digests=DEFAULT_DIGESTS,
        now=now,
    )


def _tlsa_lookup(name: str, port: int, timeout: float | None) -> IO:
    """One TLSA lookup: (Lookup, records); malformed records are dropped (Postfix warns)."""
    try:
        answer = yield Resolve(tlsa_name(name, port), "TLSA", timeout, dnssec=True)
    except DNSError as exc:
        outcome: Literal["nxdomain", "error"] = "nxdomain" if exc.kind == "nxdomain" else "error"
        return Lookup(outcome), ()
    rdatas, secure, _ = records_of(answer)
    records: list[TLSARecord] = []
    for rdata in rdatas:
        try:
            records.append(TLSARecord.from_rdata(rdata))  # type: ignore[arg-type]
        except (RemoteProtocolError, LocalProtocolError):
            continue
    if not rdatas:
        return Lookup("nodata", secure), ()
    return Lookup("found", secure), tuple(records)


def server_policy(
    policy: TLSPolicy,
    dns: ServerDNS,
    *,
    config: ClientConfig,
    nexthop: str,
    sts: STSState | None = None,
    now: int | None = None,
) -> IO:
    """The `ServerTLS` for the server `dns` describes under next-hop `policy`, or the
    `Refusal` that skips it (a DANE lookup error, ``dane-only`` without DANE, an MX host
    MTA-STS ``enforce`` rules out). Yields the TLSA lookups Postfix's dane_init() makes."""
    level = policy.level
    if level in ("dane", "dane-only"):
        decided = yield from _dane(policy, dns, config=config, nexthop=nexthop, now=now)
        if isinstance(decided, Refusal) or decided.policy.level in ("dane", HALF_DANE):
            return decided
        fallback: ServerTLS = decided
    elif level == "fingerprint":
        return _fingerprints(policy, config, nexthop, now)
    elif level in ("verify", "secure") and config.tls_trust_anchor_file:
        return _anchored(policy, dns, config, nexthop, now)
    else:
        fallback = ServerTLS(policy, ReportPolicy.none(nexthop_domain(nexthop)), now=now)
    if sts is None or fallback.policy.level not in ("none", "may", "encrypt"):
        return fallback
    return _sts_server(fallback, dns, sts)


def _sts_server(fallback: ServerTLS, dns: ServerDNS, sts: STSState) -> ServerTLS | Refusal:
    """RFC 8461 4: an ``enforce`` policy admits matching MX hosts only, over TLS verified
    for the MX name; ``testing`` keeps the configured TLS and reports what would fail."""
    policy = sts.policy
    if policy is None or policy.mode == "none":
        return fallback
    report = ReportPolicy.sts(sts.domain, policy)
    mismatch = None
    if not policy.matches(dns.host):
        mismatch = f"MX host {dns.host} does not match the MTA-STS policy of {sts.domain}"
    if policy.mode == "testing":
        failure: tuple[ResultType, str] | None = None
        if mismatch is not None:
            failure = ("validation-failure", mismatch)
        return replace(fallback, report=report, failure=failure, testing=True)
    if mismatch is not None:
        refused = ServerTLS(fallback.policy, report)
        return Refusal(
            local_trouble("4.7.5", mismatch, site=True),
            attempt(refused, dns, result_type="validation-failure", reason=mismatch),
        )
    verify = TLSPolicy(
        "verify",
        match=("hostname",),
        protocols=(">=TLSv1.2",),
        ciphers=fallback.policy.ciphers,
        exclude=fallback.policy.exclude,
    )
    return ServerTLS(verify, report, now=fallback.now)


def _dane(
    policy: TLSPolicy, dns: ServerDNS, *, config: ClientConfig, nexthop: str, now: int | None
) -> IO:
    """Postfix dane_init() (smtp_tls_policy.c): DANE's decision for one server."""
    only = policy.level == "dane-only"

    def incompatible(reason: str) -> ServerTLS | Refusal:
        # dane_incompat(NONDANE_CONFIG): a warning and "may", or at dane-only a
        # configuration problem; never authentication silently dropped.
        if only:
            return Refusal(local_trouble("4.7.0", f"{_CONFIG_PROBLEM}: {reason}", site=True))
        return _plain(policy, "may", nexthop, now)

    if dns.port is None:
        reason = "the dane levels are invalid over UNIX sockets"
        return Refusal(local_trouble("4.7.0", f"{_CONFIG_PROBLEM}: {reason}", site=True))
    if config.dns_support_level != "dnssec":
        return incompatible(f"{policy.level} configured with dnssec lookups disabled")
    if config.ignore_mx_lookup_error:
        return incompatible(f"{policy.level} configured with MX lookup errors ignored")
    try:
        digests = parse_digests(config.tls_dane_digests)
    except ValueError as error:
        return incompatible(f"{policy.level} configured, but {error}")
    insecure_mx = config.tls_dane_insecure_mx_policy or default_insecure_mx_policy(
        config.tls_security_level
    )
    level = "dane-only" if only else "dane"
    force = config.tls_force_insecure_host_tlsa_lookup
    host = dns.host.rstrip(".").lower()
    base = host
    tlsa: Lookup | None = None
    found: tuple[TLSARecord, ...] = ()
    wanted = tlsa_wanted(
        level,
        mx_authenticated=dns.mx_secure,
        address_authenticated=dns.address_secure,
        insecure_mx_policy=insecure_mx,  # type: ignore[arg-type]
        force_insecure_host_lookup=force,
    )
    if wanted:
        # Postfix tls_dane_resolve(): a secure CNAME target's TLSA records first, the name
        # the MX record gave when there are none there (RFC 7672 2.2.2).
        if dns.canonical and dns.address_secure:
            tlsa, found = yield from _tlsa_lookup(dns.canonical, dns.port, None)
            if tlsa.outcome == "error" or (tlsa.outcome == "found" and tlsa.authenticated):
                base = dns.canonical
        if base == host:
            tlsa, found = yield from _tlsa_lookup(host, dns.port, None)
    aliases = () if dns.mx_secure is None else (nexthop_domain(nexthop),)
    decision = dane_policy(
        level,
        hostname=base,
        mx_authenticated=dns.mx_secure,
        address_authenticated=dns.address_secure,
        tlsa=tlsa,
        records=found,
        aliases=aliases,
        insecure_mx_policy=insecure_mx,  # type: ignore[arg-type]
        force_insecure_host_lookup=force,
        port=dns.port,
        digests=digests,
    )
    report = ReportPolicy.tlsa(base, found)
    if decision.level == "defer":
        refused = ServerTLS(policy, report)
        return Refusal(
            local_trouble(decision.dsn or "4.7.5", decision.reason, site=True),
            attempt(refused, dns, result_type=decision.tlsrpt, reason=decision.reason),
        )
    if decision.level in ("dane", HALF_DANE):
        return ServerTLS(
            replace(policy, level=decision.level, match=()),
            report,
            decision.records,
            decision.names,
            sni=base,
            digests=digests,
            now=now,
        )
    fallback = _plain(policy, decision.level, nexthop, now)
    if decision.tlsrpt is not None:
        return replace(fallback, report=report, failure=(decision.tlsrpt, decision.reason))
    return fallback


def judge(server: ServerTLS, info: TLSInfo) -> Judgement:
    """After the handshake of a server the core authenticates (``dane``, ``half-dane``,
    ``fingerprint``, trust anchors at ``verify``/``secure``): match its DER chain against
    the records.

    A failure is Postfix's ``Server certificate not verified`` (smtp_proto.c), a 4.7.5 site
    failure; the details go to the transcript. ``half-dane`` is logged ``Trusted``, since the
    insecure MX RRset might not name the real server (Postfix tls_client.c).
    """
    names = server.names if server.policy.level != "fingerprint" else ()
    result: DaneResult = verify_chain(
        info.peer_chain,
        server.records,
        names=names,
        now=server.now if server.now is not None else 0,
        digests=server.digests,
    )
    if not result.authenticated:
        return Judgement(
            "Untrusted",
            "Server certificate not verified",
            result.failure or "validation-failure",
            detail=result.reason,
        )
    if server.policy.level == "fingerprint" and result.record is not None:
        matched = result.record.data.hex(":").upper()
        return Judgement("Verified", matched=matched, detail=f"Matched fingerprint: {matched}")
    if server.policy.level in ("verify", "secure") and result.depth is not None:
        # Postfix tls_dane_log() at these levels: the anchor's depth, then the name matched.
        depth = result.depth - 1 if result.anchor_key else result.depth
        return Judgement(
            "Verified", matched=result.matched_name, detail=f"Matched trust anchor at depth {depth}"
        )
    record = result.record
    word: Trust = "Trusted" if server.policy.level == HALF_DANE else "Verified"
    return Judgement(
        word, matched=None if record is None else str(record), detail=describe_match(result)
    )


def _sts_host(domain: str) -> str:
    return f"mta-sts.{domain}"


def discover_sts(
    domain: str,
    *,
    cache: PolicyCache,
    config: ClientConfig,
    address_types: Sequence[Literal["A", "AAAA"]],
    now: float,
) -> IO:
    """RFC 8461 3: the MTA-STS policy of next-hop `domain`, as an `STSState`.

    The ``_mta-sts`` TXT record says whether a (new) policy is published; `cache` decides
    whether to fetch it (RFC 8461 5.1); the fetch goes to ``mta-sts.<domain>`` over HTTPS
    (`HTTPSGet`, certificate verified against ``tls_CAfile``/``tls_CApath`` or the system
    store). A failed or refused fetch keeps the cached policy, if any, and is reported.
    """
    dnssec = config.dns_support_level == "dnssec"
    txt: tuple[str, ...] | None
    try:
        answer = yield Resolve(f"_mta-sts.{domain}", "TXT", None, dnssec=dnssec)
        texts, _, _ = records_of(answer)
        txt = tuple(str(t) for t in texts)
    except DNSError as exc:
        # No such name is no record; a failure keeps whatever is cached (RFC 8461 5.1).
        txt = () if exc.kind == "nxdomain" else None
    refresh = cache.plan(domain, txt, now)
    if refresh.url is None or refresh.id is None:
        return STSState(domain, refresh.policy)
    host = _sts_host(domain)
    failure: tuple[ResultType, str] = ("sts-policy-fetch-error", f"no address for {host}")
    for rrtype in address_types:
        try:
            addresses, _, _ = records_of((yield Resolve(host, rrtype, None, dnssec=dnssec)))
        except DNSError as exc:
            failure = ("sts-policy-fetch-error", f"{host}: {exc.reason}")
            continue
        for address in addresses:
            request = HTTPSGet(
                host,
                str(address),
                _WELL_KNOWN,
                FETCH_TIMEOUT,
                MAX_POLICY_SIZE,
                ca_file=config.tls_CAfile,
                ca_path=config.tls_CApath,
            )
            try:
                response: HTTPResponse = yield request
            except HTTPSFailed as exc:
                kind: ResultType = (
                    "sts-webpki-invalid" if exc.certificate else "sts-policy-fetch-error"
                )
                failure = (kind, f"{refresh.url}: {exc.reason}")
                continue
            try:
                policy = check_response(response.status, response.content_type, response.body)
            except RemoteProtocolError as error:
                failure = ("sts-policy-invalid", f"{refresh.url}: {error}")
                break
            return STSState(domain, cache.fetched(domain, refresh.id, policy, now))
    kept = cache.fetch_failed(domain, refresh.id, now)
    return STSState(domain, kept, failure)
