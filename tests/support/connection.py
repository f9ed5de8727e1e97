"""The server side of `ClientConnection` tests, in memory (after h11's test helpers).

`feed` hands server octets to a connection and collects the events; `session` builds a
connection that is already past the greeting and EHLO/LHLO; `converse` plays an RFC-style
``S:``/``C:`` transcript against a list of commands and checks every client octet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from smtpproto.commands import Command, Ehlo, EndOfData, Lhlo, MessageData
from smtpproto.connection import NEED_DATA, ClientConnection
from smtpproto.events import ConnectionClosed, Event

from .model import ehlo_reply

__all__ = ["Action", "blocks", "converse", "drain", "ehlo_reply", "feed", "session"]

Action = Command | MessageData | EndOfData
"""What a test hands to ``ClientConnection.send``."""


def drain(conn: ClientConnection) -> list[Event]:
    """Every event the connection can produce now, up to `NEED_DATA` or `ConnectionClosed`."""
    events: list[Event] = []
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


def feed(conn: ClientConnection, data: bytes) -> list[Event]:
    """Give the connection `data` from the server and return the events it completes."""
    conn.receive_data(data)
    return drain(conn)


def session(*keywords: str, lmtp: bool = False, **options: object) -> ClientConnection:
    """A connection greeted with 220 and past a positive EHLO (LHLO) advertising `keywords`."""
    conn = ClientConnection(lmtp=lmtp, **options)  # type: ignore[arg-type]
    feed(conn, b"220 mx.example ESMTP\r\n")
    conn.send(Lhlo("client.example") if lmtp else Ehlo("client.example"))
    feed(conn, ehlo_reply(*keywords))
    return conn


def blocks(transcript: str) -> list[tuple[str, bytes]]:
    """Split an ``S:``/``C:`` transcript into runs of lines from one side, CRLF-terminated.

    ``S: text`` and ``C: text`` lines carry ``text``; a bare ``C:`` is an empty line.
    Lines starting with anything else are ignored.
    """
    runs: list[tuple[str, bytearray]] = []
    for raw in transcript.splitlines():
        line = raw.strip(" ")
        if line[:2] not in ("S:", "C:"):
            continue
        side, text = line[0], line[3:] if line[2:3] == " " else line[2:]
        if not runs or runs[-1][0] != side:
            runs.append((side, bytearray()))
        runs[-1][1].extend(text.encode() + b"\r\n")
    return [(side, bytes(data)) for side, data in runs]


def converse(
    conn: ClientConnection, transcript: str, actions: Iterable[Action]
) -> tuple[bytes, list[Event]]:
    """Play `transcript`: the client's octets come from sending `actions` in order.

    Before each server run, the client must have written exactly the ``C:`` lines so far
    (octet for octet); then the server run is fed in one piece. Returns what the client
    wrote and every event.
    """
    pending = iter(actions)
    sent = bytearray()
    expected = bytearray()
    events: list[Event] = []
    for side, data in blocks(transcript):
        if side == "C":
            expected += data
            while len(sent) < len(expected):
                sent += conn.send(next(pending))
            assert bytes(sent) == bytes(expected), (bytes(sent), bytes(expected))
        else:
            events += feed(conn, data)
    leftover: Sequence[Action] = list(pending)
    assert not leftover, f"actions not used by the transcript: {leftover}"
    return bytes(sent), events
