"""The library's two errors, after h11: local misuse versus remote misbehaviour."""

from __future__ import annotations

__all__ = ["LocalProtocolError", "ProtocolError", "RemoteProtocolError"]


class ProtocolError(Exception):
    """Base of the two protocol errors; nothing else escapes from parsing or encoding."""


class LocalProtocolError(ProtocolError):
    """The caller misused the API or gave invalid input; nothing was sent."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol does not allow; the session is unusable."""
