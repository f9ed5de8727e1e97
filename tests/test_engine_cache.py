"""The connection cache (smtpproto.engine.cache): keys, limits, reuse limits, back-off.

Unit tests for each decision, then a hypothesis state machine that drives the cache with
random arrivals, connection failures, transactions, evictions, background expiry and clock
jumps, holding it to its three promises at every step: never more connections to a
destination than its limit (nor more in use in all than the total), never a connection
handed out again past its reuse limits (rule 9.1), never one that failed handed out again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from smtpproto._errors import LocalProtocolError
from smtpproto.config import ClientConfig
from smtpproto.engine.cache import (
    TENDING,
    ConnectionCache,
    Evict,
    Key,
    Limits,
    Open,
    Refuse,
    Reuse,
    Slot,
    SlotState,
    endpoint_key,
    nexthop_key,
    reuse_allowed,
)
from smtpproto.requests import Wait


@dataclass(eq=False)
class Conn:
    """A stand-in connection: the cache never looks inside one."""

    name: str
    failed: bool = False
    closed: bool = False


def key(address: str) -> Key:
    return endpoint_key(service="smtp", address=address, port=25, tls_level="may", smtputf8=False)


def opened(cache: ConnectionCache[Conn], destination: str, now: float, name: str) -> Slot[Conn]:
    decision = cache.lease(destination, [key(name)], now)
    assert isinstance(decision, Open)
    cache.connected(decision.slot, Conn(name), now)
    return decision.slot


# -- keys and rule 9.1 -----------------------------------------------------------------------


def test_endpoint_keys_differ_by_tls_level_port_and_bound_next_hop() -> None:
    # rule 9.5: a plaintext session never serves a TLS-level request, nor one port another
    base = {"service": "smtp", "address": "192.0.2.1", "port": 25, "smtputf8": False}
    may = endpoint_key(tls_level="may", **base)  # type: ignore[arg-type]
    assert may != endpoint_key(tls_level="encrypt", **base)  # type: ignore[arg-type]
    assert may != endpoint_key(**{**base, "port": 587}, tls_level="may")  # type: ignore[arg-type]
    bound = endpoint_key(tls_level="verify", nexthop="example.com", **base)  # type: ignore[arg-type]
    assert bound != endpoint_key(tls_level="verify", nexthop="example.net", **base)  # type: ignore[arg-type]


def test_nexthop_key_is_case_insensitive_and_per_sender_only_when_asked() -> None:
    a = nexthop_key(service="smtp", nexthop="Example.COM", smtputf8=False)
    assert a == nexthop_key(service="smtp", nexthop="example.com", smtputf8=False)
    assert a != nexthop_key(service="smtp", nexthop="example.com", smtputf8=False, sender="x@y")
    assert a != nexthop_key(service="lmtp", nexthop="example.com", smtputf8=False)


@pytest.mark.parametrize(
    ("reuses", "count", "allowed"),
    [(0, 0, True), (9, 0, True), (0, 1, True), (1, 1, False), (2, 3, True), (3, 3, False)],
)
def test_reuse_count_limit_allows_that_many_reuses(reuses: int, count: int, allowed: bool) -> None:
    # rule 9.1, smtp.h THIS_SESSION_IS_EXPIRED: a limit of N is N reuses, N + 1 transactions
    assert reuse_allowed(0.0, reuses, 1.0, reuse_time=300, reuse_count=count) is allowed


def test_reuse_time_limit_counts_from_the_connection_time() -> None:
    assert reuse_allowed(10.0, 0, 309.9, reuse_time=300, reuse_count=0)
    assert not reuse_allowed(10.0, 0, 310.0, reuse_time=300, reuse_count=0)


def test_limits_from_config_private_and_shared() -> None:
    config = ClientConfig(
        destination_concurrency_limit=3,
        process_limit=7,
        connection_cache_time_limit=5,
        minimal_backoff_time=60,
    )
    assert Limits.of(config, shared=True) == Limits(3, 7, 5.0, 300.0, 0, 60.0)
    assert Limits.of(config, shared=False) == Limits(0, 0, 5.0, 300.0, 0, 0.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"destination": -1},
        {"total": True},
        {"idle": 0},
        {"reuse_time": float("inf")},
        {"backoff": -1},
    ],
)
def test_limits_refuse_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError, match=next(iter(bad))):
        Limits(**bad)  # type: ignore[arg-type]


# -- decisions -------------------------------------------------------------------------------


def test_a_kept_connection_is_reused_under_its_key_only() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits())
    slot = opened(cache, "a.example", 0.0, "192.0.2.1")
    assert cache.release(slot, 1.0, [key("192.0.2.1")])
    assert isinstance(cache.lease("a.example", [key("192.0.2.9")], 1.5), Open)
    again = cache.lease("a.example", [key("192.0.2.1")], 1.5)
    assert isinstance(again, Reuse) and again.slot is slot
    assert slot.state is SlotState.BUSY and slot.reuses == 1


def test_the_most_recently_kept_connection_serves_first() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits())
    first = opened(cache, "a.example", 0.0, "x")
    second = opened(cache, "a.example", 0.0, "x")
    cache.release(first, 0.1, [key("x")])
    cache.release(second, 0.2, [key("x")])
    decision = cache.lease("a.example", [key("x")], 0.3)
    assert isinstance(decision, Reuse) and decision.slot is second


def test_a_connection_idle_too_long_is_evicted_not_reused() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(idle=2.0))
    slot = opened(cache, "a.example", 0.0, "x")
    cache.release(slot, 1.0, [key("x")])
    decision = cache.lease("a.example", [key("x")], 3.0)
    assert isinstance(decision, Evict) and decision.slots == (slot,)
    assert slot.state is SlotState.CLOSING and cache.count() == 1  # open until released
    assert isinstance(cache.lease("a.example", [key("x")], 3.0, closed=decision.slots), Open)
    assert slot.state is SlotState.CLOSED


def test_a_connection_past_its_reuse_count_is_not_kept() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(reuse_count=1))
    slot = opened(cache, "a.example", 0.0, "x")
    assert cache.release(slot, 0.1, [key("x")])
    assert isinstance(cache.lease("a.example", [key("x")], 0.2), Reuse)
    assert not cache.release(slot, 0.3, [key("x")])  # the one reuse is spent: close it
    assert slot.state is SlotState.CLOSING


def test_at_the_destination_limit_a_new_connection_waits() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(destination=2))
    opened(cache, "a.example", 0.0, "x")
    opened(cache, "a.example", 0.0, "y")
    assert cache.lease("a.example", [key("z")], 0.0) == Wait()
    assert isinstance(cache.lease("b.example", [key("z")], 0.0), Open)


def test_at_the_destination_limit_its_own_idle_connection_makes_room() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(destination=1))
    slot = opened(cache, "a.example", 0.0, "mx1")
    cache.release(slot, 0.1, [key("mx1")])
    decision = cache.lease("a.example", [key("mx2")], 0.2)
    assert isinstance(decision, Evict) and decision.slots == (slot,)


def test_the_total_limit_counts_connections_in_use_not_idle_ones() -> None:
    # Postfix's process limit bounds delivery agents; scache's idle connections wait for
    # their own destination instead of being closed for another's
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(total=2))
    a = opened(cache, "a.example", 0.0, "a")
    b = opened(cache, "b.example", 0.0, "b")
    assert cache.lease("c.example", [key("c")], 0.1) == Wait()
    assert cache.lease("a.example", [key("a")], 0.1) == Wait()  # a reuse is a delivery too
    cache.release(a, 0.2, [key("a")])
    assert isinstance(cache.lease("c.example", [key("c")], 0.3), Open)
    assert (cache.in_use(), cache.count()) == (2, 3) and a.state is SlotState.IDLE
    cache.release(b, 0.4)
    decision = cache.lease("a.example", [key("a")], 0.5)
    assert isinstance(decision, Reuse) and decision.slot is a and cache.in_use() == 2


def test_a_connection_moves_to_the_destination_that_reuses_it_within_its_limit() -> None:
    # rule 9.5: by endpoint, a session serves another next hop with the same server
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(destination=1))
    slot = opened(cache, "a.example", 0.0, "shared-mx")
    cache.release(slot, 0.1, [key("shared-mx")])
    decision = cache.lease("b.example", [key("shared-mx")], 0.2)
    assert isinstance(decision, Reuse) and slot.destination == "b.example"
    assert (cache.count("a.example"), cache.count("b.example")) == (0, 1)


def test_back_off_refuses_the_destination_until_it_ends_and_is_not_extended() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(backoff=10.0))
    cache.back_off("a.example", 5.0, "4.7.0", "host said: 421 slow down")
    refused = cache.lease("a.example", [key("x")], 6.0)
    assert refused == Refuse(15.0, "4.7.0", "host said: 421 slow down")
    cache.back_off("a.example", 9.0, "4.4.1", "again")
    assert cache.backed_off("a.example", 14.9) == refused
    assert isinstance(cache.lease("a.example", [key("x")], 15.0), Open)
    assert isinstance(cache.lease("b.example", [key("x")], 6.0), Open)


def test_without_a_back_off_time_nothing_is_backed_off() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(backoff=0))
    cache.back_off("a.example", 5.0, "4.7.0", "slow down")
    assert cache.backed_off("a.example", 5.0) is None


def test_due_closes_expired_connections_and_names_the_next_expiry() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(idle=2.0, reuse_time=100.0))
    a = opened(cache, "a.example", 0.0, "a")
    b = opened(cache, "a.example", 0.0, "b")
    cache.release(a, 1.0, [key("a")])
    cache.release(b, 1.5, [key("b")])
    assert cache.due(2.0) == Wait(3.0, on=TENDING)
    decision = cache.due(3.0)
    assert isinstance(decision, Evict) and decision.slots == (a,)
    assert cache.due(3.0) == Wait(3.5, on=TENDING)
    cache.release(a, 3.0)
    assert cache.count() == 1


def test_shut_down_hands_back_the_idle_and_refuses_to_keep_the_busy() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits())
    idle = opened(cache, "a.example", 0.0, "a")
    busy = opened(cache, "a.example", 0.0, "b")
    cache.release(idle, 0.1, [key("a")])
    assert cache.due(0.2) == Wait(2.1, on=TENDING)
    assert cache.woken() == ()
    assert cache.shut_down() == (idle,)
    assert cache.woken() == (TENDING,)  # the background closer learns of it
    assert not cache.release(busy, 0.3, [key("b")])
    cache.release(idle, 0.4)
    cache.release(busy, 0.4)
    assert cache.due(0.5) is None and cache.count() == 0 and cache.is_shut


def test_waiting_deliveries_are_served_first_come_first_served_and_named() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(destination=1))
    busy = opened(cache, "a.example", 0.0, "x")
    first, second = object(), object()
    assert cache.lease("a.example", [key("x")], 0.1, holder=first) == Wait(on=first)
    assert cache.lease("a.example", [key("x")], 0.2, holder=second) == Wait(on=second)
    assert cache.waiting() == 2 and cache.woken() == ()
    assert cache.release(busy, 0.3, [key("x")])
    # Kept, and handed to the first waiter at once: a newcomer cannot take it.
    assert cache.woken() == (first,)
    later = object()
    assert cache.lease("a.example", [key("x")], 0.4, holder=later) == Wait(on=later)
    granted = cache.lease("a.example", [key("x")], 0.5, holder=first)
    assert isinstance(granted, Reuse) and granted.slot is busy and cache.waiting() == 2
    cache.release(busy, 0.6)
    assert cache.woken() == (second,)
    assert isinstance(cache.lease("a.example", [key("x")], 0.7, holder=second), Open)


def test_a_back_off_refuses_the_waiting_deliveries_at_once() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(destination=1, backoff=60))
    opened(cache, "a.example", 0.0, "x")
    holder = object()
    assert isinstance(cache.lease("a.example", [key("x")], 0.1, holder=holder), Wait)
    cache.back_off("a.example", 0.2, "4.7.0", "slow down")
    assert cache.woken() == (holder,)
    assert cache.lease("a.example", [key("x")], 0.3, holder=holder) == Refuse(
        60.2, "4.7.0", "slow down"
    )


def test_abandon_takes_back_what_a_cancelled_delivery_held_and_serves_the_next() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits(destination=1))
    gone, next_one = object(), object()
    decision = cache.lease("a.example", [key("x")], 0.0, holder=gone)
    assert isinstance(decision, Open)
    cache.connected(decision.slot, Conn("x"), 0.0)
    assert isinstance(cache.lease("a.example", [key("x")], 0.1, holder=next_one), Wait)
    assert cache.abandon(gone, 0.2) == (decision.slot,)  # still open: the caller closes it
    assert decision.slot.state is SlotState.CLOSED and cache.woken() == (next_one,)
    assert isinstance(cache.lease("a.example", [key("x")], 0.3, holder=next_one), Open)
    assert cache.abandon(object(), 0.4) == ()


def test_misuse_is_a_local_protocol_error() -> None:
    cache: ConnectionCache[Conn] = ConnectionCache(Limits())
    slot = opened(cache, "a.example", 0.0, "a")
    with pytest.raises(LocalProtocolError, match="being opened"):
        cache.connected(slot, Conn("again"), 0.0)
    cache.release(slot, 0.1)
    with pytest.raises(LocalProtocolError, match="not held"):
        cache.release(slot, 0.2)
    with pytest.raises(LocalProtocolError, match="limits"):
        ConnectionCache(object())  # type: ignore[arg-type]


# -- the model, under random traffic ---------------------------------------------------------

DESTINATIONS = ("a.example", "b.example", "c.example")
# Two destinations share a server, so kept connections move between them (rule 9.5).
SERVERS = {"a.example": ("mx-a", "mx-shared"), "b.example": ("mx-shared",), "c.example": ("mx-c",)}


class CacheModel(RuleBasedStateMachine):
    """Random traffic against one cache; the test keeps its own books of what exists."""

    def __init__(self) -> None:
        super().__init__()
        self.cache: ConnectionCache[Conn] | None = None
        self.limits = Limits()
        self.now = 0.0
        self.live: dict[Slot[Conn], str] = {}
        """Every slot not yet released as closed -> the server it is (or will be) for."""
        self.opening: list[Slot[Conn]] = []
        self.busy: list[Slot[Conn]] = []
        self.closing: list[Slot[Conn]] = []
        self.waiters: dict[object, tuple[str, list[Key]]] = {}
        """Holders told to wait, with what they asked for."""
        self.named: set[object] = set()
        """Waiting holders the cache has named in `woken`."""

    def ready(self) -> bool:
        return self.cache is not None

    def the_cache(self) -> ConnectionCache[Conn]:
        assert self.cache is not None
        return self.cache

    @precondition(lambda self: not self.ready())
    @rule(
        limits=st.builds(
            Limits,
            destination=st.integers(0, 4),
            total=st.integers(0, 8),
            idle=st.floats(1, 20),
            reuse_time=st.floats(2, 60),
            reuse_count=st.integers(0, 3),
            backoff=st.sampled_from([0.0, 0.0, 0.0, 5.0]),
        )
    )
    def start(self, limits: Limits) -> None:
        self.cache = ConnectionCache(limits)
        self.limits = limits

    def _keys(self, destination: str, server: str, by_nexthop: bool) -> list[Key]:
        keys = [key(server)]
        if by_nexthop:
            keys.insert(0, nexthop_key(service="smtp", nexthop=destination, smtputf8=False))
        return keys

    @precondition(ready)
    @rule(
        destination=st.sampled_from(DESTINATIONS), by_nexthop=st.booleans(), pick=st.integers(0, 1)
    )
    def arrive(self, destination: str, by_nexthop: bool, pick: int) -> None:
        names = SERVERS[destination]
        keys = self._keys(destination, names[pick % len(names)], by_nexthop)
        self._lease(object(), destination, keys)

    @precondition(lambda self: self.ready() and self.waiters)
    @rule(pick=st.integers(0, 99))
    def resume(self, pick: int) -> None:
        # A waiting delivery calls again without being woken (a timeout): it waits on.
        holder = list(self.waiters)[pick % len(self.waiters)]
        destination, keys = self.waiters[holder]
        self._lease(holder, destination, keys)

    @precondition(lambda self: self.ready() and (self.waiters or self.busy or self.opening))
    @rule(pick=st.integers(0, 99))
    def cancel(self, pick: int) -> None:
        # A delivery is cancelled: waiting, opening or in use, with what it held.
        holders = [*self.waiters, *(s.holder for s in (*self.opening, *self.busy))]
        holder = holders[pick % len(holders)]
        dropped = self.the_cache().abandon(holder, self.now)
        self.waiters.pop(holder, None)
        self.named.discard(holder)
        self._note_woken()
        for slot in list(self.live):
            if slot.holder is None and slot.state is SlotState.CLOSED:
                del self.live[slot]
                for pile in (self.opening, self.busy, self.closing):
                    if slot in pile:
                        pile.remove(slot)
        for slot in dropped:
            assert slot.connection is not None and slot.state is SlotState.CLOSED
            slot.connection.closed = True

    def _note_woken(self) -> None:
        # A delivery the cache names calls again at once (as an adapter wakes it): it must
        # be served, with what the cache set aside for it.
        woken = [w for w in self.the_cache().woken() if w is not TENDING]
        for holder in woken:
            assert holder in self.waiters, "woken names only waiting deliveries"
            self.named.add(holder)
        for holder in woken:
            if holder in self.waiters:
                destination, keys = self.waiters[holder]
                self._lease(holder, destination, keys)

    def _lease(self, holder: object, destination: str, keys: list[Key]) -> None:
        cache = self.the_cache()
        server = keys[-1][2]
        before = {s: s.state for s in self.live}
        was_ready = holder in self.named
        decision = cache.lease(destination, keys, self.now, holder=holder)
        self._note_woken()
        limits = self.limits
        if not isinstance(decision, Wait):
            self.waiters.pop(holder, None)
            self.named.discard(holder)
        else:
            assert not was_ready, "a delivery the cache woke was not served"
            self.waiters[holder] = (destination, keys)
        if isinstance(decision, Reuse):
            slot = decision.slot
            granted = was_ready and before.get(slot) is SlotState.BUSY
            assert before.get(slot) is SlotState.IDLE or granted, "only a kept one is reused"
            conn = slot.connection
            assert conn is not None and not conn.failed and not conn.closed
            assert self.now < slot.started + limits.reuse_time, "reused past its time limit"
            assert limits.reuse_count == 0 or slot.reuses <= limits.reuse_count
            assert self.now < slot.idle_since + limits.idle, "reused after idling too long"
            self.busy.append(slot)
        elif isinstance(decision, Open):
            self.live[decision.slot] = server
            self.opening.append(decision.slot)
        elif isinstance(decision, Evict):
            for slot in decision.slots:
                assert slot.state is SlotState.CLOSING
                assert before.get(slot) is SlotState.IDLE or was_ready
            self.closing.extend(decision.slots)
        elif isinstance(decision, Refuse):
            assert limits.backoff > 0 and self.now < decision.until
        else:
            assert decision == Wait(on=holder)
            # Waiting is right only at the total limit of connections in use, or at the
            # destination's limit with no idle connection of its own to close.
            idle = [s for s, state in before.items() if state is SlotState.IDLE]
            if not (limits.total and cache.in_use() >= limits.total):
                assert limits.destination and cache.count(destination) >= limits.destination
                assert not [s for s in idle if s.destination == destination]

    @precondition(ready)
    @rule(
        destination=st.sampled_from(DESTINATIONS), by_nexthop=st.booleans(), pick=st.integers(0, 1)
    )
    def deliver(self, destination: str, by_nexthop: bool, pick: int) -> None:
        # A whole delivery in one step (lease, connect, transaction, keep), so that kept
        # connections pile up between the interleaved steps of the other rules.
        self.arrive(destination, by_nexthop, pick)
        if self.opening and self.opening[-1].destination == destination:
            self.connect(len(self.opening) - 1, works=True)
        if self.busy and self.busy[-1].destination == destination:
            self.finish(len(self.busy) - 1, keep=True, by_nexthop=by_nexthop)

    @precondition(lambda self: self.ready() and self.opening)
    @rule(pick=st.integers(0, 99), works=st.booleans())
    def connect(self, pick: int, works: bool) -> None:
        slot = self.opening.pop(pick % len(self.opening))
        if works:
            self.the_cache().connected(slot, Conn(self.live[slot]), self.now)
            self.busy.append(slot)
        else:
            self.the_cache().release(slot, self.now)
            del self.live[slot]
            self._note_woken()

    @precondition(lambda self: self.ready() and self.busy)
    @rule(pick=st.integers(0, 99), keep=st.booleans(), by_nexthop=st.booleans())
    def finish(self, pick: int, keep: bool, by_nexthop: bool) -> None:
        cache = self.the_cache()
        slot = self.busy.pop(pick % len(self.busy))
        conn = slot.connection
        assert conn is not None
        if not keep:
            # The session failed: the connection is gone and must never come back.
            conn.failed = conn.closed = True
            cache.release(slot, self.now)
            del self.live[slot]
            self._note_woken()
            return
        keys = self._keys(slot.destination, conn.name, by_nexthop)
        if not cache.release(slot, self.now, keys):
            assert slot.state is SlotState.CLOSING
            self.closing.append(slot)
        self._note_woken()

    @precondition(lambda self: self.ready() and self.closing)
    @rule(pick=st.integers(0, 99))
    def close(self, pick: int) -> None:
        slot = self.closing.pop(pick % len(self.closing))
        conn = slot.connection
        assert conn is not None and not conn.failed
        conn.closed = True
        self.the_cache().release(slot, self.now)
        del self.live[slot]
        self._note_woken()

    @precondition(lambda self: self.ready() and self.the_cache().idle())
    @rule()
    def tend(self) -> None:
        decision = self.the_cache().due(self.now)
        self._note_woken()
        if isinstance(decision, Evict):
            self.closing.extend(decision.slots)
        else:
            assert decision is not None and (decision.until is None or decision.until > self.now)

    @precondition(ready)
    @rule(
        seconds=st.one_of(
            st.floats(0, 0.5), st.floats(0, 0.5), st.floats(0.5, 3), st.floats(3, 1e3)
        )
    )
    def clock(self, seconds: float) -> None:
        self.now += seconds

    @precondition(lambda self: self.ready() and self.limits.backoff)
    @rule(destination=st.sampled_from(DESTINATIONS))
    def slow_down(self, destination: str) -> None:
        self.the_cache().back_off(destination, self.now, "4.7.0", "421 too many connections")
        self._note_woken()

    @invariant()
    def within_limits(self) -> None:
        if self.cache is None:
            return
        counts: dict[str, int] = {}
        for slot in self.live:
            assert slot.state is not SlotState.CLOSED
            counts[slot.destination] = counts.get(slot.destination, 0) + 1
        limits = self.limits
        for destination in DESTINATIONS:
            assert self.cache.count(destination) == counts.get(destination, 0)
            if limits.destination:
                assert counts.get(destination, 0) <= limits.destination
        assert self.cache.count() == len(self.live)
        in_use = [s for s in self.live if s.state in (SlotState.RESERVED, SlotState.BUSY)]
        assert self.cache.in_use() == len(in_use)
        if limits.total:
            assert len(in_use) <= limits.total

    @invariant()
    def no_delivery_waits_for_what_is_free(self) -> None:
        # No lost wake-up: a waiter not yet served waits for a limit that really binds.
        if self.cache is None:
            return
        limits, cache = self.limits, self.cache
        if limits.total and cache.in_use() >= limits.total:
            return
        for holder, (destination, _) in self.waiters.items():
            if holder in self.named:
                continue
            assert limits.destination and cache.count(destination) >= limits.destination
            assert not [s for s in cache.idle() if s.destination == destination]

    @invariant()
    def kept_connections_are_sound(self) -> None:
        if self.cache is None:
            return
        for slot in self.cache.idle():
            assert slot in self.live and slot.connection is not None
            assert not slot.connection.failed and not slot.connection.closed


CacheModel.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_the_cache_model_keeps_its_promises = CacheModel.TestCase
