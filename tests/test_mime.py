"""8BITMIME -> 7bit conversion (rule 8.5, RFC 6152 3, RFC 2045 6.7) and the decisions around it."""

from __future__ import annotations

import email
import email.message
import email.policy
import itertools
import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError, MessageRefused
from smtpproto.body import BodyEncoder, MessageInfo, scan
from smtpproto.engine.refusals import eightbit_refusal, needs_downgrade
from smtpproto.mime import content_type, downgrade_8bit, transfer_encoding

FAST = settings(max_examples=200, deadline=None)


def convert(data: bytes, *cuts: int, **limits: int) -> bytes:
    bounds = [0, *cuts, len(data)]
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    return b"".join(downgrade_8bit(chunks, **limits))


def leaves(data: bytes) -> list[tuple[str, object]]:
    """What a reader sees: each leaf's type and decoded content, line ends as LF."""
    msg = email.message_from_bytes(data, policy=email.policy.default)
    out: list[tuple[str, object]] = []
    for part in msg.walk():
        if part.is_multipart() or part.get_content_type() == "message/rfc822":
            continue
        content = part.get_payload(decode=True)
        assert isinstance(content, bytes)
        out.append((part.get_content_type(), content.replace(b"\r\n", b"\n")))
    return out


def assert_same_reading(original: bytes) -> bytes:
    converted = convert(original)
    assert converted.isascii()
    encoder = BodyEncoder()
    wire = encoder.feed(converted) + encoder.finish()
    assert wire.isascii()
    assert leaves(converted) == leaves(original)
    return converted


SINGLE = (
    b"From: a@example.com\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"Subject: greetings\n"
    b"\n"
    + "Grüße aus Köln = 1\ttab \n.leading dot\ntrailing tab\t\n".encode()
    + "é".encode() * 120
    + b"\n"
)


def test_spec_8_5_cafe_becomes_quoted_printable_with_replaced_header() -> None:
    data = (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n"
        b"X-After: kept\r\n\r\n" + "café".encode() + b"\r\n"
    )
    assert convert(data) == (
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"X-After: kept\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"MIME-Version: 1.0\r\n"
        b"\r\n"
        b"caf=C3=A9\r\n"
    )


def test_single_part_reads_the_same_after_conversion() -> None:
    converted = assert_same_reading(SINGLE)
    assert b"Content-Transfer-Encoding: quoted-printable\r\n\r\n" in converted
    assert converted.count(b"MIME-Version") == 1
    assert b"= 1" not in converted and b"=3D 1\ttab=20\r\n" in converted
    assert b"trailing tab=09\r\n" in converted


def test_qp_lines_stay_within_76_and_escapes_are_never_split() -> None:
    converted = convert(SINGLE)
    body = converted.split(b"\r\n\r\n", 1)[1]
    for line in body.split(b"\r\n"):
        assert len(line) <= 76
    assert b"=\r\n" in body  # the long line got soft breaks


def test_qp_soft_break_follows_the_token_that_passes_72() -> None:
    head = b"Content-Transfer-Encoding: 8bit\n\n"
    body = convert(head + b"a" * 71 + "é".encode() + b"b" * 10).split(b"\r\n\r\n", 1)[1]
    assert body == b"a" * 71 + b"=C3=\r\n=A9" + b"b" * 10 + b"\r\n"
    body = convert(head + b"c" * 100).split(b"\r\n\r\n", 1)[1]
    assert body == b"c" * 73 + b"=\r\n" + b"c" * 27 + b"\r\n"


def test_qp_encodes_controls_equals_and_high_octets_but_not_tab() -> None:
    head = b"Content-Transfer-Encoding: binary\n\n"
    body = convert(head + b"\x01\x1f=\x7f\xff\tx\x00y").split(b"\r\n\r\n", 1)[1]
    assert body == b"=01=1F=3D=7F=FF\tx=00y\r\n"


MULTIPART_ALTERNATIVE = (
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/alternative; boundary="b1"\n'
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"preamble \xe9\n"
    b"--b1\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n" + "plain ünïcode\n".encode() + b"--b1\n"
    b"Content-Type: text/html; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n" + "<p>html ünïcode</p>\n".encode() + b"--b1--\n"
    b"epilogue \xe9\n"
)


def test_multipart_alternative_reads_the_same_after_conversion() -> None:
    converted = assert_same_reading(MULTIPART_ALTERNATIVE)
    head = converted.split(b"\r\n\r\n", 1)[0]
    assert head.endswith(b"Content-Transfer-Encoding: 7bit")
    assert b"Content-Transfer-Encoding: 8bit" not in converted
    assert b"preamble ?\r\n" in converted and b"epilogue ?\r\n" in converted
    assert converted.count(b"Content-Transfer-Encoding: quoted-printable") == 2


NESTED = (
    b"MIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=outer\n"
    b"\n"
    b"--outer\n"
    b"Content-Type: multipart/alternative; boundary=inner\n"
    b"\n"
    b"--inner\n"
    b"Content-Type: text/plain; charset=iso-8859-1\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"caf\xe9 latin-1\n"
    b"--inner\n"
    b"Content-Type: text/plain; charset=us-ascii\n"
    b"Content-Transfer-Encoding: 7bit\n"
    b"\n"
    b"plain ascii = sign\n"
    b"--inner--\n"
    b"--outer\n"
    b"Content-Type: application/octet-stream\n"
    b"Content-Transfer-Encoding: base64\n"
    b"\n"
    b"AAEC/w==\n"
    b"--outer\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: quoted-printable\n"
    b"\n"
    b"already =C3=A9ncoded\n"
    b"--outer--\n"
)


def test_nested_multipart_reads_the_same_after_conversion() -> None:
    converted = assert_same_reading(NESTED)
    assert b"AAEC/w==\r\n" in converted  # base64 untouched
    assert b"already =C3=A9ncoded\r\n" in converted  # QP untouched
    assert b"caf=E9 latin-1\r\n" in converted
    assert b"plain ascii =3D sign\r\n" in converted  # 7bit leaf converted too (deviation)


RFC822 = (
    b"MIME-Version: 1.0\n"
    b"Content-Type: multipart/mixed; boundary=m\n"
    b"\n"
    b"--m\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"\n" + "forwarding ✓\n".encode() + b"--m\n"
    b"Content-Type: message/rfc822\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n"
    b"From: inner@example.com\n"
    b"Subject: inner\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"\n" + "inner body ü\n".encode() + b"--m--\n"
)


def test_message_rfc822_part_is_relabelled_7bit_and_its_body_converted() -> None:
    converted = assert_same_reading(RFC822)
    assert b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: 7bit\r\n\r\n" in converted
    assert b"inner body =C3=BC\r\n" in converted
    inner = email.message_from_bytes(converted, policy=email.policy.default)
    attached = next(p for p in inner.walk() if p.get_content_type() == "message/rfc822")
    payload = attached.get_payload()
    assert isinstance(payload, list)
    embedded = payload[0]
    assert isinstance(embedded, email.message.Message)
    assert embedded["Subject"] == "inner"


def test_digest_parts_default_to_message_rfc822() -> None:
    data = (
        b"Content-Type: multipart/digest; boundary=d\n\n--d\n\n"
        b"Subject: one\nContent-Transfer-Encoding: 8bit\n\n\xe9t\xe9\n--d--\n"
    )
    converted = convert(data)
    assert b"--d\r\n\r\nSubject: one\r\n" in converted
    assert b"=E9t=E9\r\n" in converted
    assert converted.isascii()


def test_non_mime_message_gets_mime_version_qp_and_an_honest_charset() -> None:
    # RFC 1428: the 8-bit text's charset is unknown; MIME's default us-ascii would be wrong.
    data = "Subject: plain\n\nbody ä\n".encode()
    converted = assert_same_reading(data)
    assert converted == (
        b"Subject: plain\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
        b"\r\nbody =C3=A4\r\n"
    )
    parsed = email.message_from_bytes(converted)
    assert parsed.get_content_charset() == "unknown-8bit"
    labelled = b"Content-Type: text/plain; charset=iso-8859-1\nSubject: x\n\n\xe9\n"
    assert b"unknown-8bit" not in convert(labelled)


def test_non_header_line_ends_the_header_block_postfix_style() -> None:
    converted = convert(b"Subject: x\nnot a header \xe9\n")
    assert converted == (
        b"Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n"
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=unknown-8bit\r\n"
        b"\r\nnot a header =E9\r\n"
    )


def test_headers_only_message_and_unterminated_body() -> None:
    assert convert(b"Subject: x") == (
        b"Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=unknown-8bit\r\n\r\n"
    )
    assert convert(b"Subject: x\n\nend \xe9 ").endswith(b"\r\n\r\nend =E9=20\r\n")


def test_raw_8bit_in_encoded_parts_is_neutralized() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=q\n\n--q\n"
        b"Content-Transfer-Encoding: quoted-printable\n\nraw \xe9 here\n--q\n"
        b"Content-Transfer-Encoding: base64\n\nAA\xffEC\n--q--\n"
    )
    converted = convert(data)
    assert b"raw =E9 here\r\n" in converted
    assert b"AA?EC\r\n" in converted


def test_8bit_header_in_a_part_is_refused_5_6_3() -> None:
    data = b"Content-Type: multipart/mixed; boundary=h\n\n--h\nSubject: \xe9\n\nx\n--h--\n"
    with pytest.raises(MessageRefused) as caught:
        convert(data)
    assert caught.value.refusal.dsn == "5.6.3"
    assert isinstance(caught.value, LocalProtocolError)


def _nested(depth: int) -> bytes:
    head = b"".join(
        b"Content-Type: multipart/mixed; boundary=n%d\n\n--n%d\n" % (i, i) for i in range(depth)
    )
    return head + b"Content-Transfer-Encoding: 8bit\n\n\xe9\n"


def test_spec_8_5_nesting_beyond_the_limit_is_refused_5_6_0() -> None:
    assert convert(_nested(3), mime_nesting_limit=3).isascii()
    with pytest.raises(MessageRefused) as caught:
        convert(_nested(4), mime_nesting_limit=3)
    assert str(caught.value.refusal) == "5.6.0 MIME nesting exceeds safety limit"
    assert caught.value.refusal.permanent


def test_default_nesting_limit_is_100() -> None:
    assert convert(_nested(100)).isascii()
    with pytest.raises(MessageRefused):
        convert(_nested(101))


def test_embedded_messages_count_towards_nesting() -> None:
    data = b"Content-Type: message/rfc822\n\n" * 3 + b"Content-Transfer-Encoding: 8bit\n\n\xe9\n"
    assert convert(data, mime_nesting_limit=3).endswith(b"=E9\r\n")
    with pytest.raises(MessageRefused):
        convert(data, mime_nesting_limit=2)


def test_boundaries_compare_on_at_most_the_length_limit() -> None:
    boundary = b"B" * 50
    data = (
        b"Content-Type: multipart/mixed; boundary=" + boundary + b"\n\n--" + boundary + b"\n"
        b"Content-Transfer-Encoding: 8bit\n\n\xe9\n--" + boundary + b"--\nepilogue\n"
    )
    assert convert(data, mime_boundary_length_limit=10) == convert(data)
    assert leaves(convert(data, mime_boundary_length_limit=10)) == leaves(data)
    # Postfix's trade-off: boundaries that differ only after the limit look the same.
    near_miss = data.replace(b"--" + boundary + b"--", b"--" + b"B" * 10 + b"X--")
    assert b"=E9\r\n--" + b"B" * 10 + b"X--" in convert(near_miss, mime_boundary_length_limit=10)


def test_a_line_that_only_starts_like_a_boundary_is_content() -> None:
    data = (
        b"Content-Type: multipart/mixed; boundary=z\n\n--z\n"
        b"Content-Transfer-Encoding: 8bit\n\n--zz is text \xe9\n--z--\n"
    )
    assert b"--zz is text =E9\r\n--z--\r\n" in convert(data)


def test_conversion_is_independent_of_chunking() -> None:
    whole = convert(RFC822)
    for cut in range(len(RFC822) + 1):
        assert convert(RFC822, cut) == whole


@FAST
@given(
    st.sampled_from([SINGLE, MULTIPART_ALTERNATIVE, NESTED, RFC822]),
    st.lists(st.integers(0, 2000), max_size=8),
    st.booleans(),
)
def test_conversion_output_is_chunking_invariant_and_7bit(
    data: bytes, cuts: list[int], crlf: bool
) -> None:
    if crlf:
        data = data.replace(b"\n", b"\r\n")
    cuts = sorted(c for c in cuts if c <= len(data))
    out = convert(data, *cuts)
    assert out == convert(data)
    assert out.isascii()


@FAST
@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
def test_any_leaf_body_round_trips_through_qp(body: bytes, cuts: list[int]) -> None:
    data = b"Content-Type: application/x-test\nContent-Transfer-Encoding: binary\n\n" + body
    cuts = sorted(c for c in cuts if c <= len(data))
    out = convert(data, *cuts)
    assert out.isascii()
    assert all(len(line) <= 76 for line in out.split(b"\r\n\r\n", 1)[1].split(b"\r\n"))
    msg = email.message_from_bytes(out, policy=email.policy.default)
    decoded = msg.get_payload(decode=True)
    assert isinstance(decoded, bytes)
    expected = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    assert decoded.replace(b"\r\n", b"\n").rstrip(b"\n") == expected.rstrip(b"\n")


def test_a_huge_line_is_converted_in_bounded_memory() -> None:
    def source() -> Iterator[bytes]:
        yield b"Content-Transfer-Encoding: 8bit\n\n"
        for _ in range(48):
            yield "é".encode() * 32768  # 3 MiB, one line

    tracemalloc.start()
    try:
        total = 0
        longest = 0
        for out in downgrade_8bit(source()):
            total += len(out)
            longest = max(longest, len(out))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 3 * 3 * 2**20  # every octet became =HH
    assert longest < 2**20
    assert peak < 2 * 2**20


def test_header_block_over_the_safety_limit_is_refused() -> None:
    data = b"X-Big: " + b"a" * (2 * 2**20) + b"\n\nbody\n"
    with pytest.raises(MessageRefused) as caught:
        convert(data)
    assert caught.value.refusal.dsn == "5.6.0"


def test_bad_limits_and_chunks_are_refused() -> None:
    with pytest.raises(LocalProtocolError, match=r"^mime_nesting_limit:"):
        downgrade_8bit([], mime_nesting_limit=0)
    with pytest.raises(LocalProtocolError, match=r"^mime_boundary_length_limit:"):
        downgrade_8bit([], mime_boundary_length_limit=-5)
    with pytest.raises(LocalProtocolError, match=r"^chunks:"):
        list(downgrade_8bit(["text"]))  # type: ignore[list-item]


def test_content_type_and_transfer_encoding_parsing() -> None:
    assert content_type(b' Multipart/Mixed; charset=x; Boundary="a \\"b\\""') == (
        "multipart/mixed",
        b'a "b"',
    )
    assert content_type(b"text/plain (comment); boundary=tok") == ("text/plain", b"tok")
    assert content_type(b"garbage") == ("text/plain", None)
    assert content_type(b"multipart/mixed") == ("multipart/mixed", None)
    assert transfer_encoding(b" 8BIT (comment)") == "8bit"
    assert transfer_encoding(b"") == ""


# Decisions before MAIL (smtpproto/engine/refusals.py), rules 8.5/8.6 and quirk Q7.


def _info(*, has_8bit: bool, header_8bit: bool = False) -> MessageInfo:
    return MessageInfo(10, 13, has_8bit, False, header_8bit, True, "text/plain", None, False)


def test_needs_downgrade_only_for_8bit_content_to_a_server_without_8bitmime() -> None:
    assert needs_downgrade(_info(has_8bit=True), False, False)
    assert not needs_downgrade(_info(has_8bit=True), True, False)
    assert not needs_downgrade(_info(has_8bit=False), False, False)
    assert not needs_downgrade(_info(has_8bit=True), False, True)


def test_disabled_conversion_refuses_8bit_content_5_6_3() -> None:
    refusal = eightbit_refusal(_info(has_8bit=True), False, True)
    assert refusal is not None and refusal.dsn == "5.6.3"
    assert "disable_mime_output_conversion" in refusal.text
    assert eightbit_refusal(_info(has_8bit=True), True, True) is None
    assert eightbit_refusal(_info(has_8bit=False), False, True) is None
    assert eightbit_refusal(_info(has_8bit=True), False, False) is None


def test_8bit_top_level_header_cannot_be_downgraded_5_6_3() -> None:
    refusal = eightbit_refusal(_info(has_8bit=True, header_8bit=True), False, False)
    assert refusal is not None and refusal.dsn == "5.6.3"


def test_scan_feeds_the_decisions() -> None:
    info = scan(SINGLE)
    assert info.has_8bit and not info.header_8bit
    assert info.transfer_encoding == "8bit" and info.mime_version
    assert needs_downgrade(info, False, False)
