"""Deliveries sharing one connection cache (a Mailer's), and the Mailer's plan (rules 9.1-9.5).

The in-memory world answers the engines' ``Shared`` requests in place. Run one after the
other, deliveries show what one leaves in the cache for the next: kept sessions found by
next hop or by server, back-off after a destination failed or said to slow down, expiry.
Run by turns (`together`, a tiny event loop), they show the concurrency limits: who waits,
who reuses, what is closed to make room. tests/test_mailer.py has the adapters' Mailers.
"""

from __future__ import annotations

import email.message
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import pytest
from support.model import Canonical
from support.world import ADDR, DEST, Record, Session, World, drive, smtp, statuses

from smtpproto._errors import LocalProtocolError
from smtpproto.config import ClientConfig
from smtpproto.engine import close_cache, deliver, tend_cache
from smtpproto.engine.cache import ConnectionCache
from smtpproto.engine.mailer import merge, new_cache, next_hop, plan
from smtpproto.engine.session import Session as EngineSession
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport, RecipientResult
from smtpproto.requests import (
    Connect,
    ConnectFailed,
    IOFailure,
    IORequest,
    MXRecord,
    Shared,
    Wait,
)
from smtpproto.tlsreport import AttemptResult, ReportPolicy

OK = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
RESET = b"250 2.0.0 reset\r\n"
MESSAGE = b"Subject: t\r\n\r\nhello\r\n"
CONFIG = ClientConfig(helo_name="client.example", minimal_backoff_time=60)
MX2 = "192.0.2.2"


class Manual:
    """A clock that stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Mailer:
    """One shared cache and one world; each `send` is one delivery, run to its end."""

    def __init__(self, world: World, config: ClientConfig = CONFIG) -> None:
        self.world = world
        self.config = config
        self.cache: ConnectionCache[EngineSession] = new_cache(config)

    def send(self, destination: str, *recipients: str) -> DeliveryReport:
        envelope = Envelope("a@example.org", tuple(Recipient(r) for r in recipients))
        run = deliver(
            destination,
            envelope,
            MESSAGE,
            config=self.config,
            clock=self.world.clock,
            rng=_Zero(),
            cache=self.cache,
        )
        report: DeliveryReport = self.world.run(run)
        return report

    def close(self) -> None:
        self.world.run(close_cache(self.cache))


class _Zero:
    def random(self) -> float:
        return 0.0


def connects(record: Record) -> list[str]:
    return [r.address for r in record.of_type(Connect)]


def world(servers: dict[str, list[Any]], dns: dict[tuple[str, str], Any] | None = None) -> World:
    return World(dns=dns or {}, servers=servers, clock=Manual())


# -- sessions kept for the next delivery -----------------------------------------------------


def test_the_next_delivery_to_the_same_server_reuses_the_kept_session() -> None:
    # rule 9.4: RSET probe, then the transaction; no second greeting or EHLO
    w = world({ADDR: [smtp(*OK, RESET, *OK)]})
    mailer = Mailer(w)
    assert statuses(mailer.send(DEST, "a@x")) == [("sent", "2.0.0")]
    (channel,) = w.record.channels
    assert not channel.closed and not w.record.sent().endswith(b"QUIT\r\n")
    second = mailer.send(DEST, "b@x")
    assert statuses(second) == [("sent", "2.0.0")]
    assert len(w.record.channels) == 1
    assert w.record.sent().count(b"EHLO") == 1 and w.record.sent().count(b"RSET\r\n") == 1
    assert second.transcript[0] == "Out: RSET"
    mailer.close()
    assert channel.closed and w.record.sent().endswith(b".\r\nQUIT\r\n")


def test_a_session_kept_under_the_next_hop_skips_a_dead_better_mx() -> None:
    # rule 9.5: the first good session of a request is kept under its next hop, so the next
    # request reuses it without trying the dead primary again (Postfix smtp_reuse_nexthop())
    dns = {
        ("example.com", "MX"): (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")),
        ("mx1.example.com", "A"): (ADDR,),
        ("mx2.example.com", "A"): (MX2,),
        ("mx1.example.com", "AAAA"): (),
        ("mx2.example.com", "AAAA"): (),
    }
    w = world({ADDR: [ConnectFailed("refused")], MX2: [smtp(*OK, RESET, *OK)]}, dns)
    mailer = Mailer(w)
    assert statuses(mailer.send("example.com", "a@example.com")) == [("sent", "2.0.0")]
    assert connects(w.record) == [ADDR, MX2]
    second = mailer.send("example.com", "b@example.com")
    assert statuses(second) == [("sent", "2.0.0")]
    assert connects(w.record) == [ADDR, MX2]
    assert second.recipients[0].relay == f"mx2.example.com[{MX2}]:25"


def test_a_session_serves_another_next_hop_with_the_same_server() -> None:
    # rule 9.5: by endpoint, two domains whose MX is the same server share its connection
    dns: dict[tuple[str, str], Any] = {("mx.example.org", "AAAA"): ()}
    for domain in ("example.com", "example.net"):
        dns[(domain, "MX")] = (MXRecord(10, "mx.example.org"),)
    dns[("mx.example.org", "A")] = (ADDR,)
    w = world({ADDR: [smtp(*OK, RESET, *OK)]}, dns)
    mailer = Mailer(w)
    assert statuses(mailer.send("example.com", "a@example.com")) == [("sent", "2.0.0")]
    assert statuses(mailer.send("example.net", "b@example.net")) == [("sent", "2.0.0")]
    assert len(w.record.channels) == 1


def test_a_session_that_failed_is_never_handed_out_again() -> None:
    # rule 9.2: the stream broke after DATA; the next delivery opens a new connection
    w = world({ADDR: [smtp(b"250 ok\r\n250 ok\r\n354 go\r\n"), smtp(*OK)]})
    mailer = Mailer(w)
    assert statuses(mailer.send(DEST, "a@x")) == [("deferred", "4.4.2")]
    w.clock.now += 60  # type: ignore[attr-defined]  # a lost connection backed it off
    assert statuses(mailer.send(DEST, "b@x")) == [("sent", "2.0.0")]
    first, second = w.record.channels
    assert first.closed and not second.closed
    assert b"RSET" not in w.record.sent()


@pytest.mark.parameter("smtp_connection_reuse_count_limit")
def test_a_shared_session_is_reused_only_up_to_the_reuse_count_limit() -> None:
    # rule 9.1: one reuse allowed, so QUIT goes behind the second transaction's end
    config = ClientConfig(helo_name="client.example", connection_reuse_count_limit=1)
    w = world({ADDR: [smtp(*OK, RESET, *OK), smtp(*OK)]})
    mailer = Mailer(w, config)
    for rcpt in ("a@x", "b@x", "c@x"):
        assert statuses(mailer.send(DEST, rcpt)) == [("sent", "2.0.0")]
    first, second = w.record.channels
    assert first.closed and w.record.sent(first).endswith(b".\r\nQUIT\r\n")
    assert w.record.sent(first).count(b"MAIL FROM") == 2 and not second.closed


@pytest.mark.parameter("smtp_connection_cache_on_demand")
def test_without_on_demand_caching_a_mailer_keeps_nothing_for_an_unlisted_domain() -> None:
    config = ClientConfig(helo_name="client.example", connection_cache_on_demand=False)
    w = world({ADDR: [smtp(*OK), smtp(*OK)]})
    mailer = Mailer(w, config)
    mailer.send(DEST, "a@x")
    mailer.send(DEST, "b@x")
    assert [c.closed for c in w.record.channels] == [True, True]
    assert all(w.record.sent(c).endswith(b".\r\nQUIT\r\n") for c in w.record.channels)


# -- concurrent deliveries -------------------------------------------------------------------


@dataclass
class _Run:
    engine: Generator[IORequest, Any, DeliveryReport]
    request: IORequest | None = None
    value: Any = None
    failure: IOFailure | None = None
    parked: object = None
    """The `Wait.on` it sleeps on, or None."""
    report: DeliveryReport | None = None


def together(
    w: World,
    engines: list[Generator[IORequest, Any, DeliveryReport]],
    cache: ConnectionCache[EngineSession],
) -> tuple[list[DeliveryReport], dict[str, int]]:
    """Run the engines by turns, one request at a time, as an event loop interleaves tasks.

    A ``Shared`` call that says ``Wait(on=x)`` parks its engine until a later call's
    ``woken()`` names x (a missing wake-up shows as every engine parked). Returns the
    reports and the most connections open at once, per address and in all ("all"), and the
    most the cache had in use at once ("in use")."""
    runs = [_Run(e) for e in engines]
    most: dict[str, int] = {}
    while any(r.report is None for r in runs):
        active = [r for r in runs if r.report is None and r.parked is None]
        assert active, "every delivery waits: nothing can free a connection"
        for run in active:
            if run.request is None:
                try:
                    if run.failure is None:
                        run.request = run.engine.send(run.value)
                    else:
                        run.request = run.engine.throw(run.failure)
                except StopIteration as stop:
                    run.report = stop.value
                    continue
            request = run.request
            w.record.requests.append(request)
            run.value, run.failure = None, None
            if isinstance(request, Shared):
                result = request.call(w.clock())
                woken = set(request.woken()) if request.woken is not None else set()
                for other in runs:
                    if other.parked is not None and other.parked in woken:
                        other.parked = None
                if isinstance(result, Wait):
                    assert result.on is not None and result.on not in woken
                    run.parked = result.on
                    continue
                run.value = result
            else:
                try:
                    run.value = w.answer(len(w.record.requests), request)
                except IOFailure as failure:
                    run.failure = failure
            run.request = None
            open_now: dict[str, int] = {}
            for channel in w.record.channels:
                if not channel.closed:
                    open_now[channel.address] = open_now.get(channel.address, 0) + 1
            open_now["all"] = sum(open_now.values())
            open_now["in use"] = cache.in_use()
            for name, count in open_now.items():
                most[name] = max(most.get(name, 0), count)
    return [r.report for r in runs if r.report is not None], most


def send_together(
    config: ClientConfig, destinations: list[str]
) -> tuple[World, list[DeliveryReport], dict[str, int]]:
    """One delivery per destination, all at once through one shared cache, correct servers
    at every address, then the cache closed: the world, the reports, `together`'s counts."""
    w = World.reactive(Canonical())
    w.clock = Manual()
    cache: ConnectionCache[EngineSession] = new_cache(config)
    engines = [
        deliver(
            destination,
            Envelope("a@example.org", (Recipient(f"r{n}@example.com"),)),
            MESSAGE,
            config=config,
            clock=w.clock,
            rng=_Zero(),
            cache=cache,
        )
        for n, destination in enumerate(destinations)
    ]
    reports, most = together(w, engines, cache)
    w.run(close_cache(cache))
    assert all(c.closed for c in w.record.channels)
    return w, reports, most


@pytest.mark.parameter("transport_destination_concurrency_limit")
def test_deliveries_beyond_the_destination_concurrency_limit_wait_then_reuse() -> None:
    config = ClientConfig(helo_name="client.example", destination_concurrency_limit=2)
    w, reports, most = send_together(config, [DEST] * 6)
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 6
    assert most[ADDR] == 2 and len(w.record.channels) == 2
    assert w.record.sent().count(b"RSET\r\n") == 4  # rule 9.4: each reuse is probed


@pytest.mark.parameter("transport_destination_concurrency_limit")
def test_a_destination_concurrency_limit_of_zero_is_no_limit() -> None:
    config = ClientConfig(helo_name="client.example", destination_concurrency_limit=0)
    _, reports, most = send_together(config, [DEST] * 6)
    assert most[ADDR] == 6 and len(reports) == 6


@pytest.mark.parameter("default_process_limit")
def test_the_process_limit_bounds_the_deliveries_at_once_and_keeps_idle_connections() -> None:
    # Six next hops, three deliveries at a time; the connections of the first three stay
    # kept for their next hops (Postfix's scache holds them, not a delivery agent).
    config = ClientConfig(helo_name="client.example", process_limit=3)
    destinations = [f"[192.0.2.{n}]" for n in range(1, 7)]
    w, reports, most = send_together(config, destinations)
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 6
    assert most["in use"] == 3 and most["all"] == 6 and len(w.record.channels) == 6
    assert all(w.record.sent(c).endswith(b"QUIT\r\n") for c in w.record.channels)


# -- back-off --------------------------------------------------------------------------------


@pytest.mark.parameter("minimal_backoff_time")
def test_a_421_backs_the_destination_off_for_minimal_backoff_time() -> None:
    w = world({ADDR: [Session([b"421 4.7.0 too many connections, slow down\r\n"]), smtp(*OK)]})
    mailer = Mailer(w, ClientConfig(helo_name="client.example", minimal_backoff_time=60))
    assert statuses(mailer.send(DEST, "a@x")) == [("deferred", "4.7.0")]
    suspended = mailer.send(DEST, "b@x")
    (result,) = suspended.recipients
    assert (result.status, result.dsn) == ("deferred", "4.7.0")
    assert result.diagnostic.startswith("delivery temporarily suspended: host ")
    assert "421 4.7.0 too many connections" in result.diagnostic
    assert suspended.destination_down and len(connects(w.record)) == 1
    assert isinstance(w.clock, Manual)
    w.clock.now += 59.9
    assert statuses(mailer.send(DEST, "c@x")) == [("deferred", "4.7.0")]
    w.clock.now += 0.1
    assert statuses(mailer.send(DEST, "d@x")) == [("sent", "2.0.0")]
    assert len(connects(w.record)) == 2


def test_a_4_7_refusal_of_mail_backs_off_and_of_one_rcpt_does_not() -> None:
    # trouble.slows_down: a 4.7.x of the session or message is a rate limit; of one RCPT it
    # is about that recipient (greylisting). Nothing is kept, so each send connects anew.
    greylisted = smtp(b"250 ok\r\n450 4.7.1 greylisted, try later\r\n554 5.5.1 no rcpt\r\n", RESET)
    throttled = smtp(b"451 4.7.0 rate limit exceeded\r\n503 5.5.1 no MAIL\r\n" * 1, RESET)
    w = world({ADDR: [greylisted, smtp(*OK), throttled]})
    config = ClientConfig(
        helo_name="client.example", minimal_backoff_time=60, connection_cache_on_demand=False
    )
    mailer = Mailer(w, config)
    assert statuses(mailer.send(DEST, "a@x")) == [("deferred", "4.7.1")]
    assert statuses(mailer.send(DEST, "b@x")) == [("sent", "2.0.0")]
    assert statuses(mailer.send(DEST, "c@x")) == [("deferred", "4.7.0")]
    suspended = mailer.send(DEST, "d@x")
    assert statuses(suspended) == [("deferred", "4.7.0")]
    assert "suspended" in suspended.recipients[0].diagnostic
    assert len(connects(w.record)) == 3


def test_a_destination_that_is_down_is_backed_off() -> None:
    # rule 2.1: every server failed before a transaction: Postfix's queue manager declares
    # the destination dead for minimal_backoff_time
    w = world({ADDR: [ConnectFailed("Connection refused")]})
    mailer = Mailer(w)
    first = mailer.send(DEST, "a@x")
    assert statuses(first) == [("deferred", "4.4.1")] and first.destination_down
    second = mailer.send(DEST, "b@x")
    assert statuses(second) == [("deferred", "4.4.1")]
    assert "suspended" in second.recipients[0].diagnostic
    assert connects(w.record) == [ADDR]


def test_a_private_cache_never_backs_off() -> None:
    # deliver() alone: every call starts afresh, as each Postfix delivery request does
    w = world({ADDR: [Session([b"421 busy\r\n"]), smtp(*OK)]})
    for rcpt, status in (("a@x", "deferred"), ("b@x", "sent")):
        envelope = Envelope("a@example.org", (Recipient(rcpt),))
        run = deliver(DEST, envelope, MESSAGE, config=CONFIG, clock=w.clock, rng=_Zero())
        assert w.run(run).recipients[0].status == status


# -- the background expiry -------------------------------------------------------------------


@pytest.mark.parameter("smtp_connection_cache_time_limit")
def test_tend_cache_quits_a_session_idle_for_the_cache_time_limit() -> None:
    config = ClientConfig(helo_name="client.example", connection_cache_time_limit=2)
    w = world({ADDR: [smtp(*OK)]})
    mailer = Mailer(w, config)
    mailer.send(DEST, "a@x")
    clock = w.clock
    assert isinstance(clock, Manual)
    start = clock.now
    waits: list[float | None] = []

    def answer(index: int, request: IORequest) -> Any:
        if not isinstance(request, Shared):
            return w.answer(index, request)
        result = request.call(clock())
        while isinstance(result, Wait):
            waits.append(result.until)
            if result.until is None:  # nothing left to expire: the Mailer closes
                mailer.cache.shut_down()
            else:
                clock.now = result.until
            result = request.call(clock())
        return result

    drive(tend_cache(mailer.cache), answer, w.record)
    assert waits == [start + 2, None]
    (channel,) = w.record.channels
    assert channel.closed and w.record.sent().endswith(b".\r\nQUIT\r\n")


# -- the plan --------------------------------------------------------------------------------


def test_plan_groups_recipients_by_next_hop_in_order_of_appearance() -> None:
    envelope = Envelope(
        "s@example.org",
        tuple(
            Recipient(a)
            for a in ("a@Example.COM", "b@example.net", "c@example.com", "d@[192.0.2.1]")
        ),
    )
    done = plan(envelope, MESSAGE, config=CONFIG)
    assert [(g.destination, g.indices) for g in done.groups] == [
        ("example.com", (0, 2)),
        ("example.net", (1,)),
        ("[192.0.2.1]", (3,)),
    ]
    assert [r.address for r in done.groups[0].envelope.recipients] == [
        "a@Example.COM",
        "c@example.com",
    ]
    assert done.concurrent


def test_plan_sends_everything_to_an_explicit_destination() -> None:
    envelope = Envelope("s@example.org", (Recipient("a@x.example"), Recipient("b@y.example")))
    (group,) = plan(envelope, MESSAGE, config=CONFIG, destination=DEST).groups
    assert (group.destination, group.indices) == (DEST, (0, 1))


@pytest.mark.parametrize(
    ("address", "hop"),
    [
        ("a@[IPv6:2001:DB8::1]", "[ipv6:2001:db8::1]"),
        ('"x@y"@example.org', "example.org"),
        ("a@mail.example.", "mail.example"),
    ],
)
def test_next_hop_of_literals_quoted_local_parts_and_root_dots(address: str, hop: str) -> None:
    assert next_hop(address) == hop


@pytest.mark.parametrize("address", ["postmaster", "a@", "a@[bogus]", "a@[x:1]", "a@bad_domain!"])
def test_an_address_without_a_routable_domain_is_refused_before_any_io(address: str) -> None:
    envelope = Envelope("s@example.org", (Recipient("ok@example.com"), Recipient(address)))
    with pytest.raises(LocalProtocolError, match=r"recipients\[1\]"):
        plan(envelope, MESSAGE, config=CONFIG)


def test_plan_refuses_an_lmtp_mailer_without_a_destination() -> None:
    envelope = Envelope("s@example.org", (Recipient("a@example.com"),))
    with pytest.raises(LocalProtocolError, match="destination"):
        plan(envelope, MESSAGE, config=ClientConfig(lmtp=True))


def test_a_file_message_is_read_by_one_delivery_at_a_time() -> None:
    import io

    envelope = Envelope("s@example.org", (Recipient("a@example.com"),))
    assert not plan(envelope, io.BytesIO(MESSAGE), config=CONFIG).concurrent
    parsed = email.message.EmailMessage()
    parsed.set_content("hi")
    assert plan(envelope, parsed, config=CONFIG).concurrent


def test_merge_puts_each_result_back_in_envelope_order() -> None:
    two = smtp(b"250 ok\r\n" * 3 + b"354 go\r\n", b"250 2.0.0 ok\r\n")
    w = world({ADDR: [two], MX2: [ConnectFailed("refused")]})
    envelope = Envelope("s@example.org", (Recipient("a@x"), Recipient("b@y"), Recipient("c@x")))
    done = plan(envelope, MESSAGE, config=CONFIG)
    reports = []
    for group, destination in zip(done.groups, (DEST, f"[{MX2}]"), strict=True):
        run = deliver(
            destination, group.envelope, MESSAGE, config=CONFIG, clock=w.clock, rng=_Zero()
        )
        reports.append(w.run(run))
    merged = merge(done, reports)
    assert [(r.address, r.status) for r in merged.recipients] == [
        ("a@x", "sent"),
        ("b@y", "deferred"),
        ("c@x", "sent"),
    ]
    assert merged.destination_down and merged.transcript[0].startswith("In: 220")
    with pytest.raises(LocalProtocolError, match="reports"):
        merge(done, reports[:1])


def test_merge_keeps_every_next_hops_tls_attempts() -> None:
    # TLS-RPT (RFC 8460) counts every attempt of every policy domain; a Mailer's report is
    # the only one its caller sees, so the merge must not drop a next hop's attempts.
    envelope = Envelope("s@example.org", (Recipient("a@x"), Recipient("b@y")))
    done = plan(envelope, MESSAGE, config=CONFIG)
    attempts = [
        (AttemptResult(ReportPolicy("sts", "x", mx_host=("mx.x",)), True),),
        (
            AttemptResult(ReportPolicy("no-policy-found", "y"), False, "starttls-not-supported"),
            AttemptResult(ReportPolicy("no-policy-found", "y"), True),
        ),
    ]
    reports = [
        DeliveryReport(
            recipients=(RecipientResult(r.address, "sent", "2.0.0", None, None, "ok", 0.0),),
            tls=None,
            destination_down=False,
            transcript=(),
            tls_attempts=mine,
        )
        for group, mine in zip(done.groups, attempts, strict=True)
        for r in group.envelope.recipients
    ]
    assert merge(done, reports).tls_attempts == attempts[0] + attempts[1]
