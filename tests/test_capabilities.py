"""EHLO/LHLO keyword parsing: RP-21 traps, rules 4.1-4.5, and a property test."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.capabilities import Capabilities
from smtpproto.replies import Reply, ReplyParser


def caps(data: bytes, discard: tuple[str, ...] = ()) -> Capabilities:
    parser = ReplyParser()
    parser.feed(data)
    reply = parser.next_reply()
    assert reply is not None
    return Capabilities.from_reply(reply, discard=discard)


POSTFIX = (
    b"250-mx.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
    b"250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n"
    b"250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"
)


def test_postfix_ehlo_reply() -> None:
    c = caps(POSTFIX)
    assert c.domain == "mx.example.com"
    assert c.pipelining and c.starttls and c.enhancedstatuscodes and c.eightbitmime
    assert c.dsn and c.smtputf8 and c.chunking and not c.binarymime
    assert c.size == 10240000
    assert c.auth_mechanisms == frozenset({"PLAIN", "LOGIN"})
    assert "VRFY" in c and "etrn" in c and "XCLIENT" not in c
    assert c.keywords["AUTH"] == ("PLAIN", "LOGIN")


# -- RP-21 -----------------------------------------------------------------------------------


def test_rp21_first_line_is_the_domain_never_a_capability() -> None:
    c = caps(b"250-STARTTLS\r\n250 SIZE 10\r\n")
    assert c.domain == "STARTTLS"
    assert not c.starttls
    assert c.size == 10


def test_rp21_greeting_text_on_the_first_line_is_ignored() -> None:
    c = caps(b"250-mx.example Hello PIPELINING STARTTLS\r\n250 8BITMIME\r\n")
    assert not c.pipelining and not c.starttls and c.eightbitmime


@pytest.mark.parametrize("line", [b"XSTARTTLS", b"X-STARTTLS-NOT", b"STARTTLSX", b"STARTTLS-X"])
def test_rp21_substring_traps_do_not_offer_starttls(line: bytes) -> None:
    c = caps(b"250-mx\r\n250-" + line + b"\r\n250 HELP\r\n")
    assert not c.starttls


def test_rp21_auth_mechanism_names_match_whole() -> None:
    c = caps(b"250-mx\r\n250 AUTH PLAINX\r\n")
    assert "PLAIN" not in c.auth_mechanisms
    assert c.auth_mechanisms == frozenset({"PLAINX"})


def test_rp21_keywords_are_case_insensitive() -> None:
    c = caps(b"250-mx\r\n250-starttls\r\n250 Pipelining\r\n")
    assert c.starttls and c.pipelining
    assert "STARTTLS" in c and "StartTLS" in c
    assert set(c.keywords) == {"STARTTLS", "PIPELINING"}


def test_rp21_old_auth_equals_form_keeps_every_mechanism() -> None:
    c = caps(b"250-mx\r\n250 AUTH=PLAIN LOGIN\r\n")
    assert c.auth_mechanisms == frozenset({"PLAIN", "LOGIN"})


def test_several_auth_lines_are_merged() -> None:
    c = caps(b"250-mx\r\n250-AUTH login\r\n250-AUTH CRAM-MD5 PLAIN\r\n250 AUTH=LOGIN XOAUTH2\r\n")
    assert c.auth_mechanisms == frozenset({"LOGIN", "CRAM-MD5", "PLAIN", "XOAUTH2"})
    assert c.keywords["AUTH"] == ("login", "CRAM-MD5", "PLAIN", "LOGIN", "XOAUTH2")


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"SIZE", 0),
        (b"SIZE 0", 0),
        (b"SIZE -1", 0),
        (b"SIZE abc", 0),
        (b"SIZE 99999999999999999999", 99999999999999999999),
        (b"SIZE 999999999999999999999", 0),
        (b"SIZE " + b"9" * 5000, 0),
        (b"SIZE 1e6", 0),
        (b"SIZE \xd9\xa2", 0),  # an Arabic-Indic digit: str.isdigit() would say yes
        (b"SIZE 52428800", 52428800),
        (b"SIZE\t1000", 1000),
    ],
)
def test_rp21_size_values_never_crash(line: bytes, size: int) -> None:
    # Built directly: a 5000-digit line is past the parser's line limit, not past a Reply's.
    reply = Reply(250, ("mx", line.decode("utf-8")))
    assert Capabilities.from_reply(reply).size == size


def test_size_absent_is_none() -> None:
    assert caps(b"250-mx\r\n250 PIPELINING\r\n").size is None


def test_rp21_duplicate_keywords() -> None:
    c = caps(b"250-mx\r\n250-PIPELINING\r\n250-PIPELINING\r\n250-SIZE 10\r\n250 SIZE 20\r\n")
    assert c.pipelining
    assert c.keywords["PIPELINING"] == ()
    assert c.size == 20  # the last SIZE line wins, as in Postfix (rule 4.3)


def test_rp21_leading_whitespace_is_skipped() -> None:
    c = caps(b"250-mx\r\n250-  STARTTLS\r\n250 \tPIPELINING\r\n")
    assert c.starttls and c.pipelining


def test_rp21_line_with_control_character_is_ignored() -> None:
    # The parser already refuses NUL on the wire (RP-14); a Reply built another way may hold it.
    c = Capabilities.from_reply(Reply(250, ("mx", "AUTH\x00", "AUTH\x1bPLAIN", "PIPELINING")))
    assert "AUTH" not in c and c.pipelining


def test_line_whose_keyword_is_not_an_ehlo_keyword_is_ignored() -> None:
    c = caps(b"250-mx\r\n250-!!!\r\n250-=PLAIN\r\n250-\xc3\xa9T\xc3\xa9\r\n250 DSN\r\n")
    assert set(c.keywords) == {"DSN"}


def test_unknown_keywords_are_kept() -> None:
    c = caps(b"250-mx\r\n250-X-EXPS GSSAPI NTLM\r\n250 XFORWARD NAME ADDR proto HELO\r\n")
    assert c.keywords["X-EXPS"] == ("GSSAPI", "NTLM")
    assert c.xforward == frozenset({"NAME", "ADDR", "PROTO", "HELO"})


def test_smtp_sink_reply_ends_with_an_empty_line() -> None:
    # DESIGN.md: smtp-sink ends its EHLO reply with an empty "250 " line.
    c = caps(b"250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 \r\n")
    assert c.domain == "sink.example"
    assert set(c.keywords) == {"PIPELINING", "8BITMIME"}


def test_single_line_reply_has_no_keywords() -> None:
    c = caps(b"250 mx.example\r\n")
    assert c.domain == "mx.example" and not c.keywords
    assert Capabilities.from_reply(Reply(250, ("",))).domain == ""


# -- discard (rule 4.5) ----------------------------------------------------------------------


def test_discard_removes_keywords_case_insensitively() -> None:
    c = caps(POSTFIX, discard=("pipelining", "Auth", "STARTTLS", "silent-discard", "NOSUCH"))
    assert not c.pipelining and not c.starttls and not c.auth_mechanisms
    assert "AUTH" not in c and c.dsn


def test_discard_must_be_names() -> None:
    reply = Reply(250, ("mx", "DSN"))
    with pytest.raises(LocalProtocolError, match="discard"):
        Capabilities.from_reply(reply, discard="DSN")
    with pytest.raises(LocalProtocolError, match="discard"):
        Capabilities.from_reply(reply, discard=[1])  # type: ignore[list-item]


def test_only_a_positive_reply_has_capabilities() -> None:
    with pytest.raises(LocalProtocolError, match="reply"):
        Capabilities.from_reply(Reply(502, ("5.5.1 no EHLO",)))


# -- the value type --------------------------------------------------------------------------


def test_capabilities_are_immutable_and_comparable() -> None:
    c = caps(POSTFIX)
    with pytest.raises(TypeError):
        c.keywords["X"] = ()  # type: ignore[index]
    assert c == caps(POSTFIX)
    assert hash(c) == hash(caps(POSTFIX))


def test_direct_construction_normalizes_and_validates() -> None:
    c = Capabilities("mx", {"pipelining": (), "SIZE": ("100",)})
    assert c.pipelining and c.size == 100
    with pytest.raises(LocalProtocolError, match="keywords"):
        Capabilities("mx", {"BAD KEY": ()})
    with pytest.raises(LocalProtocolError, match="keywords"):
        Capabilities("mx", {"SIZE": ["10"]})  # type: ignore[dict-item]


# -- property --------------------------------------------------------------------------------

keywords = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9-]{0,12}", fullmatch=True)
parameters = st.lists(st.from_regex(r"[!-~]{1,8}", fullmatch=True), max_size=3)


@settings(max_examples=200, deadline=None)
@given(
    st.from_regex(r"[a-z0-9.-]{1,20}", fullmatch=True),
    st.lists(st.tuples(keywords, parameters), max_size=8),
)
def test_property_advertised_keywords_are_found_whole(
    domain: str, advertised: list[tuple[str, list[str]]]
) -> None:
    lines = [domain] + [" ".join([k, *p]) for k, p in advertised]
    wire = b"".join(
        b"250" + (b" " if i == len(lines) - 1 else b"-") + line.encode() + b"\r\n"
        for i, line in enumerate(lines)
    )
    c = caps(wire)
    assert c.domain == domain
    assert set(c.keywords) == {k.upper().partition("=")[0] for k, _ in advertised}
    for keyword, params in advertised:
        assert keyword in c
        assert set(params) <= set(c.keywords[keyword.upper()])


def test_a_repeated_ehlo_reply_is_parsed_once_per_discard_set() -> None:
    # Capabilities are immutable, so the same reply (every connection to one server) may
    # share one; the discarded keywords are part of what was parsed.
    reply = Reply(250, ("mx.example", "PIPELINING", "SIZE 1000", "DSN"))
    first = Capabilities.from_reply(reply)
    assert Capabilities.from_reply(Reply(250, reply.lines)) is first
    without = Capabilities.from_reply(reply, discard=["dsn"])
    assert without is not first and not without.dsn and first.dsn
    assert Capabilities.from_reply(reply, discard=("DSN",)) is without


def test_a_long_ehlo_reply_is_not_kept() -> None:
    # Bounded: a peer cannot make the library hold its large replies.
    reply = Reply(250, ("mx.example", *(f"X-KEYWORD-{n} {'a' * 100}" for n in range(40))))
    assert Capabilities.from_reply(reply) == Capabilities.from_reply(reply)
    assert Capabilities.from_reply(reply) is not Capabilities.from_reply(reply)
