"""SASL for SMTP AUTH (RFC 4954): mechanisms as small sans-I/O objects, and Postfix's choice rules.

A mechanism turns decoded ``334`` challenges into raw responses; the caller does the base64
(:func:`decode_challenge`, :func:`encode_response`) and the SMTP. Nonces come in as arguments:
the core draws no random numbers. Every peer mistake is a `RemoteProtocolError`, after which
the caller cancels the exchange with ``*`` (RFC 4954 4) -- unless a final reply already came.

Which mechanism to use follows Postfix (rule 11.4): the server's list, narrowed by
``sasl_mechanism_filter``, minus what the security options forbid, strongest first.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import stringprep
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol

from ._errors import LocalProtocolError, RemoteProtocolError
from .requests import DeriveKey
from .tables import KeyLookup, MatchList

__all__ = [
    "DEFAULT_SECURITY_OPTIONS",
    "DEFAULT_TLS_SECURITY_OPTIONS",
    "DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS",
    "MECHANISMS",
    "PREFERENCE",
    "SECURITY_OPTIONS",
    "CramMD5",
    "External",
    "Login",
    "Mechanism",
    "Plain",
    "SaslCredentials",
    "ScramSHA1",
    "ScramSHA256",
    "Selection",
    "XOAuth2",
    "create_mechanism",
    "decode_challenge",
    "encode_response",
    "lookup_credentials",
    "parse_mechanism_filter",
    "parse_security_options",
    "saslprep",
    "security_options_for",
    "select_mechanism",
]

SECURITY_OPTIONS = frozenset(
    {"noplaintext", "noactive", "nodictionary", "noanonymous", "mutual_auth", "forward_secrecy"}
)
"""The words ``smtp_sasl_security_options`` accepts (rule 11.4)."""

DEFAULT_SECURITY_OPTIONS = frozenset({"noplaintext", "noanonymous"})
"""``sasl_security_options`` for cleartext sessions: Postfix's default; no password in clear."""

DEFAULT_TLS_SECURITY_OPTIONS = frozenset({"noplaintext", "noanonymous"})
"""``sasl_tls_security_options``: TLS whose peer is not verified is no better than cleartext
for a password, since whoever terminates it reads the password (AU-20)."""

DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS = frozenset({"noanonymous"})
"""``sasl_tls_verified_security_options``: PLAIN and LOGIN only to a verified peer (AU-20).

Unlike stock Postfix (quirk Q9), whose every option repeats ``noplaintext, noanonymous`` and so
never sends PLAIN or LOGIN unless configured; RFC 4954 names PLAIN over TLS as the pairing
every server implements. ``ClientConfig.from_postconf`` keeps Postfix's meaning.
"""

# Which security option rejects a mechanism with which property (Cyrus SASL's SASL_SEC_* flags,
# as Postfix passes them through xsasl_cyrus_security.c): weaknesses forbid, strengths require.
_FORBIDS: Mapping[str, str] = {
    "noplaintext": "plaintext",
    "noactive": "active",
    "nodictionary": "dictionary",
    "noanonymous": "anonymous",
}
_REQUIRES: Mapping[str, str] = {"mutual_auth": "mutual", "forward_secrecy": "forward-secrecy"}

PREFERENCE: tuple[str, ...] = (
    "EXTERNAL",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "XOAUTH2",
    "CRAM-MD5",
    "PLAIN",
    "LOGIN",
)
"""Strongest first. EXTERNAL leads because it is used only when asked for by name."""

_DEFAULT_MAX_ROUNDS = 10  # smtplib stops at 5, lettre at 10, Postfix at 100 (AU-08, rule 11.5)
_DEFAULT_MIN_ITERATIONS = 4096  # RFC 7677 4: at least 4096; RFC 5802 5's example uses it too
# AU-13, AU-19: a server's i=2000000000 must not pin the CPU. Cyrus SASL, Postfix's SASL
# library, refuses more than 65,536 (scram.c MAX_ITERATION_COUNTER); this leaves room above it.
_DEFAULT_MAX_ITERATIONS = 100_000
_MAX_CHALLENGE = 16384  # RFC 4954 4: 12288 octets of base64 plus slack (ReplyLimits default)

# RFC 4648 4 base64, padded, as RFC 4954 4 demands ("=" only at the end; AU-07).
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?", re.ASCII)
# RFC 5802 7: printable = %x21-2B / %x2D-7E (no comma); value-char excludes "," and "=".
_PRINTABLE = re.compile(r"[\x21-\x2b\x2d-\x7e]+", re.ASCII)
_POSIT_NUMBER = re.compile(r"[1-9][0-9]*", re.ASCII)
_ATTRIBUTE = re.compile(r"([A-Za-z])=(.*)", re.ASCII | re.DOTALL)


# -- base64 on the wire ----------------------------------------------------------------------


def decode_challenge(text: str, max_len: int = _MAX_CHALLENGE) -> bytes:
    """Decode the text of a ``334`` reply, strictly (RFC 4954 4; AU-07).

    Characters outside the base64 alphabet, ``=`` anywhere but at the end, a length that is
    not a multiple of four, non-canonical padding bits and text over `max_len` characters are
    a `RemoteProtocolError`; the caller answers it with ``*``.
    """
    if len(text) > max_len:
        raise RemoteProtocolError(f"AUTH challenge of {len(text)} characters (limit {max_len})")
    if not _BASE64.fullmatch(text):
        raise RemoteProtocolError("AUTH challenge is not valid base64")
    decoded = base64.b64decode(text, validate=True)
    # RFC 4648 3.5: nonzero pad bits make two texts for one value; only the canonical is sent.
    if base64.b64encode(decoded).decode("ascii") != text:
        raise RemoteProtocolError("AUTH challenge is not canonical base64")
    return decoded


def encode_response(data: bytes) -> str:
    """Base64 for one AUTH response line (empty data is the empty line, RFC 4954 4)."""
    return base64.b64encode(data).decode("ascii")


# -- SASLprep (RFC 4013), used by SCRAM (RFC 5802 2.2) --------------------------------------

_PROHIBITED: tuple[Callable[[str], bool], ...] = (
    stringprep.in_table_c12,
    stringprep.in_table_c21_c22,
    stringprep.in_table_c3,
    stringprep.in_table_c4,
    stringprep.in_table_c5,
    stringprep.in_table_c6,
    stringprep.in_table_c7,
    stringprep.in_table_c8,
    stringprep.in_table_c9,
)


def saslprep(text: str, *, what: str = "string", allow_unassigned: bool = True) -> str:
    """Prepare `text` with SASLprep (RFC 4013); a prohibited result is a `LocalProtocolError`.

    `allow_unassigned` follows RFC 3454 7: true for query strings, which is what a client sends.
    """
    # RFC 4013 2.1: non-ASCII spaces map to SPACE, "commonly mapped to nothing" are removed.
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    prepared = unicodedata.ucd_3_2_0.normalize("NFKC", mapped)
    for c in prepared:
        if any(table(c) for table in _PROHIBITED):
            raise LocalProtocolError(f"{what}: prohibited character U+{ord(c):04X} (RFC 4013 2.3)")
        if not allow_unassigned and stringprep.in_table_a1(c):
            raise LocalProtocolError(f"{what}: unassigned character U+{ord(c):04X} (RFC 4013 2.5)")
    # RFC 3454 6: right-to-left text must be wholly right-to-left and start and end so.
    if any(stringprep.in_table_d1(c) for c in prepared) and (
        any(stringprep.in_table_d2(c) for c in prepared)
        or not stringprep.in_table_d1(prepared[0])
        or not stringprep.in_table_d1(prepared[-1])
    ):
        raise LocalProtocolError(f"{what}: invalid bidirectional text (RFC 3454 6)")
    return prepared


# -- credentials -----------------------------------------------------------------------------


@dataclass(frozen=True)
class SaslCredentials:
    """A SASL identity: password for PLAIN/LOGIN/CRAM-MD5/SCRAM, token for XOAUTH2.

    `authzid` is the identity to act as (empty: the same as `username`); EXTERNAL sends only it.
    The repr never shows the password or the token.
    """

    username: str
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    authzid: str = ""

    def __post_init__(self) -> None:
        for name in ("username", "authzid"):
            if not isinstance(getattr(self, name), str):
                raise LocalProtocolError(f"SaslCredentials.{name}: expected a str")
        for name in ("password", "token"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise LocalProtocolError(f"SaslCredentials.{name}: expected a str or None")

    def __repr__(self) -> str:
        password = None if self.password is None else "<redacted>"
        token = None if self.token is None else "<redacted>"
        return (
            f"SaslCredentials(username={self.username!r}, password={password}, "
            f"token={token}, authzid={self.authzid!r})"
        )


def lookup_credentials(
    password_maps: Mapping[str, str] | KeyLookup[str],
    *,
    host: str,
    destination: str,
    sender: str | None = None,
    sender_dependent: bool = False,
    delimiter: str = ":",
) -> SaslCredentials | None:
    """Find credentials the way ``smtp_sasl_password_maps`` does (rule 11.2); first match wins.

    Keys tried: with `sender_dependent` and a non-empty `sender`, the sender address and then
    ``@domain``; then the server `host` name; then the literal next-hop `destination` (e.g.
    ``[smtp.example.com]:587``). Keys compare case-insensitively, as in a Postfix hash table.
    The value is ``user<delimiter>password``; the password may hold the delimiter itself.
    """
    if not delimiter:
        raise LocalProtocolError("sasl_password_result_delimiter: must not be empty")
    keys: list[str] = []
    if sender_dependent and sender:
        keys.append(sender)
        if "@" in sender:
            keys.append("@" + sender.rpartition("@")[2])
    keys += [host, destination]
    folded: dict[str, str] | None = None
    for key in keys:
        value = password_maps.get(key)
        if value is None and isinstance(password_maps, Mapping):
            # A smtpproto.tables.Lookup folds case itself; a plain mapping is folded here.
            if folded is None:
                folded = {k.lower(): k for k in password_maps}
            original = folded.get(key.lower())
            value = None if original is None else password_maps[original]
        if value is not None:
            if not isinstance(value, str):
                raise LocalProtocolError(f"sasl_password_maps[{key!r}]: expected user:password")
            # smtp_sasl_glue.c: no delimiter means an empty password.
            username, _, password = value.partition(delimiter)
            if not username:
                raise LocalProtocolError(f"sasl_password_maps[{key!r}]: empty user name")
            return SaslCredentials(username, password)
    return None


# -- Postfix security options and mechanism filter -------------------------------------------


def _words(value: str | Iterable[str]) -> list[str]:
    items = [value] if isinstance(value, str) else list(value)
    return [w for item in items for w in re.split(r"[\s,]+", item.strip()) if w]


def parse_security_options(value: str | Iterable[str]) -> frozenset[str]:
    """Parse ``smtp_sasl_security_options`` (``noplaintext, noanonymous``); empty: no limits."""
    words = [w.lower() for w in _words(value)]
    for word in words:
        if word not in SECURITY_OPTIONS:
            raise LocalProtocolError(f"sasl_security_options: unknown option {word!r}")
    return frozenset(words)


def parse_mechanism_filter(value: str | Iterable[str]) -> tuple[str, ...]:
    """Parse ``smtp_sasl_mechanism_filter``: names, ``!name`` exclusions; upper-cased."""
    words = _words(value)
    for word in words:
        if not re.fullmatch(r"!?[A-Za-z0-9_-]{1,20}", word, re.ASCII):
            # Postfix also accepts lookup tables here; the core opens no files (no I/O).
            raise LocalProtocolError(f"sasl_mechanism_filter: not a mechanism name {word!r}")
    return tuple(w.upper() for w in words)


def security_options_for(
    *,
    tls: bool,
    verified: bool,
    options: frozenset[str] = DEFAULT_SECURITY_OPTIONS,
    tls_options: frozenset[str] = DEFAULT_TLS_SECURITY_OPTIONS,
    tls_verified_options: frozenset[str] | None = DEFAULT_TLS_VERIFIED_SECURITY_OPTIONS,
) -> frozenset[str]:
    """The options in force for a channel (rule 11.4): `tls` must be the channel's real state.

    AU-05: the answer depends on whether TLS is actually up, never on what the server says.
    """
    if not tls:
        return options
    if verified and tls_verified_options is not None:
        return tls_verified_options
    return tls_options


# -- mechanisms ------------------------------------------------------------------------------


class Mechanism(Protocol):
    """One SASL client exchange (docs/internals.md)."""

    @property
    def name(self) -> str:
        """The SASL name, upper case (``SCRAM-SHA-256``)."""
        ...

    @property
    def properties(self) -> frozenset[str]:
        """Postfix's security-option words: the weaknesses it is subject to and ``mutual``."""
        ...

    def initial_response(self, max_line: int | None = None) -> bytes | None:
        """The response for the AUTH line, or ``None`` (none, or it does not fit)."""
        ...

    def respond(self, challenge: bytes) -> bytes:
        """The raw response to one decoded ``334`` challenge."""
        ...

    def key_derivation(self, challenge: bytes) -> DeriveKey | None:
        """The expensive step `respond` would run for `challenge`, to run elsewhere first."""
        ...

    def use_derived_key(self, request: DeriveKey, key: bytes) -> None:
        """Hand over the result of `key_derivation`'s request before calling `respond`."""
        ...

    def revealed(self) -> tuple[bytes, ...]:
        """Secrets the responses so far carry besides the credentials (the SCRAM proof)."""
        ...

    def verify_success(self) -> None:
        """Check that a ``235`` is acceptable; raise `RemoteProtocolError` if not."""
        ...


_IR_NONE, _IR_PENDING, _IR_SENT = "none", "pending", "sent"


class _Mechanism:
    """The common state machine: initial response, then one step per challenge, then 235.

    Subclasses list their challenge handlers in `_steps`, in order; a challenge beyond them,
    or beyond `max_rounds`, is a `RemoteProtocolError`. Errors are sticky.
    """

    name: ClassVar[str]
    properties: ClassVar[frozenset[str]]
    _steps: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *, max_rounds: int = _DEFAULT_MAX_ROUNDS) -> None:
        if not isinstance(max_rounds, int) or max_rounds < 1:
            raise LocalProtocolError("max_rounds: must be a positive int")
        self._max_rounds = max_rounds
        self._rounds = 0
        self._step = 0
        self._ir = _IR_NONE if self._client_first() is None else _IR_PENDING
        self._asked_ir = False
        self._failed: str | None = None
        self._done = False

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} step={self._step}>"

    def _client_first(self) -> bytes | None:
        return None

    def _fail(self, reason: str) -> RemoteProtocolError:
        self._failed = reason
        return RemoteProtocolError(f"{self.name}: {reason}")

    def initial_response(self, max_line: int | None = None) -> bytes | None:
        """The client-first message for the AUTH line (RFC 4954 4), or ``None``.

        ``None`` also when ``AUTH <name> <base64>`` CRLF would exceed `max_line` octets
        (Postfix: ``len(mech) + len(resp) + 8 <= 512``, rule 11.5; AU-06): the response then
        goes in answer to the server's first, empty, challenge. Call at most once, first.
        """
        if self._asked_ir or self._rounds:
            raise LocalProtocolError(f"{self.name}: initial_response() after the exchange began")
        self._asked_ir = True
        response = self._client_first()
        if response is None:
            return None
        if max_line is not None and len(self.name) + len(encode_response(response)) + 8 > max_line:
            return None
        self._ir = _IR_SENT
        return response

    def respond(self, challenge: bytes) -> bytes:
        """The raw response to one decoded ``334`` challenge; `RemoteProtocolError` if wrong."""
        if self._done:
            raise LocalProtocolError(f"{self.name}: respond() after verify_success()")
        if self._failed is not None:
            raise RemoteProtocolError(f"{self.name}: exchange already failed: {self._failed}")
        self._rounds += 1
        if self._rounds > self._max_rounds:
            raise self._fail(f"more than {self._max_rounds} challenges (AU-08)")
        if self._ir == _IR_PENDING:
            # RFC 4954 4: without an initial response on the AUTH line the server sends an
            # empty challenge first; Postfix rejects a non-empty one (rule 11.5).
            if challenge:
                raise self._fail("non-empty initial challenge")
            self._ir = _IR_SENT
            response = self._client_first()
            assert response is not None
            return response
        if self._step >= len(self._steps):
            raise self._fail("unexpected challenge (AU-08)")
        handler: Callable[[bytes], bytes] = getattr(self, self._steps[self._step])
        self._step += 1
        try:
            return handler(challenge)
        except RemoteProtocolError as error:
            self._failed = str(error)
            raise

    def verify_success(self) -> None:
        """Accept a ``235`` (RFC 4954 4), or raise `RemoteProtocolError` if it is premature."""
        if self._failed is not None:
            raise RemoteProtocolError(f"{self.name}: success after failure: {self._failed}")
        self._check_success()
        self._done = True

    def _check_success(self) -> None:
        return None

    def key_derivation(self, challenge: bytes) -> DeriveKey | None:
        """``None``: no step of this mechanism is expensive."""
        return None

    def use_derived_key(self, request: DeriveKey, key: bytes) -> None:
        """Refused: this mechanism asks for no key derivation."""
        raise LocalProtocolError(f"{self.name}: no key derivation was asked for")

    def revealed(self) -> tuple[bytes, ...]:
        """Nothing beyond the credentials."""
        return ()


def _require(value: str | None, what: str, mechanism: str) -> str:
    if not value:
        raise LocalProtocolError(f"{what}: {mechanism} needs a non-empty value")
    return value


class Plain(_Mechanism):
    """PLAIN (RFC 4616): ``authzid NUL user NUL password`` in one initial response."""

    name = "PLAIN"
    properties = frozenset({"plaintext", "active", "dictionary"})

    def __init__(
        self, credentials: SaslCredentials, *, max_rounds: int = _DEFAULT_MAX_ROUNDS
    ) -> None:
        self._message = b"\0".join(
            [
                credentials.authzid.encode(),
                _require(credentials.username, "username", "PLAIN").encode(),
                _require(credentials.password, "password", "PLAIN").encode(),
            ]
        )
        # RFC 4616 2: UTF8SAFE excludes NUL in every part.
        if self._message.count(b"\0") != 2:
            raise LocalProtocolError("credentials: PLAIN forbids NUL in authzid, user, password")
        super().__init__(max_rounds=max_rounds)

    def _client_first(self) -> bytes:
        return self._message


class Login(_Mechanism):
    """LOGIN (draft-murchison-sasl-login): user name, then password; prompts are ignored."""

    name = "LOGIN"
    properties = frozenset({"plaintext", "active", "dictionary"})
    _steps = ("_send_username", "_send_password")

    def __init__(
        self, credentials: SaslCredentials, *, max_rounds: int = _DEFAULT_MAX_ROUNDS
    ) -> None:
        self._user = _require(credentials.username, "username", "LOGIN").encode()
        self._password = _require(credentials.password, "password", "LOGIN").encode()
        super().__init__(max_rounds=max_rounds)

    def _send_username(self, challenge: bytes) -> bytes:
        # AU-11 (bpo-27820): answer by position, not by what the prompt says.
        return self._user

    def _send_password(self, challenge: bytes) -> bytes:
        return self._password


class CramMD5(_Mechanism):
    """CRAM-MD5 (RFC 2195): ``user SP hex(HMAC-MD5(password, challenge))``."""

    name = "CRAM-MD5"
    # No server authentication (RFC 4954 4) and an offline dictionary attack on the digest.
    properties = frozenset({"active", "dictionary"})
    _steps = ("_digest",)

    def __init__(
        self, credentials: SaslCredentials, *, max_rounds: int = _DEFAULT_MAX_ROUNDS
    ) -> None:
        self._user = _require(credentials.username, "username", "CRAM-MD5").encode()
        self._password = _require(credentials.password, "password", "CRAM-MD5").encode()
        super().__init__(max_rounds=max_rounds)

    def _digest(self, challenge: bytes) -> bytes:
        if not challenge:
            raise RemoteProtocolError(f"{self.name}: empty challenge (RFC 2195 2)")
        digest = hmac.new(self._password, challenge, hashlib.md5).hexdigest()
        return self._user + b" " + digest.encode("ascii")


def _saslname(name: str) -> str:
    # RFC 5802 5.1: "," and "=" are escaped in names.
    return name.replace("=", "=3D").replace(",", "=2C")


def _attributes(message: bytes, what: str) -> list[tuple[str, str]]:
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteProtocolError(f"{what}: not UTF-8") from None
    pairs = []
    for part in text.split(","):
        match = _ATTRIBUTE.fullmatch(part)
        if match is None:
            raise RemoteProtocolError(f"{what}: malformed attribute {part[:40]!r}")
        pairs.append((match[1], match[2]))
    return pairs


class _Scram(_Mechanism):
    """SCRAM (RFC 5802) without channel binding: GS2 header ``n,,`` (or ``n,a=authzid,``)."""

    properties = frozenset({"dictionary", "mutual"})
    _steps = ("_client_final", "_server_final")
    _hash: ClassVar[str]

    def __init__(
        self,
        credentials: SaslCredentials,
        *,
        nonce: str,
        min_iterations: int = _DEFAULT_MIN_ITERATIONS,
        max_iterations: int = _DEFAULT_MAX_ITERATIONS,
        max_rounds: int = _DEFAULT_MAX_ROUNDS,
    ) -> None:
        if not isinstance(nonce, str) or not _PRINTABLE.fullmatch(nonce):
            raise LocalProtocolError("nonce: SCRAM needs printable ASCII without ',' (RFC 5802 7)")
        if not isinstance(min_iterations, int) or min_iterations < 1:
            raise LocalProtocolError("min_iterations: must be a positive int")
        if not isinstance(max_iterations, int) or max_iterations < min_iterations:
            raise LocalProtocolError("max_iterations: must be an int >= min_iterations")
        user = saslprep(_require(credentials.username, "username", self.name), what="username")
        self._password = saslprep(
            _require(credentials.password, "password", self.name), what="password"
        ).encode()
        authzid = saslprep(credentials.authzid, what="authzid") if credentials.authzid else ""
        self._gs2 = f"n,{'a=' + _saslname(authzid) if authzid else ''},".encode()
        self._client_first_bare = f"n={_saslname(user)},r={nonce}".encode()
        self._nonce = nonce
        self._min_iterations = min_iterations
        self._max_iterations = max_iterations
        self._server_signature: bytes | None = None
        self._verified = False
        self._derived: tuple[bytes, int, bytes] | None = None
        self._proof: bytes | None = None
        super().__init__(max_rounds=max_rounds)

    def _client_first(self) -> bytes:
        return self._gs2 + self._client_first_bare

    def _hmac(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, self._hash).digest()

    def _server_first(self, server_first: bytes) -> tuple[str, bytes, int]:
        # RFC 5802 7 and AU-13: every check of server-first; the nonce, salt and count.
        attributes = _attributes(server_first, f"{self.name} server-first")
        names = "".join(name for name, _ in attributes[:3])
        if attributes[0][0] == "m":
            raise RemoteProtocolError(f"{self.name}: mandatory extension m= (RFC 5802 5.1)")
        if names != "rsi":
            raise RemoteProtocolError(f"{self.name}: server-first is not r=,s=,i= (RFC 5802 7)")
        nonce, salt_text, count = (value for _, value in attributes[:3])
        if not _PRINTABLE.fullmatch(nonce) or not nonce.startswith(self._nonce):
            raise RemoteProtocolError(f"{self.name}: server nonce does not extend ours (AU-13)")
        if nonce == self._nonce:
            raise RemoteProtocolError(f"{self.name}: server added no nonce of its own")
        if not salt_text or not _BASE64.fullmatch(salt_text):
            raise RemoteProtocolError(f"{self.name}: salt is not base64")
        if not _POSIT_NUMBER.fullmatch(count):
            raise RemoteProtocolError(f"{self.name}: iteration count is not a number")
        if len(count) > 12 or not self._min_iterations <= int(count) <= self._max_iterations:
            raise RemoteProtocolError(
                f"{self.name}: iteration count {count[:12]} outside "
                f"{self._min_iterations}..{self._max_iterations} (AU-13)"
            )
        return nonce, base64.b64decode(salt_text), int(count)

    def key_derivation(self, challenge: bytes) -> DeriveKey | None:
        """For the server-first `challenge`: the SaltedPassword computation it asks for (AU-19).

        Checks the challenge as `respond` will (`RemoteProtocolError` if it is wrong, which
        fails the exchange); ``None`` for any other step.
        """
        if self._failed is not None or self._step >= len(self._steps):
            return None
        if self._steps[self._step] != "_client_final" or self._ir == _IR_PENDING:
            return None
        try:
            _, salt, iterations = self._server_first(challenge)
        except RemoteProtocolError as error:
            self._failed = str(error)
            raise
        return DeriveKey(self._hash, self._password, salt, iterations)  # type: ignore[arg-type]

    def use_derived_key(self, request: DeriveKey, key: bytes) -> None:
        """Keep `key`, the result of `request` from `key_derivation`, for the next `respond`."""
        if not isinstance(key, bytes) or len(key) != hashlib.new(self._hash).digest_size:
            raise LocalProtocolError(f"key: expected the {self._hash} digest of {request!r}")
        self._derived = (request.salt, request.iterations, key)

    def revealed(self) -> tuple[bytes, ...]:
        """The client proof, once sent (base64, as in the client-final message)."""
        return () if self._proof is None else (self._proof,)

    def _client_final(self, server_first: bytes) -> bytes:
        nonce, salt, iterations = self._server_first(server_first)
        if self._derived is not None and self._derived[:2] == (salt, iterations):
            salted = self._derived[2]
        else:
            salted = DeriveKey(self._hash, self._password, salt, iterations).derive()  # type: ignore[arg-type]
        self._derived = None
        client_key = self._hmac(salted, b"Client Key")
        stored_key = hashlib.new(self._hash, client_key).digest()
        without_proof = b"c=" + base64.b64encode(self._gs2) + b",r=" + nonce.encode()
        auth_message = self._client_first_bare + b"," + server_first + b"," + without_proof
        signature = self._hmac(stored_key, auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_signature = self._hmac(self._hmac(salted, b"Server Key"), auth_message)
        self._proof = base64.b64encode(proof)
        return without_proof + b",p=" + self._proof

    def _server_final(self, server_final: bytes) -> bytes:
        name, value = _attributes(server_final, f"{self.name} server-final")[0]
        if name == "e":
            raise RemoteProtocolError(f"{self.name}: server error {value[:64]!r} (RFC 5802 7)")
        if name != "v" or not _BASE64.fullmatch(value) or not value:
            raise RemoteProtocolError(f"{self.name}: server-final has no verifier")
        assert self._server_signature is not None
        if not hmac.compare_digest(base64.b64decode(value), self._server_signature):
            raise RemoteProtocolError(f"{self.name}: wrong server signature (AU-13)")
        self._verified = True
        # In SMTP the server-final arrives as a 334; the client answers with an empty line.
        return b""

    def _check_success(self) -> None:
        # AU-13: a 235 before a verified server-final means the server never proved itself.
        if not self._verified:
            raise self._fail("235 before the server signature was verified (AU-13)")


class ScramSHA1(_Scram):
    """SCRAM-SHA-1 (RFC 5802)."""

    name = "SCRAM-SHA-1"
    _hash = "sha1"


class ScramSHA256(_Scram):
    """SCRAM-SHA-256 (RFC 7677)."""

    name = "SCRAM-SHA-256"
    _hash = "sha256"


class XOAuth2(_Mechanism):
    """XOAUTH2 (Google/Microsoft): ``user=U ^A auth=Bearer T ^A ^A``.

    On failure the server sends a ``334`` with a base64 JSON error; the client answers with an
    empty line and gets the final ``5xx`` (AU-14). The JSON is kept in `error`.
    """

    name = "XOAUTH2"
    # A bearer token is as good as a password to whoever reads it.
    properties = frozenset({"plaintext", "active"})
    _steps = ("_error",)

    def __init__(
        self, credentials: SaslCredentials, *, max_rounds: int = _DEFAULT_MAX_ROUNDS
    ) -> None:
        user = _require(credentials.username, "username", "XOAUTH2")
        token = _require(credentials.token, "token", "XOAUTH2")
        if "\x01" in user or "\x01" in token:
            raise LocalProtocolError("credentials: XOAUTH2 forbids \\x01 in user and token")
        self._message = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
        self.error: str | None = None
        super().__init__(max_rounds=max_rounds)

    def _client_first(self) -> bytes:
        return self._message

    def _error(self, challenge: bytes) -> bytes:
        self.error = challenge.decode("utf-8", "replace")
        return b""

    def _check_success(self) -> None:
        if self.error is not None:
            raise self._fail("235 after an error challenge")


class External(_Mechanism):
    """EXTERNAL (RFC 4422 A): the TLS client certificate authenticates; sends the authzid.

    An empty authzid goes on the AUTH line as ``=`` (RFC 4954 4; AU-06).
    """

    name = "EXTERNAL"
    # Nothing secret crosses the wire; the strength is the TLS layer's.
    properties = frozenset[str]()

    def __init__(
        self, credentials: SaslCredentials, *, max_rounds: int = _DEFAULT_MAX_ROUNDS
    ) -> None:
        self._message = credentials.authzid.encode()
        super().__init__(max_rounds=max_rounds)

    def _client_first(self) -> bytes:
        return self._message


MECHANISMS: Mapping[str, type[_Mechanism]] = {
    cls.name: cls for cls in (Plain, Login, CramMD5, ScramSHA1, ScramSHA256, XOAuth2, External)
}
"""The mechanisms built in, by SASL name."""

_SCRAM: Mapping[str, type[_Scram]] = {ScramSHA1.name: ScramSHA1, ScramSHA256.name: ScramSHA256}
_SIMPLE: Mapping[str, Callable[[SaslCredentials], Mechanism]] = {
    cls.name: cls for cls in (Plain, Login, CramMD5, XOAuth2, External)
}


def create_mechanism(
    name: str,
    credentials: SaslCredentials,
    *,
    nonce: str | None = None,
    min_iterations: int = _DEFAULT_MIN_ITERATIONS,
    max_iterations: int = _DEFAULT_MAX_ITERATIONS,
) -> Mechanism:
    """Build the mechanism `name` (as :func:`select_mechanism` returned it); SCRAM needs `nonce`."""
    key = name.upper()
    if key in _SCRAM:
        if nonce is None:
            raise LocalProtocolError(f"nonce: {key} needs a client nonce")
        return _SCRAM[key](
            credentials, nonce=nonce, min_iterations=min_iterations, max_iterations=max_iterations
        )
    if key not in _SIMPLE:
        raise LocalProtocolError(f"name: unsupported SASL mechanism {name!r}")
    return _SIMPLE[key](credentials)


@dataclass(frozen=True)
class Selection:
    """The outcome of :func:`select_mechanism`: a mechanism name, or ``None`` and why."""

    mechanism: str | None
    reason: str


def _unusable(
    name: str,
    *,
    security_options: frozenset[str],
    mechanism_filter: MatchList,
    credentials: SaslCredentials,
    client_certificate: bool,
) -> str | None:
    cls = MECHANISMS.get(name)
    if cls is None:
        return "not supported"
    # Postfix string_list semantics: the first matching item decides; none matches -> out.
    if mechanism_filter and not mechanism_filter.matches(name):
        return "sasl_mechanism_filter"
    if name == "EXTERNAL":
        # Only on request: EXTERNAL says "the certificate I showed is who I am".
        if not client_certificate:
            return "no client certificate"
        if "external" not in mechanism_filter.names():
            return "not named in sasl_mechanism_filter"
    elif name == "XOAUTH2":
        if not credentials.token:
            return "no token"
    elif not credentials.password:
        return "no password"
    for option in sorted(security_options):
        if option in _FORBIDS and _FORBIDS[option] in cls.properties:
            return option
        if option in _REQUIRES and _REQUIRES[option] not in cls.properties:
            return option
    return None


def select_mechanism(
    offered: Iterable[str],
    *,
    security_options: frozenset[str],
    credentials: SaslCredentials,
    mechanism_filter: Sequence[str] | MatchList = (),
    client_certificate: bool = False,
    preference: Sequence[str] = PREFERENCE,
) -> Selection:
    """Choose the mechanism to use from the server's list (rule 11.4; AU-17).

    `security_options` must come from :func:`security_options_for` with the channel's real TLS
    state. `mechanism_filter` is ``sasl_mechanism_filter``: a `MatchList` (names, ``!name``,
    tables such as ``static:rest``) or the names alone (empty: no filter). Drop the
    SCRAM names from `preference` when no nonce source exists. ``None`` carries, as `reason`,
    why each offered mechanism was refused.
    """
    for option in security_options:
        if option not in SECURITY_OPTIONS:
            raise LocalProtocolError(f"security_options: unknown option {option!r}")
    names = {name.upper() for name in offered}
    wanted = MatchList.of(mechanism_filter)
    refused: dict[str, str] = {}
    for name in sorted(names):
        why = _unusable(
            name,
            security_options=security_options,
            mechanism_filter=wanted,
            credentials=credentials,
            client_certificate=client_certificate,
        )
        if why is not None:
            refused[name] = why
    for name in preference:
        if name.upper() in names and name.upper() not in refused:
            return Selection(name.upper(), f"{name.upper()} chosen from {' '.join(sorted(names))}")
    if not names:
        return Selection(None, "server offered no SASL mechanisms")
    details = ", ".join(f"{n} ({refused.get(n, 'not preferred')})" for n in sorted(names))
    # Postfix's words (smtp_sasl_glue.c), then ours.
    return Selection(
        None,
        "offered no compatible authentication mechanisms for this type of connection "
        f"security: {details}",
    )
