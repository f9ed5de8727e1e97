"""Request deadlines (rule 10.2): Postfix 3.7's smtp_per_request_deadline and smtp_min_data_rate.

The clock here advances a fixed step at each reading, so the budget each request gets is
known exactly: a peer that trickles one byte per read is what the deadline exists for.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from support.world import ADDR, DEST, Record, Rng, Script, Session, run, smtp, statuses

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.engine.session import Budget
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import IOTimeout, Receive, Send


class SteppingClock:
    """A clock that advances `step` seconds at every reading."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def deliver_with(
    session: Session, step: float, message: bytes = b"Subject: t\r\n\r\nhi\r\n", **config: Any
) -> tuple[DeliveryReport, Record]:
    return deliver_config(ClientConfig(**config), session, step, message)


def deliver_config(
    config: ClientConfig,
    session: Session,
    step: float,
    message: bytes = b"Subject: t\r\n\r\nhi\r\n",
) -> tuple[DeliveryReport, Record]:
    cfg = replace(config, helo_name="client.example")
    envelope = Envelope("a@example.org", (Recipient("b@example.com"),))
    engine = deliver(DEST, envelope, message, config=cfg, clock=SteppingClock(step), rng=Rng())
    return run(engine, Script(servers={ADDR: [session]}))


GREETING = b"220 mx.example ESMTP trickled one byte per read\r\n"
TRICKLE = Session([bytes([b]) for b in GREETING])


@pytest.mark.parameter("smtp_per_request_deadline", "smtp_helo_timeout")
def test_a_trickled_greeting_times_out_at_the_deadline() -> None:
    # Rule 10.2 with deadlines: helo_timeout bounds the whole greeting, however it is split.
    report, record = deliver_with(TRICKLE, 0.5, helo_timeout=2.0, per_request_deadline=True)
    (result,) = report.recipients
    assert (result.status, result.dsn) == ("deferred", "4.4.2")
    assert "timed out while receiving the initial server greeting" in result.diagnostic
    timeouts = [r.timeout for r in record.of_type(Receive)]
    # Each read gets what is left of the 2 s: one clock step less each time.
    assert timeouts == pytest.approx([1.5, 1.0, 0.5])


@pytest.mark.parameter("smtp_per_request_deadline")
def test_without_deadlines_each_read_gets_the_whole_limit() -> None:
    # Rule 10.2 as in Postfix's default (smtp_per_request_deadline=no): per read, so the
    # trickle takes as long as the server likes and the session goes on.
    session = Session([*TRICKLE.steps, b"250 mx\r\n", b"250 ok\r\n", b"250 ok\r\n"])
    session.steps += [b"354 go\r\n", b"250 ok\r\n"]
    report, record = deliver_with(session, 0.5, helo_timeout=2.0, per_request_deadline=False)
    assert statuses(report) == [("sent", "2.0.0")]
    greeting_reads = record.of_type(Receive)[: len(GREETING)]
    assert {r.timeout for r in greeting_reads} == {2.0}


@pytest.mark.parameter("smtp_per_request_deadline")
def test_from_postconf_keeps_postfixs_default_and_the_library_turns_deadlines_on() -> None:
    assert ClientConfig().per_request_deadline is True
    assert ClientConfig.from_postconf({}).per_request_deadline is False
    assert ClientConfig.from_postconf({"smtp_per_request_deadline": "yes"}).per_request_deadline


@pytest.mark.parameter("smtp_per_record_deadline", "lmtp_per_record_deadline")
@pytest.mark.parametrize("lmtp", [False, True], ids=["smtp", "lmtp"])
def test_the_pre_37_name_per_record_deadline_is_what_the_deadline_defaults_to(
    lmtp: bool,
) -> None:
    # postconf -d: smtp_per_request_deadline = ${smtp_per_record_deadline?{...}:{no}}, and
    # the lmtp_ names alike. The old name turns deadlines on ...
    prefix = "lmtp_" if lmtp else "smtp_"
    settings = {prefix + "per_record_deadline": "yes"}
    on = ClientConfig.from_postconf(settings, lmtp=lmtp)
    report, record = deliver_config(replace(on, helo_timeout=2.0), TRICKLE, 0.5)
    assert statuses(report) == [("deferred", "4.4.2")]
    assert [r.timeout for r in record.of_type(Receive)] == pytest.approx([1.5, 1.0, 0.5])
    # ... the new name wins when both are set, and an empty old name is no name.
    both = {**settings, prefix + "per_request_deadline": "no"}
    assert ClientConfig.from_postconf(both, lmtp=lmtp).per_request_deadline is False
    empty = {prefix + "per_record_deadline": ""}
    assert ClientConfig.from_postconf(empty, lmtp=lmtp).per_request_deadline is False


def test_each_client_reads_only_its_own_per_record_deadline() -> None:
    with pytest.raises(ValueError, match="lmtp\\(8\\) reads lmtp_per_record_deadline instead"):
        ClientConfig.from_postconf({"smtp_per_record_deadline": "yes"}, lmtp=True)
    with pytest.raises(ValueError, match="an LMTP parameter"):
        ClientConfig.from_postconf({"lmtp_per_record_deadline": "yes"})
    main_cf = "smtp_per_record_deadline = yes\nlmtp_per_record_deadline = no\n"
    assert ClientConfig.from_main_cf(main_cf).per_request_deadline is True
    assert ClientConfig.from_main_cf(main_cf, lmtp=True).per_request_deadline is False


BODY = b"Subject: big\r\n\r\n" + (b"x" * 998 + b"\r\n") * 200  # about 200 kB: four writes


@pytest.mark.parameter("smtp_min_data_rate", "smtp_data_xfer_timeout")
@pytest.mark.parametrize(("rate", "status"), [(500, "sent"), (10**9, "deferred")])
def test_content_writes_earn_time_at_the_minimum_data_rate(rate: int, status: str) -> None:
    # smtp_min_data_rate: each write of N octets adds N/rate seconds, never past the whole
    # data_xfer_timeout ahead. At 40 s per clock reading, 180 s last three writes without it.
    slow = {
        "helo_timeout": 10_000.0,
        "mail_timeout": 10_000.0,
        "rcpt_timeout": 10_000.0,
        "data_init_timeout": 10_000.0,
        "data_done_timeout": 10_000.0,
    }
    report, record = deliver_with(
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n"),
        40.0,
        message=BODY,
        data_xfer_timeout=180.0,
        min_data_rate=rate,
        **slow,
    )
    (result,) = report.recipients
    assert result.status == status
    content = [r for r in record.of_type(Send) if len(r.data) >= 65536]
    if status == "sent":
        assert len(content) >= 3
        assert all(r.timeout is not None and r.timeout <= 180.0 for r in content)
    else:
        assert "timed out while sending message body" in result.diagnostic


def test_budget_without_deadline_gives_every_call_the_whole_limit() -> None:
    clock = SteppingClock(100.0)
    budget = Budget(clock, 30.0, deadline=False)
    assert [budget.timeout() for _ in range(3)] == [30.0, 30.0, 30.0]


def test_budget_with_deadline_counts_down_and_then_times_out() -> None:
    clock = SteppingClock(10.0)
    budget = Budget(clock, 30.0, deadline=True)  # reads 1010: the deadline is 1040
    assert budget.timeout() == pytest.approx(20.0)
    assert budget.timeout() == pytest.approx(10.0)
    with pytest.raises(IOTimeout, match=r"deadline of 30\.0s"):
        budget.timeout()


def test_budget_credit_never_reaches_beyond_the_whole_limit_ahead() -> None:
    clock = SteppingClock(0.0)
    budget = Budget(clock, 180.0, deadline=True)
    budget.credit(1_000_000, 500)  # 2000 s earned, capped at 180 s from now
    assert budget.timeout() == pytest.approx(180.0)
    clock.now += 100.0
    budget.credit(5_000, 500)  # 10 s earned: 80 + 10 left
    assert budget.timeout() == pytest.approx(90.0)


def test_budget_of_no_limit_never_times_out() -> None:
    budget = Budget(SteppingClock(1e6), None, deadline=True)
    assert budget.timeout() is None
