"""ReplyParser, Reply and EnhancedStatus: the RP-* cases that live at the wire layer,
rules 1.1-1.8, and property tests on chunking and limits."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.replies import EnhancedStatus, Reply, ReplyLimits, ReplyParser

SMALL = ReplyLimits(max_line_length=64, max_lines=5, max_reply_bytes=200, max_auth_line_length=300)


DEFAULT = ReplyLimits()


def parse_all(data: bytes, limits: ReplyLimits = DEFAULT, *, eof: bool = True) -> list[Reply]:
    parser = ReplyParser(limits)
    parser.feed(data)
    if eof:
        parser.feed(b"")
    replies = []
    while (reply := parser.next_reply()) is not None:
        replies.append(reply)
    return replies


def parse_one(data: bytes) -> Reply:
    replies = parse_all(data)
    assert len(replies) == 1
    return replies[0]


Outcome = list[Reply | str]  # the replies, then "error" if the parser raised


def feed_in_pieces(data: bytes, cuts: list[int], limits: ReplyLimits = DEFAULT) -> Outcome:
    """Feed `data` cut at `cuts`, draining after each piece; the error (if any) ends the list."""
    parser = ReplyParser(limits)
    out: list[Reply | str] = []
    bounds = [0, *sorted(set(cuts)), len(data)]
    try:
        for start, end in itertools.pairwise(bounds):
            if start == end:
                continue
            parser.feed(data[start:end])
            while (reply := parser.next_reply()) is not None:
                out.append(reply)
        parser.feed(b"")
        while (reply := parser.next_reply()) is not None:
            out.append(reply)
    except RemoteProtocolError:
        out.append("error")
    return out


# -- RP-01..RP-04: well-formed replies --------------------------------------------------------


def test_rp01_single_line_reply() -> None:
    assert parse_one(b"250 OK\r\n") == Reply(250, ("OK",))


def test_rp02_code_alone_is_a_final_line_with_empty_text() -> None:
    assert parse_one(b"250\r\n") == Reply(250, ("",))


def test_rp03_code_and_space_is_a_final_line_with_empty_text() -> None:
    assert parse_one(b"250 \r\n") == Reply(250, ("",))


def test_rp04_multi_line_reply_keeps_each_line() -> None:
    assert parse_one(b"250-a\r\n250-b\r\n250 c\r\n") == Reply(250, ("a", "b", "c"))


def test_continuation_with_empty_text_is_legal() -> None:
    assert parse_one(b"250-\r\n250 x\r\n") == Reply(250, ("", "x"))


def test_text_keeps_inner_and_trailing_spaces_and_tabs() -> None:
    assert parse_one(b"250  a\tb  \r\n").lines == (" a\tb  ",)


def test_smtp_sink_empty_last_line_parses() -> None:
    # DESIGN.md "Known peer limits": smtp-sink ends its EHLO reply with "250 ".
    reply = parse_one(b"250-sink.example\r\n250-PIPELINING\r\n250 \r\n")
    assert reply.lines == ("sink.example", "PIPELINING", "")


def test_rp17_pipelined_replies_in_one_read_come_out_in_order() -> None:
    replies = parse_all(b"250 a\r\n250 b\r\n354 c\r\n")
    assert [(r.code, r.lines) for r in replies] == [(250, ("a",)), (250, ("b",)), (354, ("c",))]


# -- RP-05..RP-09: malformed replies ----------------------------------------------------------


def test_rp05_code_change_between_lines_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="code changed"):
        parse_all(b"250-a\r\n550 b\r\n")


def test_rp06_eof_inside_a_multi_line_reply_is_an_error() -> None:
    parser = ReplyParser()
    parser.feed(b"250-a\r\n250-b\r\n")
    assert parser.next_reply() is None
    parser.feed(b"")
    with pytest.raises(RemoteProtocolError, match="closed inside a reply"):
        parser.next_reply()


def test_rp06_eof_inside_a_line_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="closed inside a reply"):
        parse_all(b"250 ok")


def test_eof_between_replies_is_clean() -> None:
    parser = ReplyParser()
    parser.feed(b"221 bye\r\n")
    parser.feed(b"")
    assert parser.next_reply() == Reply(221, ("bye",))
    assert parser.next_reply() is None
    assert parser.at_eof


@pytest.mark.parametrize(
    "line",
    [
        b"2x0 ok",
        b"25 ok",
        b"2500 ok",
        b"abc",
        b"",
        b"250x",
        b"250+ok",
        b"    ",
        b"250_ok",
    ],
)
def test_rp07_malformed_line_is_an_error(line: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match=r"malformed|out of range"):
        parse_all(line + b"\r\n")


def test_rp07_continuation_then_other_code_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="code changed"):
        parse_all(b"250-\r\n251 x\r\n")


def test_rp07_garbage_is_never_absorbed_into_the_next_reply() -> None:
    # Unlike Postfix (rule 1.5, quirk Q4): garbage then 250 must not become one 250 reply.
    with pytest.raises(RemoteProtocolError):
        parse_all(b"garbage\r\n250 ok\r\n")


@pytest.mark.parametrize(
    "line",
    [
        b" 25 ok",
        b"+25 ok",
        b"2_5 ok",
        b"-25 ok",
        "٢٥٠ ok".encode(),  # Arabic-Indic digits
        "\uff12\uff15\uff10 ok".encode(),  # fullwidth digits
        b"25\xd9 ok",
    ],
)
def test_rp08_code_digits_are_checked_byte_by_byte(line: bytes) -> None:
    # Python's int() accepts " 25", "+25", "2_5" and non-ASCII digits; the parser must not.
    with pytest.raises(RemoteProtocolError, match="three ASCII digits"):
        parse_all(line + b"\r\n")


@pytest.mark.parametrize("code", [b"100", b"199", b"600", b"650", b"260", b"290", b"000", b"999"])
def test_rp09_out_of_range_code_is_an_error(code: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="out of range"):
        parse_all(code + b" x\r\n")


# -- RP-10..RP-12: limits --------------------------------------------------------------------


def test_rp10_lines_up_to_the_limit_parse() -> None:
    assert parse_one(b"250 " + b"x" * 508 + b"\r\n").code == 250
    assert parse_one(b"250 " + b"x" * 1996 + b"\r\n").code == 250
    assert len(parse_one(b"250 " + b"x" * 2044 + b"\r\n").lines[0]) == 2044


def test_rp10_a_line_one_octet_over_the_limit_is_an_error() -> None:
    with pytest.raises(RemoteProtocolError, match="longer than 2048"):
        parse_all(b"250 " + b"x" * 2045 + b"\r\n")


def test_rp10_one_mebibyte_without_lf_keeps_the_buffer_bounded_and_the_error_sticky() -> None:
    parser = ReplyParser()
    for _ in range(1024):
        parser.feed(b"2" * 1024)
        assert parser.buffered <= 2048 + 1
    with pytest.raises(RemoteProtocolError, match="longer than 2048"):
        parser.next_reply()
    with pytest.raises(RemoteProtocolError, match="longer than 2048"):
        parser.next_reply()
    assert parser.buffered == 0


def test_rp10_over_long_line_in_one_chunk_is_never_stored() -> None:
    parser = ReplyParser()
    parser.feed(b"250 ok\r\n" + b"x" * 100_000)
    assert parser.buffered <= 2049
    assert parser.next_reply() == Reply(250, ("ok",))
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_rp10_a_trickling_line_is_rejected_at_the_cap() -> None:
    parser = ReplyParser(SMALL)
    for _ in range(65):
        parser.feed(b"x")
        assert parser.buffered <= 65
    parser.feed(b"x")
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_rp11_endless_continuation_lines_hit_the_line_count_limit() -> None:
    parser = ReplyParser()
    with pytest.raises(RemoteProtocolError, match="100 lines"):
        for _ in range(1000):
            parser.feed(b"250-x\r\n")
            assert parser.next_reply() is None
            assert parser.buffered <= 2049
    assert parser.buffered == 0


def test_rp11_reply_byte_limit() -> None:
    limits = ReplyLimits(max_line_length=2048, max_lines=1000, max_reply_bytes=65536)
    line = b"250-" + b"y" * 996 + b"\r\n"  # 1000 octets without the line end
    with pytest.raises(RemoteProtocolError, match="65536 octets"):
        parse_all(line * 66 + b"250 end\r\n", limits)
    assert parse_all(line * 65 + b"250 end\r\n", limits)[0].code == 250


def test_rp11_reply_byte_limit_line_by_line() -> None:
    limits = ReplyLimits(max_line_length=2048, max_lines=1000, max_reply_bytes=65536)
    parser = ReplyParser(limits)
    with pytest.raises(RemoteProtocolError, match="65536 octets"):
        for _ in range(70):
            parser.feed(b"250-" + b"y" * 996 + b"\r\n")
            assert parser.next_reply() is None


def test_rp12_long_334_challenge_accepted_in_auth_mode() -> None:
    challenge = b"334 " + b"QUFB" * 3000 + b"\r\n"  # 12,000 base64 octets
    parser = ReplyParser()
    parser.auth_mode = True
    parser.feed(challenge[:5000])
    parser.feed(challenge[5000:])
    reply = parser.next_reply()
    assert reply is not None and reply.code == 334 and len(reply.lines[0]) == 12000


def test_rp12_same_line_is_an_error_outside_auth_mode() -> None:
    with pytest.raises(RemoteProtocolError, match="longer than 2048"):
        parse_all(b"334 " + b"QUFB" * 3000 + b"\r\n")


def test_rp12_auth_mode_raises_the_cap_for_334_lines_only() -> None:
    parser = ReplyParser()
    parser.auth_mode = True
    parser.feed(b"535 " + b"x" * 5000 + b"\r\n")
    with pytest.raises(RemoteProtocolError, match="longer than 2048"):
        parser.next_reply()


def test_rp12_auth_cap_still_applies() -> None:
    parser = ReplyParser()
    parser.auth_mode = True
    parser.feed(b"334 " + b"x" * 20000)
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError, match="longer than 16384"):
        parser.next_reply()


# -- RP-13..RP-15: line ends, controls, 8-bit text --------------------------------------------


def test_rp13_bare_lf_ends_a_line() -> None:
    # Decided lenient, as Postfix (rule 1.1) and every peer but lettre.
    assert parse_one(b"250 ok\n") == Reply(250, ("ok",))
    assert parse_one(b"250-a\n250 b\r\n") == Reply(250, ("a", "b"))


def test_only_one_cr_before_lf_is_dropped() -> None:
    # Postfix drops every CR before LF (rule 1.1); here the second CR is a lone CR (RP-14).
    with pytest.raises(RemoteProtocolError, match="control character"):
        parse_all(b"250 ok\r\r\n")


@pytest.mark.parametrize(
    "data",
    [b"250 ok\rINJECT\r\n", b"250 o\x00k\r\n", b"250 a\x1bb\r\n", b"250-a\x0bb\r\n250 c\r\n"],
)
def test_rp14_lone_cr_nul_and_controls_are_errors(data: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="control character"):
        parse_all(data)


def test_rp14_lone_cr_never_ends_a_line() -> None:
    parser = ReplyParser()
    parser.feed(b"250 a\r250 b\r")
    assert parser.next_reply() is None


def test_rp15_eight_bit_text_is_decoded_with_replacement() -> None:
    reply = parse_one(b"535 Error: \xc7\xeb\xca\xb9\r\n")
    assert reply.code == 535 and "\ufffd" in reply.lines[0]
    assert parse_one(b"250 caf\xc3\xa9\r\n").lines == ("café",)


def test_rp15_truncated_utf8_at_line_end_is_replaced_per_line() -> None:
    assert parse_one(b"250-a\xc3\r\n250 \xa9b\r\n").lines == ("a\ufffd", "\ufffdb")


# -- RP-16: incremental parsing ---------------------------------------------------------------

STREAM = (
    b"220 mx.example ESMTP\r\n"
    b"250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
    b"250 2.1.0 Ok\r\n250\r\n250 \r\n354 go\n"
    b"250-caf\xc3\xa9\n250 x\r\n221 2.0.0 Bye\r\n"
)


def test_rp16_byte_by_byte_equals_one_piece() -> None:
    whole = parse_all(STREAM)
    assert len(whole) == 8
    assert feed_in_pieces(STREAM, list(range(len(STREAM)))) == whole


def test_rp16_split_between_cr_and_lf() -> None:
    data = b"250-a\r\n250 b\r\n"
    for cut in range(len(data)):
        assert feed_in_pieces(data, [cut]) == [Reply(250, ("a", "b"))]


# -- errors are sticky; the API -----------------------------------------------------------------


def test_error_is_sticky_and_later_data_is_dropped() -> None:
    parser = ReplyParser()
    parser.feed(b"2x0 oops\r\n")
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()
    parser.feed(b"250 ok\r\n")
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError, match="three ASCII digits"):
        parser.next_reply()


def test_replies_before_an_error_come_out_first() -> None:
    parser = ReplyParser()
    parser.feed(b"250 a\r\n250 b\r\nbad\r\n250 c\r\n")
    assert parser.next_reply() == Reply(250, ("a",))
    assert parser.next_reply() == Reply(250, ("b",))
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_feed_after_eof_is_a_local_error() -> None:
    parser = ReplyParser()
    parser.feed(b"")
    with pytest.raises(LocalProtocolError):
        parser.feed(b"250 ok\r\n")


def test_need_more_data_returns_none() -> None:
    parser = ReplyParser()
    assert parser.next_reply() is None
    parser.feed(b"250-a\r\n")
    assert parser.next_reply() is None
    parser.feed(b"250 b")
    assert parser.next_reply() is None
    parser.feed(b"\r\n")
    assert parser.next_reply() == Reply(250, ("a", "b"))


def test_reply_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_lines"):
        ReplyLimits(max_lines=0)
    with pytest.raises(ValueError, match="max_line_length"):
        ReplyLimits(max_line_length=True)


# -- Reply and EnhancedStatus (Postfix rule 1.8, RP-20) ----------------------------------------


@pytest.mark.parametrize(
    ("data", "dsn"),
    [
        (b"250 2.1.5 Ok\r\n", "2.1.5"),
        (b"550 no\r\n", "5.0.0"),
        (b"451 5.7.1 x\r\n", "4.0.0"),
        (b"550 5.1.1234 x\r\n", "5.0.0"),
        (b"550 5.1.1x\r\n", "5.0.0"),
        (b"550-5.1.1 a\r\n550 b\r\n", "5.0.0"),
        (b"250  2.0.0 x\r\n", "2.0.0"),
        (b"354 go\r\n", "5.5.0"),
    ],
)
def test_postfix_rule_1_8_table(data: bytes, dsn: str) -> None:
    assert parse_one(data).dsn == dsn


@pytest.mark.parametrize(
    ("text", "code", "expected"),
    [
        ("2.1.0 Ok", 250, EnhancedStatus(2, 1, 0)),
        ("5.1.1 x", 250, None),
        ("2.0.0 go", 354, None),
        ("5.1000.1 x", 550, None),
        ("5.999.999", 550, EnhancedStatus(5, 999, 999)),
        ("4.7.1\tx", 451, EnhancedStatus(4, 7, 1)),
        ("3.0.0 x", 550, None),
        ("5.1 x", 550, None),
        ("", 550, None),
    ],
)
def test_rp20_enhanced_status(text: str, code: int, expected: EnhancedStatus | None) -> None:
    assert Reply(code, (text,)).enhanced == expected


def test_rp20_synthesized_status_when_invalid() -> None:
    assert Reply(250, ("5.1.1 x",)).dsn == "2.0.0"
    assert Reply(550, ("5.1000.1 x",)).dsn == "5.0.0"


def test_enhanced_status_str_and_validation() -> None:
    assert str(EnhancedStatus(2, 1, 5)) == "2.1.5"
    assert EnhancedStatus.parse("  4.4.2 timeout") == EnhancedStatus(4, 4, 2)
    with pytest.raises(LocalProtocolError, match="klass"):
        EnhancedStatus(3, 0, 0)
    with pytest.raises(LocalProtocolError, match="detail"):
        EnhancedStatus(5, 0, 1000)


def test_reply_text_str_and_classes() -> None:
    reply = Reply(250, ("mx.example", "PIPELINING"))
    assert reply.text == "mx.example\nPIPELINING"
    assert str(reply) == "250 mx.example PIPELINING"
    assert str(Reply(250, ("2.0.0 Ok",))) == "250 2.0.0 Ok"
    assert str(Reply(250, ("",))) == "250"
    assert Reply(250, ("",)).is_positive
    assert Reply(354, ("",)).is_intermediate
    assert Reply(421, ("",)).is_transient
    assert Reply(554, ("",)).is_permanent


@pytest.mark.parametrize(
    ("code", "lines"),
    [
        (199, ("x",)),
        (600, ("x",)),
        (260, ("x",)),
        (True, ("x",)),
        (250, ()),
        (250, ["x"]),
        (250, ("a\r\nb",)),
    ],
)
def test_reply_validates_on_construction(code: object, lines: object) -> None:
    with pytest.raises(LocalProtocolError):
        Reply(code, lines)  # type: ignore[arg-type]


def test_parsed_replies_equal_constructed_ones() -> None:
    parsed = parse_one(b"250-a\r\n250 b\r\n")
    assert parsed == Reply(250, ("a", "b"))
    assert hash(parsed) == hash(Reply(250, ("a", "b")))


# -- properties -------------------------------------------------------------------------------

codes = st.integers(200, 599).filter(lambda c: c // 10 % 10 <= 5)
text_bytes = st.binary(max_size=30).map(lambda b: bytes(c for c in b if c >= 0x20 or c == 0x09))


@st.composite
def replies(draw: st.DrawFn) -> tuple[bytes, Reply]:
    code = draw(codes)
    texts = draw(st.lists(text_bytes, min_size=1, max_size=6))
    wire = b""
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        end = draw(st.sampled_from([b"\r\n", b"\n"]))
        if last and not text and draw(st.booleans()):
            wire += b"%d" % code + end  # RP-02: "250" alone
        else:
            wire += b"%d" % code + (b" " if last else b"-") + text + end
    lines = tuple(t.decode("utf-8", "replace") for t in texts)
    return wire, Reply(code, lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(replies(), max_size=8), st.lists(st.integers(0, 400), max_size=12))
def test_property_any_split_gives_the_same_replies(
    stream: list[tuple[bytes, Reply]], cuts: list[int]
) -> None:
    data = b"".join(wire for wire, _ in stream)
    expected = [reply for _, reply in stream]
    assert feed_in_pieces(data, [c for c in cuts if c < len(data)]) == expected
    assert parse_all(data) == expected


def reference_parse(data: bytes, limits: ReplyLimits) -> Outcome:
    """A plain line-by-line model of the documented rules, for differential testing."""
    out: list[Reply | str] = []
    lines: list[str] = []
    code = b""
    size = 0
    pos = 0
    while True:
        newline = data.find(b"\n", pos)
        if newline < 0:
            rest = data[pos:]
            if rest or lines:
                out.append("error")
            return out
        line = data[pos:newline]
        pos = newline + 1
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > limits.max_line_length:
            out.append("error")
            return out
        ok = (
            len(line) >= 3
            and 0x32 <= line[0] <= 0x35
            and 0x30 <= line[1] <= 0x35
            and 0x30 <= line[2] <= 0x39
            and (len(line) == 3 or line[3] in b" -")
            and not any(c < 0x20 and c != 0x09 for c in line)
        )
        if not ok or (lines and line[:3] != code) or len(lines) >= limits.max_lines:
            out.append("error")
            return out
        code = line[:3]
        size += len(line)
        if size > limits.max_reply_bytes:
            out.append("error")
            return out
        lines.append(line[4:].decode("utf-8", "replace"))
        if line[3:4] != b"-":
            out.append(Reply(int(code), tuple(lines)))
            lines, size = [], 0


wire_soup = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"250",
                b"250-",
                b"250 ",
                b"251 ",
                b"354 ",
                b"5",
                b"x",
                b"\r",
                b"\n",
                b"\r\n",
                b"\x00",
                b"\t",
                b"ok",
                b"\xc3\xa9",
                b"y" * 30,
                b"2.1.5 ",
            ]
        ),
        st.binary(max_size=5),
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=300, deadline=None)
@given(wire_soup, st.lists(st.integers(0, 300), max_size=10))
def test_property_arbitrary_bytes_only_raise_rpe_and_match_the_model(
    data: bytes, cuts: list[int]
) -> None:
    expected = reference_parse(data, SMALL)
    parser = ReplyParser(SMALL)
    got: list[Reply | str] = []
    bounds = [0, *sorted({c for c in cuts if c < len(data)}), len(data)]
    try:
        for start, end in itertools.pairwise(bounds):
            if start < end:
                parser.feed(data[start:end])
            while (reply := parser.next_reply()) is not None:
                got.append(reply)
            assert parser.buffered <= SMALL.max_line_length + 1
        parser.feed(b"")
        while (reply := parser.next_reply()) is not None:
            got.append(reply)
    except RemoteProtocolError:
        got.append("error")
        assert parser.buffered == 0
    assert got == expected


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 500), max_size=20))
def test_property_random_bytes_never_raise_anything_else(data: bytes, sizes: list[int]) -> None:
    parser = ReplyParser(SMALL)
    pos = 0
    try:
        for size in [*sizes, len(data)]:
            parser.feed(data[pos : pos + size] or b"x")
            pos += size
            while parser.next_reply() is not None:
                pass
            assert parser.buffered <= SMALL.max_line_length + 1
    except RemoteProtocolError:
        assert parser.buffered == 0


# --- the cache of checked one-line replies (bench: repeated RCPT/MAIL replies) -------------


def _codes_and_lines(parser: ReplyParser) -> list[tuple[int, tuple[str, ...]]]:
    out = []
    while (reply := parser.next_reply()) is not None:
        out.append((reply.code, reply.lines))
    return out


def test_repeated_one_line_replies_parse_like_fresh_ones() -> None:
    stream = b"250 2.1.5 Ok\r\n" * 50 + b"550 5.1.1 no\r\n" + b"250 2.1.5 Ok\r\n" * 50
    warm = ReplyParser()
    warm.feed(b"250 2.1.5 Ok\r\n" * 10)  # fills the cache
    _codes_and_lines(warm)
    cold = ReplyParser()
    for parser in (warm, cold):
        parser.feed(stream)
    assert _codes_and_lines(warm) == _codes_and_lines(cold)


def test_reply_cache_stays_bounded_over_many_distinct_lines() -> None:
    parser = ReplyParser()
    for n in range(2000):
        parser.feed(b"250 2.1.5 Ok %d\r\n" % n * 3)
        assert [code for code, _ in _codes_and_lines(parser)] == [250, 250, 250]
    assert len(parser._cache) <= 32


def test_cached_line_then_a_malformed_line_still_fails_in_order() -> None:
    parser = ReplyParser()
    parser.feed(b"250 ok\r\n" * 5)
    _codes_and_lines(parser)
    parser.feed(b"250 ok\r\n250 ok\r\n2x0 bad\r\n")
    assert parser.next_reply() is not None and parser.next_reply() is not None
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()  # sticky


def test_cache_respects_a_smaller_reply_limit_per_parser() -> None:
    # A line cached by a lenient parser must not slip past a strict parser's line limit.
    lenient = ReplyParser()
    line = b"250 " + b"x" * 120 + b"\r\n"
    lenient.feed(line * 3)
    _codes_and_lines(lenient)
    strict = ReplyParser(ReplyLimits(max_line_length=64))
    strict.feed(line)
    with pytest.raises(RemoteProtocolError):
        strict.next_reply()
