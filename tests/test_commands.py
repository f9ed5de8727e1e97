"""Command encoders: CV-02/CV-03 injection cases, rules 6.1-6.5 and 11.5 vectors, RFC
examples, and a round-trip property through a small MAIL/RCPT line parser."""

from __future__ import annotations

import base64
import dataclasses
import re
import typing
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto import commands as commands_module
from smtpproto.commands import (
    MAX_COMMAND_LINE,
    MAX_EXTENDED_COMMAND_LINE,
    Auth,
    AuthResponse,
    Bdat,
    BodyCommand,
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
    quote_mailbox,
    xtext,
)

# -- CV-02: control characters in every argument ---------------------------------------------

INJECTIONS = [
    "a@b\r\nRCPT TO:<x@evil>",
    "a@b\rRCPT TO:<x@evil>",
    "a@b\nRCPT TO:<x@evil>",
    "a@b\x00",
    "a@b\x7f",
    "a@b\t",
    "a@b\x1b[31m",
]

INJECTION_POINTS: list[tuple[str, Callable[[str], object]]] = [
    ("name", Ehlo),
    ("name", Helo),
    ("name", Lhlo),
    ("sender", Mail),
    ("sender", lambda v: Mail(v, quote=False)),
    ("recipient", Rcpt),
    ("recipient", lambda v: Rcpt(v, quote=False)),
    ("envid", lambda v: Mail("s@x", envid=v)),
    ("auth", lambda v: Mail("s@x", auth=v)),
    ("body", lambda v: Mail("s@x", body=v)),  # type: ignore[arg-type]
    ("ret", lambda v: Mail("s@x", ret=v)),  # type: ignore[arg-type]
    ("size", lambda v: Mail("s@x", size=v)),  # type: ignore[arg-type]
    ("notify", lambda v: Rcpt("r@x", notify=(v,))),
    ("orcpt", lambda v: Rcpt("r@x", orcpt=v)),
    ("orcpt", lambda v: Rcpt("r@x", orcpt="rfc822;" + v)),
    ("mechanism", Auth),
    ("attributes", lambda v: Xforward(((v, "x"),))),
    ("attributes[NAME]", lambda v: Xforward((("NAME", v),))),
    ("size", lambda v: Bdat(v)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(("argument", "build"), INJECTION_POINTS)
def test_cv02_control_characters_in_any_argument_are_refused(
    argument: str, build: Callable[[str], object], value: str
) -> None:
    with pytest.raises(LocalProtocolError, match=re.escape(argument)):
        build(value)


def test_cv02_size_must_be_an_int_not_a_str_or_bool() -> None:
    with pytest.raises(LocalProtocolError, match="size"):
        Mail("s@x", size="10\r\nRCPT TO:<x>")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="size"):
        Mail("s@x", size=True)
    with pytest.raises(LocalProtocolError, match="size"):
        Mail("s@x", size=-1)
    with pytest.raises(LocalProtocolError, match="size"):
        Mail("s@x", size=10**20)
    assert Mail("s@x", size=0).encode() == b"MAIL FROM:<s@x> SIZE=0\r\n"


def test_cv02_initial_response_and_sasl_data_must_be_bytes() -> None:
    with pytest.raises(LocalProtocolError, match="initial_response"):
        Auth("PLAIN", "\x00u\x00p\r\n")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="data"):
        AuthResponse("x\r\nQUIT")  # type: ignore[arg-type]


def test_cv02_raw_bytes_in_a_sasl_response_are_base64_so_never_reach_the_wire() -> None:
    assert AuthResponse(b"a\r\nQUIT\r\n").encode() == base64.b64encode(b"a\r\nQUIT\r\n") + b"\r\n"


def test_cv02_flags_must_be_bools() -> None:
    with pytest.raises(LocalProtocolError, match="smtputf8"):
        Mail("s@x", smtputf8=1)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="quote"):
        Rcpt("r@x", quote="no")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="last"):
        Bdat(1, last=1)  # type: ignore[arg-type]


def test_cv02_a_refused_command_leaves_nothing_behind() -> None:
    # Commands are values: a refused one never exists, the next valid one is unaffected.
    with pytest.raises(LocalProtocolError):
        Rcpt("a@b\r\nDATA")
    assert Rcpt("a@b").encode() == b"RCPT TO:<a@b>\r\n"


def test_cv02_closing_angle_bracket_cannot_add_parameters() -> None:
    with pytest.raises(LocalProtocolError, match="sender"):
        Mail("a@x> NOTIFY=NEVER")
    with pytest.raises(LocalProtocolError, match="recipient"):
        Rcpt("a@x> NOTIFY=NEVER", quote=False)
    with pytest.raises(LocalProtocolError, match="recipient"):
        Rcpt("a@[1.2.3.4]] x")


def test_cv02_ehlo_name_must_be_a_domain_or_literal() -> None:
    for name in ("", "a b", "a..b", "-a", "a>"):
        with pytest.raises(LocalProtocolError, match="name"):
            Ehlo(name)
    assert Ehlo("[192.0.2.1]").encode() == b"EHLO [192.0.2.1]\r\n"
    assert Ehlo("[IPv6:2001:db8::1]").encode() == b"EHLO [IPv6:2001:db8::1]\r\n"
    assert Helo("my_host.example").encode() == b"HELO my_host.example\r\n"
    assert Lhlo("client.example").encode() == b"LHLO client.example\r\n"


# -- CV-03: TAB and space ---------------------------------------------------------------------


def test_cv03_tab_in_an_address_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="sender"):
        Mail("a\tb@x")
    with pytest.raises(LocalProtocolError, match="recipient"):
        Rcpt("a\tb@x")


def test_cv03_space_in_a_local_part_is_quoted_never_bare() -> None:
    assert Rcpt("a b@x").encode() == b'RCPT TO:<"a b"@x>\r\n'
    with pytest.raises(LocalProtocolError, match="quote=False"):
        Rcpt("a b@x", quote=False)


# -- rule 6.5: quoting ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "quoted"),
    [
        ("a b@x", '"a b"@x'),
        ("a@b@x", '"a@b"@x'),
        (".a@x", '".a"@x'),
        ("@x", '""@x'),
        ("a.b@x", "a.b@x"),
        ("", ""),
        ("a..b@x", '"a..b"@x'),
        ("a.@x", '"a."@x'),
        ('a"b@x', '"a\\"b"@x'),
        ("a\\b@x", '"a\\\\b"@x'),
        ("a,b@x", '"a,b"@x'),
        ("postmaster", "postmaster"),
        ("a b", '"a b"'),
        ("jöe@x", "jöe@x"),
        ("!#$%&'*+-/=?^_`{|}~@x", "!#$%&'*+-/=?^_`{|}~@x"),
    ],
)
def test_spec_6_5_quoting_table(address: str, quoted: str) -> None:
    assert quote_mailbox(address) == quoted


def test_null_sender_is_angle_brackets() -> None:
    assert Mail("").encode() == b"MAIL FROM:<>\r\n"
    assert Mail("", quote=False).encode() == b"MAIL FROM:<>\r\n"


def test_empty_recipient_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="recipient"):
        Rcpt("")


def test_quote_false_sends_a_valid_address_as_given() -> None:
    assert Mail('"a b"@x', quote=False).encode() == b'MAIL FROM:<"a b"@x>\r\n'
    assert Mail('"a b"@x').encode() == b'MAIL FROM:<"\\"a b\\""@x>\r\n'


def test_domain_is_checked() -> None:
    for address in ("a@", "a@x..y", "a@-x", "a@x y", "a@[x"):
        with pytest.raises(LocalProtocolError, match="not a valid mailbox"):
            Rcpt(address)
    assert Rcpt("a@[192.0.2.1]").encode() == b"RCPT TO:<a@[192.0.2.1]>\r\n"


# -- SMTPUTF8 ---------------------------------------------------------------------------------


def test_non_ascii_sender_needs_smtputf8() -> None:
    with pytest.raises(LocalProtocolError, match="smtputf8"):
        Mail("jöe@bücher.example")
    line = Mail("jöe@bücher.example", smtputf8=True).encode()
    assert line == "MAIL FROM:<jöe@bücher.example> SMTPUTF8\r\n".encode()


def test_non_ascii_recipient_is_left_to_the_connection() -> None:
    assert Rcpt("jöe@bücher.example").encode() == "RCPT TO:<jöe@bücher.example>\r\n".encode()


# -- rules 6.1-6.4: parameters ----------------------------------------------------------------


def test_spec_6_1_mail_vector() -> None:
    mail = Mail("s@x", size=123, body="8BITMIME", envid="a+b=c")
    assert mail.encode() == b"MAIL FROM:<s@x> SIZE=123 BODY=8BITMIME ENVID=a+2Bb+3Dc\r\n"


def test_spec_6_1_parameter_order() -> None:
    mail = Mail("s@x", auth="<>", smtputf8=True, ret="HDRS", envid="e", body="7BIT", size=1)
    line = b"MAIL FROM:<s@x> SIZE=1 BODY=7BIT ENVID=e RET=HDRS SMTPUTF8 AUTH=<>\r\n"
    assert mail.encode() == line


def test_mail_auth_parameter_is_xtext() -> None:
    assert Mail("s@x", auth="").encode() == b"MAIL FROM:<s@x> AUTH=<>\r\n"
    assert Mail("s@x", auth="a+b@x").encode() == b"MAIL FROM:<s@x> AUTH=a+2Bb@x\r\n"


def test_mail_parameter_values_are_checked() -> None:
    with pytest.raises(LocalProtocolError, match="body"):
        Mail("s@x", body="8bitmime")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="ret"):
        Mail("s@x", ret="ALL")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="envid"):
        Mail("s@x", envid="")
    with pytest.raises(LocalProtocolError, match="envid"):
        Mail("s@x", envid="e" * 101)
    with pytest.raises(LocalProtocolError, match="envid"):
        Mail("s@x", envid="é")


def test_spec_6_2_notify_order_and_never() -> None:
    rcpt = Rcpt("r@x", notify=("delay", "Failure", "SUCCESS"))
    assert rcpt.encode() == b"RCPT TO:<r@x> NOTIFY=SUCCESS,FAILURE,DELAY\r\n"
    assert Rcpt("r@x", notify=("never",)).encode() == b"RCPT TO:<r@x> NOTIFY=NEVER\r\n"
    for bad in [(), ("NEVER", "DELAY"), ("DELAY", "delay"), ("SOMETIMES",)]:
        with pytest.raises(LocalProtocolError, match="notify"):
            Rcpt("r@x", notify=bad)
    with pytest.raises(LocalProtocolError, match="notify"):
        Rcpt("r@x", notify=["NEVER"])  # type: ignore[arg-type]


def test_spec_6_3_orcpt_encoding() -> None:
    assert Rcpt("r@x", orcpt="rfc822;a+b@x").encode() == b"RCPT TO:<r@x> ORCPT=rfc822;a+2Bb@x\r\n"
    assert Rcpt("r@x", orcpt="a=b@x").encode() == b"RCPT TO:<r@x> ORCPT=rfc822;a+3Db@x\r\n"
    line = Rcpt("r@x", orcpt="jö e@x").encode()
    assert line == b"RCPT TO:<r@x> ORCPT=utf-8;j\\x{F6}\\x{20}e@x\r\n"
    line = Rcpt("r@x", orcpt="utf-8;a+b=c\\d").encode()
    assert line == b"RCPT TO:<r@x> ORCPT=utf-8;a\\x{2B}b\\x{3D}c\\x{5C}d\r\n"
    with pytest.raises(LocalProtocolError, match="orcpt"):
        Rcpt("r@x", orcpt="rfc822;jöe@x")
    with pytest.raises(LocalProtocolError, match="orcpt"):
        Rcpt("r@x", orcpt="rfc822;")
    with pytest.raises(LocalProtocolError, match="orcpt"):
        Rcpt("r@x", orcpt="bad type;a@x")


def test_spec_6_2_orcpt_comes_before_notify() -> None:
    rcpt = Rcpt("r@x", notify=("FAILURE",), orcpt="rfc822;r@x")
    assert rcpt.encode() == b"RCPT TO:<r@x> ORCPT=rfc822;r@x NOTIFY=FAILURE\r\n"


@pytest.mark.parametrize(
    ("value", "specials", "encoded"),
    [
        ("a+b=c", "+=", "a+2Bb+3Dc"),
        ("a+b=c", "", "a+2Bb=c"),
        ("a b", "+=", "a+20b"),
        ("é", "+=", "+C3+A9"),
        ("~!", "+=", "~!"),
        ("", "+=", ""),
    ],
)
def test_spec_6_4_xtext(value: str, specials: str, encoded: str) -> None:
    assert xtext(value, specials) == encoded


# -- RFC examples -----------------------------------------------------------------------------


def test_rfc5321_d1_commands() -> None:
    assert Ehlo("bar.com").encode() == b"EHLO bar.com\r\n"
    assert Mail("Smith@bar.com").encode() == b"MAIL FROM:<Smith@bar.com>\r\n"
    assert Rcpt("Jones@foo.com").encode() == b"RCPT TO:<Jones@foo.com>\r\n"
    assert Rcpt("Green@foo.com").encode() == b"RCPT TO:<Green@foo.com>\r\n"
    assert Data().encode() == b"DATA\r\n"
    assert Quit().encode() == b"QUIT\r\n"


def test_rfc1870_size_example() -> None:
    line = Mail("ned@thor.innosoft.com", size=500000).encode()
    assert line == b"MAIL FROM:<ned@thor.innosoft.com> SIZE=500000\r\n"


def test_rfc3461_examples_in_postfix_parameter_order() -> None:
    # RFC 3461 6.1 shows RET before ENVID and NOTIFY before ORCPT; Postfix (rules 6.1, 6.2)
    # sends ENVID before RET and ORCPT before NOTIFY. Servers accept any order.
    mail = Mail("Alice@Pure-Heart.ORG", ret="HDRS", envid="QQ314159")
    assert mail.encode() == b"MAIL FROM:<Alice@Pure-Heart.ORG> ENVID=QQ314159 RET=HDRS\r\n"
    rcpt = Rcpt(
        "Bob@Big-Bucks.COM", notify=("SUCCESS", "FAILURE"), orcpt="rfc822;Bob@Big-Bucks.COM"
    )
    line = b"RCPT TO:<Bob@Big-Bucks.COM> ORCPT=rfc822;Bob@Big-Bucks.COM NOTIFY=SUCCESS,FAILURE\r\n"
    assert rcpt.encode() == line


def test_bare_commands() -> None:
    commands = [StartTLS(), Noop(), Rset(), Quit(), Data()]
    assert [c.encode() for c in commands] == [
        b"STARTTLS\r\n",
        b"NOOP\r\n",
        b"RSET\r\n",
        b"QUIT\r\n",
        b"DATA\r\n",
    ]
    assert Quit() == Quit()
    assert Quit() not in {Rset(), Noop()}


def test_bdat_header_line() -> None:
    assert Bdat(1000).encode() == b"BDAT 1000\r\n"
    assert Bdat(0, last=True).encode() == b"BDAT 0 LAST\r\n"


def test_xforward_line() -> None:
    command = Xforward(
        (("name", "spike.porcupine.org"), ("ADDR", "168.100.189.2"), ("proto", "ESMTP"))
    )
    line = b"XFORWARD NAME=spike.porcupine.org ADDR=168.100.189.2 PROTO=ESMTP\r\n"
    assert command.encode() == line
    assert Xforward((("HELO", "a=b+c d"),)).encode() == b"XFORWARD HELO=a=b+2Bc+20d\r\n"
    for bad in [(), (("NAME", "a"), ("name", "b")), (("COLOR", "x"),), (("NAME", ""),), ("NAME",)]:
        with pytest.raises(LocalProtocolError, match="attributes"):
            Xforward(bad)  # type: ignore[arg-type]


# -- line lengths -----------------------------------------------------------------------------


def test_command_line_over_512_octets_is_refused() -> None:
    name = "a" * 63 + ("." + "a" * 63) * 7 + ".example"
    with pytest.raises(LocalProtocolError, match="512-octet"):
        Ehlo(name)


def test_mail_and_rcpt_may_exceed_512_but_stay_bounded() -> None:
    long_local = "l" * 600
    assert len(Rcpt(f"{long_local}@x").encode()) > MAX_COMMAND_LINE
    with pytest.raises(LocalProtocolError, match="2048-octet"):
        Rcpt("l" * 2100 + "@x")
    with pytest.raises(LocalProtocolError, match="2048-octet"):
        Xforward((("NAME", "n" * 2100),))
    with pytest.raises(LocalProtocolError, match="2048-octet"):
        Mail("s@x", auth="a" * 2100)


# -- AUTH (RFC 4954 4, rule 11.5) ------------------------------------------------------------


def test_auth_initial_response_encoding() -> None:
    assert Auth("plain", b"\x00u\x00p").encode() == b"AUTH PLAIN AHUAcA==\r\n"
    assert Auth("EXTERNAL", b"").encode() == b"AUTH EXTERNAL =\r\n"
    assert Auth("LOGIN").encode() == b"AUTH LOGIN\r\n"
    assert Auth("scram-sha-256").mechanism == "SCRAM-SHA-256"


def test_auth_mechanism_name_is_checked() -> None:
    for bad in ("", "PLAIN LOGIN", "A" * 21, "PLAIN=", "PLÄIN"):
        with pytest.raises(LocalProtocolError, match="mechanism"):
            Auth(bad)


def test_auth_initial_response_too_long_is_refused_and_fits_says_so() -> None:
    # Rule 11.5: len("PLAIN") + len(base64) + 8 <= 512; 369 raw octets are 492 in base64.
    fitting = b"x" * 369
    assert Auth.fits("PLAIN", fitting)
    assert len(Auth("PLAIN", fitting).encode()) == 505
    too_long = b"x" * 375  # 500 octets of base64
    assert not Auth.fits("PLAIN", too_long)
    with pytest.raises(LocalProtocolError, match="initial_response"):
        Auth("PLAIN", too_long)
    assert Auth.fits("PLAIN", None)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["PLAIN", "X", "SCRAM-SHA-256", "A" * 20]), st.integers(0, 600))
def test_property_fits_agrees_with_construction(mechanism: str, size: int) -> None:
    response = b"r" * size
    if Auth.fits(mechanism, response):
        assert len(Auth(mechanism, response).encode()) <= MAX_COMMAND_LINE
    else:
        with pytest.raises(LocalProtocolError):
            Auth(mechanism, response)


def test_auth_response_lines() -> None:
    assert AuthResponse(None).encode() == b"*\r\n"
    assert AuthResponse(b"").encode() == b"\r\n"
    assert AuthResponse(b"user").encode() == b"dXNlcg==\r\n"
    # RFC 4954 4: responses are not bound by the 512-octet command limit.
    assert len(AuthResponse(b"t" * 9000).encode()) == 12002


def test_repr_never_shows_credentials() -> None:
    secret = b"\x00user\x00hunter2"
    for value in (Auth("PLAIN", secret), AuthResponse(secret), AuthResponse(b"hunter2")):
        shown = repr(value) + str(value)
        assert "hunter2" not in shown
        assert base64.b64encode(secret).decode() not in shown
        assert "redacted" in shown
    assert repr(AuthResponse(None)) == "AuthResponse(data=None)"
    assert repr(Auth("LOGIN")) == "Auth(mechanism='LOGIN', initial_response=None)"


# -- message content commands ----------------------------------------------------------------


def test_message_content_commands() -> None:
    assert MessageData(b"Subject: x\r\n\r\nbody\r\n").data.startswith(b"Subject")
    assert EndOfData() == EndOfData()
    with pytest.raises(LocalProtocolError, match="data"):
        MessageData("text")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="data"):
        MessageData(bytearray(b"x"))  # type: ignore[arg-type]


def test_command_union_holds_the_encodable_commands_only() -> None:
    members = set(typing.get_args(Command))
    assert {Ehlo, Helo, Lhlo, StartTLS, Auth, AuthResponse, Mail, Rcpt, Data, Bdat} <= members
    assert {Rset, Noop, Quit, Xforward} <= members
    assert all(callable(getattr(member, "encode", None)) for member in members)
    assert set(typing.get_args(BodyCommand)) == {MessageData, EndOfData}


def test_commands_are_frozen() -> None:
    mail = Mail("s@x")
    with pytest.raises(AttributeError):
        mail.sender = "evil@x"  # type: ignore[misc]


# -- property: generated envelopes round-trip through a MAIL/RCPT line parser ----------------

# RFC 5321 4.1.2 as a server reads it: a Path is "<" [quoted-string or dot-string] "@" ... ">";
# a quoted local part may hold ">" and " ", so the end of the path is found after it.
_PATH = re.compile(
    rb'(MAIL FROM|RCPT TO):<((?:"(?:[^"\\]|\\.)*"|[^<>" ])*(?:@[^<> ]*)?)>((?: [^ ]+)*)\r\n'
)


def _unxtext(value: str) -> str:
    return (
        re.sub(r"\+([0-9A-F]{2})", lambda m: chr(int(m[1], 16)), value).encode("latin-1").decode()
    )


def _unquote(mailbox: str) -> str:
    local, at, domain = mailbox.rpartition("@")
    if not at:
        local, domain = mailbox, ""
    if local.startswith('"'):
        local = re.sub(r"\\(.)", r"\1", local[1:-1])
    return f"{local}{at}{domain}"


def parse_line(line: bytes) -> tuple[str, str, dict[str, str | None]]:
    """A server's reading of a MAIL or RCPT line: verb, unquoted address, parameters."""
    assert line.count(b"\r\n") == 1 and line.endswith(b"\r\n")
    match = _PATH.fullmatch(line)
    assert match is not None, line
    verb, path, rest = match[1].decode(), match[2].decode(), match[3].decode()
    params: dict[str, str | None] = {}
    for word in rest.split():
        key, eq, value = word.partition("=")
        assert key not in params
        params[key] = value if eq else None
    return verb, _unquote(path), params


local_parts = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=0, max_size=20
)
labels = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)
printable = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(
    sender=st.one_of(st.just(""), addresses),
    size=st.none() | st.integers(0, 10**19),
    body=st.sampled_from([None, "7BIT", "8BITMIME", "BINARYMIME"]),
    ret=st.sampled_from([None, "FULL", "HDRS"]),
    envid=st.none() | printable,
    smtputf8=st.booleans(),
)
def test_property_mail_round_trip(
    sender: str,
    size: int | None,
    body: typing.Literal["7BIT", "8BITMIME", "BINARYMIME"] | None,
    ret: typing.Literal["FULL", "HDRS"] | None,
    envid: str | None,
    smtputf8: bool,
) -> None:
    line = Mail(sender, size=size, body=body, ret=ret, envid=envid, smtputf8=smtputf8).encode()
    verb, address, params = parse_line(line)
    assert (verb, address) == ("MAIL FROM", sender)
    assert params.get("SIZE") == (None if size is None else str(size))
    assert params.get("BODY") == body
    assert params.get("RET") == ret
    assert (None if envid is None else _unxtext(params["ENVID"] or "")) == envid
    assert ("SMTPUTF8" in params) == smtputf8


@settings(max_examples=200, deadline=None)
@given(
    recipient=addresses,
    notify=st.none()
    | st.just(("NEVER",))
    | st.sets(st.sampled_from(["SUCCESS", "FAILURE", "DELAY"]), min_size=1).map(tuple),
    orcpt=st.none() | printable.filter(lambda s: ";" not in s),
)
def test_property_rcpt_round_trip(
    recipient: str, notify: tuple[str, ...] | None, orcpt: str | None
) -> None:
    line = Rcpt(recipient, notify=notify, orcpt=orcpt).encode()
    verb, address, params = parse_line(line)
    assert (verb, address) == ("RCPT TO", recipient)
    if notify is None:
        assert "NOTIFY" not in params
    else:
        assert set((params["NOTIFY"] or "").split(",")) == set(notify)
    if orcpt is None:
        assert "ORCPT" not in params
    else:
        assert _unxtext(params["ORCPT"] or "") == "rfc822;" + orcpt
    assert len(line) <= MAX_EXTENDED_COMMAND_LINE


@settings(max_examples=200, deadline=None)
@given(
    size=st.none() | st.integers(0, 10**9),
    new=st.none() | st.integers(0, 10**9),
    body=st.sampled_from([None, "7BIT", "8BITMIME"]),
    ret=st.sampled_from([None, "FULL", "HDRS"]),
    envid=st.none() | st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1),
    utf8=st.booleans(),
    auth=st.sampled_from([None, "<>", "a@b.example"]),
)
def test_mail_resized_is_replace_with_a_new_size(
    size: int | None,
    new: int | None,
    body: typing.Any,
    ret: typing.Any,
    envid: str | None,
    utf8: bool,
    auth: str | None,
) -> None:
    # The held session's shortcut (`Mail._resized`) must send exactly what a checked MAIL with
    # that size sends, and keep every other field.
    sender = "\u00e4@b.example" if utf8 else "a@b.example"
    mail = Mail(sender, size=size, body=body, ret=ret, envid=envid, smtputf8=utf8, auth=auth)
    resized = mail._resized(new)
    expected = dataclasses.replace(mail, size=new)
    assert resized == expected
    assert resized.encode() == expected.encode()
    assert repr(resized) == repr(expected)
    back = resized._resized(size)
    assert back == mail and back.encode() == mail.encode()


def test_mail_resized_copies_every_other_field() -> None:
    # A field added to Mail must be copied by _resized too.
    names = {f.name for f in dataclasses.fields(Mail)} - {"size", "_line", "_tail"}
    assert set(commands_module._MAIL_KEPT) == names


def test_mail_resized_checks_the_size() -> None:
    with pytest.raises(LocalProtocolError):
        Mail("a@b.example")._resized(-1)
