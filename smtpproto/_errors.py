"""The library's two errors, after h11: local misuse versus remote misbehaviour.

Also the typed refusal of a message (`Refusal`, and `MessageRefused` when it is found while the
content streams): a local decision the engine reports per recipient, not a protocol error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "LocalProtocolError",
    "MessageRefused",
    "ProtocolError",
    "Refusal",
    "RemoteProtocolError",
]


class ProtocolError(Exception):
    """Base of the two protocol errors; nothing else escapes from parsing or encoding."""


class LocalProtocolError(ProtocolError, ValueError):
    """The caller misused the API or gave invalid input; nothing was sent.

    Also a ``ValueError``, so code that validates input generically still catches it.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; the session is unusable."""


# RFC 3463 2: class "." subject "." detail; a local refusal is never a success.
_STATUS = re.compile(r"[45]\.[0-9]{1,3}\.[0-9]{1,3}")


@dataclass(frozen=True, slots=True)
class Refusal:
    """The client refuses to send this message: an RFC 3463 status and Postfix-style text."""

    dsn: str
    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.dsn, str) or _STATUS.fullmatch(self.dsn) is None:
            raise LocalProtocolError(f"dsn: expected a 4.x.x or 5.x.x status, got {self.dsn!r}")
        if not isinstance(self.text, str) or not self.text or not self.text.isprintable():
            raise LocalProtocolError(f"text: expected one printable line, got {self.text!r}")

    @property
    def permanent(self) -> bool:
        """True for a ``5.x.x`` status: the message bounces."""
        return self.dsn.startswith("5")

    def __str__(self) -> str:
        return f"{self.dsn} {self.text}"


class MessageRefused(LocalProtocolError):
    """The content cannot be sent as it streams (hostile MIME); `refusal` says why."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal
