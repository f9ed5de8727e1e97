"""Client commands: one frozen value type per command, validated on construction.

An invalid command cannot exist, so nothing unvalidated reaches the wire: every argument is
checked in ``__post_init__`` and the encoded line is built there once; `encode()` returns it.
Any C0 control character (CR, LF, NUL, TAB, ...) or DEL in any argument is a
`LocalProtocolError` naming the argument (CV-02, CV-03).

Line-length decisions:

- A command line is at most `MAX_COMMAND_LINE` (512) octets with its CRLF (RFC 5321
  4.5.3.1.4). For AUTH this is the rule that decides whether the initial response fits on the
  AUTH line (RFC 4954 4, rule 11.5); `Auth.fits` answers that before construction.
- MAIL, RCPT and XFORWARD may be longer: ESMTP parameters raise the limit (RFC 5321
  4.5.3.1.4, RFC 1870 3, RFC 3461 5) and Postfix sets no client-side limit on them (rules 6.6,
  13.4). They are still bounded at `MAX_EXTENDED_COMMAND_LINE` (2048) octets, which every
  combination of valid parameters stays under (512 + ORCPT 500 + NOTIFY, or 512 + SIZE +
  BODY + ENVID 100 xtext-encoded + RET + SMTPUTF8 + AUTH= 500).
- A SASL response line (`AuthResponse`) is not a command line and has no limit here: RFC 4954
  4 lets it exceed 512 octets (Kerberos and OAuth tokens do).

`MessageData` and `EndOfData` carry message content after a 354. They have no `encode()`:
the connection writes content through the body encoder (``smtpproto/body.py``), which does the
CRLF normalization and dot-stuffing. For that reason they are not part of the `Command`
union, whose members all encode themselves; `BodyCommand` names the pair.
"""

from __future__ import annotations

import base64
import functools
from dataclasses import KW_ONLY, dataclass, field
from typing import Literal

from ._abnf import (
    ADDRESS_LITERAL,
    CONTROL,
    DOMAIN,
    DOT_STRING,
    ESMTP_KEYWORD,
    QUOTED_STRING,
    SASL_MECHANISM,
    UTF8_DOMAIN,
)
from ._errors import LocalProtocolError

__all__ = [
    "MAX_COMMAND_LINE",
    "MAX_EXTENDED_COMMAND_LINE",
    "Auth",
    "AuthResponse",
    "Bdat",
    "BodyCommand",
    "Command",
    "Data",
    "Ehlo",
    "EndOfData",
    "Helo",
    "Lhlo",
    "Mail",
    "MessageData",
    "Noop",
    "Quit",
    "Rcpt",
    "Rset",
    "StartTLS",
    "Xforward",
    "quote_mailbox",
    "xtext",
]

MAX_COMMAND_LINE = 512
"""Octets in a command line, CRLF included (RFC 5321 4.5.3.1.4)."""

MAX_EXTENDED_COMMAND_LINE = 2048
"""Octets in a MAIL, RCPT or XFORWARD line, CRLF included (see the module docstring)."""

# RFC 1870 3: size-value = 1*20DIGIT; RFC 3030 2: chunk sizes use the same digits.
_MAX_SIZE = 10**20 - 1
# RFC 3461 4.4: an ENVID is at most 100 characters before xtext encoding.
_MAX_ENVID = 100
# RFC 3461 4.1 / rule 6.2: NEVER alone, or these in this order.
_NOTIFY_ORDER = ("SUCCESS", "FAILURE", "DELAY")
# Postfix mail_proto.h XFORWARD attribute names, in the order rule 13.2 sends them.
_XFORWARD_NAMES = ("NAME", "ADDR", "PORT", "PROTO", "HELO", "IDENT", "SOURCE")


def _text(name: str, value: object) -> str:
    # CV-02/CV-03: the one gate every string argument passes.
    if not isinstance(value, str):
        raise LocalProtocolError(f"{name}: expected str, got {type(value).__name__}")
    bad = CONTROL.search(value)
    if bad is not None:
        raise LocalProtocolError(f"{name}: control character {bad[0]!r} is not allowed (CV-02)")
    return value


def _number(name: str, value: object) -> int:
    # CV-02: a str such as "10\r\nRCPT TO:<x>" must never be formatted into a line; bool is an
    # int subclass but never a size.
    if type(value) is not int or not 0 <= value <= _MAX_SIZE:
        raise LocalProtocolError(f"{name}: expected an int in 0..{_MAX_SIZE}, got {value!r}")
    return value


def _flag(name: str, value: object) -> bool:
    if type(value) is not bool:
        raise LocalProtocolError(f"{name}: expected a bool, got {value!r}")
    return value


def _set_line(command: object, line: str, limit: int | None) -> None:
    data = line.encode("utf-8") + b"\r\n"
    if limit is not None and len(data) > limit:
        raise LocalProtocolError(
            f"{type(command).__name__}: the command line would be {len(data)} octets, over the "
            f"{limit}-octet limit (RFC 5321 4.5.3.1.4)"
        )
    object.__setattr__(command, "_line", data)


def quote_mailbox(address: str) -> str:
    """Quote the local part of `address` when it is not a dot-string (rule 6.5).

    Postfix ``smtp_quote_rfc821_envelope``: split at the last ``@``; a local part that is not
    a valid dot-string is wrapped in double quotes with ``"`` and ``\\`` escaped; the domain is
    never changed; ``""`` stays empty (the null sender).
    """
    _text("address", address)
    if not address:
        return address
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if not DOT_STRING.fullmatch(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}{at}{domain}"


@functools.cache
def _xtext_table(specials: str) -> tuple[str, ...]:
    return tuple(
        chr(b) if 33 <= b <= 126 and chr(b) != "+" and chr(b) not in specials else f"+{b:02X}"
        for b in range(256)
    )


def xtext(value: str, specials: str = "+=") -> str:
    """Encode `value` (as UTF-8) as RFC 3461 4 xtext: ``+HH`` for every byte outside 33..126,
    for ``+``, and for each character of `specials` (rule 6.4: ``"+="`` for ENVID and ORCPT,
    ``""`` for XFORWARD)."""
    table = _xtext_table(specials)
    return "".join([table[b] for b in value.encode("utf-8")])


def _utf8_addr_xtext(address: str) -> str:
    # RFC 6533 3 utf-8-addr-xtext: QCHAR (%x21-2a / %x2c-3c / %x3e-5b / %x5d-7e) is literal,
    # every other character is "\x{HEXPOINT}", the code point in upper-case hex.
    return "".join(
        c if "\x21" <= c <= "\x7e" and c not in "+=\\" else f"\\x{{{ord(c):X}}}" for c in address
    )


def _domain_ok(domain: str) -> bool:
    if domain.startswith("["):
        return ADDRESS_LITERAL.fullmatch(domain) is not None
    pattern = DOMAIN if domain.isascii() else UTF8_DOMAIN
    return pattern.fullmatch(domain) is not None


def _path(name: str, address: str, quote: bool) -> str:
    # RFC 5321 4.1.2 Path, built from a checked address; the result is what goes between
    # "FROM:" or "TO:" and the parameters. Checking the mailbox, even with quote=False, is what
    # stops "a@x> NOTIFY=NEVER" from adding parameters of its own.
    path = _checked_path(address, quote)
    if path is None:
        how = "" if quote else " (quote=False sends it as given)"
        raise LocalProtocolError(f"{name}: not a valid mailbox{how}: {address!r}")
    return path


@functools.lru_cache(maxsize=1024)
def _checked_path(address: str, quote: bool) -> str | None:
    # _path's work, None for an invalid mailbox; remembered, as a bulk sender repeats its
    # sender and often its recipients (`address` already passed _text, so it is a str).
    if not address:
        return "<>"
    mailbox = quote_mailbox(address) if quote else address
    local, at, domain = mailbox.rpartition("@")
    if not at:
        local, domain = mailbox, ""
    local_ok = DOT_STRING.fullmatch(local) or QUOTED_STRING.fullmatch(local)
    if not local_ok or (at and not _domain_ok(domain)):
        return None
    return f"<{mailbox}>"


def _orcpt(value: str) -> str:
    # RFC 3461 4.2 "ORCPT=" addr-type ";" xtext, and rule 6.3: a value with no type is taken
    # as an address and typed rfc822 (utf-8 when it is not ASCII, RFC 6533 3).
    kind, semicolon, address = value.partition(";")
    if not semicolon:
        kind, address = ("rfc822" if value.isascii() else "utf-8"), value
    if not ESMTP_KEYWORD.fullmatch(kind):
        raise LocalProtocolError(f"orcpt: address type {kind!r} is not an atom (RFC 3461 4.2)")
    if not address:
        raise LocalProtocolError("orcpt: the original recipient address is empty")
    if kind.lower() == "utf-8":
        return f"{kind};{_utf8_addr_xtext(address)}"
    if kind.lower() == "rfc822" and not address.isascii():
        raise LocalProtocolError(
            f"orcpt: an rfc822 address must be ASCII (RFC 3461 4.2); use utf-8;: {value!r}"
        )
    return xtext(f"{kind};{address}")


@dataclass(frozen=True, slots=True)
class _Hello:
    name: str
    _line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        name = _text("name", self.name)
        # RFC 5321 4.1.1.1: EHLO/HELO take a Domain or an address-literal; LHLO likewise
        # (RFC 2033 4.1). A space would add a second argument.
        if not (ADDRESS_LITERAL.fullmatch(name) or DOMAIN.fullmatch(name)):
            raise LocalProtocolError(f"name: not a domain or address literal: {name!r}")
        verb = type(self).__name__.upper()
        _set_line(self, f"{verb} {name}", MAX_COMMAND_LINE)

    def encode(self) -> bytes:
        """The command line, CRLF included."""
        return self._line


@dataclass(frozen=True, slots=True)
class Ehlo(_Hello):
    """``EHLO name`` (RFC 5321 4.1.1.1)."""


@dataclass(frozen=True, slots=True)
class Helo(_Hello):
    """``HELO name`` (RFC 5321 4.1.1.1), for servers that refuse EHLO."""


@dataclass(frozen=True, slots=True)
class Lhlo(_Hello):
    """``LHLO name``, LMTP's EHLO (RFC 2033 4.1)."""


@dataclass(frozen=True, slots=True)
class _Bare:
    # Commands without arguments: one constant line each, in _BARE_LINES.
    def encode(self) -> bytes:
        """The command line, CRLF included."""
        return _BARE_LINES[type(self)]


@dataclass(frozen=True, slots=True)
class StartTLS(_Bare):
    """``STARTTLS`` (RFC 3207 4)."""


@dataclass(frozen=True, slots=True)
class Noop(_Bare):
    """``NOOP`` (RFC 5321 4.1.1.9)."""


@dataclass(frozen=True, slots=True)
class Rset(_Bare):
    """``RSET`` (RFC 5321 4.1.1.5): abort the mail transaction."""


@dataclass(frozen=True, slots=True)
class Quit(_Bare):
    """``QUIT`` (RFC 5321 4.1.1.10)."""


@dataclass(frozen=True, slots=True)
class Data(_Bare):
    """``DATA`` (RFC 5321 4.1.1.4); the content follows the 354 reply as `MessageData`."""


_BARE_LINES: dict[type[_Bare], bytes] = {
    StartTLS: b"STARTTLS\r\n",
    Noop: b"NOOP\r\n",
    Rset: b"RSET\r\n",
    Quit: b"QUIT\r\n",
    Data: b"DATA\r\n",
}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class Auth:
    """``AUTH mechanism [initial-response]`` (RFC 4954 4); ``b""`` is sent as ``=``.

    The whole line must fit in `MAX_COMMAND_LINE`; when `fits` says it does not, send
    ``Auth(mechanism)`` and give the response to the first (empty) challenge (rule 11.5).
    """

    mechanism: str
    initial_response: bytes | None = None
    _line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mechanism = _text("mechanism", self.mechanism)
        if not SASL_MECHANISM.fullmatch(mechanism):
            raise LocalProtocolError(
                f"mechanism: not a SASL mechanism name (RFC 4422 3.1): {mechanism!r}"
            )
        object.__setattr__(self, "mechanism", mechanism.upper())
        response = self.initial_response
        if response is None:
            _set_line(self, f"AUTH {self.mechanism}", MAX_COMMAND_LINE)
            return
        if type(response) is not bytes:
            raise LocalProtocolError(
                f"initial_response: expected bytes or None, got {type(response).__name__}"
            )
        if not Auth.fits(mechanism, response):
            raise LocalProtocolError(
                f"initial_response: AUTH {self.mechanism} with it exceeds {MAX_COMMAND_LINE} "
                "octets; send AUTH without it and answer the first challenge (RFC 4954 4)"
            )
        _set_line(self, f"AUTH {self.mechanism} {_b64(response) or '='}", None)

    @staticmethod
    def fits(mechanism: str, initial_response: bytes | None) -> bool:
        """Whether ``AUTH mechanism initial-response`` fits in `MAX_COMMAND_LINE` octets.

        Postfix's formula (rule 11.5): ``len(mech) + len(base64) + 8 <= 512``.
        """
        if initial_response is None:
            return len(mechanism) + 7 <= MAX_COMMAND_LINE
        encoded = max(1, (len(initial_response) + 2) // 3 * 4)
        return len(mechanism) + encoded + 8 <= MAX_COMMAND_LINE

    def encode(self) -> bytes:
        """The command line, CRLF included."""
        return self._line

    def __repr__(self) -> str:
        """A repr without the credential."""
        shown = "None" if self.initial_response is None else "<redacted>"
        return f"Auth(mechanism={self.mechanism!r}, initial_response={shown})"


@dataclass(frozen=True, slots=True)
class AuthResponse:
    """One SASL response line: base64 `data`, or ``*`` to cancel when None (RFC 4954 4)."""

    data: bytes | None
    _line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.data is None:
            _set_line(self, "*", None)
            return
        if type(self.data) is not bytes:
            raise LocalProtocolError(
                f"data: expected bytes or None, got {type(self.data).__name__}"
            )
        _set_line(self, _b64(self.data), None)

    def encode(self) -> bytes:
        """The response line, CRLF included."""
        return self._line

    def __repr__(self) -> str:
        """A repr without the credential."""
        return "AuthResponse(data=None)" if self.data is None else "AuthResponse(data=<redacted>)"


@dataclass(frozen=True, slots=True)
class Mail:
    """``MAIL FROM:<sender>`` with ESMTP parameters in Postfix's order (rule 6.1).

    SIZE (RFC 1870), BODY (RFC 6152, RFC 3030), ENVID and RET (RFC 3461), SMTPUTF8
    (RFC 6531), AUTH= (RFC 4954 5; ``""`` or ``"<>"`` sends ``AUTH=<>``). `sender` ``""`` is
    the null sender ``<>``. A non-ASCII sender needs ``smtputf8=True`` (RFC 6531 3.4).
    """

    sender: str
    _: KW_ONLY
    size: int | None = None
    body: Literal["7BIT", "8BITMIME", "BINARYMIME"] | None = None
    smtputf8: bool = False
    ret: Literal["FULL", "HDRS"] | None = None
    envid: str | None = None
    auth: str | None = None
    quote: bool = True
    _line: bytes = field(init=False, repr=False, compare=False)
    _head: int = field(init=False, repr=False, compare=False)
    """Octets of `_line` before SIZE (or where it would go): ``MAIL FROM:<path>``."""
    _tail: int = field(init=False, repr=False, compare=False)
    """Where in `_line` the parameters after SIZE begin (`_head` when there is no SIZE)."""

    def __post_init__(self) -> None:
        sender = _text("sender", self.sender)
        smtputf8 = _flag("smtputf8", self.smtputf8)
        if not sender.isascii() and not smtputf8:
            raise LocalProtocolError(
                f"sender: a non-ASCII address needs smtputf8=True (RFC 6531 3.4): {sender!r}"
            )
        words = [f"MAIL FROM:{_path('sender', sender, _flag('quote', self.quote))}"]
        head = len(words[0].encode("utf-8"))
        object.__setattr__(self, "_head", head)
        object.__setattr__(self, "_tail", head)
        if self.size is not None:
            words.append(f"SIZE={_number('size', self.size)}")
            object.__setattr__(self, "_tail", head + len(words[-1]) + 1)
        if self.body is not None:
            if self.body not in ("7BIT", "8BITMIME", "BINARYMIME"):
                raise LocalProtocolError(
                    f"body: expected '7BIT', '8BITMIME' or 'BINARYMIME', got {self.body!r}"
                )
            words.append(f"BODY={self.body}")
        if self.envid is not None:
            envid = _text("envid", self.envid)
            # RFC 3461 4.4: 1 to 100 printable US-ASCII characters before encoding.
            if not envid or len(envid) > _MAX_ENVID or not envid.isascii():
                raise LocalProtocolError(
                    f"envid: expected 1 to {_MAX_ENVID} ASCII characters, got {envid!r}"
                )
            words.append(f"ENVID={xtext(envid)}")
        if self.ret is not None:
            if self.ret not in ("FULL", "HDRS"):
                raise LocalProtocolError(f"ret: expected 'FULL' or 'HDRS', got {self.ret!r}")
            words.append(f"RET={self.ret}")
        if smtputf8:
            words.append("SMTPUTF8")
        if self.auth is not None:
            auth = _text("auth", self.auth)
            # RFC 4954 5: "<>" when the submitter is unknown, else the xtext of the mailbox.
            words.append("AUTH=<>" if auth in ("", "<>") else f"AUTH={xtext(auth)}")
        _set_line(self, " ".join(words), MAX_EXTENDED_COMMAND_LINE)

    def encode(self) -> bytes:
        """The command line, CRLF included."""
        return self._line

    def _resized(self, size: int | None) -> Mail:
        """This command with ``SIZE=size`` (None: no SIZE), everything else as checked here.

        `dataclasses.replace` without checking the address and the other parameters again: a
        held session sends one MAIL per message, and only the size changes. SIZE comes first
        after the path (rule 6.1), so the new line is the old one with that word swapped.
        """
        head = self._head
        word = b"" if size is None else b" SIZE=%d" % _number("size", size)
        line = self._line[:head] + word + self._line[self._tail :]
        if len(line) > MAX_EXTENDED_COMMAND_LINE:
            raise LocalProtocolError(
                f"Mail: the command line would be {len(line)} octets, over the "
                f"{MAX_EXTENDED_COMMAND_LINE}-octet limit (RFC 5321 4.5.3.1.4)"
            )
        mail = _NEW(Mail)
        for name in _MAIL_KEPT:
            _SET(mail, name, getattr(self, name))
        _SET(mail, "size", size)
        _SET(mail, "_line", line)
        _SET(mail, "_tail", head + len(word))
        return mail


_MAIL_KEPT = ("sender", "body", "smtputf8", "ret", "envid", "auth", "quote", "_head")
"""The fields `Mail._resized` copies: all but the size, the line and where SIZE ends."""
_NEW = object.__new__
_SET = object.__setattr__


@dataclass(frozen=True, slots=True)
class Rcpt:
    """``RCPT TO:<recipient>`` with the DSN parameters ORCPT and NOTIFY (RFC 3461 4; rule 6.2).

    `notify` is NEVER alone or any of SUCCESS, FAILURE, DELAY (case-insensitive), sent in that
    fixed order. `orcpt` is ``type;address`` as given, or a bare address typed ``rfc822;``
    (``utf-8;`` if not ASCII); ``utf-8`` values use RFC 6533 encoding, others xtext. A
    non-ASCII recipient is accepted here; only an SMTPUTF8 transaction may send it, which
    `ClientConnection` checks.
    """

    recipient: str
    _: KW_ONLY
    notify: tuple[str, ...] | None = None
    orcpt: str | None = None
    quote: bool = True
    _line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        recipient = _text("recipient", self.recipient)
        if not recipient:
            raise LocalProtocolError("recipient: RCPT needs a non-empty address (RFC 5321 4.1.1.3)")
        words = [f"RCPT TO:{_path('recipient', recipient, _flag('quote', self.quote))}"]
        if self.orcpt is not None:
            words.append(f"ORCPT={_orcpt(_text('orcpt', self.orcpt))}")
        if self.notify is not None:
            words.append(f"NOTIFY={_notify(self.notify)}")
        _set_line(self, " ".join(words), MAX_EXTENDED_COMMAND_LINE)

    def encode(self) -> bytes:
        """The command line, CRLF included."""
        return self._line


def _notify(notify: object) -> str:
    if not isinstance(notify, tuple) or not notify:
        raise LocalProtocolError(f"notify: expected a non-empty tuple of str, got {notify!r}")
    words = [_text("notify", word).upper() for word in notify]
    chosen = set(words)
    # RFC 3461 4.1: NEVER must appear alone; no keyword twice.
    if len(chosen) != len(words) or not (chosen == {"NEVER"} or chosen <= set(_NOTIFY_ORDER)):
        raise LocalProtocolError(
            f"notify: expected NEVER alone or distinct SUCCESS, FAILURE, DELAY; got {notify!r}"
        )
    if chosen == {"NEVER"}:
        return "NEVER"
    return ",".join(word for word in _NOTIFY_ORDER if word in chosen)


@dataclass(frozen=True, slots=True)
class Xforward:
    """``XFORWARD name=value ...`` (Postfix XFORWARD_README; rule 13.2).

    Names are NAME, ADDR, PORT, PROTO, HELO, IDENT, SOURCE (any case, sent upper-case, in the
    order given); values are non-empty and xtext-encoded with no specials, so ``=`` stays
    literal (rule 6.4).
    """

    attributes: tuple[tuple[str, str], ...]
    _line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        attributes = self.attributes
        if not isinstance(attributes, tuple) or not attributes:
            raise LocalProtocolError(
                f"attributes: expected a non-empty tuple of (name, value), got {attributes!r}"
            )
        words = ["XFORWARD"]
        seen: set[str] = set()
        for pair in attributes:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise LocalProtocolError(f"attributes: expected (name, value), got {pair!r}")
            name = _text("attributes", pair[0]).upper()
            if name not in _XFORWARD_NAMES or name in seen:
                raise LocalProtocolError(f"attributes: unknown or repeated name {pair[0]!r}")
            seen.add(name)
            value = _text(f"attributes[{name}]", pair[1])
            if not value:
                raise LocalProtocolError(f"attributes[{name}]: the value is empty")
            words.append(f"{name}={xtext(value, '')}")
        _set_line(self, " ".join(words), MAX_EXTENDED_COMMAND_LINE)

    def encode(self) -> bytes:
        """The command line, CRLF included."""
        return self._line


@dataclass(frozen=True, slots=True)
class Bdat:
    """``BDAT size [LAST]`` (RFC 3030 2): the header line only; the chunk bytes follow it."""

    size: int
    last: bool = False
    _line: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        size = _number("size", self.size)
        last = " LAST" if _flag("last", self.last) else ""
        _set_line(self, f"BDAT {size}{last}", MAX_COMMAND_LINE)

    def encode(self) -> bytes:
        """The command line, CRLF included."""
        return self._line


@dataclass(frozen=True, slots=True)
class MessageData:
    """Message content after a 354, as the caller has it; the connection encodes it."""

    data: bytes

    def __post_init__(self) -> None:
        if type(self.data) is not bytes:
            raise LocalProtocolError(f"data: expected bytes, got {type(self.data).__name__}")


@dataclass(frozen=True, slots=True)
class EndOfData:
    """The end of message content: the connection finishes it (``.`` after DATA)."""


Command = (
    Ehlo
    | Helo
    | Lhlo
    | StartTLS
    | Auth
    | AuthResponse
    | Mail
    | Rcpt
    | Data
    | Bdat
    | Rset
    | Noop
    | Quit
    | Xforward
)
"""Every command line a client sends; each member has ``encode() -> bytes``."""

BodyCommand = MessageData | EndOfData
"""Message content and its end, which the connection encodes with the body encoder."""
