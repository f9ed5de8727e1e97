"""The I/O requests the delivery engine yields, and the failures an adapter reports back.

This module is the whole contract between the sans-I/O engine and an adapter. The engine is a
generator: it yields one request at a time and receives that request's result through
``generator.send(result)``, or the failure through ``generator.throw(exc)``, where ``exc`` is
one of the :class:`IOFailure` subclasses below. An adapter never interprets SMTP: it only
performs the request, within the timeout the request carries.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "INLINE_ITERATIONS",
    "Channel",
    "Close",
    "Connect",
    "ConnectFailed",
    "ConnectionLost",
    "DNSAnswer",
    "DNSError",
    "DeriveKey",
    "HTTPResponse",
    "HTTPSFailed",
    "HTTPSGet",
    "IOFailure",
    "IORequest",
    "IOTimeout",
    "MXRecord",
    "RRType",
    "Random",
    "Receive",
    "Resolve",
    "Send",
    "Shared",
    "Sleep",
    "StartTLS",
    "TLSFailed",
    "TLSInfo",
    "TLSParameters",
    "Wait",
]


class Random(Protocol):
    """The randomness the engine needs (MX shuffling); `random.Random` satisfies it."""

    def random(self) -> float:
        """Return a float in [0, 1)."""
        ...


Channel = object
"""An open connection, as the adapter represents it; opaque to the engine."""


@dataclass(frozen=True)
class MXRecord:
    """One MX record; an empty `exchange` is the RFC 7505 null MX (`0 .`)."""

    preference: int
    exchange: str


RRType = Literal["MX", "A", "AAAA", "TLSA", "TXT"]
"""The record types the engine looks up."""


@dataclass(frozen=True)
class Resolve:
    """Look up `name` (an A-label domain) for `rrtype`.

    Result: a tuple of :class:`MXRecord` for ``MX``, of address strings for ``A`` and
    ``AAAA``, of RDATA octets for ``TLSA`` (RFC 6698 2.1: usage, selector, matching type,
    data), of strings for ``TXT`` (each record's character-strings joined, RFC 8461 3.1); an
    empty tuple means the name exists but has no such records (NODATA).
    With `dnssec` the engine asks whether the answer was DNSSEC-validated (Postfix's
    ``RES_USE_DNSSEC``): the adapter sets the DO bit and answers with a :class:`DNSAnswer`
    carrying the AD bit of its trusted validating resolver; a plain tuple means "not
    validated". Failure: :class:`DNSError`.
    """

    name: str
    rrtype: RRType
    timeout: float | None
    dnssec: bool = False


Records = tuple[MXRecord, ...] | tuple[str, ...] | tuple[bytes, ...]
"""The records of one answer, typed by the `Resolve.rrtype` asked for."""


@dataclass(frozen=True)
class DNSAnswer:
    """A lookup's records and whether the resolver validated them (RFC 4035 3.2.3, AD bit).

    `canonical_name` is where CNAMEs led, when not the name asked for (RFC 7672 2.2.2 looks
    up TLSA records there first).
    """

    records: Records
    authenticated: bool = False
    canonical_name: str | None = None


@dataclass(frozen=True)
class Connect:
    """Open a stream to `address`:`port` (``family="inet"``) or to the socket path `address`
    (``family="unix"``). `host` is the name the address was found for, for logs only.

    Result: a :data:`Channel`. Failure: :class:`ConnectFailed`.
    """

    host: str
    address: str
    port: int | None
    timeout: float | None
    family: Literal["inet", "unix"] = "inet"
    bind_address: str | None = None


# Command verbs a flight may start with, for Send's repr; anything else is shown as content.
_VERBS = frozenset(
    {"EHLO", "HELO", "LHLO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET"}
    | {"NOOP", "QUIT", "XFORWARD"}
)


@dataclass(frozen=True)
class Send:
    """Write all of `data` to `channel`, each write within `timeout` seconds.

    Result: ``None``. Failure: :class:`ConnectionLost` or :class:`IOTimeout`.
    """

    channel: Channel
    data: bytes
    timeout: float | None

    def __repr__(self) -> str:
        """The size and the first command verb only: `data` may hold an AUTH credential or
        message content, and embedders log requests (AU-18)."""
        word = self.data[:9].split(b" ", 1)[0].split(b"\r", 1)[0].decode("ascii", "replace")
        what = word.upper() if word.upper() in _VERBS else "data"
        return (
            f"Send(channel={self.channel!r}, data=<{len(self.data)} octets: {what}>, "
            f"timeout={self.timeout!r})"
        )


@dataclass(frozen=True)
class Receive:
    """Read at most `max_bytes` from `channel` within `timeout` seconds.

    Result: the bytes read, ``b""`` at end of stream. Failure: :class:`ConnectionLost` or
    :class:`IOTimeout`.
    """

    channel: Channel
    timeout: float | None
    max_bytes: int = 65536


@dataclass(frozen=True)
class TLSParameters:
    """What an adapter needs to build its TLS client context; decided by the engine's policy.

    `verify` asks for certificate-chain verification against `ca_file`/`ca_path` (or the
    system store when both are ``None``). Host-name matching is not the adapter's job: the
    engine matches `TLSInfo.peer_certificate` against its policy's names itself.
    """

    verify: bool
    ca_file: str | None = None
    ca_path: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    min_version: str = "TLSv1.2"
    ciphers: str | None = None


@dataclass(frozen=True)
class StartTLS:
    """Run the TLS client handshake on `channel`, sending `server_hostname` as SNI.

    Result: :class:`TLSInfo`. Failure: :class:`TLSFailed` (the channel is then unusable).
    """

    channel: Channel
    server_hostname: str | None
    parameters: TLSParameters
    timeout: float | None


@dataclass(frozen=True)
class Sleep:
    """Wait `seconds` before going on (Postfix's PIX `delay_dotcrlf`). Result: ``None``."""

    seconds: float


INLINE_ITERATIONS = 4096
"""A `DeriveKey` of at most this many iterations (RFC 7677's minimum, a few milliseconds) is
computed where it is asked for; above it the asyncio and trio adapters use a worker thread."""


@dataclass(frozen=True)
class DeriveKey:
    """Compute SCRAM's SaltedPassword, PBKDF2-HMAC(`hash_name`) of `password` (RFC 5802 3).

    The one expensive step of an AUTH exchange: a server chooses `iterations` (within the
    configured bound, AU-13), so the engine hands the work to the adapter, which may run it
    off its event loop (AU-19). Result: :meth:`derive`'s bytes. It never fails.
    """

    hash_name: Literal["sha1", "sha256"]
    password: bytes = field(repr=False)
    salt: bytes
    iterations: int

    def derive(self) -> bytes:
        """The derived key; pure computation, safe in any thread."""
        return hashlib.pbkdf2_hmac(self.hash_name, self.password, self.salt, self.iterations)

    @property
    def blocking(self) -> bool:
        """Worth a worker thread in an event loop: more than `INLINE_ITERATIONS`."""
        return self.iterations > INLINE_ITERATIONS


@dataclass(frozen=True)
class HTTPSGet:
    """Fetch ``https://<host><path>`` from `address` (the MTA-STS policy, RFC 8461 3.3).

    The certificate must verify for `host` against `ca_file`/`ca_path` (the system store
    when both are ``None``); redirects are not followed; at most `max_bytes` + 1 body
    octets are read; the whole fetch takes at most `timeout` seconds. The engine always
    asks for `port` 443; another port serves tests.
    Result: :class:`HTTPResponse`. Failure: :class:`HTTPSFailed`.
    """

    host: str
    address: str
    path: str
    timeout: float
    max_bytes: int
    ca_file: str | None = None
    ca_path: str | None = None
    port: int = 443


@dataclass(frozen=True)
class HTTPResponse:
    """What an :class:`HTTPSGet` got: status, ``Content-Type`` and (up to the limit) body."""

    status: int
    content_type: str | None
    body: bytes = field(repr=False)


@dataclass(frozen=True)
class Close:
    """Close `channel` without further protocol. Result: ``None``; it never fails."""

    channel: Channel


@dataclass(frozen=True)
class Wait:
    """What a `Shared` call returns when it cannot decide yet: call again once `on` has been
    woken (see `Shared.woken`), or at `until` (on the engine's clock) if that is sooner."""

    until: float | None = None
    on: object = None


@dataclass(frozen=True)
class Shared:
    """Run ``call(now)`` on state that concurrent engine runs share (a Mailer's connection
    cache), holding that state's lock, with `now` from the engine's clock.

    After the call, still holding the lock, ``woken()`` (when given) names the `Wait.on`
    values whose waiters may go on now: wake them. While the call returns a :class:`Wait`,
    wait (without the lock) until its `on` is woken or its `until` comes, and call it
    again. Result: the first result that is not a `Wait`. The calls decide everything; the
    adapter only serializes, waits and wakes (rules 9.1-9.6).
    """

    call: Callable[[float], object]
    woken: Callable[[], Iterable[object]] | None = None


IORequest = (
    Resolve | Connect | Send | Receive | StartTLS | Sleep | DeriveKey | HTTPSGet | Close | Shared
)
"""Every request the engine may yield."""


@dataclass(frozen=True)
class TLSInfo:
    """What a completed handshake established.

    `peer_certificate` is `ssl.SSLSocket.getpeercert()`'s dictionary when the chain was
    verified, else ``None``. `peer_chain` is the chain the server sent, verified or not,
    DER-encoded, its own certificate first (empty when the TLS library cannot say): DANE and
    the ``fingerprint`` level check it in the core.
    """

    version: str
    cipher: str
    chain_verified: bool
    peer_certificate: dict[str, object] | None = field(default=None, compare=False)
    peer_chain: tuple[bytes, ...] = field(default=(), compare=False, repr=False)


class IOFailure(Exception):
    """Base of the failures an adapter throws into the engine; `reason` is for humans."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectFailed(IOFailure):
    """The connection could not be opened (refused, unreachable, connect timeout)."""


class ConnectionLost(IOFailure):
    """The peer closed or reset the connection while the engine was sending or receiving."""


class IOTimeout(IOFailure):
    """A send or receive did not complete within its timeout."""


class TLSFailed(IOFailure):
    """The TLS handshake failed; the channel must not be used again.

    `certificate` says why: the server's chain did not verify (``TLSParameters.verify``),
    rather than the handshake itself failing (RFC 8460 ``certificate-not-trusted``).
    """

    def __init__(self, reason: str, *, certificate: bool = False) -> None:
        super().__init__(reason)
        self.certificate = certificate


class DNSError(IOFailure):
    """A lookup failed; `kind` says how, as Postfix's DNS layer does.

    ``nxdomain``: the name does not exist. ``temporary``: SERVFAIL or timeout.
    ``permanent``: FORMERR, REFUSED and the like. ``unavailable``: no resolver is installed
    (the `dns` extra is missing).
    """

    def __init__(
        self, kind: Literal["nxdomain", "temporary", "permanent", "unavailable"], reason: str
    ) -> None:
        super().__init__(reason)
        self.kind = kind


class HTTPSFailed(IOFailure):
    """An :class:`HTTPSGet` failed; `certificate` says the server's certificate did not verify
    (RFC 8460 ``sts-webpki-invalid``) rather than the connection or the HTTP exchange."""

    def __init__(self, reason: str, *, certificate: bool = False) -> None:
        super().__init__(reason)
        self.certificate = certificate
