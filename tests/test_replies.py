"""Reply, EnhancedStatus and both reply parsers, byte by byte: the RP-* cases that live at the
wire layer, rules 1.1-1.2 and 1.6-1.10, and property tests on chunking and limits.

Every parser test runs on the reference `ReplyParser` and on `FastReplyParser` (the one
`ClientConnection` uses); ``tests/test_replyfast.py`` checks that the two agree on any input.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.connection import session

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto._replyfast import FastReplyParser
from smtpproto.commands import StartTLS
from smtpproto.replies import EnhancedStatus, Reply, ReplyLimits, ReplyParser

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository's fuzz/

from fuzz.replies import reference_parse

SMALL = ReplyLimits(max_line_length=64, max_lines=5, max_reply_bytes=200, max_auth_line_length=300)
DEFAULT = ReplyLimits()
Parser = type[ReplyParser]


@pytest.fixture(params=[ReplyParser, FastReplyParser], ids=["reference", "fast"])
def make(request: pytest.FixtureRequest) -> Parser:
    """Each parser test runs on both parsers."""
    parser: Parser = request.param
    return parser


def parse_all(
    make: Parser, data: bytes, limits: ReplyLimits = DEFAULT, *, eof: bool = True
) -> list[Reply]:
    parser = make(limits)
    parser.feed(data)
    if eof:
        parser.feed(b"")
    replies = []
    while (reply := parser.next_reply()) is not None:
        replies.append(reply)
    return replies


def parse_one(make: Parser, data: bytes, limits: ReplyLimits = DEFAULT) -> Reply:
    replies = parse_all(make, data, limits)
    assert len(replies) == 1
    return replies[0]


Outcome = list[Reply | str]  # the replies, then the error message if the parser raised


def feed_in_pieces(
    make: Parser, data: bytes, cuts: Iterable[int], limits: ReplyLimits = DEFAULT
) -> Outcome:
    """Feed `data` cut at `cuts`, draining after each piece; the error (if any) ends the list."""
    parser = make(limits)
    out: Outcome = []
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
    except RemoteProtocolError as exc:
        out.append(str(exc))
    return out


def every_split(make: Parser, data: bytes, limits: ReplyLimits = DEFAULT) -> Outcome:
    """The outcome of `data` in one piece, after checking every cut in two gives the same."""
    whole = feed_in_pieces(make, data, [], limits)
    for cut in range(1, len(data)):
        assert feed_in_pieces(make, data, [cut], limits) == whole, cut
    return whole


# -- RP-01..RP-04: well-formed replies --------------------------------------------------------


def test_rp01_single_line_reply(make: Parser) -> None:
    assert parse_one(make, b"250 OK\r\n") == Reply(250, ("OK",))


def test_rp02_code_alone_is_a_final_line_with_empty_text(make: Parser) -> None:
    assert parse_one(make, b"250\r\n") == Reply(250, ("",))


def test_rp03_code_and_space_is_a_final_line_with_empty_text(make: Parser) -> None:
    assert parse_one(make, b"250 \r\n") == Reply(250, ("",))


def test_rp04_multi_line_reply_keeps_each_line(make: Parser) -> None:
    assert parse_one(make, b"250-a\r\n250-b\r\n250 c\r\n") == Reply(250, ("a", "b", "c"))


def test_continuation_with_empty_text_is_legal(make: Parser) -> None:
    assert parse_one(make, b"250-\r\n250 x\r\n") == Reply(250, ("", "x"))


def test_text_keeps_inner_and_trailing_spaces_and_tabs(make: Parser) -> None:
    assert parse_one(make, b"250  a\tb  \r\n").lines == (" a\tb  ",)


def test_smtp_sink_empty_last_line_parses(make: Parser) -> None:
    # DESIGN.md "Known peer limits": smtp-sink ends its EHLO reply with "250 ".
    reply = parse_one(make, b"250-sink.example\r\n250-PIPELINING\r\n250 \r\n")
    assert reply.lines == ("sink.example", "PIPELINING", "")


def test_rp17_pipelined_replies_in_one_read_come_out_in_order(make: Parser) -> None:
    replies = parse_all(make, b"250 a\r\n250 b\r\n354 c\r\n")
    assert replies == [Reply(250, ("a",)), Reply(250, ("b",)), Reply(354, ("c",))]


# -- RP-05..RP-09: malformed replies ----------------------------------------------------------


def test_rp05_code_change_between_lines_is_an_error(make: Parser) -> None:
    with pytest.raises(RemoteProtocolError, match="code changed"):
        parse_all(make, b"250-a\r\n550 b\r\n")


def test_rp06_eof_inside_a_multi_line_reply_is_an_error(make: Parser) -> None:
    parser = make()
    parser.feed(b"250-a\r\n250-b\r\n")
    assert parser.next_reply() is None
    parser.feed(b"")
    with pytest.raises(RemoteProtocolError, match=r"closed inside a reply .*rule 1\.10"):
        parser.next_reply()


def test_rp06_eof_inside_a_line_is_an_error(make: Parser) -> None:
    with pytest.raises(RemoteProtocolError, match="closed inside a reply"):
        parse_all(make, b"250 ok")


def test_eof_between_replies_is_clean(make: Parser) -> None:
    parser = make()
    parser.feed(b"221 bye\r\n")
    parser.feed(b"")
    assert parser.next_reply() == Reply(221, ("bye",))
    assert parser.next_reply() is None
    assert parser.at_eof


@pytest.mark.parametrize(
    "line", [b"2x0 ok", b"25 ok", b"2500 ok", b"abc", b"", b"250x", b"250+ok", b"    ", b"250_ok"]
)
def test_rp07_malformed_line_is_an_error(make: Parser, line: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match=r"malformed|out of range"):
        parse_all(make, line + b"\r\n")


def test_rp07_continuation_then_other_code_is_an_error(make: Parser) -> None:
    with pytest.raises(RemoteProtocolError, match="code changed"):
        parse_all(make, b"250-\r\n251 x\r\n")


def test_rp07_garbage_is_never_absorbed_into_the_next_reply(make: Parser) -> None:
    # Unlike Postfix rule 1.5 (Quirk Q4): garbage then 250 must not become one 250 reply.
    with pytest.raises(RemoteProtocolError):
        parse_all(make, b"garbage\r\n250 ok\r\n")


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
def test_rp08_code_digits_are_checked_byte_by_byte(make: Parser, line: bytes) -> None:
    # Python's int() accepts " 25", "+25", "2_5" and non-ASCII digits; the parser must not.
    with pytest.raises(RemoteProtocolError, match="three ASCII digits"):
        parse_all(make, line + b"\r\n")


@pytest.mark.parametrize("code", [b"100", b"199", b"600", b"650", b"260", b"290", b"000", b"999"])
def test_rp09_out_of_range_code_is_an_error(make: Parser, code: bytes) -> None:
    with pytest.raises(RemoteProtocolError, match="out of range"):
        parse_all(make, code + b" x\r\n")


# -- rule 1.1: line ends ----------------------------------------------------------------------


def test_rp13_bare_lf_ends_a_line(make: Parser) -> None:
    # Decided lenient, as rule 1.1 and every peer but lettre.
    assert parse_one(make, b"250 ok\n") == Reply(250, ("ok",))
    assert parse_one(make, b"250-a\n250 b\r\n") == Reply(250, ("a", "b"))


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"250 2.0.0 Ok\r\r\n", Reply(250, ("2.0.0 Ok",))),
        (b"250 ok\r\r\r\r\r\n", Reply(250, ("ok",))),
        (b"250\r\r\n", Reply(250, ("",))),
        (b"250 \r\r\n", Reply(250, ("",))),
        (b"250-a\r\r\n250-b\n250 c\r\r\r\n", Reply(250, ("a", "b", "c"))),
    ],
)
def test_rule_1_1_a_run_of_crs_before_lf_is_the_line_end(
    make: Parser, data: bytes, expected: Reply
) -> None:
    # Issue item 10: "250 2.0.0 Ok\r\r\n" after the dot is an accepted message.
    assert every_split(make, data) == [expected]


def test_rule_1_1_cr_runs_split_across_chunks_byte_by_byte(make: Parser) -> None:
    data = b"250-a\r\r\r\n250 b\r\r\n354 go\r\r\n"
    expected = [Reply(250, ("a", "b")), Reply(354, ("go",))]
    assert feed_in_pieces(make, data, range(len(data))) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"250 ok\rINJECT\r\n",
        b"250 o\r\rk\r\n",
        b"250 ok\r \r\n",
        b"250\r-x\r\n",
        b"\r\r\n",
        b"250 o\x00k\r\n",
        b"250 a\x1bb\r\n",
        b"250-a\x0bb\r\n250 c\r\n",
    ],
)
def test_rp14_cr_inside_a_line_nul_and_controls_are_errors(make: Parser, data: bytes) -> None:
    outcome = every_split(make, data)
    assert len(outcome) == 1 and isinstance(outcome[0], str)
    assert "control character" in outcome[0] or "malformed" in outcome[0]


def test_rp14_a_cr_before_lf_then_more_octets_was_inside_the_line(make: Parser) -> None:
    # The CRs end the line only if the LF follows them: split after them, the next octet
    # proves they were inside it.
    assert feed_in_pieces(make, b"250 ok\r\rx\r\n", [7, 8])[-1].startswith("control character")


def test_rp14_lone_cr_never_ends_a_line(make: Parser) -> None:
    parser = make()
    parser.feed(b"250 a\r250 b\r")
    assert parser.next_reply() is None
    assert parser.partial


# -- rule 1.2: over-long lines (RP-10) --------------------------------------------------------


def test_rp10_lines_up_to_the_limit_are_kept_whole(make: Parser) -> None:
    assert parse_one(make, b"250 " + b"x" * 508 + b"\r\n").lines == ("x" * 508,)
    assert parse_one(make, b"250 " + b"x" * 2044 + b"\r\n").lines == ("x" * 2044,)
    assert parse_one(make, b"250 " + b"x" * 2044 + b"\n").lines == ("x" * 2044,)


def test_rule_1_2_a_line_one_octet_over_the_limit_keeps_its_first_2048(make: Parser) -> None:
    assert parse_one(make, b"250 " + b"x" * 2044 + b"y\r\n") == Reply(250, ("x" * 2044,))


def test_rule_1_2_a_3000_octet_line_is_cut_and_reading_goes_on(make: Parser) -> None:
    # Issue item 9: Postfix 3.7 keeps 2048 octets, discards the rest up to LF, and goes on.
    long = b"250-2.0.0 " + b"y" * 2990 + b"\r\n"
    data = long + b"250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n"
    assert parse_all(make, data) == [
        Reply(250, ("2.0.0 " + "y" * 2038, "2.0.0 Ok: queued")),
        Reply(221, ("2.0.0 Bye",)),
    ]


def test_rule_1_2_cut_lines_split_across_chunks(make: Parser) -> None:
    data = b"550 5.1.1 " + b"z" * 2500 + b"\r\n250 ok\r\n"
    expected = [Reply(550, ("5.1.1 " + "z" * 2038,)), Reply(250, ("ok",))]
    assert every_split(make, data) == expected
    assert feed_in_pieces(make, data, range(len(data))) == expected


def test_rule_1_2_discarded_octets_are_never_looked_at(make: Parser) -> None:
    # A CR, a NUL or a whole fake reply past the kept part vanish with it: nothing in them
    # can end the line or smuggle a reply (RP-14).
    data = b"250 " + b"x" * 2044 + b"\x00\r250 2.0.0 INJECTED\r\r\n"
    assert every_split(make, data) == [Reply(250, ("x" * 2044,))]


def test_rule_1_2_crs_of_the_line_end_do_not_count_against_the_kept_octets(
    make: Parser,
) -> None:
    assert parse_one(make, b"250 " + b"x" * 2044 + b"\r\r\r\n").lines == ("x" * 2044,)
    assert parse_one(make, b"250 ok" + b"\r" * 3000 + b"\n").lines == ("ok",)


def test_rule_1_2_a_cr_left_at_the_cut_was_inside_the_line(make: Parser) -> None:
    # 2047 octets, a CR, then more text: the CR is not before the LF, so it is an error.
    data = b"250 " + b"x" * 2043 + b"\ryy\r\n"
    outcome = every_split(make, data)
    assert len(outcome) == 1 and str(outcome[0]).startswith("control character")


def test_rule_1_2_second_bound_at_exactly_4096_octets_before_lf(make: Parser) -> None:
    # 2048 kept and 2048 discarded (the CR included) is the most a line may hold.
    fits = b"250 " + b"x" * 4091 + b"\r\n"
    assert parse_one(make, fits).lines == ("x" * 2044,)
    over = b"250 " + b"x" * 4092 + b"\r\n"
    with pytest.raises(RemoteProtocolError, match=r"rule 1\.2\): reading stops, as on a lost"):
        parse_all(make, over)


def test_rule_1_2_second_bound_holds_for_a_line_of_crs(make: Parser) -> None:
    # CRs are octets the client must read: the bound counts them too.
    with pytest.raises(RemoteProtocolError, match="lost connection"):
        parse_all(make, b"250 ok" + b"\r" * 5000 + b"\n")


def test_rule_1_2_a_5000_octet_line_is_a_lost_connection_with_or_without_lf(
    make: Parser,
) -> None:
    line = b"250 " + b"x" * 4996
    for data in (line + b"\r\n", line):
        parser = make()
        parser.feed(b"220 mx\r\n" + data)
        assert parser.next_reply() == Reply(220, ("mx",))
        with pytest.raises(RemoteProtocolError, match="no LF after 2048 octets kept and 2048"):
            parser.next_reply()


def test_rp10_one_mebibyte_without_lf_keeps_the_buffer_bounded_and_the_error_sticky(
    make: Parser,
) -> None:
    parser = make()
    for n in range(1024):
        parser.feed(b"2" * 1024)
        assert parser.buffered <= 2048
        if n < 3:  # 4096 octets: kept and discarded, no error yet
            assert parser.next_reply() is None
    with pytest.raises(RemoteProtocolError, match="lost connection"):
        parser.next_reply()
    with pytest.raises(RemoteProtocolError, match="lost connection"):
        parser.next_reply()
    assert parser.buffered == 0


def test_rp10_a_trickling_line_fails_at_the_second_bound(make: Parser) -> None:
    parser = make(SMALL)
    for _ in range(128):  # 64 kept, 64 discarded
        parser.feed(b"x")
        assert parser.buffered <= 64
    assert parser.next_reply() is None
    parser.feed(b"x")
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError, match="lost connection"):
        parser.next_reply()


# -- RP-12: AUTH mode --------------------------------------------------------------------------


def test_rp12_long_334_challenge_accepted_in_auth_mode(make: Parser) -> None:
    challenge = b"334 " + b"QUFB" * 3000 + b"\r\n"  # 12,000 base64 octets
    parser = make()
    parser.auth_mode = True
    parser.feed(challenge[:5000])
    parser.feed(challenge[5000:])
    assert parser.next_reply() == Reply(334, ("QUFB" * 3000,))


def test_rp12_same_line_outside_auth_mode_passes_the_second_bound(make: Parser) -> None:
    with pytest.raises(RemoteProtocolError, match="lost connection"):
        parse_all(make, b"334 " + b"QUFB" * 3000 + b"\r\n")


def test_rp12_auth_mode_keeps_more_of_334_lines_only(make: Parser) -> None:
    parser = make()
    parser.auth_mode = True
    parser.feed(b"535 " + b"x" * 3000 + b"\r\n")
    assert parser.next_reply() == Reply(535, ("x" * 2044,))


def test_rp12_auth_keep_limit_cuts_and_bounds_too(make: Parser) -> None:
    parser = make()
    parser.auth_mode = True
    parser.feed(b"334 " + b"x" * 17000 + b"\r\n")
    assert parser.next_reply() == Reply(334, ("x" * 16380,))
    parser.feed(b"334 " + b"x" * 20000)
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError, match="16384 octets kept and 2048 discarded"):
        parser.next_reply()


def test_rp12_auth_mode_applies_to_the_octets_fed_while_it_is_set(make: Parser) -> None:
    parser = make()
    parser.auth_mode = True
    parser.feed(b"334 " + b"a" * 3000)
    parser.auth_mode = False
    parser.feed(b"b" * 100 + b"\r\n")  # past the 2048 of plain mode: discarded
    assert parser.next_reply() == Reply(334, ("a" * 3000,))


# -- rule 1.7: no line count, a byte bound (RP-11) ----------------------------------------------


def test_rule_1_7_no_limit_on_the_number_of_lines(make: Parser) -> None:
    # Issue item 11: Postfix has no line-count limit.
    assert DEFAULT.max_lines is None
    data = b"250-x\r\n" * 1000 + b"250 end\r\n"
    reply = parse_one(make, data)
    assert len(reply.lines) == 1001 and reply.lines[-1] == "end"
    assert feed_in_pieces(make, data, range(0, len(data), 7)) == [reply]


def test_rp11_endless_continuation_lines_hit_the_byte_limit(make: Parser) -> None:
    parser = make()
    with pytest.raises(RemoteProtocolError, match="65536 octets"):
        for _ in range(20_000):
            parser.feed(b"250-x\r\n")
            assert parser.next_reply() is None
            assert parser.buffered <= 65536 + 2048
    assert parser.buffered == 0


def test_rp11_reply_byte_limit(make: Parser) -> None:
    line = b"250-" + b"y" * 996 + b"\r\n"  # 1000 octets without the line end
    with pytest.raises(RemoteProtocolError, match="65536 octets"):
        parse_all(make, line * 66 + b"250 end\r\n")
    assert parse_all(make, line * 65 + b"250 end\r\n")[0].code == 250


def test_rp11_reply_byte_limit_line_by_line(make: Parser) -> None:
    parser = make()
    with pytest.raises(RemoteProtocolError, match="65536 octets"):
        for _ in range(70):
            parser.feed(b"250-" + b"y" * 996 + b"\r\n")
            assert parser.next_reply() is None


def test_rp11_reply_byte_limit_counts_the_kept_octets_of_cut_lines(make: Parser) -> None:
    limits = ReplyLimits(max_line_length=10, max_reply_bytes=25)
    assert parse_one(make, b"250-" + b"a" * 12 + b"\r\n250 b\r\n", limits).lines == ("aaaaaa", "b")
    with pytest.raises(RemoteProtocolError, match="25 octets"):
        parse_all(make, (b"250-" + b"a" * 12 + b"\r\n") * 3 + b"250 b\r\n", limits)


def test_reply_byte_limit_below_the_line_limit(make: Parser) -> None:
    limits = ReplyLimits(max_line_length=6, max_reply_bytes=4)
    assert every_split(make, b"220 OK\r\n", limits) == ["reply longer than 4 octets"]


def test_max_lines_still_limits_when_set(make: Parser) -> None:
    limits = ReplyLimits(max_lines=5)
    assert len(parse_one(make, b"250-x\r\n" * 4 + b"250 y\r\n", limits).lines) == 5
    with pytest.raises(RemoteProtocolError, match="longer than 5 lines"):
        parse_all(make, b"250-x\r\n" * 5 + b"250 y\r\n", limits)


def test_reply_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_lines"):
        ReplyLimits(max_lines=0)
    with pytest.raises(ValueError, match="max_lines"):
        ReplyLimits(max_lines=True)
    with pytest.raises(ValueError, match="max_line_length"):
        ReplyLimits(max_line_length=True)
    with pytest.raises(ValueError, match="max_reply_bytes"):
        ReplyLimits(max_reply_bytes=3)


# -- RP-15: 8-bit text --------------------------------------------------------------------------


def test_rp15_eight_bit_text_is_decoded_with_replacement(make: Parser) -> None:
    reply = parse_one(make, b"535 Error: \xc7\xeb\xca\xb9\r\n")
    assert reply.code == 535 and "\ufffd" in reply.lines[0]
    assert parse_one(make, b"250 caf\xc3\xa9\r\n").lines == ("café",)


def test_rp15_truncated_utf8_at_line_end_is_replaced_per_line(make: Parser) -> None:
    assert parse_one(make, b"250-a\xc3\r\n250 \xa9b\r\n").lines == ("a\ufffd", "\ufffdb")


def test_rp15_a_cut_inside_a_utf8_sequence_is_replaced(make: Parser) -> None:
    limits = ReplyLimits(max_line_length=5)
    assert parse_one(make, "250 é!".encode() + b"\r\n", limits).lines == ("\ufffd",)


# -- RP-16: incremental parsing ---------------------------------------------------------------

STREAM = (
    b"220 mx.example ESMTP\r\n"
    b"250-mx.example Hello\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n"
    b"250 2.1.0 Ok\r\n250\r\n250 \r\n354 go\n"
    b"250-caf\xc3\xa9\n250 x\r\n221 2.0.0 Bye\r\r\n"
)


def test_rp16_byte_by_byte_equals_one_piece(make: Parser) -> None:
    whole = parse_all(make, STREAM)
    assert len(whole) == 8
    assert feed_in_pieces(make, STREAM, range(len(STREAM))) == whole
    assert every_split(make, STREAM) == whole


def test_rp16_split_between_cr_and_lf(make: Parser) -> None:
    assert every_split(make, b"250-a\r\n250 b\r\n") == [Reply(250, ("a", "b"))]


# -- errors are sticky; buffered; the API -------------------------------------------------------


def test_error_is_sticky_and_later_data_is_dropped(make: Parser) -> None:
    parser = make()
    parser.feed(b"2x0 oops\r\n")
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()
    parser.feed(b"250 ok\r\n")
    assert parser.buffered == 0
    with pytest.raises(RemoteProtocolError, match="three ASCII digits"):
        parser.next_reply()


def test_replies_before_an_error_come_out_first(make: Parser) -> None:
    parser = make()
    parser.feed(b"250 a\r\n250 b\r\nbad\r\n250 c\r\n")
    assert parser.next_reply() == Reply(250, ("a",))
    assert parser.next_reply() == Reply(250, ("b",))
    with pytest.raises(RemoteProtocolError):
        parser.next_reply()


def test_feed_after_eof_is_a_local_error(make: Parser) -> None:
    parser = make()
    parser.feed(b"")
    with pytest.raises(LocalProtocolError):
        parser.feed(b"250 ok\r\n")


def test_need_more_data_returns_none(make: Parser) -> None:
    parser = make()
    assert parser.next_reply() is None
    parser.feed(b"250-a\r\n")
    assert parser.next_reply() is None
    parser.feed(b"250 b")
    assert parser.next_reply() is None
    parser.feed(b"\r\n")
    assert parser.next_reply() == Reply(250, ("a", "b"))


def test_buffered_counts_the_lines_of_an_unfinished_reply(make: Parser) -> None:
    parser = make()
    parser.feed(b"220 go\r\n250-injected\r\n")
    assert parser.next_reply() == Reply(220, ("go",))
    assert parser.next_reply() is None
    assert parser.buffered == len(b"250-injected") and parser.partial
    parser.feed(b"250 x")
    assert parser.buffered == len(b"250-injected250 x")
    parser.feed(b"\r\n")
    assert parser.next_reply() is not None
    assert parser.buffered == 0 and not parser.partial


def test_ns01_continuation_lines_after_the_starttls_reply_are_injection() -> None:
    # Complete continuation lines sent with the 220 would otherwise wait in the parser and
    # open the first reply after the handshake (NS-01: capabilities injected over TLS).
    conn = session("STARTTLS")
    conn.send(StartTLS())
    conn.receive_data(b"220 go\r\n250-AUTH PLAIN\r\n")
    with pytest.raises(RemoteProtocolError, match="NS-01"):
        conn.next_event()  # not even the STARTTLS reply comes out


# -- Reply and EnhancedStatus (rule 1.8, RP-20) --------------------------------------------------


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
        # As written, leading zeros kept: Postfix's dsn_valid() takes them and logs the text
        # (found by interop/test_postfix_differential.py: "553 5.01.1").
        (b"553 5.01.1\r\n", "5.01.1"),
        (b"250 2.000.00 Ok\r\n", "2.000.00"),
        (b"451 5.01.1 x\r\n", "4.0.0"),
    ],
)
def test_rule_1_8_table(make: Parser, data: bytes, dsn: str) -> None:
    assert parse_one(make, data).dsn == dsn


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


def test_parsed_replies_equal_constructed_ones(make: Parser) -> None:
    parsed = parse_all(make, b"250-a\r\n250 b\r\n250 c\r\n250 c\r\n")
    assert parsed == [Reply(250, ("a", "b")), Reply(250, ("c",)), Reply(250, ("c",))]
    assert [hash(r) for r in parsed] == [
        hash(Reply(250, ("a", "b"))),
        *[hash(Reply(250, ("c",)))] * 2,
    ]
    assert all(type(r) is Reply for r in parsed)


def test_unchecked_replies_are_ordinary_replies() -> None:
    built = Reply._unchecked([250, 550], [("a",), ("b", "c")])
    assert built == [Reply(250, ("a",)), Reply(550, ("b", "c"))]
    assert built[1].dsn == "5.0.0" and str(built[1]) == "550 b c"


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
        end = draw(st.sampled_from([b"\r\n", b"\n", b"\r\r\n"]))
        if last and not text and draw(st.booleans()):
            wire += b"%d" % code + end  # RP-02: "250" alone
        else:
            wire += b"%d" % code + (b" " if last else b"-") + text + end
    lines = tuple(t.decode("utf-8", "replace") for t in texts)
    return wire, Reply(code, lines)


@pytest.mark.parametrize("make", [ReplyParser, FastReplyParser], ids=["reference", "fast"])
@settings(max_examples=200, deadline=None)
@given(st.lists(replies(), max_size=8), st.lists(st.integers(0, 400), max_size=12))
def test_property_any_split_gives_the_same_replies(
    make: Parser, stream: list[tuple[bytes, Reply]], cuts: list[int]
) -> None:
    data = b"".join(wire for wire, _ in stream)
    expected = [reply for _, reply in stream]
    assert feed_in_pieces(make, data, [c for c in cuts if c < len(data)]) == expected
    assert parse_all(make, data) == expected


wire_soup = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"250",
                b"250-",
                b"250 ",
                b"251 ",
                b"334 ",
                b"354 ",
                b"5",
                b"x",
                b"\r",
                b"\n",
                b"\r\n",
                b"\r\r\n",
                b"\x00",
                b"\t",
                b"ok",
                b"\xc3\xa9",
                b"y" * 30,
                b"z" * 70,
                b"2.1.5 ",
            ]
        ),
        st.binary(max_size=5),
    ),
    max_size=40,
).map(b"".join)


@pytest.mark.parametrize("make", [ReplyParser, FastReplyParser], ids=["reference", "fast"])
@settings(max_examples=300, deadline=None)
@given(wire_soup, st.lists(st.integers(0, 300), max_size=10), st.booleans())
def test_property_arbitrary_bytes_match_the_literal_model(
    make: Parser, data: bytes, cuts: list[int], auth_mode: bool
) -> None:
    expected = reference_parse(data, SMALL, auth_mode, eof=True)
    parser = make(SMALL)
    parser.auth_mode = auth_mode
    got: list[Reply] = []
    error = False
    bounds = [0, *sorted({c for c in cuts if c < len(data)}), len(data)]
    try:
        for start, end in itertools.pairwise(bounds):
            if start < end:
                parser.feed(data[start:end])
            while (reply := parser.next_reply()) is not None:
                got.append(reply)
            assert parser.buffered <= SMALL.max_reply_bytes + SMALL.max_auth_line_length
        parser.feed(b"")
        while (reply := parser.next_reply()) is not None:
            got.append(reply)
    except RemoteProtocolError:
        error = True
        assert parser.buffered == 0
    assert (tuple((r.code, r.lines) for r in got), error) == (expected.replies, expected.error)


@pytest.mark.parametrize("make", [ReplyParser, FastReplyParser], ids=["reference", "fast"])
@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.lists(st.integers(1, 500), max_size=20))
def test_property_random_bytes_never_raise_anything_else(
    make: Parser, data: bytes, sizes: list[int]
) -> None:
    parser = make(SMALL)
    pos = 0
    try:
        for size in [*sizes, len(data)]:
            parser.feed(data[pos : pos + size] or b"x")
            pos += size
            while parser.next_reply() is not None:
                pass
            assert parser.buffered <= SMALL.max_reply_bytes + SMALL.max_line_length
    except RemoteProtocolError:
        assert parser.buffered == 0
