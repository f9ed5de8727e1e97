"""The body encoder, message sources and sizes (SM-*; rules 6.8, 8.1-8.4)."""

from __future__ import annotations

import dataclasses
import email.message
import email.policy
import io
import itertools
import re
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError, Refusal
from smtpproto.body import (
    BodyEncoder,
    MessageInfo,
    encoded_size,
    iter_chunks,
    iter_wire,
    scan,
)
from smtpproto.engine.refusals import size_refusal, smtputf8_refusal

FAST = settings(max_examples=200, deadline=None)


def encode(data: bytes, *chunks_at: int, **options: object) -> bytes:
    """Encode `data`, split before each offset in `chunks_at`."""
    encoder = BodyEncoder(**options)  # type: ignore[arg-type]
    bounds = [0, *chunks_at, len(data)]
    out = [encoder.feed(data[a:b]) for a, b in itertools.pairwise(bounds)]
    return b"".join(out) + encoder.finish()


def reference(data: bytes, *, limit: int = 998, stuff: bool = True) -> bytes:
    """The SM-* normalization rules and rule 8.3, applied to a whole message at once."""
    data = data.replace(b"\0", b"")
    text = re.sub(rb"\r\n|\r|\n", b"\n", data)
    lines = text.split(b"\n")
    if text.endswith(b"\n") or not text:
        lines.pop()
    out = []
    for line in lines:
        if stuff and line.startswith(b"."):
            line = b"." + line
        if limit and len(line) > limit:
            out.append(line[:limit])
            out.extend(b" " + line[i : i + limit - 1] for i in range(limit, len(line), limit - 1))
        else:
            out.append(line)
    return b"".join(line + b"\r\n" for line in out) + (b".\r\n" if stuff else b"")


# SM-01..SM-17: input -> exact wire, normalize mode, default options.
SM_CASES = {
    "SM-01": (b"a\nb", b"a\r\nb\r\n.\r\n"),
    "SM-02": (b"a\rb", b"a\r\nb\r\n.\r\n"),
    "SM-03": (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    "SM-04": (b"a\n.\nb\n", b"a\r\n..\r\nb\r\n.\r\n"),
    "SM-05": (b"a\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    "SM-06": (b"a\r\n.\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    "SM-07": (b"a\r.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    "SM-08": (b"a\r\n.\rb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    "SM-09": (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
    "SM-10": (b".\r\nrest\r\n", b"..\r\nrest\r\n.\r\n"),
    "SM-11a": (b"..\r\n", b"...\r\n.\r\n"),
    "SM-11b": (b".x", b"..x\r\n.\r\n"),
    "SM-12": (b"", b".\r\n"),
    "SM-13a": (b"x", b"x\r\n.\r\n"),
    "SM-13b": (b"x\r\n", b"x\r\n.\r\n"),
    "SM-14": (b"x\r", b"x\r\n.\r\n"),
    "SM-15": (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
    "SM-16": (b"a\r\r\nb", b"a\r\n\r\nb\r\n.\r\n"),
}
SM17 = b"x\r\n\x00.\r\ny\r\n"
SM17_STRIPPED = b"x\r\n..\r\ny\r\n.\r\n"


@pytest.mark.parametrize(("data", "wire"), SM_CASES.values(), ids=SM_CASES.keys())
def test_sm01_to_sm16_smuggling_inputs_are_normalized_and_stuffed(data: bytes, wire: bytes) -> None:
    assert encode(data) == wire


def test_sm01_bare_lf_becomes_crlf() -> None:
    assert encode(b"a\nb") == b"a\r\nb\r\n.\r\n"


def test_sm02_bare_cr_becomes_crlf() -> None:
    assert encode(b"a\rb") == b"a\r\nb\r\n.\r\n"


def test_sm05_published_lf_dot_crlf_payload_stays_content() -> None:
    smuggled = b"a\n.\r\nMAIL FROM:<x@y>\r\n"
    assert encode(smuggled) == b"a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n"


def test_sm09_lone_cr_before_dot_is_a_line_end_and_the_dot_is_stuffed() -> None:
    assert encode(b"a\r.\rb") == b"a\r\n..\r\nb\r\n.\r\n"


def test_sm10_dot_on_the_first_line_is_stuffed() -> None:
    assert encode(b".\r\nrest\r\n") == b"..\r\nrest\r\n.\r\n"


def test_sm12_empty_message_is_just_the_terminator() -> None:
    assert encode(b"") == b".\r\n"
    assert encode(b"", mode="bdat") == b""


def test_sm13_no_blank_line_is_added_before_the_terminator() -> None:
    assert encode(b"x\r\n") == b"x\r\n.\r\n"
    assert encode(b"x") == b"x\r\n.\r\n"


def test_sm14_trailing_cr_is_one_line_end() -> None:
    assert encode(b"x\r") == b"x\r\n.\r\n"
    assert encode(b"x\r", 2) == b"x\r\n.\r\n"


def test_sm15_blank_lines_are_kept() -> None:
    assert encode(b"\r\n\r\n") == b"\r\n\r\n.\r\n"


def test_sm16_cr_cr_lf_is_two_line_ends() -> None:
    assert encode(b"a\r\r\nb") == b"a\r\n\r\nb\r\n.\r\n"
    assert encode(b"a\r\r\nb", 2) == b"a\r\n\r\nb\r\n.\r\n"


def test_sm17_nul_is_refused_by_default_naming_message() -> None:
    with pytest.raises(LocalProtocolError, match="message: contains a NUL"):
        encode(SM17)


def test_sm17_nul_is_refused_by_scan_before_anything_is_sent() -> None:
    with pytest.raises(LocalProtocolError, match="message: contains a NUL"):
        scan(SM17)


def test_sm17_strip_option_removes_nul_then_stuffs() -> None:
    assert encode(SM17, nul="strip") == SM17_STRIPPED
    assert encode(b"a\r\x00\nb", nul="strip") == b"a\r\nb\r\n.\r\n"


def test_sm17_scan_reports_stripped_nul() -> None:
    info = scan(SM17, nul="strip")
    assert info.has_nul
    assert info.wire_size == len(SM17_STRIPPED)


ALL_INPUTS = [data for data, _ in SM_CASES.values()]


@pytest.mark.parametrize("data", ALL_INPUTS, ids=SM_CASES.keys())
def test_sm18_every_two_and_three_way_split_gives_the_same_bytes(data: bytes) -> None:
    whole = encode(data)
    for i in range(len(data) + 1):
        assert encode(data, i) == whole, i
        for j in range(i, len(data) + 1):
            assert encode(data, i, j) == whole, (i, j)


def test_sm18_nul_strip_case_is_chunk_invariant_too() -> None:
    for i in range(len(SM17) + 1):
        for j in range(i, len(SM17) + 1):
            assert encode(SM17, i, j, nul="strip") == SM17_STRIPPED


def test_sm19_reject_mode_refuses_bare_lf_and_bare_cr() -> None:
    for data in (b"a\nb", b"a\rb", b"a\r\r\nb", b"x\r"):
        with pytest.raises(LocalProtocolError, match="message: contains a bare"):
            encode(data, bare_line_ends="reject")
        with pytest.raises(LocalProtocolError, match="message: contains a bare"):
            scan(data, bare_line_ends="reject")
    assert encode(b"a\r\nb", 2, bare_line_ends="reject") == b"a\r\nb\r\n.\r\n"


def test_sm19_reject_mode_in_a_stream_raises_at_the_offending_chunk() -> None:
    # The engine must then close without the terminator (SM-19).
    encoder = BodyEncoder(bare_line_ends="reject")
    clean = b"x" * 900 + b"\r\n"
    sent = b"".join(encoder.feed(clean) for _ in range(5))
    assert sent == clean * 5
    with pytest.raises(LocalProtocolError):
        encoder.feed(b"bare\nLF")


def test_sm20_long_line_is_folded_postfix_style() -> None:
    wire = encode(b"a" * 1200)
    lines = wire.split(b"\r\n")
    assert lines[0] == b"a" * 998
    assert lines[1] == b" " + b"a" * 202
    assert encode(b"a" * 1200, line_length_limit=0) == b"a" * 1200 + b"\r\n.\r\n"
    assert max(len(line) + 2 for line in lines) <= 1000


def test_spec_8_3_vectors_999_1996_998() -> None:
    assert encode(b"b" * 999, mode="bdat") == b"b" * 998 + b"\r\n b\r\n"
    assert encode(b"b" * 1996, mode="bdat") == (b"b" * 998 + b"\r\n " + b"b" * 997 + b"\r\n b\r\n")
    assert encode(b"b" * 998, mode="bdat") == b"b" * 998 + b"\r\n"


def test_q6_deviation_stuffing_dot_counts_so_no_wire_line_exceeds_1000() -> None:
    wire = encode(b"." + b"c" * 997)  # 998 octets; Postfix would send 999 + CRLF
    assert wire == b".." + b"c" * 996 + b"\r\n c\r\n.\r\n"
    assert encode(b"." + b"c" * 996) == b".." + b"c" * 996 + b"\r\n.\r\n"


def test_fold_across_chunk_boundaries_is_identical() -> None:
    data = b"d" * 2500 + b"\r\n" + b"." * 1500
    whole = encode(data)
    assert whole == reference(data)
    for cut in (1, 997, 998, 999, 1996, 2500, 2501, 2502, 3000):
        assert encode(data, cut) == whole


def test_sm21_bdat_mode_normalizes_without_stuffing_or_terminator() -> None:
    data = b".a\n.\r\nb\r"
    assert encode(data, mode="bdat") == b".a\r\n.\r\nb\r\n"
    assert encoded_size(data, mode="bdat") == len(b".a\r\n.\r\nb\r\n")


def test_sm21_bdat_mode_holds_back_a_trailing_cr_so_chunk_sizes_are_exact() -> None:
    encoder = BodyEncoder(mode="bdat")
    assert encoder.feed(b"ab\r") == b"ab"
    assert encoder.feed(b"\ncd") == b"\r\ncd"
    assert encoder.finish() == b"\r\n"


def test_sm21_bdat_total_is_the_rfc1870_size() -> None:
    data = b"..x\nline\r\n" * 50 + b"tail"
    assert encoded_size(data, mode="bdat") == scan(data).size


# SM-22: Hypothesis over any bytes and any chunking.
_BODY_BYTES = st.binary(max_size=300) | st.lists(
    st.sampled_from([b"\r", b"\n", b".", b"a", b" ", b"\r\n", b"\x80"]), max_size=80
).map(b"".join)


@st.composite
def chunked(draw: st.DrawFn) -> tuple[bytes, list[int]]:
    data = draw(_BODY_BYTES)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    return data, cuts


def _unstuff(wire: bytes) -> bytes:
    assert wire.endswith(b".\r\n")
    body = wire[:-3]
    lines = body.split(b"\r\n")
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)


@FAST
@given(chunked(), st.sampled_from([0, 2, 3, 7, 998]))
def test_sm22_wire_properties_for_any_bytes_and_any_chunking(
    case: tuple[bytes, list[int]], limit: int
) -> None:
    data, cuts = case
    wire = encode(data, *cuts, line_length_limit=limit, nul="strip")
    # (a) only CRLF line ends: every CR is followed by LF, every LF preceded by CR.
    assert wire.count(b"\r") == wire.count(b"\n") == wire.count(b"\r\n")
    # (b) output is independent of the chunking, and follows the whole-message rules.
    assert wire == encode(data, line_length_limit=limit, nul="strip")
    assert wire == reference(data, limit=limit)
    # (c) no wire line is a lone "." before the end.
    lines = wire.split(b"\r\n")
    assert lines[-2:] == [b".", b""]
    assert b"." not in lines[:-2]
    # (d) no smuggling sequences but the final terminator.
    for bad in (b"\n.\n", b"\n.\r", b"\r.\r", b"\r.\n"):
        assert bad not in wire[:-5]
    if limit:
        assert max(len(line) for line in lines) <= limit


@FAST
@given(chunked())
def test_sm22_unstuffing_gives_normalized_input_without_folding(
    case: tuple[bytes, list[int]],
) -> None:
    data, cuts = case
    wire = encode(data, *cuts, line_length_limit=0, nul="strip")
    normalized = re.sub(rb"\r\n|\r|\n", b"\r\n", data.replace(b"\0", b""))
    if normalized and not normalized.endswith(b"\r\n"):
        normalized += b"\r\n"
    assert _unstuff(wire) == normalized


@FAST
@given(st.lists(st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b), max_size=5))
def test_sm22_folded_lines_rejoin_to_the_original(lines: list[bytes]) -> None:
    # Without CR, LF, NUL or a leading space in the input, "CRLF SP" can only be a fold.
    lines = [line.translate(None, b"\r\0").lstrip(b" ") or b"x" for line in lines]
    data = b"".join(line + b"\r\n" for line in lines)
    wire = encode(data, line_length_limit=5, nul="strip")
    assert _unstuff(wire.replace(b"\r\n ", b"")) == data


@FAST
@given(chunked(), st.sampled_from(["data", "bdat"]), st.sampled_from([0, 3, 998]))
def test_encoded_size_equals_fed_octets(
    case: tuple[bytes, list[int]], mode: str, limit: int
) -> None:
    data, cuts = case
    options = {"mode": mode, "line_length_limit": limit, "nul": "strip"}
    wire = encode(data, *cuts, **options)
    assert encoded_size(data, **options) == len(wire)  # type: ignore[arg-type]


def test_feed_output_is_bounded_by_input() -> None:
    encoder = BodyEncoder(line_length_limit=2)
    worst = b"\r" * 1000
    assert len(encoder.feed(worst)) <= 2 * len(worst)
    encoder = BodyEncoder(line_length_limit=998)
    data = b"z" * 65536
    assert len(encoder.feed(data)) <= 2 * len(data) + 3 * (len(data) // 997 + 1)


def test_encoder_counts_dots_and_folds() -> None:
    encoder = BodyEncoder(line_length_limit=4)
    encoder.feed(b".ab\r\n.abcdef\r\n")
    assert encoder.dots_added == 2
    assert encoder.folds == 2
    assert encoder.mode == "data"
    assert encoder.line_length_limit == 4


@pytest.mark.parametrize(
    ("options", "name"),
    [
        ({"mode": "smtp"}, "mode"),
        ({"nul": "keep"}, "nul"),
        ({"bare_line_ends": "pass"}, "bare_line_ends"),
        ({"line_length_limit": 1}, "line_length_limit"),
        ({"line_length_limit": -1}, "line_length_limit"),
        ({"line_length_limit": True}, "line_length_limit"),
        ({"line_length_limit": "998"}, "line_length_limit"),
    ],
)
def test_bad_encoder_options_name_the_argument(options: dict[str, object], name: str) -> None:
    with pytest.raises(LocalProtocolError, match=rf"^{name}:"):
        BodyEncoder(**options)  # type: ignore[arg-type]


def test_feed_or_finish_after_finish_is_refused() -> None:
    encoder = BodyEncoder()
    encoder.finish()
    with pytest.raises(LocalProtocolError, match="feed:"):
        encoder.feed(b"x")
    with pytest.raises(LocalProtocolError, match="finish:"):
        encoder.finish()


def test_feed_accepts_bytearray_and_memoryview_and_refuses_str() -> None:
    encoder = BodyEncoder(mode="bdat")
    assert encoder.feed(bytearray(b"a\n")) == b"a\r\n"
    assert encoder.feed(memoryview(b"b\n")) == b"b\r\n"
    with pytest.raises(LocalProtocolError, match=r"^message:"):
        encoder.feed("c\n")  # type: ignore[arg-type]


# Message sources (iter_chunks).


def test_bytes_like_sources_are_chunked_without_loss() -> None:
    data = bytes(range(256)) * 100
    for source in (data, bytearray(data), memoryview(data)):
        chunks = list(iter_chunks(source, 1000))
        assert b"".join(chunks) == data
        assert max(map(len, chunks)) == 1000
    assert list(iter_chunks(b"")) == []


def test_memoryview_of_other_formats_is_read_as_octets() -> None:
    view = memoryview(bytearray(b"abcdefgh")).cast("H")
    assert b"".join(iter_chunks(view, 3)) == b"abcdefgh"


def test_file_source_is_read_from_its_position_and_put_back() -> None:
    f = io.BytesIO(b"skip|hello\nworld")
    f.seek(5)
    assert b"".join(iter_chunks(f, 4)) == b"hello\nworld"
    assert f.tell() == 5
    assert b"".join(iter_chunks(f, 4)) == b"hello\nworld"


def test_text_file_is_refused_naming_message() -> None:
    with pytest.raises(LocalProtocolError, match=r"^message: read\(\) returned str"):
        list(iter_chunks(io.StringIO("hello")))  # type: ignore[arg-type]


def test_iterable_source_items_are_rechunked_and_checked() -> None:
    assert list(iter_chunks([b"abcde", b"", b"f"], 2)) == [b"ab", b"cd", b"e", b"f"]
    with pytest.raises(LocalProtocolError, match=r"^message: expected an iterable of bytes"):
        list(iter_chunks(["text"]))  # type: ignore[list-item]


@pytest.mark.parametrize("bad", ["text", 42, None, 3.5])
def test_bad_source_types_are_refused_naming_message(bad: object) -> None:
    with pytest.raises(LocalProtocolError, match=r"^message:"):
        list(iter_chunks(bad))  # type: ignore[arg-type]


def test_bad_chunk_size_is_refused() -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(LocalProtocolError, match=r"^chunk_size:"):
            iter_chunks(b"x", bad)  # type: ignore[arg-type]


def test_email_message_is_flattened_with_crlf() -> None:
    msg = email.message.EmailMessage()
    msg["Subject"] = "hi"
    msg.set_content("one\n.two\n")
    data = b"".join(iter_chunks(msg, 16))
    assert b"\r\n" in data
    assert re.search(rb"(?<!\r)\n", data) is None
    assert b"Subject: hi\r\n" in data
    assert encode(data).count(b"\r\n..two\r\n") == 1


def test_compat32_message_keeps_its_policy_with_crlf() -> None:
    msg = email.message.Message()
    msg["Subject"] = "old"
    msg.set_payload("body\n")
    assert b"".join(iter_chunks(msg)) == b"Subject: old\r\n\r\nbody\r\n"


def test_email_message_goes_out_without_bcc_like_smtplib_send_message() -> None:
    # smtplib.send_message deletes Bcc and Resent-Bcc before sending; so does the library.
    msg = email.message.EmailMessage()
    msg["To"] = "a@example.com"
    msg["Bcc"] = "hidden@example.com"
    msg["Resent-Bcc"] = "also-hidden@example.com"
    msg.set_content("body\n")
    data = b"".join(iter_chunks(msg))
    assert b"hidden@example.com" not in data and b"To: a@example.com\r\n" in data
    assert scan(msg).size == len(data)
    assert msg["Bcc"] == "hidden@example.com"  # the caller's object is left as it was


def test_raw_bytes_keep_their_bcc_header_as_given() -> None:
    raw = b"Bcc: hidden@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    assert b"".join(iter_chunks(raw)) == raw


def test_unflattenable_message_is_refused_naming_message() -> None:
    msg = email.message.EmailMessage(policy=email.policy.SMTP)
    msg["Subject"] = "x"
    msg.set_payload(object())  # type: ignore[call-overload]
    with pytest.raises(LocalProtocolError, match=r"^message: cannot be flattened"):
        list(iter_chunks(msg))


def test_iter_wire_yields_the_encoded_message() -> None:
    assert b"".join(iter_wire([b"a\n", b".b"], chunk_size=1)) == b"a\r\n..b\r\n.\r\n"
    assert b"".join(iter_wire(b"a\n", mode="bdat")) == b"a\r\n"


# scan() and sizes.


def test_scan_describes_a_mime_message() -> None:
    data = (
        "From: a@example.com\nSubject: caf\u00e9\nMIME-Version: 1.0\n"
        "Content-Type: Text/Plain; charset=utf-8\nContent-Transfer-Encoding:  8BIT\n\n"
        ".body \u00e9\n"
    ).encode()
    info = scan(data)
    assert info == MessageInfo(
        size=len(data.replace(b"\n", b"\r\n")),
        wire_size=len(data.replace(b"\n", b"\r\n")) + 1 + 3,
        has_8bit=True,
        has_nul=False,
        header_8bit=True,
        mime_version=True,
        content_type="text/plain",
        transfer_encoding="8bit",
        folded=False,
    )
    assert info.body_type == "8BITMIME"


def test_scan_of_plain_ascii_without_headers() -> None:
    info = scan(b"just a body line\n" + b"x" * 1200)
    assert not info.has_8bit and not info.header_8bit and not info.mime_version
    assert info.content_type == "text/plain"
    assert info.transfer_encoding is None
    assert info.folded
    assert info.body_type == "7BIT"


def test_scan_header_ends_at_blank_line_even_across_chunks() -> None:
    data = [b"Subject: x\r\n\tcontinued\r", b"\n\r\nContent-Type: multipart/mixed\r\n\xff"]
    info = scan(data)
    assert info.content_type == "text/plain"  # the Content-Type line is body text
    assert not info.header_8bit
    assert info.has_8bit


def test_rfc1870_size_excludes_stuffing_dots_and_terminator() -> None:
    data = b".a\r\n..b\r\nc\r\n"
    info = scan(data)
    assert info.size == len(data)
    assert info.wire_size == len(data) + 2 + 3 == encoded_size(data)


def test_scan_refuses_sources_that_cannot_be_read_twice() -> None:
    def gen() -> Iterator[bytes]:
        yield b"x"

    with pytest.raises(LocalProtocolError, match=r"^message: an iterator"):
        scan(gen())

    class Pipe:
        def read(self, n: int) -> bytes:
            return b""

    with pytest.raises(LocalProtocolError, match=r"^message: a file that cannot seek"):
        scan(Pipe())


def test_scan_then_send_reads_a_file_twice() -> None:
    f = io.BytesIO(b"line\n")
    assert scan(f).size == 6
    assert b"".join(iter_wire(f)) == b"line\r\n.\r\n"


def test_message_info_validates() -> None:
    with pytest.raises(LocalProtocolError, match=r"^size:"):
        MessageInfo(-1, 0, False, False, False, False, "text/plain", None, False)
    with pytest.raises(LocalProtocolError, match=r"^wire_size:"):
        MessageInfo(5, 4, False, False, False, False, "text/plain", None, False)


# Decisions before MAIL (smtpproto/message.py).


def _info(size: int = 100, *, has_8bit: bool = False, header_8bit: bool = False) -> MessageInfo:
    return MessageInfo(
        size, size + 3, has_8bit, False, header_8bit, False, "text/plain", None, False
    )


def test_spec_6_8_size_over_the_server_limit_is_a_typed_5_3_4_refusal() -> None:
    refusal = size_refusal(_info(1001), 1000, "mx.example[192.0.2.1]")
    assert refusal == Refusal(
        "5.3.4", "message size 1001 exceeds size limit 1000 of server mx.example[192.0.2.1]"
    )
    assert refusal.permanent
    assert str(refusal).startswith("5.3.4 message size 1001")


def test_spec_6_8_no_refusal_without_limit_or_within_it() -> None:
    assert size_refusal(_info(1000), 1000, "h[a]") is None
    assert size_refusal(_info(10**9), 0, "h[a]") is None
    assert size_refusal(_info(10**9), None, "h[a]") is None


def test_spec_3_10_smtputf8_refusal() -> None:
    ascii_info = _info()
    label = "mx[192.0.2.1]"
    refusal = smtputf8_refusal(
        ["s@x", "d\u00e9@x"], ascii_info, requested=True, server_smtputf8=False, server=label
    )
    assert refusal is not None and refusal.dsn == "5.6.7"
    assert refusal.text.endswith("The last attempted server was mx[192.0.2.1]")
    assert (
        smtputf8_refusal(
            ["d\u00e9@x"], ascii_info, requested=True, server_smtputf8=True, server=label
        )
        is None
    )
    utf8_header = _info(has_8bit=True, header_8bit=True)
    assert (
        smtputf8_refusal(["a@x"], utf8_header, requested=True, server_smtputf8=False, server=label)
        is not None
    )
    assert (
        smtputf8_refusal(["a@x"], utf8_header, requested=False, server_smtputf8=False, server=label)
        is None
    )


def test_refusal_validates_status_and_text() -> None:
    with pytest.raises(LocalProtocolError, match=r"^dsn:"):
        Refusal("2.0.0", "fine")
    with pytest.raises(LocalProtocolError, match=r"^text:"):
        Refusal("5.3.4", "two\nlines")


# Memory: the encoder streams, so memory stays flat as the message grows.


def test_fifty_mib_from_a_generator_streams_in_bounded_memory() -> None:
    line = b"The quick brown fox jumps over the lazy dog.\n" * 1400 + b".dot\r"

    def source() -> Iterator[bytes]:
        for _ in range(50 * 2**20 // len(line) + 1):
            yield line

    tracemalloc.start()
    try:
        encoder = BodyEncoder()
        total = 0
        for chunk in source():
            total += len(encoder.feed(chunk))
        total += len(encoder.finish())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 50 * 2**20
    assert peak < 4 * 2**20


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"")))
def test_scan_info_is_what_the_validating_constructor_makes(message: bytes) -> None:
    # scan builds MessageInfo without its checks (`MessageInfo._trusted`): the same value,
    # and one the checks would pass.
    info = scan(message)
    assert MessageInfo(**dataclasses.asdict(info)) == info
