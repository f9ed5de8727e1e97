"""What a delivery did for each recipient, and Postfix-style log lines for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ._errors import LocalProtocolError
from .requests import TLSInfo

if TYPE_CHECKING:
    from .replies import Reply

__all__ = ["DeliveryReport", "RecipientResult", "Status", "format_delay", "format_log_line"]

Status = Literal["sent", "deferred", "bounced"]
"""The three terminal outcomes of spec §0 (Postfix's DELIVERED, DEFERRED, BOUNCED)."""

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
