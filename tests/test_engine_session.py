"""Scripted dialogues for the session start and end (rules 3, 9.7, 13, 6.5, 8.4)."""

from __future__ import annotations

import pytest
from support.world import GREETING, Session, go, smtp, statuses

from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import ConnectionLost, IOTimeout, Sleep

OK_TRANSACTION = (b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n")


def test_greeting_any_2xx_is_accepted() -> None:
    # rule 3.1
    report, _ = go(smtp(*OK_TRANSACTION, greeting=b"221 odd but positive\r\n"))
    assert statuses(report) == [("sent", "2.0.0")]


def test_greeting_4xx_is_a_site_failure_deferred_at_the_final_server() -> None:
    # rule 3.1: site failure; QUIT follows (9.8)
    report, record = go(Session([b"421 4.3.2 busy\r\n"]))
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.3.2")
    assert r.diagnostic == "host 192.0.2.1[192.0.2.1] refused to talk to me: 421 4.3.2 busy"
    assert record.sent() == b"QUIT\r\n"
    assert report.destination_down


def test_greeting_5xx_with_skip_5xx_greeting_is_treated_as_4xx() -> None:
    # rule 3.1
    report, _ = go(Session([b"554 5.7.1 go away\r\n"]))
    assert statuses(report) == [("deferred", "4.7.1")]


def test_greeting_5xx_without_skip_5xx_greeting_bounces() -> None:
    # rule 3.1
    report, _ = go(Session([b"554 5.7.1 go away\r\n"]), skip_5xx_greeting=False)
    assert statuses(report) == [("bounced", "5.7.1")]


def test_greeting_timeout_has_greeting_stage_text() -> None:
    # rules 3.9, 2.7
    report, record = go(Session([IOTimeout("slow")]))
    (r,) = report.recipients
    assert r.diagnostic.endswith("timed out while receiving the initial server greeting")
    assert b"QUIT" not in record.sent()


def test_ehlo_sent_by_default_even_without_esmtp_in_banner() -> None:
    # rule 3.4
    _, record = go(smtp(*OK_TRANSACTION, greeting=b"220 mx.example\r\n"))
    assert record.flights()[0] == b"EHLO client.example\r\n"


def test_without_always_send_ehlo_the_banner_decides() -> None:
    # rule 3.4: EHLO only when the banner has the word ESMTP
    _, plain = go(
        Session(
            [
                b"220 mx.example\r\n",
                b"250 hi\r\n",
                b"250 ok\r\n",
                b"250 ok\r\n",
                b"354 go\r\n",
                b"250 ok\r\n",
            ]
        ),
        always_send_ehlo=False,
    )
    assert plain.flights()[0] == b"HELO client.example\r\n"
    _, esmtp = go(smtp(*OK_TRANSACTION), always_send_ehlo=False)
    assert esmtp.flights()[0] == b"EHLO client.example\r\n"


def test_never_send_ehlo_sends_helo() -> None:
    # rule 3.4
    _, record = go(
        Session(
            [GREETING, b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
        ),
        never_send_ehlo=True,
    )
    assert record.flights()[0] == b"HELO client.example\r\n"


def test_ehlo_421_is_a_site_failure_without_helo_fallback() -> None:
    # rule 3.5
    report, record = go(Session([GREETING, b"421 4.7.0 closing\r\n"]))
    assert b"HELO" not in record.sent()
    assert statuses(report) == [("deferred", "4.7.0")]


def test_ehlo_rejected_falls_back_to_helo() -> None:
    # rule 3.5
    report, record = go(
        Session(
            [
                GREETING,
                b"502 5.5.2 what\r\n",
                b"250 hi\r\n",
                b"250 ok\r\n",
                b"250 ok\r\n",
                b"354 go\r\n",
                b"250 ok\r\n",
            ]
        )
    )
    assert record.flights()[1] == b"HELO client.example\r\n"
    assert statuses(report) == [("sent", "2.0.0")]


def test_helo_5xx_bounces_everything() -> None:
    # rules 3.6, quirk Q1
    report, _ = go(Session([GREETING, b"502 no\r\n", b"550 5.7.1 not you\r\n"]))
    assert statuses(report) == [("bounced", "5.7.1")]


def test_pix_banner_disables_esmtp_and_delays_dotcrlf() -> None:
    # rules 3.3, 8.4, 8.9
    _, record = go(
        Session(
            [
                b"220 ********************\r\n",
                b"250 hi\r\n",
                b"250 ok\r\n",
                b"250 ok\r\n",
                b"354 go\r\n",
                b"250 ok\r\n",
            ]
        ),
        pix_workaround_delay_time=7,
        # queued long ago (rule 3.3's threshold); a message of unknown arrival is just queued
        envelope=Envelope("a@example.org", (Recipient("b@example.com"),), arrival=0.0),
    )
    assert record.flights()[0] == b"HELO client.example\r\n"
    sleeps = record.of_type(Sleep)
    assert [s.seconds for s in sleeps] == [7]
    kinds = [type(r).__name__ for r in record.requests]
    assert kinds[kinds.index("Sleep") + 1] == "Send"


@pytest.mark.parametrize(
    ("banner", "always_send_ehlo", "first"),
    [
        (b"220 ********\r\n", True, b"HELO"),
        (b"220\r\n", True, b"HELO"),
        # Rule 3.3 reads the reply as Postfix keeps it, codes and separators included: a
        # multi-line banner has a "-", so it is no PIX banner (found by
        # interop/test_postfix_differential.py: "220-", "220-", "220", then EHLO 421).
        (b"220-\r\n220-\r\n220\r\n", True, b"EHLO"),
        (b"220-****\r\n220 ****\r\n", True, b"EHLO"),
        # The ESMTP word: on the first line or the last; a continuation line's first word
        # is glued to its "220-"; strcasecmp() knows ASCII only.
        (b"220-mx ESMTP\r\n220 ready\r\n", False, b"EHLO"),
        (b"220-mx\r\n220 esmtp ready\r\n", False, b"EHLO"),
        (b"220-mx\r\n220-ESMTP\r\n220 ready\r\n", False, b"HELO"),
        ("220 mx e\u017fmtp\r\n".encode(), False, b"HELO"),
    ],
)
def test_banner_analysis_reads_the_reply_as_postfix_does(
    banner: bytes, always_send_ehlo: bool, first: bytes
) -> None:
    # rules 3.3, 3.4
    _, record = go(
        Session(
            [banner, b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
        ),
        always_send_ehlo=always_send_ehlo,
    )
    assert record.flights()[0].split()[0] == first


def test_discard_ehlo_keywords_turns_off_pipelining() -> None:
    # rule 4.5
    _, record = go(
        smtp(b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"),
        discard_ehlo_keywords=("pipelining",),
    )
    assert record.flights()[1] == b"MAIL FROM:<a@example.org>\r\n"


def test_envelope_addresses_are_quoted_by_default() -> None:
    # rule 6.5
    _, record = go(smtp(*OK_TRANSACTION), recipients=("a b@example.com",))
    assert b'RCPT TO:<"a b"@example.com>\r\n' in record.sent()


def test_quote_rfc821_envelope_off_sends_address_as_given() -> None:
    # rule 6.5
    _, record = go(
        smtp(*OK_TRANSACTION), recipients=("a.b@example.com",), quote_rfc821_envelope=False
    )
    assert b"RCPT TO:<a.b@example.com>\r\n" in record.sent()


def test_skip_quit_response_off_reads_quit_reply() -> None:
    # rule 9.7
    report, record = go(smtp(*OK_TRANSACTION, b"221 bye\r\n"), skip_quit_response=False)
    assert report.recipients[0].status == "sent"
    assert record.channels[0].steps == []


def test_lhlo_is_sent_for_lmtp_and_each_recipient_gets_its_own_reply() -> None:
    # rules 3.7, 12.4: rcpt2 rejected -> exactly two end-of-data replies, for rcpt1 and rcpt3
    report, record = go(
        Session(
            [
                b"220 lmtp\r\n",
                b"250-lmtp\r\n250 PIPELINING\r\n",
                b"250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n",
                b"250 2.0.0 one\r\n",
                b"452 4.2.2 full\r\n",
                b"221 bye\r\n",
            ]
        ),
        destination="inet:[192.0.2.1]:24",
        recipients=("r1@x", "r2@x", "r3@x"),
        lmtp=True,
    )
    assert record.flights()[0] == b"LHLO client.example\r\n"
    assert statuses(report) == [("sent", "2.0.0"), ("bounced", "5.1.1"), ("deferred", "4.2.2")]


def test_lmtp_lost_connection_mid_replies_defers_the_rest() -> None:
    # rule 12.4
    report, _ = go(
        Session(
            [
                b"220 lmtp\r\n",
                b"250-lmtp\r\n250 PIPELINING\r\n",
                b"250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
                b"250 2.0.0 one\r\n",
                ConnectionLost("reset"),
            ]
        ),
        destination="inet:[192.0.2.1]:24",
        recipients=("r1@x", "r2@x"),
        lmtp=True,
    )
    assert statuses(report) == [("sent", "2.0.0"), ("deferred", "4.4.2")]


def test_xforward_sent_before_mail_when_offered_and_enabled() -> None:
    # rules 13.1-13.2: two commands, pipelined with MAIL; "unknown" values left out
    env = Envelope(
        "a@example.org",
        (Recipient("b@example.com"),),
        xforward=(
            ("NAME", "unknown"),
            ("ADDR", "198.51.100.7"),
            ("PROTO", "ESMTP"),
            ("HELO", "c.example"),
            ("SOURCE", "REMOTE"),
        ),
    )
    _, record = go(
        smtp(
            b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            b"250 ok\r\n",
            ehlo=b"250-mx\r\n250-PIPELINING\r\n250 XFORWARD NAME ADDR PROTO HELO SOURCE\r\n",
        ),
        envelope=env,
        send_xforward_command=True,
    )
    assert record.flights()[1].startswith(
        b"XFORWARD ADDR=198.51.100.7\r\nXFORWARD PROTO=ESMTP HELO=c.example SOURCE=REMOTE\r\n"
        b"MAIL FROM:<a@example.org>\r\n"
    )


def test_xforward_not_sent_by_default() -> None:
    # rule 13.1: send_xforward_command=no
    env = Envelope("a@x", (Recipient("b@y"),), xforward=(("ADDR", "198.51.100.7"),))
    _, record = go(
        smtp(*OK_TRANSACTION, ehlo=b"250-mx\r\n250-PIPELINING\r\n250 XFORWARD ADDR\r\n"),
        envelope=env,
    )
    assert b"XFORWARD" not in record.sent()


def test_helo_session_has_no_extensions() -> None:
    # rule 3.6: no SIZE=, no DSN parameters after HELO
    env = Envelope("a@x", (Recipient("b@y", notify=("NEVER",)),), ret="FULL")
    _, record = go(
        Session(
            [GREETING, b"250 hi\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n"]
        ),
        envelope=env,
        never_send_ehlo=True,
    )
    assert b"MAIL FROM:<a@x>\r\n" in record.sent() and b"NOTIFY" not in record.sent()
