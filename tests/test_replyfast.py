"""FastReplyParser against the reference ReplyParser: the equivalence contract of
``smtpproto/_replyfast.py``, and the fast path's own cache.

The contract: for every byte sequence, every chunking, end of input anywhere, auth mode
switched on and off between calls, and any limits, the same replies and the same errors
(same messages) at the same calls, and the same `buffered`, `partial` and `at_eof`.
"""

from __future__ import annotations

import sys
from itertools import combinations, pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import RemoteProtocolError
from smtpproto._replyfast import FastReplyParser
from smtpproto.replies import Reply, ReplyLimits, ReplyParser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's fuzz/

from fuzz.replies import LIMITS

Op = tuple[str, Any]


def trace(parser: ReplyParser, ops: list[Op]) -> list[object]:
    """Everything a caller can observe while running `ops` on `parser`."""
    seen: list[object] = []
    for op, arg in ops:
        if op == "feed":
            parser.feed(arg)
        elif op == "auth":
            parser.auth_mode = arg
        elif op == "limits":
            parser.limits = arg
        else:
            for _ in range(arg):
                try:
                    seen.append(parser.next_reply())
                except RemoteProtocolError as exc:
                    seen.append(("error", str(exc)))
        seen.append((parser.buffered, parser.partial, parser.at_eof))
    return seen


def assert_equivalent(ops: list[Op], limits: ReplyLimits) -> None:
    reference = trace(ReplyParser(limits), ops)
    assert trace(FastReplyParser(limits), ops) == reference


def drained(pieces: list[bytes], *, auth: bool = False) -> list[Op]:
    """Feed each piece and drain; then the end of input, and drain again."""
    ops: list[Op] = [("auth", auth)]
    for piece in pieces:
        ops += [("feed", piece), ("drain", 1000)]
    return [*ops, ("feed", b""), ("drain", 1000)]


# Streams of well-formed replies, each line ending mostly in the stream's style (CRLF or LF),
# drawn from a small pool so that replies repeat (the cache fills), with junk between them:
# the shapes the fast path takes, and those it leaves to the reference (CR runs, over-long
# lines, controls, malformed lines, code changes, 8-bit text), at any point of a chunk.
_CODE = st.sampled_from([b"250", b"250", b"220", b"334", b"354", b"550"])
_TEXT = st.one_of(
    st.sampled_from([b"", b"ok", b"2.1.5 Ok", b"mx.example", b"PIPELINING", b"caf\xc3\xa9"]),
    st.integers(0, 90).map(lambda n: b"x" * n),
    st.binary(max_size=6),
)
_ODD_END = st.sampled_from([b"\r\n", b"\n", b"\r\r\n", b"\r", b""])
_JUNK = st.one_of(
    st.builds(
        lambda code, sep, text, end: code + sep + text + end,
        st.sampled_from([b"250", b"251", b"2x0", b"25", b"334", b"600"]),
        st.sampled_from([b" ", b"-", b"", b"\t"]),
        _TEXT,
        _ODD_END,
    ),
    st.binary(max_size=4),
)


@st.composite
def _reply(draw: st.DrawFn, style: bytes | None) -> bytes:
    code = draw(_CODE)
    count = draw(st.integers(1, 4))
    wire = b""
    for n in range(count):
        separator = b"-" if n < count - 1 else draw(st.sampled_from([b" ", b" ", b""]))
        text = draw(_TEXT) if separator else b""
        odd = style is None or draw(st.integers(0, 19)) == 0
        wire += code + separator + text + (draw(_ODD_END) if odd else style)
    return wire


@st.composite
def _stream(draw: st.DrawFn) -> bytes:
    style = draw(st.sampled_from([b"\r\n", b"\n", None]))
    pool = st.sampled_from(draw(st.lists(_reply(style), min_size=1, max_size=4)))
    junk_odds = draw(st.sampled_from([0, 0, 2, 8]))  # in 40
    parts = []
    for _ in range(draw(st.integers(0, 25))):
        junk = draw(st.integers(0, 39)) < junk_odds
        parts.append(draw(_JUNK if junk else pool))
    return b"".join(parts)


@st.composite
def programs(draw: st.DrawFn) -> tuple[ReplyLimits, list[Op]]:
    data = draw(_stream())
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(data) - 1, 1)), max_size=12))))
    bounds = [0, *(c for c in cuts if c < len(data)), len(data)]
    ops: list[Op] = []
    for start, end in pairwise(bounds):
        if draw(st.integers(0, 9)) == 0:
            ops.append(("auth", draw(st.integers(0, 3)) == 0))
        if draw(st.integers(0, 15)) == 0:
            ops.append(("limits", draw(LIMITS)))
        if end > start:
            ops.append(("feed", data[start:end]))
        ops.append(("drain", draw(st.integers(0, 3))))
    if draw(st.booleans()):
        ops.append(("feed", b""))
    ops.append(("drain", 1000))
    return draw(LIMITS), ops


@settings(max_examples=600, deadline=None)
@given(programs())
def test_property_fast_parser_equals_the_reference(program: tuple[ReplyLimits, list[Op]]) -> None:
    limits, ops = program
    assert_equivalent(ops, limits)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.lists(st.integers(1, 400), max_size=8), st.booleans())
def test_property_fast_parser_equals_the_reference_on_raw_bytes(
    data: bytes, cuts: list[int], auth: bool
) -> None:
    bounds = [0, *sorted({c for c in cuts if c < len(data)}), len(data)]
    pieces = [data[a:b] for a, b in pairwise(bounds) if b > a]
    assert_equivalent(drained(pieces, auth=auth), ReplyLimits(max_line_length=16))


TRICKY = [
    b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n250 2.0.0 Ok\r\r\n221 Bye\r\n",
    b"250-mx\r\n250-PIPELINING\r\n250 SIZE 10\r\n250-a\n250 b\r\n250 c\n",
    b"250 " + b"x" * 40 + b"\r\n250-" + b"y" * 30 + b"\r\r\n250 z\r\n",
    b"250 ok\r\n250 ok\r\n2x0 bad\r\n250 ok\r\n",
    b"250 ok\r\n250 o\rk\r\n250 ok\r\n",
    b"334 " + b"Q" * 60 + b"\r\n235 ok\r\n",
    b"250-a\r\n550 b\r\n",
    b"250 " + b"x" * 70 + b"\n250 ok\n",
    # Shapes the fast path turns down, leaving them to the reference: a short line, a code
    # out of range, a line over the limit, a reply over the byte limit.
    b"250 a\r\n25\r\n250 b\r\n",
    b"250 a\r\n600 x\r\n",
    b"250 a\r\n250x\r\n",
    b"250 a\r\n250 " + b"x" * 40 + b"\r\n250 b\r\n",
    b"250-" + b"a" * 28 + b"\r\n250-" + b"b" * 28 + b"\r\n250 c\r\n250 d\r\n",
]


@pytest.mark.parametrize("data", TRICKY)
@pytest.mark.parametrize("auth", [False, True])
def test_every_cut_in_two_and_three_pieces_agrees(data: bytes, auth: bool) -> None:
    limits = ReplyLimits(max_line_length=32, max_reply_bytes=64, max_auth_line_length=64)
    for cuts in [*combinations(range(1, len(data)), 1), *combinations(range(1, len(data), 5), 2)]:
        bounds = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in pairwise(bounds)]
        assert_equivalent(drained(pieces, auth=auth), limits)


@pytest.mark.parametrize(
    "data",
    [
        b"250-a\r\n250-b\r\n250-c\r\n250-d\r\n250 e\r\n250 f\r\n",
        b"250-aaaa\r\n250-bbbb\r\n250-cccc\r\n250 dd\r\n250 ok\r\n",
        b"250-aaaa\n250-bbbb\n250-cccc\n250\n250 ok\n",
    ],
)
@pytest.mark.parametrize(
    "limits",
    [
        ReplyLimits(max_lines=3),
        ReplyLimits(max_lines=4),
        ReplyLimits(max_line_length=12, max_reply_bytes=24),
        ReplyLimits(max_line_length=12, max_reply_bytes=23),
        ReplyLimits(max_line_length=12, max_reply_bytes=16),
    ],
    ids=["3-lines", "4-lines", "24-octets", "23-octets", "16-octets"],
)
def test_limits_of_replies_split_across_chunks_agree(data: bytes, limits: ReplyLimits) -> None:
    # A reply begun in one chunk and ended in the next is taken in bulk at both ends: its line
    # count and size must be checked there as the reference checks them, line by line. Cuts
    # around each line end, in pairs.
    ends = [n for n, octet in enumerate(data) if octet == 0x0A]
    near = sorted({cut for n in ends for cut in (n - 1, n, n + 1) if 0 < cut < len(data)})
    for cuts in combinations(near, 2):
        bounds = [0, *cuts, len(data)]
        assert_equivalent(drained([data[a:b] for a, b in pairwise(bounds)]), limits)


@pytest.mark.parametrize("run", [1, 2, 7, 8, 9, 12, 13])
def test_cr_runs_around_the_line_limit_agree(run: int) -> None:
    # The fast path drops CR runs before the LF only while no run is longer than a line may
    # keep (8 here); longer ones count against the second bound in the reference (rule 1.2).
    data = b"250 a\r\n250-b" + b"\r" * run + b"\n250 c\r\r\n250 d\n"
    for cut in range(len(data)):
        pieces = [data[:cut], data[cut:]] if cut else [data]
        assert_equivalent(drained(pieces), ReplyLimits(max_line_length=8))


def test_auth_mode_toggled_between_feeds_agrees() -> None:
    line = b"334 " + b"A" * 50
    for toggle in range(1, len(line)):
        ops: list[Op] = [
            ("auth", True),
            ("feed", line[:toggle]),
            ("auth", False),
            ("feed", line[toggle:] + b"\r\n250 ok\r\n"),
            ("drain", 5),
        ]
        assert_equivalent(ops, ReplyLimits(max_line_length=16, max_auth_line_length=48))


# -- the fast path is taken, and its cache ----------------------------------------------------


class Counting(FastReplyParser):
    """Counts the lines the reference code reads for it."""

    taken = 0

    def _take(self, line: bytes) -> None:
        type(self).taken += 1
        super()._take(line)


@pytest.mark.parametrize(
    "data",
    [
        b"250 2.1.5 Ok\r\n" * 50,
        b"250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n" * 20,
        b"250-mx\n250 caf\xc3\xa9\n354 go\n" * 20,
        b"250 a\r\n250 b\n" * 20,
    ],
)
def test_common_shapes_never_reach_the_reference(data: bytes) -> None:
    Counting.taken = 0
    parser = Counting()
    for start in range(0, len(data), 256):
        parser.feed(data[start : start + 256])
    parser.feed(b"")
    replies = []
    while (reply := parser.next_reply()) is not None:
        replies.append(reply)
    reference = ReplyParser()
    reference.feed(data)
    assert replies == [reply for reply in iter(reference.next_reply, None)]
    # Only lines cut by a chunk boundary go to the reference, at most two per chunk.
    assert Counting.taken <= 2 * (len(data) // 256 + 1)


def _replies(parser: ReplyParser) -> list[Reply]:
    return list(iter(parser.next_reply, None))


def test_repeated_one_line_replies_parse_like_fresh_ones() -> None:
    stream = b"250 2.1.5 Ok\r\n" * 50 + b"550 5.1.1 no\r\n" + b"250 2.1.5 Ok\r\n" * 50
    warm = FastReplyParser()
    warm.feed(b"250 2.1.5 Ok\r\n" * 10)  # fills the cache
    _replies(warm)
    assert warm._cache
    cold = ReplyParser()
    for parser in (warm, cold):
        parser.feed(stream)
    assert _replies(warm) == _replies(cold)


def test_reply_cache_stays_bounded_over_many_distinct_lines() -> None:
    parser = FastReplyParser()
    for n in range(2000):
        parser.feed(b"250 2.1.5 Ok %d\r\n" % n * 3)
        assert _replies(parser) == [Reply(250, (f"2.1.5 Ok {n}",))] * 3
    assert len(parser._cache) <= 32


def test_cached_line_then_a_malformed_line_still_fails_in_order() -> None:
    parser = FastReplyParser()
    parser.feed(b"250 ok\r\n" * 5)
    _replies(parser)
    parser.feed(b"250 ok\r\n250 ok\r\n2x0 bad\r\n")
    assert parser.next_reply() == parser.next_reply() == Reply(250, ("ok",))
    with pytest.raises(RemoteProtocolError, match="three ASCII digits"):
        parser.next_reply()
    with pytest.raises(RemoteProtocolError, match="three ASCII digits"):
        parser.next_reply()  # sticky


def test_cached_line_then_a_cr_run_goes_to_the_reference() -> None:
    parser = FastReplyParser()
    parser.feed(b"250 ok\r\n" * 5)
    _replies(parser)
    parser.feed(b"250 ok\r\n250 ok\r\r\n")
    assert _replies(parser) == [Reply(250, ("ok",))] * 2


def test_cache_respects_a_smaller_line_limit_per_parser() -> None:
    # A line cached by a lenient parser must not slip past a strict parser's line limit.
    lenient = FastReplyParser()
    line = b"250 " + b"x" * 120 + b"\r\n"
    lenient.feed(line * 3)
    assert _replies(lenient) == [Reply(250, ("x" * 120,))] * 3
    strict = FastReplyParser(ReplyLimits(max_line_length=64))
    strict.feed(line)
    assert _replies(strict) == [Reply(250, ("x" * 60,))]


def test_cache_follows_replaced_limits() -> None:
    parser = FastReplyParser()
    line = b"250 " + b"x" * 100 + b"\r\n"
    parser.feed(line * 3)
    assert _replies(parser) == [Reply(250, ("x" * 100,))] * 3
    parser.limits = ReplyLimits(max_line_length=64)
    parser.feed(line)
    assert _replies(parser) == [Reply(250, ("x" * 60,))]


def test_one_line_replies_are_shared_by_parsers_with_the_same_limits() -> None:
    # A server gives each connection the same replies: a new parser finds them cached, the
    # same immutable Reply, and parsers with other limits keep their own.
    first = FastReplyParser()
    first.feed(b"220 mx.example ESMTP\r\n")
    greeting = first.next_reply()
    second = FastReplyParser()
    second.feed(b"220 mx.example ESMTP\r\n")
    assert second.next_reply() is greeting
    other = FastReplyParser(ReplyLimits(max_line_length=100))
    other.feed(b"220 mx.example ESMTP\r\n")
    reply = other.next_reply()
    assert reply == greeting and reply is not greeting
