"""Keep AUTH secrets out of transcripts, logs and reports (AU-15).

Two tools. :func:`redact_client_line` hides what the client sends during AUTH, keeping the
verb and the mechanism visible. :func:`redact_text` scrubs anything else -- above all server
replies, which may echo a credential back (``501 5.5.2 cannot decode AGZvbw...``) -- of the
secrets themselves and of their base64 forms, whole, truncated, or inside a longer blob.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .._errors import LocalProtocolError
from ..sasl import SaslCredentials
from ..tables import Lookup

__all__ = ["REDACTED", "Secrets", "password_map_secrets", "redact_client_line", "redact_text"]

REDACTED = "[redacted]"
"""What stands in for a hidden value."""

# Runs of base64 (standard or URL-safe alphabet) long enough to carry a secret.
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{4,}=*", re.ASCII)
# Shorter aligned fragments match ordinary words too often to be worth hiding.
_MIN_FRAGMENT = 6
_MIN_PREFIX = 4


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
        """Everything the built-in mechanisms could reveal for `credentials`."""
        user, authzid = credentials.username, credentials.authzid
        hidden: list[str] = []
        if credentials.password:
            hidden += [
                credentials.password,
                f"{authzid}\0{user}\0{credentials.password}",  # PLAIN (RFC 4616)
                f"\0{user}\0{credentials.password}",
            ]
        if credentials.token:
            hidden += [
                credentials.token,
                f"user={user}\x01auth=Bearer {credentials.token}\x01\x01",  # XOAUTH2
            ]
        encoded = [name for name in (user, authzid) if name]
        return cls(tuple(dict.fromkeys(hidden)), tuple(encoded))


def password_map_secrets(
    password_maps: Mapping[str, str] | Lookup[str], delimiter: str = ":"
) -> Secrets:
    """The secrets of every ``user:password`` value of `password_maps` at once.

    For text shown before the engine has picked the entry a session uses, such as a log
    written while the dialogue goes on (AU-15): hiding too much there is harmless. Of a
    `Lookup`, the values its tables know in advance: a callable's, or a ``$n`` pattern's,
    exist only once a key is looked up, and only the engine's own scrubbing hides them.
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


def _encodings(data: bytes) -> list[str]:
    plain = base64.b64encode(data).decode("ascii").rstrip("=")
    return [plain, plain.replace("+", "-").replace("/", "_")]


def _fragments(data: bytes) -> list[str]:
    # The characters that encode `data` wherever it sits in a longer base64 stream: for each of
    # the three byte alignments, drop the characters that share bits with neighbouring bytes.
    found = []
    for offset in range(3):
        start = (8 * offset + 5) // 6
        end = 8 * (offset + len(data)) // 6
        for encoded in _encodings(b"\0" * offset + data):
            fragment = encoded[start:end]
            if len(fragment) >= _MIN_FRAGMENT:
                found.append(fragment)
    return found


def _spans(text: str, secrets: Secrets) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for secret in secrets.hidden:
        if secret:
            start = text.find(secret)
            while start != -1:
                spans.append((start, start + len(secret)))
                start = text.find(secret, start + 1)
    values = [s.encode() for s in (*secrets.hidden, *secrets.encoded) if s]
    whole = [e for v in values for e in _encodings(v) if e]
    fragments = [f for s in secrets.hidden if s for f in _fragments(s.encode())]
    for run in _BASE64_RUN.finditer(text):
        token = run[0].rstrip("=")
        if (
            any(e in token for e in whole)
            or (len(token) >= _MIN_PREFIX and any(e.startswith(token) for e in whole))
            or any(f in token for f in fragments)
        ):
            spans.append(run.span())
    return spans


def redact_text(text: str, secrets: Secrets | Iterable[str]) -> str:
    """`text` with every secret, and every base64 run that encodes one, replaced by REDACTED.

    A run is hidden when it holds a secret's base64 whole or at any byte alignment, or is a
    truncated start of one (servers cut what they echo). `secrets` may be a `Secrets` or
    plain strings (all `hidden`).
    """
    if isinstance(secrets, str):
        raise LocalProtocolError("secrets: pass an iterable of strings, not one str")
    if not isinstance(secrets, Secrets):
        secrets = Secrets(hidden=tuple(secrets))
    spans = sorted(_spans(text, secrets))
    if not spans:
        return text
    pieces: list[str] = []
    position = 0
    for start, end in spans:
        if end <= position:
            continue
        if start >= position:
            pieces += [text[position:start], REDACTED]
        position = end
    pieces.append(text[position:])
    return "".join(pieces)
