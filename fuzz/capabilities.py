"""Fuzz target ``capabilities``: EHLO/LHLO replies, from bytes, into `Capabilities`.

Arbitrary reply lines (keyword-like words, parameters, ``AUTH=`` forms, controls, 8-bit text)
and discard lists. Checked: a positive reply always parses and a negative one is a
`LocalProtocolError`, nothing else; keywords are upper-case ESMTP keywords with tuples of
parameters; discarded keywords are gone; membership is case-insensitive and agrees with every
flag property; SIZE is None or a non-negative int; AUTH mechanisms and XFORWARD attributes are
upper-case; the result is the same whether the reply came through `ReplyParser` from the wire
or was built directly; and `ClientConnection` hands out that same `Capabilities`.
"""

from __future__ import annotations

import re
import sys

from hypothesis import strategies as st

from smtpproto import LocalProtocolError, RemoteProtocolError
from smtpproto.capabilities import Capabilities
from smtpproto.commands import Ehlo
from smtpproto.connection import ClientConnection
from smtpproto.events import CommandReply
from smtpproto.replies import Reply, ReplyParser

from ._harness import Target, main

_KEYWORD = re.compile(r"[A-Z0-9][A-Z0-9-]*")
_FLAGS = {
    "PIPELINING": "pipelining",
    "8BITMIME": "eightbitmime",
    "DSN": "dsn",
    "SMTPUTF8": "smtputf8",
    "CHUNKING": "chunking",
    "BINARYMIME": "binarymime",
    "STARTTLS": "starttls",
    "ENHANCEDSTATUSCODES": "enhancedstatuscodes",
}
_WORDS = st.sampled_from(
    [
        "PIPELINING",
        "pipelining",
        "SIZE",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
        "BINARYMIME",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "AUTH",
        "AUTH=",
        "XFORWARD",
        "X-EXT",
        "-BAD",
        "1",
        "",
        "=",
        " ",
        "\t",
        "12345",
        "99999999999999999999999",
        "plain",
        "LOGIN",
        "\u0130",
        "\xdf",
        "ß",
        "\x7f",
        "\x01",
        "\ufffd",
    ]
)
_LINE = st.one_of(
    st.lists(_WORDS, max_size=5).map(" ".join),
    st.lists(_WORDS, max_size=4).map("".join),
    st.text(st.characters(blacklist_characters="\r\n"), max_size=20),
)


def _wire(code: int, lines: list[str]) -> bytes:
    return b"".join(
        b"%d%s%s\r\n"
        % (code, b" " if i == len(lines) - 1 else b"-", line.encode("utf-8", "surrogatepass"))
        for i, line in enumerate(lines)
    )


def check(case: tuple[int, list[str], list[str]]) -> None:
    """The properties in the module docstring, for one reply and discard list."""
    code, lines, discard = case
    reply = Reply(code, tuple(lines))
    if not reply.is_positive:
        try:
            Capabilities.from_reply(reply, discard=discard)
        except LocalProtocolError:
            return
        raise AssertionError("a negative reply was accepted as capabilities")
    caps = Capabilities.from_reply(reply, discard=discard)
    dropped = {d.upper() for d in discard}
    for keyword, parameters in caps.keywords.items():
        assert _KEYWORD.fullmatch(keyword), keyword
        assert keyword not in dropped, (keyword, discard)
        assert isinstance(parameters, tuple) and all(isinstance(p, str) for p in parameters)
        assert keyword in caps and keyword.lower() in caps
    for keyword, flag in _FLAGS.items():
        assert getattr(caps, flag) == (keyword in caps), (keyword, flag)
    size = caps.size
    assert size is None or (isinstance(size, int) and size >= 0), size
    assert (size is None) == ("SIZE" not in caps)
    assert all(m == m.upper() for m in caps.auth_mechanisms)
    assert all(a == a.upper() for a in caps.xforward)
    parser = ReplyParser()
    parser.feed(_wire(code, lines))
    try:
        parsed = parser.next_reply()
    except RemoteProtocolError:
        return  # a control character or an over-long line: not a reply on the wire
    if parsed is not None and parsed.lines == reply.lines:
        again = Capabilities.from_reply(parsed, discard=discard)
        assert again == caps and dict(again.keywords) == dict(caps.keywords)
        conn = ClientConnection(discard_keywords=discard)
        conn.receive_data(b"220 mx.example ESMTP\r\n")
        conn.next_event()
        conn.send(Ehlo("client.example"))
        conn.receive_data(_wire(code, lines))
        if code != 250:
            # RFC 5321 4.3.2: EHLO succeeds with 250 only; another 2xx answers something else.
            try:
                conn.next_event()
            except RemoteProtocolError:
                return
            raise AssertionError(f"a {code} was taken as the EHLO reply")
        event = conn.next_event()
        assert isinstance(event, CommandReply) and event.capabilities is not None
        assert dict(event.capabilities.keywords) == dict(caps.keywords)
        assert conn.capabilities == event.capabilities


TARGET = Target(
    "capabilities",
    "EHLO/LHLO replies into Capabilities, directly and through the wire",
    strategy=st.tuples(
        st.sampled_from([250, 250, 250, 220, 251, 421, 550]),
        st.lists(_LINE, min_size=1, max_size=10),
        st.lists(_WORDS, max_size=3),
    ),
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
