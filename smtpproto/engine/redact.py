"""Keep secrets out of every string the engine produces (AU-15, AU-18).

A :class:`Redactor` belongs to a delivery (every session of it shares one). It learns each
secret before the first byte of it is written -- the password and token of the credentials a
session chose, the PLAIN and XOAUTH2 blobs, every AUTH line sent, the SCRAM proof -- and from
then on :meth:`Redactor.shown` masks, in any text, every run of ``MIN_SLICE`` or more
characters that is a slice of one of their *forms*: the raw text, base64 (standard and
URL-safe alphabet, whole and at each byte alignment inside a longer blob) and hex (lower and
upper case). The engine builds every human-facing string through `shown`: transcript lines,
diagnostics, the report's replies, the exceptions of ``open_session``. `shown` also applies
:func:`smtpproto.report.printable`, so hostile text is escaped in the same single step (RP-24).

Why six characters (``MIN_SLICE``): a server that cuts what it echoes (the tail of a base64
blob, the first characters of a password) must not get any useful part through, but shorter
runs match ordinary text too often: every 4-letter word is a slice of some password's
base64, and masking it would mangle the diagnostics an administrator needs. Six characters
of a base64 form carry 36 bits, six of a password at least the part that makes guessing it
hard. A shorter secret (a password under six characters) is masked where it appears whole
and not inside a longer word: masking every ``p`` of a one-letter password would leave no
transcript, and hiding such a password gains nothing.

:func:`redact_client_line` keeps the AUTH verb and mechanism visible while hiding the rest.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import LocalProtocolError
from ..replies import Reply
from ..report import printable
from ..sasl import SaslCredentials
from ..tables import Lookup

__all__ = [
    "MIN_SLICE",
    "REDACTED",
    "Redactor",
    "Secrets",
    "password_map_secrets",
    "redact_client_line",
    "redact_text",
]

REDACTED = "[redacted]"
"""What stands in for a hidden value."""

MIN_SLICE = 6
"""Runs of at least this many characters of a secret's forms are masked (module docstring)."""

# When a secret itself holds a slice of REDACTED, the marker could rebuild it: this one is
# shorter than MIN_SLICE, so no window of the output can lie inside it alone.
_SHORT_MARKER = "[…]"


@dataclass(frozen=True)
class Secrets:
    """Strings never to show: `hidden` as they are and in base64, `encoded` in base64 only.

    User names go in `encoded`: Postfix logs ``sasl_username`` in clear, but the base64 a
    LOGIN or PLAIN exchange puts on the wire stays hidden (AU-15).
    """

    hidden: tuple[str, ...] = ()
    encoded: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("hidden", "encoded"):
            value = getattr(self, name)
            if not isinstance(value, tuple) or not all(isinstance(s, str) for s in value):
                raise LocalProtocolError(f"Secrets.{name}: expected a tuple of str")

    def __repr__(self) -> str:
        return f"Secrets(<{len(self.hidden)} hidden>, <{len(self.encoded)} encoded>)"

    @classmethod
    def from_credentials(cls, credentials: SaslCredentials) -> Secrets:
        """Everything the built-in mechanisms could reveal for `credentials`.

        The PLAIN and XOAUTH2 blobs go in `encoded`: in clear they hold the user name, which
        stays visible, and the password or token, which is hidden on its own.
        """
        user, authzid = credentials.username, credentials.authzid
        hidden: list[str] = []
        encoded = [name for name in (user, authzid) if name]
        if credentials.password:
            hidden.append(credentials.password)
            encoded += [
                f"{authzid}\0{user}\0{credentials.password}",  # PLAIN (RFC 4616)
                f"\0{user}\0{credentials.password}",
            ]
        if credentials.token:
            hidden.append(credentials.token)
            encoded.append(f"user={user}\x01auth=Bearer {credentials.token}\x01\x01")  # XOAUTH2
        return cls(tuple(dict.fromkeys(hidden)), tuple(dict.fromkeys(encoded)))


def password_map_secrets(
    password_maps: Mapping[str, str] | Lookup[str], delimiter: str = ":"
) -> Secrets:
    """The secrets of every ``user:password`` value of `password_maps` at once.

    For text shown before the engine has picked the entry a session uses: hiding too much
    there is harmless. Of a `Lookup`, the values its tables know in advance: a callable's,
    or a ``$n`` pattern's, exist only once a key is looked up, and the session's `Redactor`
    learns them then, before the greeting is read.
    """
    hidden: list[str] = []
    encoded: list[str] = []
    if isinstance(password_maps, Lookup):
        values: Iterable[Any] = password_maps.known_results()
    else:
        values = password_maps.values()
    for value in values:
        user, _, password = str(value).partition(delimiter)
        secrets = Secrets.from_credentials(SaslCredentials(user, password))
        hidden += secrets.hidden
        encoded += secrets.encoded
    return Secrets(tuple(dict.fromkeys(hidden)), tuple(dict.fromkeys(encoded)))


def redact_client_line(line: bytes, *, auth_exchange: bool = False) -> str:
    """The transcript form of one client line (CRLF removed).

    ``AUTH PLAIN <ir>`` becomes ``AUTH PLAIN [redacted]``; with `auth_exchange` (the line
    answers a ``334``) the line becomes ``[redacted]``, except the cancel ``*`` and the empty
    line (SCRAM's and XOAUTH2's last answer), which carry nothing secret.
    """
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    if auth_exchange:
        return text if text in ("", "*") else REDACTED
    words = text.split(" ")
    if words[0].upper() == "AUTH" and len(words) > 2:
        return f"{words[0]} {words[1]} {REDACTED}"
    return text


def _base64_forms(data: bytes) -> list[str]:
    plain = base64.b64encode(data).decode("ascii").rstrip("=")
    return [plain, plain.replace("+", "-").replace("/", "_")]


def _aligned(data: bytes) -> list[str]:
    # The characters that encode `data` wherever it sits in a longer base64 stream: for each of
    # the three byte alignments, drop the characters that share bits with neighbouring bytes.
    found = []
    for offset in range(3):
        start = (8 * offset + 5) // 6
        end = 8 * (offset + len(data)) // 6
        for encoded in _base64_forms(b"\0" * offset + data):
            found.append(encoded[start:end])
    return found


def _encoded_forms(data: bytes) -> list[str]:
    hexed = data.hex()
    return [*_base64_forms(data), *_aligned(data), hexed, hexed.upper()]


class Redactor:
    """The secrets one delivery knows, and the one way its strings are made fit to show."""

    __slots__ = ("_grams", "_marker", "_whole", "_words", "active")

    def __init__(self) -> None:
        self._grams: set[str] = set()
        self._whole: set[str] = set()
        self._words: re.Pattern[str] | None = None
        self._marker = REDACTED
        self.active = False
        """True once any secret is known: a plain attribute, read on every transcript line."""

    def __repr__(self) -> str:
        return f"Redactor(<{len(self._grams) + len(self._whole)} masked forms>)"

    def __bool__(self) -> bool:
        return self.active

    def _form(self, form: str, *, whole: bool = False) -> None:
        # `whole`: a clear secret shorter than MIN_SLICE is still masked where it appears in
        # full; a short encoded form is not (three base64 characters match too much).
        if len(form) < MIN_SLICE:
            if form and whole and form not in self._whole:
                self._whole.add(form)
                self.active = True
                alternatives = "|".join(map(re.escape, sorted(self._whole, key=len, reverse=True)))
                self._words = re.compile(rf"(?<![^\W_])(?:{alternatives})(?![^\W_])")
            return
        self._grams.update(form[i : i + MIN_SLICE] for i in range(len(form) - MIN_SLICE + 1))
        self.active = True
        if self._marker == REDACTED and any(
            REDACTED[i : i + MIN_SLICE] in self._grams for i in range(len(REDACTED) - MIN_SLICE + 1)
        ):
            self._marker = _SHORT_MARKER

    def hide(self, secret: str | bytes) -> None:
        """Mask `secret` as it is (and as `printable` shows it) and in every encoded form."""
        data = secret.encode("utf-8", "surrogatepass") if isinstance(secret, str) else secret
        text = secret if isinstance(secret, str) else secret.decode("utf-8", "replace")
        for form in {text, printable(text)}:
            self._form(form, whole=True)
        self.hide_encoded(data)

    def hide_encoded(self, data: bytes) -> None:
        """Mask `data` in base64 and hex only: a user name, or a line sent in base64."""
        for form in _encoded_forms(data):
            self._form(form)

    def hide_sent(self, line: bytes) -> None:
        """Mask an AUTH line or 334 answer as sent (its base64) and what it decodes to."""
        text = line.decode("ascii", "replace").strip()
        self._form(text)
        self._form(text.rstrip("="))
        self._form(text.rstrip("=").replace("+", "-").replace("/", "_"))

    def learn(self, secrets: Secrets) -> None:
        """Mask everything `secrets` holds (`Secrets.from_credentials`)."""
        for hidden in secrets.hidden:
            self.hide(hidden)
        for name in secrets.encoded:
            self.hide_encoded(name.encode("utf-8", "surrogatepass"))

    def _spans(self, text: str) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        if self._words is not None:
            spans.extend(match.span() for match in self._words.finditer(text))
        grams = self._grams
        if grams:
            width = MIN_SLICE
            spans.extend(
                (i, i + width) for i in range(len(text) - width + 1) if text[i : i + width] in grams
            )
        return spans

    def redact(self, text: str) -> str:
        """`text` with every run of a secret's forms replaced by the marker (no escaping)."""
        if not self.active or not text:
            return text
        spans = self._spans(text)
        if not spans:
            return text
        masked = [False] * len(text)
        for start, end in spans:
            masked[start:end] = [True] * (end - start)
            # Base64 padding after a masked run says how long the secret is: it goes too.
            while end < len(text) and text[end] == "=":
                masked[end] = True
                end += 1
        # The marker next to what is left may rebuild a slice of a secret that contains part
        # of it: mask until the rendered text holds none (each round masks more, so it ends).
        while True:
            output, origin = self._render(text, masked)
            found = False
            for start, end in self._spans(output):
                for position in range(start, end):
                    source = origin[position]
                    if source >= 0 and not masked[source]:
                        masked[source] = found = True
            if not found:
                return output

    def _render(self, text: str, masked: list[bool]) -> tuple[str, list[int]]:
        # The text with each masked run replaced by the marker, and for each output character
        # the index of the input character it shows (-1 inside a marker).
        pieces: list[str] = []
        origin: list[int] = []
        marker = self._marker
        n = len(text)
        i = 0
        while i < n:
            if masked[i]:
                while i < n and masked[i]:
                    i += 1
                pieces.append(marker)
                origin.extend([-1] * len(marker))
            else:
                j = i
                while j < n and not masked[j]:
                    j += 1
                pieces.append(text[i:j])
                origin.extend(range(i, j))
                i = j
        return "".join(pieces), origin

    def shown(self, text: str) -> str:
        """`text` as the library may show it: printable (RP-24), with no secret (AU-18)."""
        return self.redact(printable(text))

    def reply(self, reply: Reply) -> Reply:
        """`reply` with secrets masked in its lines; the text is otherwise kept as received."""
        if not self.active:
            return reply
        lines = tuple(self.redact(line) for line in reply.lines)
        return reply if lines == reply.lines else Reply(reply.code, lines)


def redact_text(text: str, secrets: Secrets | Iterable[str]) -> str:
    """`text` with every secret of `secrets`, in any form, replaced by REDACTED.

    `secrets` may be a `Secrets` or plain strings (all `hidden`). No escaping is done.
    """
    if isinstance(secrets, str):
        raise LocalProtocolError("secrets: pass an iterable of strings, not one str")
    if not isinstance(secrets, Secrets):
        secrets = Secrets(hidden=tuple(secrets))
    redactor = Redactor()
    redactor.learn(secrets)
    return redactor.redact(text)
