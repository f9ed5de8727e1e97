"""Scripted dialogues for smtp(8) parameters that came off the not-yet-in-effect list.

delay_logging_resolution_limit (report log lines), smtp_skip_4xx_greeting,
smtp_pix_workaround_maps and smtp_pix_workaround_threshold_time (rules 3.1, 3.3, 8.4).
"""

from __future__ import annotations

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


@pytest.mark.parametrize(
    ("limit", "text"), [("0", "0"), ("1", "0"), ("2", "0.01"), ("3", "0.012"), ("6", "0.012")]
)
def test_delay_logging_resolution_limit_caps_the_decimals_of_delay(limit: str, text: str) -> None:
    # Postfix format_tv: two significant digits, at most the limit's digits after the point
    config = ClientConfig.from_postconf({"delay_logging_resolution_limit": limit})
    line = format_log_line(_result(0.0123), resolution=config.delay_logging_resolution_limit)
    assert f", delay={text}, " in line


def test_delay_logging_resolution_limit_zero_logs_whole_seconds_rounded_half_up() -> None:
    config = ClientConfig(delay_logging_resolution_limit=0)
    limit = config.delay_logging_resolution_limit
    assert [format_delay(s, limit) for s in (0.4, 0.5, 1.5, 2.25)] == ["0", "1", "2", "2"]


def test_delay_logging_resolution_limit_applies_to_a_delivered_report() -> None:
    # support.world.Clock: two 10 ms readings between the request start and the result
    report, _ = go(smtp(*OK_TRANSACTION), per_request_deadline=False)
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


def test_skip_4xx_greeting_on_moves_to_the_next_mx() -> None:
    report, record = go(
        destination="example.com",
        dns=MX2,
        servers={"192.0.2.1": [Session([b"421 busy\r\n"])], "192.0.2.2": [smtp(*OK_TRANSACTION)]},
        skip_4xx_greeting=True,
    )
    assert _connects(record) == ["192.0.2.1", "192.0.2.2"]
    assert statuses(report) == [("sent", "2.0.0")]


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


def test_pix_workaround_maps_entry_replaces_the_global_workarounds() -> None:
    # rule 3.3: only delay_dotcrlf for this address, so EHLO is not disabled
    _, record = _pix(
        pix_workaround_maps={ADDR: frozenset({"delay_dotcrlf"})}, pix_workaround_delay_time=3
    )
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert [s.seconds for s in record.of_type(Sleep)] == [3]


def test_pix_workaround_maps_empty_entry_turns_the_workarounds_off() -> None:
    config = ClientConfig.from_postconf(
        {"smtp_pix_workaround_maps": {ADDR: ""}, "smtp_helo_name": "client.example"}
    )
    assert config.pix_workaround_maps == {ADDR: frozenset()}
    script = Script(servers={ADDR: [Session([PIX_BANNER, *PIX_DIALOGUE])]})
    report, record = run(_deliver_with(config), script)
    assert statuses(report) == [("sent", "2.0.0")]
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert not record.of_type(Sleep)


def test_pix_workaround_maps_for_another_address_keep_the_global_list() -> None:
    _, record = _pix(
        pix_workaround_maps={"192.0.2.99": frozenset({"delay_dotcrlf"})},
        pix_workarounds=frozenset({"disable_esmtp"}),
    )
    assert record.flights()[0] == b"HELO client.example\r\n"
    assert not record.of_type(Sleep)


def test_pix_workaround_maps_need_a_pix_banner() -> None:
    _, record = go(
        smtp(*OK_TRANSACTION),
        pix_workaround_maps={ADDR: frozenset({"disable_esmtp", "delay_dotcrlf"})},
    )
    assert record.flights()[0] == b"EHLO client.example\r\n"
    assert not record.of_type(Sleep)


# -- pix_workaround_threshold_time ----------------------------------------------------------


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


def test_connection_cache_on_demand_keeps_the_session_for_the_next_batch() -> None:
    report, record = go(
        smtp(*OK_TRANSACTION, b"250 ok\r\n", *OK_TRANSACTION),
        connection_cache_on_demand=True,
        **TWO_BATCHES,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == 1
    assert record.sent().count(b"RSET\r\n") == 1


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
    assert config.connection_cache_destinations == listed
    reused = smtp(*OK_TRANSACTION, b"250 ok\r\n", *OK_TRANSACTION)
    sessions = [reused] if connections == 1 else [smtp(*OK_TRANSACTION), smtp(*OK_TRANSACTION)]
    envelope = Envelope("a@example.org", (Recipient("a@x"), Recipient("b@x")))
    engine = deliver(destination, envelope, b"\r\nx\r\n", config=config, clock=Clock(), rng=Rng())
    report, record = run(engine, Script(dns=MX2, servers={ADDR: sessions}))
    assert statuses(report) == [("sent", "2.0.0")] * 2
    assert len(record.channels) == connections


def test_connection_cache_time_limit_closes_a_session_idle_too_long() -> None:
    # support.world.Clock moves 10 ms per reading: a zero limit is always exceeded
    report, record = go(
        smtp(*OK_TRANSACTION),
        smtp(*OK_TRANSACTION),
        connection_cache_time_limit=0,
        **TWO_BATCHES,
    )
    assert statuses(report) == [("sent", "2.0.0")] * 2
    first, second = record.channels
    assert first.closed and b"QUIT" not in record.sent(first)  # scache closes, no QUIT
    assert record.sent(second).startswith(b"EHLO ")


def test_connection_cache_time_limit_keeps_a_session_used_in_time() -> None:
    _, record = go(
        smtp(*OK_TRANSACTION, b"250 ok\r\n", *OK_TRANSACTION),
        connection_cache_time_limit=0.5,
        **TWO_BATCHES,
    )
    assert len(record.channels) == 1
