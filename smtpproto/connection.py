"""`ClientConnection`: the state machine of one SMTP or LMTP session, after h11's ``_connection``.

The caller owns the socket; the connection owns correctness. `ClientConnection.send` turns a
command into the bytes to write, or raises `LocalProtocolError` when the command is not legal
now (and then nothing changes: the next legal command still works, CV-02).
`ClientConnection.receive_data` takes what the server sent (``b""`` is the end of input) and
`ClientConnection.next_event` returns one event at a time, or `NEED_DATA`. Whatever the bytes,
the only exception out of the receive side is `RemoteProtocolError`, after which the connection
is dead: every later `send` is a `LocalProtocolError` (CV-10a).

How the machine is built (h11 ``_state.py`` style, three kinds of transition):

- **Send-triggered**: `SEND_TRANSITIONS`, keyed by (state, command type), is every command
  the client may send in each state and the state it leads to. It is RFC 5321 4.1.4 and 3.3
  (command order), RFC 3207 4 (STARTTLS), RFC 3030 2 (BDAT), RFC 2033 4 (LMTP) as a table;
  `format_transitions()` prints it. The state moves when a command is *sent*, because with
  PIPELINING (RFC 2920) a client sends MAIL, RCPT and DATA before any reply.
- **Reply-triggered**: `REPLY_TRANSITIONS`, keyed by (state, command type, reply class),
  applied when the reply that completes a command arrives: a positive EHLO makes the session
  READY, a 354 opens the message content, the end-of-data reply ends the transaction.
- **State-triggered**: a transaction whose MAIL was refused is over once none of its commands
  is still unanswered (rule 7.8), and an LMTP ``BDAT LAST`` with no accepted recipient
  gets no reply at all (RFC 2033 4.3). These are the only rules written as code.

Rules beyond the tables, each tested in ``tests/test_connection.py``:

- Nothing is sent before the greeting is complete (NS-16). Any 2xx greeting opens the
  session, as in Postfix (rule 3.1; RFC 5321 4.3.2 names only 220); any other greeting, a
  421 or 554 refusal (RFC 5321 3.1, 3.8) or an impossible 3xx, leaves only QUIT. The greeting
  is always delivered as a `Greeting` event, so that the caller classifies it (rule 3.1).
- Pipelining (RFC 2920 3.1): without PIPELINING advertised no command is sent while another is
  unanswered. With it, EHLO, HELO, LHLO, DATA, STARTTLS (RFC 3207 4), NOOP, QUIT, AUTH (RFC
  4954 4, except PLAIN or EXTERNAL with an initial response), an AUTH that got a challenge,
  the end of data and ``BDAT LAST`` must end a group: nothing follows them until they are
  answered, except QUIT straight after the end of data (rule 7.3). RSET is not in that
  list, so RSET then QUIT (rule 7.6) pipelines. Unanswered command bytes never exceed
  ``pipeline_limit`` (Postfix's 4096-octet rule, rules 7.2 and 7.4), except QUIT after the end
  of data; the first command of a group is never refused for its size.
- Extensions are used only when advertised: STARTTLS, AUTH (and only an advertised
  mechanism), BDAT (CHUNKING), XFORWARD attributes, and the MAIL/RCPT parameters SIZE,
  BODY=8BITMIME (8BITMIME or SMTPUTF8, rule 3.10), BODY=BINARYMIME, SMTPUTF8, RET,
  ENVID, NOTIFY, ORCPT and AUTH=. A HELO session has no extensions. A RCPT with a non-ASCII
  address needs a MAIL with ``smtputf8=True`` (RFC 6531 3.4); BODY=BINARYMIME needs BDAT
  (RFC 3030 3).
- STARTTLS (RFC 3207 4): 220 is success (Postfix takes any 2xx; NS-07 lets us pick the RFC);
  another 2xx or a 3xx is a `RemoteProtocolError` (NS-06). After the positive reply, any byte the
  server sent past it, whether it arrived with the reply or before `tls_established`, is a
  `RemoteProtocolError`, CRLF or not (NS-01). After `tls_established` the capabilities, and a
  previous AUTH, are forgotten; only EHLO/LHLO or QUIT may follow until a positive reply (NS-10),
  HELO after a refused EHLO (NS-15); a second STARTTLS is refused (NS-11).
- AUTH (RFC 4954): while an AUTH is unanswered the reply parser accepts long 334 lines
  (RP-12). A 334 is delivered as a `CommandReply` for the AUTH (``is_challenge``), and only
  then may one `AuthResponse` be sent. AUTH in a transaction, a second AUTH after success, or
  an AUTH while another is unanswered are refused (AU-16).
- Replies are matched in order to the commands sent, and only to a command that was sent and may
  get that code. Each command type has its success and intermediate codes (`REPLY_CODES`, RFC 5321
  4.3.2): any other 2xx or 3xx answers something else, so it is a `RemoteProtocolError` (Postfix
  reads a stray 3xx as a 5.5.0 refusal, quirk Q2); refusals (4xx, 5xx) are events for the caller
  to classify. `send` raises `RemoteProtocolError`, and sends nothing, when the server already
  sent more than the commands before it owe: a reply in advance, a surplus reply, leftover bytes
  before a new transaction. A refusal in the middle of the message content (no end of data sent)
  is the end-of-data reply, early (rule 7.9: an early 552): the state becomes ABORTED and nothing
  more may be sent; a success there is a `RemoteProtocolError`, as the server has not seen the end
  of the message. A 421 to any command but QUIT means the server is closing (RFC 5321 3.8): the
  commands still unanswered are dropped and only QUIT may be sent; a 421 with nothing outstanding
  is a `ServerClosing` event (CV-10c); any other reply with nothing outstanding is a
  `RemoteProtocolError` (RP-18, CV-10b). End of input with nothing outstanding, or with only a
  QUIT outstanding (NS-19: the QUIT reply never matters, rule 9.7), and no partial reply,
  is `ConnectionClosed`; any other end of input is a `RemoteProtocolError`.
- Message content: after a 354 to DATA, `MessageData` chunks go through a streaming
  `BodyEncoder` (CRLF normalization, dot-stuffing, line length) and `EndOfData` returns the
  encoder's finish (the rest and ``.\\r\\n``). When every RCPT was refused, or MAIL was, only
  `EndOfData` may follow the 354: the empty message of rule 7.7. LMTP: a 354 with no
  accepted recipient is a `RemoteProtocolError` (RFC 2033 4.2: such a DATA MUST fail), and the
  end of data gets one `RecipientReply` per accepted RCPT, in order (RFC 2033 4.2; RP-22).
- BDAT (RFC 3030): `MessageData` and `EndOfData` sent without DATA (CHUNKING advertised) are
  framed by the connection like DATA content: encoded (CRLF, line length; no dot-stuffing),
  gathered up to ``bdat_chunk_size`` octets per ``BDAT n`` chunk, and ended by
  ``BDAT n LAST``. For content that must go out unchanged (BODY=BINARYMIME), ``Bdat(size)``
  is followed by `MessageData` totalling exactly `size` octets; the two ways do not mix in
  one transaction. A reply to a BDAT before its chunk is complete is a `RemoteProtocolError`;
  after a refused BDAT no other BDAT may follow (RFC 3030 2).
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final, get_args

from ._errors import LocalProtocolError, RemoteProtocolError
from ._replyfast import FastReplyParser
from .body import BodyEncoder
from .capabilities import Capabilities
from .commands import (
    Auth,
    AuthResponse,
    Bdat,
    Command,
    Data,
    Ehlo,
    EndOfData,
    Helo,
    Lhlo,
    Mail,
    MessageData,
    Noop,
    Quit,
    Rcpt,
    Rset,
    StartTLS,
    Xforward,
)
from .events import (
    NEED_DATA,
    CommandReply,
    ConnectionClosed,
    Event,
    Greeting,
    NeedData,
    RecipientReply,
    ServerClosing,
    _command_reply,
)
from .replies import Reply, ReplyLimits

__all__ = [
    "NEED_DATA",
    "REPLY_CODES",
    "REPLY_TRANSITIONS",
    "SEND_TRANSITIONS",
    "ClientConnection",
    "State",
    "format_transitions",
]


class State(enum.Enum):
    """The states of a session, seen from the client (readable reprs, like h11's sentinels)."""

    CONNECTING = "CONNECTING"
    """Waiting for the greeting; nothing may be sent (NS-16)."""
    GREETED = "GREETED"
    """Greeted, or a hello is unanswered or was refused: EHLO/HELO/LHLO next."""
    TLS_HELLO = "TLS_HELLO"
    """TLS is up: only EHLO/LHLO (or QUIT) until a positive reply (RFC 3207 4.2; NS-10)."""
    READY = "READY"
    """Session open, no mail transaction."""
    MAIL = "MAIL"
    """MAIL sent, no RCPT yet."""
    RCPT = "RCPT"
    """At least one RCPT sent."""
    DATA = "DATA"
    """DATA sent, its reply awaited."""
    CONTENT = "CONTENT"
    """DATA got its 354: message content, then its end."""
    DOT = "DOT"
    """End of data sent, its reply (or LMTP replies) awaited."""
    BDAT_CHUNK = "BDAT_CHUNK"
    """A BDAT header was sent and its chunk is not complete."""
    BDAT = "BDAT"
    """BDAT chunks sent, the last one not yet."""
    BDAT_LAST = "BDAT_LAST"
    """``BDAT LAST`` and its chunk sent, the final reply awaited."""
    TLS_HANDSHAKE = "TLS_HANDSHAKE"
    """STARTTLS accepted: nothing may be sent or received until `tls_established`."""
    ABORTED = "ABORTED"
    """The server answered in the middle of the content: send nothing more, close (rule 7.9)."""
    CLOSING = "CLOSING"
    """The server refused the session or said 421: only QUIT (RFC 5321 3.1, 3.8)."""
    QUIT_SENT = "QUIT_SENT"
    """QUIT sent: nothing more."""
    CLOSED = "CLOSED"
    """QUIT answered or the connection closed."""
    ERROR = "ERROR"
    """The server broke the protocol; the connection is unusable (CV-10)."""

    def __repr__(self) -> str:
        """The state's name."""
        return self.value

    # Enum's own __hash__ is Python code (hash of the name), paid on every transition-table
    # and frozenset lookup; members compare by identity, so the C identity hash is equivalent.
    __hash__ = object.__hash__


_S = State
_HELLO = (Ehlo, Helo, Lhlo)

# Send-triggered transitions: (state, command type) -> (next state, why). Every pair missing
# here is a LocalProtocolError naming both.
SEND_TRANSITIONS: Final[dict[tuple[State, type], tuple[State, str]]] = {
    **{
        (_S.GREETED, kind): (_S.GREETED, "RFC 5321 4.1.4: a session starts with EHLO or HELO")
        for kind in _HELLO
    },
    (_S.GREETED, Noop): (_S.GREETED, "RFC 5321 4.1.4: NOOP any time"),
    (_S.GREETED, Rset): (_S.GREETED, "RFC 5321 4.1.4: RSET any time"),
    (_S.GREETED, Quit): (_S.QUIT_SENT, "RFC 5321 4.1.4: QUIT any time"),
    (_S.TLS_HELLO, Ehlo): (_S.GREETED, "RFC 3207 4.2: EHLO again after TLS"),
    (_S.TLS_HELLO, Lhlo): (_S.GREETED, "RFC 3207 4.2 with RFC 2033 4.1: LHLO again after TLS"),
    (_S.TLS_HELLO, Quit): (_S.QUIT_SENT, "RFC 3207 4.1: QUIT when TLS is not good enough"),
    **{
        (state, kind): (_S.GREETED, "RFC 5321 4.1.4: EHLO/HELO again resets the session")
        for state in (_S.READY, _S.MAIL, _S.RCPT)
        for kind in _HELLO
    },
    (_S.READY, StartTLS): (_S.READY, "RFC 3207 4: STARTTLS outside a transaction"),
    (_S.READY, Auth): (_S.READY, "RFC 4954 4: AUTH outside a transaction"),
    (_S.READY, Xforward): (_S.READY, "Postfix XFORWARD_README: before MAIL"),
    (_S.READY, Mail): (_S.MAIL, "RFC 5321 3.3: MAIL starts a transaction"),
    (_S.MAIL, Rcpt): (_S.RCPT, "RFC 5321 3.3: RCPT after MAIL"),
    (_S.RCPT, Rcpt): (_S.RCPT, "RFC 5321 3.3: RCPT repeated per recipient"),
    (_S.RCPT, Data): (_S.DATA, "RFC 5321 3.3: DATA after at least one RCPT"),
    (_S.RCPT, Bdat): (_S.BDAT_CHUNK, "RFC 3030 2: BDAT instead of DATA"),
    (_S.CONTENT, MessageData): (_S.CONTENT, "RFC 5321 4.1.1.4: content after 354"),
    (_S.CONTENT, EndOfData): (_S.DOT, "RFC 5321 4.1.1.4: <CRLF>.<CRLF> ends the content"),
    (_S.DOT, Quit): (_S.QUIT_SENT, "Postfix rule 7.3: QUIT pipelined after the end of data"),
    (_S.BDAT_CHUNK, MessageData): (_S.BDAT_CHUNK, "RFC 3030 2: the chunk follows BDAT"),
    (_S.BDAT, Bdat): (_S.BDAT_CHUNK, "RFC 3030 2: the next chunk"),
    (_S.RCPT, MessageData): (_S.BDAT, "RFC 3030 2: content without DATA goes in BDAT chunks"),
    (_S.BDAT, MessageData): (_S.BDAT, "RFC 3030 2: more content, framed as BDAT chunks"),
    (_S.RCPT, EndOfData): (_S.BDAT_LAST, "RFC 3030 2: BDAT n LAST ends the content"),
    (_S.BDAT, EndOfData): (_S.BDAT_LAST, "RFC 3030 2: BDAT n LAST ends the content"),
    (_S.BDAT_LAST, Quit): (_S.QUIT_SENT, "Postfix rule 7.3: QUIT pipelined after the last chunk"),
    (_S.CLOSING, Quit): (_S.QUIT_SENT, "RFC 5321 3.1, 3.8: QUIT after a refusal or 421"),
    **{
        (state, Noop): (state, "RFC 5321 4.1.4: NOOP any time")
        for state in (_S.READY, _S.MAIL, _S.RCPT, _S.BDAT)
    },
    **{
        (state, Rset): (_S.READY, "RFC 5321 4.1.1.5: RSET ends the transaction")
        for state in (_S.READY, _S.MAIL, _S.RCPT, _S.BDAT)
    },
    **{
        (state, Quit): (_S.QUIT_SENT, "RFC 5321 4.1.1.10: QUIT any time")
        for state in (_S.READY, _S.MAIL, _S.RCPT, _S.BDAT)
    },
}
"""(state, command type) -> (next state, the rule that allows it); the whole send side."""

_POSITIVE, _INTERMEDIATE, _NEGATIVE, _ANY = "2xx", "3xx", "4xx/5xx", "any"

# Reply-triggered transitions, applied when the reply that completes a command arrives:
# (state, command type, reply class) -> (next state, why). A missing entry: no change.
REPLY_TRANSITIONS: Final[dict[tuple[State, type, str], tuple[State, str]]] = {
    **{
        (_S.GREETED, kind, _POSITIVE): (_S.READY, "RFC 5321 4.1.1.1 / RFC 2033 4.1: greeted")
        for kind in _HELLO
    },
    (_S.READY, StartTLS, _POSITIVE): (_S.TLS_HANDSHAKE, "RFC 3207 4: start the handshake"),
    (_S.DATA, Data, _INTERMEDIATE): (_S.CONTENT, "RFC 5321 4.1.1.4: 354, send the content"),
    (_S.DATA, Data, _ANY): (_S.RCPT, "RFC 5321 4.1.1.4: DATA refused, transaction still open"),
    (_S.DOT, EndOfData, _ANY): (_S.READY, "RFC 5321 4.1.1.4: the end-of-data reply ends it"),
    (_S.BDAT_LAST, Bdat, _ANY): (_S.READY, "RFC 3030 2: the BDAT LAST reply ends it"),
    (_S.QUIT_SENT, Quit, _ANY): (_S.CLOSED, "RFC 5321 4.1.1.10: 221, then the close"),
}
"""(state, command type, reply class) -> (next state, the rule); the reply side."""

# RFC 2920 3.1, RFC 3207 4, RFC 4954 4: nothing may be pipelined after these.
_GROUP_ENDERS = frozenset({Ehlo, Helo, Lhlo, Data, StartTLS, Noop, Quit, EndOfData})

# RFC 5321 4.3.2 (RFC 3207 4 for STARTTLS, RFC 4954 4 for AUTH, RFC 3030 2 for BDAT, RFC 2033
# 4.2 for the LMTP end of data): the success and intermediate codes each command may get. A
# 2xx or 3xx outside its command's set is a reply to some other command, so it is a
# RemoteProtocolError: a 221 to QUIT can never pass for the end-of-data 250 pipelined before
# it, nor a 250 for DATA's 354. Negative replies (4xx, 5xx) are the caller's to classify.
REPLY_CODES: Final[dict[type, frozenset[int]]] = {
    Ehlo: frozenset({250}),
    Helo: frozenset({250}),
    Lhlo: frozenset({250}),
    StartTLS: frozenset({220}),
    Auth: frozenset({235, 334}),
    Xforward: frozenset({250}),
    Mail: frozenset({250}),
    Rcpt: frozenset({250, 251}),
    Data: frozenset({354}),
    EndOfData: frozenset({250}),
    Bdat: frozenset({250}),
    Rset: frozenset({250}),
    Noop: frozenset({250}),
    Quit: frozenset({221}),
}
"""Command type -> the 2xx and 3xx reply codes it may get (RFC 5321 4.3.2 and extensions)."""
# RFC 4954 4: the one-round mechanisms that may be pipelined with an initial response.
_PIPELINABLE_AUTH = frozenset({"PLAIN", "EXTERNAL"})
# States with an open mail transaction; leaving them forgets the transaction.
_TRANSACTION = frozenset(
    {_S.MAIL, _S.RCPT, _S.DATA, _S.CONTENT, _S.DOT, _S.BDAT_CHUNK, _S.BDAT, _S.BDAT_LAST}
)
_DEFAULT_LIMITS = ReplyLimits()
# The largest BDAT header, for the pipelining checks made before a chunk's size is known.
_MAX_CHUNK = 4294967295
_LONGEST_BDAT = f"BDAT {_MAX_CHUNK} LAST\r\n".encode()
# (state, command type) pairs with some reply-side transition: most replies have none.
_REPLY_KEYS = frozenset((state, kind) for state, kind, _ in REPLY_TRANSITIONS)
_OVER = frozenset({_S.QUIT_SENT, _S.CLOSED, _S.CLOSING, _S.ABORTED})
_SENDABLE: Final = (*get_args(Command), MessageData, EndOfData)
_HELLO_KINDS = frozenset(_HELLO)


def format_transitions() -> str:
    """Both transition tables as aligned text, one transition per line, for reading and docs."""
    order = list(State)
    rows = [("send:", "", "", "")]
    for (state, kind), (target, why) in sorted(
        SEND_TRANSITIONS.items(), key=lambda item: order.index(item[0][0])
    ):
        rows.append((state.value, kind.__name__, target.value, why))
    rows.append(("reply:", "", "", ""))
    for (state, kind, klass), (target, why) in sorted(
        REPLY_TRANSITIONS.items(), key=lambda item: order.index(item[0][0])
    ):
        rows.append((state.value, f"{kind.__name__} {klass}", target.value, why))
    return "\n".join(
        f"  {state:<13} {label:<17} -> {target:<13} {why}" if label else state
        for state, label, target, why in rows
    )


def _reply_class(reply: Reply) -> str:
    return _POSITIVE if reply.is_positive else _INTERMEDIATE if reply.is_intermediate else _NEGATIVE


@dataclass(eq=False, slots=True)
class _Transaction:
    # One MAIL transaction: what was sent and what the server said so far.
    mail: Mail
    accepted: list[Rcpt] = field(default_factory=list)
    mail_refused: bool = False
    content_allowed: bool = False
    encoder: BodyEncoder | None = None
    chunk: _Pending | None = None  # the BDAT whose chunk is being sent
    chunk_owed: int = 0
    bdat_refused: bool = False
    framed: bytearray | None = None  # BDAT content the connection frames: encoded, not sent


@dataclass(eq=False, slots=True)
class _Pending:
    # A command sent and not yet completely answered.
    command: Command | EndOfData
    size: int
    txn: _Transaction | None
    challenged: bool = False  # AUTH: a 334 awaits an AuthResponse
    answered: int = 0  # LMTP end of data: recipient replies so far
    chunk_done: bool = True  # BDAT: every octet of its chunk was sent

    def ends_group(self) -> bool:
        command = self.command
        kind = type(command)
        if kind is Auth:
            assert isinstance(command, Auth)
            one_round = (
                command.mechanism in _PIPELINABLE_AUTH and command.initial_response is not None
            )
            return self.challenged or not one_round
        if kind is Bdat:
            assert isinstance(command, Bdat)
            return command.last
        return kind in _GROUP_ENDERS

    def ends_message(self) -> bool:
        command = self.command
        kind = type(command)
        if kind is Bdat:
            assert isinstance(command, Bdat)
            return command.last
        return kind is EndOfData


# The states as module constants: an Enum member read through its class (State.READY)
# goes through the metaclass and costs several times a global read, on every call.
(
    _ST_ABORTED,
    _ST_BDAT,
    _ST_BDAT_CHUNK,
    _ST_BDAT_LAST,
    _ST_CLOSED,
    _ST_CLOSING,
    _ST_CONNECTING,
    _ST_CONTENT,
    _ST_ERROR,
    _ST_GREETED,
    _ST_MAIL,
    _ST_QUIT_SENT,
    _ST_RCPT,
    _ST_READY,
    _ST_TLS_HANDSHAKE,
    _ST_TLS_HELLO,
) = (
    State.ABORTED,
    State.BDAT,
    State.BDAT_CHUNK,
    State.BDAT_LAST,
    State.CLOSED,
    State.CLOSING,
    State.CONNECTING,
    State.CONTENT,
    State.ERROR,
    State.GREETED,
    State.MAIL,
    State.QUIT_SENT,
    State.RCPT,
    State.READY,
    State.TLS_HANDSHAKE,
    State.TLS_HELLO,
)


_UNPRINTABLE = {c: "?" for c in (*range(32), 127)}


class _LineFilter:
    """``smtp_reply_filter`` over the received bytes: whole lines go through the callable,
    the start of an unfinished line waits (a bounded while, then it passes unfiltered)."""

    __slots__ = ("_bound", "_limit", "_partial", "_rewrite", "_skipping")

    def __init__(self, rewrite: Callable[[str], str | None], limits: ReplyLimits) -> None:
        self._rewrite = rewrite
        self._limit = limits.max_line_length
        # Longer than any line the parser keeps whole: such a line goes on unfiltered, and
        # the parser applies its own limits to it (rule 1.2).
        self._bound = max(limits.max_line_length, limits.max_auth_line_length) + 2
        self._partial = b""
        self._skipping = False

    @property
    def holding(self) -> bool:
        """Whether received octets wait here for the rest of their line."""
        return bool(self._partial)

    def feed(self, data: bytes) -> bytes:
        """What the parser gets of `data` (at EOF, ``b""``: whatever waits, then the end)."""
        if not data:
            rest, self._partial = self._partial, b""
            return rest
        out: list[bytes] = []
        buffer = self._partial + data
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            line = buffer[start : end + 1]
            start = end + 1
            if self._skipping:
                self._skipping = False
                out.append(line)
            else:
                out.append(self._line(line))
        rest = buffer[start:]
        if self._skipping or len(rest) > self._bound:
            out.append(rest)
            rest = b""
            self._skipping = True
        self._partial = rest
        return b"".join(out)

    def _line(self, line: bytes) -> bytes:
        text = line.rstrip(b"\r\n")[: self._limit].decode("utf-8", "replace")
        replacement = self._rewrite(text.translate(_UNPRINTABLE))
        if replacement is None:
            return line
        return replacement.encode("utf-8") + b"\r\n"


class ClientConnection:
    """The client side of one SMTP or LMTP session, as a sans-I/O state machine.

    `lmtp` selects LMTP (LHLO, per-recipient replies, RFC 2033). `limits` bound what the
    reply parser buffers. `pipeline_limit` caps unanswered pipelined command octets (Postfix
    rule 7.2). `discard_keywords` are EHLO/LHLO keywords to ignore as if not advertised
    (Postfix ``smtp_discard_ehlo_keywords``, rule 4.5). `line_length_limit` is passed to the
    body encoder for DATA content (Postfix ``smtp_line_length_limit``, rule 8.3).
    `bdat_chunk_size` is the size from which `MessageData` sent without DATA goes out as a
    ``BDAT`` chunk (smaller pieces are gathered until then, or until `EndOfData`).
    `reply_filter` rewrites reply lines before they are parsed (Postfix ``smtp_reply_filter``,
    rule 1.9): it gets each line's text without its line end, non-printable characters shown
    as ``?`` and cut at `ReplyLimits.max_line_length`, and returns the line to parse instead,
    or ``None`` to keep the line as it came.
    """

    def __init__(
        self,
        *,
        lmtp: bool = False,
        limits: ReplyLimits = _DEFAULT_LIMITS,
        pipeline_limit: int = 4096,
        discard_keywords: Iterable[str] = (),
        line_length_limit: int = 998,
        bdat_chunk_size: int = 65536,
        reply_filter: Callable[[str], str | None] | None = None,
    ) -> None:
        if type(lmtp) is not bool:
            raise LocalProtocolError(f"lmtp: expected a bool, got {lmtp!r}")
        if not isinstance(limits, ReplyLimits):
            raise LocalProtocolError(f"limits: expected ReplyLimits, got {limits!r}")
        if type(pipeline_limit) is not int or pipeline_limit < 1:
            raise LocalProtocolError(
                f"pipeline_limit: expected an int >= 1, got {pipeline_limit!r}"
            )
        if isinstance(discard_keywords, str):
            raise LocalProtocolError(
                "discard_keywords: expected an iterable of keywords, not one str"
            )
        discard = tuple(discard_keywords)
        if not all(isinstance(k, str) for k in discard):
            raise LocalProtocolError(f"discard_keywords: expected str keywords, got {discard!r}")
        if type(line_length_limit) is not int or line_length_limit < 0:
            raise LocalProtocolError(
                f"line_length_limit: expected an int >= 0, got {line_length_limit!r}"
            )
        if type(bdat_chunk_size) is not int or bdat_chunk_size < 1:
            raise LocalProtocolError(
                f"bdat_chunk_size: expected an int >= 1, got {bdat_chunk_size!r}"
            )
        self._lmtp = lmtp
        self._bdat_chunk_size = bdat_chunk_size
        self._pipeline_limit = pipeline_limit
        self._discard = discard
        self._line_length_limit = line_length_limit
        self._parser = FastReplyParser(limits)
        self._filter = None if reply_filter is None else _LineFilter(reply_filter, limits)
        self._state = _ST_CONNECTING
        self._capabilities: Capabilities | None = None
        self._is_tls = False
        self._authenticated = False
        self._pending: deque[_Pending] = deque()
        self._unacknowledged = 0
        self._txn: _Transaction | None = None
        self._error: str | None = None
        # Replies taken out of the parser by _check_early, returned before any newer one.
        self._early: deque[Reply] = deque()
        self._abandoned: Command | EndOfData | None = None

    # -- public state ---------------------------------------------------------------------

    @property
    def lmtp(self) -> bool:
        """True for an LMTP session (RFC 2033)."""
        return self._lmtp

    @property
    def state(self) -> State:
        """The session state (see `SEND_TRANSITIONS`)."""
        return self._state

    @property
    def capabilities(self) -> Capabilities | None:
        """What the last positive EHLO/LHLO advertised; None before it, after HELO or TLS."""
        return self._capabilities

    @property
    def is_tls(self) -> bool:
        """True once `tls_established` was called."""
        return self._is_tls

    @property
    def pending(self) -> tuple[Command | EndOfData, ...]:
        """Commands sent and not yet completely answered, oldest first (FIFO)."""
        return tuple(p.command for p in self._pending)

    @property
    def awaiting(self) -> Command | EndOfData | None:
        """The command whose reply comes next (the oldest outstanding), or None."""
        return self._pending[0].command if self._pending else None

    @property
    def abandoned(self) -> Command | EndOfData | None:
        """The first command a 421 left unanswered (RFC 5321 3.8: the server closed), or None."""
        return self._abandoned

    @property
    def outstanding(self) -> int:
        """How many commands are sent and not yet completely answered."""
        return len(self._pending)

    @property
    def unread(self) -> bool:
        """True while the server has sent octets that no event returned yet: a reply not
        asked for so far, or part of one (h11's ``trailing_data``)."""
        parser = self._parser
        return bool(self._early) or parser.ready > 0 or parser.partial

    @property
    def unacknowledged_bytes(self) -> int:
        """Octets of command lines sent and not yet answered (Postfix's 4096 rule, rule 7.2)."""
        return self._unacknowledged

    def __repr__(self) -> str:
        """The state, what is outstanding and what was negotiated, for debugging."""
        pending = ", ".join(type(p.command).__name__ for p in self._pending)
        keywords = "None" if self._capabilities is None else ",".join(self._capabilities.keywords)
        return (
            f"<ClientConnection {'LMTP' if self._lmtp else 'SMTP'} state={self._state!r} "
            f"pending=[{pending}] unacknowledged_bytes={self._unacknowledged} "
            f"tls={self._is_tls} capabilities={keywords}>"
        )

    # -- sending --------------------------------------------------------------------------

    def send(self, command: Command | MessageData | EndOfData) -> bytes:
        """The bytes to write for `command`; `LocalProtocolError` (and no change) if illegal now."""
        if self._state is _ST_ERROR:
            raise LocalProtocolError(
                f"the connection is unusable after a protocol error: {self._error} (CV-10a)"
            )
        # Dispatch on the exact type: SEND_TRANSITIONS is keyed by it, so a subclass of a
        # command is refused below as before, and one dict lookup replaces isinstance chains.
        kind = type(command)
        if kind not in _CHECKS:
            if not isinstance(command, _SENDABLE):
                raise LocalProtocolError(
                    f"command: expected a command, got {type(command).__name__}"
                )
            if isinstance(command, AuthResponse):
                return self._send_auth_response(command)
        entry = SEND_TRANSITIONS.get((self._state, kind))
        if entry is None:
            raise LocalProtocolError(self._illegal(kind))
        check = _CHECKS[kind]
        if check is not None:
            check(self, command)
        if kind is MessageData:
            assert isinstance(command, MessageData)
            return self._send_content(command)
        assert not isinstance(command, MessageData)
        if kind is EndOfData and self._state is not _ST_CONTENT:
            return self._send_chunk(last=True)
        if kind is EndOfData:
            data = self._encoder().finish()
            size = 3  # the ".\r\n" line: the command part of what was just written
        else:
            assert not isinstance(command, EndOfData)
            data = command.encode()
            size = len(data)
            if self._pending:
                self._check_pipelining(command, size)
        if kind is not Quit:
            self._check_early(command)
        # Everything is checked: commit.
        if kind is Mail:
            assert isinstance(command, Mail)
            self._txn = _Transaction(command)
        record = _Pending(command, size, self._txn)
        self._pending.append(record)
        self._unacknowledged += size
        if kind in _HELLO_KINDS:
            self._capabilities = None  # RFC 5321 4.1.4: a new hello, a new negotiation
        elif kind is Auth:
            self._parser.auth_mode = True  # RP-12
        elif kind is Bdat:
            assert isinstance(command, Bdat)
            assert self._txn is not None
            self._txn.chunk, self._txn.chunk_owed = record, command.size
            record.chunk_done = command.size == 0
        self._set_state(entry[0])
        if kind is Bdat and record.chunk_done:
            self._chunk_complete()
        self._settle()
        return data

    def _check_early(self, command: Command | MessageData | EndOfData) -> None:
        # Bytes the server sent before this command went out can only answer commands sent
        # before it. More of them than those commands still owe is a reply to a command not
        # yet sent (a server answering RCPT and DATA in advance), a surplus reply, or leftover
        # bytes before a new transaction: matching them to this command would credit it with
        # another command's reply, so the session ends here and nothing is sent.
        parser = self._parser
        reply = parser.next_reply()
        while reply is not None:
            self._early.append(reply)
            reply = parser.next_reply()
        early = len(self._early) + (1 if parser.partial else 0)
        if not early or early <= self._owed():
            return
        what = f" ({str(self._early[-1])[:80]!r})" if self._early else ""
        message = (
            f"the server sent data{what} before {_name(command)} was sent, more than the commands "
            "before it await: a reply to a command not yet sent, or a surplus reply"
        )
        self._fail(message)
        raise RemoteProtocolError(message)

    def _owed(self) -> int:
        # The replies still due to the commands outstanding: one each, except the LMTP end of
        # data, which owes one per accepted recipient not yet answered (RFC 2033 4.2).
        owed = 0
        for record in self._pending:
            if self._lmtp and record.ends_message() and record.txn is not None:
                owed += len(record.txn.accepted) - record.answered
            else:
                owed += 1
        return owed

    def _illegal(self, kind: type) -> str:
        allowed = sorted(k.__name__ for (s, k) in SEND_TRANSITIONS if s is self._state)
        if self._state is _ST_CONNECTING:
            why = "nothing may be sent before the greeting (NS-16)"
        elif self._state in (_ST_QUIT_SENT, _ST_CLOSED):
            why = "the session is over (QUIT sent or connection closed)"
        elif self._state is _ST_ABORTED:
            why = "the server answered in the middle of the content: close (rule 7.9)"
        elif self._state is _ST_TLS_HANDSHAKE:
            why = "nothing may be sent until tls_established() (RFC 3207 4.2)"
        elif allowed:
            why = f"allowed here: {', '.join(allowed)} (RFC 5321 4.1.4, 3.3)"
        else:
            why = "nothing may be sent now: a reply is awaited"
        return f"{kind.__name__} is not allowed in state {self._state.value}: {why}"

    # -- session checks per command type (the table _CHECKS below): everything that depends
    # on the session rather than the state: LMTP versus SMTP, advertised extensions, the
    # transaction so far.

    def _allow_ehlo_helo(self, command: Command | MessageData | EndOfData) -> None:
        if self._lmtp:
            name = type(command).__name__
            raise LocalProtocolError(f"{name} in an LMTP session: use Lhlo (RFC 2033 4.1)")

    def _allow_lhlo(self, command: Command | MessageData | EndOfData) -> None:
        if not self._lmtp:
            raise LocalProtocolError("Lhlo in an SMTP session: use Ehlo or Helo (RFC 2033 4.1)")

    def _allow_starttls(self, command: Command | MessageData | EndOfData) -> None:
        if self._is_tls:
            raise LocalProtocolError("StartTLS: TLS is already active (RFC 3207 4.2; NS-11)")
        _require(self._capabilities, "STARTTLS", "StartTLS")

    def _allow_auth(self, command: Command | MessageData | EndOfData) -> None:
        assert isinstance(command, Auth)
        caps = self._capabilities
        if self._authenticated:
            raise LocalProtocolError("Auth: already authenticated (RFC 4954 4; AU-16)")
        if any(isinstance(p.command, Auth) for p in self._pending):
            raise LocalProtocolError("Auth: another AUTH is still unanswered (AU-16)")
        _require(caps, "AUTH", "Auth")
        assert caps is not None
        if command.mechanism not in caps.auth_mechanisms:
            raise LocalProtocolError(
                f"Auth: mechanism {command.mechanism} was not advertised (RFC 4954 4)"
            )

    def _allow_xforward(self, command: Command | MessageData | EndOfData) -> None:
        assert isinstance(command, Xforward)
        caps = self._capabilities
        _require(caps, "XFORWARD", "Xforward")
        assert caps is not None
        unknown = {n.upper() for n, _ in command.attributes} - caps.xforward
        if unknown:
            raise LocalProtocolError(
                f"Xforward: attributes {sorted(unknown)} were not advertised (rule 13.1)"
            )

    def _allow_mail(self, command: Command | MessageData | EndOfData) -> None:
        assert isinstance(command, Mail)
        _check_mail(self._capabilities, command)

    def _allow_rcpt(self, command: Command | MessageData | EndOfData) -> None:
        assert isinstance(command, Rcpt)
        _check_rcpt(self._capabilities, command, self._txn)

    def _allow_data(self, command: Command | MessageData | EndOfData) -> None:
        assert self._txn is not None
        if self._txn.mail.body == "BINARYMIME":
            raise LocalProtocolError("Data: BODY=BINARYMIME needs BDAT (RFC 3030 3)")

    def _allow_bdat(self, command: Command | MessageData | EndOfData) -> None:
        _require(self._capabilities, "CHUNKING", "Bdat")
        assert self._txn is not None
        if self._txn.bdat_refused:
            raise LocalProtocolError("Bdat: a BDAT was refused; no more (RFC 3030 2)")
        if self._txn.framed is not None:
            raise LocalProtocolError(
                "Bdat: this content is framed by the connection (MessageData without DATA); "
                "send MessageData and EndOfData, not Bdat"
            )

    def _allow_framed(self, name: str) -> None:
        # MessageData or EndOfData without DATA: the connection frames them as BDAT chunks.
        txn = self._txn
        assert txn is not None
        _require(self._capabilities, "CHUNKING", name)
        if txn.bdat_refused:
            raise LocalProtocolError(f"{name}: a BDAT was refused; no more (RFC 3030 2)")
        if self._state is _ST_BDAT and txn.framed is None:
            raise LocalProtocolError(
                f"{name}: the chunks so far were sent with Bdat; go on with Bdat (RFC 3030 2)"
            )
        if txn.mail.body == "BINARYMIME":
            raise LocalProtocolError(
                f"{name}: BODY=BINARYMIME content is not encoded; send it with Bdat (RFC 3030 3)"
            )
        if self._pending:
            # A chunk may go out now; check as for its longest header.
            self._check_pipelining(Bdat(_MAX_CHUNK, last=True), len(_LONGEST_BDAT))

    def _allow_end_of_data(self, command: Command | MessageData | EndOfData) -> None:
        if self._state is not _ST_CONTENT:
            self._allow_framed("EndOfData")

    def _allow_message_data(self, command: Command | MessageData | EndOfData) -> None:
        assert isinstance(command, MessageData)
        txn = self._txn
        assert txn is not None
        if self._state is _ST_RCPT or self._state is _ST_BDAT:
            self._allow_framed("MessageData")
            return
        if self._state is _ST_CONTENT and not txn.content_allowed:
            raise LocalProtocolError(
                "MessageData: no recipient was accepted (or MAIL was refused): only "
                "EndOfData, an empty message, may follow the 354 (rule 7.7)"
            )
        if self._state is _ST_BDAT_CHUNK and len(command.data) > txn.chunk_owed:
            raise LocalProtocolError(
                f"MessageData: {len(command.data)} octets, but the BDAT chunk has only "
                f"{txn.chunk_owed} left (RFC 3030 2)"
            )

    def _check_pipelining(self, command: Command, size: int) -> None:
        if not self._pending:
            return
        last = self._pending[-1]
        name, last_name = type(command).__name__, type(last.command).__name__
        caps = self._capabilities
        if caps is None or not caps.pipelining:
            raise LocalProtocolError(
                f"{name} while {last_name} is unanswered: the server did not advertise "
                "PIPELINING (RFC 2920)"
            )
        quit_after_message = isinstance(command, Quit) and last.ends_message()
        if quit_after_message:
            return  # rule 7.3: "." and QUIT go out together, whatever the size
        if last.ends_group():
            raise LocalProtocolError(
                f"{name} after {last_name}: {last_name} must end a pipelined group until it "
                "is answered (RFC 2920 3.1, RFC 3207 4, RFC 4954 4)"
            )
        if self._unacknowledged + size > self._pipeline_limit:
            raise LocalProtocolError(
                f"{name}: {self._unacknowledged} unanswered octets plus {size} would exceed "
                f"the pipeline limit of {self._pipeline_limit} (rules 7.2, 7.4)"
            )

    def _send_auth_response(self, command: AuthResponse) -> bytes:
        head = self._pending[0] if self._pending else None
        if head is None or not isinstance(head.command, Auth) or not head.challenged:
            raise LocalProtocolError(
                "AuthResponse is only allowed after a 334 challenge to AUTH (RFC 4954 4)"
            )
        data = command.encode()
        head.challenged = False
        head.size += len(data)
        self._unacknowledged += len(data)
        return data

    def _encoder(self) -> BodyEncoder:
        txn = self._txn
        assert txn is not None and txn.encoder is not None
        return txn.encoder

    def _send_content(self, command: MessageData) -> bytes:
        txn = self._txn
        assert txn is not None
        if self._state is _ST_CONTENT:
            return self._encoder().feed(command.data)
        if self._state is not _ST_BDAT_CHUNK:
            framed = self._framing(txn)
            assert txn.encoder is not None
            framed += txn.encoder.feed(command.data)
            if len(framed) < self._bdat_chunk_size:
                self._set_state(_ST_BDAT)
                return b""
            return self._send_chunk(last=False)
        # BDAT: the caller's chunk, counted, unchanged (RFC 3030 2: exact octet counts).
        txn.chunk_owed -= len(command.data)
        if txn.chunk_owed == 0:
            self._chunk_complete()
            self._settle()
        return command.data

    def _framing(self, txn: _Transaction) -> bytearray:
        if txn.framed is None:
            txn.framed = bytearray()
            txn.encoder = BodyEncoder(mode="bdat", line_length_limit=self._line_length_limit)
        return txn.framed

    def _send_chunk(self, *, last: bool) -> bytes:
        # RFC 3030 2: the content gathered so far as one chunk, its exact size in the header.
        txn = self._txn
        assert txn is not None
        framed = self._framing(txn)
        if last:
            assert txn.encoder is not None
            framed += txn.encoder.finish()
        command = Bdat(len(framed), last=last)
        self._check_early(command)
        header = command.encode()
        data = header + framed
        framed.clear()
        record = _Pending(command, len(header), txn)
        self._pending.append(record)
        self._unacknowledged += len(header)
        self._set_state(_ST_BDAT_LAST if last else _ST_BDAT)
        self._settle()
        return data

    def _chunk_complete(self) -> None:
        txn = self._txn
        assert txn is not None and txn.chunk is not None
        chunk = txn.chunk
        chunk.chunk_done = True
        txn.chunk = None
        assert isinstance(chunk.command, Bdat)
        if self._state is _ST_BDAT_CHUNK:
            self._set_state(_ST_BDAT_LAST if chunk.command.last else _ST_BDAT)

    # -- receiving ------------------------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Add bytes received from the server; ``b""`` means the server closed the connection."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise LocalProtocolError(f"data: expected bytes, got {type(data).__name__}")
        if self._state is _ST_ERROR:
            return  # the error is sticky; next_event() raises it again
        if self._parser.at_eof:
            if data:
                raise LocalProtocolError("data: received after the end of input")
            return
        if self._filter is not None:
            held = self._filter.feed(bytes(data))
            if held:
                self._parser.feed(held)
            if data:
                return
        self._parser.feed(bytes(data))

    def next_event(self) -> Event | NeedData:
        """The next event, or `NEED_DATA`; `RemoteProtocolError` if the server broke the rules."""
        if self._state is _ST_ERROR:
            raise RemoteProtocolError(str(self._error))
        try:
            return self._next_event()
        except RemoteProtocolError as exc:
            self._fail(str(exc))
            raise

    def tls_established(self) -> None:
        """Tell the connection that the TLS handshake after STARTTLS succeeded (RFC 3207 4.2)."""
        if self._state is not _ST_TLS_HANDSHAKE:
            raise LocalProtocolError(
                f"tls_established() in state {self._state.value}: only after a positive "
                "STARTTLS reply"
            )
        try:
            # NS-01(a): bytes from before the handshake must never be read as TLS data.
            self._check_no_injection()
        except RemoteProtocolError as exc:
            self._fail(str(exc))
            raise
        self._is_tls = True
        self._capabilities = None
        self._authenticated = False
        self._set_state(_ST_TLS_HELLO)

    def _fail(self, message: str) -> None:
        self._error = message
        self._state = _ST_ERROR
        self._early.clear()
        self._pending.clear()
        self._unacknowledged = 0
        self._txn = None

    def _next_event(self) -> Event | NeedData:
        parser = self._parser
        if self._state is _ST_TLS_HANDSHAKE:
            self._check_no_injection()
            return self._end_of_input() if parser.at_eof else NEED_DATA
        reply = self._early.popleft() if self._early else parser.next_reply()
        if reply is None:
            return self._end_of_input() if parser.at_eof else NEED_DATA
        if self._state is _ST_CONNECTING:
            return self._greeting(reply)
        if not self._pending and self._state is _ST_CONTENT:
            # Rule 7.9: a refusal in the middle of the content (an early 552) is the
            # end-of-data reply; the server no longer reads content, so nothing more is sent.
            # A success cannot be: the server has not seen the end of the message.
            if reply.is_positive:
                raise RemoteProtocolError(
                    f"reply {str(reply)[:80]!r} before the end of data was sent: a success "
                    "counts only after the whole content and the final dot (RFC 5321 4.1.1.4)"
                )
            self._set_state(_ST_ABORTED)
            return _command_reply(EndOfData(), reply)
        if not self._pending:
            if reply.code == 421:
                if self._state not in _OVER:
                    self._set_state(_ST_CLOSING)
                return ServerClosing(reply)
            raise RemoteProtocolError(
                f"reply with no command outstanding (RP-18, CV-10b): {str(reply)[:80]!r}"
            )
        head = self._pending[0]
        event = self._answer(head, reply)
        if reply.code == 421 and type(head.command) is not Quit:
            # RFC 5321 3.8: the server closes; what is still unanswered never will be.
            waiting = [p.command for p in self._pending if type(p.command) is not Quit]
            self._abandoned = waiting[0] if waiting else None
            self._pending.clear()
            self._unacknowledged = 0
            self._parser.auth_mode = False
            self._set_state(self._state if self._state in _OVER else _ST_CLOSING)
        self._settle()
        return event

    def _check_no_injection(self) -> None:
        # NS-01: after a positive STARTTLS reply, any further byte, a complete reply or a
        # fragment without CRLF, is an injection attempt (the NO STARTTLS buffering class).
        held = self._filter is not None and self._filter.holding
        if self._parser.next_reply() is not None or self._parser.buffered or held:
            raise RemoteProtocolError(
                "data after the STARTTLS reply, before TLS (response injection; NS-01)"
            )

    def _end_of_input(self) -> Event:
        waiting = [p for p in self._pending if not isinstance(p.command, Quit)]
        if self._state is _ST_CONNECTING or waiting:
            what = (
                "the greeting"
                if self._state is _ST_CONNECTING
                else (", ".join(type(p.command).__name__ for p in waiting))
            )
            raise RemoteProtocolError(f"connection closed while waiting for a reply to {what}")
        self._pending.clear()
        self._unacknowledged = 0
        self._set_state(_ST_CLOSED)
        return ConnectionClosed()

    def _greeting(self, reply: Reply) -> Greeting:
        # Rule 3.1: any 2xx greets. Anything else refuses the session: only QUIT may
        # follow (RFC 5321 3.1); what the refusal means is the caller's decision.
        self._set_state(_ST_GREETED if reply.is_positive else _ST_CLOSING)
        return Greeting(reply)

    def _answer(self, record: _Pending, reply: Reply) -> Event:
        command = record.command
        kind = type(command)
        if not record.chunk_done:  # only a BDAT's chunk is ever unfinished
            raise RemoteProtocolError(
                f"reply {reply.code} to BDAT before its chunk was complete (RFC 3030 2)"
            )
        code = reply.code
        if code < 400 and code not in REPLY_CODES[kind]:
            # Quirk Q2 (rule 2.5): Postfix reads such a reply as a 5.5.0 refusal. It is the
            # reply to some other command, so the replies are out of step with the commands
            # and no later reply can be trusted either (NS-06: never a handshake or content).
            raise RemoteProtocolError(
                f"reply {code} to {_name(command)}: it may get only {_codes(kind)} "
                "(RFC 5321 4.3.2); this reply answers something else"
            )
        if kind is Auth and code == 334:
            if record.challenged:
                raise RemoteProtocolError("a second 334 before the response (RFC 4954 4)")
            record.challenged = True
            return _command_reply(command, reply)
        if self._lmtp and record.ends_message():
            return self._recipient_reply(record, reply)
        event = _ANSWER[kind](self, record, reply)
        self._complete(record, reply)
        return event

    def _forget(self, record: _Pending) -> None:
        # `record` got its last reply (it is always the head: replies come in order).
        self._pending.popleft()
        self._unacknowledged -= record.size
        # Only an AUTH turns auth_mode on, so outside AUTH there is nothing to scan for.
        if self._parser.auth_mode and not any(type(p.command) is Auth for p in self._pending):
            self._parser.auth_mode = False

    def _complete(self, record: _Pending, reply: Reply) -> None:
        # The reply is the last one `record` gets: forget it, then the reply-side table.
        self._forget(record)
        key = (self._state, type(record.command))
        if key in _REPLY_KEYS:
            entry = REPLY_TRANSITIONS.get((*key, _reply_class(reply)))
            if entry is None:
                entry = REPLY_TRANSITIONS.get((*key, _ANY))
            if entry is not None:
                self._set_state(entry[0])

    def _recipient_reply(self, record: _Pending, reply: Reply) -> RecipientReply:
        # RFC 2033 4.2, 4.3: one reply per accepted RCPT, in RCPT order.
        txn = record.txn
        assert txn is not None
        recipient = txn.accepted[record.answered]
        record.answered += 1
        if record.answered == len(txn.accepted):
            self._complete(record, reply)
        return RecipientReply(recipient, reply)

    def _settle(self) -> None:
        # State-triggered transitions (h11 _fire_state_triggered_transitions).
        head = self._pending[0] if self._pending else None
        if (
            self._lmtp
            and head is not None
            and isinstance(head.command, Bdat)
            and head.command.last
            and head.chunk_done
            and head.txn is not None
            and not head.txn.accepted
        ):
            # RFC 2033 4.3: BDAT LAST with no accepted recipient returns no reply; the RCPT
            # replies are all in, since they come before this one.
            self._forget(head)
            if self._state is _ST_BDAT_LAST:
                self._set_state(_ST_READY)
        txn = self._txn
        if (
            txn is not None
            and txn.mail_refused
            and self._state in (_ST_MAIL, _ST_RCPT, _ST_BDAT)
            and not any(p.txn is txn for p in self._pending)
        ):
            # Rule 7.8: MAIL refused and every reply in: the transaction is void.
            self._set_state(_ST_READY)

    def _set_state(self, state: State) -> None:
        self._state = state
        if state not in _TRANSACTION:
            self._txn = None

    # -- per-command reply handling (the table _ANSWER below) -----------------------------

    def _answer_hello(self, record: _Pending, reply: Reply) -> CommandReply:
        command = record.command
        assert isinstance(command, (Ehlo, Helo, Lhlo))
        if reply.is_positive and not isinstance(command, Helo):
            self._capabilities = Capabilities.from_reply(reply, discard=self._discard)
            return _command_reply(command, reply, self._capabilities)
        return _command_reply(command, reply)

    def _answer_auth(self, record: _Pending, reply: Reply) -> CommandReply:
        assert isinstance(record.command, Auth)
        if reply.is_positive:
            self._authenticated = True
        return _command_reply(record.command, reply)

    def _answer_starttls(self, record: _Pending, reply: Reply) -> CommandReply:
        assert isinstance(record.command, StartTLS)
        if reply.is_positive:
            self._check_no_injection()
        return _command_reply(record.command, reply)

    def _answer_mail(self, record: _Pending, reply: Reply) -> CommandReply:
        assert isinstance(record.command, Mail)
        if not reply.is_positive and record.txn is not None:
            record.txn.mail_refused = True
        return _command_reply(record.command, reply)

    def _answer_rcpt(self, record: _Pending, reply: Reply) -> CommandReply:
        assert isinstance(record.command, Rcpt)
        if reply.is_positive and record.txn is not None:
            record.txn.accepted.append(record.command)
        return _command_reply(record.command, reply)

    def _answer_data(self, record: _Pending, reply: Reply) -> CommandReply:
        assert isinstance(record.command, Data)
        txn = record.txn
        if reply.is_intermediate and self._lmtp and (txn is None or not txn.accepted):
            raise RemoteProtocolError(
                f"{reply.code} to DATA with no accepted recipient (RFC 2033 4.2: MUST be 503)"
            )
        if reply.is_intermediate and txn is not None:
            txn.content_allowed = bool(txn.accepted) and not txn.mail_refused
            txn.encoder = BodyEncoder(mode="data", line_length_limit=self._line_length_limit)
        return _command_reply(record.command, reply)

    def _answer_bdat(self, record: _Pending, reply: Reply) -> CommandReply:
        assert isinstance(record.command, Bdat)
        if not reply.is_positive and record.txn is not None:
            record.txn.bdat_refused = True
        return _command_reply(record.command, reply)

    def _answer_plain(self, record: _Pending, reply: Reply) -> CommandReply:
        assert not isinstance(record.command, AuthResponse)
        return _command_reply(record.command, reply)


_CheckFn = Callable[[ClientConnection, Command | MessageData | EndOfData], None]
# The session checks of each sendable command type; None: nothing beyond the state table.
_CHECKS: dict[type, _CheckFn | None] = {
    Ehlo: ClientConnection._allow_ehlo_helo,
    Helo: ClientConnection._allow_ehlo_helo,
    Lhlo: ClientConnection._allow_lhlo,
    StartTLS: ClientConnection._allow_starttls,
    Auth: ClientConnection._allow_auth,
    Xforward: ClientConnection._allow_xforward,
    Mail: ClientConnection._allow_mail,
    Rcpt: ClientConnection._allow_rcpt,
    Data: ClientConnection._allow_data,
    Bdat: ClientConnection._allow_bdat,
    MessageData: ClientConnection._allow_message_data,
    EndOfData: ClientConnection._allow_end_of_data,
    Noop: None,
    Rset: None,
    Quit: None,
}

_ANSWER = {
    Ehlo: ClientConnection._answer_hello,
    Helo: ClientConnection._answer_hello,
    Lhlo: ClientConnection._answer_hello,
    Auth: ClientConnection._answer_auth,
    StartTLS: ClientConnection._answer_starttls,
    Mail: ClientConnection._answer_mail,
    Rcpt: ClientConnection._answer_rcpt,
    Data: ClientConnection._answer_data,
    Bdat: ClientConnection._answer_bdat,
    EndOfData: ClientConnection._answer_plain,
    Xforward: ClientConnection._answer_plain,
    Noop: ClientConnection._answer_plain,
    Rset: ClientConnection._answer_plain,
    Quit: ClientConnection._answer_plain,
}


def _name(command: Command | MessageData | EndOfData) -> str:
    kind = type(command)
    if kind is EndOfData:
        return "the end of data"
    return "message data" if kind is MessageData else kind.__name__.upper()


def _codes(kind: type) -> str:
    return " or ".join(str(code) for code in sorted(REPLY_CODES[kind]))


def _require(caps: Capabilities | None, keyword: str, name: str) -> None:
    if caps is None or keyword not in caps:
        raise LocalProtocolError(
            f"{name}: the server did not advertise {keyword} (RFC 5321 2.2.1: extensions are "
            "used only when advertised)"
        )


def _check_mail(caps: Capabilities | None, mail: Mail) -> None:
    # RFC 5321 2.2.1 and each extension's RFC: a parameter only if its keyword was offered.
    if mail.size is not None:
        _require(caps, "SIZE", "Mail(size=...)")
    if mail.body == "BINARYMIME":
        _require(caps, "BINARYMIME", "Mail(body='BINARYMIME')")
        _require(caps, "CHUNKING", "Mail(body='BINARYMIME')")
    elif mail.body is not None and not (caps is not None and "SMTPUTF8" in caps):
        # Rule 3.10: SMTPUTF8 implies 8BITMIME (RFC 6531 3.1).
        _require(caps, "8BITMIME", f"Mail(body={mail.body!r})")
    if mail.smtputf8:
        _require(caps, "SMTPUTF8", "Mail(smtputf8=True)")
    if mail.ret is not None or mail.envid is not None:
        _require(caps, "DSN", "Mail(ret=..., envid=...)")
    if mail.auth is not None:
        _require(caps, "AUTH", "Mail(auth=...)")


def _check_rcpt(caps: Capabilities | None, rcpt: Rcpt, txn: _Transaction | None) -> None:
    if rcpt.notify is not None or rcpt.orcpt is not None:
        _require(caps, "DSN", "Rcpt(notify=..., orcpt=...)")
    if not rcpt.recipient.isascii() and (txn is None or not txn.mail.smtputf8):
        raise LocalProtocolError(
            f"recipient: a non-ASCII address needs a MAIL with smtputf8=True (RFC 6531 3.4): "
            f"{rcpt.recipient!r}"
        )
