"""Model-based test: the engine against a hostile server that knows the truth.

The server is tests/support/hostile.py.

A hypothesis state machine delivers messages, fresh (``deliver``) and over a session it holds
(``open_session``/``transact``), on SMTP and LMTP, over DATA and BDAT, with and without
PIPELINING, to servers that may answer each command early, twice, never, with the wrong code
(a 221 for a 250), stop reading, or close at any octet; with CHUNKING, small messages go as
``BDAT n LAST`` in the flight of MAIL and RCPT (``chunking_one_flight_limit``) or after their
replies. After every delivery:

- every recipient has exactly one outcome, in envelope order;
- ``sent`` only if the server truly accepted that recipient: a valid success to its own RCPT
  after receiving it, and a valid success to the end of data after the whole content (its own
  one in LMTP); unless no client can tell it from the right reply: the server sent an extra
  reply that reached the client only after it wrote its next command (`Server.in_flight`),
  or the recipient's place in the reply stream holds a success the server wrote for another
  command (`Server.shifted`);
- the client never wrote a line the server had to read as a command although it was none;
- against a server that behaved, every recipient is ``sent``;
- nothing but a report comes out: no exception.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from support.hostile import SCRIPT, Behaviour, Server, drive

from smtpproto import SessionFailed
from smtpproto.config import ClientConfig
from smtpproto.engine import Session, close_session, deliver, open_session, transact
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport

# chunking_one_flight_limit: never, the default (every message but the big one), always.
ONE_FLIGHT = st.sampled_from((0, 65536, 1 << 20))
MESSAGES = st.sampled_from(
    [
        b"Subject: t\r\n\r\nhello\r\n",
        b"Subject: dots\r\n\r\n.\r\n..\r\nend",
        b"Subject: big\r\n\r\n" + b"x" * 70_000 + b"\r\n",
        b"",
    ]
)


class Engine(RuleBasedStateMachine):
    """Deliveries and held sessions against hostile servers, the truth checked each time."""

    def __init__(self) -> None:
        super().__init__()
        self.count = itertools.count()
        self.held: Session | None = None
        self.held_server: Server | None = None
        self.held_options: dict[str, bool] = {}
        self.reports = 0

    def _config(self, lmtp: bool, chunking: bool, **extra: object) -> ClientConfig:
        return ClientConfig(helo_name="client.example", lmtp=lmtp, chunking=chunking, **extra)  # type: ignore[arg-type]

    def _note(self, servers: list[Server]) -> None:
        if any(s.one_flight for s in servers):
            event("BDAT in the envelope's flight")

    def _envelope(self, size: int) -> Envelope:
        n = next(self.count)
        return Envelope(
            "a@example.org", tuple(Recipient(f"r{n}-{i}@example.com") for i in range(size))
        )

    def _check(self, report: DeliveryReport, envelope: Envelope, servers: list[Server]) -> None:
        self.reports += 1
        assert [r.address for r in report.recipients] == [r.address for r in envelope.recipients]
        truth = set().union(*(s.accepted for s in servers))
        undetectable = any(s.in_flight for s in servers)
        shifted = set().union(*(s.shifted for s in servers))
        for result in report.recipients:
            assert result.status in ("sent", "deferred", "bounced"), result
            assert "internal error" not in result.diagnostic, result  # a bug the guard hid
            if result.status == "sent" and not undetectable and result.address not in shifted:
                assert result.address in truth, (result, [s.out for s in servers])
        for server in servers:
            assert not server.garbage, server.garbage
        self._note(servers)
        if servers and not any(s.hostile or s.refused for s in servers):
            assert all(r.status == "sent" for r in report.recipients), report

    @rule(
        data=st.data(),
        lmtp=st.booleans(),
        pipelining=st.booleans(),
        chunking=st.booleans(),
        size=st.integers(1, 4),
        limit=st.sampled_from((1, 2, 50)),
        message=MESSAGES,
        one_flight=ONE_FLIGHT,
    )
    def deliver_fresh(
        self,
        data: st.DataObject,
        lmtp: bool,
        pipelining: bool,
        chunking: bool,
        size: int,
        limit: int,
        message: bytes,
        one_flight: int,
    ) -> None:
        scripts = data.draw(st.lists(SCRIPT, min_size=1, max_size=3))
        chunks = data.draw(st.lists(st.sampled_from((1, 3, 7, 64, 65536)), min_size=1))
        sizes = itertools.cycle(chunks)
        servers: list[Server] = []
        behaviours: Iterator[list[Behaviour]] = iter(scripts)

        def connect() -> Server:
            server = Server(
                list(next(behaviours, [])), lmtp=lmtp, pipelining=pipelining, chunking=chunking
            )
            servers.append(server)
            return server

        envelope = self._envelope(size)
        config = self._config(
            lmtp,
            chunking,
            destination_recipient_limit=limit,
            chunking_one_flight_limit=one_flight,
        )
        engine = deliver(
            "[192.0.2.1]", envelope, message, config=config, clock=_clock(), rng=_Rng()
        )
        report = drive(engine, connect, chunk=lambda: next(sizes))
        self._check(report, envelope, servers)

    @precondition(lambda self: self.held is None)
    @rule(
        data=st.data(),
        lmtp=st.booleans(),
        pipelining=st.booleans(),
        chunking=st.booleans(),
        one_flight=ONE_FLIGHT,
    )
    def open_held(
        self, data: st.DataObject, lmtp: bool, pipelining: bool, chunking: bool, one_flight: int
    ) -> None:
        script = data.draw(SCRIPT)
        server = Server(list(script), lmtp=lmtp, pipelining=pipelining, chunking=chunking)
        config = self._config(lmtp, chunking, chunking_one_flight_limit=one_flight)
        try:
            self.held = drive(
                open_session("[192.0.2.1]", config=config, clock=_clock(), rng=_Rng()),
                lambda: server,
            )
        except SessionFailed:  # the documented failure of open_session
            return
        self.held_server = server

    @precondition(lambda self: self.held is not None)
    @rule(
        size=st.integers(1, 3),
        message=MESSAGES,
        chunk=st.sampled_from((1, 5, 65536)),
        more=SCRIPT,
    )
    def send_held(self, size: int, message: bytes, chunk: int, more: list[Behaviour]) -> None:
        assert self.held is not None and self.held_server is not None
        server = self.held_server
        server.plan(more)
        before = set(server.accepted)
        envelope = self._envelope(size)
        report = drive(transact(self.held, envelope, message), lambda: server, chunk=lambda: chunk)
        server.accepted -= before  # the truth for this transaction only
        self._check(report, envelope, [server])
        server.accepted |= before

    @precondition(lambda self: self.held is not None)
    @rule()
    def close_held(self) -> None:
        assert self.held is not None and self.held_server is not None
        drive(close_session(self.held), lambda: self.held_server)  # type: ignore[arg-type,return-value]
        self.held = None
        self.held_server = None

    @invariant()
    def a_held_server_saw_no_garbage(self) -> None:
        if self.held_server is not None:
            assert not self.held_server.garbage


class _Rng:
    def random(self) -> float:
        return 0.0


def _clock() -> Iterator[float] | object:
    ticks = itertools.count()
    return lambda: 1000.0 + next(ticks) * 0.001


def _one_flight(behaviours: list[Behaviour]) -> tuple[DeliveryReport, Server]:
    server = Server(behaviours, chunking=True)
    envelope = Envelope("a@example.org", (Recipient("b@example.com"), Recipient("c@example.com")))
    config = ClientConfig(helo_name="client.example", chunking=True)
    engine = deliver(
        "[192.0.2.1]", envelope, b"Subject: t\r\n\r\nhi\r\n", config=config, clock=_clock(),
        rng=_Rng(),
    )  # fmt: skip
    return drive(engine, lambda: server), server


def test_the_model_covers_bdat_in_the_envelopes_flight() -> None:
    report, server = _one_flight([])
    assert server.one_flight and not server.hostile
    assert [r.status for r in report.recipients] == ["sent", "sent"]
    assert server.accepted == {"b@example.com", "c@example.com"}


def test_one_flight_with_every_rcpt_refused_credits_nobody() -> None:
    # RFC 3030: the chunk reached a transaction without recipients, and the server refused it.
    refuse = [Behaviour("code", 550, target="RCPT", nth=n) for n in (0, 1)]
    report, server = _one_flight(refuse)
    assert server.one_flight and not server.accepted
    assert [(r.status, r.dsn) for r in report.recipients] == [("bounced", "5.0.0")] * 2
    assert all("(in reply to RCPT TO command)" in str(r.diagnostic) for r in report.recipients)


TestEngineAgainstHostileServers = Engine.TestCase
TestEngineAgainstHostileServers.settings = settings(
    max_examples=300,
    stateful_step_count=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
