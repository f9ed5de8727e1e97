"""What a delivery did for each recipient, and Postfix-style log lines for it."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Literal

from ._errors import LocalProtocolError
from .requests import TLSInfo
from .tlsreport import AttemptResult

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
    "printable",
]

Status = Literal["sent", "deferred", "bounced"]
"""The three terminal outcomes of rule 0 (Postfix's DELIVERED, DEFERRED, BOUNCED)."""

Trust = Literal["Anonymous", "Untrusted", "Trusted", "Verified"]
"""Postfix's words for a TLS session: no certificate, unchecked, chain verified, name matched."""

_TRUST_WORDS = frozenset({"Anonymous", "Untrusted", "Trusted", "Verified"})


@dataclass(frozen=True)
class TLSState:
    """The TLS a result travelled over: Postfix's trust word, protocol version and cipher."""

    trust: Trust
    version: str
    cipher: str
    level: str | None = None
    """The TLS security level that applied to this server once DANE and MTA-STS had their
    say: ``may``, ``encrypt``, ``fingerprint``, ``dane``, ``half-dane`` (usable TLSA records
    under an insecure MX), ``verify`` (also what MTA-STS ``enforce`` requires) or ``secure``;
    ``None`` when the session was not opened by a delivery (a scripted `TLSState`)."""
    matched: str | None = None
    """What authenticated the server: the TLSA record (``3 1 1 <hex>``), the fingerprint,
    or the certificate name that matched; ``None`` when nothing did."""

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


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(text: str) -> str:
    """`text` for a human: every character `str.isprintable` refuses, as ``\\xHH``,
    ``\\uHHHH`` or ``\\UHHHHHHHH`` (RP-24).

    That is every C0 and C1 control and DEL (ESC sequences, NEL), the line and paragraph
    separators U+2028/U+2029, format characters (bidi overrides, zero-width joiners),
    spaces other than U+0020, surrogates and unassigned code points. Postfix's printable()
    replaces such bytes with ``?`` but passes any valid UTF-8; here nothing that can end a
    line or drive a terminal passes, and what it was stays readable. A backslash is left as
    it is, so applying this twice changes nothing: every layer may apply it.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


# The DSN class that each outcome may carry (rule 0: soft = 4, hard = 5; 2.8: success = 2).
_CLASS_FOR_STATUS: dict[str, str] = {"sent": "2", "deferred": "4", "bounced": "5"}


_NEW = object.__new__
_SET = object.__setattr__


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
        # bounces (rule 2.2) keep their 5.x.x code though, so only "sent" is pinned to class 2.
        klass = self.dsn.partition(".")[0]
        if klass not in ("2", "4", "5") or (self.status == "sent") != (klass == "2"):
            raise LocalProtocolError(f"dsn: {self.dsn!r} does not fit status {self.status!r}")
        if self.delay < 0:
            raise LocalProtocolError(f"delay: must not be negative, got {self.delay!r}")

    @classmethod
    def _sent(
        cls,
        address: str,
        dsn: str,
        reply: Reply | None,
        relay: str | None,
        diagnostic: str,
        delay: float,
    ) -> RecipientResult:
        """Skips validation; for `Ledger`'s success, whose `dsn` is a positive reply's own
        (class 2 by `Reply.dsn`) and whose `delay` is never negative. One per recipient sent:
        a quarter of the validating ``__init__``'s cost."""
        result = _NEW(cls)
        _SET(result, "address", address)
        _SET(result, "status", "sent")
        _SET(result, "dsn", dsn)
        _SET(result, "reply", reply)
        _SET(result, "relay", relay)
        _SET(result, "diagnostic", diagnostic)
        _SET(result, "delay", delay)
        _SET(result, "tls", None)
        return result


@dataclass(frozen=True)
class DeliveryReport:
    """Per-recipient results of one delivery, the TLS in use, and the session transcript."""

    recipients: tuple[RecipientResult, ...]
    tls: TLSInfo | None
    destination_down: bool
    transcript: tuple[str, ...]
    tls_attempts: tuple[AttemptResult, ...] = ()
    """Every TLS attempt of the delivery, in order: the policy that applied (DANE, MTA-STS
    or none), success or the RFC 8460 failure type and reason; the input of
    `smtpproto.engine.tlsrpt.ReportAggregator`. Servers never asked for TLS (level ``none``,
    LMTP over a UNIX socket) have none."""


# Postfix log_adhoc.c formats every delay with two significant digits (format_tv SIG_DIGS).
_SIGNIFICANT = 2


def format_delay(seconds: float, resolution: int = 2) -> str:
    """Seconds as Postfix logs them: two significant digits, at most `resolution` decimals
    (``delay_logging_resolution_limit``, 0 to 6), trailing zeros dropped."""
    if not 0 <= resolution <= 6 or isinstance(resolution, bool):
        raise LocalProtocolError(f"resolution: expected 0 to 6 decimals, got {resolution!r}")
    if seconds < 0:
        raise LocalProtocolError(f"seconds: must not be negative, got {seconds!r}")
    whole = int(seconds)
    # Postfix format_tv: whole seconds use up significant digits; a sub-second value keeps
    # its leading zeros and then two significant digits; `resolution` caps either.
    if whole > 0:
        decimals = max(0, _SIGNIFICANT - len(str(whole)))
    elif seconds > 0:
        decimals = _SIGNIFICANT - 1 - math.floor(math.log10(seconds))
    else:
        decimals = 0
    # Postfix adds half a unit and truncates: round half up, not to even.
    step = Decimal(1).scaleb(-min(decimals, resolution))
    text = str(Decimal(repr(seconds)).quantize(step, rounding=ROUND_HALF_UP))
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def format_log_line(result: RecipientResult, *, resolution: int = 2) -> str:
    """``to=<b@example.com>, relay=..., delay=0.12, dsn=2.0.0, status=sent (250 2.0.0 Ok)``;
    `resolution` is ``ClientConfig.delay_logging_resolution_limit``."""
    # Postfix's qmgr log format: the relay is "none" when no server was reached. Every
    # field may hold text from a peer or from DNS: one printable() over the line (RP-24).
    return printable(
        f"to=<{result.address}>, relay={result.relay or 'none'}, "
        f"delay={format_delay(result.delay, resolution)}, dsn={result.dsn}, "
        f"status={result.status} ({result.diagnostic})"
    )
