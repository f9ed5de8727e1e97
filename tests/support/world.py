"""An in-memory world for the engine's generators: DNS, connections and their servers.

The engine is sans I/O: it yields `smtpproto.requests` and is sent their results. `World`
answers them. DNS comes from a table or a function; each ``Connect`` to an address opens the
next connection planned for it, which is either scripted or reactive:

- a `Session` is byte-exact: its steps are the answers to the connection's ``Receive``
  requests in order (one chunk each), with failures thrown at chosen points (`FailSend`, an
  `IOFailure`) and the `TLSInfo` of each handshake;
- a reactive server, a `support.model.ServerModel`, reads what the client writes, command
  by command, and answers through its `Behaviour` (`Canonical`, `Dialogue`, or a hostile
  one), under the transport `Faults` of the connection.

`drive` runs a generator to completion against any answering function; `run` and `go` run
one against a `Script`; `World.outcome` gathers what a reactive run did. Every request is
recorded (`Record`), so tests assert the exact client octets and how they were grouped into
flights. I/O on a channel the world never opened, on a closed one, or after a failed TLS
handshake (rule 9.8) is a `Violation`, as is a negative ``Sleep``.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
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
    ConnectionLost,
    DNSError,
    IOFailure,
    IORequest,
    IOTimeout,
    Receive,
    Resolve,
    Send,
    Shared,
    Sleep,
    StartTLS,
    TLSFailed,
    TLSInfo,
    Wait,
)

from .model import Behaviour, Expect, Faults, ServerModel, Violation

__all__ = [
    "ADDR",
    "DEFAULT_TLS",
    "DEST",
    "EHLO_PIPELINING",
    "EHLO_PLAIN",
    "GREETING",
    "Channel",
    "Clock",
    "FailSend",
    "LcgRng",
    "Outcome",
    "Plan",
    "Record",
    "Rng",
    "Script",
    "Session",
    "Step",
    "World",
    "drive",
    "go",
    "run",
    "smtp",
    "statuses",
]

T = TypeVar("T")

DEFAULT_TLS = TLSInfo(version="TLSv1.3", cipher="TLS_AES_256_GCM_SHA384", chain_verified=False)
"""What a scripted handshake reports when the script names no `TLSInfo`."""
REACTIVE_TLS = TLSInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", chain_verified=False)
"""What a reactive server's successful handshake reports."""
MAX_STEPS = 10_000
"""An engine that makes more requests than this on a test's small inputs is looping."""


@dataclass(frozen=True)
class FailSend:
    """Make the next ``Send`` on this connection fail with `failure` (a body-write error)."""

    failure: IOFailure


Step = bytes | IOFailure | FailSend | TLSInfo
"""One scripted step of a connection.

``bytes``: the answer to the next ``Receive`` (``b""`` is end of stream). An ``IOFailure``:
thrown at the next ``Receive`` (or ``StartTLS``). ``FailSend``: thrown at the next ``Send``
(or at a ``Receive`` that comes first). ``TLSInfo``: the result of the next ``StartTLS``.
"""


@dataclass
class Session:
    """A scripted connection: its steps, consumed in order (the list is copied per use)."""

    steps: list[Step]


Plan = Session | ServerModel | ConnectFailed
"""What one connection attempt to an address meets: a scripted server, a reactive one (a
model serves one connection), or a refusal."""
DnsAnswer = Any
"""Records (a tuple of `MXRecord` or of address strings) or a `DNSError` to raise."""


@dataclass
class Script:
    """The world as tables: DNS answers and, per address, what each connection meets."""

    dns: Mapping[tuple[str, str], DnsAnswer] = field(default_factory=dict)
    """(name, rrtype) -> answer; a missing entry is NXDOMAIN."""
    servers: Mapping[str, Sequence[Plan]] = field(default_factory=dict)
    """address -> what each successive connection to it meets; past the end: refused."""


@dataclass(eq=False)
class Channel:
    """One connection the world opened; `number` counts them in the order they were opened.

    `model` is the reactive server (None for a scripted one), `steps` the scripted steps left.
    """

    number: int
    address: str
    steps: list[Step] = field(default_factory=list)
    model: ServerModel | None = None
    closed: bool = False
    """The client closed it."""
    dead: bool = False
    """A fault broke the stream: reads see its end, writes fail."""
    forbidden: bool = False
    """A TLS handshake failed on it: only ``Close`` may follow (rule 9.8)."""

    def __repr__(self) -> str:
        return f"<Channel #{self.number} {self.address}>"


@dataclass
class Record:
    """Everything the engine asked for, in order, and the channels it opened."""

    requests: list[IORequest] = field(default_factory=list)
    channels: list[Channel] = field(default_factory=list)

    def sent(self, channel: Channel | None = None) -> bytes:
        """All octets written (to `channel`, or to every channel), concatenated."""
        return b"".join(
            r.data
            for r in self.requests
            if isinstance(r, Send) and (channel is None or r.channel is channel)
        )

    def flights(self, channel: Channel | None = None) -> list[bytes]:
        """Octets written between two reads, one entry per run of consecutive ``Send``s."""
        return [data for data, _ in self.exchanges(channel)]

    def exchanges(self, channel: Channel | None = None) -> list[tuple[bytes, list[IORequest]]]:
        """Each flight with the requests that followed it on `channel` up to the next flight
        (its ``Send``s first, then the ``Receive``s and ``StartTLS`` awaiting the answer)."""
        channel = channel or self.channels[0]
        out: list[tuple[bytes, list[IORequest]]] = []
        writing = False
        for r in self.requests:
            if getattr(r, "channel", None) is not channel:
                continue
            if isinstance(r, Send):
                if writing:
                    out[-1] = (out[-1][0] + r.data, [*out[-1][1], r])
                else:
                    out.append((r.data, [r]))
                writing = True
            elif isinstance(r, (Receive, StartTLS)):
                writing = False
                if out:
                    out[-1][1].append(r)
        return out

    def timeouts(
        self, channel: Channel | None = None
    ) -> list[tuple[str, list[tuple[str, float | None]]]]:
        """Per flight, its first word (the verb, or the message's first header) and the
        (request type, timeout) of each of its writes and of the reads that await it."""
        return [
            (
                data.split(b"\r\n", 1)[0].split(b" ", 1)[0].decode("ascii", "replace"),
                [(type(r).__name__, getattr(r, "timeout", None)) for r in requests],
            )
            for data, requests in self.exchanges(channel)
        ]

    def of_type(self, kind: type[T]) -> list[T]:
        """The requests of one type, in order."""
        return [r for r in self.requests if isinstance(r, kind)]


@dataclass
class Outcome:
    """What one reactive run did: the report, every request, and what the servers saw."""

    report: DeliveryReport
    record: Record
    delivered: set[str]
    """Recipients some server delivered with a positive end-of-data reply."""
    server_bytes: int
    """Server octets handed to the client, over every connection."""
    desync: bool
    """The servers said something a correct server never would."""

    @property
    def requests(self) -> list[IORequest]:
        """Every request, in order."""
        return self.record.requests

    @property
    def channels(self) -> list[Channel]:
        """Every connection opened, in order."""
        return self.record.channels


def drive(
    engine: Generator[IORequest, Any, T],
    answer: Callable[[int, IORequest], Any],
    record: Record,
    *,
    max_steps: int = MAX_STEPS,
) -> T:
    """Run `engine` to completion, `answer(index, request)` giving each result (an
    `IOFailure` it raises is thrown into the engine); `Violation` past `max_steps`."""
    result: Any = None
    failure: IOFailure | None = None
    for index in range(max_steps):
        try:
            request = engine.send(result) if failure is None else engine.throw(failure)
        except StopIteration as stop:
            value: T = stop.value
            return value
        record.requests.append(request)
        result, failure = None, None
        try:
            result = answer(index, request)
        except IOFailure as exc:
            failure = exc
    engine.close()
    raise Violation(f"the engine made more than {max_steps} I/O requests")


def _table_dns(table: Mapping[tuple[str, str], DnsAnswer]) -> Callable[[str, str], DnsAnswer]:
    def lookup(name: str, rrtype: str) -> DnsAnswer:
        answer = table.get((name, rrtype))
        return DNSError("nxdomain", f"{name}: no such domain") if answer is None else answer

    return lookup


def _table_servers(table: Mapping[str, Sequence[Plan]]) -> Callable[[str], Plan]:
    used: dict[str, int] = {}

    def plan(address: str) -> Plan:
        plans = table.get(address, ())
        n = used.get(address, 0)
        used[address] = n + 1
        return plans[n] if n < len(plans) else ConnectFailed("Connection refused")

    return plan


class World:
    """Answers the engine's requests: DNS, connections, and their servers' side of the I/O.

    `dns` and `servers` are tables (as in `Script`) or functions; `faults` is asked first at
    every request but ``Close`` and ``Sleep`` for a failure to throw (or ``b""``, end of
    stream, at a ``Receive``); `chunk` decides how much of a reactive server's output one
    ``Receive`` returns (`Behaviour.fault` and `Behaviour.chunk` fit both).
    """

    def __init__(
        self,
        *,
        dns: Mapping[tuple[str, str], DnsAnswer] | Callable[[str, str], DnsAnswer],
        servers: Mapping[str, Sequence[Plan]] | Callable[[str], Plan],
        faults: Callable[[int, IORequest], IOFailure | bytes | None] | None = None,
        chunk: Callable[[ServerModel, int, int], int | IOFailure | bytes] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.clock = clock or Clock()
        """The time a ``Shared`` call is made at (the engines' clock, for a shared cache)."""
        self.dns = dns if callable(dns) else _table_dns(dns)
        self.servers = servers if callable(servers) else _table_servers(servers)
        self.faults = faults
        self.chunk = chunk
        self.record = Record()
        self.server_bytes = 0
        self.desync = False

    @classmethod
    def from_script(cls, script: Script) -> World:
        """The world `script` describes."""
        return cls(dns=script.dns, servers=script.servers)

    @classmethod
    def reactive(
        cls,
        behaviour: Behaviour,
        *,
        lmtp: bool = False,
        expect: Expect | None = None,
        faults: Faults | None = None,
    ) -> World:
        """A world whose DNS, connections, faults and servers all follow `behaviour`."""
        expect = expect or Expect()
        faults = faults or Faults()

        def plan(address: str) -> Plan:
            if not behaviour.connect(address):
                return ConnectFailed("refused")
            return ServerModel(behaviour, lmtp, expect, faults)

        return cls(dns=behaviour.dns, servers=plan, faults=behaviour.fault, chunk=behaviour.chunk)

    def run(self, engine: Generator[IORequest, Any, T], *, max_steps: int = MAX_STEPS) -> T:
        """Drive `engine` to completion in this world."""
        return drive(engine, self.answer, self.record, max_steps=max_steps)

    def outcome(self, report: DeliveryReport) -> Outcome:
        """`report` with what the reactive servers of this world saw."""
        delivered: set[str] = set()
        desync = self.desync
        for channel in self.record.channels:
            if channel.model is not None:
                delivered.update(channel.model.delivered)
                desync = desync or channel.model.behaviour.desync
        return Outcome(report, self.record, delivered, self.server_bytes, desync)

    # -- answering ----------------------------------------------------------------------------

    def answer(self, index: int, request: IORequest) -> Any:
        """The result of request number `index`; raises the `IOFailure` to throw instead."""
        if isinstance(request, (Send, Receive, StartTLS, Close)):
            channel = request.channel
            channels = self.record.channels
            # By number, not `in`: a list scan per request made long runs quadratic.
            if (
                not isinstance(channel, Channel)
                or not 0 <= channel.number < len(channels)
                or channels[channel.number] is not channel
            ):
                raise Violation(f"I/O on a channel the world never opened: {request!r}")
            if channel.closed:
                raise Violation(f"I/O on a closed channel: {request!r}")
            if channel.forbidden and not isinstance(request, Close):
                raise Violation(f"I/O after a failed TLS handshake (rule 9.8): {request!r}")
        if isinstance(request, Close):
            request.channel.closed = True  # type: ignore[attr-defined]
            return None
        if isinstance(request, Sleep):
            if request.seconds < 0:
                raise Violation(f"negative sleep: {request!r}")
            return None
        if isinstance(request, Shared):
            # One engine runs at a time here: nothing else could end a wait.
            result = request.call(self.clock())
            if request.woken is not None:
                request.woken()
            if isinstance(result, Wait):
                raise Violation(f"a Shared call waits with no other run to wake it: {result!r}")
            return result
        fault = self.faults(index, request) if self.faults is not None else None
        if isinstance(request, Resolve):
            if isinstance(fault, DNSError):
                raise fault
            answer = self.dns(request.name, request.rrtype)
            if isinstance(answer, DNSError):
                raise answer
            return answer
        if isinstance(request, Connect):
            if isinstance(fault, ConnectFailed):
                raise fault
            return self._connect(request.address)
        if not isinstance(request, (Send, Receive, StartTLS)):
            raise Violation(f"not an I/O request: {request!r}")
        channel = request.channel
        assert isinstance(channel, Channel)
        if isinstance(fault, IOFailure):
            channel.dead = True
            if isinstance(fault, TLSFailed):
                channel.forbidden = True
            raise fault
        if isinstance(request, Receive) and fault == b"":
            channel.dead = True
            return b""
        try:
            if channel.model is None:
                return self._scripted(channel, request)
            return self._reactive(channel, channel.model, request)
        except TLSFailed:
            if isinstance(request, StartTLS):
                channel.forbidden = True
            raise

    def _connect(self, address: str) -> Channel:
        plan = self.servers(address)
        if isinstance(plan, ConnectFailed):
            raise plan
        channel = Channel(len(self.record.channels), address)
        if isinstance(plan, Session):
            channel.steps = list(plan.steps)
        else:
            channel.model = plan
        self.record.channels.append(channel)
        if channel.model is not None:
            channel.model.start()
        return channel

    def _scripted(self, channel: Channel, request: Send | Receive | StartTLS) -> Any:
        steps = channel.steps
        if isinstance(request, Send):
            if steps and isinstance(steps[0], FailSend):
                raise steps.pop(0).failure  # type: ignore[union-attr]
            return None
        if not steps:
            return DEFAULT_TLS if isinstance(request, StartTLS) else b""
        step = steps.pop(0)
        if isinstance(step, FailSend):
            raise step.failure  # a broken connection fails the read as well
        if isinstance(step, IOFailure):
            raise step
        if isinstance(request, StartTLS):
            if not isinstance(step, TLSInfo):
                raise Violation(f"script has {step!r} where StartTLS came")
            return step
        if not isinstance(step, bytes):
            raise Violation(f"script has {step!r} where Receive came")
        return step

    def _reactive(
        self, channel: Channel, model: ServerModel, request: Send | Receive | StartTLS
    ) -> Any:
        if isinstance(request, Send):
            if channel.dead:
                raise ConnectionLost("broken pipe")
            if not request.data:
                raise Violation("an empty Send")
            model.receive(request.data)
            return None
        if isinstance(request, StartTLS):
            if channel.dead:
                raise TLSFailed("connection reset during the handshake")
            if not model.tls_pending:
                raise Violation("StartTLS request without a positive STARTTLS reply")
            if not model.behaviour.handshake(model):
                raise TLSFailed("handshake failure")
            if model.tls_started():
                self.desync = True  # injected octets: a correct client must have refused them
            return REACTIVE_TLS
        if channel.dead:
            return b""
        if model.cut:
            channel.dead = True
            if model.faults.reset:
                raise ConnectionLost("connection reset by peer")
            return b""
        if not model.out:
            if model.closing:
                return b""
            raise IOTimeout("the server said nothing")  # a real client would wait forever
        size = len(model.out)
        if self.chunk is not None:
            decided = self.chunk(model, size, self.server_bytes)
            if isinstance(decided, IOFailure):
                channel.dead = True
                raise decided
            if isinstance(decided, bytes):
                channel.dead = True
                return b""
            size = decided
        data = model.take(size)
        self.server_bytes += len(data)
        return data


def run(
    engine: Generator[IORequest, Any, T], script: Script, *, max_steps: int = MAX_STEPS
) -> tuple[T, Record]:
    """Drive `engine` in the world of `script`; `Violation` past `max_steps` requests."""
    world = World.from_script(script)
    return world.run(engine, max_steps=max_steps), world.record


GREETING = b"220 mx.example ESMTP\r\n"
"""The banner of `smtp`'s scripted server."""
EHLO_PIPELINING = b"250-mx.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 DSN\r\n"
"""`smtp`'s default EHLO reply: PIPELINING, 8BITMIME and DSN."""
EHLO_PLAIN = b"250 mx.example\r\n"
"""An EHLO reply with no extension."""


def smtp(*steps: Step, greeting: bytes = GREETING, ehlo: bytes = EHLO_PIPELINING) -> Session:
    """A scripted server that greets, answers EHLO, then follows `steps`."""
    return Session([greeting, ehlo, *steps])


ADDR = "192.0.2.1"
"""The address `go` plans its sessions at."""
DEST = f"[{ADDR}]"
"""`go`'s default next hop: ADDR, no MX lookup."""


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


class LcgRng:
    """Deterministic randomness from a tiny LCG, so a failing fuzz case replays exactly."""

    def __init__(self, state: int = 12345) -> None:
        self.state = state

    def random(self) -> float:
        """The next number in [0, 1)."""
        self.state = (self.state * 1103515245 + 12345) % 2**31
        return self.state / 2**31


def go(
    *sessions: Plan,
    destination: str = DEST,
    dns: Mapping[tuple[str, str], Any] | None = None,
    servers: Mapping[str, Sequence[Plan]] | None = None,
    recipients: tuple[str, ...] = ("b@example.com",),
    message: bytes = b"Subject: t\r\n\r\nhello\r\n",
    envelope: Envelope | None = None,
    config: ClientConfig | None = None,
    nonce: str | None = None,
    **options: Any,
) -> tuple[DeliveryReport, Record]:
    """Run ``deliver`` for one envelope against planned servers (default: `sessions` at ADDR).

    The configuration is `config` as given, else ``helo_name="client.example"`` plus
    `options`; `nonce` fixes the SCRAM client nonce.
    """
    cfg = config if config is not None else ClientConfig(helo_name="client.example", **options)
    env = envelope or Envelope("a@example.org", tuple(Recipient(r) for r in recipients))
    script = Script(dns=dns or {}, servers=servers or {ADDR: list(sessions)})
    engine = deliver(
        destination,
        env,
        message,
        config=cfg,
        clock=Clock(),
        rng=Rng(),
        nonce=None if nonce is None else (lambda: nonce),
    )
    return run(engine, script)


def statuses(report: DeliveryReport) -> list[tuple[str, str]]:
    """(status, dsn) per recipient, in envelope order."""
    return [(r.status, r.dsn) for r in report.recipients]
