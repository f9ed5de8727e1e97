"""The library's two errors, after h11: local misuse versus remote misbehaviour."""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base of the two protocol errors; nothing else escapes from parsing or encoding."""


class LocalProtocolError(ProtocolError, ValueError):
    """The caller misused the API or gave invalid input; nothing was sent.

    Also a ``ValueError``, so code that validates input generically still catches it.
    """


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; the session is unusable."""
