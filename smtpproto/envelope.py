"""The envelope of one delivery: sender, recipients and the RFC 3461 DSN requests."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from ._errors import LocalProtocolError

__all__ = ["Envelope", "Recipient"]

# RFC 3461 4.1: NEVER stands alone; otherwise a subset, sent in Postfix's fixed order (rule 6.2).
_NOTIFY_ORDER = ("SUCCESS", "FAILURE", "DELAY")
# Postfix mail_proto.h XFORWARD attributes (rule 13.1).
_XFORWARD_NAMES = frozenset({"NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE"})


def _check_text(name: str, value: str) -> None:
    # A CR, LF or NUL would end the command line early (command injection, DESIGN.md layer 1).
    if not isinstance(value, str):
        raise LocalProtocolError(f"{name}: expected str, got {type(value).__name__}")
    if any(c in value for c in "\r\n\0"):
        raise LocalProtocolError(f"{name}: CR, LF and NUL are not allowed: {value!r}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            # Undecodable bytes (surrogateescape) would fail only when the command is encoded,
            # after EHLO and MAIL had gone out.
            raise LocalProtocolError(f"{name}: not valid UTF-8 text: {value!r}") from None


@dataclass(frozen=True)
class Recipient:
    """One envelope recipient with its DSN NOTIFY list and ORCPT (RFC 3461 4.1, 4.2)."""

    address: str
    notify: tuple[str, ...] | None = None
    orcpt: str | None = None

    def __post_init__(self) -> None:
        _check_text("address", self.address)
        if not self.address:
            raise LocalProtocolError("address: a recipient address cannot be empty")
        if self.orcpt is not None:
            _check_text("orcpt", self.orcpt)
            # RFC 3461 4.2: "addr-type ; xtext"; the type is what tells the server how to read it.
            if ";" not in self.orcpt:
                raise LocalProtocolError(f"orcpt: expected 'type;address', got {self.orcpt!r}")
        if self.notify is not None:
            if not isinstance(self.notify, tuple):
                raise LocalProtocolError("notify: expected a tuple of keywords")
            words = {w.upper() for w in self.notify if isinstance(w, str)}
            if len(words) != len(self.notify) or not words:
                raise LocalProtocolError(f"notify: expected distinct keywords, got {self.notify!r}")
            if words != {"NEVER"} and not words <= set(_NOTIFY_ORDER):
                raise LocalProtocolError(
                    f"notify: NEVER alone or a subset of SUCCESS,FAILURE,DELAY; got {self.notify!r}"
                )
            ordered = tuple(w for w in ("NEVER", *_NOTIFY_ORDER) if w in words)
            object.__setattr__(self, "notify", ordered)


@dataclass(frozen=True)
class Envelope:
    """Sender, recipients (at least one) and the envelope DSN parameters RET and ENVID."""

    sender: str
    recipients: tuple[Recipient, ...]
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    smtputf8: bool = False
    """Ask for an SMTPUTF8 transaction; set automatically for a non-ASCII envelope."""
    xforward: tuple[tuple[str, str], ...] = ()
    """Original-client attributes (NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE) for XFORWARD."""
    arrival: float | None = None
    """When the message was queued, on the engine's clock; ``None``: unknown, taken as just
    queued (the first attempt) by the rules that ask, the PIX ``delay_dotcrlf`` threshold and
    the plaintext retry after a failed TLS handshake (rules 3.3, 5.5)."""

    def __post_init__(self) -> None:
        _check_text("sender", self.sender)
        if self.arrival is not None and (
            isinstance(self.arrival, bool)
            or not isinstance(self.arrival, int | float)
            or not math.isfinite(self.arrival)
        ):
            raise LocalProtocolError(f"arrival: expected a finite time or None: {self.arrival!r}")
        if not isinstance(self.recipients, tuple) or not self.recipients:
            raise LocalProtocolError("recipients: expected a non-empty tuple of Recipient")
        for r in self.recipients:
            if not isinstance(r, Recipient):
                raise LocalProtocolError(f"recipients: expected Recipient, got {r!r}")
        if self.ret not in (None, "FULL", "HDRS"):
            raise LocalProtocolError(f"ret: expected 'FULL', 'HDRS' or None, got {self.ret!r}")
        if self.envid is not None:
            _check_text("envid", self.envid)
            # RFC 3461 4.4: ENVID is at most 100 characters before xtext encoding.
            if not self.envid or len(self.envid) > 100:
                raise LocalProtocolError("envid: expected 1 to 100 characters")
        for pair in self.xforward:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise LocalProtocolError(f"xforward: expected (name, value) pairs, got {pair!r}")
            name, value = pair
            _check_text("xforward", name)
            _check_text("xforward", value)
            if name.upper() not in _XFORWARD_NAMES:
                raise LocalProtocolError(f"xforward: unknown attribute {name!r}")
        addresses = self.sender + "".join(r.address for r in self.recipients)
        if not addresses.isascii():
            # RFC 6531 3.4: a non-ASCII envelope can only travel in an SMTPUTF8 transaction, so
            # such an envelope asks for one whatever the caller said (rule 3.10 then applies).
            object.__setattr__(self, "smtputf8", True)
