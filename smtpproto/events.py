"""What `ClientConnection.next_event` returns: small frozen value types, after h11's ``_events``.

Every event that carries a reply names the command it answers, so a caller never has to keep
its own FIFO of commands in flight. `NEED_DATA` is the sentinel for "feed me more bytes".
"""

from __future__ import annotations

import enum
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


# What frozen dataclasses use to fill their own fields, looked up once: CommandReply._trusted
# runs once per reply.
_NEW = object.__new__
_SET = object.__setattr__


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

    @classmethod
    def _trusted(
        cls,
        command: Command | EndOfData,
        reply: Reply,
        capabilities: Capabilities | None = None,
    ) -> CommandReply:
        """Skips validation; caller guarantees validity: `reply` a `Reply`, `capabilities`
        None or `Capabilities`.

        For `ClientConnection`, whose replies come from its parser and capabilities from
        `Capabilities.from_reply`: one event per reply, at two thirds of the cost of the
        validating ``__init__`` (``bench/bench_engine.py`` counts it per message).
        """
        event = _NEW(cls)
        _SET(event, "command", command)
        _SET(event, "reply", reply)
        _SET(event, "capabilities", capabilities)
        return event

    @property
    def is_challenge(self) -> bool:
        """A 334 to AUTH: the server waits for an `AuthResponse` (RFC 4954 4)."""
        return isinstance(self.command, Auth) and self.reply.code == 334


# ClientConnection's name for the trusted constructor, one call per reply it turns into an event.
_command_reply = CommandReply._trusted


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
