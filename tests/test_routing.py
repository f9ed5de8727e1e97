"""Routing: MX ordering, null MX, loops, limits, fallback and lookup statuses (rule 14;
DN-01..DN-17 where they are pure routing decisions)."""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Callable
from types import FrameType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.config import ClientConfig
from smtpproto.destinations import parse_destinations
from smtpproto.engine.routing import (
    Attempts,
    ImplicitMX,
    MXSelection,
    RouteStatus,
    Target,
    address_lookup_status,
    address_rrtypes,
    balance_families,
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
    shuffle,
    truncate_self,
)
from smtpproto.requests import MXRecord

CONFIG = ClientConfig()


def names(selection_records: tuple[MXRecord, ...]) -> list[str]:
    return [r.exchange for r in selection_records]


def test_dn01_mx_hosts_in_preference_order() -> None:
    records = [MXRecord(20, "mx2.example."), MXRecord(10, "MX1.example")]
    selection = select_mx(records, "example.com", rng=random.Random(1))
    assert names(selection.records) == ["mx1.example", "mx2.example"]
    assert selection.status is None and selection.warnings == ()


def test_dn02_equal_preferences_are_randomized_uniformly() -> None:
    records = [MXRecord(10, "a"), MXRecord(10, "b"), MXRecord(10, "c"), MXRecord(20, "d")]
    firsts: Counter[str] = Counter()
    for seed in range(3000):
        ordered = names(select_mx(records, "example.com", rng=random.Random(seed)).records)
        assert ordered[3] == "d" and sorted(ordered[:3]) == ["a", "b", "c"]
        firsts[ordered[0]] += 1
    assert all(900 <= firsts[h] <= 1100 for h in "abc"), firsts


def test_dn02_no_randomization_keeps_dns_order_within_a_preference() -> None:
    records = [MXRecord(10, "b"), MXRecord(10, "a"), MXRecord(5, "c")]
    selection = select_mx(records, "example.com", rng=random.Random(0), randomize=False)
    assert names(selection.records) == ["c", "b", "a"]


def test_dn03_nodata_means_implicit_mx() -> None:
    assert mx_lookup_failure("nodata", "example.com", config=CONFIG) == ImplicitMX("example.com")


def test_dn04_nxdomain_bounces_with_5_4_4() -> None:
    status = mx_lookup_failure("nxdomain", "nowhere.example", config=CONFIG)
    assert isinstance(status, RouteStatus) and status.dsn == "5.4.4" and not status.soft
    assert "Host or domain name not found" in status.text


def test_dn05_temporary_mx_failure_defers_without_a_fallback() -> None:
    status = mx_lookup_failure("temporary", "example.com", config=CONFIG)
    assert isinstance(status, RouteStatus) and status.dsn == "4.4.3" and status.soft


def test_ignore_mx_lookup_error_falls_back_to_addresses() -> None:
    config = ClientConfig(ignore_mx_lookup_error=True)
    for kind in ("temporary", "permanent"):
        assert mx_lookup_failure(kind, "example.com", config=config) == ImplicitMX("example.com")


def test_permanent_and_unavailable_mx_failures() -> None:
    assert mx_lookup_failure("permanent", "e.example", config=CONFIG) == RouteStatus(
        "5.4.3", "Name service error for name=e.example type=MX: non-recoverable error"
    )
    unavailable = mx_lookup_failure("unavailable", "e.example", config=CONFIG)
    assert isinstance(unavailable, RouteStatus) and unavailable.dsn == "4.4.3"


def test_dn06_lone_null_mx_bounces_with_5_1_10() -> None:
    for exchange in ("", "."):
        selection = select_mx([MXRecord(0, exchange)], "null.example", rng=random.Random(0))
        assert selection.records == ()
        assert selection.status is not None and selection.status.dsn == "5.1.10"
        assert "does not accept mail" in selection.status.text


def test_dn07_null_mx_among_real_ones_is_skipped_with_a_warning() -> None:
    records = [MXRecord(0, ""), MXRecord(10, "mx1.example")]
    selection = select_mx(records, "mixed.example", rng=random.Random(0))
    assert names(selection.records) == ["mx1.example"] and selection.status is None
    assert len(selection.warnings) == 1 and "null MX" in selection.warnings[0]


def test_dn08_no_mx_address_bounces_by_default_defers_when_configured_or_soft() -> None:
    hard = address_lookup_status("nodata", "mx1.example", "A")
    assert hard.dsn == "5.4.4"
    assert no_mx_address_status("example.com", hard, config=CONFIG).dsn == "5.4.4"
    deferring = ClientConfig(defer_if_no_mx_address_found=True)
    assert no_mx_address_status("example.com", hard, config=deferring).dsn == "4.4.4"
    soft = keep_soft(address_lookup_status("temporary", "mx1.example", "A"), hard)
    assert soft.dsn == "4.4.3"
    assert no_mx_address_status("example.com", soft, config=CONFIG).dsn == "4.4.3"
    fresh = no_mx_address_status("example.com", None, config=CONFIG)
    assert fresh.dsn == "5.4.4" and "has a valid address record" in fresh.text


def test_address_lookup_statuses_follow_spec_14_3() -> None:
    assert address_lookup_status("nxdomain", "h", "A").dsn == "5.4.4"
    assert address_lookup_status("nxdomain", "h", "A", soft_seen=True).dsn == "4.4.4"
    assert address_lookup_status("temporary", "h", "AAAA").dsn == "4.4.3"
    assert address_lookup_status("permanent", "h", "A").dsn == "5.4.3"


def test_keep_soft_lets_a_later_soft_status_replace_a_hard_one() -> None:
    hard, soft = RouteStatus("5.4.4", "x"), RouteStatus("4.4.3", "y")
    assert keep_soft(hard, soft) == soft and keep_soft(soft, hard) == soft
    assert keep_soft(None, hard) == hard


def test_dn09_numeric_mx_target_is_skipped_with_a_warning() -> None:
    records = [MXRecord(10, "192.0.2.1"), MXRecord(20, "mx.example"), MXRecord(5, "2001:db8::1.")]
    selection = select_mx(records, "example.com", rng=random.Random(0))
    assert names(selection.records) == ["mx.example"]
    assert len(selection.warnings) == 2 and all("numeric" in w for w in selection.warnings)


def test_dn09_only_numeric_targets_leave_nothing_usable() -> None:
    selection = select_mx([MXRecord(10, "192.0.2.1")], "example.com", rng=random.Random(0))
    assert selection.records == () and selection.status is not None
    assert selection.status.dsn == "5.4.4"


LOOP = ClientConfig(myhostname="mx.self", inet_interfaces=("192.0.2.53",))


def test_dn12_best_mx_is_self_bounces_5_4_6() -> None:
    targets = [Target("mx.self", "192.0.2.99", 10), Target("other", "198.51.100.1", 20)]
    check = truncate_self(targets, "example.com", config=LOOP)
    assert check.targets == () and check.i_am_mx
    assert check.status == RouteStatus("5.4.6", "mail for example.com loops back to myself")


def test_dn12_self_at_lower_preference_keeps_only_better_hosts() -> None:
    targets = [
        Target("other", "198.51.100.1", 10),
        Target("mx.self", "192.0.2.99", 20),
        Target("third", "198.51.100.3", 30),
    ]
    check = truncate_self(targets, "example.com", config=LOOP)
    assert [t.host for t in check.targets] == ["other"] and check.i_am_mx
    assert check.status is None


def test_dn12_own_address_is_detected_under_another_name() -> None:
    targets = [Target("alias.example", "192.0.2.53", 10), Target("b", "198.51.100.2", 10)]
    check = truncate_self(targets, "example.com", config=LOOP)
    assert check.targets == () and check.status is not None


def test_loop_with_unresolved_better_mx_is_4_4_4() -> None:
    check = truncate_self(
        [Target("mx.self", "192.0.2.1", 20)], "example.com", config=LOOP, better_unresolved=True
    )
    assert check.status == RouteStatus("4.4.4", "unable to find primary relay for example.com")


def test_no_loop_leaves_targets_untouched() -> None:
    targets = (Target("a", "198.51.100.1", 10),)
    assert truncate_self(targets, "example.com", config=LOOP).targets == targets


def test_host_destination_with_a_local_address_loops() -> None:
    assert host_loops([Target("h", "192.0.2.53")], "h", config=LOOP) is not None
    assert host_loops([Target("h", "192.0.2.54")], "h", config=LOOP) is None


def test_loop_detection_only_for_smtp_on_port_25() -> None:
    (d25, d2525) = parse_destinations("example.com example.com:2525")
    assert loop_detection_applies(d25, CONFIG)
    assert not loop_detection_applies(d2525, CONFIG)
    (lmtp,) = parse_destinations("inet:h.example:25", lmtp=True)
    assert not loop_detection_applies(lmtp, ClientConfig(lmtp=True))


def test_dn13_address_and_session_limits() -> None:
    attempts = Attempts.for_config(CONFIG)
    tried = 0
    while attempts.may_try and tried < 100:
        attempts = attempts.after_address()
        tried += 1
    assert tried == 5
    sessions = Attempts.for_config(CONFIG).after_address().after_session().after_address()
    assert sessions.may_try
    assert not sessions.after_session().may_try


def test_zero_limits_mean_no_limit() -> None:
    attempts = Attempts(0, 0, addresses=10**6, sessions=10**6)
    assert attempts.may_try


def test_attempts_validate() -> None:
    with pytest.raises(LocalProtocolError, match="address_limit"):
        Attempts(-1, 2)


class Preference(int):
    """An MX preference whose comparisons are Python calls, so `operations` counts them
    whatever algorithm does the comparing (the C sort included)."""

    def __lt__(self, other: object) -> bool:
        return int.__lt__(self, other)  # type: ignore[operator]


def operations(call: Callable[[], object], *, limit: int) -> int:
    """The Python-level work of `call()`: lines run, calls made and returns, in every
    function it reaches; an AssertionError as soon as it passes `limit`.

    A count, not a clock: it is the same on every run and machine, and a quadratic loop or
    a quadratic number of comparisons shows in it at once.
    """
    count = 0

    def tracer(frame: FrameType, event: str, arg: object) -> Callable[..., object]:
        nonlocal count
        count += 1
        if count > limit:
            raise AssertionError(f"more than {limit} operations")
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        call()
    finally:
        sys.settrace(previous)
    return count


def mx_records(n: int, preferences: int) -> list[MXRecord]:
    return [MXRecord(Preference(i % preferences), f"mx{i}.example") for i in range(n)]


def test_dn14_thousand_mx_records_keep_the_best_hundred_quickly() -> None:
    # DN-14: capped at 100, the best preferences kept, in bounded work: about 100 operations
    # a record today (a shuffle step, the filter, a key and log2(n) comparisons), so a budget
    # of 200 a record leaves room and still fails on any quadratic step (1000 x 1000).
    records = mx_records(1000, 500)
    results: list[MXSelection] = []
    operations(
        lambda: results.append(select_mx(records, "big.example", rng=random.Random(7))),
        limit=200 * len(records),
    )
    (selection,) = results
    assert len(selection.records) == 100
    assert max(r.preference for r in selection.records) == 49
    assert any("1000 MX records" in w for w in selection.warnings)


def test_dn14_cost_grows_linearly_not_quadratically() -> None:
    # DN-14: ten times the records cost about ten times the work (n log n: 13 times at
    # most); a quadratic step would cost a hundred times, and stops at the budget.
    def cost(n: int, limit: int) -> int:
        records = mx_records(n, 50)
        return operations(
            lambda: select_mx(records, "big.example", rng=random.Random(1)), limit=limit
        )

    small = cost(1000, 10**6)
    assert cost(10_000, limit=20 * small) <= 20 * small


def test_dn17_fallback_relays_come_after_the_next_hops() -> None:
    config = ClientConfig(fallback_relay=("[relay.example]", "relay2.example:2525"))
    hops = plan_hops(parse_destinations("example.com"), config=config)
    assert [(h.destination.host, h.fallback) for h in hops] == [
        ("example.com", False),
        ("relay.example", True),
        ("relay2.example", True),
    ]
    assert not destination_is_final(0, hops)
    assert destination_is_final(2, hops)


def test_dn17_i_am_mx_or_loop_makes_the_destination_final() -> None:
    hops = plan_hops(
        parse_destinations("example.com"), config=ClientConfig(fallback_relay=("[r.example]",))
    )
    assert destination_is_final(0, hops, i_am_mx=True)
    assert destination_is_final(0, hops, looped=True)


def test_unix_destinations_get_no_fallback_and_are_final() -> None:
    config = ClientConfig(lmtp=True, fallback_relay=("inet:r.example",))
    hops = plan_hops(parse_destinations("unix:/run/lmtp", lmtp=True), config=config)
    assert len(hops) == 1 and destination_is_final(0, hops)


def test_final_server_is_the_last_address_of_the_final_destination() -> None:
    attempts = Attempts(5, 2)
    assert not is_final_server(False, attempts, addresses_left=0)
    assert is_final_server(True, attempts, addresses_left=0)
    assert not is_final_server(True, attempts, addresses_left=2)
    assert is_final_server(True, Attempts(5, 2, addresses=4), addresses_left=2)


def test_address_rrtypes_follow_inet_protocols_and_preference() -> None:
    assert address_rrtypes(CONFIG) == ("A", "AAAA")
    assert address_rrtypes(ClientConfig(address_preference="ipv6")) == ("AAAA", "A")
    assert address_rrtypes(ClientConfig(inet_protocols=frozenset({"ipv6"}))) == ("AAAA",)


def _targets(spec: str) -> list[Target]:
    # "4 6 4" -> alternating families, preference 0, distinct addresses.
    out = []
    for i, family in enumerate(spec.split()):
        address = f"192.0.2.{i + 1}" if family == "4" else f"2001:db8::{i + 1}"
        out.append(Target(f"h{i}", address))
    return out


@pytest.mark.parametrize(
    ("spec", "limit", "expected"),
    [
        ("6 4 4 4 4 4 4", 5, "6 4 4 4 4"),
        ("4 6 6 6 6 6 6", 5, "4 6 6 6 6"),
        ("6 6 6 6 4 4 4 4", 5, "6 6 6 4 4"),
        ("4 4 4 4 6 6 6 6", 5, "4 4 4 6 6"),
        ("6 6 6 6 6 6 4 4 4 4 4 4", 4, "6 6 4 4"),
        ("4 4 4", 2, "4 4 4"),
        ("4 6 4", 5, "4 6 4"),
        ("4 4 4 4 4 4 6", 3, "4 4 6"),
    ],
)
def test_balance_inet_protocols(spec: str, limit: int, expected: str) -> None:
    kept = balance_families(_targets(spec), limit)
    assert " ".join("6" if t.family == "ipv6" else "4" for t in kept) == expected


def test_order_addresses_sorts_by_family_preference_and_caps() -> None:
    config = ClientConfig(address_preference="ipv6", randomize_addresses=False, mx_address_limit=3)
    targets = [
        Target("a", "192.0.2.1", 10),
        Target("a", "2001:db8::1", 10),
        Target("b", "192.0.2.2", 5),
        Target("c", "2001:db8::3", 20),
    ]
    ordered = order_addresses(targets, config=config, rng=random.Random(0))
    assert [t.address for t in ordered] == ["192.0.2.2", "2001:db8::1", "192.0.2.1"]


def test_order_addresses_drops_disabled_families() -> None:
    config = ClientConfig(inet_protocols=frozenset({"ipv4"}))
    targets = [Target("a", "2001:db8::1"), Target("a", "192.0.2.1")]
    assert [t.address for t in order_addresses(targets, config=config, rng=random.Random(0))] == [
        "192.0.2.1"
    ]


def test_target_and_status_validate() -> None:
    with pytest.raises(LocalProtocolError, match="address"):
        Target("h", "not-an-address")
    with pytest.raises(LocalProtocolError, match="dsn"):
        RouteStatus("2.0.0", "fine")


class _Fixed:
    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def test_shuffle_tolerates_an_rng_at_the_edge_of_its_range() -> None:
    assert sorted(shuffle([1, 2, 3], _Fixed(0.9999999999999999))) == [1, 2, 3]
    assert sorted(shuffle([1, 2, 3], _Fixed(0.0))) == [1, 2, 3]


_records = st.lists(
    st.builds(
        MXRecord,
        st.integers(0, 65535),
        st.from_regex(r"[a-z]{1,8}\.example", fullmatch=True),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_records, st.integers(0, 2**32), st.booleans())
def test_ordering_is_a_sorted_permutation_and_deterministic(
    records: list[MXRecord], seed: int, randomize: bool
) -> None:
    selection = select_mx(records, "example.com", rng=random.Random(seed), randomize=randomize)
    if not records:
        assert selection.status is not None
        return
    ordered = selection.records
    assert Counter(ordered) == Counter(records)
    prefs = [r.preference for r in ordered]
    assert prefs == sorted(prefs)
    again = select_mx(records, "example.com", rng=random.Random(seed), randomize=randomize)
    assert again == selection


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=20),
    st.integers(0, 8),
    st.integers(0, 2**32),
)
def test_order_addresses_keeps_a_sorted_subset(
    spec: list[tuple[int, bool]], limit: int, seed: int
) -> None:
    targets = [
        Target(f"h{i}", f"2001:db8::{i + 1}" if v6 else f"192.0.2.{i + 1}", pref)
        for i, (pref, v6) in enumerate(spec)
    ]
    config = ClientConfig(mx_address_limit=limit)
    ordered = order_addresses(targets, config=config, rng=random.Random(seed))
    assert set(ordered) <= set(targets) and len(set(ordered)) == len(ordered)
    assert len(ordered) == (min(limit, len(targets)) if limit else len(targets))
    prefs = [t.preference for t in ordered]
    assert prefs == sorted(prefs)
    assert ordered == order_addresses(targets, config=config, rng=random.Random(seed))


def test_dn12_truncation_uses_our_best_preference_in_any_input_order() -> None:
    targets = [
        Target("mx.self", "192.0.2.99", 30),
        Target("other", "198.51.100.1", 10),
        Target("mx.self", "192.0.2.99", 20),
    ]
    check = truncate_self(targets, "example.com", config=LOOP)
    assert [t.host for t in check.targets] == ["other"]
