"""The I/O requests the delivery engine yields, and the failures an adapter reports back.

This module is the whole contract between the sans-I/O engine and an adapter. The engine is a
generator: it yields one request at a time and receives that request's result through
``generator.send(result)``, or the failure through ``generator.throw(exc)``, where ``exc`` is
one of the :class:`IOFailure` subclasses below. An adapter never interprets SMTP: it only
performs the request, within the timeout the request carries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "Channel",
    "Close",
    "Connect",
    "ConnectFailed",
    "ConnectionLost",
    "DNSError",
    "IOFailure",
    "IORequest",
    "IOTimeout",
    "MXRecord",
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


@dataclass(frozen=True)
class Resolve:
    """Look up `name` (an A-label domain) for `rrtype`.

    Result: a tuple of :class:`MXRecord` for ``MX``, a tuple of address strings for ``A`` and
    ``AAAA``; an empty tuple means the name exists but has no such records (NODATA).
    Failure: :class:`DNSError`.
    """

    name: str
    rrtype: Literal["MX", "A", "AAAA"]
    timeout: float | None


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


@dataclass(frozen=True)
class Send:
    """Write all of `data` to `channel`, each write within `timeout` seconds.

    Result: ``None``. Failure: :class:`ConnectionLost` or :class:`IOTimeout`.
    """

    channel: Channel
    data: bytes
    timeout: float | None


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


IORequest = Resolve | Connect | Send | Receive | StartTLS | Sleep | Close | Shared
"""Every request the engine may yield."""


@dataclass(frozen=True)
class TLSInfo:
    """What a completed handshake established.

    `peer_certificate` is `ssl.SSLSocket.getpeercert()`'s dictionary when the chain was
    verified, else ``None``.
    """

    version: str
    cipher: str
    chain_verified: bool
    peer_certificate: dict[str, object] | None = field(default=None, compare=False)


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
    """The TLS handshake failed; the channel must not be used again."""


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
