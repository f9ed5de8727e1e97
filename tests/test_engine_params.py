"""Scripted dialogues for the smtp(8) parameters of routing, reuse, ports and content.

Each test carries the ``@pytest.mark.parameter`` markers of what it shows in effect
(tests/test_parameters.py holds every supported parameter to having one).
"""

from __future__ import annotations

import random
from collections.abc import Generator
from typing import Any

import pytest
from support.world import ADDR, Clock, Rng, Script, Session, go, run, smtp, statuses

from smtpproto import ConnectionFailed
from smtpproto._errors import LocalProtocolError
from smtpproto.config import ClientConfig
from smtpproto.engine import close_session, deliver, open_session, transact
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport, RecipientResult, format_delay, format_log_line
from smtpproto.requests import Connect, IORequest, MXRecord, Sleep

OK_TRANSACTION = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")
MX2 = {
    ("example.com", "MX"): (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")),
    ("mx1.example.com", "A"): ("192.0.2.1",),
    ("mx2.example.com", "A"): ("192.0.2.2",),
}
PIX_BANNER = b"220 ********************\r\n"
# After a PIX banner: the HELO/EHLO reply (no PIPELINING), then one reply per command.
PIX_DIALOGUE = [b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
# support.world.Clock starts at 1000.0 and moves 10 ms per reading.
QUEUED_LONG_AGO = 0.0
JUST_QUEUED = 999.0


def _connects(record: Any) -> list[str]:
    return [c.address for c in record.of_type(Connect)]


def _pix(**config: Any) -> tuple[DeliveryReport, Any]:
    return go(Session([PIX_BANNER, *PIX_DIALOGUE]), **config)


def _envelope(arrival: float | None) -> Envelope:
    return Envelope("a@example.org", (Recipient("b@example.com"),), arrival=arrival)


def _deliver_with(config: ClientConfig) -> Any:
    message = b"Subject: t\r\n\r\nhello\r\n"
    return deliver(f"[{ADDR}]", _envelope(None), message, config=config, clock=Clock(), rng=Rng())


def _result(delay: float) -> RecipientResult:
    return RecipientResult(
        address="b@example.com",
        status="sent",
        dsn="2.0.0",
        reply=None,
        relay="mx.example[192.0.2.1]:25",
        diagnostic="250 2.0.0 Ok",
        delay=delay,
    )


# -- delay_logging_resolution_limit ---------------------------------------------------------


@pytest.mark.parameter("delay_logging_resolution_limit")
@pytest.mark.parametrize(
    ("limit", "text"), [("0", "0"), ("1", "0"), ("2", "0.01"), ("3", "0.012"), ("6", "0.012")]
)
def test_delay_logging_resolution_limit_caps_the_decimals_of_delay(limit: str, text: str) -> None:
    # Postfix format_tv: two significant digits, at most the limit's digits after the point
    config = ClientConfig.from_postconf({"delay_logging_resolution_limit": limit})
    line = format_log_line(_result(0.0123), resolution=config.delay_logging_resolution_limit)
    assert f", delay={text}, " in line


@pytest.mark.parameter("delay_logging_resolution_limit")
def test_delay_logging_resolution_limit_zero_logs_whole_seconds_rounded_half_up() -> None:
    config = ClientConfig(delay_logging_resolution_limit=0)
    limit = config.delay_logging_resolution_limit
    assert [format_delay(s, limit) for s in (0.4, 0.5, 1.5, 2.25)] == ["0", "1", "2", "2"]


@pytest.mark.parameter("delay_logging_resolution_limit")
def test_delay_logging_resolution_limit_applies_to_a_delivered_report() -> None:
    # The request starts at the first reading of the clock; every later one is 20 ms on.
    times = iter([1000.0])
    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(
        f"[{ADDR}]",
        envelope,
        b"Subject: t\r\n\r\nhello\r\n",
        config=ClientConfig(helo_name="client.example", per_request_deadline=False),
        clock=lambda: next(times, 1000.02),
        rng=Rng(),
    )
    report, _ = run(engine, Script(servers={ADDR: [smtp(*OK_TRANSACTION)]}))
    (result,) = report.recipients
    assert result.delay == pytest.approx(0.02)
    lines = {
        limit: format_log_line(
            result,
            resolution=ClientConfig(
                delay_logging_resolution_limit=limit
            ).delay_logging_resolution_limit,
        )
        for limit in (1, 2)
    }
    assert ", delay=0, " in lines[1]
    assert ", delay=0.02, " in lines[2]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.1234, "0.12"), (1.234, "1.2"), (12.345, "12"), (123.4, "123"), (0.996, "1")],
)
def test_delay_keeps_two_significant_digits_like_postfix(seconds: float, text: str) -> None:
    assert format_delay(seconds) == text


@pytest.mark.parametrize("resolution", [-1, 7, True])
def test_delay_resolution_outside_postfix_range_is_refused(resolution: int) -> None:
    with pytest.raises(LocalProtocolError, match="resolution"):
        format_delay(0.5, resolution)


# -- skip_4xx_greeting -------------------------------------------------------------------------


@pytest.mark.parameter("smtp_skip_4xx_greeting")
def test_skip_4xx_greeting_on_moves_to_the_next_mx() -> None:
    report, record = go(
        destination="example.com",
        dns=MX2,
        servers={"192.0.2.1": [Session([b"421 busy\r\n"])], "192.0.2.2": [smtp(*OK_TRANSACTION)]},
        skip_4xx_greeting=True,
    )
    assert _connects(record) == ["192.0.2.1", "192.0.2.2"]
    assert statuses(report) == [("sent", "2.0.0")]


@pytest.mark.parameter("smtp_skip_4xx_greeting")
def test_skip_4xx_greeting_off_defers_at_once_without_the_next_mx() -> None:
    # Postfix <= 2.0: "no" defers delivery after a 4xx greeting instead of moving on
    report, record = go(
        destination="example.com",
        dns=MX2,
        servers={
            "192.0.2.1": [Session([b"450 4.3.2 try later\r\n"])],
            "192.0.2.2": [smtp(*OK_TRANSACTION)],
        },
        skip_4xx_greeting=False,
    )
    assert _connects(record) == ["192.0.2.1"]
    assert statuses(report) == [("deferred", "4.3.2")]
    (result,) = report.recipients
    assert result.relay == "mx1.example.com[192.0.2.1]:25"
    assert "refused to talk to me: 450 4.3.2 try later" in result.diagnostic
    assert report.destination_down


@pytest.mark.parameter("smtp_skip_4xx_greeting")
def test_skip_4xx_greeting_off_does_not_try_the_fallback_relay() -> None:
    config = ClientConfig.from_postconf(
        {
            "smtp_skip_4xx_greeting": "no",
            "smtp_fallback_relay": "[192.0.2.9]",
            "smtp_helo_name": "client.example",
        }
    )
    script = Script(
        servers={ADDR: [Session([b"421 busy\r\n"])], "192.0.2.9": [smtp(*OK_TRANSACTION)]}
    )
    engine = _deliver_with(config)
    report, record = run(engine, script)
    assert _connects(record) == [ADDR]
    assert statuses(report) == [("deferred", "4.0.0")]


@pytest.mark.parameter("smtp_skip_4xx_greeting")
def test_skip_4xx_greeting_off_leaves_a_5xx_greeting_to_skip_5xx_greeting() -> None:
    # a 5xx greeting softened by skip_5xx_greeting is not a 4xx greeting: the walk goes on
    report, record = go(
        destination="example.com",
        dns=MX2,
        servers={
            "192.0.2.1": [Session([b"554 5.7.1 go away\r\n"])],
            "192.0.2.2": [smtp(*OK_TRANSACTION)],
        },
        skip_4xx_greeting=False,
    )
    assert _connects(record) == ["192.0.2.1", "192.0.2.2"]
    assert statuses(report) == [("sent", "2.0.0")]


@pytest.mark.parameter("smtp_skip_4xx_greeting")
def test_skip_4xx_greeting_off_stops_open_session_at_the_first_4xx_greeting() -> None:
    config = ClientConfig(helo_name="client.example", skip_4xx_greeting=False)
    script = Script(
        dns=MX2,
        servers={"192.0.2.1": [Session([b"421 busy\r\n"])], "192.0.2.2": [smtp()]},
    )
    engine = open_session("example.com", config=config, clock=Clock(), rng=Rng())
    with pytest.raises(ConnectionFailed, match="refused to talk to me: 421 busy") as failure:
        run(engine, script)
    assert failure.value.dsn == "4.0.0"  # the status deliver would give (rule 3.1)


# -- pix_workaround_maps -------------------------------------------------------------------


@pytest.mark.parameter("smtp_pix_workaround_maps")
def test_pix_workaround_maps_entry_replaces_the_global_workarounds() -> None:
    # rule 3.3: only delay_dotcrlf for this address, so EHLO is not disabled
    _, record = _pix(
        pix_workaround_maps={ADDR: frozenset({"delay_dotcrlf"})}, pix_workaround_delay_time=3
    )
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert [s.seconds for s in record.of_type(Sleep)] == [3]


@pytest.mark.parameter("smtp_pix_workaround_maps")
def test_pix_workaround_maps_empty_entry_turns_the_workarounds_off() -> None:
    config = ClientConfig.from_postconf(
        {"smtp_pix_workaround_maps": {ADDR: ""}, "smtp_helo_name": "client.example"}
    )
    assert config.pix_workaround_maps.get(ADDR) == frozenset()
    script = Script(servers={ADDR: [Session([PIX_BANNER, *PIX_DIALOGUE])]})
    report, record = run(_deliver_with(config), script)
    assert statuses(report) == [("sent", "2.0.0")]
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert not record.of_type(Sleep)


@pytest.mark.parameter("smtp_pix_workaround_maps")
def test_pix_workaround_maps_for_another_address_keep_the_global_list() -> None:
    _, record = _pix(
        pix_workaround_maps={"192.0.2.99": frozenset({"delay_dotcrlf"})},
        pix_workarounds=frozenset({"disable_esmtp"}),
    )
    assert record.flights()[0] == b"HELO client.example\r\n"
    assert not record.of_type(Sleep)


@pytest.mark.parameter("smtp_pix_workaround_maps")
def test_pix_workaround_maps_need_a_pix_banner() -> None:
    _, record = go(
        smtp(*OK_TRANSACTION),
        pix_workaround_maps={ADDR: frozenset({"disable_esmtp", "delay_dotcrlf"})},
    )
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert not record.of_type(Sleep)


# -- pix_workaround_threshold_time ----------------------------------------------------------


@pytest.mark.parameter("smtp_pix_workaround_threshold_time")
@pytest.mark.parametrize(
    ("arrival", "threshold", "sleeps"),
    [
        (QUEUED_LONG_AGO, 500.0, 1),
        (JUST_QUEUED, 500.0, 0),
        (JUST_QUEUED, 0.0, 1),
        (None, 500.0, 1),
    ],
    ids=["queued-long", "just-queued", "zero-threshold", "arrival-unknown"],
)
def test_pix_workaround_threshold_time_drops_delay_dotcrlf_for_young_mail(
    arrival: float | None, threshold: float, sleeps: int
) -> None:
    # rule 3.3: delay_dotcrlf only for a message queued at least the threshold
    report, record = _pix(
        envelope=_envelope(arrival),
        pix_workaround_threshold_time=threshold,
        pix_workaround_delay_time=4,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert record.flights()[0] == b"HELO client.example\r\n"  # disable_esmtp stays on
    assert [s.seconds for s in record.of_type(Sleep)] == [4] * sleeps


@pytest.mark.parameter("smtp_pix_workaround_threshold_time")
def test_pix_workaround_threshold_time_from_postconf_is_per_message_on_a_held_session() -> None:
    # one PIX connection, two messages: only the one queued long ago waits before "."
    config = ClientConfig.from_postconf(
        {"smtp_pix_workaround_threshold_time": "100s", "smtp_helo_name": "client.example"}
    )
    assert config.pix_workaround_threshold_time == 100.0
    steps = [PIX_BANNER, *PIX_DIALOGUE, *PIX_DIALOGUE[1:]]

    def client() -> Generator[IORequest, Any, list[DeliveryReport]]:
        session = yield from open_session(f"[{ADDR}]", config=config, clock=Clock(), rng=Rng())
        reports = [
            (yield from transact(session, _envelope(JUST_QUEUED), b"\r\none\r\n")),
            (yield from transact(session, _envelope(QUEUED_LONG_AGO), b"\r\ntwo\r\n")),
        ]
        yield from close_session(session)
        return reports

    reports, record = run(client(), Script(servers={ADDR: [Session(steps)]}))
    assert [statuses(r) for r in reports] == [[("sent", "2.0.0")]] * 2
    (sleep,) = record.of_type(Sleep)
    at = record.requests.index(sleep)
    before = b"".join(getattr(r, "data", b"") for r in record.requests[:at])
    after = b"".join(getattr(r, "data", b"") for r in record.requests[at:])
    assert before.endswith(b"\r\ntwo\r\n")  # the second body, flushed before the wait
    assert after.startswith(b".\r\n")


@pytest.mark.parametrize("arrival", [True, float("nan"), float("inf"), "0"])
def test_envelope_arrival_must_be_a_finite_time(arrival: Any) -> None:
    with pytest.raises(LocalProtocolError, match="arrival"):
        _envelope(arrival)


# -- connection_cache_on_demand, connection_cache_destinations, connection_cache_time_limit ---
# Batches of destination_recipient_limit are Postfix's separate delivery requests; keeping a
# session from one for the next is what its connection cache does.

TWO_BATCHES: dict[str, Any] = {"recipients": ("a@x", "b@x"), "destination_recipient_limit": 1}


@pytest.mark.parameter("smtp_connection_cache_on_demand")
def test_connection_cache_on_demand_keeps_the_session_for_the_next_batch() -> None:
    report, record = go(
        smtp(*OK_TRANSACTION, b"250 ok\r\n", *OK_TRANSACTION),
        connection_cache_on_demand=True,
        **TWO_BATCHES,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 1
    assert record.sent().count(b"RSET\r\n") == 1


@pytest.mark.parameter("smtp_connection_cache_on_demand")
def test_connection_cache_on_demand_off_opens_a_connection_per_batch() -> None:
    report, record = go(
        smtp(*OK_TRANSACTION),
        smtp(*OK_TRANSACTION),
        connection_cache_on_demand=False,
        **TWO_BATCHES,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 2
    assert all(record.sent(c).endswith(b".\r\nQUIT\r\n") for c in record.channels)
    assert b"RSET" not in record.sent()


@pytest.mark.parameter("smtp_connection_cache_destinations")
@pytest.mark.parametrize(
    ("destination", "listed", "connections"),
    [
        ("example.com", ("EXAMPLE.com",), 1),
        ("example.com", ("mx1.example.com",), 2),
        (f"[{ADDR}]", (ADDR,), 1),
        (f"[{ADDR}]:25", (f"[{ADDR}]",), 2),
    ],
    ids=["domain", "mx-host-is-not-the-destination", "bare-address", "brackets-never-match"],
)
def test_connection_cache_destinations_keep_sessions_without_on_demand(
    destination: str, listed: tuple[str, ...], connections: int
) -> None:
    # Postfix matches the first next hop's bare domain, without [] or port, case-insensitively
    config = ClientConfig.from_postconf(
        {
            "smtp_connection_cache_on_demand": "no",
            "smtp_connection_cache_destinations": " ".join(listed),
            "smtp_destination_recipient_limit": "1",
            "smtp_helo_name": "client.example",
        }
    )
    assert config.connection_cache_destinations.names() == tuple(n.lower() for n in listed)
    reused = smtp(*OK_TRANSACTION, b"250 ok\r\n", *OK_TRANSACTION)
    sessions = [reused] if connections == 1 else [smtp(*OK_TRANSACTION), smtp(*OK_TRANSACTION)]
    envelope = Envelope("a@example.org", (Recipient("a@x"), Recipient("b@x")))
    engine = deliver(destination, envelope, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    report, record = run(engine, Script(dns=MX2, servers={ADDR: sessions}))
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == connections


@pytest.mark.parameter("smtp_connection_cache_time_limit")
def test_connection_cache_time_limit_closes_a_session_idle_too_long() -> None:
    # support.world.Clock moves 10 ms per reading: a 1 ms limit is always exceeded. Postfix's
    # scache(8) just closes such a socket; smtpproto says QUIT first (rule 9.7).
    report, record = go(
        smtp(*OK_TRANSACTION),
        smtp(*OK_TRANSACTION),
        connection_cache_time_limit=0.001,
        **TWO_BATCHES,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    first, second = record.channels
    assert first.closed and record.sent(first).endswith(b".\r\nQUIT\r\n")
    assert b"RSET" not in record.sent(first)
    assert record.sent(second).startswith(b"EHLO ")


@pytest.mark.parameter("smtp_connection_cache_time_limit")
def test_connection_cache_time_limit_keeps_a_session_used_in_time() -> None:
    _, record = go(
        smtp(*OK_TRANSACTION, b"250 ok\r\n", *OK_TRANSACTION),
        connection_cache_time_limit=0.5,
        **TWO_BATCHES,
    )
    assert len(record.channels) == 1


@pytest.mark.parameter("smtp_connection_reuse_time_limit")
def test_connection_reuse_time_limit_ends_reuse_of_an_old_connection() -> None:
    # rule 9.1: past the limit since it opened, a connection is closed, not used again
    expired, old = go(
        smtp(*OK_TRANSACTION),
        smtp(*OK_TRANSACTION),
        connection_reuse_time_limit=0.001,
        **TWO_BATCHES,
    )
    assert statuses(expired) == [("sent", "2.0.0")] * 2
    assert len(old.channels) == 2
    _, young = go(
        smtp(*OK_TRANSACTION, b"250 ok\r\n", *OK_TRANSACTION),
        connection_reuse_time_limit=60,
        **TWO_BATCHES,
    )
    assert len(young.channels) == 1


@pytest.mark.parameter("transport_destination_recipient_limit")
@pytest.mark.parametrize(
    ("settings", "service", "per_transaction"),
    [
        ({}, None, 3),
        ({"default_destination_recipient_limit": "2"}, None, 2),
        ({"smtp_destination_recipient_limit": "1"}, None, 1),
        ({"transport_destination_recipient_limit": "1"}, None, 1),
        ({"relay_destination_recipient_limit": "1"}, "relay", 1),
        (
            {"default_destination_recipient_limit": "1", "smtp_destination_recipient_limit": "3"},
            None,
            3,
        ),
    ],
)
def test_destination_recipient_limit_splits_recipients_into_transactions(
    settings: dict[str, str], service: str | None, per_transaction: int
) -> None:
    # Postfix reads $transport_destination_recipient_limit, transport = the master.cf
    # service, defaulting to default_destination_recipient_limit
    config = ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", **settings}, service=service
    )
    sizes = [min(per_transaction, 3 - i) for i in range(0, 3, per_transaction)]
    steps: list[bytes] = []
    for n, size in enumerate(sizes):
        if n:
            steps.append(b"250 ok\r\n")  # the RSET probe before reuse (rule 9.4)
        steps += [b"250 ok\r\n" * (size + 1) + b"354 go\r\n", b"250 2.0.0 ok\r\n"]
    envelope = Envelope("a@example.org", tuple(Recipient(f"{c}@x") for c in "abc"))
    engine = deliver(f"[{ADDR}]", envelope, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    report, record = run(engine, Script(servers={ADDR: [smtp(*steps)]}))
    assert statuses(report) == [("sent", "2.0.0")] * 3
    assert record.sent().count(b"MAIL FROM") == len(sizes)


def test_another_services_recipient_limit_is_refused_by_name() -> None:
    with pytest.raises(LocalProtocolError, match="relay_destination_recipient_limit: this is smtp"):
        ClientConfig.from_postconf({"relay_destination_recipient_limit": "1"})


# -- routing -------------------------------------------------------------------------------

MX3 = {
    ("example.com", "MX"): (
        MXRecord(10, "mx1.example.com"),
        MXRecord(10, "mx2.example.com"),
        MXRecord(20, "mx3.example.com"),
    ),
    ("mx1.example.com", "A"): ("192.0.2.1",),
    ("mx2.example.com", "A"): ("192.0.2.2",),
    ("mx3.example.com", "A"): ("192.0.2.3",),
}
BUSY = Session([b"421 busy\r\n"])


@pytest.mark.parameter("smtp_mx_address_limit")
def test_mx_address_limit_caps_the_addresses_tried() -> None:
    servers = {a: [BUSY] for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3")}
    _, limited = go(destination="example.com", dns=MX3, servers=servers, mx_address_limit=2)
    assert len(_connects(limited)) == 2
    _, unlimited = go(destination="example.com", dns=MX3, servers=servers, mx_address_limit=0)
    assert len(_connects(unlimited)) == 3


@pytest.mark.parameter("smtp_mx_session_limit")
def test_mx_session_limit_caps_the_sessions_that_reached_the_handshake() -> None:
    # rule 14.7: each server here completes the handshake, then defers the sender
    soft = smtp(b"451 4.3.0 later\r\n250 ok\r\n554 no\r\n")
    servers = {"192.0.2.1": [soft], "192.0.2.2": [soft], "192.0.2.3": [smtp(*OK_TRANSACTION)]}
    report, record = go(destination="example.com", dns=MX3, servers=servers, mx_session_limit=1)
    assert _connects(record) == ["192.0.2.1"]
    assert statuses(report) == [("deferred", "4.3.0")]
    report, record = go(destination="example.com", dns=MX3, servers=servers, mx_session_limit=3)
    assert _connects(record) == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert statuses(report) == [("sent", "2.0.0")]


@pytest.mark.parameter("smtp_randomize_addresses")
def test_randomize_addresses_shuffles_equal_preferences_only() -> None:
    # rule 14.5: equal preferences in random order, lower preferences always first
    servers = {a: [BUSY] for a in ("192.0.2.1", "192.0.2.2", "192.0.2.3")}
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    orders: dict[bool, set[tuple[str, ...]]] = {True: set(), False: set()}
    for randomize in (True, False):
        config = ClientConfig(helo_name="client.example", randomize_addresses=randomize)
        for seed in range(16):
            engine = deliver(
                "example.com", env, b"x", config=config, clock=Clock(), rng=random.Random(seed)
            )
            _, record = run(engine, Script(dns=MX3, servers=servers))
            orders[randomize].add(tuple(_connects(record)))
    assert orders[False] == {("192.0.2.1", "192.0.2.2", "192.0.2.3")}
    assert orders[True] == {
        ("192.0.2.1", "192.0.2.2", "192.0.2.3"),
        ("192.0.2.2", "192.0.2.1", "192.0.2.3"),
    }


@pytest.mark.parameter("inet_protocols")
@pytest.mark.parametrize(("protocols", "lookups"), [("ipv4", ["A"]), ("all", ["A", "AAAA"])])
def test_inet_protocols_decide_which_address_records_are_looked_up(
    protocols: str, lookups: list[str]
) -> None:
    from smtpproto.requests import Resolve

    config = ClientConfig.from_postconf(
        {"inet_protocols": protocols, "smtp_helo_name": "client.example"}
    )
    dns = {**MX2, ("mx1.example.com", "AAAA"): ()}
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver("example.com", env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    _, record = run(engine, Script(dns=dns, servers={ADDR: [smtp(*OK_TRANSACTION)]}))
    asked = [r.rrtype for r in record.of_type(Resolve) if r.name == "mx1.example.com"]
    assert asked == lookups


@pytest.mark.parameter("ignore_mx_lookup_error")
def test_ignore_mx_lookup_error_falls_back_to_the_domains_address() -> None:
    from smtpproto.requests import DNSError

    dns = {("example.com", "MX"): DNSError("temporary", "SERVFAIL"), ("example.com", "A"): (ADDR,)}
    deferred, _ = go(destination="example.com", dns=dns)
    assert statuses(deferred) == [("deferred", "4.4.3")]
    sent, record = go(
        destination="example.com",
        dns=dns,
        servers={ADDR: [smtp(*OK_TRANSACTION)]},
        ignore_mx_lookup_error=True,
    )
    assert statuses(sent) == [("sent", "2.0.0")] and _connects(record) == [ADDR]


@pytest.mark.parameter("smtp_defer_if_no_mx_address_found")
@pytest.mark.parametrize(("defer", "status"), [(False, "bounced"), (True, "deferred")])
def test_defer_if_no_mx_address_found(defer: bool, status: str) -> None:
    dns = {("example.com", "MX"): (MXRecord(10, "mx.example.com"),), ("mx.example.com", "A"): ()}
    report, record = go(destination="example.com", dns=dns, defer_if_no_mx_address_found=defer)
    assert report.recipients[0].status == status
    assert not _connects(record)


@pytest.mark.parameter("smtp_fallback_relay", "lmtp_fallback_relay")
@pytest.mark.parametrize(
    ("settings", "lmtp", "relay"),
    [
        ({"fallback_relay": "[192.0.2.8]"}, False, "192.0.2.8"),
        (
            {"smtp_fallback_relay": "[192.0.2.9]", "fallback_relay": "[192.0.2.8]"},
            False,
            "192.0.2.9",
        ),
        ({"lmtp_fallback_relay": "inet:[192.0.2.9]:24"}, True, "192.0.2.9"),
    ],
)
def test_fallback_relay_gets_the_mail_the_destination_would_not(
    settings: dict[str, str], lmtp: bool, relay: str
) -> None:
    config = ClientConfig.from_postconf(settings, lmtp=lmtp)
    destination = "inet:[192.0.2.1]:24" if lmtp else f"[{ADDR}]"
    relay_server = Session(
        [b"220 r\r\n", b"250 r\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
    )
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(destination, env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    report, record = run(engine, Script(servers={ADDR: [BUSY], relay: [relay_server]}))
    assert _connects(record) == [ADDR, relay]
    assert statuses(report) == [("sent", "2.0.0")]


@pytest.mark.parameter("smtp_dns_support_level", "disable_dns_lookups")
@pytest.mark.parametrize(
    ("settings", "mx_lookup"),
    [
        ({}, True),
        ({"smtp_dns_support_level": "disabled"}, False),
        ({"disable_dns_lookups": "yes"}, False),
        ({"disable_dns_lookups": "yes", "smtp_dns_support_level": "enabled"}, True),
        ({"smtp_dns_support_level": "", "disable_dns_lookups": "no"}, True),
    ],
)
def test_dns_support_level_disabled_delivers_to_the_domains_address_without_mx(
    settings: dict[str, str], mx_lookup: bool
) -> None:
    from smtpproto.requests import Resolve

    # Postfix smtp(8): with DNS disabled there are no MX lookups, only host lookups
    config = ClientConfig.from_postconf({"smtp_helo_name": "client.example", **settings})
    dns = {**MX2, ("example.com", "A"): ("192.0.2.7",)}
    servers = {ADDR: [smtp(*OK_TRANSACTION)], "192.0.2.7": [smtp(*OK_TRANSACTION)]}
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver("example.com", env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    report, record = run(engine, Script(dns=dns, servers=servers))
    assert statuses(report) == [("sent", "2.0.0")]
    asked_mx = any(r.rrtype == "MX" for r in record.of_type(Resolve))
    assert asked_mx == mx_lookup
    assert _connects(record) == ([ADDR] if mx_lookup else ["192.0.2.7"])


# -- ports ---------------------------------------------------------------------------------


@pytest.mark.parameter("smtp_tcp_port", "lmtp_tcp_port", "known_tcp_ports")
@pytest.mark.parametrize(
    ("settings", "lmtp", "destination", "port"),
    [
        ({"smtp_tcp_port": "2525"}, False, f"[{ADDR}]", 2525),
        ({"smtp_tcp_port": "submission"}, False, f"[{ADDR}]", 587),
        ({"lmtp_tcp_port": "2424"}, True, f"inet:[{ADDR}]", 2424),
        ({"known_tcp_ports": "smtp=25, alt=2626"}, False, f"[{ADDR}]:alt", 2626),
        ({}, False, f"[{ADDR}]:smtps", 465),
    ],
)
def test_ports_come_from_tcp_port_and_known_tcp_ports(
    settings: dict[str, str], lmtp: bool, destination: str, port: int
) -> None:
    config = ClientConfig.from_postconf(settings, lmtp=lmtp)
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(destination, env, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    _, record = run(engine, Script(servers={ADDR: [BUSY]}))
    assert [c.port for c in record.of_type(Connect)] == [port]


def test_a_service_name_not_in_known_tcp_ports_is_refused() -> None:
    config = ClientConfig.from_postconf({"known_tcp_ports": "smtp=25"})
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    with pytest.raises(LocalProtocolError, match="unknown service 'submission'"):
        run(
            deliver(f"[{ADDR}]:submission", env, b"x", config=config, clock=Clock(), rng=Rng()),
            Script(),
        )


# -- content: MIME conversion and CHUNKING --------------------------------------------------

NO_8BITMIME = b"250-mx\r\n250 PIPELINING\r\n"
EIGHT_BIT = "Subject: t\r\n\r\ncaf\u00e9\r\n".encode()


@pytest.mark.parameter("disable_mime_output_conversion")
@pytest.mark.parametrize(("disabled", "status"), [(False, "sent"), (True, "bounced")])
def test_disable_mime_output_conversion_refuses_8bit_for_a_7bit_server(
    disabled: bool, status: str
) -> None:
    report, record = go(
        smtp(*OK_TRANSACTION, ehlo=NO_8BITMIME),
        message=EIGHT_BIT,
        disable_mime_output_conversion=disabled,
    )
    assert report.recipients[0].status == status
    if disabled:
        assert report.recipients[0].dsn == "5.6.3" and b"MAIL FROM" not in record.sent()
    else:
        assert b"caf=C3=A9" in record.sent() and record.sent().isascii()


def _nested_8bit(depth: int) -> bytes:
    # `depth` multiparts, each the first part of the one before, around one 8-bit leaf.
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\r\n\r\n--n%d\r\n" % (i, i)
        for i in range(depth)
    )
    return b"Subject: t\r\nMIME-Version: 1.0\r\n" + head + b"\r\ncaf\xc3\xa9\r\n"


@pytest.mark.parameter("mime_nesting_limit")
@pytest.mark.parametrize(("limit", "status"), [("4", "sent"), ("3", "bounced")])
def test_mime_nesting_limit_bounds_the_conversion_for_a_7bit_server(
    limit: str, status: str
) -> None:
    # Rule 8.5: deeper nesting than the limit is refused 5.6.0, and no partial message goes out.
    config = ClientConfig.from_postconf({"mime_nesting_limit": limit})
    report, record = go(
        smtp(*OK_TRANSACTION, ehlo=NO_8BITMIME),
        message=_nested_8bit(4),
        mime_nesting_limit=config.mime_nesting_limit,
    )
    (result,) = report.recipients
    assert result.status == status
    if status == "sent":
        assert b"caf=C3=A9\r\n" in record.sent() and record.sent().isascii()
    else:
        assert (result.dsn, result.diagnostic) == ("5.6.0", "MIME nesting exceeds safety limit")
        assert b"\r\n.\r\n" not in record.sent()


LONG_BOUNDARY = b"B" * 50
# A line that starts like the boundary but differs after its 10th character, then 8-bit text.
NEAR_MISS = b"\r\n".join(
    [
        b"Subject: t",
        b"MIME-Version: 1.0",
        b"Content-Type: multipart/mixed; boundary=" + LONG_BOUNDARY,
        b"",
        b"--" + LONG_BOUNDARY,
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"caf\xc3\xa9",
        b"--" + LONG_BOUNDARY[:10] + b"X",
        b"Content-Transfer-Encoding: 8bit",
        b"",
        b"\xc3\xa9t\xc3\xa9",
        b"--" + LONG_BOUNDARY + b"--",
        b"",
    ]
)


@pytest.mark.parameter("mime_boundary_length_limit")
@pytest.mark.parametrize(("limit", "new_part"), [("10", True), ("2048", False)])
def test_mime_boundary_length_limit_is_how_much_of_a_boundary_the_conversion_compares(
    limit: str, new_part: bool
) -> None:
    # postconf(5): boundaries that do not differ in their first mime_boundary_length_limit
    # characters look the same. With 10 the near miss opens a part, whose header the
    # conversion rewrites; with the default it is text of the first part, left as it is.
    config = ClientConfig.from_postconf({"mime_boundary_length_limit": limit})
    report, record = go(
        smtp(*OK_TRANSACTION, ehlo=NO_8BITMIME),
        message=NEAR_MISS,
        mime_boundary_length_limit=config.mime_boundary_length_limit,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    rewritten = b"X\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    assert (rewritten in record.sent()) is new_part
    assert record.sent().count(b"Content-Transfer-Encoding: 8bit") == (0 if new_part else 1)


@pytest.mark.parameter("smtpproto_chunking")
@pytest.mark.parametrize(("value", "bdat"), [("yes", True), ("no", False)])
def test_smtpproto_chunking_switches_bdat_on_from_postfix_syntax(value: str, bdat: bool) -> None:
    config = ClientConfig.from_postconf({"smtpproto_chunking": value})
    assert config.chunking is bdat
    ehlo = b"250-mx\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
    steps = [b"250 ok\r\n250 ok\r\n", b"250 2.0.0 ok\r\n"] if bdat else list(OK_TRANSACTION)
    report, record = _deliver_config(config, smtp(*steps, ehlo=ehlo))
    assert statuses(report) == [("sent", "2.0.0")]
    assert (b"BDAT " in record.sent()) == bdat
    assert (b"DATA\r\n" in record.sent()) != bdat


def _deliver_config(config: ClientConfig, *sessions: Session) -> tuple[DeliveryReport, Any]:
    env = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(
        f"[{ADDR}]", env, b"Subject: t\r\n\r\nx\r\n", config=config, clock=Clock(), rng=Rng()
    )
    return run(engine, Script(servers={ADDR: list(sessions)}))


# -- best_mx_transport ---------------------------------------------------------------------

MX_IS_ME = {
    ("example.com", "MX"): (MXRecord(10, "mx.example.com"),),
    ("mx.example.com", "A"): ("192.0.2.53",),
}


@pytest.mark.parameter("best_mx_transport")
def test_best_mx_transport_takes_mail_for_which_this_host_is_the_best_mx() -> None:
    # rule 14.6: without it, mail whose best MX is this host bounces as a loop
    looped, record = go(destination="example.com", dns=MX_IS_ME, myhostname="mx.example.com")
    assert statuses(looped) == [("bounced", "5.4.6")] and not _connects(record)
    report, record = go(
        destination="example.com",
        dns=MX_IS_ME,
        servers={"192.0.2.7": [smtp(*OK_TRANSACTION)]},
        myhostname="mx.example.com",
        best_mx_transport="[192.0.2.7]:10025",
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert [(c.address, c.port) for c in record.of_type(Connect)] == [("192.0.2.7", 10025)]


@pytest.mark.parameter("best_mx_transport")
def test_best_mx_transport_is_not_used_while_a_better_mx_exists() -> None:
    dns = {
        ("example.com", "MX"): (MXRecord(5, "other.example.com"), MXRecord(10, "mx.example.com")),
        ("other.example.com", "A"): (ADDR,),
        ("mx.example.com", "A"): ("192.0.2.53",),
    }
    report, record = go(
        destination="example.com",
        dns=dns,
        servers={ADDR: [smtp(*OK_TRANSACTION)]},
        myhostname="mx.example.com",
        best_mx_transport="[192.0.2.7]:10025",
    )
    assert statuses(report) == [("sent", "2.0.0")] and _connects(record) == [ADDR]
