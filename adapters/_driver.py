"""What the three adapters share: running an engine generator, building its inputs, logging.

Logging happens here, never in the core: the `smtpproto` logger's children get

- ``smtpproto.delivery``: one Postfix-style line per recipient at INFO;
- ``smtpproto.connection``: connection and TLS events, failures at INFO (connect refused,
  TLS established or failed, Postfix's ``Verified TLS connection established to ...`` and
  ``Matched DANE ...`` lines, a connection lost or timed out), the rest at DEBUG;
- ``smtpproto.transcript``: the dialogue at DEBUG as it happens.

Every message is made printable (RP-24) before it reaches a record, and the engine's lines
come without secrets already (AU-18). The library installs no handler; an application
chooses where the lines go.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import random
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any, Protocol, TypeVar

from smtpproto import engine
from smtpproto._errors import LocalProtocolError
from smtpproto.body import MessageSource
from smtpproto.config import ClientConfig, checked_config
from smtpproto.destinations import IDNAEncoder
from smtpproto.engine import mailer
from smtpproto.engine.mtasts import PolicyCache
from smtpproto.envelope import Envelope, Recipient
from smtpproto.report import DeliveryReport, format_log_line, printable
from smtpproto.requests import (
    BindFailed,
    Close,
    Connect,
    ConnectFailed,
    IOFailure,
    IORequest,
    Receive,
    Resolve,
    Send,
    Shared,
    StartTLS,
    TLSInfo,
    Wait,
)

__all__ = [
    "AsyncIO",
    "AsyncMailer",
    "AsyncSession",
    "Concurrency",
    "RunLog",
    "connect_async",
    "connect_failure",
    "deliver_async",
    "drive",
    "drive_async",
    "engine_inputs",
    "idna_encoder",
    "machine_hostname",
    "mailer_config",
    "make_envelope",
    "plan_mail",
    "start_delivery",
    "start_group",
    "start_session",
    "wait_time",
    "wake",
]

T = TypeVar("T")
Engine = Generator[IORequest, Any, T]

# Postfix's TLS lines at smtp_tls_loglevel 1 (tls_misc.c tls_log_summary(), tls_dane.c
# tls_dane_log()): who the server proved to be, logged at INFO as Postfix does.
_TLS_SUMMARY = re.compile(
    r"(?:Anonymous|Untrusted|Trusted|Verified) TLS connection established to "
    r"|\S+: Matched (?:DANE|trust anchor|fingerprint)"
)

RESULTS = logging.getLogger("smtpproto.delivery")
CONNECTION = logging.getLogger("smtpproto.connection")
TRANSCRIPT = logging.getLogger("smtpproto.transcript")

# RFC 1035 2.3.1 labels, with "_" as Postfix's valid_hostname() allows.
_HOSTNAME = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]"
    r"([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*",
    re.ASCII,
)


@functools.cache
def machine_hostname() -> str:
    """The machine's name as Postfix's default ``myhostname`` is (mail_params.c).

    ``gethostname()``, with ``.localdomain`` (Postfix's default ``mydomain``) appended to a name
    without a dot; ``localhost`` when the system has no usable name. No DNS lookup: Postfix
    does none, and ``socket.getfqdn()`` often answers ``localhost`` from /etc/hosts.
    """
    try:
        name = socket.gethostname().rstrip(".")
    except OSError:
        return "localhost"
    if name and "." not in name:
        name += ".localdomain"
    return name if len(name) <= 253 and _HOSTNAME.fullmatch(name) else "localhost"


def _uts46(name: str) -> str:
    import idna

    # IDNA 2008 with UTS #46 mapping, non-transitional: ß stays ß (xn--fa-hia.de for faß.de).
    return idna.encode(name, uts46=True).decode("ascii")


@functools.cache
def idna_encoder() -> IDNAEncoder | None:
    """IDNA 2008 (UTS #46) through the ``idna`` package (the ``idna`` extra), else ``None``."""
    try:
        import idna  # noqa: F401
    except ImportError:
        return None
    return _uts46


# The errors bind() reports for a source address this host cannot use.
_BIND_ERRORS = frozenset({errno.EADDRNOTAVAIL, errno.EADDRINUSE, errno.EACCES})


def connect_failure(request: Connect, error: BaseException) -> ConnectFailed:
    """The failure to throw for `request`: `BindFailed` when its source address was refused
    (smtp_bind_address), else `ConnectFailed` with the system's reason."""
    # Postfix's "%m": the system's text alone, not Python's "[Errno 111] Connection refused"
    # (nor trio's and asyncio's "Error connecting to ..." around it).
    code = getattr(error, "errno", None)
    if isinstance(code, int) and not isinstance(error, socket.gaierror):
        reason = os.strerror(code)
    elif isinstance(error, TimeoutError):
        reason = os.strerror(errno.ETIMEDOUT)
    else:
        reason = str(error) or os.strerror(errno.ETIMEDOUT)
    if request.bind_address is not None:
        # trio reports a refused bind() as its own OSError, raised while handling the system's.
        cause: BaseException | None = error
        while cause is not None and getattr(cause, "errno", None) not in _BIND_ERRORS:
            cause = cause.__cause__ or cause.__context__
        if cause is not None:
            return BindFailed(f"bind {request.bind_address}: {cause}")
    return ConnectFailed(reason)


def engine_inputs() -> dict[str, Any]:
    """What the core takes as arguments: clock, time of day, randomness, SCRAM nonces, the
    machine's name and the IDNA encoder."""
    return {
        "clock": time.monotonic,  # `wait_time` reads the same clock
        "wall_clock": time.time,
        "rng": random.SystemRandom(),
        "nonce": lambda: secrets.token_urlsafe(24),
        "myhostname": machine_hostname(),
        "idna": idna_encoder(),
    }


def _say(logger: logging.Logger, level: int, text: str) -> None:
    # One printable() over the finished message: DNS names, TLS errors and reasons come from
    # the network (RP-24).
    if logger.isEnabledFor(level):
        logger.log(level, "%s", printable(text))


class RunLog:
    """Logs one engine run (a delivery, or a held session's life) on the `smtpproto` loggers
    while it goes. `transcript` is the list the engine appends the dialogue to."""

    def __init__(self) -> None:
        self.transcript: list[str] = []
        self._shown = 0
        self._peers: dict[int, str] = {}

    def lines(self) -> None:
        """Log the transcript lines the engine added since the last call."""
        if self._shown == len(self.transcript):
            return
        # The engine made each line printable and masked every secret it knows (AU-18).
        if CONNECTION.isEnabledFor(logging.INFO):
            for line in self.transcript[self._shown :]:
                if _TLS_SUMMARY.match(line):
                    CONNECTION.info("%s", line)
        if TRANSCRIPT.isEnabledFor(logging.DEBUG):
            for line in self.transcript[self._shown :]:
                TRANSCRIPT.debug("%s", line)
        self._shown = len(self.transcript)

    def forget(self) -> None:
        """Log what is left, then drop the lines: a held session's transcript would otherwise
        grow with every transaction (each report keeps its own lines)."""
        self.lines()
        self.transcript.clear()
        self._shown = 0

    def _peer(self, channel: object) -> str:
        return self._peers.get(id(channel), "the server")

    def before(self, request: IORequest) -> None:
        """Called before `request` is performed."""
        if self._shown != len(self.transcript):
            self.lines()
        kind = type(request)
        if kind is Send or kind is Receive:
            return
        match request:
            case Resolve():
                text = f"looking up {request.rrtype} records of {request.name}"
            case Connect():
                text = f"connecting to {_target(request)}"
            case StartTLS():
                text = f"TLS handshake with {self._peer(request.channel)}"
            case Close():
                text = f"closing the connection to {self._peer(request.channel)}"
            case _:
                return
        _say(CONNECTION, logging.DEBUG, text)

    def after(self, request: IORequest, result: Any) -> None:
        """Called with the result of `request`."""
        kind = type(request)
        if kind is Send or kind is Receive:
            return
        match request:
            case Connect():
                self._peers[id(result)] = _target(request)
                _say(CONNECTION, logging.DEBUG, f"connected to {_target(request)}")
            case StartTLS() if isinstance(result, TLSInfo):
                # DANE and fingerprints are judged by the core next, not by a CA.
                chain = "verified" if result.chain_verified else "not verified by a CA"
                _say(
                    CONNECTION,
                    logging.INFO,
                    f"TLS with {self._peer(request.channel)}: {result.version} with cipher "
                    f"{result.cipher}, certificate chain {chain}",
                )
            case Resolve():
                found = result or "no records"
                _say(CONNECTION, logging.DEBUG, f"{request.name} {request.rrtype}: {found}")
            case Close():
                self._peers.pop(id(request.channel), None)

    def failed(self, request: IORequest, failure: IOFailure) -> None:
        """Called when `request` failed with `failure`."""
        match request:
            case Resolve():
                what = f"lookup of {request.rrtype} records of {request.name}"
            case Connect():
                what = f"connect to {_target(request)}"
            case StartTLS():
                what = f"TLS handshake with {self._peer(request.channel)}"
            case Send():
                what = f"sending to {self._peer(request.channel)}"
            case Receive():
                what = f"reading from {self._peer(request.channel)}"
            case _:
                what = type(request).__name__
        _say(CONNECTION, logging.INFO, f"{what}: {failure.reason}")

    def done(self, value: object) -> None:
        """Called with what the engine returned: a report gets its result lines."""
        self.lines()
        if isinstance(value, DeliveryReport) and RESULTS.isEnabledFor(logging.INFO):
            for result in value.recipients:
                RESULTS.info("%s", format_log_line(result))


def _target(request: Connect) -> str:
    if request.family == "unix":
        return request.address
    return f"{request.host}[{request.address}]:{request.port}"


class _Steps:
    """One engine run, one request at a time: what the blocking and async loops share."""

    def __init__(self, engine: Engine[Any], log: RunLog | None) -> None:
        self.engine = engine
        self.log = log
        self.result: Any = None
        self.failure: IOFailure | None = None
        self.value: Any = None

    def next(self) -> IORequest | None:
        """The engine's next request, or ``None`` when it returned (`value`)."""
        try:
            if self.failure is None:
                request = self.engine.send(self.result)
            else:
                request = self.engine.throw(self.failure)
        except StopIteration as stop:
            self.value = stop.value
            if self.log is not None:
                self.log.done(stop.value)
            return None
        if self.log is not None:
            self.log.before(request)
        return request

    def succeeded(self, request: IORequest, result: Any) -> None:
        """`request` was performed; `result` goes to the engine next."""
        self.result, self.failure = result, None
        if self.log is not None:
            self.log.after(request, result)

    def failed(self, request: IORequest, failure: IOFailure) -> None:
        """`request` failed; `failure` is thrown into the engine next."""
        self.result, self.failure = None, failure
        if self.log is not None:
            self.log.failed(request, failure)

    def close(self) -> None:
        """End the run (also when interrupted): the engine is closed, its last lines logged."""
        self.engine.close()
        if self.log is not None:
            self.log.lines()


def drive(engine: Engine[T], perform: Callable[[IORequest], Any], log: RunLog | None = None) -> T:
    """Run `engine` to completion, performing each request; failures go back in."""
    steps = _Steps(engine, log)
    try:
        while (request := steps.next()) is not None:
            try:
                result = perform(request)
            except IOFailure as error:
                steps.failed(request, error)
            else:
                steps.succeeded(request, result)
        return steps.value  # type: ignore[no-any-return]
    finally:
        steps.close()


async def drive_async(
    engine: Engine[T], perform: Callable[[IORequest], Awaitable[Any]], log: RunLog | None = None
) -> T:
    """As `drive`, awaiting each request (asyncio and trio alike)."""
    steps = _Steps(engine, log)
    try:
        while (request := steps.next()) is not None:
            try:
                result = await perform(request)
            except IOFailure as error:
                steps.failed(request, error)
            else:
                steps.succeeded(request, result)
        return steps.value  # type: ignore[no-any-return]
    finally:
        steps.close()


def make_envelope(
    sender: str,
    recipients: Iterable[str | Recipient],
    ret: str | None = None,
    envid: str | None = None,
    arrival: float | None = None,
) -> Envelope:
    """The engine's `Envelope` from the adapters' keyword arguments.

    `arrival` is when the message was queued, in `time.time()` seconds (a queue's clock);
    the engine's clock is `time.monotonic`, so it is moved onto that. ``None``: just queued.
    """
    if isinstance(recipients, str):
        raise LocalProtocolError("recipients: expected a list of addresses, got one string")
    if arrival is not None:
        if isinstance(arrival, bool) or not isinstance(arrival, int | float):
            raise LocalProtocolError(f"arrival: expected seconds since the epoch, got {arrival!r}")
        arrival = time.monotonic() - (time.time() - arrival)
    recipients = tuple(recipients)
    if arrival is None:
        try:
            return _envelope(sender, recipients, ret, envid)
        except TypeError:
            pass  # an unhashable argument: made below, where the checks name it
    return _make_envelope(sender, recipients, ret, envid, arrival)


@functools.lru_cache(maxsize=64)
def _envelope(
    sender: str, recipients: tuple[str | Recipient, ...], ret: str | None, envid: str | None
) -> Envelope:
    # A sender of mail in bulk repeats a few envelopes: an Envelope is immutable, so the same
    # arguments share one, checked once (a failure is not kept).
    return _make_envelope(sender, recipients, ret, envid, None)


def _make_envelope(
    sender: str,
    recipients: tuple[str | Recipient, ...],
    ret: str | None,
    envid: str | None,
    arrival: float | None,
) -> Envelope:
    return Envelope(
        sender=sender,
        recipients=tuple(r if isinstance(r, Recipient) else Recipient(r) for r in recipients),
        ret=None if ret is None else ret.upper(),  # type: ignore[arg-type]
        envid=envid,
        arrival=arrival,
    )


def start_delivery(
    destination: str,
    envelope: Envelope,
    message: MessageSource,
    config: ClientConfig | None,
    cache: engine.ConnectionCache[engine.Session] | None = None,
    holder: object = None,
    sts_cache: PolicyCache | None = None,
) -> tuple[Engine[DeliveryReport], RunLog]:
    """The engine's ``deliver`` with the adapters' inputs (and a Mailer's `cache`, with the
    `holder` that names the delivery to it, and its MTA-STS `sts_cache`), and the log of its
    run."""
    config = checked_config(config)
    log = RunLog()
    run = engine.deliver(
        destination,
        envelope,
        message,
        config=config,
        transcript=log.transcript,
        cache=cache,
        holder=holder,
        sts_cache=sts_cache,
        **engine_inputs(),
    )
    return run, log


def start_group(
    group: mailer.Group,
    message: MessageSource,
    config: ClientConfig,
    cache: engine.ConnectionCache[engine.Session],
    sts_cache: PolicyCache,
) -> tuple[Engine[DeliveryReport], RunLog, object]:
    """A Mailer's delivery of one next hop's `group`: the run, its log, and the holder that
    names it to the shared `cache` (to give back what it held if it is interrupted)."""
    holder = object()
    run, log = start_delivery(
        group.destination, group.envelope, message, config, cache, holder, sts_cache
    )
    return run, log, holder


def plan_mail(
    config: ClientConfig,
    sender: str,
    recipients: Iterable[str | Recipient],
    message: MessageSource,
    ret: str | None,
    envid: str | None,
    destination: str | None,
) -> mailer.Plan:
    """A Mailer's ``send`` arguments as the core's plan: one delivery per next hop."""
    envelope = make_envelope(sender, recipients, ret, envid)
    return mailer.plan(
        envelope, message, config=config, destination=destination, idna=idna_encoder()
    )


def mailer_config(config: ClientConfig | None) -> ClientConfig:
    """A Mailer's configuration, with the machine's name filled in once (every delivery
    would otherwise build and check a config of its own)."""
    return checked_config(config).with_hostname(machine_hostname())


def wake(events: dict[object, Any], woken: Iterable[object]) -> None:
    """Set (and forget) the event of each `Wait.on` in `woken`: a `Shared` call served it."""
    for key in woken:
        event = events.pop(key, None)
        if event is not None:
            event.set()


def wait_time(wait: Wait) -> float | None:
    """Seconds from now until `wait` ends on the engine's clock; ``None``: until woken."""
    if wait.until is None:
        return None
    return max(0.0, wait.until - time.monotonic())


def start_session(
    destination: str, config: ClientConfig | None
) -> tuple[Engine[engine.Session], RunLog]:
    """The engine's ``open_session`` for the adapters' ``connect``, and the session's log."""
    config = checked_config(config)
    log = RunLog()
    run = engine.open_session(
        destination, config=config, transcript=log.transcript, **engine_inputs()
    )
    return run, log


class AsyncIO(Protocol):
    """What the asyncio and trio adapters each supply: perform a request, close everything."""

    async def perform(self, request: IORequest) -> Any:
        """Carry out one engine request and return its result."""
        ...

    async def close_all(self) -> None:
        """Abort every channel still open."""
        ...


async def deliver_async(
    io: AsyncIO,
    destination: str,
    envelope: Envelope,
    message: MessageSource,
    config: ClientConfig | None,
) -> DeliveryReport:
    """The body of both async ``deliver`` functions: run the engine, then close what is open."""
    run, log = start_delivery(destination, envelope, message, config)
    try:
        return await drive_async(run, io.perform, log)
    finally:
        await io.close_all()


class AsyncSession:
    """An open connection (greeting, EHLO, STARTTLS and AUTH done) for several transactions."""

    def __init__(self, session: engine.Session, io: AsyncIO, log: RunLog) -> None:
        self._session = session
        self._io = io
        self._log = log

    async def send(
        self,
        *,
        sender: str,
        recipients: Iterable[str | Recipient],
        message: MessageSource,
        ret: str | None = None,
        envid: str | None = None,
        arrival: float | None = None,
    ) -> DeliveryReport:
        """Run one mail transaction on this connection."""
        envelope = make_envelope(sender, recipients, ret, envid, arrival)
        try:
            return await drive_async(
                engine.transact(self._session, envelope, message), self._io.perform, self._log
            )
        finally:
            self._log.forget()


@contextlib.asynccontextmanager
async def connect_async(
    io: AsyncIO, destination: str, config: ClientConfig | None
) -> AsyncIterator[AsyncSession]:
    """The body of both async ``connect`` functions: QUIT at the end, abort if it raises."""
    run, log = start_session(destination, config)
    try:
        session = await drive_async(run, io.perform, log)
        yield AsyncSession(session, io, log)
        await drive_async(engine.close_session(session), io.perform, log)
    finally:
        await io.close_all()


class Concurrency(Protocol):
    """What the asyncio and trio Mailers need of their library: an event, a bounded wait for
    it, running coroutines side by side, and a group that background tasks live in."""

    def event(self) -> Any:
        """A new event (``set()``, awaitable ``wait()``)."""
        ...

    async def wait(self, event: Any, timeout: float | None) -> None:
        """Wait until `event` is set or `timeout` seconds passed."""
        ...

    async def gather(self, jobs: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run the jobs concurrently; their results in order (the first error cancels all)."""
        ...

    def group(self) -> AbstractAsyncContextManager[Any]:
        """A task group (an asyncio TaskGroup, a trio nursery) for background tasks."""
        ...

    def start(self, group: Any, job: Callable[[], Awaitable[None]]) -> None:
        """Start `job` in `group`."""
        ...


class AsyncMailer:
    """The asyncio and trio ``Mailer``: one shared connection cache for every ``send`` of
    every task, with Postfix's per-destination and total limits and back-off (the core
    decides; this only waits, wakes and runs tasks). Use it as ``async with``.

    The cache's calls need no lock here: each runs without an ``await``, so no other task
    runs meanwhile. A task that must wait waits on an event of its own, which the call that
    serves it sets (`Shared.woken`).
    """

    def __init__(self, config: ClientConfig | None, io: AsyncIO, concurrency: Concurrency) -> None:
        self._config = mailer_config(config)
        self._io = io
        self._do = concurrency
        self._cache = mailer.new_cache(self._config)
        # RFC 8461 5.1: a policy holds until its max_age, whatever DNS says meanwhile.
        self._sts_cache = PolicyCache()
        self._events: dict[object, Any] = {}
        self._stack: contextlib.AsyncExitStack | None = None
        self._closed = False

    async def __aenter__(self) -> AsyncMailer:
        if self._stack is not None or self._closed:
            raise LocalProtocolError("Mailer: a Mailer is entered once")
        self._stack = contextlib.AsyncExitStack()
        group = await self._stack.enter_async_context(self._do.group())
        log = RunLog()
        self._do.start(
            group, lambda: drive_async(engine.tend_cache(self._cache), self._perform, log)
        )
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT and close every kept connection; the background task ends with it."""
        if self._closed:
            return
        self._closed = True
        try:
            await drive_async(engine.close_cache(self._cache), self._perform, RunLog())
            if self._stack is not None:
                await self._stack.aclose()
        finally:
            await self._io.close_all()

    async def send(
        self,
        *,
        sender: str,
        recipients: Iterable[str | Recipient],
        message: MessageSource,
        ret: str | None = None,
        envid: str | None = None,
        destination: str | None = None,
    ) -> DeliveryReport:
        """Deliver one message to every recipient, each next hop at once through the shared
        cache (or all to `destination`); one report for every recipient."""
        if self._stack is None or self._closed:
            raise LocalProtocolError("Mailer: send inside `async with Mailer(...)` only")
        plan = plan_mail(self._config, sender, recipients, message, ret, envid, destination)
        jobs = [functools.partial(self._deliver, group, message) for group in plan.groups]
        if plan.concurrent and len(jobs) > 1:
            reports = await self._do.gather(jobs)
        else:
            reports = [await job() for job in jobs]
        return mailer.merge(plan, reports)

    async def _deliver(self, group: mailer.Group, message: MessageSource) -> DeliveryReport:
        run, log, holder = start_group(group, message, self._config, self._cache, self._sts_cache)
        try:
            return await drive_async(run, self._perform, log)
        except BaseException:
            # Cancelled (or an engine bug): give back what it held, close its connections.
            channels = engine.abandon_delivery(self._cache, holder, time.monotonic())
            wake(self._events, self._cache.woken())
            for channel in channels:
                await self._io.perform(Close(channel))
            raise

    async def _perform(self, request: IORequest) -> Any:
        if not isinstance(request, Shared):
            return await self._io.perform(request)
        while True:
            result = request.call(time.monotonic())
            wake(self._events, request.woken() if request.woken is not None else ())
            if not isinstance(result, Wait):
                return result
            event = self._events.setdefault(result.on, self._do.event())
            await self._do.wait(event, wait_time(result))
