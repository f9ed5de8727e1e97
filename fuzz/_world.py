"""A simulated world for the delivery engine: DNS, connections and reactive SMTP/LMTP servers.

Unlike ``tests/scripted.py`` (replies written in advance), each server here reads what the
client writes, command by command, and answers it through a `Behaviour`: `Canonical` is a
correct server (with faults injected at a chosen I/O request or byte offset, for the
``faults`` target); the ``session`` target's behaviour draws every decision from hypothesis.
`drive` runs an engine generator against the world and `check_report` asserts the
invariants of DESIGN.md on what happened.
"""

from __future__ import annotations

import base64
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

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
    MXRecord,
    Receive,
    Resolve,
    Send,
    Sleep,
    StartTLS,
    TLSFailed,
    TLSInfo,
)

MAX_REQUESTS = 3000
"""An engine that asks for more I/O than this on these small inputs is looping."""

SECRET = "SECRETPASS-7f3a"
"""The SASL password in every fuzzed configuration; it must never reach a transcript."""

_SECRET_FORMS = (
    SECRET,
    base64.b64encode(SECRET.encode()).decode(),
    base64.b64encode(f"\0user\0{SECRET}".encode()).decode(),
)
TLS = TLSInfo(version="TLSv1.3", cipher="TLS_AES_128_GCM_SHA256", chain_verified=False)
_COMMAND_VERBS = frozenset(
    {
        "EHLO",
        "HELO",
        "LHLO",
        "STARTTLS",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "BDAT",
        "RSET",
        "NOOP",
        "QUIT",
        "XFORWARD",
    }
)


class Violation(AssertionError):
    """An invariant of the library broken by the client (never by the simulated server)."""


@dataclass(eq=False)
class Server:
    """One connection's server side: what it has read, what it will say, its transaction."""

    number: int
    address: str
    lmtp: bool
    out: bytearray = field(default_factory=bytearray)
    inbuf: bytearray = field(default_factory=bytearray)
    mode: str = "command"  # "command", "data", "auth"
    greeted: bool = False  # a positive EHLO/HELO/LHLO since connect or TLS
    tls: bool = False
    closing: bool = False  # it will close once `out` is read
    closed_by_client: bool = False
    dead: bool = False  # an injected fault broke the stream: reads fail from now on
    forbidden: bool = False  # a TLS handshake failed: the client must not use it again
    mail: bool = False
    accepted: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    data_lines: int = 0
    bdat_owed: int = 0  # octets of the current BDAT chunk still to come
    bdat_last: bool = False
    bdat_content: bytearray = field(default_factory=bytearray)
    verbs: list[str] = field(default_factory=list)


class Behaviour:
    """What the world does at each decision; `Canonical` is the correct, fault-free server."""

    desync = False
    """Set once the behaviour said something a correct server never would (an extra reply,
    garbage, silence): from then on replies may not match commands, so the strict checks stop."""

    def dns(self, name: str, rrtype: str) -> Any:
        """The answer to a lookup: records, or a DNSError to raise."""
        raise NotImplementedError

    def connect(self, address: str) -> bool:
        """False: the connection is refused."""
        raise NotImplementedError

    def greeting(self, server: Server) -> bytes:
        """What the server says first."""
        raise NotImplementedError

    def reply(self, server: Server, verb: str, line: bytes) -> bytes:
        """The server's answer to one command line."""
        raise NotImplementedError

    def end_of_data(self, server: Server) -> list[tuple[bytes, list[str]]]:
        """The replies to ``.``, each with the recipients it delivers when positive."""
        raise NotImplementedError

    def fault(self, index: int, request: IORequest) -> IOFailure | bytes | None:
        """A failure to throw at request `index` (or ``b""``: end of stream); None: none."""
        raise NotImplementedError

    def chunk(self, server: Server, available: int, delivered: int) -> int | IOFailure | bytes:
        """How many of the `available` output octets one Receive returns (or a fault)."""
        raise NotImplementedError

    def handshake(self, server: Server) -> bool:
        """False: the TLS handshake fails."""
        raise NotImplementedError


@dataclass(frozen=True)
class Setup:
    """One delivery request: destination, envelope, message, configuration."""

    destination: str
    recipients: tuple[str, ...]
    message: bytes
    config: ClientConfig
    smtputf8: bool = False

    def __repr__(self) -> str:
        """Only what differs from the defaults, so a falsifying example stays readable."""
        default = make_config(lmtp=self.config.lmtp, tls=self.config.tls_security_level)
        changed = {
            name: getattr(self.config, name)
            for name in (
                "destination_recipient_limit",
                "skip_quit_response",
                "line_length_limit",
                "mx_session_limit",
                "chunking",
            )
            if getattr(self.config, name) != getattr(default, name)
        }
        return (
            f"Setup({self.destination!r}, {self.recipients!r}, {self.message!r}, "
            f"make_config(lmtp={self.config.lmtp}, tls={self.config.tls_security_level!r}"
            + "".join(f", {k}={v!r}" for k, v in changed.items())
            + f"), smtputf8={self.smtputf8})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # hypothesis prints falsifying examples with IPython-style pretty printing.
        printer.text(repr(self))

    def envelope(self) -> Envelope:
        """The envelope of this request."""
        return Envelope(
            "sender@example.org",
            tuple(Recipient(r) for r in self.recipients),
            smtputf8=self.smtputf8,
        )


def make_config(*, lmtp: bool, tls: str, **options: Any) -> ClientConfig:
    """A configuration with a SASL secret in it, whatever else the case wants."""
    return ClientConfig(
        lmtp=lmtp,
        helo_name="client.example",
        tls_security_level=tls,
        sasl_auth_enable=True,
        sasl_password_maps={"[192.0.2.1]": f"user:{SECRET}", "example.com": f"user:{SECRET}"},
        **options,
    )


@dataclass
class Outcome:
    """What happened in one run."""

    report: DeliveryReport
    requests: list[IORequest]
    servers: list[Server]
    delivered: set[str]
    server_bytes: int
    desync: bool


class World:
    """Answers the engine's requests; servers react to the bytes the client writes."""

    def __init__(self, setup: Setup, behaviour: Behaviour) -> None:
        self.setup = setup
        self.behaviour = behaviour
        self.servers: list[Server] = []
        self.requests: list[IORequest] = []
        self.delivered: set[str] = set()
        self.delivered_bytes = 0  # server octets handed to the client so far
        self.desync = False  # the behaviour sent replies a correct server never would

    # -- driving ----------------------------------------------------------------------------

    def drive(self, engine: Generator[IORequest, Any, DeliveryReport]) -> Outcome:
        """Run `engine` to completion; Violation if it loops or breaks the I/O contract."""
        result: Any = None
        failure: IOFailure | None = None
        for index in range(MAX_REQUESTS):
            try:
                request = engine.send(result) if failure is None else engine.throw(failure)
            except StopIteration as stop:
                report = stop.value
                if not isinstance(report, DeliveryReport):
                    raise Violation(f"the engine returned {report!r}") from None
                return Outcome(
                    report,
                    self.requests,
                    self.servers,
                    self.delivered,
                    self.delivered_bytes,
                    self.desync or self.behaviour.desync,
                )
            self.requests.append(request)
            result, failure = None, None
            try:
                result = self._answer(index, request)
            except IOFailure as exc:
                failure = exc
        engine.close()
        raise Violation(f"the engine made more than {MAX_REQUESTS} I/O requests")

    def _answer(self, index: int, request: IORequest) -> Any:
        if isinstance(request, (Send, Receive, StartTLS, Close)):
            server = request.channel
            if not isinstance(server, Server) or server not in self.servers:
                raise Violation(f"I/O on a channel the world never opened: {request!r}")
            if server.closed_by_client:
                raise Violation(f"I/O on a closed channel: {request!r}")
            if server.forbidden and not isinstance(request, Close):
                raise Violation(f"I/O after a failed TLS handshake (rule 9.8): {request!r}")
        if isinstance(request, Close):
            request.channel.closed_by_client = True  # type: ignore[attr-defined]
            return None
        if isinstance(request, Sleep):
            if request.seconds < 0:
                raise Violation(f"negative sleep: {request!r}")
            return None
        fault = self.behaviour.fault(index, request)
        if isinstance(request, Resolve):
            if isinstance(fault, DNSError):
                raise fault
            answer = self.behaviour.dns(request.name, request.rrtype)
            if isinstance(answer, DNSError):
                raise answer
            return answer
        if isinstance(request, Connect):
            if isinstance(fault, ConnectFailed) or not self.behaviour.connect(request.address):
                raise fault if isinstance(fault, ConnectFailed) else ConnectFailed("refused")
            server = Server(len(self.servers), request.address, self.setup.config.lmtp)
            self.servers.append(server)
            server.out += self.behaviour.greeting(server)
            return server
        server = request.channel
        assert isinstance(server, Server)
        if isinstance(fault, IOFailure):
            server.dead = True
            if isinstance(fault, TLSFailed):
                server.forbidden = True
            raise fault
        if isinstance(request, Send):
            if server.dead:
                raise ConnectionLost("broken pipe")
            self._client_wrote(server, request.data)
            return None
        if isinstance(request, StartTLS):
            if server.dead:
                raise TLSFailed("connection reset during the handshake")
            if server.mode != "tls":
                raise Violation("StartTLS request without a positive STARTTLS reply")
            if not self.behaviour.handshake(server):
                server.forbidden = True
                raise TLSFailed("handshake failure")
            if server.out:
                self.desync = True  # injected bytes: a correct client must have refused them
            server.out.clear()
            server.tls, server.greeted, server.mode = True, False, "command"
            server.mail, server.accepted, server.rcpts = False, [], []
            return TLS
        assert isinstance(request, Receive)
        if fault == b"" or server.dead:
            server.dead = True
            return b""
        if not server.out:
            if server.closing:
                return b""
            raise IOTimeout("the server said nothing")  # a real client would wait forever
        size = self.behaviour.chunk(server, len(server.out), self.delivered_bytes)
        if isinstance(size, IOFailure):
            server.dead = True
            raise size
        if isinstance(size, bytes):
            server.dead = True
            return b""
        data = bytes(server.out[:size])
        del server.out[:size]
        self.delivered_bytes += len(data)
        return data

    # -- the server's reading side ------------------------------------------------------------

    def _client_wrote(self, server: Server, data: bytes) -> None:
        if not data:
            raise Violation("an empty Send")
        server.inbuf += data
        while True:
            if server.bdat_owed:
                take = bytes(server.inbuf[: server.bdat_owed])
                del server.inbuf[: len(take)]
                server.bdat_owed -= len(take)
                server.bdat_content += take
                if server.bdat_owed:
                    break
                self._chunk_complete(server)
                continue
            end = server.inbuf.find(b"\r\n")
            if end < 0:
                break
            line = bytes(server.inbuf[:end])
            del server.inbuf[: end + 2]
            if b"\r" in line or b"\n" in line:
                raise Violation(f"bare CR or LF on the wire: {line[:80]!r}")
            self._line(server, line)
        if b"\n" in server.inbuf and not server.bdat_owed:
            raise Violation(f"bare LF on the wire: {bytes(server.inbuf[:80])!r}")

    def _chunk_complete(self, server: Server) -> None:
        # RFC 3030 2: each chunk gets its reply once complete; BDAT LAST's ends the data.
        if not server.bdat_last:
            server.out += self.behaviour.reply(server, "BDAT-CHUNK", b"")
            return
        content = bytes(server.bdat_content)
        server.bdat_content.clear()
        if content.count(b"\r") != content.count(b"\r\n") or content.count(b"\n") != content.count(
            b"\r\n"
        ):
            raise Violation(f"bare CR or LF in BDAT content: {content[:80]!r}")
        if content and not content.endswith(b"\r\n"):
            raise Violation(f"BDAT content without a final CRLF: {content[-80:]!r}")
        limit = self.setup.config.line_length_limit
        if limit and any(len(line) > limit for line in content.split(b"\r\n")):
            raise Violation(f"BDAT content line longer than {limit}")
        self._end_of_data(server)

    def _line(self, server: Server, line: bytes) -> None:
        if server.mode == "data":
            if line == b".":
                server.mode = "command"
                self._end_of_data(server)
                return
            if line.startswith(b".") and not line.startswith(b".."):
                raise Violation(f"a message line starting with '.' was not stuffed: {line!r}")
            limit = self.setup.config.line_length_limit
            if limit and len(line) > limit:
                raise Violation(f"message line longer than {limit}: {len(line)}")
            server.data_lines += 1
            return
        if server.mode == "tls":
            raise Violation(f"plaintext written after a positive STARTTLS reply: {line[:80]!r}")
        if server.mode == "auth":
            reply = self.behaviour.reply(server, "AUTH-RESPONSE", line)
            server.out += reply
            if reply[:3] != b"334":  # RFC 4954 4: another challenge, another response
                server.mode = "command"
            return
        verb = line.split(b" ", 1)[0].split(b":", 1)[0].decode("ascii", "replace").upper()
        if verb not in _COMMAND_VERBS:
            if not (self.desync or self.behaviour.desync):
                raise Violation(f"not a command line: {line[:80]!r}")
            verb = "UNKNOWN"
        server.verbs.append(verb)
        plaintext_forbidden = self.setup.config.tls_security_level == "encrypt" and not server.tls
        if plaintext_forbidden and verb in ("MAIL", "RCPT", "DATA", "AUTH", "BDAT"):
            raise Violation(f"{verb} in plaintext at tls_security_level=encrypt (NS-03)")
        if verb == "BDAT":
            words = line.split()
            if len(words) < 2 or not words[1].isdigit():
                raise Violation(f"malformed BDAT: {line!r}")
            server.bdat_owed = int(words[1])
            server.bdat_last = len(words) > 2 and words[2].upper() == b"LAST"
            if not server.bdat_owed:
                self._chunk_complete(server)
            return
        reply = self.behaviour.reply(server, verb, line)
        server.out += reply
        code = reply[:3]
        positive = code[:1] == b"2"
        if verb in ("EHLO", "HELO", "LHLO") and positive:
            server.greeted = True
            server.mail, server.accepted, server.rcpts = False, [], []
        elif verb == "STARTTLS" and positive:
            server.mode = "tls"
        elif verb == "AUTH" and code == b"334":
            server.mode = "auth"
        elif verb == "MAIL" and positive:
            server.mail, server.accepted, server.rcpts = True, [], []
        elif verb == "RCPT":
            address = _between(line, b"<", b">")
            server.rcpts.append(address)
            if positive:
                server.accepted.append(address)
        elif verb == "DATA" and code[:1] == b"3":
            server.mode = "data"
        elif verb == "RSET":
            server.mail, server.accepted, server.rcpts = False, [], []
        elif verb == "QUIT":
            server.closing = True
        if code == b"421":
            server.closing = True

    def _end_of_data(self, server: Server) -> None:
        for reply, recipients in self.behaviour.end_of_data(server):
            server.out += reply
            if reply[:1] == b"2":
                self.delivered.update(recipients)
        server.mail, server.accepted, server.rcpts = False, [], []


def _between(line: bytes, start: bytes, end: bytes) -> str:
    a = line.find(start)
    b = line.find(end, a + 1)
    return line[a + 1 : b].decode("utf-8", "replace") if a >= 0 and b > a else ""


def check_report(setup: Setup, outcome: Outcome, *, strict: bool) -> None:
    """DESIGN.md's invariants on one run. `strict`: the server never lied (no desync)."""
    report = outcome.report
    addresses = [r.address for r in report.recipients]
    if addresses != list(setup.recipients):
        raise Violation(f"recipients {addresses} != envelope {list(setup.recipients)}")
    for r in report.recipients:
        if r.status not in ("sent", "deferred", "bounced"):
            raise Violation(f"unknown status {r.status!r}")
        if r.dsn[:1] != {"sent": "2", "deferred": "4", "bounced": "5"}[r.status]:
            raise Violation(f"{r.address}: status {r.status} with dsn {r.dsn}")
        if r.status == "sent":
            if r.reply is None or not r.reply.is_positive:
                raise Violation(f"{r.address}: sent without a positive reply: {r.reply}")
            if strict and not outcome.desync and r.address not in outcome.delivered:
                raise Violation(f"{r.address}: sent, but no server accepted it at end of data")
    for server in outcome.servers:
        if not server.closed_by_client:
            raise Violation(f"connection #{server.number} to {server.address} never closed")
    texts = [*report.transcript, *(r.diagnostic for r in report.recipients)]
    for text in texts:
        for form in _SECRET_FORMS:
            if form in text:
                raise Violation(f"a SASL secret in the transcript or a diagnostic: {text!r}")


def run_setup(setup: Setup, behaviour: Behaviour) -> Outcome:
    """Drive ``deliver`` for `setup` in a fresh world."""
    world = World(setup, behaviour)
    engine = deliver(
        setup.destination,
        setup.envelope(),
        setup.message,
        config=setup.config,
        clock=_Clock(),
        rng=_Rng(),
    )
    return world.drive(engine)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.01
        return self.now


class _Rng:
    def __init__(self) -> None:
        self.state = 12345

    def random(self) -> float:
        # A tiny LCG: deterministic, so a failing case replays exactly.
        self.state = (self.state * 1103515245 + 12345) % 2**31
        return self.state / 2**31


# -- the correct server --------------------------------------------------------------------

MX_DNS: dict[tuple[str, str], Any] = {
    ("example.com", "MX"): (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")),
    ("mx1.example.com", "A"): ("192.0.2.1",),
    ("mx2.example.com", "A"): ("192.0.2.2",),
    ("mx1.example.com", "AAAA"): (),
    ("mx2.example.com", "AAAA"): (),
}


@dataclass
class Canonical(Behaviour):
    """A correct server with the given EHLO keywords, and at most one injected fault.

    Recipients named ``reject*`` get 550, ``defer*`` 450 to RCPT; ``ldefer*`` get 450 at the
    end of data under LMTP. `fault_at`: (request index, failure or ``b""``). `cut_at`:
    (server octet offset, ``"eof"``, ``"reset"`` or ``"split"``): the stream ends, is reset,
    or is only split there.
    """

    keywords: tuple[str, ...] = ("PIPELINING", "8BITMIME", "DSN", "SIZE 1000000")
    fault_at: tuple[int, IOFailure | bytes] | None = None
    cut_at: tuple[int, str] | None = None
    fired: bool = False

    def dns(self, name: str, rrtype: str) -> Any:
        """Two MX hosts for example.com; NXDOMAIN for anything else."""
        answer = MX_DNS.get((name, rrtype))
        if answer is None:
            return DNSError("nxdomain", f"{name}: no such domain")
        return answer

    def connect(self, address: str) -> bool:
        """Every server accepts connections."""
        return True

    def greeting(self, server: Server) -> bytes:
        """A normal ESMTP banner."""
        return b"220 mx.example ESMTP\r\n"

    def reply(self, server: Server, verb: str, line: bytes) -> bytes:
        """What a correct Postfix-like server answers."""
        if verb in ("EHLO", "LHLO"):
            if (verb == "LHLO") != server.lmtp:
                return b"500 5.5.1 wrong hello\r\n"
            keywords = [k for k in self.keywords if not (server.tls and k == "STARTTLS")]
            lines = ["mx.example", *keywords]
            return b"".join(
                b"250%s%s\r\n" % (b" " if i == len(lines) - 1 else b"-", k.encode())
                for i, k in enumerate(lines)
            )
        if verb == "HELO":
            return b"250 mx.example\r\n"
        if not server.greeted and verb not in ("QUIT", "NOOP", "RSET"):
            return b"503 5.5.1 Error: send HELO/EHLO first\r\n"
        if verb == "STARTTLS":
            return b"220 2.0.0 Ready to start TLS\r\n"
        if verb == "MAIL":
            return b"250 2.1.0 Ok\r\n"
        if verb == "RCPT":
            if not server.mail:
                return b"503 5.5.1 Error: need MAIL command\r\n"
            address = _between(line, b"<", b">")
            if address.startswith("reject"):
                return b"550 5.1.1 <%s>: Recipient address rejected\r\n" % address.encode()
            if address.startswith("defer"):
                return b"450 4.2.0 <%s>: try again later\r\n" % address.encode()
            return b"250 2.1.5 Ok\r\n"
        if verb == "DATA":
            if not server.accepted:
                return b"554 5.5.1 Error: no valid recipients\r\n"
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == "QUIT":
            return b"221 2.0.0 Bye\r\n"
        if verb == "BDAT-CHUNK":
            return b"250 2.0.0 chunk accepted\r\n"
        if verb in ("RSET", "NOOP", "XFORWARD"):
            return b"250 2.0.0 Ok\r\n"
        return b"502 5.5.2 Error: command not recognized\r\n"

    def end_of_data(self, server: Server) -> list[tuple[bytes, list[str]]]:
        """SMTP: one 250 for all; LMTP: one reply per accepted recipient."""
        if not server.lmtp:
            if not server.accepted:
                return [(b"554 5.5.1 Error: no valid recipients\r\n", [])]
            return [(b"250 2.0.0 Ok: queued as 4ABC\r\n", list(server.accepted))]
        return [
            (b"450 4.2.1 <%s>: mailbox busy\r\n" % r.encode(), [r])
            if r.startswith("ldefer")
            else (b"250 2.0.0 <%s> delivered\r\n" % r.encode(), [r])
            for r in server.accepted
        ]

    def fault(self, index: int, request: IORequest) -> IOFailure | bytes | None:
        """The planned fault, at its request."""
        if self.fault_at is not None and self.fault_at[0] == index:
            return self.fault_at[1]
        return None

    def chunk(self, server: Server, available: int, delivered: int) -> int | IOFailure | bytes:
        """Everything, except around the planned cut."""
        if self.cut_at is None or self.fired:
            return available
        offset, kind = self.cut_at
        if delivered + available <= offset:
            return available
        if delivered < offset:
            return offset - delivered  # up to the cut, then the cut itself
        self.fired = True
        if kind == "eof":
            return b""
        if kind == "reset":
            return ConnectionLost("connection reset by peer")
        return available

    def handshake(self, server: Server) -> bool:
        """Every handshake succeeds."""
        return True
