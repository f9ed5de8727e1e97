"""Fuzz target ``replies``: arbitrary bytes, limits and chunkings into both reply parsers.

Checked for every input, on the reference `ReplyParser` and on `FastReplyParser`:

- only `RemoteProtocolError` escapes, and once raised it is raised again (sticky);
- memory stays bounded: after `next_reply` returns None the parser holds at most the lines of
  one unfinished reply (``max_reply_bytes``) and the kept part of one line;
- the result does not depend on how the bytes were split (one piece, random pieces, byte by
  byte) nor on when replies are collected;
- the replies equal those of `reference_parse`, a deliberately naive reading of the rules in
  ``smtpproto/replies.py``'s docstring that sees the whole input at once, so both parsers'
  streaming (and the fast parser's regexes and cache) are checked against the plain rules.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from itertools import pairwise

from hypothesis import strategies as st

from smtpproto import RemoteProtocolError
from smtpproto._replyfast import FastReplyParser
from smtpproto.replies import Reply, ReplyLimits, ReplyParser

from ._harness import Target, main

_LINE = re.compile(rb"([2-5][0-5][0-9])(?:([ -])([^\x00-\x08\x0a-\x1f]*))?")
PARSERS = (ReplyParser, FastReplyParser)


@dataclass(frozen=True)
class Outcome:
    """What a parse produced: the replies, in order, and whether it ended in an error."""

    replies: tuple[tuple[int, tuple[str, ...]], ...]
    error: bool


def reference_parse(data: bytes, limits: ReplyLimits, auth_mode: bool, eof: bool) -> Outcome:
    """The reply rules read literally, one whole line at a time, with no shortcut."""
    replies: list[tuple[int, tuple[str, ...]]] = []
    lines: list[str] = []
    code = b""
    total = 0
    pos = 0
    while True:
        newline = data.find(b"\n", pos)
        raw = data[pos:] if newline < 0 else data[pos:newline]
        keep = limits.max_line_length
        if auth_mode and raw.startswith(b"334"):
            keep = max(keep, limits.max_auth_line_length)
        if len(raw) > keep + limits.max_line_length:  # rule 1.2's second bound, LF or not
            return Outcome(tuple(replies), True)
        if newline < 0:
            return Outcome(tuple(replies), eof and bool(raw or lines))
        pos = newline + 1
        line = raw.rstrip(b"\r")[:keep]  # rule 1.1, then rule 1.2
        m = _LINE.fullmatch(line)
        if m is None:
            return Outcome(tuple(replies), True)
        if lines:
            too_many = limits.max_lines is not None and len(lines) >= limits.max_lines
            if m[1] != code or too_many:
                return Outcome(tuple(replies), True)
        else:
            code = m[1]
        total += len(line)
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
            assert parser.buffered == 0
            return True
        raise AssertionError("a parser error was not sticky") from None
    assert parser.buffered <= bound, (parser.buffered, bound)
    return False


def library_parse(
    parser: ReplyParser, pieces: list[bytes], auth_mode: bool, eof: bool, *, eager: bool
) -> Outcome:
    """Feed `pieces` one by one; collect after each (`eager`) or only at the end."""
    limits = parser.limits
    parser.auth_mode = auth_mode
    keep = max(limits.max_line_length, limits.max_auth_line_length if auth_mode else 0)
    bound = limits.max_reply_bytes + keep
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


# Grammar-aware pieces: mostly well-formed lines, with the mistakes the rules name, lines
# long enough to be cut and to pass the second bound, and runs of CRs before the LF.
_CODES = st.sampled_from([b"220", b"250", b"334", b"354", b"421", b"550", b"199", b"600", b"2x0"])
_TEXT = st.one_of(
    st.sampled_from([b"", b"OK", b"2.1.5 Ok", b"mx.example ESMTP", b"PIPELINING", b"SIZE 10"]),
    st.binary(max_size=12),
    st.text(max_size=8).map(lambda s: s.encode("utf-8")),
    st.integers(0, 100).map(lambda n: b"A" * n),
)
_END = st.sampled_from([b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n", b"\r\r\r\n", b""])
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
LIMITS = st.one_of(
    st.just(ReplyLimits()),
    st.just(ReplyLimits(max_line_length=64, max_reply_bytes=300, max_auth_line_length=128)),
    # Small line counts and reply sizes, for replies that cross chunks (the fast path
    # checks them at both ends of a chunk).
    st.builds(ReplyLimits, st.just(64), st.integers(1, 4), st.integers(8, 80), st.just(128)),
    st.builds(
        ReplyLimits,
        st.integers(4, 40),
        st.one_of(st.none(), st.integers(1, 6)),
        st.integers(4, 150),
        st.integers(4, 80),
    ),
)
"""Limits for the parsers: the defaults, and small ones so that short inputs reach them."""


@st.composite
def _case(draw: st.DrawFn) -> tuple[bytes, list[int], ReplyLimits, bool, bool]:
    data = draw(_STREAM)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=8)))
    return data, cuts, draw(LIMITS), draw(st.booleans()), draw(st.booleans())


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds) if b > a]


def check(case: tuple[bytes, list[int], ReplyLimits, bool, bool]) -> None:
    """The properties in the module docstring, for one input."""
    data, cuts, limits, auth_mode, eof = case
    expected = reference_parse(data, limits, auth_mode, eof)
    pieces = _split(data, cuts)
    for parser in PARSERS:
        whole = library_parse(parser(limits), [data] if data else [], auth_mode, eof, eager=True)
        assert whole == expected, (parser, whole, expected)
        for eager in (True, False):
            chunked = library_parse(parser(limits), pieces, auth_mode, eof, eager=eager)
            assert chunked == expected, (parser, eager, pieces, chunked, expected)
        if len(data) <= 64:
            bytewise = [data[i : i + 1] for i in range(len(data))]
            outcome = library_parse(parser(limits), bytewise, auth_mode, eof, eager=True)
            assert outcome == expected, (parser, outcome, expected)


TARGET = Target(
    "replies",
    "both reply parsers: arbitrary bytes and chunkings vs a literal model of the rules",
    strategy=_case(),
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
