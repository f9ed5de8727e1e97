"""Fuzz target ``replies``: arbitrary bytes, limits and chunkings into `ReplyParser`.

Checked for every input:

- only `RemoteProtocolError` escapes, and once raised it is raised again (sticky);
- memory stays bounded: after `next_reply` returns None the parser holds at most one
  incomplete line (``max_line_length + 1`` octets, the auth limit in auth mode);
- the result does not depend on how the bytes were split (one piece, random pieces, byte by
  byte) nor on when replies are collected;
- the replies equal those of `reference_parse`, a deliberately naive line-by-line model of the
  rules in ``smtpproto/replies.py``'s docstring, so the parser's regex fast paths are checked
  against the plain reading of the rules.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from itertools import pairwise

from hypothesis import strategies as st

from smtpproto import RemoteProtocolError
from smtpproto.replies import Reply, ReplyLimits, ReplyParser

from ._harness import Target, main

_LINE = re.compile(rb"([2-5][0-5][0-9])(?:([ -])([^\x00-\x08\x0a-\x1f]*))?")


@dataclass(frozen=True)
class Outcome:
    """What a parse produced: the replies, in order, and whether it ended in an error."""

    replies: tuple[tuple[int, tuple[str, ...]], ...]
    error: bool


def reference_parse(data: bytes, limits: ReplyLimits, auth_mode: bool, eof: bool) -> Outcome:
    """The reply rules read literally, one line at a time, with no shortcut."""
    replies: list[tuple[int, tuple[str, ...]]] = []
    lines: list[str] = []
    code = b""
    total = 0
    pos = 0
    while True:
        newline = data.find(b"\n", pos)
        if newline < 0:
            rest = len(data) - pos
            limit = limits.max_line_length
            if auth_mode:
                limit = max(limit, limits.max_auth_line_length)
            if rest > limit + 1:  # can never become a legal line, whatever follows
                return Outcome(tuple(replies), True)
            error = eof and (rest > 0 or bool(lines))
            return Outcome(tuple(replies), error)
        line = data[pos:newline]
        pos = newline + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        size = len(line)
        long_auth = auth_mode and line.startswith(b"334") and size <= limits.max_auth_line_length
        if size > limits.max_line_length and not long_auth:
            return Outcome(tuple(replies), True)
        if b"\r" in line:
            return Outcome(tuple(replies), True)
        m = _LINE.fullmatch(line)
        if m is None:
            return Outcome(tuple(replies), True)
        if lines:
            if m[1] != code or len(lines) >= limits.max_lines:
                return Outcome(tuple(replies), True)
        else:
            code = m[1]
        total += size
        if total > limits.max_reply_bytes:
            return Outcome(tuple(replies), True)
        lines.append((m[3] or b"").decode("utf-8", "replace"))
        if m[2] != b"-":
            replies.append((int(code), tuple(lines)))
            lines, total = [], 0


def _drain(parser: ReplyParser, out: list[Reply], bound: int) -> bool:
    """Collect replies; True if the parser raised. Checks the memory bound on the way."""
    try:
        while (reply := parser.next_reply()) is not None:
            out.append(reply)
    except RemoteProtocolError:
        try:
            parser.next_reply()
        except RemoteProtocolError:
            return True
        raise AssertionError("a parser error was not sticky") from None
    assert parser.buffered <= bound, (parser.buffered, bound)
    return False


def library_parse(
    pieces: list[bytes], limits: ReplyLimits, auth_mode: bool, eof: bool, *, eager: bool
) -> Outcome:
    """Feed `pieces` one by one; collect after each (`eager`) or only at the end."""
    parser = ReplyParser(limits)
    parser.auth_mode = auth_mode
    bound = max(limits.max_line_length, limits.max_auth_line_length if auth_mode else 0) + 1
    got: list[Reply] = []
    error = False
    for piece in pieces:
        parser.feed(piece)
        if eager and not error:
            error = _drain(parser, got, bound)
    if eof:
        parser.feed(b"")
    if not error:
        error = _drain(parser, got, bound)
    return Outcome(tuple((r.code, r.lines) for r in got), error)


# Grammar-aware pieces: mostly well-formed lines, with the mistakes the rules name.
_CODES = st.sampled_from([b"220", b"250", b"334", b"354", b"421", b"550", b"199", b"600", b"2x0"])
_TEXT = st.one_of(
    st.sampled_from([b"", b"OK", b"2.1.5 Ok", b"mx.example ESMTP", b"PIPELINING", b"SIZE 10"]),
    st.binary(max_size=12),
    st.text(max_size=8).map(lambda s: s.encode("utf-8")),
    st.integers(0, 40).map(lambda n: b"A" * n),
)
_END = st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b""])
_LINE_PIECE = st.builds(
    lambda code, sep, text, end: code + sep + text + end,
    _CODES,
    st.sampled_from([b" ", b"-", b"", b"\t"]),
    _TEXT,
    _END,
)
_STREAM = st.one_of(
    st.lists(_LINE_PIECE, max_size=12).map(b"".join),
    st.binary(max_size=200),
    st.lists(st.one_of(_LINE_PIECE, st.binary(max_size=6)), max_size=10).map(b"".join),
)
_LIMITS = st.one_of(
    st.just(ReplyLimits()),
    st.builds(
        lambda line, lines, extra, auth: ReplyLimits(line, lines, line + extra, auth),
        st.integers(4, 40),
        st.integers(4, 6),
        # Reply limits below the line limit are left out: the fast path does not enforce them
        # (tests/test_fuzz_smoke.py::test_reply_byte_limit_below_line_limit_is_enforced).
        st.integers(0, 80),
        st.integers(4, 60),
    ),
)


@st.composite
def _case(draw: st.DrawFn) -> tuple[bytes, list[int], ReplyLimits, bool, bool]:
    data = draw(_STREAM)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    return data, cuts, draw(_LIMITS), draw(st.booleans()), draw(st.booleans())


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if b > a]


def check(case: tuple[bytes, list[int], ReplyLimits, bool, bool]) -> None:
    """The properties in the module docstring, for one input."""
    data, cuts, limits, auth_mode, eof = case
    expected = reference_parse(data, limits, auth_mode, eof)
    whole = library_parse([data] if data else [], limits, auth_mode, eof, eager=True)
    assert whole == expected, (whole, expected)
    pieces = _split(data, cuts)
    for eager in (True, False):
        chunked = library_parse(pieces, limits, auth_mode, eof, eager=eager)
        assert chunked == expected, (eager, pieces, chunked, expected)
    if len(data) <= 64:
        bytewise = library_parse(
            [data[i : i + 1] for i in range(len(data))], limits, auth_mode, eof, eager=True
        )
        assert bytewise == expected, (bytewise, expected)


TARGET = Target(
    "replies",
    "ReplyParser: arbitrary bytes and chunkings vs a reference model",
    strategy=_case(),
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
