"""Scripted dialogues for BDAT (RFC 3030 CHUNKING), the `chunking` switch (rule 15.4)."""

from __future__ import annotations

import pytest
from support.world import FailSend, go, smtp, statuses

from smtpproto.config import ClientConfig
from smtpproto.requests import ConnectionLost

EHLO_CHUNKING = b"250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 CHUNKING\r\n"
EHLO_CHUNKING_LOCKSTEP = b"250-mx.example\r\n250 CHUNKING\r\n"
MESSAGE = b"Subject: t\r\n\r\n.dot\r\nhello\r\n"


def test_chunking_is_off_by_default_even_when_offered() -> None:
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 ok\r\n", ehlo=EHLO_CHUNKING),
        message=MESSAGE,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert b"DATA\r\n" in record.sent() and b"BDAT" not in record.sent()


def test_bdat_last_carries_the_unstuffed_body_after_mail_and_rcpt_replies() -> None:
    # Above chunking_one_flight_limit, MAIL and RCPT are answered first (no content for a
    # transaction without recipients); a small message is one "BDAT n LAST" whose reply is
    # the end-of-data reply.
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n", b"250 2.0.0 queued\r\n", ehlo=EHLO_CHUNKING),
        message=MESSAGE,
        chunking=True,
        chunking_one_flight_limit=len(MESSAGE) - 1,
    )
    assert statuses(report) == [("sent", "2.0.0")]
    flights = record.flights()
    assert flights[1] == b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
    body = b"Subject: t\r\n\r\n.dot\r\nhello\r\n"
    assert flights[2] == b"BDAT %d LAST\r\n" % len(body) + body + b"QUIT\r\n"
    assert b"DATA" not in record.sent()


def test_large_message_goes_in_several_chunks_whose_sizes_add_up() -> None:
    body = b"Subject: t\r\n\r\n" + b"y" * 70 + b"\r\n" * 1
    message = body * 3000  # about 250 KiB: several 64 KiB input chunks
    replies = [b"250 ok\r\n250 ok\r\n"] + [b"250 2.0.0 chunk\r\n"] * 8
    report, record = go(smtp(*replies, ehlo=EHLO_CHUNKING), message=message, chunking=True)
    assert statuses(report) == [("sent", "2.0.0")]
    sent = record.sent()
    total, pos, last_seen = 0, sent.index(b"BDAT "), False
    while pos < len(sent) and sent.startswith(b"BDAT ", pos):
        end = sent.index(b"\r\n", pos)
        words = sent[pos:end].split()
        size = int(words[1])
        last_seen = words[-1] == b"LAST"
        total += size
        pos = end + 2 + size
    assert last_seen and total == len(message)


def test_every_rcpt_refused_sends_rset_and_no_content() -> None:
    report, record = go(
        smtp(b"250 ok\r\n550 5.1.1 unknown\r\n", b"250 ok\r\n", ehlo=EHLO_CHUNKING),
        message=MESSAGE,
        chunking=True,
        chunking_one_flight_limit=0,
    )
    assert statuses(report) == [("bounced", "5.1.1")]
    assert b"BDAT" not in record.sent() and b"RSET\r\n" in record.sent()


def test_a_small_message_goes_in_the_envelopes_flight() -> None:
    # chunking_one_flight_limit: MAIL, RCPT, "BDAT n LAST" with the content, and QUIT, in one
    # write before any reply is read; the replies then come in order.
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n", ehlo=EHLO_CHUNKING),
        message=MESSAGE,
        chunking=True,
        chunking_one_flight_limit=len(MESSAGE),
    )
    assert statuses(report) == [("sent", "2.0.0")]
    assert record.flights()[1] == (
        b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.com>\r\n"
        b"BDAT %d LAST\r\n" % len(MESSAGE) + MESSAGE + b"QUIT\r\n"
    )


def test_in_one_flight_every_rcpt_refused_the_server_refuses_the_chunk() -> None:
    # RFC 3030 2 and Postfix smtpd: BDAT with no valid recipient gets "554 5.5.1". That reply
    # concerns nobody: each recipient keeps its own RCPT refusal, none is sent, and the
    # refusal of the chunk is not what rule 14.8 would report (smtp_proto.c ignores the
    # end-of-data reply when no recipient was accepted).
    report, record = go(
        smtp(
            b"250 ok\r\n550 5.1.1 unknown b\r\n450 4.2.0 c busy\r\n",
            b"554 5.5.1 Error: no valid recipients\r\n",
            ehlo=EHLO_CHUNKING,
        ),
        recipients=("b@example.com", "c@example.com"),
        message=MESSAGE,
        chunking=True,
    )
    assert statuses(report) == [("bounced", "5.1.1"), ("deferred", "4.2.0")]
    assert [r.diagnostic for r in report.recipients][1].endswith("(in reply to RCPT TO command)")
    (flight,) = [f for f in record.flights() if b"MAIL" in f]
    assert b"BDAT 27 LAST\r\n" in flight and b"RSET" not in record.sent()


def test_in_one_flight_a_refused_mail_fails_everyone_with_its_reply() -> None:
    report, _ = go(
        smtp(
            b"550 5.7.1 sender refused\r\n503 5.5.1 need MAIL\r\n",
            b"503 5.5.1 Error: need RCPT command\r\n",
            ehlo=EHLO_CHUNKING,
        ),
        message=MESSAGE,
        chunking=True,
    )
    assert statuses(report) == [("bounced", "5.7.1")]
    assert report.recipients[0].diagnostic.endswith("(in reply to MAIL FROM command)")


def test_refused_bdat_last_bounces_with_its_reply() -> None:
    report, _ = go(
        smtp(b"250 ok\r\n250 ok\r\n", b"554 5.6.0 content rejected\r\n", ehlo=EHLO_CHUNKING),
        message=MESSAGE,
        chunking=True,
    )
    assert statuses(report) == [("bounced", "5.6.0")]
    assert report.recipients[0].diagnostic is not None
    assert report.recipients[0].diagnostic.endswith("(in reply to BDAT LAST command)")


def test_refused_chunk_stops_the_chunks_and_decides_the_outcome() -> None:
    # RFC 3030 2: after a failed BDAT no other BDAT may be sent. Without PIPELINING each
    # chunk waits for its reply, so nothing follows the refused one.
    message = b"Subject: t\r\n\r\n" + (b"z" * 78 + b"\r\n") * 3000
    report, record = go(
        smtp(
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"452 4.3.1 insufficient system storage\r\n",
            b"221 bye\r\n",
            ehlo=EHLO_CHUNKING_LOCKSTEP,
        ),
        message=message,
        chunking=True,
    )
    assert statuses(report) == [("deferred", "4.3.1")]
    sent = record.sent()
    assert sent.count(b"BDAT ") == 1 and b" LAST" not in sent
    assert report.recipients[0].diagnostic is not None
    assert "(in reply to BDAT command)" in report.recipients[0].diagnostic


def test_write_failure_during_chunks_defers_without_reading_a_chunk_reply_as_final() -> None:
    # A 250 to some chunk must never be taken for the end-of-data reply.
    report, _ = go(
        smtp(
            b"250 ok\r\n250 ok\r\n",
            FailSend(ConnectionLost("broken pipe")),
            b"250 2.0.0 chunk ok\r\n",
            ehlo=EHLO_CHUNKING,
        ),
        message=MESSAGE,
        chunking=True,
    )
    assert statuses(report) == [("deferred", "4.4.2")]


def test_lmtp_bdat_last_gets_one_reply_per_accepted_recipient() -> None:
    lhlo = b"250-lmtp.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n"
    report, _ = go(
        smtp(
            b"250 ok\r\n250 ok\r\n250 ok\r\n",
            b"250 2.0.0 <b> saved\r\n552 5.2.2 <c> over quota\r\n",
            greeting=b"220 lmtp.example LMTP\r\n",
            ehlo=lhlo,
        ),
        destination="inet:[192.0.2.1]:24",
        recipients=("b@example.com", "c@example.com"),
        message=MESSAGE,
        chunking=True,
        lmtp=True,
    )
    assert statuses(report) == [("sent", "2.0.0"), ("bounced", "5.2.2")]


@pytest.mark.parameter("smtpproto_chunking_one_flight_limit")
@pytest.mark.parametrize(("limit", "flights"), [("27", 1), ("26", 2), ("0", 2)])
def test_one_flight_limit_is_the_largest_size_sent_with_the_envelope(
    limit: str, flights: int
) -> None:
    config = ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", "smtpproto_chunking": "yes",
         "smtpproto_chunking_one_flight_limit": limit}
    )  # fmt: skip
    assert len(MESSAGE) == 27 and config.chunking_one_flight_limit == int(limit)
    replies = [b"250 ok\r\n250 ok\r\n", b"250 2.0.0 queued\r\n"]
    steps = [b"".join(replies)] if flights == 1 else replies
    report, record = go(smtp(*steps, ehlo=EHLO_CHUNKING), message=MESSAGE, config=config)
    assert statuses(report) == [("sent", "2.0.0")]
    # Greeting-to-EHLO is the first flight; then the transaction's.
    assert len(record.flights()) == 1 + flights
