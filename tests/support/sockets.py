"""A reactive SMTP/LMTP server on real loopback sockets, in background threads.

`LoopbackServer` listens on 127.0.0.1, ::1 or a UNIX-domain path (a free port unless one is
given) and serves every connection with a fresh `support.model.ServerModel`: the same
behaviours, checks and `Faults` as the in-memory world, with real TCP (or UNIX) streams and
real TLS (`ssl.SSLContext`) underneath, for the adapters, the command, benchmarks and
differential tests against other clients (Postfix's own smtp(8) included).

Each connection is one `Served`: its model (verbs, lines, messages, TLS), whether the client
closed it, and any `Violation` the client committed (recorded, and the connection dropped,
instead of raised in a server thread). Every wait is bounded; `close` stops the listener and
every connection thread.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .model import Behaviour, Canonical, Expect, Faults, ServerModel, Violation

__all__ = ["HOST", "LoopbackServer", "Served", "free_port"]

HOST = "127.0.0.1"
"""The loopback address servers listen on unless told otherwise."""
POLL = 0.05
"""Seconds between checks of the stop flag while a thread waits."""
GRACE = 5.0
"""Seconds `LoopbackServer.close` gives open connections to end with their clients."""
NOT_TLS = b"this is not a TLS record\r\n"
"""What the server sends instead of a handshake when its behaviour fails one."""


def free_port(host: str = HOST) -> int:
    """A TCP port free on the loopback address `host` right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass(eq=False)
class Served:
    """One accepted connection: its server model and how it ended."""

    number: int
    model: ServerModel
    saw_eof: threading.Event = field(default_factory=threading.Event)
    """Set when the client closed its side (or the stream broke under the server)."""
    done: threading.Event = field(default_factory=threading.Event)
    """Set when the server has closed the connection."""
    violations: list[Violation] = field(default_factory=list)


class LoopbackServer:
    """A threaded loopback server whose every connection follows `behaviour`.

    `behaviour` is shared by all connections (a stateful one counts across them). `family`
    ``"unix"`` listens on `path` (required); otherwise on `host` (127.0.0.1, or ::1 for
    ``"ipv6"``) and `port` (0: a free one). `tls` is the server context for STARTTLS; `keep`
    False forgets message content (long benchmark runs). `timeout` bounds every socket read
    and write, in seconds.
    """

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        *,
        lmtp: bool = False,
        expect: Expect | None = None,
        faults: Faults | None = None,
        tls: ssl.SSLContext | None = None,
        family: Literal["ipv4", "ipv6", "unix"] = "ipv4",
        host: str | None = None,
        port: int = 0,
        path: str | Path | None = None,
        keep: bool = True,
        timeout: float = 10.0,
        backlog: int = 64,
    ) -> None:
        self.behaviour = behaviour if behaviour is not None else Canonical()
        self.lmtp = lmtp
        self.expect = expect or Expect()
        self.faults = faults or Faults()
        self.tls = tls
        self.keep = keep
        self.timeout = timeout
        self.connections: list[Served] = []
        self._closing = threading.Event()  # no more connections
        self._stop = threading.Event()  # and the open ones end now
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.path: str | None = None
        """The socket path of a UNIX-domain listener."""
        if family == "unix":
            if path is None:
                raise ValueError("path: a unix listener needs a socket path")
            self.listener = socket.socket(socket.AF_UNIX)
            self.listener.bind(str(path))
            self.host, self.port, self.path = str(path), 0, str(path)
        else:
            host = host or ("::1" if family == "ipv6" else HOST)
            self.listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind((host, port))
            self.host, self.port = host, int(self.listener.getsockname()[1])
        self.listener.listen(backlog)
        self.listener.settimeout(POLL)
        self._acceptor = threading.Thread(target=self._accept, name="loopback-accept", daemon=True)
        self._acceptor.start()

    # -- what tests use ---------------------------------------------------------------------

    @property
    def destination(self) -> str:
        """The next hop as smtpproto and Postfix write it: ``[host]:port`` or ``unix:path``
        (``inet:[host]:port`` for an LMTP server)."""
        if self.path is not None:
            return f"unix:{self.path}"
        literal = f"[ipv6:{self.host}]" if ":" in self.host else f"[{self.host}]"
        return f"{'inet:' if self.lmtp else ''}{literal}:{self.port}"

    def wait_done(self, count: int = 1, timeout: float = 10.0) -> list[Served]:
        """The first `count` connections, once the server has closed each (bounded wait)."""
        deadline = time.monotonic() + timeout
        while len(self.connections) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        served = self.connections[:count]
        for one in served:
            one.done.wait(max(deadline - time.monotonic(), 0.0))
        if len(served) < count or not all(s.done.is_set() for s in served):
            raise AssertionError(f"{count} connection(s) not finished within {timeout} s")
        return served

    @property
    def violations(self) -> list[Violation]:
        """Every client `Violation` on every connection so far."""
        return [v for served in self.connections for v in served.violations]

    def close(self) -> None:
        """Stop accepting; let each connection end with its client (for `GRACE` seconds in
        all), then end the rest, and wait (bounded) for the threads."""
        self._closing.set()
        self._acceptor.join(self.timeout)
        with self._lock:
            threads = list(self._threads)
        deadline = time.monotonic() + GRACE
        for thread in threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        self._stop.set()
        for thread in threads:
            thread.join(self.timeout)
        self.listener.close()
        if self.path is not None:
            with contextlib.suppress(OSError):
                Path(self.path).unlink()

    def __enter__(self) -> LoopbackServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the threads --------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            model = ServerModel(self.behaviour, self.lmtp, self.expect, self.faults, self.keep)
            served = Served(len(self.connections), model)
            thread = threading.Thread(
                target=self._serve, args=(conn, served), name="loopback-conn", daemon=True
            )
            with self._lock:
                self.connections.append(served)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket, served: Served) -> None:
        model = served.model
        sock: socket.socket = conn
        sock.settimeout(self.timeout)
        if sock.family != socket.AF_UNIX:
            # One segment per write: Nagle would hold each reply to pipelined commands until
            # the client's delayed ACK, 40 ms a round trip.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            model.start()
            while True:
                self._flush(sock, model)
                if model.cut or (model.finished and _hung_up(model)):
                    if model.faults.reset:
                        _reset(sock)
                    return
                if model.tls_pending and self.tls is not None:
                    wrapped = self._handshake(sock, model)
                    if wrapped is None:
                        return
                    sock = wrapped
                    continue
                if model.finished:
                    return
                if not model.reading:
                    self._hold(sock, served)
                    return
                data = self._recv(sock)
                if data is None:
                    return
                if not data:
                    served.saw_eof.set()
                    return
                model.receive(data)
        except Violation as violation:
            served.violations.append(violation)
        except TimeoutError:
            pass  # the client fell silent for `timeout`: the server gives up on it
        except (OSError, ValueError):
            # A reset, a timeout or a failed handshake: the client went away.
            served.saw_eof.set()
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            served.done.set()

    def _recv(self, sock: socket.socket) -> bytes | None:
        """The next octets from the client; None when the server is stopping."""
        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set():
            pending = isinstance(sock, ssl.SSLSocket) and sock.pending()
            if pending or select.select([sock], [], [], POLL)[0]:
                return sock.recv(65536)
            if time.monotonic() >= deadline:
                raise TimeoutError("the client said nothing")
        return None

    def _flush(self, sock: socket.socket, model: ServerModel) -> None:
        while model.out and not model.cut:
            if model.faults.delay:
                time.sleep(model.faults.delay)
            sock.sendall(model.take())

    def _handshake(self, sock: socket.socket, model: ServerModel) -> socket.socket | None:
        assert self.tls is not None
        if not model.behaviour.handshake(model):
            # Apart from the 220, as a server failing the handshake would send it: the client
            # meets it in its handshake, not as plaintext injected after the reply (NS-01).
            time.sleep(POLL)
            sock.sendall(NOT_TLS)
            return None
        wrapped = self.tls.wrap_socket(sock, server_side=True)
        model.tls_started()
        return wrapped

    def _hold(self, sock: socket.socket, served: Served) -> None:
        # Stopped reading: keep the connection open, its octets unread (so the client's
        # writes back up), until the client closes its side or the server stops. POLLRDHUP
        # (Linux) reports the close even while unread octets wait in front of it.
        poller = select.poll()
        poller.register(sock, getattr(select, "POLLRDHUP", 0x2000) | select.POLLHUP)
        deadline = time.monotonic() + self.timeout
        while not self._stop.is_set() and time.monotonic() < deadline:
            if poller.poll(POLL * 1000):
                served.saw_eof.set()
                return


def _hung_up(model: ServerModel) -> bool:
    hangup = model.faults.hangup_at
    return hangup is not None and model.octets_in >= hangup


def _reset(sock: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send a reset instead of a FIN.
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
