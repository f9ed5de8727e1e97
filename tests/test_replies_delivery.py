"""Reading replies as Postfix 3.7 does, seen from `deliver()`: the message the server accepted
is `sent`, not deferred (and so never duplicated by the caller's retry), when its reply has a
line over 2048 octets (rule 1.2), CRs before the LF (rule 1.1), or more than 100 lines (rule
1.7); a line that never ends is a lost connection, and the recipients are deferred.
"""

from __future__ import annotations

from support.world import go, smtp, statuses

DATA_REPLIES = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"


def test_end_of_data_reply_with_a_3000_octet_line_is_sent() -> None:
    # Item 9: Postfix keeps the first 2048 octets, discards the rest up to LF, and goes on.
    text = b"2.0.0 Ok: queued as " + b"Q" * 2980
    report, record = go(smtp(DATA_REPLIES, b"250 " + text + b"\r\n"))
    assert statuses(report) == [("sent", "2.0.0")]
    reply = report.recipients[0].reply
    assert reply is not None and reply.lines == (text[:2044].decode(),)
    assert record.sent().endswith(b".\r\nQUIT\r\n")


def test_long_lines_in_every_reply_of_the_session_are_cut_and_delivery_goes_on() -> None:
    long = b"x" * 2500
    report, _ = go(
        smtp(
            b"250 2.1.0 " + long + b"\r\n250 2.1.5 " + long + b"\r\n354 " + long + b"\r\n",
            b"250 2.0.0 " + long + b"\r\n",
            greeting=b"220-mx.example " + long + b"\r\n220 ESMTP\r\n",
            ehlo=b"250-mx.example " + long + b"\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
        )
    )
    assert statuses(report) == [("sent", "2.0.0")]


def test_end_of_data_reply_with_crs_before_lf_is_sent() -> None:
    # Item 10: "250 2.0.0 Ok\r\r\n" after the dot; deferring it would duplicate the message.
    report, _ = go(smtp(b"250 2.1.0 Ok\r\r\n250 2.1.5 Ok\r\r\n354 go\r\r\n", b"250 2.0.0 Ok\r\r\n"))
    assert statuses(report) == [("sent", "2.0.0")]
    assert str(report.recipients[0].reply) == "250 2.0.0 Ok"


def test_a_cr_inside_the_end_of_data_reply_is_still_an_error() -> None:
    # RP-14: only the CRs just before the LF are a line end; one elsewhere is never read as a
    # line break, so a 250 after it cannot be taken for the end-of-data reply.
    report, _ = go(smtp(DATA_REPLIES, b"451 4.3.0 later\r250 2.0.0 Ok\r\n"))
    assert report.recipients[0].status == "deferred"
    assert "control character" in report.recipients[0].diagnostic


def test_end_of_data_reply_of_500_lines_is_sent() -> None:
    # Item 11: no line-count limit; the reply is bounded by its bytes and the deadline.
    lines = b"".join(b"250-2.0.0 part %d\r\n" % n for n in range(499)) + b"250 2.0.0 Ok\r\n"
    report, _ = go(smtp(DATA_REPLIES, lines))
    assert statuses(report) == [("sent", "2.0.0")]
    reply = report.recipients[0].reply
    assert reply is not None and len(reply.lines) == 500


def test_ehlo_reply_of_150_lines_is_read() -> None:
    ehlo = b"250-mx.example\r\n" + b"250-X-FILLER\r\n" * 148 + b"250 PIPELINING\r\n"
    report, record = go(smtp(DATA_REPLIES, b"250 2.0.0 Ok\r\n", ehlo=ehlo))
    assert statuses(report) == [("sent", "2.0.0")]
    assert len(record.flights()[1].splitlines()) == 3  # PIPELINING was seen: one flight


def test_a_line_without_end_past_the_second_bound_is_a_lost_connection() -> None:
    # Rule 1.2's second bound: 2048 octets kept, 2048 discarded, then reading stops. After the
    # dot nothing is known about the message, so the recipient is deferred, never sent.
    report, record = go(smtp(DATA_REPLIES, b"250 2.0.0 " + b"z" * 5000))
    result = report.recipients[0]
    assert (result.status, result.dsn) == ("deferred", "4.5.0")
    assert "as on a lost connection" in result.diagnostic
    assert record.channels[0].closed
