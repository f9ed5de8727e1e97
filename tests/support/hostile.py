"""A hostile SMTP/LMTP server model that knows the truth, for model-based tests and fuzzing.

The server reads what the client writes as a real server would (command lines; content after
its own 354 until ``.``; ``BDAT n`` chunks), and answers each command by a `Behaviour` drawn
from a script: the right reply, another code (a 221 for a 250, a 354 to RCPT), the reply twice,
a reply in advance for the next command, silence from then on, a close (possibly inside a
reply), or no more reading. Whatever it does, it records the truth: which recipients it really
accepted, that is, answered a valid success to their RCPT after receiving it and a valid
success to the end of data after receiving the whole content (per recipient in LMTP).

`drive` runs an engine generator against one server over a sans-I/O channel, so the checks
are exact and fast: `Server.accepted` is what may be reported ``sent``, and
`Server.garbage` lists every line the client wrote that the server had to read as a command
although it was none (message content sent to a server that did not ask for it).

One case no client can tell apart: an extra reply (a surplus or one sent in advance) shifts
every later reply onto the next command; if the server later withholds a reply, every count
matches and the shifted replies can all be valid. `Server.in_flight` flags an extra reply
that reaches the client only after it wrote its next command (on the wire, that command's
reply); `Server.shifted` names each recipient whose place in the reply stream holds a
success the server wrote for another command, or in excess: a client reading replies in
order takes it for the recipient's own. A client detects an extra reply that arrived before
it wrote again (ClientConnection refuses to send then), or one that shifts a reply onto a
command that may not get its code; these only by luck (docs/security.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar

from hypothesis import strategies as st

from smtpproto.requests import (
    Close,
    Connect,
    ConnectionLost,
    IORequest,
    IOTimeout,
    Receive,
    Send,
    Sleep,
)
from support.world import Record
from support.world import drive as run_engine

__all__ = ["BEHAVIOURS", "CODES", "SCRIPT", "Behaviour", "Server", "drive"]

T = TypeVar("T")

Kind = Literal["normal", "code", "twice", "early", "silent", "close", "deaf"]
Target = Literal["EHLO", "HELO", "MAIL", "RCPT", "DATA", "END", "CHUNK", "RSET", "QUIT", "OTHER"]


@dataclass(frozen=True)
class Behaviour:
    """How the server answers one command (or one LMTP recipient at the end of data).

    ``normal``: the right reply. ``code``: `code` instead (a 221 for a 250, a 354 to RCPT...).
    ``twice``: the right reply, then again (a surplus reply). ``early``: the right reply,
    then a reply with `code` for whatever command comes next, which then gets none.
    ``silent``: no reply, now or ever. ``close``: the right reply cut after `cut` octets
    (all of it if longer), then end of stream. ``deaf``: the right reply, then nothing
    written to the server is read any more.
    """

    kind: Kind = "normal"
    code: int = 250
    cut: int = 10_000
    target: Target = "EHLO"
    """The reply this behaviour applies to: the `nth` (from 0) reply of this kind."""
    nth: int = 0

    @property
    def hostile(self) -> bool:
        """True unless this is a server doing its job."""
        return self.kind != "normal"


NORMAL = Behaviour()
_VERBS = re.compile(rb"(EHLO|HELO|LHLO|MAIL FROM:|RCPT TO:|DATA|BDAT |RSET|NOOP|QUIT)", re.I)
_RCPT = re.compile(rb"RCPT TO:<([^>]*)>", re.I)
_BDAT = re.compile(rb"BDAT (\d+)( LAST)?", re.I)


@dataclass
class _Transaction:
    mail_ok: bool = False
    rcpt_ok: list[str] = field(default_factory=list)
    """Recipients answered a valid success after their RCPT arrived, in order."""
    complete: bool = False
    envelope_replies: bool = False
    """MAIL or RCPT got a reply."""


@dataclass
class Server:
    """One connection's worth of hostile server; each behaviour applies to the reply it targets."""

    behaviours: list[Behaviour]
    lmtp: bool = False
    pipelining: bool = True
    chunking: bool = False
    out: bytearray = field(default_factory=bytearray)
    accepted: set[str] = field(default_factory=set)
    """Every recipient this server truly accepted (the only ones that may be ``sent``)."""
    garbage: list[bytes] = field(default_factory=list)
    hostile: bool = False
    """Whether any behaviour other than ``normal`` was used."""
    refused: bool = False
    """Whether the server itself refused something (so not every recipient can be sent)."""
    _in: bytearray = field(default_factory=bytearray)
    _mode: str = "command"
    _chunk_left: int = 0
    _chunk_last: bool = False
    _txn: _Transaction = field(default_factory=_Transaction)
    _silent: bool = False
    _closing: bool = False
    _closed: bool = False
    _deaf: bool = False
    _advance: tuple[int, int, int] | None = None
    """The code of an ``early`` reply, how many octets the client had written then, and its
    index in `_written_replies`."""
    _written: int = 0
    """Octets the client has written so far."""
    _read: int = 0
    """Octets the client has received so far."""
    _extra: int | None = None
    """Stream offset of the last extra reply (surplus or in advance) the server wrote."""
    in_flight: bool = False
    """An extra reply reached the client only after it wrote its next command (see below)."""
    _seen: dict[str, int] = field(default_factory=dict)
    """The code already sent for the next command (an ``early`` reply)."""
    one_flight: bool = False
    """A BDAT came while the client had not read every reply to its envelope yet: the content
    was in the flight of MAIL and RCPT (RFC 3030 4.2)."""
    _owed: list[tuple[str, ...]] = field(default_factory=list)
    """Each reply the server owes, in order (one per command, per LMTP recipient at the end
    of data, per BDAT chunk): the recipients whose fate it decides."""
    _written_replies: list[tuple[int | None, int]] = field(default_factory=list)
    """Each complete reply written, in order: the index in `_owed` of the reply it is (None:
    an extra one), and its code."""

    def __post_init__(self) -> None:
        self.out += b"220 mx.example ESMTP hostile\r\n"
        self._plan: dict[tuple[str, int], Behaviour] = {}
        self.plan(self.behaviours)

    def plan(self, behaviours: list[Behaviour]) -> None:
        """Add behaviours counted from now: ``nth=0`` is the next reply of its kind."""
        for b in behaviours:
            nth = b.nth + self._seen.get(b.target, 0)
            self._plan.setdefault((b.target, nth), replace(b, nth=nth))

    @property
    def shifted(self) -> set[str]:
        """Recipients whose place in the reply stream holds a success (250, 251) that is not
        their own reply: a client reading replies in order cannot tell it from theirs."""
        found: set[str] = set()
        for place, (owner, code) in enumerate(self._written_replies[: len(self._owed)]):
            if owner != place and code in (250, 251):
                found.update(self._owed[place])
        return found

    # -- the client's side of the channel ----------------------------------------------------

    def client_send(self, data: bytes) -> None:
        """What the client wrote."""
        if self._closed:
            raise ConnectionLost("connection reset by peer")
        if self._deaf:
            raise IOTimeout("the server stopped reading")
        if self._extra is not None and self._read <= self._extra:
            # An extra reply (surplus or in advance) the client had not yet received when it
            # wrote again: from the wire alone it is the reply to what the client writes now.
            self.in_flight = True
        self._extra = None
        self._written += len(data)
        self._in += data
        self._process()

    def client_receive(self, max_bytes: int) -> bytes:
        """What the client reads next: queued output, end of stream, or a timeout."""
        if self.out:
            data = bytes(self.out[:max_bytes])
            del self.out[:max_bytes]
            self._read += len(data)
            return data
        if self._closing:
            self._closed = True
            return b""
        raise IOTimeout("no reply")

    # -- the server's side ------------------------------------------------------------------

    def _behaviour(self, target: Target) -> Behaviour:
        nth = self._seen.get(target, 0)
        self._seen[target] = nth + 1
        behaviour = self._plan.pop((target, nth), NORMAL)
        self.hostile = self.hostile or behaviour.hostile
        return behaviour

    def _reply(
        self, reply: bytes, target: Target, recipients: tuple[str, ...] = ()
    ) -> tuple[int | None, bool]:
        """Answer a command with `reply`, as the next behaviour says; `recipients` are those
        whose fate this reply decides.

        Returns the code the client got for this command (None: no complete reply) and
        whether it went out after the command arrived (False: it was sent in advance).
        """
        owed = len(self._owed)
        self._owed.append(recipients)
        if self._silent or self._closing:
            return None, True
        if self._advance is not None:
            (code, written, at), self._advance = self._advance, None
            # An early reply is this command's own when the command had wholly arrived before
            # it went out: a pipelined group read at once, or the next LMTP recipient's reply
            # after the content. Otherwise it was sent in advance.
            in_time = self._written - len(self._in) <= written
            if in_time:
                self._written_replies[at] = (owed, code)
            return code, in_time
        behaviour = self._behaviour(target)
        kind = behaviour.kind
        code = int(reply[:3])
        if kind == "code":
            self.out += b"%d hostile\r\n" % behaviour.code
            self._written_replies.append((owed, behaviour.code))
            return behaviour.code, True
        if kind == "silent":
            self._silent = True
            return None, True
        if kind == "close":
            self.out += reply[: behaviour.cut]
            self._closing = True
            if behaviour.cut < len(reply):
                return None, True
            self._written_replies.append((owed, code))
            return code, True
        self.out += reply
        self._written_replies.append((owed, code))
        if kind == "twice":
            self._extra = self._read + len(self.out)
            self.out += reply
            self._written_replies.append((None, code))
        elif kind == "early":
            self._extra = self._read + len(self.out)
            self.out += b"%d early\r\n" % behaviour.code
            self._advance = (behaviour.code, self._written, len(self._written_replies))
            self._written_replies.append((None, behaviour.code))
        elif kind == "deaf":
            self._deaf = True
        return code, True

    def _process(self) -> None:
        while not self._closing and not self._silent:
            if self._mode == "data":
                end = self._in.find(b"\r\n.\r\n")
                if end < 0:
                    if self._in.startswith(b".\r\n"):
                        del self._in[:3]  # an empty message
                        self._end_of_data()
                        continue
                    return
                del self._in[: end + 5]
                self._end_of_data()
                continue
            if self._mode == "bdat":
                if len(self._in) < self._chunk_left:
                    self._chunk_left -= len(self._in)
                    self._in.clear()
                    return
                del self._in[: self._chunk_left]
                self._mode = "command"
                if self._chunk_last:
                    self._end_of_data()
                else:
                    self._reply(b"250 2.0.0 chunk ok\r\n", "CHUNK")
                continue
            end = self._in.find(b"\r\n")
            if end < 0:
                return
            line = bytes(self._in[:end])
            del self._in[: end + 2]
            self._command(line)

    def _command(self, line: bytes) -> None:
        verb = _VERBS.match(line)
        if verb is None:
            self.garbage.append(line)
            self._reply(b"500 5.5.2 unknown command\r\n", "OTHER")
            return
        name = verb.group(1).upper()
        if name in (b"EHLO", b"LHLO"):
            keywords = [b"mx.example"]
            if self.pipelining:
                keywords.append(b"PIPELINING")
            if self.chunking:
                keywords.append(b"CHUNKING")
            lines = [b"250-" + k for k in keywords[:-1]] + [b"250 " + keywords[-1]]
            self._reply(b"\r\n".join(lines) + b"\r\n", "EHLO")
        elif name in (b"HELO", b"RSET", b"NOOP"):
            self._txn = _Transaction()
            self._reply(b"250 2.0.0 ok\r\n", "RSET" if name == b"RSET" else "HELO")
        elif name == b"QUIT":
            self._reply(b"221 2.0.0 bye\r\n", "QUIT")
            self._closing = True
        elif name == b"MAIL FROM:":
            self._txn = _Transaction(envelope_replies=True)
            code, in_time = self._reply(b"250 2.1.0 ok\r\n", "MAIL")
            self._txn.mail_ok = code == 250 and in_time
        elif name == b"RCPT TO:":
            match = _RCPT.match(line)
            address = match.group(1).decode() if match else ""
            if self._txn.mail_ok:
                code, in_time = self._reply(b"250 2.1.5 ok\r\n", "RCPT", (address,))
                if code in (250, 251) and in_time:
                    self._txn.rcpt_ok.append(address)
            else:
                self.refused = True
                self._reply(b"503 5.5.1 need MAIL\r\n", "RCPT", (address,))
        elif name == b"DATA":
            if self._txn.rcpt_ok:
                code, _ = self._reply(b"354 go ahead\r\n", "DATA")
                if code == 354:
                    self._mode = "data"  # whatever the reason, the server said 354
            else:
                self.refused = True
                code, _ = self._reply(b"554 5.5.1 no valid recipients\r\n", "DATA")
                if code == 354:
                    self._mode = "data"
        else:  # BDAT
            match = _BDAT.match(line)
            if match is None:
                self.garbage.append(line)
                return
            if self.out and self._txn.envelope_replies:
                self.one_flight = True
            self._mode = "bdat"
            self._chunk_left = int(match.group(1))
            self._chunk_last = match.group(2) is not None
            self._process_empty_chunk()

    def _process_empty_chunk(self) -> None:
        if self._chunk_left == 0:
            self._mode = "command"
            if self._chunk_last:
                self._end_of_data()
            else:
                self._reply(b"250 2.0.0 chunk ok\r\n", "CHUNK")

    def _end_of_data(self) -> None:
        self._mode = "command"
        txn = self._txn
        txn.complete = True
        if not txn.rcpt_ok:
            self._reply(b"554 5.5.1 no valid recipients\r\n", "END")
        elif self.lmtp:
            for address in txn.rcpt_ok:
                if self._reply(b"250 2.0.0 delivered\r\n", "END", (address,)) == (250, True):
                    self.accepted.add(address)
        elif self._reply(b"250 2.0.0 queued\r\n", "END", tuple(txn.rcpt_ok)) == (250, True):
            self.accepted.update(txn.rcpt_ok)
        self._txn = _Transaction()


def drive(
    engine: Generator[IORequest, Any, T],
    connect: Callable[[], Server],
    *,
    chunk: Callable[[], int] = lambda: 65536,
    max_steps: int = 50_000,
) -> T:
    """Run `engine` to completion; each ``Connect`` gets a new server from `connect`.

    `chunk` says how many octets each ``Receive`` may return, so replies arrive split at
    arbitrary points. Anything but a normal return is the test's failure.
    """

    def answer(index: int, request: IORequest) -> Any:
        if isinstance(request, Connect):
            return connect()
        if isinstance(request, Send):
            assert isinstance(request.channel, Server)
            request.channel.client_send(request.data)
            return None
        if isinstance(request, Receive):
            assert isinstance(request.channel, Server)
            return request.channel.client_receive(max(1, min(request.max_bytes, chunk())))
        if isinstance(request, (Close, Sleep)):
            return None
        raise AssertionError(f"unexpected request {request!r}")

    return run_engine(engine, answer, Record(), max_steps=max_steps)


# -- hypothesis strategies, shared by tests/test_engine_hostile_model.py and fuzz/hostile.py --

CODES = (220, 221, 250, 251, 334, 354, 421, 450, 452, 500, 503, 550, 552, 554)
"""The codes a ``code`` behaviour puts in place of the right reply."""

TARGETS = st.sampled_from(("MAIL", "RCPT", "DATA", "END", "CHUNK", "RSET", "EHLO", "QUIT"))
NTH = st.integers(0, 3)
BEHAVIOURS = st.one_of(
    st.builds(Behaviour, st.just("code"), st.sampled_from(CODES), target=TARGETS, nth=NTH),
    st.builds(Behaviour, st.just("twice"), target=TARGETS, nth=NTH),
    st.builds(
        Behaviour, st.just("early"), st.sampled_from((250, 354, 221, 550)), target=TARGETS, nth=NTH
    ),
    st.builds(Behaviour, st.just("silent"), target=TARGETS, nth=NTH),
    st.builds(
        Behaviour, st.just("close"), st.just(250), st.integers(0, 40), target=TARGETS, nth=NTH
    ),
    st.builds(Behaviour, st.just("deaf"), target=TARGETS, nth=NTH),
)
"""One hostile behaviour aimed at one reply (the nth of its kind)."""
# The other replies are right: hostility at one or two points finds more than everywhere.
SCRIPT = st.lists(BEHAVIOURS, max_size=3)
"""A connection's behaviours: at most three hostile replies."""
