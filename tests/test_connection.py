"""`ClientConnection`: command order, pipelining, replies, STARTTLS, AUTH, LMTP, content.

Case ids (RP-*, CV-*, NS-*, AU-*) are those of docs/reference/security-cases.md, and
``rule 7.3`` etc. those of docs/reference/client-rules.md.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.connection import drain, ehlo_reply, feed, session

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.commands import (
    Auth,
    AuthResponse,
    Bdat,
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
)
from smtpproto.connection import (
    NEED_DATA,
    REPLY_TRANSITIONS,
    SEND_TRANSITIONS,
    ClientConnection,
    State,
    format_transitions,
)
from smtpproto.events import (
    CommandReply,
    ConnectionClosed,
    Event,
    Greeting,
    RecipientReply,
    ServerClosing,
)
from smtpproto.replies import ReplyLimits

ALL_COMMANDS: list[Command | MessageData | EndOfData] = [
    Ehlo("c.example"),
    Helo("c.example"),
    Lhlo("c.example"),
    StartTLS(),
    Auth("PLAIN", b"\0u\0p"),
    Mail("a@x.example"),
    Rcpt("b@y.example"),
    Data(),
    Bdat(1),
    Rset(),
    Noop(),
    Quit(),
    Xforward((("NAME", "host"),)),
    MessageData(b"x"),
    EndOfData(),
]


def _codes(events: list[Event]) -> list[int]:
    return [e.reply.code for e in events if not isinstance(e, ConnectionClosed)]


def _transaction(conn: ClientConnection, *recipients: str) -> bytes:
    out = conn.send(Mail("a@x.example"))
    for r in recipients or ("b@y.example",):
        out += conn.send(Rcpt(r))
    return out + conn.send(Data())


# -- greeting (NS-16) -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: type(c).__name__)
def test_ns16_nothing_may_be_sent_before_the_greeting(command: Command) -> None:
    conn = ClientConnection()
    with pytest.raises(LocalProtocolError, match="before the greeting"):
        conn.send(command)
    feed(conn, b"220-mx.example ESMTP\r\n")  # half a greeting is not a greeting
    with pytest.raises(LocalProtocolError, match="before the greeting"):
        conn.send(command)


def test_ns16_greeting_220_opens_the_session() -> None:
    conn = ClientConnection()
    assert conn.next_event() is NEED_DATA
    events = feed(conn, b"220-mx.example ESMTP\r\n220 ready\r\n")
    assert events == [Greeting(events[0].reply)]  # type: ignore[union-attr]
    assert conn.state is State.GREETED
    assert conn.send(Ehlo("c.example")) == b"EHLO c.example\r\n"


@pytest.mark.parametrize("code", [421, 554, 500, 530, 354])
def test_ns16_refusing_greeting_leaves_only_quit(code: int) -> None:
    conn = ClientConnection()
    (event,) = feed(conn, f"{code} go away\r\n".encode())
    assert isinstance(event, Greeting) and event.reply.code == code
    assert conn.state is State.CLOSING
    with pytest.raises(LocalProtocolError, match="not allowed in state CLOSING"):
        conn.send(Ehlo("c.example"))
    assert conn.send(Quit()) == b"QUIT\r\n"
    assert _codes(feed(conn, b"221 bye\r\n")) == [221]
    assert conn.state is State.CLOSED


@pytest.mark.parametrize("line", [b"221 odd but positive\r\n", b"250 ok\r\n"])
def test_spec_3_1_any_2xx_greeting_opens_the_session(line: bytes) -> None:
    conn = ClientConnection()
    (event,) = feed(conn, line)
    assert isinstance(event, Greeting) and conn.state is State.GREETED


def test_eof_before_the_greeting_is_rpe() -> None:
    conn = ClientConnection()
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="greeting"):
        conn.next_event()


# -- command order (RFC 5321 4.1.4, 3.3) ----------------------------------------------------


def test_mail_before_ehlo_is_lpe_naming_state_and_command() -> None:
    conn = ClientConnection()
    feed(conn, b"220 mx\r\n")
    with pytest.raises(LocalProtocolError, match="Mail is not allowed in state GREETED"):
        conn.send(Mail("a@x.example"))


def test_rcpt_before_mail_is_lpe() -> None:
    conn = session()
    with pytest.raises(LocalProtocolError, match="Rcpt is not allowed in state READY"):
        conn.send(Rcpt("b@y.example"))


def test_data_before_any_rcpt_is_lpe() -> None:
    conn = session()
    conn.send(Mail("a@x.example"))
    feed(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError, match="Data is not allowed in state MAIL"):
        conn.send(Data())


@pytest.mark.parametrize("command", ALL_COMMANDS, ids=lambda c: type(c).__name__)
def test_anything_after_quit_is_lpe(command: Command) -> None:
    conn = session()
    conn.send(Quit())
    with pytest.raises(LocalProtocolError, match="session is over"):
        conn.send(command)
    feed(conn, b"221 bye\r\n")
    with pytest.raises(LocalProtocolError, match="session is over"):
        conn.send(command)


def test_cv02_refused_command_leaves_the_connection_unchanged() -> None:
    conn = session("PIPELINING")
    conn.send(Mail("a@x.example"))
    before = (conn.state, conn.pending, conn.unacknowledged_bytes, repr(conn))
    for bad in (Data(), Mail("c@x.example"), Auth("PLAIN", b"x"), MessageData(b"x")):
        with pytest.raises(LocalProtocolError):
            conn.send(bad)
        assert (conn.state, conn.pending, conn.unacknowledged_bytes, repr(conn)) == before
    assert conn.send(Rcpt("b@y.example")) == b"RCPT TO:<b@y.example>\r\n"


def test_send_rejects_what_is_not_a_command() -> None:
    conn = session()
    with pytest.raises(LocalProtocolError, match="expected a command"):
        conn.send(b"MAIL FROM:<a@x>\r\n")  # type: ignore[arg-type]


def test_rset_ends_the_transaction() -> None:
    conn = session()
    conn.send(Mail("a@x.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Rcpt("b@y.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Rset())
    assert conn.state is State.READY
    feed(conn, b"250 ok\r\n")
    conn.send(Mail("a@x.example"))


def test_helo_session_has_no_extensions() -> None:
    conn = ClientConnection()
    feed(conn, b"220 mx\r\n")
    conn.send(Helo("c.example"))
    (event,) = feed(conn, b"250 mx.example\r\n")
    assert isinstance(event, CommandReply) and event.capabilities is None
    assert conn.capabilities is None and conn.state is State.READY
    with pytest.raises(LocalProtocolError, match="did not advertise SIZE"):
        conn.send(Mail("a@x.example", size=10))
    conn.send(Mail("a@x.example"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Rcpt("b@y.example"))


def test_ns17_refused_ehlo_allows_helo() -> None:
    conn = ClientConnection()
    feed(conn, b"220 mx\r\n")
    conn.send(Ehlo("c.example"))
    (event,) = feed(conn, b"502 5.5.1 no EHLO\r\n")
    assert isinstance(event, CommandReply) and event.capabilities is None
    assert conn.state is State.GREETED
    with pytest.raises(LocalProtocolError):
        conn.send(Mail("a@x.example"))
    conn.send(Helo("c.example"))
    feed(conn, b"250 mx\r\n")
    assert conn.state is State.READY


def test_ehlo_reply_carries_capabilities_and_honours_discard_keywords() -> None:
    conn = ClientConnection(discard_keywords=["pipelining", "SIZE"])
    feed(conn, b"220 mx\r\n")
    conn.send(Ehlo("c.example"))
    (event,) = feed(conn, ehlo_reply("PIPELINING", "SIZE 100", "DSN", "8BITMIME"))
    assert isinstance(event, CommandReply) and event.command == Ehlo("c.example")
    assert event.capabilities is conn.capabilities
    assert conn.capabilities is not None
    assert set(conn.capabilities.keywords) == {"DSN", "8BITMIME"}
    conn.send(Mail("a@x.example"))
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Rcpt("b@y.example"))  # PIPELINING was discarded


def test_ehlo_again_resets_the_session_and_the_capabilities() -> None:
    conn = session("PIPELINING", "DSN")
    conn.send(Mail("a@x.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Ehlo("c.example"))
    assert conn.state is State.GREETED and conn.capabilities is None
    feed(conn, ehlo_reply("SIZE 5"))
    assert conn.capabilities is not None and set(conn.capabilities.keywords) == {"SIZE"}


def test_lmtp_uses_lhlo_and_smtp_refuses_it() -> None:
    lmtp = ClientConnection(lmtp=True)
    feed(lmtp, b"220 lmtp\r\n")
    for command in (Ehlo("c.example"), Helo("c.example")):
        with pytest.raises(LocalProtocolError, match="LMTP"):
            lmtp.send(command)
    assert lmtp.send(Lhlo("c.example")) == b"LHLO c.example\r\n"
    smtp = ClientConnection()
    feed(smtp, b"220 mx\r\n")
    with pytest.raises(LocalProtocolError, match="SMTP session"):
        smtp.send(Lhlo("c.example"))


# -- pipelining (RFC 2920; rules 7.2-7.7) ---------------------------------------------------


def test_without_pipelining_one_command_at_a_time() -> None:
    conn = session()
    conn.send(Mail("a@x.example"))
    with pytest.raises(LocalProtocolError, match="did not advertise PIPELINING"):
        conn.send(Rcpt("b@y.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Rcpt("b@y.example"))


def test_spec_7_3_mail_rcpts_and_data_go_out_in_one_flight() -> None:
    conn = session("PIPELINING")
    wire = _transaction(conn, "b@y.example", "c@y.example", "d@y.example")
    assert wire == (
        b"MAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\n"
        b"RCPT TO:<d@y.example>\r\nDATA\r\n"
    )
    assert [type(c) for c in conn.pending] == [Mail, Rcpt, Rcpt, Rcpt, Data]
    assert conn.unacknowledged_bytes == len(wire)


@pytest.mark.parametrize(
    ("group_end", "keywords"),
    [
        (Noop(), ()),
        (StartTLS(), ("STARTTLS",)),
        (Auth("LOGIN"), ("AUTH LOGIN",)),
        (Auth("PLAIN"), ("AUTH PLAIN",)),  # no initial response: more than one round
        (Auth("CRAM-MD5", b"x"), ("AUTH CRAM-MD5",)),
    ],
    ids=["NOOP", "STARTTLS", "AUTH-LOGIN", "AUTH-PLAIN-no-IR", "AUTH-other-with-IR"],
)
def test_rfc2920_nothing_is_pipelined_after_a_group_end(
    group_end: Command, keywords: tuple[str, ...]
) -> None:
    conn = session("PIPELINING", *keywords)
    conn.send(group_end)
    with pytest.raises(LocalProtocolError, match="must end a pipelined group"):
        conn.send(Mail("a@x.example"))


def test_rfc2920_nothing_is_pipelined_after_data() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    with pytest.raises(LocalProtocolError, match="not allowed in state DATA"):
        conn.send(Rset())


@pytest.mark.parametrize("mechanism", ["PLAIN", "EXTERNAL"])
def test_rfc4954_one_round_auth_with_initial_response_may_be_pipelined(mechanism: str) -> None:
    conn = session("PIPELINING", f"AUTH {mechanism}")
    conn.send(Auth(mechanism, b"\0user\0pass"))
    conn.send(Mail("a@x.example"))
    assert _codes(feed(conn, b"235 ok\r\n250 ok\r\n")) == [235, 250]


def test_unread_says_whether_the_server_sent_more_than_the_events_returned() -> None:
    # h11's trailing_data: the engine keeps the end of data out of the content's write while
    # the server has spoken during the content (rule 7.9).
    conn = session("PIPELINING")
    assert not conn.unread
    conn.send(Mail("a@x.example"))
    conn.send(Rcpt("b@y.example"))
    conn.send(Data())
    conn.receive_data(b"250 ok\r\n250 ok\r\n354 go\r\n250 early")
    assert conn.unread
    assert _codes([conn.next_event(), conn.next_event()]) == [250, 250]
    assert conn.unread
    assert _codes([conn.next_event()]) == [354]
    assert conn.unread  # the start of a line no command asked for
    conn.receive_data(b"\r\n")
    assert conn.unread
    with pytest.raises(RemoteProtocolError, match="before the end of data"):
        conn.next_event()


def test_unread_is_false_once_every_reply_was_taken() -> None:
    conn = session("PIPELINING")
    conn.send(Noop())
    conn.receive_data(b"250 ok\r\n")
    assert conn.unread
    drain(conn)
    assert not conn.unread


def test_spec_7_3_quit_is_pipelined_after_the_end_of_data() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    wire = conn.send(EndOfData()) + conn.send(Quit())
    assert wire == b".\r\nQUIT\r\n"
    events = feed(conn, b"250 queued\r\n221 bye\r\n")
    assert [type(e.command) for e in events] == [EndOfData, Quit]  # type: ignore[union-attr]
    assert conn.state is State.CLOSED


def test_spec_7_3_without_pipelining_the_dot_is_answered_before_quit() -> None:
    conn = session()
    conn.send(Mail("a@x.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Rcpt("b@y.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Data())
    feed(conn, b"354 go\r\n")
    conn.send(EndOfData())
    with pytest.raises(LocalProtocolError, match="PIPELINING"):
        conn.send(Quit())


def test_spec_7_6_rset_then_quit_pipelined() -> None:
    conn = session("PIPELINING")
    conn.send(Mail("a@x.example"))
    feed(conn, b"550 no\r\n")
    assert conn.state is State.READY
    assert conn.send(Rset()) + conn.send(Quit()) == b"RSET\r\nQUIT\r\n"
    assert _codes(feed(conn, b"250 ok\r\n221 bye\r\n")) == [250, 221]


def test_spec_7_2_pipeline_limit_is_never_exceeded() -> None:
    conn = session("PIPELINING", pipeline_limit=100)
    first = conn.send(Mail("a@x.example"))  # the first command of a group is always allowed
    total = len(first)
    rcpt = Rcpt("b@y.example")
    while total + len(rcpt.encode()) <= 100:
        total += len(conn.send(rcpt))
    assert conn.unacknowledged_bytes == total
    with pytest.raises(LocalProtocolError, match="pipeline limit of 100"):
        conn.send(rcpt)
    feed(conn, b"250 ok\r\n")  # MAIL answered: room again
    assert conn.unacknowledged_bytes == total - len(first)
    conn.send(rcpt)


def test_spec_7_2_quit_after_the_dot_ignores_the_pipeline_limit() -> None:
    conn = session("PIPELINING", pipeline_limit=4)
    conn.send(Mail("a@x.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Rcpt("b@y.example"))
    feed(conn, b"250 ok\r\n")
    conn.send(Data())
    feed(conn, b"354 go\r\n")
    conn.send(EndOfData())
    assert conn.send(Quit()) == b"QUIT\r\n"


def test_pipeline_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="pipeline_limit"):
        ClientConnection(pipeline_limit=0)


# -- replies --------------------------------------------------------------------------------


def test_rp17_pipelined_replies_in_one_read_match_fifo() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    events = feed(conn, b"250 a\r\n250 b\r\n354 c\r\n")
    assert [(type(e.command), e.reply.code) for e in events] == [  # type: ignore[union-attr]
        (Mail, 250),
        (Rcpt, 250),
        (Data, 354),
    ]
    assert conn.pending == () and conn.unacknowledged_bytes == 0
    assert conn.state is State.CONTENT


def test_rp18_unsolicited_reply_is_rpe() -> None:
    conn = session()
    conn.receive_data(b"250 x\r\n")
    with pytest.raises(RemoteProtocolError, match="RP-18"):
        conn.next_event()


def test_cv10a_connection_is_unusable_after_a_receive_error() -> None:
    conn = session()
    conn.receive_data(b"250 late\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError):  # sticky
        conn.next_event()
    with pytest.raises(LocalProtocolError, match="CV-10a"):
        conn.send(Noop())
    conn.receive_data(b"250 more\r\n")  # ignored: the connection is dead


def test_cv10b_late_reply_after_everything_was_answered() -> None:
    conn = session()
    conn.send(Noop())
    conn.receive_data(b"250 ok\r\n250 late\r\n")
    assert isinstance(conn.next_event(), CommandReply)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_cv10c_421_while_idle_is_server_closing() -> None:
    conn = session()
    (event,) = feed(conn, b"421 4.4.2 idle timeout\r\n")
    assert isinstance(event, ServerClosing) and event.reply.code == 421
    assert conn.state is State.CLOSING
    with pytest.raises(LocalProtocolError):
        conn.send(Mail("a@x.example"))
    conn.send(Quit())
    assert isinstance(feed(conn, b"")[0], ConnectionClosed)  # NS-19: QUIT needs no reply


def test_rfc5321_3_8_421_to_a_command_drops_what_is_outstanding() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    events = feed(conn, b"421 shutting down\r\n")
    assert [type(e.command) for e in events] == [Mail]  # type: ignore[union-attr]
    assert conn.pending == () and conn.state is State.CLOSING
    assert isinstance(feed(conn, b"")[0], ConnectionClosed)


def test_rp19_garbage_after_pipelined_dot_and_quit_is_rpe() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    feed(conn, b"250 ok\r\n250 ok\r\n354 go\r\n")
    conn.send(MessageData(b"hello\r\n"))
    conn.send(EndOfData())
    conn.send(Quit())
    conn.receive_data(b"garbage\r\n250 ok\r\n221 bye\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    assert conn.state is State.ERROR


@pytest.mark.parametrize(
    ("commands", "server"),
    [
        ((Mail("a@x.example"),), b"334 odd\r\n"),
        ((Mail("a@x.example"), Rcpt("b@y.example"), Data()), b"250 ok\r\n354 odd\r\n"),
    ],
)
def test_a_3xx_to_mail_or_rcpt_is_a_reply_out_of_step(
    commands: tuple[Command, ...], server: bytes
) -> None:
    # Quirk Q2: Postfix reads it as a 5.5.0 refusal. MAIL and RCPT never get a 3xx (RFC 5321
    # 4.3.2), so this reply answers another command and nothing after it can be trusted.
    conn = session("PIPELINING")
    for command in commands:
        conn.send(command)
    conn.receive_data(server)
    with pytest.raises(RemoteProtocolError, match="it may get only"):
        drain(conn)
    assert conn.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        conn.send(MessageData(b"x"))


def test_spec_7_9_a_reply_in_the_middle_of_the_content_ends_it() -> None:
    conn = _at_content()
    conn.send(MessageData(b"part of a big message\r\n"))
    (event,) = feed(conn, b"552 5.3.4 too big\r\n")
    assert isinstance(event, CommandReply) and event.command == EndOfData()
    assert conn.state is State.ABORTED
    for command in (MessageData(b"x"), EndOfData(), Quit()):
        with pytest.raises(LocalProtocolError, match="middle of the content"):
            conn.send(command)
    assert feed(conn, b"") == [ConnectionClosed()]


def test_eof_with_nothing_outstanding_is_connection_closed() -> None:
    conn = session()
    assert feed(conn, b"") == [ConnectionClosed()]
    assert conn.state is State.CLOSED
    assert conn.next_event() == ConnectionClosed()
    conn.receive_data(b"")  # a second EOF is harmless
    with pytest.raises(LocalProtocolError, match="after the end of input"):
        conn.receive_data(b"250 x\r\n")


def test_ns19_eof_with_only_quit_outstanding_is_connection_closed() -> None:
    conn = session()
    conn.send(Quit())
    assert feed(conn, b"") == [ConnectionClosed()]


def test_eof_with_a_command_outstanding_is_rpe() -> None:
    conn = session()
    conn.send(Mail("a@x.example"))
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="waiting for a reply to Mail"):
        conn.next_event()


def test_rp06_eof_inside_a_reply_is_rpe() -> None:
    conn = session()
    conn.send(Noop())
    conn.receive_data(b"250-a\r\n")
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_receive_data_rejects_what_is_not_bytes() -> None:
    conn = ClientConnection()
    with pytest.raises(LocalProtocolError, match="expected bytes"):
        conn.receive_data("220 mx\r\n")  # type: ignore[arg-type]
    conn.receive_data(bytearray(b"220 "))
    conn.receive_data(memoryview(b"mx\r\n"))
    assert isinstance(conn.next_event(), Greeting)


# -- STARTTLS (RFC 3207; NS-*) --------------------------------------------------------------


def _starttls(*keywords: str) -> ClientConnection:
    conn = session("STARTTLS", *keywords)
    assert conn.send(StartTLS()) == b"STARTTLS\r\n"
    return conn


def test_ns01_injected_reply_in_the_same_read_is_rpe() -> None:
    conn = _starttls()
    conn.receive_data(b"220 Ready to start TLS\r\n250-example.org\r\n250 AUTH LOGIN\r\n")
    with pytest.raises(RemoteProtocolError, match="NS-01"):
        conn.next_event()  # not even the STARTTLS reply comes out
    assert conn.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


def test_ns01a_injection_in_a_second_read_before_the_handshake_is_rpe() -> None:
    conn = _starttls()
    (event,) = feed(conn, b"220 go\r\n")
    assert isinstance(event, CommandReply) and isinstance(event.command, StartTLS)
    assert conn.state is State.TLS_HANDSHAKE
    conn.receive_data(b"250 AUTH LOGIN\r\n")
    with pytest.raises(RemoteProtocolError, match="NS-01"):
        conn.next_event()


def test_ns01a_injection_noticed_by_tls_established() -> None:
    conn = _starttls()
    feed(conn, b"220 go\r\n")
    conn.receive_data(b"250 AUTH LOGIN\r\n")
    with pytest.raises(RemoteProtocolError, match="NS-01"):
        conn.tls_established()
    assert conn.state is State.ERROR


def test_ns01b_full_fake_session_injected_gives_no_event() -> None:
    conn = _starttls()
    conn.receive_data(
        b"220 go\r\n250-mx\r\n250 AUTH PLAIN\r\n235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"
        b"250 queued\r\n"
    )
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_ns01c_fragment_without_crlf_is_rpe() -> None:
    conn = _starttls()
    conn.receive_data(b"220 ok\r\n250-AUTH PLA")
    with pytest.raises(RemoteProtocolError, match="NS-01"):
        conn.next_event()


def test_ns01d_multiline_220_then_injection_is_rpe() -> None:
    conn = _starttls()
    conn.receive_data(b"220-Ready\r\n220 go\r\n250 AUTH PLAIN\r\n")
    with pytest.raises(RemoteProtocolError, match="NS-01"):
        conn.next_event()


def test_ns01e_clean_220_leaves_nothing_buffered() -> None:
    conn = _starttls()
    (event,) = feed(conn, b"220 go\r\n")
    assert isinstance(event, CommandReply) and event.reply.code == 220
    assert conn.next_event() is NEED_DATA
    conn.tls_established()
    assert conn.is_tls and conn.state is State.TLS_HELLO


def test_ns01_overlong_injected_line_is_rpe_too() -> None:
    conn = _starttls()
    conn.receive_data(b"220 go\r\n" + b"2" * 5000)
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_ns06_3xx_to_starttls_is_rpe() -> None:
    conn = _starttls()
    conn.receive_data(b"354 do something else\r\n")
    with pytest.raises(RemoteProtocolError, match="only 220"):
        conn.next_event()


def test_ns07_220_starts_the_handshake_whatever_its_text() -> None:
    conn = _starttls()
    feed(conn, b"220 EHLO client!\r\n")
    assert conn.state is State.TLS_HANDSHAKE
    with pytest.raises(LocalProtocolError, match="tls_established"):
        conn.send(Ehlo("c.example"))


@pytest.mark.parametrize("line", [b"250 go ahead\r\n", b"221 bye\r\n"])
def test_ns07_another_2xx_to_starttls_answers_something_else(line: bytes) -> None:
    # NS-07 lets us pick: RFC 3207 4 names 220 only, and a 2xx that is not the STARTTLS reply
    # (a 250 meant for another command, a 221 closing) must not start a handshake.
    conn = _starttls()
    conn.receive_data(line)
    with pytest.raises(RemoteProtocolError, match="only 220"):
        conn.next_event()
    assert conn.state is State.ERROR


@pytest.mark.parametrize("code", [454, 501, 502, 530, 554])
def test_ns07_refused_starttls_stays_in_plaintext(code: int) -> None:
    conn = _starttls("PIPELINING")
    (event,) = feed(conn, f"{code} no TLS\r\n".encode())
    assert isinstance(event, CommandReply) and event.reply.code == code
    assert conn.state is State.READY and not conn.is_tls
    assert conn.capabilities is not None and conn.capabilities.starttls
    with pytest.raises(LocalProtocolError):
        conn.tls_established()


def test_ns07_421_to_starttls_is_closing() -> None:
    conn = _starttls()
    feed(conn, b"421 closing\r\n")
    assert conn.state is State.CLOSING


def test_ns10_capabilities_are_forgotten_and_only_ehlo_may_follow_tls() -> None:
    conn = _starttls("PIPELINING", "SIZE 10", "8BITMIME", "AUTH PLAIN")
    feed(conn, b"220 go\r\n")
    conn.tls_established()
    assert conn.capabilities is None
    for command in (Mail("a@x.example"), Auth("PLAIN", b"x"), Noop(), Helo("c.example")):
        with pytest.raises(LocalProtocolError, match="TLS_HELLO"):
            conn.send(command)
    conn.send(Ehlo("c.example"))
    feed(conn, b"250-mx\r\n250 AUTH SCRAM-SHA-256\r\n")
    caps = conn.capabilities
    assert caps is not None
    assert not caps.pipelining and caps.size is None and not caps.eightbitmime
    assert caps.auth_mechanisms == {"SCRAM-SHA-256"}
    with pytest.raises(LocalProtocolError, match="PLAIN was not advertised"):
        conn.send(Auth("PLAIN", b"\0u\0p"))
    with pytest.raises(LocalProtocolError, match="SIZE"):
        conn.send(Mail("a@x.example", size=5))


def test_ns11_second_starttls_is_lpe_even_if_advertised_again() -> None:
    conn = _starttls()
    feed(conn, b"220 go\r\n")
    conn.tls_established()
    conn.send(Ehlo("c.example"))
    feed(conn, ehlo_reply("STARTTLS"))
    with pytest.raises(LocalProtocolError, match="NS-11"):
        conn.send(StartTLS())


def test_ns12_nothing_is_pipelined_after_starttls() -> None:
    conn = _starttls("PIPELINING")
    for command in (Mail("a@x.example"), Noop(), Quit()):
        with pytest.raises(LocalProtocolError, match="must end a pipelined group"):
            conn.send(command)
    assert conn.pending == (StartTLS(),)


def test_starttls_only_if_advertised() -> None:
    conn = session("PIPELINING")
    with pytest.raises(LocalProtocolError, match="did not advertise STARTTLS"):
        conn.send(StartTLS())


def test_ns15_helo_after_a_refused_ehlo_over_tls() -> None:
    conn = _starttls()
    feed(conn, b"220 go\r\n")
    conn.tls_established()
    conn.send(Ehlo("c.example"))
    feed(conn, b"500 what\r\n")
    conn.send(Helo("c.example"))
    feed(conn, b"250 mx\r\n")
    assert conn.state is State.READY and conn.capabilities is None and conn.is_tls


def test_tls_established_only_after_a_positive_starttls_reply() -> None:
    conn = _starttls()
    with pytest.raises(LocalProtocolError, match="tls_established"):
        conn.tls_established()


def test_eof_during_the_handshake_is_connection_closed() -> None:
    conn = _starttls()
    feed(conn, b"220 go\r\n")
    assert feed(conn, b"") == [ConnectionClosed()]


# -- AUTH (RFC 4954) ------------------------------------------------------------------------


def test_rp12_long_334_accepted_only_while_auth_is_outstanding() -> None:
    challenge = b"334 " + b"A" * 12000 + b"\r\n"
    conn = session("AUTH LOGIN")
    conn.send(Auth("LOGIN"))
    (event,) = feed(conn, challenge)
    assert isinstance(event, CommandReply) and event.is_challenge
    conn.send(AuthResponse(b"user"))
    feed(conn, b"235 ok\r\n")
    conn.send(Ehlo("c.example"))
    conn.receive_data(b"250-" + b"A" * 12000 + b"\r\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_auth_exchange_with_challenges() -> None:
    conn = session("AUTH LOGIN")
    assert conn.send(Auth("LOGIN")) == b"AUTH LOGIN\r\n"
    with pytest.raises(LocalProtocolError, match="only allowed after a 334"):
        conn.send(AuthResponse(b"user"))
    (event,) = feed(conn, b"334 VXNlcm5hbWU6\r\n")
    assert isinstance(event, CommandReply) and event.is_challenge
    assert conn.send(AuthResponse(b"user")) == b"dXNlcg==\r\n"
    with pytest.raises(LocalProtocolError, match="only allowed after a 334"):
        conn.send(AuthResponse(b"again"))
    feed(conn, b"334 UGFzc3dvcmQ6\r\n")
    conn.send(AuthResponse(None))
    (final,) = feed(conn, b"501 cancelled\r\n")
    assert isinstance(final, CommandReply) and not final.is_challenge
    assert conn.pending == () and conn.unacknowledged_bytes == 0
    conn.send(Auth("LOGIN"))  # a failed AUTH may be tried again


def test_au16_auth_in_a_transaction_is_lpe() -> None:
    conn = session("AUTH PLAIN")
    conn.send(Mail("a@x.example"))
    feed(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError, match="Auth is not allowed in state MAIL"):
        conn.send(Auth("PLAIN", b"\0u\0p"))


def test_au16_second_auth_after_success_is_lpe() -> None:
    conn = session("AUTH PLAIN")
    conn.send(Auth("PLAIN", b"\0u\0p"))
    feed(conn, b"235 2.7.0 ok\r\n")
    with pytest.raises(LocalProtocolError, match="already authenticated"):
        conn.send(Auth("PLAIN", b"\0u\0p"))


def test_au16_auth_while_another_is_outstanding_is_lpe() -> None:
    conn = session("PIPELINING", "AUTH PLAIN")
    conn.send(Auth("PLAIN", b"\0u\0p"))
    with pytest.raises(LocalProtocolError, match="still unanswered"):
        conn.send(Auth("PLAIN", b"\0u\0p"))


def test_auth_only_with_an_advertised_mechanism() -> None:
    conn = session()
    with pytest.raises(LocalProtocolError, match="did not advertise AUTH"):
        conn.send(Auth("PLAIN", b"x"))


def test_auth_reply_errors_are_rpe() -> None:
    conn = session("AUTH LOGIN")
    conn.send(Auth("LOGIN"))
    conn.receive_data(b"354 go\r\n")
    with pytest.raises(RemoteProtocolError, match="only 235 or 334"):
        conn.next_event()
    conn = session("AUTH LOGIN")
    conn.send(Auth("LOGIN"))
    conn.receive_data(b"334 a\r\n334 b\r\n")
    conn.next_event()
    with pytest.raises(RemoteProtocolError, match="second 334"):
        conn.next_event()


def test_auth_is_forgotten_after_tls() -> None:
    conn = session("AUTH PLAIN", "STARTTLS")
    conn.send(Auth("PLAIN", b"\0u\0p"))
    feed(conn, b"235 ok\r\n")
    conn.send(StartTLS())
    feed(conn, b"220 go\r\n")
    conn.tls_established()
    conn.send(Ehlo("c.example"))
    feed(conn, ehlo_reply("AUTH PLAIN"))
    conn.send(Auth("PLAIN", b"\0u\0p"))


# -- message content (RFC 5321 4.1.1.4; rules 7.7, 7.8) --------------------------------------


def _at_content(*keywords: str, rcpt_code: int = 250) -> ClientConnection:
    conn = session("PIPELINING", *keywords)
    _transaction(conn)
    feed(conn, b"250 ok\r\n" + f"{rcpt_code} x\r\n".encode() + b"354 go\r\n")
    return conn


def test_message_data_goes_through_the_body_encoder() -> None:
    conn = _at_content()
    wire = conn.send(MessageData(b".hidden\nline two\n"))
    wire += conn.send(EndOfData())
    assert wire == b"..hidden\r\nline two\r\n.\r\n"
    assert conn.state is State.DOT and conn.pending == (EndOfData(),)
    (event,) = feed(conn, b"250 queued\r\n")
    assert isinstance(event, CommandReply) and event.command == EndOfData()
    assert conn.state is State.READY


def test_message_data_before_the_354_is_lpe() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    with pytest.raises(LocalProtocolError, match="MessageData is not allowed in state DATA"):
        conn.send(MessageData(b"x"))


def test_spec_7_7_after_every_rcpt_failed_only_the_end_of_data_may_follow() -> None:
    conn = _at_content(rcpt_code=550)
    with pytest.raises(LocalProtocolError, match="only EndOfData"):
        conn.send(MessageData(b"x"))
    assert conn.send(EndOfData()) == b".\r\n"


def test_spec_7_8_mail_refused_with_pipelining_voids_the_transaction() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    feed(conn, b"550 no\r\n503 no MAIL\r\n")
    assert conn.state is State.DATA
    feed(conn, b"503 no MAIL\r\n")
    assert conn.state is State.READY
    conn.send(Mail("a@x.example"))


def test_data_refused_leaves_the_transaction_open() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    feed(conn, b"250 ok\r\n250 ok\r\n451 later\r\n")
    assert conn.state is State.RCPT
    conn.send(Rset())
    assert conn.state is State.READY


def test_binarymime_needs_bdat() -> None:
    conn = session("CHUNKING", "BINARYMIME")
    conn.send(Mail("a@x.example", body="BINARYMIME"))
    feed(conn, b"250 ok\r\n")
    conn.send(Rcpt("b@y.example"))
    feed(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError, match="BINARYMIME needs BDAT"):
        conn.send(Data())
    assert conn.send(Bdat(3, last=True)) == b"BDAT 3 LAST\r\n"


# -- BDAT (RFC 3030) ------------------------------------------------------------------------


def _at_bdat(*keywords: str, lmtp: bool = False) -> ClientConnection:
    conn = session("PIPELINING", "CHUNKING", *keywords, lmtp=lmtp)
    conn.send(Mail("a@x.example"))
    conn.send(Rcpt("b@y.example"))
    return conn


def test_bdat_chunks_are_counted_and_sent_unchanged() -> None:
    conn = _at_bdat()
    conn.send(Bdat(5))
    assert conn.state is State.BDAT_CHUNK
    with pytest.raises(LocalProtocolError, match="only 5 left"):
        conn.send(MessageData(b"123456"))
    assert conn.send(MessageData(b"1\n3")) == b"1\n3"
    with pytest.raises(LocalProtocolError, match="Quit is not allowed in state BDAT_CHUNK"):
        conn.send(Quit())
    conn.send(MessageData(b"45"))
    assert conn.state is State.BDAT
    conn.send(Bdat(0, last=True))
    assert conn.state is State.BDAT_LAST
    conn.send(Quit())
    events = feed(conn, b"250 a\r\n250 b\r\n250 c\r\n250 d\r\n221 bye\r\n")
    assert [type(e.command) for e in events] == [  # type: ignore[union-attr]
        Mail,
        Rcpt,
        Bdat,
        Bdat,
        Quit,
    ]
    assert conn.state is State.CLOSED


def test_bdat_reply_before_its_chunk_is_complete_is_rpe() -> None:
    conn = _at_bdat()
    conn.send(Bdat(5))
    conn.send(MessageData(b"12"))
    conn.receive_data(b"250 a\r\n250 b\r\n552 too big\r\n")
    drain_two = [conn.next_event(), conn.next_event()]
    assert all(isinstance(e, CommandReply) for e in drain_two)
    with pytest.raises(RemoteProtocolError, match="before its chunk was complete"):
        conn.next_event()


def test_bdat_needs_chunking_and_stops_after_a_refusal() -> None:
    conn = session("PIPELINING")
    conn.send(Mail("a@x.example"))
    conn.send(Rcpt("b@y.example"))
    with pytest.raises(LocalProtocolError, match="CHUNKING"):
        conn.send(Bdat(1))
    conn = _at_bdat()
    conn.send(Bdat(1))
    conn.send(MessageData(b"x"))
    feed(conn, b"250 ok\r\n250 ok\r\n552 too much\r\n")
    assert conn.state is State.BDAT
    with pytest.raises(LocalProtocolError, match="RFC 3030 2"):
        conn.send(Bdat(1))
    conn.send(Rset())


def test_rfc2033_4_3_lmtp_bdat_last_gets_one_reply_per_accepted_recipient() -> None:
    conn = _at_bdat(lmtp=True)
    conn.send(Rcpt("c@y.example"))
    conn.send(Bdat(2, last=True))
    conn.send(MessageData(b"hi"))
    events = feed(conn, b"250 ok\r\n250 ok\r\n250 ok\r\n250 one\r\n452 two\r\n")
    assert [type(e) for e in events] == [CommandReply] * 3 + [RecipientReply] * 2
    assert [e.recipient.recipient for e in events[3:]] == [  # type: ignore[union-attr]
        "b@y.example",
        "c@y.example",
    ]
    assert conn.state is State.READY and conn.pending == ()


def test_rfc2033_4_3_lmtp_bdat_last_with_no_accepted_recipient_gets_no_reply() -> None:
    conn = _at_bdat(lmtp=True)
    conn.send(Bdat(2, last=True))
    conn.send(MessageData(b"hi"))
    conn.send(Quit())
    feed(conn, b"250 ok\r\n550 no\r\n")
    assert conn.pending == (Quit(),)
    assert _codes(feed(conn, b"221 bye\r\n")) == [221]


# -- LMTP (RFC 2033) ------------------------------------------------------------------------


def _lmtp_at_content(*codes: int) -> ClientConnection:
    conn = session("PIPELINING", lmtp=True)
    recipients = [f"r{n}@y.example" for n in range(len(codes))]
    _transaction(conn, *recipients)
    feed(conn, b"250 ok\r\n" + b"".join(f"{c} x\r\n".encode() for c in codes) + b"354 go\r\n")
    return conn


def test_rp22_lmtp_one_reply_per_accepted_recipient_and_a_surplus_is_rpe() -> None:
    conn = _lmtp_at_content(250, 550, 250)
    conn.send(EndOfData())
    events = feed(conn, b"250 first\r\n451 third\r\n")
    assert [(e.recipient.recipient, e.reply.code) for e in events] == [  # type: ignore[union-attr]
        ("r0@y.example", 250),
        ("r2@y.example", 451),
    ]
    assert conn.state is State.READY
    conn.receive_data(b"250 surplus\r\n")
    with pytest.raises(RemoteProtocolError, match="RP-18"):
        conn.next_event()


def test_rp22_lmtp_eof_before_every_recipient_reply_is_rpe() -> None:
    conn = _lmtp_at_content(250, 550, 250)
    conn.send(EndOfData())
    (event,) = feed(conn, b"250 first\r\n")
    assert isinstance(event, RecipientReply)
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="EndOfData"):
        conn.next_event()


def test_rfc2033_4_2_lmtp_354_with_no_accepted_recipient_is_rpe() -> None:
    conn = session("PIPELINING", lmtp=True)
    _transaction(conn)
    conn.receive_data(b"250 ok\r\n550 no\r\n354 go\r\n")
    drain_two = [conn.next_event(), conn.next_event()]
    assert all(isinstance(e, CommandReply) for e in drain_two)
    with pytest.raises(RemoteProtocolError, match=r"RFC 2033 4\.2"):
        conn.next_event()


# -- SMTPUTF8 and other extension parameters ------------------------------------------------


def test_non_ascii_recipient_needs_an_smtputf8_transaction() -> None:
    conn = session("SMTPUTF8", "8BITMIME")
    conn.send(Mail("a@x.example"))
    feed(conn, b"250 ok\r\n")
    with pytest.raises(LocalProtocolError, match="smtputf8=True"):
        conn.send(Rcpt("jöran@y.example"))
    conn.send(Rset())
    feed(conn, b"250 ok\r\n")
    conn.send(Mail("a@x.example", smtputf8=True))
    feed(conn, b"250 ok\r\n")
    assert conn.send(Rcpt("jöran@y.example")) == "RCPT TO:<jöran@y.example>\r\n".encode()


@pytest.mark.parametrize(
    ("mail", "keyword"),
    [
        (Mail("a@x.example", size=1), "SIZE"),
        (Mail("a@x.example", body="8BITMIME"), "8BITMIME"),
        (Mail("a@x.example", body="BINARYMIME"), "BINARYMIME"),
        (Mail("a@x.example", smtputf8=True), "SMTPUTF8"),
        (Mail("a@x.example", ret="FULL"), "DSN"),
        (Mail("a@x.example", envid="x"), "DSN"),
        (Mail("a@x.example", auth="<>"), "AUTH"),
    ],
)
def test_mail_parameters_need_their_extension(mail: Mail, keyword: str) -> None:
    conn = session("PIPELINING")
    with pytest.raises(LocalProtocolError, match=f"did not advertise {keyword}"):
        conn.send(mail)
    assert conn.pending == ()


def test_spec_3_10_smtputf8_implies_8bitmime() -> None:
    conn = session("SMTPUTF8")
    conn.send(Mail("a@x.example", body="8BITMIME"))


def test_rcpt_dsn_parameters_need_dsn() -> None:
    conn = session("PIPELINING")
    conn.send(Mail("a@x.example"))
    with pytest.raises(LocalProtocolError, match="DSN"):
        conn.send(Rcpt("b@y.example", notify=("NEVER",)))


def test_xforward_needs_its_attributes_advertised() -> None:
    conn = session("XFORWARD NAME ADDR")
    with pytest.raises(LocalProtocolError, match="HELO"):
        conn.send(Xforward((("NAME", "h"), ("HELO", "x"))))
    assert conn.send(Xforward((("NAME", "h"),))) == b"XFORWARD NAME=h\r\n"
    conn = session()
    with pytest.raises(LocalProtocolError, match="XFORWARD"):
        conn.send(Xforward((("NAME", "h"),)))


# -- introspection --------------------------------------------------------------------------


def test_transition_table_is_printable_and_cites_the_rfcs() -> None:
    text = format_transitions()
    assert "READY         Mail              -> MAIL" in text
    for (state, kind), (_, why) in SEND_TRANSITIONS.items():
        assert why.startswith(("RFC", "Postfix")), (state, kind)
    for (state, kind, _klass), (_, why) in REPLY_TRANSITIONS.items():
        assert why.startswith("RFC"), (state, kind)
    assert repr(State.READY) == "READY" and repr(NEED_DATA) == "NEED_DATA"


def test_repr_shows_state_and_what_is_outstanding() -> None:
    conn = session("PIPELINING")
    _transaction(conn)
    text = repr(conn)
    assert "state=DATA" in text and "pending=[Mail, Rcpt, Data]" in text
    assert "PIPELINING" in text


def test_constructor_checks_its_arguments() -> None:
    with pytest.raises(ValueError, match="discard_keywords"):
        ClientConnection(discard_keywords="PIPELINING")
    with pytest.raises(ValueError, match="lmtp"):
        ClientConnection(lmtp=1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="limits"):
        ClientConnection(limits=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="line_length_limit"):
        ClientConnection(line_length_limit=-1)


# -- properties (hypothesis) ----------------------------------------------------------------

# A complete pipelined session, server side, one flight per client group, and the client
# commands that go with it. The server answers a group only after the client sent it: bytes
# that arrive before their command are a protocol error (test_early_* below).
_SERVER_FLIGHTS = (
    b"220-mx.example ESMTP\r\n220 ready\r\n",
    ehlo_reply("PIPELINING", "SIZE 1000", "8BITMIME", "AUTH PLAIN"),
    b"235 2.7.0 ok\r\n250 2.1.0 ok\r\n",
    b"250 2.1.5 ok\r\n550 5.1.1 no\r\n354 go\r\n",
    b"250 2.0.0 queued\r\n221 2.0.0 bye\r\n",
)


def _run(flights: list[list[bytes]]) -> list[tuple[str, int]]:
    # The client reacts to each event as it comes, sending as much as the rules allow, so the
    # events depend only on the server bytes, never on how each flight was split.
    conn = ClientConnection()
    script: list[list[Command | MessageData | EndOfData]] = [
        [Ehlo("c.example")],
        [Auth("PLAIN", b"\0u\0p"), Mail("a@x.example", size=5)],
        [Rcpt("b@y.example"), Rcpt("c@y.example"), Data()],
        [MessageData(b"hello"), EndOfData(), Quit()],
    ]
    triggers = iter(script)
    seen: list[tuple[str, int]] = []
    for chunks in [*flights, [b""]]:
        for chunk in chunks:
            conn.receive_data(chunk)
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, ConnectionClosed):
                    seen.append(("closed", 0))
                    break
                name = type(getattr(event, "command", event)).__name__
                seen.append((name, event.reply.code))
                if isinstance(event, Greeting) or (
                    isinstance(event, CommandReply)
                    and isinstance(event.command, (Ehlo, Mail, Data))
                ):
                    for command in next(triggers):
                        conn.send(command)
    return seen


_EXPECTED = _run([[flight] for flight in _SERVER_FLIGHTS])


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(
        *(
            st.lists(st.integers(min_value=0, max_value=len(flight)), max_size=6)
            for flight in _SERVER_FLIGHTS
        )
    )
)
def test_property_1_splitting_the_server_stream_gives_the_same_events(
    cuts: tuple[list[int], ...],
) -> None:
    flights = []
    for flight, points in zip(_SERVER_FLIGHTS, cuts, strict=True):
        bounds = [0, *sorted(set(points)), len(flight)]
        flights.append([flight[a:b] for a, b in itertools.pairwise(bounds) if b > a])
    assert _run(flights) == _EXPECTED


def test_property_1_expected_events() -> None:
    assert _EXPECTED == [
        ("Greeting", 220),
        ("Ehlo", 250),
        ("Auth", 235),
        ("Mail", 250),
        ("Rcpt", 250),
        ("Rcpt", 550),
        ("Data", 354),
        ("EndOfData", 250),
        ("Quit", 221),
        ("closed", 0),
    ]


_ANY_BYTES = st.one_of(
    st.binary(max_size=64),
    st.lists(
        st.sampled_from(
            [b"220 ", b"250", b"-", b" ", b"354", b"421", b"334 ", b"\r\n", b"\n", b"\r", b"x"]
        ),
        max_size=30,
    ).map(b"".join),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(_ANY_BYTES, max_size=8),
    st.sampled_from(["greeting", "ready", "pipelined", "starttls", "auth", "lmtp"]),
)
def test_property_2_arbitrary_bytes_raise_only_remote_protocol_error(
    chunks: list[bytes], where: str
) -> None:
    limits = ReplyLimits(max_line_length=64, max_lines=5, max_reply_bytes=256)
    if where == "greeting":
        conn = ClientConnection(limits=limits)
    elif where == "lmtp":
        conn = session("PIPELINING", lmtp=True, limits=limits)
        _transaction(conn, "b@y.example", "c@y.example")
    else:
        conn = session("PIPELINING", "STARTTLS", "AUTH LOGIN", limits=limits)
        if where == "pipelined":
            _transaction(conn)
        elif where == "starttls":
            conn.send(StartTLS())
        elif where == "auth":
            conn.send(Auth("LOGIN"))
    try:
        for chunk in [*(c for c in chunks if c), b""]:  # b"" only once: it is the end
            conn.receive_data(chunk)
            drain(conn)
            # RP-10/RP-11: never more than one line's limit buffered (auth lines included).
            assert conn._parser.buffered <= limits.max_auth_line_length + 2
    except RemoteProtocolError:
        assert conn.state is State.ERROR
        with pytest.raises(LocalProtocolError):
            conn.send(Noop())
