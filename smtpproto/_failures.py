"""Why a held session could not be opened: `SessionFailed` and its three kinds.

A ``deliver`` reports every failure per recipient and never raises for the server's sake; a
``connect`` has no recipient to report on, so the engine's outcome for the last server tried
is raised instead, with the same DSN status a ``deliver`` would have given.
"""

from __future__ import annotations

from .replies import Reply

__all__ = ["AuthenticationFailed", "ConnectionFailed", "SessionFailed", "TLSPolicyFailed"]


class SessionFailed(Exception):
    """No server of the destination completed the handshake of a held session.

    `dsn` is the RFC 3463 status the engine computed, `diagnostic` Postfix's text for it, and
    `reply` the server's reply behind it, if one was received.
    """

    def __init__(self, dsn: str, diagnostic: str, reply: Reply | None = None) -> None:
        super().__init__(f"{dsn} {diagnostic}")
        self.dsn = dsn
        self.diagnostic = diagnostic
        self.reply = reply

    @property
    def permanent(self) -> bool:
        """True for a ``5.x.x`` status: trying again later will not help."""
        return self.dsn.startswith("5")


class ConnectionFailed(SessionFailed):
    """No server could be found, reached, or got through the greeting and EHLO/HELO/LHLO."""


class TLSPolicyFailed(SessionFailed):
    """The TLS security level could not be met: STARTTLS missing, refused or failed, or a
    certificate the policy does not accept."""


class AuthenticationFailed(SessionFailed):
    """SMTP AUTH failed, or could not be done as the ``sasl_*`` parameters configure it."""
