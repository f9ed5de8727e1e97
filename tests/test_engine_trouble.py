"""Failure classification and per-recipient bookkeeping (rules 2, 14.7, 14.8)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from smtpproto import LocalProtocolError
from smtpproto.engine.trouble import (
    Ledger,
    Server,
    Stage,
    connect_trouble,
    decide,
    is_protocol_error_code,
    local_trouble,
    stream_trouble,
)
from smtpproto.requests import ConnectFailed, ConnectionLost, IOTimeout

MX = Server("mx.example", "192.0.2.1", 25)
FINAL = Server("mx.example", "192.0.2.1", 25, final=True)


def ticking() -> Callable[[], float]:
    now = [100.0]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    return clock


@pytest.mark.parametrize(
    ("dsn", "final", "expected"),
    [
        ("4.4.2", False, "keep"),
        ("4.4.2", True, "deferred"),
        ("5.1.1", False, "bounced"),  # rule 2.2: hard bounces even with MX hosts left
        ("5.1.1", True, "bounced"),
    ],
)
def test_status_class_and_final_server_decide_the_outcome(
    dsn: str, final: bool, expected: str
) -> None:
    # rule 2.2
    assert decide(local_trouble(dsn, "x"), final=final) == expected


def test_soft_non_final_hard_status_is_kept_until_the_final_server() -> None:
    # rule 2.3 (SMTPUTF8, 3.10)
    trouble = local_trouble("5.6.7", "needs SMTPUTF8", soft_non_final=True)
    assert decide(trouble, final=False) == "keep"
    assert decide(trouble, final=True) == "bounced"


@pytest.mark.parametrize(
    ("stage", "text"),
    [
        (Stage.GREETING, "receiving the initial server greeting"),
        (Stage.EHLO, "performing the EHLO handshake"),
        (Stage.RCPT, "sending RCPT TO"),
        (Stage.DOT, "sending end of data -- message may be sent more than once"),
    ],
)
def test_lost_connection_texts_follow_postfix_stages(stage: Stage, text: str) -> None:
    # rules 2.7, 2.9
    trouble = stream_trouble(MX, ConnectionLost("reset"), stage)
    assert (trouble.dsn, trouble.diagnostic) == (
        "4.4.2",
        f"lost connection with mx.example[192.0.2.1] while {text}",
    )
    assert trouble.site


def test_timeout_text_says_conversation_timed_out() -> None:
    # rule 10.3
    trouble = stream_trouble(MX, IOTimeout("slow"), Stage.MAIL)
    assert (
        trouble.diagnostic
        == "conversation with mx.example[192.0.2.1] timed out while sending MAIL FROM"
    )


def test_connect_failure_is_4_4_1_with_address_and_port() -> None:
    # rule 14.7
    trouble = connect_trouble(MX, ConnectFailed("Connection refused"))
    assert (trouble.dsn, trouble.diagnostic) == (
        "4.4.1",
        "connect to mx.example[192.0.2.1]:25: Connection refused",
    )


@pytest.mark.parametrize(
    ("code", "flag"),
    [
        (250, True),
        (354, True),
        (421, False),
        (500, True),
        (509, True),
        (510, False),
        (550, False),
        (555, True),
        (600, True),
    ],
)
def test_protocol_error_codes(code: int, flag: bool) -> None:
    # rule 2.6
    assert is_protocol_error_code(code) is flag


def test_each_recipient_is_marked_once() -> None:
    # rule 0: exactly one outcome per recipient
    ledger = Ledger(["a@x", "b@x"], clock=ticking())
    ledger.fail(local_trouble("5.1.1", "no"), FINAL, [0])
    with pytest.raises(LocalProtocolError):
        ledger._mark(0, "bounced", "5.1.1", None, None, "again")


def test_bulk_failure_leaves_marked_recipients_alone() -> None:
    # rule 10.3: recipients already rejected or delivered keep their outcome
    ledger = Ledger(["a@x", "b@x"], clock=ticking())
    ledger.fail(local_trouble("5.1.1", "no"), FINAL, [0])
    ledger.fail(stream_trouble(FINAL, ConnectionLost("x"), Stage.DATA), FINAL)
    results = ledger.results()
    assert [(r.status, r.dsn) for r in results] == [("bounced", "5.1.1"), ("deferred", "4.4.2")]
    assert results[1].relay == "mx.example[192.0.2.1]:25"
    assert results[1].delay > 0


def test_keep_records_nothing_but_remembers_the_last_status() -> None:
    # rules 2.2, 14.8
    ledger = Ledger(["a@x"], clock=ticking())
    assert ledger.fail(local_trouble("4.2.0", "later"), MX) == "keep"
    assert ledger.pending == (0,)
    ledger.finish([0])
    (r,) = ledger.results()
    assert (r.status, r.dsn, r.diagnostic) == ("deferred", "4.2.0", "later")


def test_end_of_list_without_any_status_is_4_3_0() -> None:
    # rule 14.8
    ledger = Ledger(["a@x"], clock=ticking())
    ledger.finish([0])
    (r,) = ledger.results()
    assert (r.status, r.dsn) == ("deferred", "4.3.0")
    assert r.diagnostic == "server unavailable or unable to receive mail"


def test_hard_status_from_fallback_relay_becomes_4_3_5() -> None:
    # rule 14.8
    ledger = Ledger(["a@x"], clock=ticking())
    ledger.last = (local_trouble("5.4.4", "not found"), None)
    ledger.finish([0], hard_is_configuration=True)
    assert ledger.results()[0].dsn == "4.3.5"


def test_site_failure_deferred_at_final_server_means_destination_down() -> None:
    # rule 2.1
    ledger = Ledger(["a@x"], clock=ticking())
    ledger.fail(connect_trouble(FINAL, ConnectFailed("refused")), FINAL)
    assert ledger.destination_down


def test_completed_session_prevents_destination_down() -> None:
    # rules 2.1, 7.10
    ledger = Ledger(["a@x", "b@x"], clock=ticking())
    ledger.completed_session = True
    ledger.fail(connect_trouble(FINAL, ConnectFailed("refused")), FINAL)
    assert not ledger.destination_down


def test_results_refuse_unmarked_recipients() -> None:
    ledger = Ledger(["a@x"], clock=ticking())
    with pytest.raises(LocalProtocolError, match="no result"):
        ledger.results()
