"""The blocking adapter: the engine over `socket`, `ssl` and a blocking resolver.

A plain connection's socket is non-blocking: a `Send` writes at once and polls only when
the kernel's buffer is full, a `Receive` polls then reads; no timeout is set per request, as
`settimeout` costs a system call of its own (docs/performance.md). After STARTTLS the
`ssl.SSLSocket` runs in blocking mode with each request's timeout.
"""

from __future__ import annotations

import contextlib
import math
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any

from smtpproto import engine
from smtpproto._errors import LocalProtocolError
from smtpproto.body import MessageSource
from smtpproto.config import ClientConfig
from smtpproto.engine import mailer
from smtpproto.engine.mtasts import PolicyCache
from smtpproto.envelope import Recipient
from smtpproto.report import DeliveryReport
from smtpproto.requests import (
    Close,
    Connect,
    ConnectionLost,
    DeriveKey,
    HTTPSGet,
    IOFailure,
    IORequest,
    IOTimeout,
    Receive,
    Resolve,
    Send,
    Shared,
    Sleep,
    StartTLS,
    Wait,
)

from ._dns import DefaultResolver, Resolver
from ._driver import (
    RunLog,
    connect_failure,
    drive,
    mailer_config,
    make_envelope,
    plan_mail,
    start_delivery,
    start_group,
    start_session,
    wait_time,
    wake,
)
from ._https import fetch
from ._tls import client_context, handshake_failure, tls_info

__all__ = ["Mailer", "Session", "connect", "deliver"]


class _Channel:
    """A socket that STARTTLS replaces in place, so the engine keeps one handle."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.tls = False
        sock.setblocking(False)
        self.readable = select.poll()
        self.readable.register(sock, select.POLLIN)
        self.writable = select.poll()
        self.writable.register(sock, select.POLLOUT)

    def send(self, data: bytes, timeout: float | None) -> None:
        view = memoryview(data)
        while True:
            try:
                sent = self.sock.send(view)
            except BlockingIOError:
                sent = 0
            view = view[sent:]
            if not view:
                return
            if not self.writable.poll(_milliseconds(timeout)):
                raise TimeoutError

    def receive(self, max_bytes: int, timeout: float | None) -> bytes:
        while True:
            if not self.readable.poll(_milliseconds(timeout)):
                raise TimeoutError
            try:
                return self.sock.recv(max_bytes)
            except BlockingIOError:
                continue  # a spurious wake-up: poll again


def _milliseconds(timeout: float | None) -> int | None:
    # Rounded up: a wait never ends before its timeout.
    return None if timeout is None else max(0, math.ceil(timeout * 1000))


class _IO:
    """Performs requests with blocking sockets; remembers what it opened to close it."""

    def __init__(self, resolver: Resolver | None) -> None:
        self.resolver = resolver if resolver is not None else DefaultResolver()
        self.open: set[_Channel] = set()

    def perform(self, request: IORequest) -> Any:
        match request:
            case Send(channel=_Channel() as channel):
                try:
                    if channel.tls:
                        channel.sock.settimeout(request.timeout)
                        channel.sock.sendall(request.data)
                    else:
                        channel.send(request.data, request.timeout)
                except OSError as error:  # TimeoutError included
                    raise _failure(error, request.timeout) from None
                return None
            case Receive(channel=_Channel() as channel):
                try:
                    if channel.tls:
                        channel.sock.settimeout(request.timeout)
                        return channel.sock.recv(request.max_bytes)
                    return channel.receive(request.max_bytes, request.timeout)
                except OSError as error:
                    raise _failure(error, request.timeout) from None
            case Resolve():
                return self.resolver.resolve(request)
            case Connect():
                return self._connect(request)
            case StartTLS(channel=_Channel() as channel):
                return self._starttls(channel, request)
            case HTTPSGet():
                return fetch(request)
            case Sleep():
                time.sleep(request.seconds)
                return None
            case DeriveKey():
                return request.derive()
            case Close(channel=_Channel() as channel):
                self.close(channel)
                return None
        raise TypeError(f"not a request for this adapter: {request!r}")

    def _connect(self, request: Connect) -> _Channel:
        try:
            if request.family == "unix":
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(request.timeout)
                    sock.connect(request.address)
                except BaseException:
                    sock.close()
                    raise
            else:
                source = None if request.bind_address is None else (request.bind_address, 0)
                sock = socket.create_connection(
                    (request.address, request.port), request.timeout, source
                )
                # The engine writes whole flights; Nagle would hold a flight's tail until
                # the peer's delayed ACK (~40 ms per transaction, bench/README.md).
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as error:
            raise connect_failure(request, error) from None
        channel = _Channel(sock)
        self.open.add(channel)
        return channel

    def _starttls(self, channel: _Channel, request: StartTLS) -> Any:
        try:
            context = client_context(request.parameters)
            channel.sock.settimeout(request.timeout)
            channel.sock = context.wrap_socket(
                channel.sock, server_hostname=request.server_hostname
            )
            channel.tls = True
        except (OSError, ValueError) as error:
            self.close(channel)
            raise handshake_failure(error) from None
        assert isinstance(channel.sock, ssl.SSLSocket)
        return tls_info(channel.sock, request.parameters)

    def close(self, channel: _Channel) -> None:
        self.open.discard(channel)
        channel.sock.close()

    def close_all(self) -> None:
        for channel in list(self.open):
            self.close(channel)


def _failure(error: OSError, timeout: float | None) -> IOFailure:
    if isinstance(error, TimeoutError):
        return IOTimeout(f"timed out after {timeout}s")
    return ConnectionLost(f"lost connection: {error}")


def deliver(
    destination: str,
    *,
    sender: str,
    recipients: Iterable[str | Recipient],
    message: MessageSource,
    config: ClientConfig | None = None,
    ret: str | None = None,
    envid: str | None = None,
    arrival: float | None = None,
    resolver: Resolver | None = None,
) -> DeliveryReport:
    """Deliver one message to `destination` and report on every recipient."""
    io = _IO(resolver)
    envelope = make_envelope(sender, recipients, ret, envid, arrival)
    run, log = start_delivery(destination, envelope, message, config)
    try:
        return drive(run, io.perform, log)
    finally:
        io.close_all()


class Session:
    """An open connection (greeting, EHLO, STARTTLS and AUTH done) for several transactions."""

    def __init__(self, session: engine.Session, io: _IO, log: RunLog) -> None:
        self._session = session
        self._io = io
        self._log = log

    def send(
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
            return drive(
                engine.transact(self._session, envelope, message), self._io.perform, self._log
            )
        finally:
            self._log.forget()


@contextlib.contextmanager
def connect(
    destination: str, *, config: ClientConfig | None = None, resolver: Resolver | None = None
) -> Iterator[Session]:
    """Open a session to `destination`; QUIT when the block ends, abort if it raises.

    Raises `smtpproto.ConnectionFailed`, `TLSPolicyFailed` or `AuthenticationFailed` (each a
    `smtpproto.SessionFailed` with the DSN status) when no server completes the handshake.
    """
    io = _IO(resolver)
    run, log = start_session(destination, config)
    try:
        session = drive(run, io.perform, log)
        yield Session(session, io, log)
        drive(engine.close_session(session), io.perform, log)
    finally:
        io.close_all()


class Mailer:
    """Many messages to many destinations over shared connections: Postfix's connection
    cache, per-destination and total connection limits, and back-off, for every thread that
    calls `send`. ``with Mailer(config) as m: report = m.send(...)``.

    The core decides (`smtpproto.engine.cache`); this holds its lock, waits on a condition
    at a limit, delivers to several next hops of one message on worker threads, and closes
    idle connections from a background thread.
    """

    def __init__(self, config: ClientConfig | None = None, *, resolver: Resolver | None = None):
        self._config = mailer_config(config)
        self._io = _IO(resolver)
        self._cache = mailer.new_cache(self._config)
        # RFC 8461 5.1: a policy holds until its max_age, whatever DNS says meanwhile.
        self._sts_cache = PolicyCache()
        self._lock = threading.Lock()
        self._events: dict[object, threading.Event] = {}
        self._workers = ThreadPoolExecutor(self._config.process_limit, "smtpproto-mailer")
        self._tender: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> Mailer:
        if self._tender is not None or self._closed:
            raise LocalProtocolError("Mailer: a Mailer is entered once")
        run = engine.tend_cache(self._cache)
        log = RunLog()
        self._tender = threading.Thread(
            target=drive, args=(run, self._perform, log), name="smtpproto-cache", daemon=True
        )
        self._tender.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """QUIT and close every kept connection; the background thread ends with it."""
        if self._closed:
            return
        self._closed = True
        try:
            drive(engine.close_cache(self._cache), self._perform, RunLog())
            if self._tender is not None:
                self._tender.join()
            self._workers.shutdown()
        finally:
            self._io.close_all()

    def send(
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
        if self._tender is None or self._closed:
            raise LocalProtocolError("Mailer: send inside `with Mailer(...)` only")
        plan = plan_mail(self._config, sender, recipients, message, ret, envid, destination)
        if plan.concurrent and len(plan.groups) > 1:
            jobs = [self._workers.submit(self._deliver, g, message) for g in plan.groups]
            reports = [job.result() for job in jobs]
        else:
            reports = [self._deliver(g, message) for g in plan.groups]
        return mailer.merge(plan, reports)

    def _deliver(self, group: mailer.Group, message: MessageSource) -> DeliveryReport:
        run, log, holder = start_group(group, message, self._config, self._cache, self._sts_cache)
        try:
            return drive(run, self._perform, log)
        except BaseException:
            # Interrupted (or an engine bug): give back what it held, close its connections.
            with self._lock:
                channels = engine.abandon_delivery(self._cache, holder, time.monotonic())
                wake(self._events, self._cache.woken())
            for channel in channels:
                self._io.perform(Close(channel))
            raise

    def _perform(self, request: IORequest) -> Any:
        if not isinstance(request, Shared):
            return self._io.perform(request)
        while True:
            with self._lock:
                result = request.call(time.monotonic())
                wake(self._events, request.woken() if request.woken is not None else ())
                if not isinstance(result, Wait):
                    return result
                event = self._events.setdefault(result.on, threading.Event())
            event.wait(wait_time(result))
