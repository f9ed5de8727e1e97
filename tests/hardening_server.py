"""A hostile SMTP server on loopback for the hardening tests: it answers with raw bytes.

One thread, one connection at a time, until `close`. Each reply is looked up by the verb of
the client's line in `replies` (bytes, or a function of the line), so a test can put control
characters, forged log lines or echoes of the client's secrets in any reply. ``AUTH
SCRAM-SHA-256`` is answered as a real server would (RFC 5802, RFC 7677), with `iterations`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

Reply = bytes | Callable[[bytes], bytes]

DEFAULT_REPLIES: dict[str, Reply] = {
    "GREETING": b"220 hostile.example ESMTP\r\n",
    "EHLO": b"250-hostile.example\r\n250 AUTH PLAIN SCRAM-SHA-256\r\n",
    "AUTH": b"235 2.7.0 ok\r\n",
    "MAIL": b"250 2.1.0 ok\r\n",
    "RCPT": b"250 2.1.5 ok\r\n",
    "DATA": b"354 go ahead\r\n",
    "END": b"250 2.0.0 queued\r\n",
    "RSET": b"250 2.0.0 ok\r\n",
    "NOOP": b"250 2.0.0 ok\r\n",
    "QUIT": b"221 2.0.0 bye\r\n",
}


@dataclass
class HostileServer:
    """Listens on 127.0.0.1; `destination` is ``[127.0.0.1]:port``; `lines` what it read."""

    replies: dict[str, Reply] = field(default_factory=dict)
    password: str = "pencil"
    iterations: int = 4096
    lines: list[bytes] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self.replies = {**DEFAULT_REPLIES, **self.replies}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.destination = f"[127.0.0.1]:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting and wait for the thread (bounded)."""
        self._stop.set()
        self._thread.join(10)
        self._listener.close()

    def _reply(self, verb: str, line: bytes) -> bytes:
        reply = self.replies[verb]
        return reply(line) if callable(reply) else reply

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.settimeout(10)
                with contextlib.suppress(OSError):
                    self._session(conn)

    def _session(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        conn.sendall(self._reply("GREETING", b""))
        scram: _Scram | None = None
        while True:
            line = reader.readline(65536)
            if not line:
                return
            self.lines.append(line)
            if scram is not None:
                answer, done = scram.step(line)
                conn.sendall(answer)
                scram = None if done else scram
                continue
            word = line.split(b" ", 1)[0].split(b":", 1)[0].strip().upper()
            verb = word.decode("ascii", "replace")
            if verb in ("EHLO", "HELO"):
                conn.sendall(self._reply("EHLO", line))
            elif verb == "AUTH" and line.upper().startswith(b"AUTH SCRAM-SHA-256"):
                scram = _Scram(self.password, self.iterations)
                answer, _ = scram.step(line)
                conn.sendall(answer)
            elif verb == "DATA":
                conn.sendall(self._reply("DATA", line))
                while reader.readline(65536) not in (b".\r\n", b""):
                    pass
                conn.sendall(self._reply("END", line))
            elif verb == "QUIT":
                conn.sendall(self._reply("QUIT", line))
                return
            elif verb in self.replies:
                conn.sendall(self._reply(verb, line))
            else:
                conn.sendall(b"502 5.5.2 unknown command\r\n")


class _Scram:
    """The server side of one SCRAM-SHA-256 exchange (RFC 5802 3), for a known password."""

    def __init__(self, password: str, iterations: int) -> None:
        self.salted = hashlib.pbkdf2_hmac("sha256", password.encode(), b"hostile-salt", iterations)
        self.iterations = iterations
        self.state = "first"
        self.auth_message = b""

    def step(self, line: bytes) -> tuple[bytes, bool]:
        if self.state == "first":
            client_first = base64.b64decode(line.split()[2])
            bare = client_first.split(b",", 2)[2]
            nonce = dict(p.split(b"=", 1) for p in bare.split(b","))[b"r"] + b"srv"
            salt = base64.b64encode(b"hostile-salt")
            server_first = b"r=" + nonce + b",s=" + salt + b",i=%d" % self.iterations
            self.auth_message = bare + b"," + server_first
            self.state = "final"
            return b"334 " + base64.b64encode(server_first) + b"\r\n", False
        if self.state == "final":
            client_final = base64.b64decode(line.strip())
            without_proof = client_final.rsplit(b",p=", 1)[0]
            message = self.auth_message + b"," + without_proof
            server_key = hmac.new(self.salted, b"Server Key", "sha256").digest()
            signature = hmac.new(server_key, message, "sha256").digest()
            self.state = "done"
            verifier = b"v=" + base64.b64encode(signature)
            return b"334 " + base64.b64encode(verifier) + b"\r\n", False
        return b"235 2.7.0 ok\r\n", True
