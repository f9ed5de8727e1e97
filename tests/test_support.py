"""The simulated servers of ``tests/support``: the reactive model, its faults, both drivers.

The model is a parser and a state machine like any other, so it gets unit tests and a
hypothesis property (the same answers however the client's octets are split); the transport
faults are checked at every offset in memory and once each on real sockets, since the
hostile-server tests and the stateful model of the engine rely on them.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smtpproto.adapters import blocking
from support.invariants import check_outcome
from support.model import (
    Canonical,
    Dialogue,
    Expect,
    Faults,
    Scripted,
    ServerModel,
    Violation,
    ehlo_reply,
)
from support.sockets import LoopbackServer
from support.world import Clock, Outcome, Rng, World

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.requests import Receive

MESSAGE = b"Subject: t\r\n\r\nhello\r\n.dot\r\n..two\r\n"
# What the client writes for MESSAGE: dots stuffed, then the end of data.
WIRE_CONTENT = b"Subject: t\r\n\r\nhello\r\n..dot\r\n...two\r\n.\r\n"


def run(
    behaviour: Canonical | Dialogue,
    *,
    faults: Faults | None = None,
    recipients: Sequence[str] = ("a@example.com",),
    **options: object,
) -> Outcome:
    """``deliver`` to [192.0.2.1] in a world whose every server follows `behaviour`."""
    world = World.reactive(behaviour, faults=faults)
    envelope = Envelope("s@example.org", tuple(Recipient(r) for r in recipients))
    config = ClientConfig(helo_name="client.example", **options)  # type: ignore[arg-type]
    engine = deliver("[192.0.2.1]", envelope, MESSAGE, config=config, clock=Clock(), rng=Rng())
    outcome = world.outcome(world.run(engine))
    check_outcome(outcome, recipients, strict=True)
    return outcome


def statuses(outcome: Outcome) -> list[tuple[str, str]]:
    return [(r.status, r.dsn) for r in outcome.report.recipients]


# -- the model in memory ---------------------------------------------------------------------


def test_the_correct_server_receives_the_message_with_dots_unstuffed() -> None:
    outcome = run(Canonical(), recipients=("a@example.com", "b@example.com"))
    assert statuses(outcome) == [("sent", "2.0.0")] * 2
    (model,) = [c.model for c in outcome.channels]
    assert model is not None
    (message,) = model.messages
    assert (message.sender, message.recipients) == (
        "s@example.org",
        ("a@example.com", "b@example.com"),
    )
    assert message.content == MESSAGE and not message.chunked
    assert model.verbs == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA", "QUIT"]
    assert model.delivered == ["a@example.com", "b@example.com"]


def test_rules_answer_chosen_recipients_and_verbs() -> None:
    refused = b"550 5.7.1 <b@example.com>: no thanks\r\n"
    outcome = run(
        Canonical(rcpt={"b@example.com": refused}), recipients=("a@example.com", "b@example.com")
    )
    assert statuses(outcome) == [("sent", "2.0.0"), ("bounced", "5.7.1")]
    # Silence after DATA: the client times out waiting, and defers.
    outcome = run(Canonical(replies={"DATA": b""}))
    assert statuses(outcome) == [("deferred", "4.4.2")]


def test_dialogue_answers_byte_for_byte_in_order() -> None:
    replies = [
        b"250 mx\r\n",
        b"250 2.1.0 sender ok\r\n",
        b"250 2.1.5 rcpt ok\r\n",
        b"354 go\r\n",
        b"250 2.0.0 queued\r\n",
    ]
    outcome = run(Dialogue(b"220 mx ESMTP\r\n", replies))
    assert statuses(outcome) == [("sent", "2.0.0")]
    assert outcome.record.sent() == (
        b"EHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\n"
        b"DATA\r\n" + WIRE_CONTENT + b"QUIT\r\n"
    )
    assert outcome.report.recipients[0].diagnostic == "250 2.0.0 queued"


def said(behaviour: Canonical, written: bytes, *, lmtp: bool = False) -> ServerModel:
    """A model following `behaviour` after the client wrote `written` in one piece."""
    model = ServerModel(behaviour, lmtp=lmtp)
    model.start()
    model.receive(written)
    return model


def test_a_scripted_server_answers_from_its_tables_in_any_state() -> None:
    # No greeting, MAIL refused, every recipient refused, then DATA and a lone dot: a correct
    # server refuses each command with 503 (and the dot is then no command); a script says
    # what its tables say, as the rule 7.7 differential test needs (354 with no recipient).
    script = Scripted(
        banner=b"220 s\r\n",
        replies={"MAIL": b"451 4.3.0 later\r\n"},
        rcpt={"b@x": b"550 5.1.1 unknown\r\n"},
        rcpt_default=b"451 4.7.1 busy\r\n",
        queued=b"250 2.0.0 queued\r\n",
    )
    written = b"MAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\n.\r\nQUIT\r\n"
    model = said(script, written)
    assert model.take() == (
        b"220 s\r\n451 4.3.0 later\r\n451 4.7.1 busy\r\n550 5.1.1 unknown\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 queued\r\n221 2.0.0 Bye\r\n"
    )
    assert [m.recipients for m in model.messages] == [()] and model.delivered == []
    assert model.finished
    # The same octets at Canonical: 503 to RCPT and DATA, so the "." comes as a command.
    canonical = Canonical(banner=b"220 s\r\n", replies={"MAIL": b"451 4.3.0 later\r\n"})
    with pytest.raises(Violation, match="not a command"):
        said(canonical, written)


def test_a_scripted_lmtp_server_answers_each_recipient_from_delivery_else_queued() -> None:
    script = Scripted(
        banner=b"220 s\r\n",
        domain="s",
        keywords=("PIPELINING",),
        rcpt={"c@x": b"550 5.1.1 unknown\r\n"},
        delivery={"b@x": b"452 4.2.2 full\r\n"},
        queued=b"250 2.0.0 queued\r\n",
    )
    written = (
        b"LHLO c\r\nMAIL FROM:<s@x>\r\nRCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n"
        b"RCPT TO:<c@x>\r\nDATA\r\nhi\r\n.\r\n"
    )
    model = said(script, written, lmtp=True)
    assert model.take() == (
        b"220 s\r\n" + ehlo_reply("PIPELINING", domain="s") + b"250 2.1.0 Ok\r\n"
        b"250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n"
        b"354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 queued\r\n452 4.2.2 full\r\n"
    )
    (message,) = model.messages
    assert (message.recipients, message.content) == (("a@x", "b@x"), b"hi\r\n")
    assert model.delivered == ["a@x"]


def delivered_at(outcome: Outcome) -> int:
    """Server octets up to the end of the end-of-data reply (QUIT's reply may follow)."""
    return outcome.server_bytes - len(b"221 2.0.0 Bye\r\n")


def test_close_at_every_server_octet_never_reports_unfinished_mail_sent() -> None:
    clean = run(Canonical())
    end = delivered_at(clean)
    for reset in (False, True):
        for offset in range(clean.server_bytes + 1):
            outcome = run(Canonical(), faults=Faults(close_at=offset, reset=reset))
            status = outcome.report.recipients[0].status
            assert status == ("sent" if offset >= end else "deferred"), (offset, reset)
            assert outcome.server_bytes == offset


def test_drip_hands_out_one_octet_per_read_and_changes_nothing_else() -> None:
    clean = run(Canonical())
    dripped = run(Canonical(), faults=Faults(drip=1))
    assert statuses(dripped) == statuses(clean)
    # One Receive per octet, up to the end-of-data reply: the client skips QUIT's reply.
    assert len(dripped.record.of_type(Receive)) == delivered_at(clean)
    assert dripped.record.sent() == clean.record.sent()


def test_hangup_at_lets_the_reply_so_far_go_then_ends_the_stream() -> None:
    ehlo = len(b"EHLO client.example\r\n")
    outcome = run(Canonical(), faults=Faults(hangup_at=ehlo))
    assert statuses(outcome) == [("deferred", "4.4.2")]
    (channel,) = outcome.channels
    assert channel.model is not None and channel.model.verbs == ["EHLO"]
    assert b"MAIL FROM" in outcome.record.sent()  # the EHLO reply went: the client went on


def test_stop_reading_leaves_the_client_waiting_for_a_reply() -> None:
    outcome = run(Canonical(), faults=Faults(stop_reading_at=0))
    assert statuses(outcome) == [("deferred", "4.4.2")]
    (channel,) = outcome.channels
    assert channel.model is not None and channel.model.verbs == []
    assert "conversation with 192.0.2.1" in outcome.report.recipients[0].diagnostic


HOSTILE = {
    "early reply in the banner": Canonical(banner=b"220 mx ESMTP\r\n250 early\r\n"),
    "surplus reply to MAIL": Canonical(replies={"MAIL": b"250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n"}),
    "221 instead of 250 to MAIL": Canonical(replies={"MAIL": b"221 2.0.0 Bye\r\n"}),
    "354 to RCPT": Canonical(replies={"RCPT": b"354 go\r\n"}),
    "no reply to RCPT": Canonical(replies={"RCPT": b""}),
    "250 before the end of data": Canonical(replies={"DATA": b"354 go\r\n250 2.0.0 early\r\n"}),
    "hang-up on DATA": Canonical(hangup=frozenset({"DATA"})),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_servers_are_rules_of_the_correct_one(name: str) -> None:
    # The deviations a hostile-server model combines, each as one rule; what the engine
    # makes of them is its business, but DESIGN.md's invariants hold (`run` checks them).
    outcome = run(HOSTILE[name])
    (channel,) = outcome.channels
    assert channel.closed and channel.model is not None
    assert outcome.report.recipients[0].status in ("sent", "deferred", "bounced")


@pytest.mark.parametrize(
    ("written", "expect", "message"),
    [
        (b"EHLO x\n", Expect(), "bare LF"),
        (b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.x\r\n", Expect(), "stuffed"),
        (b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a@b>\r\n", Expect(), "after a positive STARTTLS"),
        (b"EHLO x\r\nMAIL FROM:<a@b>\r\n", Expect(tls_required=True), "NS-03"),
        (b"HELLO there\r\n", Expect(), "not a command"),
    ],
)
def test_the_model_names_the_rule_a_client_breaks(
    written: bytes, expect: Expect, message: str
) -> None:
    model = ServerModel(Canonical(("STARTTLS",)), expect=expect)
    model.start()
    with pytest.raises(Violation, match=message):
        model.receive(written)


CLIENT = (
    b"EHLO client.example\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<a@example.com>\r\n"
    b"RCPT TO:<reject@example.com>\r\nDATA\r\n" + WIRE_CONTENT + b"MAIL FROM:<s@example.org>\r\n"
    b"RCPT TO:<b@example.com>\r\nBDAT 6\r\nhi\r\n\r\nBDAT 0 LAST\r\nRSET\r\nQUIT\r\n"
)
VERBS = ["MAIL", "RCPT", "RCPT", "DATA", "MAIL", "RCPT", "BDAT", "BDAT", "RSET", "QUIT"]


def served(pieces: Sequence[bytes], lmtp: bool) -> tuple[bytes, list[bytes], list[str]]:
    """What the model says to `pieces` of client octets, the contents it took, its verbs."""
    model = ServerModel(Canonical(("PIPELINING", "CHUNKING")), lmtp=lmtp)
    model.start()
    for piece in pieces:
        model.receive(piece)
    return model.take(), [m.content for m in model.messages], model.verbs


@settings(max_examples=200, deadline=None)
@given(cuts=st.lists(st.integers(0, len(CLIENT)), max_size=12), lmtp=st.booleans())
def test_the_model_answers_alike_however_the_client_octets_are_split(
    cuts: list[int], lmtp: bool
) -> None:
    client = CLIENT.replace(b"EHLO", b"LHLO") if lmtp else CLIENT
    points = [0, *sorted(cuts), len(client)]
    pieces = [client[a:b] for a, b in itertools.pairwise(points)]
    whole = served([client], lmtp)
    assert served(pieces, lmtp) == whole
    out, contents, verbs = whole
    assert verbs == ["LHLO" if lmtp else "EHLO", *VERBS]
    assert contents == [MESSAGE, b"hi\r\n\r\n"]
    assert out.endswith(b"250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n")


# -- the model on loopback sockets -----------------------------------------------------------


def send(server: LoopbackServer, **options: str) -> list[tuple[str, str]]:
    """One message through the blocking adapter to `server`; (status, dsn) per recipient."""
    config = ClientConfig.from_postconf(
        {"smtp_helo_name": "client.example", "smtp_tls_security_level": "none"}
        | {f"smtp_{k}": v for k, v in options.items()}
    )
    report = blocking.deliver(
        server.destination,
        sender="s@example.org",
        recipients=["a@example.com"],
        message=MESSAGE,
        config=config,
    )
    return [(r.status, r.dsn) for r in report.recipients]


def test_a_socket_server_receives_what_the_model_would() -> None:
    with LoopbackServer(faults=Faults(drip=3, delay=0.001)) as server:
        assert send(server) == [("sent", "2.0.0")]
        (served,) = server.wait_done()
    assert served.model.messages[0].content == MESSAGE
    assert served.model.verbs[-1] == "QUIT" and not served.violations


@pytest.mark.parametrize("reset", [False, True])
def test_a_socket_server_closes_inside_a_reply(reset: bool) -> None:
    # Two octets into the reply to MAIL: the client meets the end of the stream (or a reset)
    # while it waits for the rest.
    cut = len(b"220 mx.example ESMTP\r\n") + len(ehlo_reply(*Canonical().keywords)) + 2
    with LoopbackServer(faults=Faults(close_at=cut, reset=reset)) as server:
        assert send(server) == [("deferred", "4.4.2")]
        (served,) = server.wait_done()
    assert served.model.octets_out == cut


def test_a_socket_server_that_stops_reading_is_timed_out() -> None:
    with LoopbackServer(faults=Faults(stop_reading_at=0)) as server:
        assert send(server, helo_timeout="1s") == [("deferred", "4.4.2")]
        (served,) = server.wait_done()
    assert served.model.verbs == [] and served.saw_eof.is_set()
