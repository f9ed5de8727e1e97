"""The delivery request: destination list, MX walk, limits, fallback relays, reuse (rules 14, 9).

Postfix smtp_connect.c ``smtp_connect()``/``smtp_connect_inet()`` and smtp_addr.c: walk the
next-hop list (then the fallback relays), look up each entry's servers, try them in order
within ``mx_address_limit`` and ``mx_session_limit``, and hand the recipients still KEEP to the
next server with a new transaction, until each has an outcome.

Every connection comes from a :class:`~.cache.ConnectionCache` (smtp_reuse.c and the queue
manager's limits): a kept session found under the request's next hop or a server's address,
or room for a new connection. ``deliver`` alone has a private cache, which keeps a session
between its batches; a Mailer passes its shared one, whose decisions the engine asks for
through `Shared` requests that the adapter serializes (and waits on, at a limit).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Literal, TypeVar

from .._errors import LocalProtocolError, Refusal, RemoteProtocolError
from .._failures import AuthenticationFailed, ConnectionFailed, SessionFailed, TLSPolicyFailed
from ..body import MessageInfo, MessageSource, iter_chunks
from ..commands import Rset
from ..config import ClientConfig, checked_config
from ..connection import ClientConnection
from ..destinations import Destination, IDNAEncoder, parse_destinations
from ..envelope import Envelope
from ..replies import Reply
from ..report import DeliveryReport, RecipientResult, TLSState
from ..requests import (
    BindFailed,
    Channel,
    Connect,
    ConnectFailed,
    DNSError,
    IOFailure,
    IORequest,
    MXRecord,
    Random,
    Resolve,
    Shared,
    TLSInfo,
    Wait,
)
from ..tlsreport import AttemptResult, ReportPolicy
from .authtls import ServerDNS, STSState, discover_sts
from .cache import (
    ConnectionCache,
    Evict,
    Key,
    Limits,
    Open,
    Refuse,
    Reuse,
    Slot,
    endpoint_key,
    nexthop_key,
)
from .checks import prepare
from .lookups import LookupSource, filter_records, host_lookup_sources, read_answer
from .mtasts import PolicyCache
from .redact import Redactor
from .routing import (
    Attempts,
    DNSFailure,
    Hop,
    RouteStatus,
    Target,
    address_lookup_status,
    address_rrtypes,
    destination_is_final,
    host_loops,
    is_final_server,
    keep_soft,
    loop_detection_applies,
    mx_lookup_failure,
    no_mx_address_status,
    order_addresses,
    plan_hops,
    select_mx,
    truncate_self,
)
from .security import SecurityPolicy, default_policy
from .session import IO, Session, handshake, queued_at_least, reply_line_filter
from .transaction import PIPELINE_LIMIT, EnvelopeCommands, run_transaction
from .trouble import Ledger, Server, Trouble, connect_trouble, local_trouble

__all__ = [
    "abandon_delivery",
    "close_cache",
    "close_session",
    "deliver",
    "open_session",
    "tend_cache",
    "transact",
]

T = TypeVar("T")

# Postfix TLS_MUST_MATCH(): above encrypt, a kept session is bound to the next hop whose
# names its certificate matched (smtp.h COND_TLS_SMTP_KEY_FLAG_CUR_NEXTHOP).
_UNMATCHED_LEVELS = frozenset({"none", "may", "encrypt"})


@dataclass(frozen=True)
class _Target:
    """One address to try: the name it was found for, the address, and its MX preference."""

    host: str
    address: str
    port: int | None
    family: Literal["inet", "unix"] = "inet"
    preference: int = 0
    mx_secure: bool | None = None
    """The MX RRset that led here was DNSSEC-validated; ``None``: no MX record led here."""
    secure: bool = False
    """The address lookup was DNSSEC-validated."""
    canonical: str | None = None
    """Where CNAMEs led the address lookup, when elsewhere."""
    sts: STSState | None = None
    """The MTA-STS policy of the next-hop domain (``smtpproto_mta_sts_enable``)."""

    def dns(self) -> ServerDNS:
        """What DNS said about this server, for its TLS policy (DANE)."""
        port = self.port if self.family == "inet" else None
        return ServerDNS(self.host, self.address, port, self.mx_secure, self.secure, self.canonical)


@dataclass
class _Walk:
    """The state of one delivery request across destinations (rule 14.7)."""

    config: ClientConfig
    clock: Callable[[], float]
    rng: Random
    nonce: Callable[[], str] | None
    lmtp: bool
    cache: ConnectionCache[Session]
    """Where connections come from and go back to (rules 9.1-9.5)."""
    shared: bool = False
    """`cache` serves concurrent deliveries: its decisions go out as `Shared` requests."""
    destination: str = ""
    """The request's next hop: the cache's concurrency and back-off key."""
    caching: bool = False
    """Sessions of this request may be kept (rule 9.1)."""
    holder: object = None
    """What names this delivery to a shared cache (`ConnectionCache.lease`)."""
    naming: bool = False
    """The request's next hop still awaits its first good session (rule 9.5)."""
    tls: TLSInfo | None = None
    tls_states: dict[str, TLSState | None] = field(default_factory=dict)
    """relay -> the TLS of the last connection there, for the per-result report."""
    transcript: list[str] = field(default_factory=list)
    wall_clock: Callable[[], float] | None = None
    """Seconds since the epoch: certificate dates (DANE-TA), the MTA-STS cache."""
    sts_cache: PolicyCache = field(default_factory=PolicyCache)
    attempts: list[AttemptResult] = field(default_factory=list)
    """The TLS-RPT result of every TLS attempt (RFC 8460), for the report."""

    @property
    def dnssec(self) -> bool:
        """Ask the resolver whether answers were validated (``smtp_dns_support_level``)."""
        return self.config.dns_support_level == "dnssec"

    def now(self) -> int | None:
        """The time of day for certificate dates, or ``None`` without a wall clock."""
        return None if self.wall_clock is None else int(self.wall_clock())

    redactor: Redactor = field(default_factory=Redactor)
    """The secrets every session of this request knows (AU-18)."""

    def note(self, line: str) -> None:
        """A transcript line that belongs to no session (DNS warnings), as `Session.note`."""
        self.transcript.append(self.redactor.shown(line))


def _ask(
    cache: ConnectionCache[Session], call: Callable[[float], T]
) -> Generator[IORequest, Any, T]:
    """One decision of a shared cache, made by the adapter under the cache's lock; the
    adapter then wakes whom the cache says the call served (`ConnectionCache.woken`)."""
    result: T = yield Shared(call, cache.woken)
    return result


def _decide(walk: _Walk, call: Callable[[float], T]) -> Generator[IORequest, Any, T]:
    """One decision of the walk's cache: a `Shared` request when the cache is shared (the
    adapter serializes the calls and waits while one says `Wait`), else made here."""
    if walk.shared:
        return (yield from _ask(walk.cache, call))
    result = call(walk.clock())
    if isinstance(result, Wait):
        raise LocalProtocolError("a private connection cache has no limit to wait for")
    return result


def _trouble(status: RouteStatus) -> Trouble:
    return local_trouble(status.dsn, status.text)


def _host_addresses(name: str, walk: _Walk, preference: int) -> IO:
    """Rule 14.3: the addresses of one host; returns (targets, RouteStatus or None).

    From each source of ``smtp_host_lookup`` in turn, the next one only for a host the
    previous one did not find (Postfix smtp_addr.c ``smtp_host_addr()``).
    """
    if _is_address(name):
        return [Target(name, name, preference)], None
    status: RouteStatus | None = None
    for source in host_lookup_sources(walk.config):
        found, status, not_found = yield from _addresses_from(
            name, walk, preference, source, status
        )
        if found:
            return found, None
        if not not_found:
            break
    return [], status or address_lookup_status("nodata", name, "A")


def _addresses_from(
    name: str, walk: _Walk, preference: int, source: LookupSource, status: RouteStatus | None
) -> IO:
    """One source's addresses for `name`: (targets, status, whether it just did not know it)."""
    config = walk.config
    found: list[Target] = []
    not_found = True
    for rrtype in address_rrtypes(config):
        kind: DNSFailure | None = None
        try:
            answer = read_answer(
                (yield Resolve(name, rrtype, None, dnssec=walk.dnssec, lookup=source)), name
            )
            records: tuple[Any, ...] = answer.records
            if source == "dns":
                records, notes = filter_records(config.dns_reply_filter, answer, name, rrtype)
                for line in notes:
                    walk.note(line)
                kind = "policy" if answer.records and not records else None
        except DNSError as exc:
            kind = exc.kind
        except LocalProtocolError:
            kind = "filter"
        if kind is not None:
            not_found = not_found and kind in ("nxdomain", "unavailable")
            new = address_lookup_status(
                kind, name, rrtype, soft_seen=status is not None and status.soft
            )
            status = keep_soft(status, new)
            continue
        host = answer.canonical if config.cname_overrides_servername and answer.canonical else name
        found.extend(
            Target(host, str(a), preference, answer.authenticated, answer.canonical)
            for a in records
        )
    return found, status, not_found


@functools.lru_cache(maxsize=256)
def _is_address(host: str) -> bool:
    # Asked again for each delivery to the same host; `ipaddress` parsing is not cheap.
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _unix_target(dest: Destination, walk: _Walk) -> _Target:
    # Postfix smtp_connect_local: the host is myhostname and the address the path, so the
    # relay is logged as "myhostname[/path]".
    return _Target(walk.config.myhostname, dest.host, None, family="unix")


def _targets(dest: Destination, walk: _Walk) -> IO:
    """Rules 14.1-14.6: the addresses to try for one destination, the lookup trouble, and
    whether this destination is final for loop reasons ("I am MX" or a loop)."""
    config = walk.config
    if dest.kind == "unix":
        return [_unix_target(dest, walk)], None, True
    port = dest.port
    loops = loop_detection_applies(dest, config)
    # smtp_dns_support_level=disabled: no MX lookup, the domain's own addresses (smtp_addr.c).
    if dest.kind != "mx" or walk.lmtp or config.dns_support_level == "disabled":
        found, status = yield from _host_addresses(dest.host, walk, 0)
        if found and loops:
            status = host_loops(found, dest.host, config=config)
            if status is not None:
                return [], _trouble(status), True
        ordered = order_addresses(found, config=config, rng=walk.rng)
        return (
            [
                _Target(t.host, t.address, port, secure=t.secure, canonical=t.canonical)
                for t in ordered
            ],
            status and _trouble(status),
            False,
        )
    kind: DNSFailure | None = None
    reason = ""
    mx_secure: bool | None = None
    try:
        answer = read_answer((yield Resolve(dest.host, "MX", None, dnssec=walk.dnssec)), dest.host)
        mx_secure = answer.authenticated
        kept, notes = filter_records(config.dns_reply_filter, answer, dest.host, "MX")
        for line in notes:
            walk.note(line)
        records: tuple[MXRecord, ...] = tuple(r for r in kept if isinstance(r, MXRecord))
        if answer.records and not kept:
            kind = "policy"
    except DNSError as exc:
        kind, reason = exc.kind, exc.reason
    except LocalProtocolError:
        kind = "filter"
    if kind is not None:
        failure = mx_lookup_failure(kind, dest.host, config=config)
        if isinstance(failure, RouteStatus):
            if kind == "unavailable":
                # The resolver says what is missing (the dns extra): keep it in the result.
                failure = replace(failure, text=f"{failure.text} ({reason})")
            return [], _trouble(failure), False
        records = ()
    if not records:
        # RFC 5321 5.1: no MX, the domain's own addresses at preference 0 (implicit MX);
        # for DANE no MX record led there (Postfix smtp_domain_addr() leaves iter->mx null).
        mx_secure = None
        found, status = yield from _host_addresses(dest.host, walk, 0)
    else:
        selection = select_mx(
            records, dest.host, rng=walk.rng, randomize=config.randomize_addresses
        )
        for warning in selection.warnings:
            walk.note(f"Warning: {warning}")
        if selection.status is not None:
            return [], _trouble(selection.status), False
        found = []
        status = None
        for record in selection.records:
            more, problem = yield from _host_addresses(record.exchange, walk, record.preference)
            found.extend(more)
            if problem is not None:
                status = keep_soft(status, problem)
        if not found:
            status = no_mx_address_status(dest.host, status, config=config)
    i_am_mx = False
    if found and loops:
        check = truncate_self(found, dest.host, config=config, better_unresolved=status is not None)
        if check.status is not None:
            if config.best_mx_transport and status is None:
                # Postfix best_mx_transport: this host is the best MX, so the mail goes to
                # the next hop named there instead of bouncing as a loop (rule 14.6).
                return (yield from _best_mx_targets(walk))
            return [], _trouble(check.status), True
        found, i_am_mx = list(check.targets), check.i_am_mx
    ordered = order_addresses(found, config=config, rng=walk.rng)
    trouble = None if ordered or status is None else _trouble(status)
    sts = None
    if ordered and config.mta_sts_enable:
        sts = yield from _sts(dest.host, walk)
    return (
        [
            _Target(
                t.host,
                t.address,
                port,
                preference=t.preference,
                mx_secure=mx_secure,
                secure=t.secure,
                canonical=t.canonical,
                sts=sts,
            )
            for t in ordered
        ],
        trouble,
        i_am_mx,
    )


def _sts(domain: str, walk: _Walk) -> IO:
    """The MTA-STS state of next-hop `domain` (RFC 8461); a failed discovery is reported."""
    clock = walk.wall_clock or walk.clock
    state: STSState = yield from discover_sts(
        domain,
        cache=walk.sts_cache,
        config=walk.config,
        address_types=address_rrtypes(walk.config),
        now=clock(),
    )
    if state.failure is not None:
        kind, reason = state.failure
        policy = ReportPolicy("sts", domain)
        if state.policy is not None:
            policy = ReportPolicy.sts(domain, state.policy)
        walk.attempts.append(
            AttemptResult(policy, success=False, result_type=kind, failure_reason_code=reason)
        )
        walk.note(f"Warning: MTA-STS policy of {domain}: {reason}")
    return state


def _best_mx_targets(walk: _Walk) -> IO:
    """The addresses of ``best_mx_transport``'s next hops, as the final destination."""
    found: list[_Target] = []
    trouble: Trouble | None = None
    for dest in parse_destinations(walk.config.best_mx_transport, lmtp=walk.lmtp):
        if dest.kind == "unix":
            found.append(_unix_target(dest, walk))
            continue
        targets, status = yield from _host_addresses(dest.host, walk, 0)
        ordered = order_addresses(targets, config=walk.config, rng=walk.rng)
        found.extend(_Target(t.host, t.address, dest.port) for t in ordered)
        trouble = trouble or (status and _trouble(status))
    return found, None if found else trouble, True


def _connect(target: _Target, server: Server, walk: _Walk, policy: SecurityPolicy | _Steps) -> IO:
    """Open and hand-shake one session; returns the Session or the site Trouble."""
    config = walk.config
    security = policy.policy if isinstance(policy, _Steps) else policy
    refusal = yield from security.resolve_server(target.dns(), sts=target.sts, now=walk.now())
    if refusal is not None:
        return refusal
    if config.tls_wrappermode:
        refusal = policy.refuse_wrapper()
        if refusal is not None:
            return refusal
    try:
        # smtp(8): a zero connect timeout means no limit of our own (lmtp_connect_timeout=0s).
        timeout = config.connect_timeout or None
        bind = None
        if target.family == "inet":
            # smtp(8): the local source address, per address family of the server.
            bind = config.bind_address6 if ":" in target.address else config.bind_address
        try:
            channel = yield Connect(
                target.host, target.address, target.port, timeout, target.family, bind or None
            )
        except BindFailed as exc:
            # smtp_bind_address_enforce (Postfix smtp_connect.c): defer, or go on from the
            # address the system picks.
            walk.note(f"Warning: {exc.reason}")
            if config.bind_address_enforce:
                return local_trouble("4.4.0", "server configuration error", site=True)
            channel = yield Connect(
                target.host, target.address, target.port, timeout, target.family, None
            )
    except ConnectFailed as exc:
        return connect_trouble(server, exc)
    session = Session(
        connection=ClientConnection(
            lmtp=walk.lmtp,
            pipeline_limit=PIPELINE_LIMIT,
            # Rule 4.5: the global list plus the per-address one, applied to every EHLO/LHLO.
            discard_keywords=config.discard_ehlo_keywords
            | config.discard_ehlo_keyword_address_maps.get(target.address, frozenset()),
            line_length_limit=config.line_length_limit,
            reply_filter=reply_line_filter(config.reply_filter, walk.note),
        ),
        channel=channel,
        server=server,
        config=config,
        clock=walk.clock,
        rng=walk.rng,
        nonce=walk.nonce,
        lmtp=walk.lmtp,
        started=walk.clock(),
        transcript=walk.transcript,
        redactor=walk.redactor,
    )
    trouble: Trouble | None = None
    if config.tls_wrappermode:
        trouble = yield from policy.wrap(session)
    if trouble is None:
        trouble = yield from handshake(session, policy)
    if trouble is None:
        return session
    # Rule 9.8: QUIT after a handshake failure unless the stream is broken or forbidden.
    yield from session.quit()
    return trouble


def _probe(session: Session) -> IO:
    """Rule 9.4: an RSET probe before a kept session is used again; False: drop it."""
    try:
        reply: Reply = yield from session.command(Rset(), session.config.rset_timeout)
    except (IOFailure, RemoteProtocolError):
        yield from session.close()
        return False
    if not reply.is_positive:
        yield from session.close()
        return False
    return True


def _tls_level(config: ClientConfig, nexthop: str, target: _Target) -> str:
    """The TLS level a new connection to `target` would require, for the cache keys."""
    policy = default_policy(config, unix=target.family == "unix", nexthop=nexthop)
    try:
        return policy.lookup().level
    except LocalProtocolError:
        return "invalid"  # rule 5.10: no connection will come of it, nothing may match it


def _endpoint(walk: _Walk, nexthop: str, target: _Target, envelope: Envelope) -> Key:
    """Rule 9.5: the key of a session with `target`, as Postfix's endpoint label."""
    config = walk.config
    level = _tls_level(config, nexthop, target)
    sasl = bool(config.sasl_password_maps)
    per_sender = sasl and config.sender_dependent_authentication
    return endpoint_key(
        service="lmtp" if walk.lmtp else "smtp",
        address=target.address,
        port=target.port,
        tls_level=level,
        smtputf8=envelope.smtputf8,
        nexthop=nexthop if sasl or level not in _UNMATCHED_LEVELS else None,
        hostname=target.host if sasl else None,
        sender=envelope.sender if per_sender else None,
    )


def _named(walk: _Walk, envelope: Envelope) -> Key:
    """Rule 9.5: the key of the first good session of a request, by the request's next hop."""
    config = walk.config
    per_sender = bool(config.sasl_password_maps) and config.sender_dependent_authentication
    return nexthop_key(
        service="lmtp" if walk.lmtp else "smtp",
        nexthop=walk.destination,
        smtputf8=envelope.smtputf8,
        sender=envelope.sender if per_sender else None,
    )


def _evicted(slots: Sequence[Slot[Session]]) -> IO:
    """Rule 9.7: QUIT, then close, each connection the cache gave up (the caller releases
    them)."""
    for slot in slots:
        if slot.connection is not None:
            yield from slot.connection.quit()


def _lease(walk: _Walk, keys: Sequence[Key]) -> IO:
    """A connection for one attempt: `Reuse` with its session probed (rule 9.4), `Open`
    for a new one, or `Refuse` when the destination is backed off; waits at a limit."""
    done: tuple[Slot[Session], ...] = ()
    while True:
        decision = yield from _decide(
            walk,
            partial(walk.cache.lease, walk.destination, keys, closed=done, holder=walk.holder),
        )
        done = ()
        if isinstance(decision, Evict):
            yield from _evicted(decision.slots)
            done = decision.slots
        elif isinstance(decision, Reuse):
            session = decision.slot.connection
            assert session is not None
            session.transcript = walk.transcript
            if (yield from _probe(session)):
                return decision
            done = (decision.slot,)
        else:
            return decision


def _abandon(walk: _Walk) -> IO:
    """After an engine bug: give back what this delivery held and close it without QUIT."""
    slots = yield from _decide(walk, partial(walk.cache.abandon, walk.holder))
    for slot in slots:
        if slot.connection is not None:
            yield from slot.connection.close()


def _release(walk: _Walk, slot: Slot[Session], session: Session, keys: Sequence[Key]) -> IO:
    """Give a session back after its transaction: kept under `keys` if the cache takes it,
    else QUIT (rule 9.7) and close; `keys` empty means it is closed already."""
    if keys and (yield from _decide(walk, partial(walk.cache.release, slot, keys=keys))):
        return
    if keys:
        yield from session.quit()
    yield from _decide(walk, partial(walk.cache.release, slot))


def _suspended(refusal: Refuse) -> Trouble:
    # Postfix qmgr: mail for a dead destination is deferred with the reason it died.
    return local_trouble(
        refusal.dsn, f"delivery temporarily suspended: {refusal.reason}", site=True
    )


def _reorder(targets: list[_Target], k: int, session: Session) -> None:
    """Rule 9.5: a session found under the next hop serves first, wherever its server is
    in the list (or even when DNS no longer lists it); the rest keep their order."""
    place = (session.server.address, session.server.port)
    for j in range(k, len(targets)):
        if (targets[j].address, targets[j].port) == place:
            targets.insert(k, targets.pop(j))
            return
    server = session.server
    family: Literal["inet", "unix"] = "unix" if server.port is None else "inet"
    targets.insert(k, _Target(server.host, server.address, server.port, family))


def _back_off(walk: _Walk, ledger: Ledger) -> IO:
    """A destination that was down (rule 2.1) or said to slow down (`slows_down`) gets no new
    connections from the cache for a while; the cache ignores this when it has no back-off."""
    trouble = ledger.slowed
    if trouble is None and ledger.destination_down and ledger.last is not None:
        trouble = ledger.last[0]
    if trouble is None or not trouble.soft:
        return
    dsn, reason = trouble.dsn, trouble.diagnostic
    yield from _decide(walk, lambda now: walk.cache.back_off(walk.destination, now, dsn, reason))


def _walk_batch(
    walk: _Walk,
    hops: tuple[Hop, ...],
    envelope: Envelope,
    commands: EnvelopeCommands,
    message: MessageSource,
    info: MessageInfo,
    ledger: Ledger,
    batch: tuple[int, ...],
    *,
    keep_open: bool,
) -> IO:
    """Try each destination's servers until every recipient of `batch` has an outcome."""
    config = walk.config
    ledger.last = None
    last_was_fallback = False
    walk.naming = False

    def left() -> tuple[int, ...]:
        pending = set(ledger.pending)
        return tuple(i for i in batch if i in pending)

    refusal = yield from _decide(walk, partial(walk.cache.backed_off, walk.destination))
    if refusal is not None:
        ledger.fail(_suspended(refusal), None, left(), final=True)
        return
    for d, hop in enumerate(hops):
        if not left():
            break
        dest = hop.destination
        last_was_fallback = hop.fallback
        targets, trouble, stop_here = yield from _targets(dest, walk)
        final_dest = destination_is_final(d, hops, i_am_mx=stop_here)
        if trouble is not None:
            # Rule 14.8: a lookup status is only recorded; it decides at the end of the list.
            ledger.last = (trouble, None)
        attempts = Attempts.for_config(config)
        if d == 0:
            # Postfix smtp_connect_inet(): only the first next hop, once it has servers.
            walk.naming = walk.caching and bool(targets)
        k = 0
        while k < len(targets):
            if not left() or not attempts.may_try:
                break
            keys = [_endpoint(walk, dest.text, targets[k], envelope)]
            if d == 0 and k == 0 and walk.naming:
                # Rule 9.5 (smtp_reuse_session()): first a session kept under the request's
                # next hop, or with any of the best servers, before a new connection.
                best = targets[0].preference
                keys[:0] = [_named(walk, envelope)]
                keys += [
                    _endpoint(walk, dest.text, t, envelope)
                    for t in targets[1:]
                    if t.preference == best
                ]
            lease = yield from _lease(walk, keys)
            if isinstance(lease, Refuse):
                ledger.fail(_suspended(lease), None, left(), final=True)
                return
            if isinstance(lease, Reuse):
                assert lease.slot.connection is not None
                _reorder(targets, k, lease.slot.connection)
            target = targets[k]
            k += 1
            final = is_final_server(final_dest, attempts, addresses_left=len(targets) - k)
            attempts = attempts.after_address()
            server = Server(target.host, target.address, target.port, final)
            slot = lease.slot
            if isinstance(lease, Open):
                policy = default_policy(
                    config,
                    unix=target.family == "unix",
                    nexthop=dest.text,
                    sender=envelope.sender,
                )
                outcome = yield from _connect(target, server, walk, policy)
                walk.attempts.extend(policy.attempts)
                if isinstance(outcome, Trouble) and policy.plaintext_retry(
                    target.host,
                    queued_long=queued_at_least(
                        envelope.arrival, walk.clock(), config.minimal_backoff_time
                    ),
                ):
                    # Rule 5.5: the same address again without TLS; no limit counts it.
                    walk.note(f"Warning: retrying {server.label} without TLS")
                    policy = replace(policy, plaintext=True)
                    outcome = yield from _connect(target, server, walk, policy)
                    walk.attempts.extend(policy.attempts)
                if isinstance(outcome, Trouble):
                    yield from _decide(walk, partial(walk.cache.release, slot))
                    # A certificate or AUTH failure happened over TLS: the result says so.
                    walk.tls_states[server.relay] = policy.tls_state
                    ledger.fail(outcome, server, left())
                    continue
                session = outcome
                yield from _decide(walk, partial(walk.cache.connected, slot, session))
            else:
                assert slot.connection is not None
                session = slot.connection
                session.server = server
                # A kept session joins this request: its secrets are this request's too (AU-18).
                session.redactor = walk.redactor
                default_policy(
                    config, unix=target.family == "unix", nexthop=dest.text, sender=envelope.sender
                ).prepare(session)
            session.server = server
            session.arrival = envelope.arrival
            attempts = replace(attempts, sessions=attempts.sessions + 1)
            kept = yield from run_transaction(
                session,
                envelope,
                commands,
                iter_chunks(message),
                info,
                ledger,
                left(),
                keep_open=keep_open,
            )
            walk.tls = session.tls or walk.tls
            walk.tls_states[server.relay] = session.tls_state
            saved: list[Key] = []
            if kept:
                saved = [_endpoint(walk, dest.text, target, envelope)]
                if walk.naming:
                    # Rule 9.5: only the first good session of a request under the next hop
                    # (which may be a fallback relay's), so reuse never skips a better MX.
                    saved[:0] = [_named(walk, envelope)]
                    walk.naming = False
            yield from _release(walk, slot, session, saved)
        if final_dest:
            break
    remaining = left()
    if remaining:
        ledger.finish(remaining, hard_is_configuration=last_was_fallback)


def _internal_error(ledger: Ledger, error: Exception) -> None:
    """An engine bug after the first request: defer whoever has no outcome yet.

    Never the peer's doing (its misbehaviour is classified) nor the caller's (every input is
    checked before the first request). Some mail may be gone by now, so raising would invite a
    retry that sends it twice; the recipients without an outcome are deferred instead, as
    Postfix's queue manager defers a message whose delivery agent died.
    """
    trouble = local_trouble("4.3.0", f"internal error: {type(error).__name__}: {error}")
    ledger.fail(trouble, None, ledger.pending, final=True)


def _with_tls(
    results: tuple[RecipientResult, ...], states: dict[str, TLSState | None]
) -> tuple[RecipientResult, ...]:
    """Each result with the TLS of the session that decided it."""
    return tuple(
        r if r.relay is None or (tls := states.get(r.relay)) == r.tls else replace(r, tls=tls)
        for r in results
    )


def _may_cache(hops: tuple[Hop, ...], config: ClientConfig) -> bool:
    """Whether sessions of this request may be kept (Postfix smtp_connect.c, rule 9.1).

    On demand: for the later batches of this request, and with a Mailer for its next
    deliveries (the backlog that Postfix's queue manager asks for it by); without it, only
    for a first next hop whose bare domain (or socket path) is in
    connection_cache_destinations.
    """
    if config.connection_cache_on_demand:
        return True
    return bool(hops) and config.connection_cache_destinations.matches(hops[0].destination.host)


def _hops(destination: str, config: ClientConfig, idna: IDNAEncoder | None) -> tuple[Hop, ...]:
    # The same for every delivery to this destination with this configuration: remembered
    # with it (a Hop is immutable).
    return config._derived(
        ("hops", destination, idna),
        lambda: plan_hops(
            parse_destinations(destination, lmtp=config.lmtp, config=config, idna=idna),
            config=config,
            idna=idna,
        ),
    )


def deliver(
    destination: str,
    envelope: Envelope,
    message: MessageSource,
    *,
    config: ClientConfig,
    clock: Callable[[], float],
    rng: Random,
    nonce: Callable[[], str] | None = None,
    myhostname: str = "",
    idna: IDNAEncoder | None = None,
    transcript: list[str] | None = None,
    wall_clock: Callable[[], float] | None = None,
    sts_cache: PolicyCache | None = None,
    cache: ConnectionCache[Session] | None = None,
    holder: object = None,
) -> Generator[IORequest, Any, DeliveryReport]:
    """Deliver `message` to every recipient of `envelope` via `destination` (smtp(8) syntax).

    Recipients go in batches of ``destination_recipient_limit``, each a new transaction;
    a session is kept between batches when rule 9 allows, and closed at the end.
    `myhostname` is the machine's name, for a `config` that leaves ``myhostname`` empty;
    `idna` encodes non-ASCII domains (`smtpproto.destinations.normalize_domain`);
    `transcript`, when given, is the list the dialogue is appended to as it happens;
    `wall_clock` gives seconds since the epoch (certificate dates at ``dane``; without it a
    DANE-TA chain never verifies); `sts_cache` keeps MTA-STS policies between deliveries
    (RFC 8461 5.1; without it each delivery fetches afresh). With a shared `cache` (a
    Mailer's), connections come from it and stay in it after the last batch, within its
    limits, and its decisions are yielded as `Shared` requests; `holder` names this delivery
    to it (see `abandon_delivery`; default: a new object).
    """
    if not isinstance(envelope, Envelope):
        raise LocalProtocolError(f"envelope: expected Envelope, got {type(envelope).__name__}")
    config = checked_config(config).with_hostname(myhostname)
    hops = _hops(destination, config, idna)
    walk = _walk(config, clock, rng, nonce, transcript, wall_clock, sts_cache, cache)
    walk.destination = destination.strip().lower()
    walk.holder = holder if holder is not None else object()
    ledger = Ledger(
        (r.address for r in envelope.recipients),
        clock=clock,
        status_filter=config.delivery_status_filter,
        redactor=walk.redactor,
    )
    prepared = prepare(message, config, note=walk.note)
    if prepared.info is None:
        return _refused(ledger, prepared.refusal, walk.transcript, start=0)
    info, message = prepared.info, prepared.source
    # Every address is checked before the first request: nothing raises once mail went out.
    commands = EnvelopeCommands.build(envelope, info, config)
    count = len(envelope.recipients)
    size = config.destination_recipient_limit
    batches = [tuple(range(i, min(i + size, count))) for i in range(0, count, size)]
    walk.caching = _may_cache(hops, config)
    try:
        for n, batch in enumerate(batches):
            yield from _walk_batch(
                walk,
                hops,
                envelope,
                commands,
                message,
                info,
                ledger,
                batch,
                keep_open=walk.caching and (walk.shared or n < len(batches) - 1),
            )
            yield from _back_off(walk, ledger)
    except Exception as error:
        _internal_error(ledger, error)
        # Whatever it held goes, without QUIT: its state is unknown.
        yield from _abandon(walk)
    if not walk.shared:
        yield from _shut(walk.cache, partial(_decide, walk))
    return DeliveryReport(
        recipients=_with_tls(ledger.results(), walk.tls_states),
        tls=walk.tls,
        destination_down=ledger.destination_down,
        transcript=tuple(walk.transcript),
        tls_attempts=tuple(walk.attempts),
    )


def _walk(
    config: ClientConfig,
    clock: Callable[[], float],
    rng: Random,
    nonce: Callable[[], str] | None,
    transcript: list[str] | None,
    wall_clock: Callable[[], float] | None,
    sts_cache: PolicyCache | None,
    cache: ConnectionCache[Session] | None = None,
) -> _Walk:
    if cache is not None and not isinstance(cache, ConnectionCache):
        raise LocalProtocolError(f"cache: expected ConnectionCache, got {type(cache).__name__}")
    shared = cache is not None
    if cache is None:
        cache = ConnectionCache(Limits.of(config, shared=False))
    walk = _Walk(config, clock, rng, nonce, config.lmtp, cache, shared, wall_clock=wall_clock)
    if transcript is not None:
        walk.transcript = transcript
    if sts_cache is not None:
        walk.sts_cache = sts_cache
    return walk


def open_session(
    destination: str,
    *,
    config: ClientConfig,
    clock: Callable[[], float],
    rng: Random,
    nonce: Callable[[], str] | None = None,
    myhostname: str = "",
    idna: IDNAEncoder | None = None,
    transcript: list[str] | None = None,
    wall_clock: Callable[[], float] | None = None,
    sts_cache: PolicyCache | None = None,
) -> Generator[IORequest, Any, Session]:
    """Connect and hand-shake (greeting, EHLO, STARTTLS, AUTH once) for several transactions.

    Servers are tried as ``deliver`` would; when none completes the handshake this raises a
    :class:`~smtpproto.SessionFailed` for the last server's outcome: `ConnectionFailed`,
    `TLSPolicyFailed` or `AuthenticationFailed`. The keywords are those of ``deliver``.
    """
    config = checked_config(config).with_hostname(myhostname)
    walk = _walk(config, clock, rng, nonce, transcript, wall_clock, sts_cache)
    last: SessionFailed | None = None
    # Rule 11.8: with sender-dependent logins, AUTH waits for the first transaction's sender.
    deferred_auth = config.sasl_auth_enable and config.sender_dependent_authentication

    def reopen() -> Generator[IORequest, Any, Session]:
        return open_session(
            destination, config=config, clock=clock, rng=rng, nonce=nonce, idna=idna,
            transcript=walk.transcript,
        )  # fmt: skip

    for hop in _hops(destination, config, idna):
        targets, trouble, _ = yield from _targets(hop.destination, walk)
        if trouble is not None:
            last = _failure(ConnectionFailed, trouble, walk.redactor)
        for target in targets:
            server = Server(target.host, target.address, target.port, True)
            policy = default_policy(
                config, unix=target.family == "unix", nexthop=hop.destination.text
            )
            policy.deferred_auth = deferred_auth
            steps = _Steps(policy, walk.redactor)
            outcome = yield from _connect(target, server, walk, steps)
            if isinstance(outcome, Session):
                outcome.pinned = True
                outcome.held = _Held(steps, reopen, auth_pending=deferred_auth)
                return outcome
            last = steps.failure(outcome)
            if outcome.final_server:
                # skip_4xx_greeting=no: this server's refusal ends the walk.
                raise last
    raise last or ConnectionFailed("4.3.0", "server unavailable or unable to receive mail")


def _failure(kind: type[SessionFailed], trouble: Trouble, redactor: Redactor) -> SessionFailed:
    # An exception's text is a string the library produces like any other (RP-24, AU-18).
    reply = None if trouble.reply is None else redactor.reply(trouble.reply)
    return kind(trouble.dsn, redactor.shown(trouble.diagnostic), reply)


@dataclass
class _Held:
    """What a held session keeps for ``transact``: its security steps, how to open a new
    connection in its place, and the sender its deferred AUTH was done for."""

    steps: _Steps
    reopen: Callable[[], Generator[IORequest, Any, Session]]
    auth_pending: bool = False
    sender: str | None = None


@dataclass
class _Steps:
    """The security policy of one connection, remembering which step ended the handshake,
    so that ``open_session`` raises the matching `SessionFailed`."""

    policy: SecurityPolicy
    redactor: Redactor
    failed: type[SessionFailed] = ConnectionFailed

    def prepare(self, session: Session) -> None:
        """`SecurityPolicy.prepare`."""
        self.policy.prepare(session)

    def refuse_wrapper(self) -> Trouble | None:
        """`SecurityPolicy.refuse_wrapper`; a refusal there is a TLS policy failure."""
        refusal = self.policy.refuse_wrapper()
        if refusal is not None:
            self.failed = TLSPolicyFailed
        return refusal

    def wrap(self, session: Session) -> IO:
        """`SecurityPolicy.wrap`; a failure there is a TLS policy failure."""
        trouble: Trouble | None = yield from self.policy.wrap(session)
        if trouble is not None:
            self.failed = TLSPolicyFailed
        return trouble

    def starttls(self, session: Session) -> IO:
        """`SecurityPolicy.starttls`; a failure there is a TLS policy failure."""
        trouble: Trouble | None = yield from self.policy.starttls(session)
        if trouble is not None:
            self.failed = TLSPolicyFailed
        return trouble

    def authenticate(self, session: Session) -> IO:
        """`SecurityPolicy.authenticate`; a failure there is an authentication failure."""
        trouble: Trouble | None = yield from self.policy.authenticate(session)
        if trouble is not None:
            self.failed = AuthenticationFailed
        return trouble

    def failure(self, trouble: Trouble) -> SessionFailed:
        """The exception for `trouble`, the outcome of this connection."""
        return _failure(self.failed, trouble, self.redactor)


def transact(
    session: Session, envelope: Envelope, message: MessageSource
) -> Generator[IORequest, Any, DeliveryReport]:
    """One transaction on an open session; what it cannot deliver there is deferred or bounced.

    The session is the final server (rule 14.7): soft failures defer. A session used before
    is first checked with RSET (rule 9.4); a dead one defers every recipient.
    """
    if not isinstance(envelope, Envelope):
        raise LocalProtocolError(f"envelope: expected Envelope, got {type(envelope).__name__}")
    if not isinstance(session, Session):
        raise LocalProtocolError(f"session: expected Session, got {type(session).__name__}")
    start = len(session.transcript)
    ledger = Ledger(
        (r.address for r in envelope.recipients),
        clock=session.clock,
        status_filter=session.config.delivery_status_filter,
        redactor=session.redactor,
    )
    prepared = prepare(message, session.config, note=session.note)
    if prepared.info is None:
        return _refused(ledger, prepared.refusal, session.transcript, start=start)
    info, message = prepared.info, prepared.source
    commands = EnvelopeCommands.for_session(session, envelope, info)
    if not session.server.final:
        session.server = replace(session.server, final=True)
    batch = tuple(range(len(envelope.recipients)))
    trouble = yield from _renew(session, envelope)
    if trouble is not None:
        ledger.fail(trouble, session.server)
        return _report(session, ledger, start)
    # Rule 9.4 probes a cached session with RSET so that a dead one can be swapped for
    # another server. A session the caller holds has no other server, and its last
    # transaction ended in a known state, so the probe would only cost a round trip: a dead
    # connection shows up on MAIL instead, with the same outcome (deferred).
    was_closed = session.closed
    usable = not was_closed and (
        session.uses == 0 or session.pinned or (yield from _probe(session))
    )
    if usable:
        session.arrival = envelope.arrival
        try:
            yield from run_transaction(
                session,
                envelope,
                commands,
                iter_chunks(message),
                info,
                ledger,
                batch,
                keep_open=True,
            )
        except Exception as error:
            _internal_error(ledger, error)
            session.forbidden = True  # its state is unknown: no more I/O, not even QUIT
            yield from session.close()
    else:
        ledger.fail(
            local_trouble(
                "4.4.2",
                f"lost connection with {session.server.label} while sending RSET"
                if not was_closed
                else f"connection with {session.server.label} was already closed",
                site=True,
            ),
            session.server,
        )
    return _report(session, ledger, start)


def _report(session: Session, ledger: Ledger, start: int) -> DeliveryReport:
    return DeliveryReport(
        recipients=_with_tls(ledger.results(), {session.server.relay: session.tls_state}),
        tls=session.tls,
        destination_down=ledger.destination_down,
        transcript=tuple(session.transcript[start:]),
    )


def _renew(session: Session, envelope: Envelope) -> IO:
    """Ready a held session for `envelope`'s transaction; returns None or the site Trouble.

    One that reached a reuse limit (rule 9.1), or whose login was made for a sender with
    other credentials (rule 11.8: a login happens once per connection, RFC 4954 4), is
    closed and replaced by a new connection to the same destination; a deferred AUTH is done
    now, for this transaction's sender.
    """
    held = session.held
    if not isinstance(held, _Held):
        return None
    policy = held.steps.policy
    if not session.closed and session.worn_out():
        yield from session.quit()
        session.retired = True
    elif not session.closed and held.sender not in (None, envelope.sender):
        try:
            same = policy.credentials_for(session.server.host, envelope.sender) == (
                policy.credentials_for(session.server.host, held.sender)
            )
        except LocalProtocolError:
            same = False
        if not same:
            yield from session.quit()
            session.retired = True
    if session.closed and session.retired:
        try:
            fresh = yield from held.reopen()
        except SessionFailed as failure:
            return Trouble(failure.dsn, failure.diagnostic, failure.reply, site=True)
        session.adopt(fresh)
        assert isinstance(session.held, _Held)
        held, policy = session.held, session.held.steps.policy
    if held.auth_pending and not session.closed:
        held.auth_pending = False
        held.sender = envelope.sender
        policy.sender, policy.deferred_auth = envelope.sender, False
        policy.prepare(session)  # this sender's credentials are secrets from now on (AU-18)
        trouble: Trouble | None = yield from policy.authenticate(session)
        if trouble is not None:
            # The login failed for this sender: the next transaction gets a new connection.
            yield from session.quit()
            session.retired = True
            return trouble
    return None


def _refused(
    ledger: Ledger, refusal: Refusal | None, transcript: list[str], *, start: int
) -> DeliveryReport:
    """The report of a message the content checks refused before anything was sent."""
    assert refusal is not None
    ledger.fail(local_trouble(refusal.dsn, refusal.text), None)
    return DeliveryReport(
        recipients=ledger.results(),
        tls=None,
        destination_down=False,
        transcript=tuple(transcript[start:]),
    )


def close_session(session: Session) -> Generator[IORequest, Any, None]:
    """QUIT (rule 9.7) and close; nothing that happens here affects any delivery."""
    if not isinstance(session, Session):
        raise LocalProtocolError(f"session: expected Session, got {type(session).__name__}")
    yield from session.quit()


def _shut(
    cache: ConnectionCache[Session],
    decide: Callable[[Callable[[float], Any]], Generator[IORequest, Any, Any]],
) -> IO:
    slots: tuple[Slot[Session], ...] = yield from decide(lambda now: cache.shut_down())
    yield from _evicted(slots)
    for slot in slots:
        yield from decide(partial(cache.release, slot))


def abandon_delivery(
    cache: ConnectionCache[Session], holder: object, now: float
) -> tuple[Channel, ...]:
    """For an adapter whose delivery (started with `holder`) was cancelled: take back from
    the shared `cache` all it held or waited for, and return the channels to close (no
    QUIT: the delivery is gone). A plain call: make it holding the cache's lock, then wake
    whom ``cache.woken()`` names."""
    channels = []
    for slot in cache.abandon(holder, now):
        session = slot.connection
        if session is not None and not session.closed:
            session.closed = session.forbidden = True
            channels.append(session.channel)
    return tuple(channels)


def close_cache(cache: ConnectionCache[Session]) -> Generator[IORequest, Any, None]:
    """Shut a shared `cache` down: QUIT (rule 9.7) and close every kept session now;
    sessions in use are closed by their deliveries, which the cache no longer lets keep
    them."""
    yield from _shut(cache, partial(_ask, cache))


def tend_cache(cache: ConnectionCache[Session]) -> Generator[IORequest, Any, None]:
    """Close the kept sessions of a shared `cache` once they idled
    ``connection_cache_time_limit`` or grew too old to reuse (rule 9.1), QUIT first
    (rule 9.7); returns once the cache is shut down and empty.

    Runs beside the deliveries, which wake it through their `Shared` requests; between
    expiries it waits (`Wait`).
    """
    while True:
        due = yield from _ask(cache, cache.due)
        if due is None:
            return
        if not isinstance(due, Evict):
            raise LocalProtocolError("Shared: the adapter must wait while the call says Wait")
        yield from _evicted(due.slots)
        for slot in due.slots:
            yield from _ask(cache, partial(cache.release, slot))
