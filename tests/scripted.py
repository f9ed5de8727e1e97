"""A test interpreter for the engine: answers its I/O requests from a script, records them.

A :class:`Script` says what the world looks like: DNS answers, what each address does on
connect, and for each connection the server's bytes, one chunk per ``Receive``, with failures
to throw at chosen points. :func:`run` drives an engine generator against it and returns the
engine's result with a :class:`Record` of every request, so tests can assert the exact client
bytes and how they were grouped into flights (writes between two reads).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from smtpproto.config import ClientConfig
from smtpproto.engine import deliver
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import (
    Close,
    Connect,
    ConnectFailed,
    DNSError,
    IOFailure,
    IORequest,
    MXRecord,
    Receive,
    Resolve,
    Send,
    Sleep,
    StartTLS,
    TLSInfo,
)

__all__ = [
    "Channel",
    "Clock",
    "FailSend",
    "Record",
    "Rng",
    "Script",
    "Session",
    "go",
    "run",
    "smtp",
    "statuses",
]

T = TypeVar("T")

DEFAULT_TLS = TLSInfo(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", chain_verified=False)


@dataclass(frozen=True)
class FailSend:
    """Make the next ``Send`` on this connection fail with `failure` (a body-write error)."""

    failure: IOFailure


Step = bytes | IOFailure | FailSend | TLSInfo
"""One scripted step of a connection.

``bytes``: the answer to the next ``Receive`` (``b""`` is end of stream). An ``IOFailure``:
thrown at the next ``Receive`` (or ``StartTLS``). ``FailSend``: thrown at the next ``Send``
(or at a ``Receive`` that comes first).
``TLSInfo``: the result of the next ``StartTLS``.
"""


@dataclass
class Session:
    """What one address does once connected: its steps, consumed in order."""

    steps: list[Step]


@dataclass
class Script:
    """The world the engine runs in."""

    dns: Mapping[tuple[str, str], tuple[MXRecord, ...] | tuple[str, ...] | DNSError] = field(
        default_factory=dict
    )
    """(name, rrtype) -> answer; a missing entry is NXDOMAIN."""
    servers: Mapping[str, Sequence[Session | ConnectFailed]] = field(default_factory=dict)
    """address -> what each successive connection to it does; missing: connection refused."""


@dataclass(eq=False)
class Channel:
    """A scripted connection; `number` counts connections in the order they were opened."""

    number: int
    address: str
    steps: list[Step]
    closed: bool = False

    def __repr__(self) -> str:
        return f"<Channel #{self.number} {self.address}>"


@dataclass
class Record:
    """Everything the engine asked for, in order."""

    requests: list[IORequest] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)

    def sent(self, channel: Channel | None = None) -> bytes:
        """All bytes written (to `channel`, or to every channel), concatenated."""
        return b"".join(
            r.data
            for r in self.requests
            if isinstance(r, Send) and (channel is None or r.channel is channel)
        )

    def flights(self, channel: Channel | None = None) -> list[bytes]:
        """Bytes written between two reads, one entry per run of consecutive ``Send``s."""
        channel = channel or self.channels[0]
        out: list[bytes] = []
        writing = False
        for r in self.requests:
            if isinstance(r, Send) and r.channel is channel:
                if writing:
                    out[-1] += r.data
                else:
                    out.append(r.data)
                writing = True
            elif isinstance(r, Receive) and r.channel is channel:
                writing = False
        return out

    def of_type(self, kind: type[T]) -> list[T]:
        """The requests of one type, in order."""
        return [r for r in self.requests if isinstance(r, kind)]


def _answer(script: Script, record: Record, used: dict[str, int], request: IORequest) -> Any:
    if isinstance(request, Resolve):
        answer = script.dns.get((request.name, request.rrtype))
        if answer is None:
            raise DNSError("nxdomain", f"{request.name}: no such domain")
        if isinstance(answer, DNSError):
            raise answer
        return answer
    if isinstance(request, Connect):
        sessions = script.servers.get(request.address, ())
        n = used.get(request.address, 0)
        used[request.address] = n + 1
        if n >= len(sessions):
            raise ConnectFailed("Connection refused")
        session = sessions[n]
        if isinstance(session, ConnectFailed):
            raise session
        opened = Channel(len(record.channels), request.address, list(session.steps))
        record.channels.append(opened)
        return opened
    if isinstance(request, (Send, Receive, StartTLS)):
        channel = request.channel
        assert isinstance(channel, Channel), f"unknown channel {request!r}"
        assert not channel.closed, f"I/O on closed channel {channel!r}: {request!r}"
        if isinstance(request, Send):
            if channel.steps and isinstance(channel.steps[0], FailSend):
                step = channel.steps.pop(0)
                assert isinstance(step, FailSend)
                raise step.failure
            return None
        if not channel.steps:
            return DEFAULT_TLS if isinstance(request, StartTLS) else b""
        step = channel.steps.pop(0)
        if isinstance(step, FailSend):
            raise step.failure  # a broken connection fails the read as well
        if isinstance(step, IOFailure):
            raise step
        if isinstance(request, StartTLS):
            assert isinstance(step, TLSInfo), f"script has {step!r} where StartTLS came"
            return step
        assert isinstance(step, bytes), f"script has {step!r} where Receive came"
        return step
    if isinstance(request, Close):
        closing = request.channel
        assert isinstance(closing, Channel), f"unknown channel {request!r}"
        closing.closed = True
        return None
    if isinstance(request, Sleep):
        return None
    raise AssertionError(f"not an I/O request: {request!r}")


def run(
    engine: Generator[IORequest, Any, T], script: Script, *, max_steps: int = 10_000
) -> tuple[T, Record]:
    """Drive `engine` against `script`; fail the test if it runs past `max_steps` requests."""
    record = Record()
    used: dict[str, int] = {}
    result: Any = None
    failure: IOFailure | None = None
    for _ in range(max_steps):
        try:
            request = engine.send(result) if failure is None else engine.throw(failure)
        except StopIteration as stop:
            value: T = stop.value
            return value, record
        record.requests.append(request)
        result, failure = None, None
        try:
            result = _answer(script, record, used, request)
        except IOFailure as exc:
            failure = exc
    engine.close()
    raise AssertionError(f"engine still running after {max_steps} requests")


GREETING = b"220 mx.example ESMTP\r\n"
EHLO_PIPELINING = b"250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 DSN\r\n"
EHLO_PLAIN = b"250 mx.example\r\n"


def smtp(*steps: Step, greeting: bytes = GREETING, ehlo: bytes = EHLO_PIPELINING) -> Session:
    """A server that greets, answers EHLO, then follows `steps`."""
    return Session([greeting, ehlo, *steps])


ADDR = "192.0.2.1"
DEST = f"[{ADDR}]"


class Clock:
    """A clock that advances a little at each reading, so delays are positive and known."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The time, 10 ms later than last time."""
        self.now += 0.01
        return self.now


class Rng:
    """Randomness that always answers 0.0: shuffles become deterministic rotations."""

    def random(self) -> float:
        """Always 0.0."""
        return 0.0


def go(
    *sessions: Session,
    destination: str = DEST,
    dns: Mapping[tuple[str, str], Any] | None = None,
    servers: Mapping[str, Sequence[Session | ConnectFailed]] | None = None,
    recipients: tuple[str, ...] = ("b@example.com",),
    message: bytes = b"Subject: t\r\n\r\nhello\r\n",
    envelope: Envelope | None = None,
    **config: Any,
) -> tuple[DeliveryReport, Record]:
    """Run ``deliver`` for one envelope against scripted servers (default: `sessions` at ADDR)."""
    cfg = ClientConfig(helo_name="client.example", **config)
    env = envelope or Envelope("a@example.org", tuple(Recipient(r) for r in recipients))
    script = Script(dns=dns or {}, servers=servers or {ADDR: list(sessions)})
    return run(deliver(destination, env, message, config=cfg, clock=Clock(), rng=Rng()), script)


def statuses(report: DeliveryReport) -> list[tuple[str, str]]:
    """(status, dsn) per recipient, in envelope order."""
    return [(r.status, r.dsn) for r in report.recipients]
