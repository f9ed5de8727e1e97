"""Every fuzz target of ``fuzz/`` for a few deterministic seconds, and the bugs fuzzing found.

The smoke runs use hypothesis's ``derandomize`` (the same examples on every run, no example
database) and a fixed prefix of the ``faults`` enumeration, so a failure here is reproducible
as is. ``fuzz/README.md`` says how to run the targets for minutes or hours. The regression
tests below each hold the minimal input a target shrank a real bug to.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from support.hostile import Behaviour
from support.world import EHLO_PLAIN, GREETING, Session, go, smtp, statuses

from smtpproto import RemoteProtocolError
from smtpproto.replies import ReplyLimits, ReplyParser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's fuzz/

from fuzz import _harness
from fuzz.targets import TARGETS

# Examples per property target: enough to reach every kind of input each strategy draws,
# small enough that all targets together take a few seconds.
SMOKE_EXAMPLES = {
    "replies": 150,
    "connection": 150,
    "body": 150,
    "capabilities": 150,
    "config": 150,
    "session": 150,
    "faults": 400,  # the clean run of every scenario, then the first faults of each
    "hostile": 150,
}


def test_every_target_has_a_smoke_run() -> None:
    assert set(SMOKE_EXAMPLES) == set(TARGETS)


@pytest.mark.parametrize("name", sorted(SMOKE_EXAMPLES))
def test_fuzz_target_smoke(name: str) -> None:
    stats = _harness.run(
        TARGETS[name],
        seconds=60.0,  # a bound only: the example count ends the run long before
        max_examples=SMOKE_EXAMPLES[name],
        derandomize=True,
        database=False,
    )
    assert stats.failure is None, stats.failure
    assert stats.executions >= min(SMOKE_EXAMPLES[name], 50), stats.line()


def test_fuzz_runner_command_line_runs_a_target(capsys: pytest.CaptureFixture[str]) -> None:
    code = _harness.main(TARGETS, ["--target", "config", "--seconds", "0.5", "--no-database"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "config" in out and "executions" in out and "ok" in out


# -- regression tests: the minimal inputs of bugs the targets found ------------------------


def test_reply_byte_limit_below_line_limit_is_enforced() -> None:
    # Found by `replies` (RP-11): with max_reply_bytes below max_line_length, the fast path
    # for one-line replies skipped the reply size check that the line-by-line path makes, so
    # the outcome depended on chunking and on auth mode.
    limits = ReplyLimits(max_line_length=6, max_reply_bytes=4)
    whole = ReplyParser(limits)
    whole.feed(b"220 OK\r\n")
    with pytest.raises(RemoteProtocolError):
        whole.next_reply()
    split = ReplyParser(limits)
    split.feed(b"220 OK\r")
    split.feed(b"\n")
    with pytest.raises(RemoteProtocolError):
        split.next_reply()


def test_421_to_rcpt_without_pipelining_sends_nothing_but_quit() -> None:
    # Found by `session`: a 421 to the first RCPT (RFC 5321 3.8) leaves the connection
    # CLOSING, where only QUIT is legal; the engine went on with the next RCPT and
    # LocalProtocolError escaped from deliver().
    report, record = go(
        smtp(b"250 2.1.0 ok\r\n", b"421 4.4.2 closing\r\n", ehlo=EHLO_PLAIN),
        recipients=("a@example.com", "b@example.com"),
    )
    assert [status for status, _ in statuses(report)] == ["deferred", "deferred"]
    assert b"RCPT TO:<b@example.com>" not in record.sent()


def test_session_kept_after_a_421_end_of_data_reply_is_not_reused() -> None:
    # Found by `session`: with recipient batches the session is kept for the next batch
    # before the end-of-data reply is read (rule 9.3); that reply was a 421, so the kept
    # connection was CLOSING and the RSET probe (rule 9.4) raised LocalProtocolError.
    report, record = go(
        smtp(
            b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n", b"421 4.3.0 closing\r\n", ehlo=EHLO_PLAIN
        ),
        recipients=("a@example.com", "b@example.com"),
        destination_recipient_limit=1,
    )
    assert [status for status, _ in statuses(report)] == ["deferred", "deferred"]
    assert b"RSET" not in record.sent()


def test_protocol_error_in_the_ehlo_reply_closes_without_quit() -> None:
    # Found by `session`: after a malformed EHLO reply (code change within the reply, RP-05)
    # the connection refuses every command (CV-10a), and the QUIT of the handshake failure
    # (rule 9.8) raised LocalProtocolError out of deliver().
    report, record = go(Session([GREETING, b"250-mx.example\r\n550 5.0.0 changed\r\n"]))
    assert statuses(report) == [("deferred", "4.5.0")]
    assert record.sent() == b"EHLO client.example\r\n"


def test_protocol_error_in_the_auth_reply_closes_without_quit() -> None:
    # Found by `session`: the same as above in the AUTH step (RFC 4954 4): a malformed reply
    # to AUTH left the connection in ERROR and the QUIT after the failed handshake raised
    # LocalProtocolError out of deliver().
    report, record = go(
        Session([GREETING, b"250-mx.example\r\n250 AUTH CRAM-MD5\r\n", b"334-abc\r\n550 x\r\n"]),
        sasl_auth_enable=True,
        sasl_password_maps={"[192.0.2.1]": "user:secret"},
        tls_security_level="none",
    )
    assert [status for status, _ in statuses(report)] == ["deferred"]
    assert record.sent() == b"EHLO client.example\r\nAUTH CRAM-MD5\r\n"


@pytest.mark.parametrize("one_flight_limit", [0, 65536])
def test_421_to_a_pipelined_rcpt_sends_no_bdat(one_flight_limit: int) -> None:
    # Found by `session`: with CHUNKING (RFC 3030) no DATA reply is owed after the RCPTs, so
    # after a 421 to the last RCPT the engine went on to "BDAT n LAST" on a CLOSING connection
    # and LocalProtocolError escaped from deliver(). In one flight the BDAT went out before
    # the 421 came: nothing more is sent after it.
    report, record = go(
        smtp(
            b"250 ok\r\n250 ok\r\n421 4.4.2 closing\r\n",
            ehlo=b"250-mx.example\r\n250-PIPELINING\r\n250 CHUNKING\r\n",
        ),
        recipients=("a@example.com", "b@example.com"),
        chunking=True,
        chunking_one_flight_limit=one_flight_limit,
    )
    assert [status for status, _ in statuses(report)] == ["deferred", "deferred"]
    if one_flight_limit:
        assert record.sent().endswith(b"BDAT 21 LAST\r\nSubject: t\r\n\r\nhello\r\nQUIT\r\n")
    else:
        assert b"BDAT" not in record.sent()


def test_hostile_target_early_reply_to_a_pipelined_rcpt_is_its_reply() -> None:
    # Found by `hostile` (752 executions): MAIL answered, then a 250 "in advance" for the next
    # command, with PIPELINING; the recipient was reported sent while the model's truth was
    # empty. The model was wrong, not the engine: MAIL, both RCPTs and DATA came as one group,
    # so that 250 went out after the first RCPT had arrived and is its reply
    # (tests/support/hostile.py `Server._reply`). Kept as a regression test of the model and
    # of the engine.
    from fuzz import hostile

    hostile.check(
        {
            "lmtp": False,
            "pipelining": True,
            "chunking": False,
            "size": 2,
            "limit": 2,
            "message": b"Subject: t\r\n\r\nhello\r\n",
            "scripts": [[Behaviour("early", 250, target="MAIL", nth=0)]],
            "chunks": [1],
        }
    )


def test_hostile_surplus_mail_reply_displacing_the_rcpt_reply_is_undetectable() -> None:
    # Found by `hostile` once the case above passed: MAIL and RCPT pipelined, MAIL answered
    # twice, RCPT answered and the connection closed. Reading one octet at a time, the client
    # has its two replies (250, 250) before the RCPT's own arrives, writes BDAT LAST and reads
    # that 250 as its reply: on the wire, exactly a server that accepted. Not an engine bug
    # (Postfix's reply accounting, rule 7.1, gives the same); the model names the recipient
    # in `Server.shifted`. Read in larger pieces, the client sees the surplus and defers.
    # With the content in the envelope's flight (chunking_one_flight_limit) BDAT LAST has gone
    # before any reply is read, whatever their size: undetectable too.
    from fuzz import hostile

    case = {
        "lmtp": False,
        "pipelining": True,
        "chunking": True,
        "one_flight": 0,
        "size": 1,
        "limit": 1,
        "message": b"Subject: t\r\n\r\nhello\r\n",
        "scripts": [
            [
                Behaviour("twice", target="MAIL", nth=0),
                Behaviour("close", 250, 14, target="RCPT", nth=0),
            ]
        ],
        "chunks": [1],
    }
    hostile.check(case)
    report, (server,) = hostile.run(case)
    assert [(r.address, r.status) for r in report.recipients] == [("r0@example.com", "sent")]
    assert not server.accepted and not server.in_flight
    assert server.shifted == {"r0@example.com"}
    larger, _ = hostile.run({**case, "chunks": [100]})
    assert larger.recipients[0].status == "deferred"
    one_flight = {**case, "one_flight": 65536, "chunks": [100]}
    hostile.check(one_flight)
    report, (server,) = hostile.run(one_flight)
    assert [r.status for r in report.recipients] == ["sent"]
    assert not server.accepted and server.shifted == {"r0@example.com"}
    mail = next(n for n, line in enumerate(report.transcript) if line.startswith("Out: MAIL"))
    assert report.transcript[mail + 1 : mail + 3] == (
        "Out: RCPT TO:<r0@example.com>",
        "Out: BDAT 21 LAST",
    )


def test_hostile_lmtp_surplus_then_a_withheld_reply_is_undetectable() -> None:
    # Found by `hostile`: LMTP, two transactions of two; in the second, the end-of-data reply
    # of the first recipient comes twice and the second's never. Two 250s for two recipients
    # after the content is what a server that delivered both sends; `Server.shifted` names
    # the second recipient.
    from fuzz import hostile

    case = {
        "lmtp": True,
        "pipelining": False,
        "chunking": False,
        "size": 4,
        "limit": 2,
        "message": b"Subject: t\r\n\r\nhello\r\n",
        "scripts": [
            [
                Behaviour("twice", target="END", nth=2),
                Behaviour("silent", target="END", nth=3),
            ]
        ],
        "chunks": [1],
    }
    hostile.check(case)
    report, (server,) = hostile.run(case)
    assert [r.status for r in report.recipients] == ["sent"] * 4
    assert server.accepted == {"r0@example.com", "r1@example.com", "r2@example.com"}
    assert server.shifted == {"r3@example.com"}
