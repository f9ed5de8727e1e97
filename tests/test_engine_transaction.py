"""Scripted dialogues for one transaction: pipelining, outcomes, DSN (rules 2, 6, 7, 12)."""

from __future__ import annotations

from support.world import EHLO_PLAIN, FailSend, go, smtp, statuses

from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import ConnectionLost, IOTimeout, Receive


def test_pipelining_sends_mail_rcpts_and_data_in_one_flight() -> None:
    # rule 7.3: one client write with MAIL, every RCPT and DATA before anything is read
    report, record = go(
        smtp(b"250 ok\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n"),
        recipients=("b@example.com", "c@example.com", "d@example.com"),
    )
    flights = record.flights()
    assert flights[1] == (
        b"MAIL FROM:<a@example.org>\r\n"
        b"RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nRCPT TO:<d@example.com>\r\n"
        b"DATA\r\n"
    )
    assert statuses(report) == [("sent", "2.0.0")] * 3


def test_dot_and_quit_go_out_together_after_the_body() -> None:
    # rule 7.3: the last flush ends with ".\r\nQUIT\r\n"; QUIT's reply is not read (9.7)
    report, record = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 queued\r\n"))
    assert record.sent().endswith(b"hello\r\n.\r\nQUIT\r\n")
    assert report.recipients[0].status == "sent"
    assert record.channels[0].closed


def test_without_pipelining_each_command_waits_for_its_reply() -> None:
    # rule 7.2(b)
    report, record = go(
        smtp(
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go\r\n",
            b"250 ok\r\n",
            b"221 bye\r\n",
            ehlo=EHLO_PLAIN,
        )
    )
    assert record.flights()[1:4] == [
        b"MAIL FROM:<a@example.org>\r\n",
        b"RCPT TO:<b@example.com>\r\n",
        b"DATA\r\n",
    ]
    assert report.recipients[0].status == "sent"


def test_all_recipients_rejected_sends_no_content_and_data_354_gets_a_lone_dot() -> None:
    # rule 7.7: DATA already sent; a 354 after every RCPT failed is answered with "." only
    report, record = go(
        smtp(b"250 ok\r\n550 5.1.1 no such user\r\n354 go\r\n", b"250 ok\r\n"),
    )
    assert b"hello" not in record.sent()
    assert record.flights()[2].startswith(b".\r\n")
    assert statuses(report) == [("bounced", "5.1.1")]
    assert report.recipients[0].diagnostic == (
        "host 192.0.2.1[192.0.2.1] said: 550 5.1.1 no such user (in reply to RCPT TO command)"
    )


def test_all_recipients_rejected_and_data_rejected_sends_rset() -> None:
    # rule 7.7
    report, record = go(smtp(b"250 ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n"))
    assert record.flights()[2].startswith(b"RSET\r\n")
    assert statuses(report) == [("bounced", "5.1.1")]


def test_mail_rejected_ignores_rcpt_replies() -> None:
    # rule 7.8: the 250 to RCPT does not count; every recipient failed with the MAIL reply
    report, record = go(
        smtp(b"553 5.7.1 sender refused\r\n250 ok\r\n250 ok\r\n554 no\r\n"),
        recipients=("b@example.com", "c@example.com"),
    )
    assert statuses(report) == [("bounced", "5.7.1")] * 2
    assert "(in reply to MAIL FROM command)" in report.recipients[0].diagnostic
    assert b"RSET\r\n" in record.sent()


def test_data_answered_250_is_a_protocol_error_deferred_never_a_bounce() -> None:
    # Quirk Q2 (rule 2.5): Postfix bounces 5.5.0 when DATA gets a 2xx. DATA may get only 354
    # (RFC 5321 4.3.2), so a 250 answers another command: the replies are out of step, and
    # the recipient is deferred without any content sent (docs/security.md).
    report, record = go(smtp(b"250 ok\r\n250 ok\r\n250 ok\r\n"))
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.5.0")
    assert "reply 250 to DATA" in r.diagnostic
    assert record.sent().endswith(b"DATA\r\n")


def test_rcpt_answered_354_defers_the_transaction_never_sends_content() -> None:
    # Quirk Q2 (rule 2.5): Postfix bounces that recipient 5.5.0 and goes on. A 354 to RCPT
    # answers another command, so the replies after it are out of step: nobody is bounced
    # for another command's reply, and no content goes out (docs/security.md).
    report, record = go(
        smtp(b"250 ok\r\n354 what\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"),
        recipients=("b@example.com", "c@example.com"),
    )
    assert statuses(report) == [("deferred", "4.5.0"), ("deferred", "4.5.0")]
    assert record.sent().endswith(b"DATA\r\n")


def test_soft_rcpt_failure_at_the_final_server_is_deferred() -> None:
    # rule 2.2
    report, _ = go(
        smtp(b"250 ok\r\n451 4.3.0 try later\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"),
        recipients=("b@example.com", "c@example.com"),
    )
    assert statuses(report) == [("deferred", "4.3.0"), ("sent", "2.0.0")]


def test_end_of_data_rejection_is_a_message_failure() -> None:
    # rule 7.5
    report, _ = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"554 5.6.0 content rejected\r\n"))
    assert statuses(report) == [("bounced", "5.6.0")]
    assert report.recipients[0].diagnostic.endswith("(in reply to end of DATA command)")


def test_lost_connection_after_end_of_data_is_deferred_as_possible_duplicate() -> None:
    # rules 2.7, 10.3: "message may be sent more than once"
    report, _ = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", ConnectionLost("reset")))
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.4.2")
    assert r.diagnostic == (
        "lost connection with 192.0.2.1[192.0.2.1] while sending end of data -- "
        "message may be sent more than once"
    )


def test_timeout_waiting_for_rcpt_reply_defers_with_stage_text() -> None:
    # rules 2.9, 10.3
    report, _ = go(smtp(IOTimeout("slow")))
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.4.2")
    assert "timed out while sending MAIL FROM" in r.diagnostic


def test_body_write_failure_reads_one_reply_and_sends_no_dot() -> None:
    # rule 7.9: an early 552 after a failed write is the end-of-data reply. The message takes
    # more than one write, so the end would go in a later one (rule 7.3): it never does.
    report, record = go(
        smtp(
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            FailSend(ConnectionLost("broken pipe")),
            b"552 5.3.4 too big\r\n",
        ),
        message=b"Subject: t\r\n\r\n" + (b"x" * 70 + b"\r\n") * 1000,
    )
    assert statuses(report) == [("bounced", "5.3.4")]
    assert b"\r\n.\r\n" not in record.sent().split(b"DATA\r\n")[-1]
    assert b"QUIT" not in record.sent()


def test_a_short_message_its_end_and_quit_go_out_in_one_write() -> None:
    # rule 7.3: the content's last write ends with ".\r\nQUIT\r\n"; when that write fails
    # it is a failure during the content (rule 7.9): one reply is read, a refusal decides.
    report, record = go(
        smtp(
            b"250 ok\r\n250 ok\r\n354 go\r\n",
            FailSend(ConnectionLost("broken pipe")),
            b"552 5.3.4 too big\r\n",
        )
    )
    assert statuses(report) == [("bounced", "5.3.4")]
    (_, _, content) = record.flights()
    assert content == b"Subject: t\r\n\r\nhello\r\n.\r\nQUIT\r\n"


def test_body_write_failure_without_reply_is_lost_while_sending_body() -> None:
    # rule 7.9
    report, _ = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", FailSend(ConnectionLost("reset"))))
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("deferred", "4.4.2")
    assert r.diagnostic.endswith("while sending message body")


def test_dsn_parameters_sent_only_when_dsn_is_offered() -> None:
    # rules 6.1-6.3
    env = Envelope(
        "a@example.org",
        (Recipient("b@example.com", notify=("FAILURE",), orcpt="rfc822;b@example.com"),),
        ret="HDRS",
        envid="a+b=c",
    )
    _, with_dsn = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"), envelope=env)
    sent = with_dsn.sent()
    assert b"ENVID=a+2Bb+3Dc" in sent and b"RET=HDRS" in sent
    assert b"RCPT TO:<b@example.com> ORCPT=rfc822;b@example.com NOTIFY=FAILURE\r\n" in sent
    _, without = go(
        smtp(b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n", ehlo=EHLO_PLAIN),
        envelope=env,
    )
    assert b"NOTIFY" not in without.sent() and b"ENVID" not in without.sent()


def test_size_over_server_limit_bounces_without_mail() -> None:
    # rule 6.8: 5.3.4, no MAIL sent, no other MX tried
    report, record = go(
        smtp(ehlo=b"250-mx.example\r\n250 SIZE 10\r\n"), message=b"x" * 100 + b"\r\n"
    )
    (r,) = report.recipients
    assert (r.status, r.dsn) == ("bounced", "5.3.4")
    assert r.diagnostic.startswith("message size ")
    assert b"MAIL" not in record.sent()


def test_each_reply_read_uses_the_timeout_of_the_awaited_command() -> None:
    # rule 10.1
    _, record = go(
        smtp(b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n", ehlo=EHLO_PLAIN),
        helo_timeout=11,
        mail_timeout=12,
        rcpt_timeout=13,
        data_init_timeout=14,
        data_done_timeout=16,
        per_request_deadline=False,
    )
    timeouts = [r.timeout for r in record.of_type(Receive)]
    assert timeouts[:6] == [11, 11, 12, 13, 14, 16]


def test_sent_result_carries_reply_relay_and_dsn() -> None:
    # rule 2.8
    report, _ = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 2.0.0 Ok: queued\r\n"))
    (r,) = report.recipients
    assert r.relay == "192.0.2.1[192.0.2.1]:25"
    assert r.diagnostic == "250 2.0.0 Ok: queued"
    assert r.reply is not None and r.reply.code == 250


STAGE_TIMEOUTS = {
    "helo_timeout": 11,
    "mail_timeout": 12,
    "rcpt_timeout": 13,
    "data_init_timeout": 14,
    "data_xfer_timeout": 15,
    "data_done_timeout": 16,
    "quit_timeout": 17,
    "per_request_deadline": False,
}


def test_send_requests_carry_a_timeout() -> None:
    # rule 10.1: each write is bounded by the timeout of the stage it belongs to: a command
    # flight by its first command's, the message content by data_xfer, the final "." by
    # data_done; each read by the timeout of the command whose reply it awaits.
    replies = (b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"250 ok\r\n", b"221 bye\r\n")
    _, record = go(smtp(*replies, ehlo=EHLO_PLAIN), skip_quit_response=False, **STAGE_TIMEOUTS)
    assert record.timeouts() == [
        ("EHLO", [("Send", 11), ("Receive", 11)]),
        ("MAIL", [("Send", 12), ("Receive", 12)]),
        ("RCPT", [("Send", 13), ("Receive", 13)]),
        ("DATA", [("Send", 14), ("Receive", 14)]),
        ("Subject:", [("Send", 16), ("Receive", 16)]),
        ("QUIT", [("Send", 17), ("Receive", 17)]),
    ]
    # rule 10.1 under PIPELINING: the MAIL/RCPT/DATA flight waits for MAIL's reply first.
    _, record = go(smtp(b"250 ok\r\n250 ok\r\n354 go\r\n", b"250 ok\r\n"), **STAGE_TIMEOUTS)
    assert record.timeouts() == [
        ("EHLO", [("Send", 11), ("Receive", 11)]),
        ("MAIL", [("Send", 12), ("Receive", 12)]),
        ("Subject:", [("Send", 16), ("Receive", 16)]),
    ]


def test_421_to_mail_without_pipelining_closes_without_rset() -> None:
    # Found by the model test: RSET after a 421 is not allowed (RFC 5321 3.8), just close
    report, record = go(smtp(b"421 4.3.2 shutting down\r\n", ehlo=EHLO_PLAIN))
    assert statuses(report) == [("deferred", "4.3.2")]
    assert b"RSET" not in record.sent()
    assert record.channels[0].closed
