"""Fuzz target ``connection``: `ClientConnection` driven by random commands vs random bytes.

Each input is a program of steps: send a command (drawn from every command type with
plausible arguments, legal now or not), feed server bytes (grammar-aware replies, mutated
codes, capabilities, 334 challenges, garbage, end of input) in random pieces, or report a TLS
handshake. Checked at every step:

- only `LocalProtocolError` (from `send` and `tls_established`) and `RemoteProtocolError` (from
  `next_event`, and from `send` when the server sent data before the command went out)
  escape; a `send` refused with `LocalProtocolError` changes nothing (state, pending, octet
  count);
- after a `RemoteProtocolError` the state is ERROR, `next_event` raises again and `send`
  raises `LocalProtocolError` (CV-10a);
- every reply event names the command at the head of the FIFO (or the end of data, early);
  capabilities come only with a positive EHLO/LHLO reply;
- unanswered octets are never negative, are zero with nothing pending, and stay within the
  pipeline limit once two commands are pending (but QUIT after the end of data);
- the parser holds at most one incomplete line after `NEED_DATA`; TLS never turns off.
"""

from __future__ import annotations

import sys
from typing import Any

from hypothesis import strategies as st

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.commands import (
    Auth,
    AuthResponse,
    Bdat,
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
from smtpproto.connection import NEED_DATA, ClientConnection, State
from smtpproto.events import CommandReply, ConnectionClosed, Greeting, RecipientReply, ServerClosing
from smtpproto.replies import ReplyLimits

from ._harness import Target, main

_COMMANDS = st.one_of(
    st.sampled_from(
        [
            Ehlo("client.example"),
            Helo("client.example"),
            Lhlo("client.example"),
            StartTLS(),
            Noop(),
            Rset(),
            Quit(),
            Data(),
            EndOfData(),
            Auth("PLAIN", b"\0u\0p"),
            Auth("LOGIN"),
            Auth("CRAM-MD5"),
            AuthResponse(b"response"),
            AuthResponse(None),
            Mail("a@example.org"),
            Mail("a@example.org", size=100),
            Mail("a@example.org", body="8BITMIME"),
            Mail("\xe4@example.org", smtputf8=True),
            Mail("a@example.org", ret="HDRS", envid="x"),
            Mail("a@example.org", body="BINARYMIME"),
            Rcpt("b@example.com"),
            Rcpt("c@example.com", notify=("SUCCESS",)),
            Rcpt("\xfc@example.com"),
            Xforward((("NAME", "x.example"),)),
            Bdat(0, last=True),
            Bdat(5),
            Bdat(5, last=True),
        ]
    ),
    st.builds(MessageData, st.binary(max_size=20)),
    st.builds(Mail, st.just("a@example.org"), size=st.integers(0, 10**6)),
    st.builds(Rcpt, st.from_regex(r"[a-z]{1,300}@example\.com", fullmatch=True)),
)
_CODES = st.sampled_from(
    [
        b"220",
        b"221",
        b"235",
        b"250",
        b"251",
        b"334",
        b"354",
        b"421",
        b"450",
        b"500",
        b"503",
        b"550",
        b"552",
        b"554",
    ]
)
_CAPS = st.lists(
    st.sampled_from(
        [
            b"PIPELINING",
            b"SIZE 1000",
            b"8BITMIME",
            b"DSN",
            b"STARTTLS",
            b"AUTH PLAIN LOGIN",
            b"AUTH=CRAM-MD5",
            b"SMTPUTF8",
            b"CHUNKING",
            b"BINARYMIME",
            b"XFORWARD NAME ADDR",
            b"ENHANCEDSTATUSCODES",
            b"SIZE",
            b"X-\xff",
        ]
    ),
    max_size=8,
)


def _reply(code: bytes, texts: list[bytes]) -> bytes:
    texts = texts or [b""]
    return b"".join(
        code + (b" " if i == len(texts) - 1 else b"-") + t + b"\r\n" for i, t in enumerate(texts)
    )


_SERVER_BYTES = st.one_of(
    st.builds(_reply, _CODES, st.lists(st.sampled_from([b"ok", b"2.0.0 ok", b""]), max_size=2)),
    st.builds(lambda caps: _reply(b"250", [b"mx.example", *caps]), _CAPS),
    st.just(b"334 PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UuZXhhbXBsZS5uZXQ+\r\n"),
    st.just(b"220 2.0.0 go\r\n250 injected\r\n"),
    st.binary(max_size=16),
    st.just(b""),
)

_STEP = st.one_of(
    st.tuples(st.just("send"), _COMMANDS),
    st.tuples(
        st.just("receive"), st.tuples(_SERVER_BYTES, st.lists(st.integers(1, 8), max_size=3))
    ),
    st.tuples(st.just("tls"), st.none()),
)
_PROGRAM = st.tuples(
    st.booleans(),
    st.sampled_from([4096, 64, 1]),
    st.sampled_from([ReplyLimits(), ReplyLimits(max_line_length=40, max_lines=4)]),
    st.integers(0, 9),  # 0: no greeting first; else a 220 greeting starts the program
    st.lists(_STEP, max_size=30),
)
_GREETING: tuple[str, Any] = ("receive", (b"220 mx.example ESMTP\r\n", []))


def _snapshot(conn: ClientConnection) -> tuple[Any, ...]:
    return (conn.state, conn.pending, conn.unacknowledged_bytes, conn.capabilities, conn.is_tls)


def _check_invariants(conn: ClientConnection, limit: int) -> None:
    unacked = conn.unacknowledged_bytes
    pending = conn.pending
    assert unacked >= 0, unacked
    assert pending or unacked == 0, (pending, unacked)
    if len(pending) >= 2 and not isinstance(pending[-1], Quit):
        assert unacked <= limit, (pending, unacked, limit)


def _drain(conn: ClientConnection, tls_seen: bool, limits: ReplyLimits) -> None:
    for _ in range(1000):
        head = conn.pending[0] if conn.pending else None
        state = conn.state
        try:
            event = conn.next_event()
        except RemoteProtocolError:
            assert conn.state is State.ERROR
            try:
                conn.next_event()
            except RemoteProtocolError:
                pass
            else:
                raise AssertionError("the error was not sticky") from None
            return
        if event is NEED_DATA:
            # An unfinished reply and the kept part of one line (smtpproto/replies.py).
            bound = limits.max_reply_bytes + max(
                limits.max_line_length, limits.max_auth_line_length
            )
            assert conn._parser.buffered <= bound
            return
        if isinstance(event, CommandReply):
            if head is None:
                assert state is State.CONTENT and isinstance(event.command, EndOfData), event
            else:
                assert event.command is head, (event, head)
            hello = isinstance(event.command, (Ehlo, Lhlo)) and event.reply.is_positive
            assert (event.capabilities is not None) == hello, event
        elif isinstance(event, RecipientReply):
            assert head is not None and isinstance(head, (EndOfData, Bdat)), (event, head)
        elif isinstance(event, Greeting):
            assert state is State.CONNECTING
        elif isinstance(event, ConnectionClosed):
            assert conn.state is State.CLOSED and not conn.pending, conn
            return  # h11 style: it would be returned again on every call
        else:
            assert isinstance(event, ServerClosing), event
        assert conn.is_tls or not tls_seen
    raise AssertionError("next_event never asked for more data")


def check(program: tuple[bool, int, ReplyLimits, int, list[tuple[str, Any]]]) -> None:
    """Run one program; the properties in the module docstring."""
    lmtp, limit, limits, greet, steps = program
    if greet:
        steps = [_GREETING, *steps]
    conn = ClientConnection(lmtp=lmtp, pipeline_limit=limit, limits=limits)
    eof = False
    for kind, arg in steps:
        tls_seen = conn.is_tls
        if kind == "send":
            before = _snapshot(conn)
            try:
                data = conn.send(arg)
            except LocalProtocolError:
                assert _snapshot(conn) == before, (arg, before, _snapshot(conn))
                continue
            except RemoteProtocolError:
                # Data the server sent before this command: never matched to it.
                assert conn.state is State.ERROR
                continue
            assert isinstance(data, bytes)
            assert conn.state is not State.ERROR
        elif kind == "tls":
            try:
                conn.tls_established()
            except LocalProtocolError:
                continue
            except RemoteProtocolError:
                assert conn.state is State.ERROR
                continue
            assert conn.is_tls and conn.capabilities is None
        else:
            data, cuts = arg
            if eof:
                continue
            if data == b"":
                eof = True
                conn.receive_data(b"")
            else:
                start = 0
                for cut in [*cuts, len(data)]:
                    piece = data[start : start + cut]
                    start += len(piece)
                    if piece:
                        conn.receive_data(piece)
                        _drain(conn, tls_seen, limits)
                if start < len(data):
                    conn.receive_data(data[start:])
        _drain(conn, tls_seen, limits)
        _check_invariants(conn, limit)
        if conn.state is State.ERROR:
            try:
                conn.send(Quit())
            except LocalProtocolError:
                pass
            else:
                raise AssertionError("send() worked after a protocol error (CV-10a)")


TARGET = Target(
    "connection",
    "ClientConnection: random command sequences against random server bytes",
    strategy=_PROGRAM,
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
