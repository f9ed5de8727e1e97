"""Envelope validation and Postfix-style report lines (rule 6.2, RFC 3461; qmgr log format)."""

from __future__ import annotations

import pytest

from smtpproto import LocalProtocolError
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import RecipientResult, format_delay, format_log_line


def test_notify_is_put_in_postfix_fixed_order() -> None:
    # rule 6.2: SUCCESS,FAILURE,DELAY whatever order the caller used
    r = Recipient("b@example.com", notify=("delay", "SUCCESS"))
    assert r.notify == ("SUCCESS", "DELAY")


@pytest.mark.parametrize("notify", [("NEVER", "SUCCESS"), ("SOMETIMES",), (), ("DELAY", "delay")])
def test_invalid_notify_lists_are_refused(notify: tuple[str, ...]) -> None:
    with pytest.raises(LocalProtocolError, match="notify"):
        Recipient("b@example.com", notify=notify)


@pytest.mark.parametrize("field", ["address", "orcpt"])
def test_crlf_in_recipient_fields_is_refused(field: str) -> None:
    kwargs = {"address": "b@example.com", "orcpt": "rfc822;b@example.com"}
    kwargs[field] = "b@example.com\r\nRSET"
    with pytest.raises(LocalProtocolError, match=field):
        Recipient(**kwargs)  # type: ignore[arg-type]


def test_orcpt_needs_an_address_type() -> None:
    with pytest.raises(LocalProtocolError, match="orcpt"):
        Recipient("b@example.com", orcpt="b@example.com")


def test_envelope_needs_a_recipient() -> None:
    with pytest.raises(LocalProtocolError, match="recipients"):
        Envelope("a@example.com", ())


def test_null_sender_is_allowed() -> None:
    assert Envelope("", (Recipient("b@example.com"),)).sender == ""


@pytest.mark.parametrize("ret", ["full", "NONE"])
def test_ret_must_be_full_or_hdrs(ret: str) -> None:
    with pytest.raises(LocalProtocolError, match="ret"):
        Envelope("a@x", (Recipient("b@y"),), ret=ret)  # type: ignore[arg-type]


def test_envid_over_100_characters_is_refused() -> None:
    # RFC 3461 4.4
    with pytest.raises(LocalProtocolError, match="envid"):
        Envelope("a@x", (Recipient("b@y"),), envid="x" * 101)


def test_non_ascii_envelope_asks_for_smtputf8() -> None:
    # RFC 6531 3.4; rule 3.10 decides what happens when the server lacks SMTPUTF8
    assert Envelope("a@x", (Recipient("bé@y"),)).smtputf8
    assert not Envelope("a@x", (Recipient("b@y"),)).smtputf8


def _result(**kw: object) -> RecipientResult:
    base: dict[str, object] = {
        "address": "b@example.com",
        "status": "sent",
        "dsn": "2.0.0",
        "reply": None,
        "relay": "mx.example[192.0.2.1]:25",
        "diagnostic": "250 2.0.0 Ok",
        "delay": 0.12,
    }
    base.update(kw)
    return RecipientResult(**base)  # type: ignore[arg-type]


def test_log_line_has_postfix_layout() -> None:
    assert format_log_line(_result()) == (
        "to=<b@example.com>, relay=mx.example[192.0.2.1]:25, delay=0.12, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok)"
    )


def test_log_line_without_relay_says_none() -> None:
    line = format_log_line(
        _result(status="deferred", dsn="4.3.0", relay=None, diagnostic="server unavailable")
    )
    assert "relay=none," in line and line.endswith("status=deferred (server unavailable)")


@pytest.mark.parametrize(
    ("seconds", "text"), [(0.0, "0"), (0.004, "0"), (0.12, "0.12"), (1.2, "1.2"), (5.0, "5")]
)
def test_delay_is_formatted_like_postfix(seconds: float, text: str) -> None:
    assert format_delay(seconds) == text


@pytest.mark.parametrize(
    ("status", "dsn"), [("sent", "5.0.0"), ("bounced", "2.0.0"), ("deferred", "2.0.0")]
)
def test_result_status_and_dsn_class_must_agree(status: str, dsn: str) -> None:
    with pytest.raises(LocalProtocolError, match="dsn"):
        _result(status=status, dsn=dsn)


def test_result_status_must_be_known() -> None:
    with pytest.raises(LocalProtocolError, match="status"):
        _result(status="delivered")
