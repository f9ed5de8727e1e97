"""The connection cache, the destination limits and back-off: Postfix's scache(8) and the
queue manager's concurrency control, as one sans-I/O object (rules 9.1-9.6).

A `ConnectionCache` answers the three questions of a sender at volume, each a plain call
that takes the time as an argument: may this delivery have a connection to its destination
now (``transport_destination_concurrency_limit`` per destination, ``default_process_limit``
deliveries at once in all), which kept connection may serve it (Postfix's cache keys,
rule 9.5, within the reuse limits of rule 9.1), and what must be closed, when (idle longer
than ``connection_cache_time_limit``, or to make room). A destination that failed as a
whole, or asked the client to slow down, is backed off for ``minimal_backoff_time``.

Every connection is a `Slot` from the moment it may be opened until it is closed, and it
counts against its destination all that time, so the destination limit bounds the sockets
that really exist: a connection being closed still counts until `release` says it is gone.
The total limit bounds the connections in use (being opened, or carrying a delivery), as
Postfix's process limit bounds its delivery agents while scache(8) keeps the idle
connections: an idle connection waits for its own destination, never closed for another's
(which would open and close connections in turn when the total is busy). A slot is in
exactly one state (`SlotState`); only an IDLE slot is ever handed out again, and only while
it is fit (`reuse_allowed`).

The engine (`smtpproto.engine.delivery`) makes these calls through `smtpproto.requests.Shared`
so that one cache can serve concurrent deliveries: the adapter holds the cache's lock around
each call and waits while the answer is `Wait`. ``deliver()`` on its own uses a private
cache without limits or back-off, which keeps a session between its batches (rule 9.1).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from .._errors import LocalProtocolError
from ..config import ClientConfig
from ..requests import Wait

__all__ = [
    "TENDING",
    "ConnectionCache",
    "Evict",
    "Key",
    "Limits",
    "Open",
    "Refuse",
    "Reuse",
    "Slot",
    "SlotState",
    "endpoint_key",
    "nexthop_key",
    "reuse_allowed",
]

C = TypeVar("C")

Key = tuple[str, ...]
"""A cache label: Postfix's smtp_key_prefix() fields, in a fixed order (rule 9.5)."""

# Postfix smtp_reuse.c SMTP_REUSE_KEY_DELIM_NA: a field that does not apply to this key.
_NA = "*"


def nexthop_key(*, service: str, nexthop: str, smtputf8: bool, sender: str | None = None) -> Key:
    """Rule 9.5, by next hop: service, the request's next hop, SMTPUTF8, and the sender when
    sender-dependent authentication is on (smtp.h SMTP_KEY_MASK_SCACHE_DEST_LABEL). Postfix
    puts a dummy TLS level here (smtp_tls_policy_dummy()): the policy was enforced when the
    session was made for this next hop."""
    return ("nexthop", service, nexthop.lower(), str(smtputf8), sender or _NA)


def endpoint_key(
    *,
    service: str,
    address: str,
    port: int | None,
    tls_level: str,
    smtputf8: bool,
    nexthop: str | None = None,
    hostname: str | None = None,
    sender: str | None = None,
) -> Key:
    """Rule 9.5, by server address: service, address, port, TLS level, SMTPUTF8, and the
    current next hop, host name and sender where SASL or TLS name checks make them matter
    (smtp.h SMTP_KEY_MASK_SCACHE_ENDP_LABEL); the caller passes those only then."""
    return (
        "endpoint",
        service,
        address,
        _NA if port is None else str(port),
        tls_level,
        str(smtputf8),
        _NA if nexthop is None else nexthop.lower(),
        _NA if hostname is None else hostname.lower(),
        sender or _NA,
    )


def reuse_allowed(
    started: float, reuses: int, now: float, *, reuse_time: float, reuse_count: int
) -> bool:
    """Rule 9.1: may a connection opened at `started` and reused `reuses` times be reused
    once more at `now`? Postfix counts reuses (smtp.h THIS_SESSION_IS_EXPIRED): a
    `reuse_count` of N allows N reuses, N + 1 transactions; 0 is no limit."""
    return now < started + reuse_time and not (0 < reuse_count <= reuses)


def _whole(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise LocalProtocolError(f"{name}: expected an int from 0, got {value!r}")
    return value


def _time(name: str, value: object, *, zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise LocalProtocolError(f"{name}: expected seconds, got {value!r}")
    if not (0 <= value < float("inf")) or (value == 0 and not zero):
        raise LocalProtocolError(f"{name}: expected a finite time above 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Limits:
    """What a cache allows: connections per destination and connections in use in all (0:
    no limit), how long an unused connection is kept (`idle`), the reuse limits of rule 9.1,
    and how long a destination is backed off after it failed or said to slow down (0:
    never)."""

    destination: int = 20
    total: int = 100
    idle: float = 2.0
    reuse_time: float = 300.0
    reuse_count: int = 0
    backoff: float = 0.0

    def __post_init__(self) -> None:
        _whole("destination", self.destination)
        _whole("total", self.total)
        _whole("reuse_count", self.reuse_count)
        _time("idle", self.idle, zero=False)
        _time("reuse_time", self.reuse_time, zero=False)
        _time("backoff", self.backoff, zero=True)

    @classmethod
    def of(cls, config: ClientConfig, *, shared: bool) -> Limits:
        """The limits `config` sets: a `shared` cache (a Mailer's) has the concurrency
        limits and back-off; a private one (one ``deliver()``) only the reuse limits."""
        if not isinstance(config, ClientConfig):
            raise LocalProtocolError(f"config: expected ClientConfig, got {type(config).__name__}")
        return cls(
            destination=config.destination_concurrency_limit if shared else 0,
            total=config.process_limit if shared else 0,
            idle=config.connection_cache_time_limit,
            reuse_time=config.connection_reuse_time_limit,
            reuse_count=config.connection_reuse_count_limit,
            backoff=config.minimal_backoff_time if shared else 0.0,
        )


class SlotState(enum.Enum):
    """Where a `Slot` is in its life; all but CLOSED count against the destination's limit,
    RESERVED and BUSY (in use) against the total."""

    RESERVED = "reserved"
    """`Open` granted it: the connection is being opened."""
    BUSY = "busy"
    """A delivery is using the connection."""
    IDLE = "idle"
    """Kept open in the cache, unused, under its keys."""
    CLOSING = "closing"
    """Handed to a caller to close (QUIT, then close); still open until released."""
    CLOSED = "closed"
    """Gone; no longer counted."""


class Slot(Generic[C]):
    """One connection of a cache: its destination, the connection itself (once open), its
    state, when it opened, how often it was reused, and since when it is idle."""

    __slots__ = (
        "connection",
        "destination",
        "holder",
        "idle_since",
        "keys",
        "reuses",
        "started",
        "state",
    )

    def __init__(self, destination: str) -> None:
        self.destination = destination
        self.holder: object = None
        self.connection: C | None = None
        self.state = SlotState.RESERVED
        self.started = 0.0
        self.reuses = 0
        self.idle_since = 0.0
        self.keys: tuple[Key, ...] = ()

    def __repr__(self) -> str:
        return f"<Slot {self.destination} {self.state.value} reuses={self.reuses}>"


@dataclass(frozen=True)
class Reuse(Generic[C]):
    """Use the kept connection of `slot` (after the RSET probe of rule 9.4)."""

    slot: Slot[C]


@dataclass(frozen=True)
class Open(Generic[C]):
    """Open a new connection for `slot`, then report it with `ConnectionCache.connected`."""

    slot: Slot[C]


@dataclass(frozen=True)
class Evict(Generic[C]):
    """Close these connections (QUIT, then close; they are CLOSING now) and release them,
    then ask again: they were past their limits, or in the way of the one asked for."""

    slots: tuple[Slot[C], ...]


@dataclass(frozen=True)
class Refuse:
    """The destination is backed off until `until`: defer without a connection, with the
    status and reason of the failure that backed it off."""

    until: float
    dsn: str
    reason: str


Decision = Reuse[C] | Open[C] | Evict[C] | Wait | Refuse


TENDING = "tending"
"""The `Wait.on` of the background closer (`ConnectionCache.due`): it wakes when a connection
is kept (a new expiry) or the cache shuts down."""


@dataclass
class _Waiting(Generic[C]):
    """A delivery that waits for a connection: what it asked for, and what it was granted
    meanwhile (`ConnectionCache.lease` hands it over at its next call)."""

    destination: str
    keys: tuple[Key, ...]
    order: int
    granted: Decision[C] | None = None


class ConnectionCache(Generic[C]):
    """Postfix's connection cache and destination limits for one process (module docstring).

    Every method takes the current time where it matters and never reads a clock; misuse
    (releasing a slot twice, reporting a slot that was not being opened) is a
    `LocalProtocolError`.

    Deliveries that must wait are queued in arrival order, each under its `holder` (any
    object naming one delivery); whatever frees a connection or room serves them at once,
    first come first served within each destination, and names them in `woken`, so that
    an adapter wakes exactly those (and a delivery that arrives later cannot take what a
    waiting one was given). `abandon` takes back everything a holder had, for a delivery
    that was cancelled.
    """

    def __init__(self, limits: Limits) -> None:
        if not isinstance(limits, Limits):
            raise LocalProtocolError(f"limits: expected Limits, got {type(limits).__name__}")
        self.limits = limits
        self._count: dict[str, int] = {}
        self._total = 0
        self._in_use = 0
        self._idle: dict[Slot[C], None] = {}
        """IDLE slots, least recently used first."""
        self._by_key: dict[Key, list[Slot[C]]] = {}
        """Key -> IDLE slots saved under it, most recently used last."""
        self._backoff: dict[str, Refuse] = {}
        self._waiting: dict[object, _Waiting[C]] = {}
        """Holder -> what it waits for, or was granted and has not collected."""
        self._queues: dict[str, deque[object]] = {}
        """Destination -> the holders waiting for it and not served yet, in arrival order."""
        self._arrivals = 0
        self._held: dict[object, set[Slot[C]]] = {}
        """Holder -> the slots it was given and has not released."""
        self._woken: list[object] = []
        self._tending = False
        self._shut = False

    # -- what callers may look at ---------------------------------------------------------

    def count(self, destination: str | None = None) -> int:
        """Connections that exist or are being opened: to `destination`, or in all."""
        return self._total if destination is None else self._count.get(destination, 0)

    def in_use(self) -> int:
        """Connections being opened or carrying a delivery (RESERVED or BUSY), in all."""
        return self._in_use

    def idle(self) -> tuple[Slot[C], ...]:
        """The kept, unused connections, least recently used first."""
        return tuple(self._idle)

    def waiting(self) -> int:
        """Deliveries waiting for a connection."""
        return sum(len(queue) for queue in self._queues.values())

    @property
    def is_shut(self) -> bool:
        """True once `shut_down` ran: nothing is kept any more."""
        return self._shut

    def backed_off(self, destination: str, now: float) -> Refuse | None:
        """The back-off of `destination` in force at `now`, if any."""
        refusal = self._backoff.get(destination)
        return refusal if refusal is not None and now < refusal.until else None

    def woken(self) -> tuple[object, ...]:
        """The `Wait.on` values whose waiters the calls since the last `woken` served (a
        holder, or `TENDING`): wake those, and only those."""
        woken, self._woken = tuple(self._woken), []
        return woken

    # -- decisions ------------------------------------------------------------------------

    def lease(
        self,
        destination: str,
        keys: Sequence[Key],
        now: float,
        *,
        closed: Iterable[Slot[C]] = (),
        holder: object = None,
    ) -> Decision[C]:
        """A connection for one delivery attempt to `destination`: a kept one found under
        one of `keys` (in order), else room for a new one, else what to close first, else
        ``Wait(on=holder)``, queued. `closed` are slots of an earlier `Evict` that the caller
        has closed since. A `holder` that waited gets what it was granted meanwhile.
        """
        for slot in closed:
            self.release(slot, now)
        waiting = self._waiting.get(holder) if holder is not None else None
        if waiting is not None and waiting.granted is not None:
            del self._waiting[holder]
            return waiting.granted
        decision = self._decide(destination, keys, now, holder)
        if not isinstance(decision, Wait):
            if waiting is not None:
                self._unqueue(holder, waiting)
            return decision
        if holder is None:
            return decision
        if waiting is None:
            self._arrivals += 1
            self._waiting[holder] = _Waiting(destination, tuple(keys), self._arrivals)
            self._queues.setdefault(destination, deque()).append(holder)
        return Wait(on=holder)

    def connected(self, slot: Slot[C], connection: C, now: float) -> None:
        """The connection of an `Open` slot is up (and through its handshake) at `now`."""
        if slot.state is not SlotState.RESERVED:
            raise LocalProtocolError(f"slot: expected a slot being opened, got {slot!r}")
        slot.connection = connection
        slot.started = now
        slot.state = SlotState.BUSY

    def release(self, slot: Slot[C], now: float, keys: Sequence[Key] | None = None) -> bool:
        """The caller is done with `slot`. Without `keys` its connection is closed (or was
        never opened); with them a BUSY connection is offered for reuse under `keys`:
        returns True when the cache keeps it, False when the caller must close it (QUIT,
        then close) and release it again without keys."""
        if slot.state is SlotState.CLOSED or slot.state is SlotState.IDLE:
            raise LocalProtocolError(f"slot: not held by a caller: {slot!r}")
        if keys is None:
            self._drop(slot)
            self._serve(now)
            return False
        if slot.state is not SlotState.BUSY:
            raise LocalProtocolError(f"slot: only a connection in use can be kept: {slot!r}")
        limits = self.limits
        fit = reuse_allowed(
            slot.started,
            slot.reuses,
            now,
            reuse_time=limits.reuse_time,
            reuse_count=limits.reuse_count,
        )
        self._in_use -= 1
        if self._shut or not keys or not fit:
            slot.state = SlotState.CLOSING
            self._serve(now)
            return False
        self._unhold(slot)
        slot.state = SlotState.IDLE
        slot.idle_since = now
        slot.keys = tuple(dict.fromkeys(keys))
        self._idle[slot] = None
        for key in slot.keys:
            self._by_key.setdefault(key, []).append(slot)
        if self._tending:
            self._tending = False
            self._woken.append(TENDING)
        self._serve(now)
        return True

    def back_off(self, destination: str, now: float, dsn: str, reason: str) -> None:
        """`destination` failed as a whole or said to slow down: refuse it new connections
        for ``Limits.backoff`` (not again while it is backed off already); its waiting
        deliveries get the refusal now."""
        if self.limits.backoff <= 0 or self.backed_off(destination, now) is not None:
            return
        refusal = Refuse(now + self.limits.backoff, dsn, reason)
        self._backoff[destination] = refusal
        for holder in self._queues.pop(destination, ()):
            self._waiting[holder].granted = refusal
            self._woken.append(holder)

    def abandon(self, holder: object, now: float) -> tuple[Slot[C], ...]:
        """The delivery `holder` names ended without releasing what it had (cancelled):
        it waits no more, and every slot it held or was granted is dropped. Returns the
        slots whose connections are still open, for the caller to close."""
        waiting = self._waiting.get(holder)
        if waiting is not None:
            self._unqueue(holder, waiting)
        dropped = []
        for slot in self._held.pop(holder, set()):
            if slot.state is not SlotState.CLOSED:
                self._drop(slot)
                if slot.connection is not None:
                    dropped.append(slot)
        self._serve(now)
        return tuple(dropped)

    def due(self, now: float) -> Evict[C] | Wait | None:
        """For the caller that closes idle connections in the background: what to close
        now, else when to look again (``Wait(until, on=TENDING)``); ``None`` once shut and
        nothing is kept."""
        if self._shut and not self._idle:
            return None
        stale = tuple(s for s in self._idle if not self._fit(s, now))
        if stale:
            return self._evict(stale)
        ends = [self._end(s) for s in self._idle]
        self._tending = True
        return Wait(min(ends) if ends else None, on=TENDING)

    def shut_down(self) -> tuple[Slot[C], ...]:
        """Keep nothing from now on; returns the kept connections, now CLOSING, for the
        caller to close and release. Connections in use are refused at their release."""
        self._shut = True
        if self._tending:
            self._tending = False
            self._woken.append(TENDING)
        return self._evict(tuple(self._idle)).slots

    # -- internals ------------------------------------------------------------------------

    def _decide(
        self, destination: str, keys: Sequence[Key], now: float, holder: object
    ) -> Decision[C]:
        refusal = self.backed_off(destination, now)
        if refusal is not None:
            return refusal
        candidates = self._candidates(keys)
        stale = tuple(s for s in candidates if not self._fit(s, now))
        if stale:
            return self._evict(stale, holder)
        if self.limits.total and self._in_use >= self.limits.total:
            return Wait()
        for slot in candidates:
            if slot.destination == destination or self._room(destination):
                self._unindex(slot)
                self._move(slot, destination)
                slot.state = SlotState.BUSY
                slot.reuses += 1
                self._in_use += 1
                self._hold(slot, holder)
                return Reuse(slot)
        if self._room(destination):
            new: Slot[C] = Slot(destination)
            self._count[destination] = self._count.get(destination, 0) + 1
            self._total += 1
            self._in_use += 1
            self._hold(new, holder)
            return Open(new)
        # At its limit with no kept connection that fits: its least recently used idle one
        # (another server's, or under other keys) makes room.
        victim = next((s for s in self._idle if s.destination == destination), None)
        if victim is not None:
            return self._evict((victim,), holder)
        return Wait()

    def _serve(self, now: float) -> None:
        """Give what is free to the waiting deliveries, first come first served: the
        destinations in the order their first waiters came, each until one must wait (the
        others want the same)."""
        heads = sorted((self._waiting[q[0]].order, d) for d, q in self._queues.items())
        for _, destination in heads:
            queue = self._queues[destination]
            while queue:
                if self.limits.total and self._in_use >= self.limits.total:
                    return
                holder = queue[0]
                waiting = self._waiting[holder]
                decision = self._decide(destination, waiting.keys, now, holder)
                if isinstance(decision, Wait):
                    break
                queue.popleft()
                waiting.granted = decision
                self._woken.append(holder)
            if not queue:
                del self._queues[destination]

    def _unqueue(self, holder: object, waiting: _Waiting[C]) -> None:
        del self._waiting[holder]
        queue = self._queues.get(waiting.destination)
        if queue is not None and waiting.granted is None:
            queue.remove(holder)
            if not queue:
                del self._queues[waiting.destination]

    def _hold(self, slot: Slot[C], holder: object) -> None:
        if holder is not None:
            slot.holder = holder
            self._held.setdefault(holder, set()).add(slot)

    def _unhold(self, slot: Slot[C]) -> None:
        holder, slot.holder = slot.holder, None
        if holder is not None:
            held = self._held.get(holder)
            if held is not None:
                held.discard(slot)
                if not held:
                    del self._held[holder]

    def _end(self, slot: Slot[C]) -> float:
        # The first moment `slot` is no longer fit: idle too long, or too old to reuse.
        return min(slot.idle_since + self.limits.idle, slot.started + self.limits.reuse_time)

    def _fit(self, slot: Slot[C], now: float) -> bool:
        limits = self.limits
        return now < self._end(slot) and reuse_allowed(
            slot.started,
            slot.reuses,
            now,
            reuse_time=limits.reuse_time,
            reuse_count=limits.reuse_count,
        )

    def _candidates(self, keys: Sequence[Key]) -> list[Slot[C]]:
        found: dict[Slot[C], None] = {}
        for key in keys:
            for slot in reversed(self._by_key.get(key, ())):
                found.setdefault(slot)
        return list(found)

    def _room(self, destination: str) -> bool:
        limit = self.limits.destination
        return limit == 0 or self._count.get(destination, 0) < limit

    def _move(self, slot: Slot[C], destination: str) -> None:
        if slot.destination != destination:
            self._uncount(slot.destination)
            self._count[destination] = self._count.get(destination, 0) + 1
            slot.destination = destination

    def _uncount(self, destination: str) -> None:
        left = self._count[destination] - 1
        if left:
            self._count[destination] = left
        else:
            del self._count[destination]

    def _unindex(self, slot: Slot[C]) -> None:
        del self._idle[slot]
        for key in slot.keys:
            saved = self._by_key[key]
            saved.remove(slot)
            if not saved:
                del self._by_key[key]
        slot.keys = ()

    def _evict(self, slots: tuple[Slot[C], ...], holder: object = None) -> Evict[C]:
        for slot in slots:
            self._unindex(slot)
            slot.state = SlotState.CLOSING
            self._hold(slot, holder)
        return Evict(slots)

    def _drop(self, slot: Slot[C]) -> None:
        if slot.state is SlotState.CLOSED:
            raise LocalProtocolError(f"slot: released twice: {slot!r}")
        if slot.state is SlotState.IDLE:
            self._unindex(slot)
        if slot.state in (SlotState.RESERVED, SlotState.BUSY):
            self._in_use -= 1
        self._unhold(slot)
        slot.state = SlotState.CLOSED
        self._uncount(slot.destination)
        self._total -= 1
