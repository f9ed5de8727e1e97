"""What `ClientConnection.next_event` returns: small frozen value types, after h11's ``_events``.

Every event that carries a reply names the command it answers, so a caller never has to keep
its own FIFO of commands in flight. `NEED_DATA` is the sentinel for "feed me more bytes".
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ._errors import LocalProtocolError
from .capabilities import Capabilities
from .commands import Auth, Command, EndOfData, Rcpt
from .replies import Reply

__all__ = [
    "NEED_DATA",
    "CommandReply",
    "ConnectionClosed",
    "Event",
    "Greeting",
    "NeedData",
    "RecipientReply",
    "ServerClosing",
]


class NeedData(enum.Enum):
    """The type of `NEED_DATA`; an enum so that ``event is NEED_DATA`` narrows for type checkers."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        """``NEED_DATA``."""
        return self.value


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by `ClientConnection.next_event` when no complete event is buffered yet."""


def _reply(value: object) -> Reply:
    if not isinstance(value, Reply):
        raise LocalProtocolError(f"reply: expected a Reply, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Greeting:
    """The server's opening reply (RFC 5321 3.1, 4.3.2: 220 to go on, 421 or 554 to refuse)."""

    reply: Reply

    def __post_init__(self) -> None:
        _reply(self.reply)


@dataclass(frozen=True, slots=True)
class CommandReply:
    """A reply to `command`: its final reply, or a 334 challenge to an `Auth` (RFC 4954 4).

    `command` is the command the reply answers; for the end of message data (SMTP) it is the
    `EndOfData` marker. `capabilities` is set on a positive EHLO or LHLO reply only.
    """

    command: Command | EndOfData
    reply: Reply
    capabilities: Capabilities | None = None

    def __post_init__(self) -> None:
        _reply(self.reply)
        if self.capabilities is not None and not isinstance(self.capabilities, Capabilities):
            raise LocalProtocolError(
                f"capabilities: expected Capabilities or None, got {self.capabilities!r}"
            )

    @property
    def is_challenge(self) -> bool:
        """A 334 to AUTH: the server waits for an `AuthResponse` (RFC 4954 4)."""
        return isinstance(self.command, Auth) and self.reply.code == 334


_NEW = object.__new__
_SET_COMMAND: Callable[[CommandReply, Command | EndOfData], None] = CommandReply.__dict__[
    "command"
].__set__
_SET_REPLY: Callable[[CommandReply, Reply], None] = CommandReply.__dict__["reply"].__set__
_SET_CAPABILITIES: Callable[[CommandReply, Capabilities | None], None] = CommandReply.__dict__[
    "capabilities"
].__set__


def _command_reply(
    command: Command | EndOfData, reply: Reply, capabilities: Capabilities | None = None
) -> CommandReply:
    # For ClientConnection, whose reply comes from its parser and capabilities from
    # Capabilities.from_reply: valid by construction, so the slots are filled directly, at a
    # third of the frozen __init__'s cost (one event per reply: bench/bench_engine.py).
    event = _NEW(CommandReply)
    _SET_COMMAND(event, command)
    _SET_REPLY(event, reply)
    _SET_CAPABILITIES(event, capabilities)
    return event


@dataclass(frozen=True, slots=True)
class RecipientReply:
    """LMTP: the end-of-data reply for one recipient whose RCPT got a 2xx (RFC 2033 4.2)."""

    recipient: Rcpt
    reply: Reply

    def __post_init__(self) -> None:
        _reply(self.reply)
        if not isinstance(self.recipient, Rcpt):
            raise LocalProtocolError(f"recipient: expected a Rcpt, got {self.recipient!r}")


@dataclass(frozen=True, slots=True)
class ServerClosing:
    """A 421 the server sent with no command outstanding (RFC 5321 3.8; CV-10c)."""

    reply: Reply

    def __post_init__(self) -> None:
        _reply(self.reply)


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The server closed the connection with nothing outstanding (or only QUIT, NS-19)."""


Event = Greeting | CommandReply | RecipientReply | ServerClosing | ConnectionClosed
"""Everything `ClientConnection.next_event` can return besides `NEED_DATA`."""
