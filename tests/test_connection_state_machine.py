"""A hypothesis `RuleBasedStateMachine` that drives `ClientConnection` against a model.

The model is RFC 5321's command order (4.1.4, 3.3) and RFC 2920's pipelining rules written
out independently and as plainly as possible: which command may be sent in which phase,
what may follow an unanswered command, and what each reply does. Hypothesis sends legal and
illegal commands in any order and lets a well-behaved scripted server answer with success or
failure, in arbitrarily split reads. After every step the connection must agree with the
model: a legal command is accepted with its exact bytes, an illegal one is a
`LocalProtocolError` that changes nothing (CV-02), replies come back as events for the
commands they answer, in order (RP-17).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TypeAlias

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from support.connection import drain, ehlo_reply, feed

from smtpproto import LocalProtocolError
from smtpproto.commands import (
    Data,
    Ehlo,
    EndOfData,
    Helo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Rset,
)
from smtpproto.connection import ClientConnection, State
from smtpproto.events import CommandReply, ConnectionClosed

Sendable: TypeAlias = (
    Ehlo | Helo | Mail | Rcpt | Data | MessageData | EndOfData | Rset | Noop | Quit
)

COMMANDS: list[Sendable] = [
    Ehlo("c.example"),
    Helo("c.example"),
    Mail("a@x.example"),
    Rcpt("b@y.example"),
    Rcpt("c@y.example"),
    Data(),
    MessageData(b"Subject: hi\r\n\r\nbody\r\n"),
    EndOfData(),
    Rset(),
    Noop(),
    Quit(),
]

# Drawn more often, so that random walks get deep into transactions before a QUIT.
WEIGHTED = COMMANDS + [c for c in COMMANDS if isinstance(c, (Mail, Rcpt, Data, MessageData))] * 3
WEIGHTED += [EndOfData()] * 3

# RFC 5321 4.1.4 / 3.3: what each phase allows.
ALLOWED: dict[str, set[type]] = {
    "greeted": {Ehlo, Helo, Noop, Rset, Quit},
    "ready": {Ehlo, Helo, Mail, Noop, Rset, Quit},
    "mail": {Ehlo, Helo, Rcpt, Noop, Rset, Quit},
    "rcpt": {Ehlo, Helo, Rcpt, Data, Noop, Rset, Quit},
    "data": set(),
    "content": {MessageData, EndOfData},
    "dot": {Quit},
    "quit": set(),
    "closed": set(),
}
# RFC 2920 3.1: commands after which nothing is pipelined (QUIT after "." excepted).
GROUP_END = (Ehlo, Helo, Data, Noop, Quit, EndOfData)
PHASE_STATE = {
    "greeted": State.GREETED,
    "ready": State.READY,
    "mail": State.MAIL,
    "rcpt": State.RCPT,
    "data": State.DATA,
    "content": State.CONTENT,
    "dot": State.DOT,
    "quit": State.QUIT_SENT,
    "closed": State.CLOSED,
}


@dataclass
class Transaction:
    accepted: int = 0
    mail_refused: bool = False
    content_allowed: bool = False


@dataclass
class Model:
    server_pipelining: bool
    phase: str = "greeted"
    pipelining: bool = False
    pending: list[tuple[Sendable, Transaction | None]] = field(default_factory=list)
    txn: Transaction | None = None

    def legal(self, command: Sendable) -> bool:
        if type(command) not in ALLOWED[self.phase]:
            return False
        if isinstance(command, MessageData):
            return self.txn is not None and self.txn.content_allowed
        if isinstance(command, EndOfData) or not self.pending:
            return True
        last = self.pending[-1][0]
        if not self.pipelining:
            return False
        if isinstance(command, Quit) and isinstance(last, EndOfData):
            return True
        return not isinstance(last, GROUP_END)

    def sent(self, command: Sendable) -> None:
        if isinstance(command, (Ehlo, Helo)):
            self.phase, self.pipelining, self.txn = "greeted", False, None
        elif isinstance(command, Mail):
            self.phase, self.txn = "mail", Transaction()
        elif isinstance(command, Rcpt):
            self.phase = "rcpt"
        elif isinstance(command, Data):
            self.phase = "data"
        elif isinstance(command, EndOfData):
            self.phase = "dot"
        elif isinstance(command, Rset):
            if self.phase != "greeted":
                self.phase, self.txn = "ready", None
        elif isinstance(command, Quit):
            self.phase = "quit"
        if not isinstance(command, MessageData):
            self.pending.append((command, self.txn))

    def answered(self, command: Sendable, txn: Transaction | None, code: int) -> None:
        good = 200 <= code < 400
        if isinstance(command, (Ehlo, Helo)) and good and self.phase == "greeted":
            self.phase = "ready"
            self.pipelining = isinstance(command, Ehlo) and self.server_pipelining
        elif isinstance(command, Mail) and not good and txn is not None:
            txn.mail_refused = True
        elif isinstance(command, Rcpt) and good and txn is not None:
            txn.accepted += 1
        elif isinstance(command, Data) and self.phase == "data":
            self.phase = "content" if good else "rcpt"
            if good and txn is not None:
                txn.content_allowed = txn.accepted > 0 and not txn.mail_refused
        elif isinstance(command, EndOfData) and self.phase == "dot":
            self.phase, self.txn = "ready", None
        elif isinstance(command, Quit):
            self.phase = "closed"
        if (
            self.txn is not None
            and self.txn.mail_refused
            and self.phase in ("mail", "rcpt")
            and all(t is not self.txn for _, t in self.pending)
        ):
            # Rule 7.8: a transaction whose MAIL was refused is over once answered.
            self.phase, self.txn = "ready", None


def _reply_code(command: Sendable, success: bool) -> int:
    if isinstance(command, Data):
        return 354 if success else 554
    if isinstance(command, Quit):
        return 221
    if isinstance(command, (Rset, Noop)):
        return 250
    if isinstance(command, (Ehlo, Helo)):
        return 250 if success else 502
    return 250 if success else 550


class ConnectionMachine(RuleBasedStateMachine):
    """Random dialogues: the connection must always agree with the model."""

    def __init__(self) -> None:
        super().__init__()
        self.conn = ClientConnection()
        self.model: Model | None = None
        self.eof = False

    @precondition(lambda self: self.model is None)
    @rule(pipelining=st.booleans())
    def greet(self, pipelining: bool) -> None:
        for command in COMMANDS:
            with pytest.raises(LocalProtocolError):
                self.conn.send(command)  # NS-16
        feed(self.conn, b"220 mx.example ESMTP\r\n")
        self.model = Model(server_pipelining=pipelining)

    @precondition(lambda self: self.model is not None)
    @rule(command=st.sampled_from(WEIGHTED))
    def send_any_command(self, command: Sendable) -> None:
        self._send(command)

    @precondition(
        lambda self: self.model is not None and any(self.model.legal(c) for c in COMMANDS)
    )
    @rule(data=st.data())
    def send_a_legal_command(self, data: st.DataObject) -> None:
        model = self.model
        assert model is not None
        self._send(data.draw(st.sampled_from([c for c in COMMANDS if model.legal(c)])))

    def _send(self, command: Sendable) -> None:
        model = self.model
        assert model is not None
        if model.legal(command):
            data = self.conn.send(command)
            if not isinstance(command, (MessageData, EndOfData)):
                assert data == command.encode()
            elif isinstance(command, EndOfData):
                assert data.endswith(b".\r\n")
            model.sent(command)
        else:
            before = (self.conn.state, self.conn.pending, self.conn.unacknowledged_bytes)
            with pytest.raises(LocalProtocolError):
                self.conn.send(command)
            assert (self.conn.state, self.conn.pending, self.conn.unacknowledged_bytes) == before

    @precondition(lambda self: self.model is not None and self.model.pending)
    @rule(data=st.data())
    def server_answers(self, data: st.DataObject) -> None:
        model = self.model
        assert model is not None
        count = data.draw(st.integers(min_value=1, max_value=len(model.pending)))
        answered = model.pending[:count]
        stream = b""
        codes = []
        for command, _ in answered:
            success = data.draw(st.integers(min_value=0, max_value=4)) > 0
            code = _reply_code(command, success)
            codes.append(code)
            if isinstance(command, Ehlo) and code == 250:
                keywords = ("PIPELINING",) if model.server_pipelining else ()
                stream += ehlo_reply(*keywords, "8BITMIME")
            else:
                stream += f"{code} text\r\n".encode()
        cuts = sorted(data.draw(st.sets(st.integers(0, len(stream)), max_size=4)))
        bounds = [0, *cuts, len(stream)]
        events = []
        for a, b in itertools.pairwise(bounds):
            if b > a:
                events += feed(self.conn, stream[a:b])
        assert [(type(e.command), e.reply.code) for e in events if isinstance(e, CommandReply)] == [
            (type(c), code) for (c, _), code in zip(answered, codes, strict=True)
        ]
        for (command, txn), code in zip(answered, codes, strict=True):
            model.pending.pop(0)
            model.answered(command, txn, code)

    @precondition(
        lambda self: self.model is not None and self.model.phase == "closed" and not self.eof
    )
    @rule()
    def server_closes(self) -> None:
        assert drain(self.conn) == []
        assert feed(self.conn, b"") == [ConnectionClosed()]
        self.eof = True

    @invariant()
    def agrees_with_the_model(self) -> None:
        model = self.model
        if model is None:
            assert self.conn.state is State.CONNECTING
            return
        assert self.conn.state is PHASE_STATE[model.phase]
        assert self.conn.pending == tuple(c for c, _ in model.pending)
        expected = sum(3 if isinstance(c, EndOfData) else len(c.encode()) for c, _ in model.pending)
        assert self.conn.unacknowledged_bytes == expected


ConnectionMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=40, deadline=None
)
test_rfc5321_command_order_state_machine = ConnectionMachine.TestCase
