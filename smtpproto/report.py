"""What a delivery did for each recipient, and Postfix-style log lines for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._errors import LocalProtocolError
from .requests import TLSInfo

if TYPE_CHECKING:
    from .replies import Reply

__all__ = [
    "DeliveryReport",
    "RecipientResult",
    "Status",
    "TLSState",
    "Trust",
    "format_delay",
    "format_log_line",
]

Status = Literal["sent", "deferred", "bounced"]
"""The three terminal outcomes of spec §0 (Postfix's DELIVERED, DEFERRED, BOUNCED)."""

Trust = Literal["Anonymous", "Untrusted", "Trusted", "Verified"]
"""Postfix's words for a TLS session: no certificate, unchecked, chain verified, name matched."""

_TRUST_WORDS = frozenset({"Anonymous", "Untrusted", "Trusted", "Verified"})


@dataclass(frozen=True)
class TLSState:
    """The TLS a result travelled over: Postfix's trust word, protocol version and cipher."""

    trust: Trust
    version: str
    cipher: str

    def __post_init__(self) -> None:
        if self.trust not in _TRUST_WORDS:
            raise LocalProtocolError(f"trust: not a Postfix trust word: {self.trust!r}")

    @property
    def verified(self) -> bool:
        """True when the certificate chain verified and a policy name matched it."""
        return self.trust == "Verified"

    def __str__(self) -> str:
        """``Verified TLS TLSv1.3 with cipher TLS_AES_256_GCM_SHA384``, as Postfix logs it."""
        return f"{self.trust} TLS {self.version} with cipher {self.cipher}"


# The DSN class that each outcome may carry (spec §0: soft = 4, hard = 5; 2.8: success = 2).
_CLASS_FOR_STATUS: dict[str, str] = {"sent": "2", "deferred": "4", "bounced": "5"}


@dataclass(frozen=True)
class RecipientResult:
    """The one outcome of one recipient: status, DSN code, the reply behind it, the relay."""

    address: str
    status: Status
    dsn: str
    reply: Reply | None
    relay: str | None
    diagnostic: str
    delay: float
    tls: TLSState | None = None
    """The TLS of the session that decided this result; ``None``: plaintext or no session."""

    def __post_init__(self) -> None:
        if self.status not in _CLASS_FOR_STATUS:
            raise LocalProtocolError(f"status: expected sent, deferred or bounced: {self.status!r}")
        # A sent recipient with a 5.x.x code would be a lie in a DSN (RFC 3464 2.3.4); soft
        # bounces (spec 2.2) keep their 5.x.x code though, so only "sent" is pinned to class 2.
        klass = self.dsn.partition(".")[0]
        if klass not in ("2", "4", "5") or (self.status == "sent") != (klass == "2"):
            raise LocalProtocolError(f"dsn: {self.dsn!r} does not fit status {self.status!r}")
        if self.delay < 0:
            raise LocalProtocolError(f"delay: must not be negative, got {self.delay!r}")


@dataclass(frozen=True)
class DeliveryReport:
    """Per-recipient results of one delivery, the TLS in use, and the session transcript."""

    recipients: tuple[RecipientResult, ...]
    tls: TLSInfo | None
    destination_down: bool
    transcript: tuple[str, ...]


def format_delay(seconds: float) -> str:
    """Seconds as Postfix logs them: at most two decimals, trailing zeros dropped."""
    text = f"{seconds:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def format_log_line(result: RecipientResult) -> str:
    """``to=<b@example.com>, relay=..., delay=0.12, dsn=2.0.0, status=sent (250 2.0.0 Ok)``."""
    # Postfix's qmgr log format: the relay is "none" when no server was reached.
    return (
        f"to=<{result.address}>, relay={result.relay or 'none'}, "
        f"delay={format_delay(result.delay)}, dsn={result.dsn}, "
        f"status={result.status} ({result.diagnostic})"
    )
