"""A reactive SMTP/LMTP server, sans I/O: client octets in, server octets out.

`ServerModel` is the server side of one connection. It splits what the client writes into
command lines, DATA content and BDAT chunks, keeps the state a server keeps (greeted, MAIL
given, recipients accepted, messages received, TLS) and asks a `Behaviour` what to say at
each point. While reading it checks what every correct client must do on the wire (CRLF
only, dot-stuffing, line length, nothing in plaintext after a positive STARTTLS reply, no
transaction in plaintext when TLS is required) and raises `Violation` at the first breach.

`Faults` cuts or slows the transport at octet offsets (close after N server octets, hang up
after N client octets, stop reading, drip, delay); the model applies the offsets itself, so the
in-memory world (`support.world`) and the loopback sockets (`support.sockets`) behave alike.

A hostile server is a `Behaviour`: replies before the command (in the greeting or another
reply), surplus replies, silence (``b""``), wrong codes, 221 where 250 belongs, a hang-up on a
verb. `Canonical` is the correct server, with rules for the common deviations; `Scripted`
answers each command from its tables whatever came before (for differential tests);
`Dialogue` answers every command with the next reply of a byte-exact list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from smtpproto.requests import ConnectionLost, DNSError, IOFailure, IORequest, MXRecord

__all__ = [
    "COMMAND_VERBS",
    "MX_DNS",
    "Behaviour",
    "Canonical",
    "Dialogue",
    "Expect",
    "Faults",
    "Message",
    "Scripted",
    "ServerModel",
    "Violation",
    "address_in",
    "ehlo_reply",
]

COMMAND_VERBS = frozenset(
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
"""The verbs a client of this library may send; any other line is a `Violation`."""

# Verbs a client must not send in plaintext when TLS is required (NS-03).
_TRANSACTION_VERBS = frozenset({"MAIL", "RCPT", "DATA", "AUTH", "BDAT"})


class Violation(AssertionError):
    """An invariant of the library broken by the client (never by the simulated server)."""


def ehlo_reply(*keywords: str, domain: str = "mx.example") -> bytes:
    """A positive EHLO/LHLO reply advertising `keywords`, one per line."""
    lines = [domain, *keywords]
    return b"".join(
        f"250{'-' if n < len(lines) - 1 else ' '}{line}\r\n".encode()
        for n, line in enumerate(lines)
    )


def address_in(line: bytes) -> str:
    """The address between the first ``<`` and the next ``>`` of a command line, else ``""``."""
    a = line.find(b"<")
    b = line.find(b">", a + 1)
    return line[a + 1 : b].decode("utf-8", "replace") if a >= 0 and b > a else ""


@dataclass(frozen=True)
class Expect:
    """What the model insists on from the client, beyond CRLF lines and dot-stuffing."""

    line_length_limit: int = 0
    """Message lines longer than this many octets are a `Violation`; 0: no limit."""
    tls_required: bool = False
    """MAIL, RCPT, DATA, AUTH or BDAT before TLS is a `Violation` (NS-03)."""
    commands_only: bool = True
    """A line that is no verb of `COMMAND_VERBS` is a `Violation`; False: it goes to the
    behaviour under its first word (for line-echo peers of the adapter tests)."""


@dataclass(frozen=True)
class Faults:
    """Transport faults of one connection at octet offsets; both drivers honour them."""

    close_at: int | None = None
    """The server closes once it has sent this many octets (0: right after accepting)."""
    reset: bool = False
    """With `close_at` or `hangup_at`: the close is a reset, not an orderly end of stream."""
    hangup_at: int | None = None
    """The server closes once it has read this many client octets (its replies so far go)."""
    stop_reading_at: int | None = None
    """The server reads no more than this many client octets and keeps the connection open."""
    drip: int | None = None
    """At most this many octets per write on a socket, per ``Receive`` in memory."""
    delay: float = 0.0
    """Seconds before each write (sockets only: the in-memory world has no clock)."""


@dataclass(frozen=True)
class Message:
    """One message as the server read it: envelope, then content with dot-stuffing undone."""

    sender: str
    recipients: tuple[str, ...]
    """The recipients accepted at RCPT, in order."""
    content: bytes
    chunked: bool
    """It came in BDAT chunks, not after DATA."""


class Behaviour:
    """What a server says at each decision; subclasses override what they change.

    The first four decisions are the server's; `dns`, `connect`, `fault` and `chunk` are the
    world's around it, asked only by the in-memory `support.world.World`.
    """

    desync = False
    """Set once the behaviour said something a correct server never would (an extra reply,
    garbage, silence): from then on replies may not match commands, so the strict checks stop."""

    def greeting(self, server: ServerModel) -> bytes:
        """What the server says first (anything after the first reply is an early reply)."""
        raise NotImplementedError

    def reply(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """The answer to one command line (``b""``: none). Pseudo-verbs: ``AUTH-RESPONSE``
        for a line answering a 334 challenge, ``BDAT-CHUNK`` for a complete non-final chunk."""
        raise NotImplementedError

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        """The replies to the end of the content, each with the recipients it delivers."""
        raise NotImplementedError

    def handshake(self, server: ServerModel) -> bool:
        """False: the TLS handshake after a positive STARTTLS reply fails."""
        return True

    def dns(self, name: str, rrtype: str) -> Any:
        """The answer to a lookup: records, or a DNSError to raise (in memory only)."""
        return DNSError("nxdomain", f"{name}: no such domain")

    def connect(self, address: str) -> bool:
        """False: the connection is refused (in memory only)."""
        return True

    def fault(self, index: int, request: IORequest) -> IOFailure | bytes | None:
        """A failure to throw at the world's request `index` (``b""``: end of stream)."""
        return None

    def chunk(self, server: ServerModel, available: int, delivered: int) -> int | IOFailure | bytes:
        """How many of the `available` octets one ``Receive`` returns (or a fault);
        `delivered` counts the octets every connection of the world has handed out so far."""
        return available


@dataclass(eq=False)
class ServerModel:
    """One connection's server side: what it read, what it will say, its transaction."""

    behaviour: Behaviour
    lmtp: bool = False
    expect: Expect = field(default_factory=Expect)
    faults: Faults = field(default_factory=Faults)
    keep: bool = True
    """Keep each message's content in `messages` (False: a long benchmark's server)."""
    out: bytearray = field(default_factory=bytearray)
    """Octets the server has said and the client has not read yet."""
    inbuf: bytearray = field(default_factory=bytearray)
    mode: str = "command"  # "command", "data", "auth", "tls" (a positive STARTTLS reply went)
    greeted: bool = False  # a positive EHLO/HELO/LHLO since connect or TLS
    tls: bool = False
    closing: bool = False  # it will close once `out` is read
    reading: bool = True  # False: it reads nothing more (stopped reading, or hung up)
    mail: bool = False
    sender: str = ""
    accepted: list[str] = field(default_factory=list)
    rcpts: list[str] = field(default_factory=list)
    data_lines: int = 0
    content: bytearray = field(default_factory=bytearray)
    bdat_owed: int = 0  # octets of the current BDAT chunk still to come
    bdat_last: bool = False
    verbs: list[str] = field(default_factory=list)
    """Every command's verb, in order (``UNKNOWN`` for a non-command once desynchronised)."""
    lines: list[bytes] = field(default_factory=list)
    """Every command line, CRLF removed."""
    tls_from: int | None = None
    """len(verbs) when TLS began: ``verbs[tls_from:]`` came over TLS."""
    messages: list[Message] = field(default_factory=list)
    delivered: list[str] = field(default_factory=list)
    """Recipients some positive end-of-data reply delivered, in order."""
    octets_in: int = 0
    octets_out: int = 0

    # -- what the drivers call --------------------------------------------------------------

    def start(self) -> None:
        """The connection is open: the greeting goes out (unless a fault cuts it first)."""
        self.out += self.behaviour.greeting(self)
        self._read_limits()

    def receive(self, data: bytes) -> None:
        """The client wrote `data`; read what the faults let through, answer what completes."""
        if not self.reading:
            return
        for limit in (self.faults.stop_reading_at, self.faults.hangup_at):
            if limit is not None:
                data = data[: max(limit - self.octets_in, 0)]
        self.octets_in += len(data)
        if data:
            self._client_wrote(data)
        self._read_limits()

    def _read_limits(self) -> None:
        hangup, stop = self.faults.hangup_at, self.faults.stop_reading_at
        if hangup is not None and self.octets_in >= hangup:
            self.hang_up()
        elif stop is not None and self.octets_in >= stop:
            self.reading = False

    def take(self, limit: int | None = None) -> bytes:
        """Up to `limit` octets of what the server has to say (fewer when dripping or cut)."""
        size = len(self.out)
        if limit is not None:
            size = min(size, limit)
        if self.faults.drip:
            size = min(size, self.faults.drip)
        if self.faults.close_at is not None:
            size = min(size, max(self.faults.close_at - self.octets_out, 0))
        data = bytes(self.out[:size])
        del self.out[:size]
        self.octets_out += size
        return data

    @property
    def cut(self) -> bool:
        """The transport fault struck: the connection ends now, whatever is left to say."""
        close = self.faults.close_at
        return close is not None and self.octets_out >= close

    @property
    def finished(self) -> bool:
        """Nothing more to say and the server closes: after QUIT, 421, a hang-up or a cut."""
        return self.cut or (self.closing and not self.out)

    @property
    def tls_pending(self) -> bool:
        """A positive STARTTLS reply went out: the next thing is the TLS handshake."""
        return self.mode == "tls"

    def tls_started(self) -> bool:
        """The handshake succeeded; True if plaintext was queued past the STARTTLS reply
        (injected bytes that a correct client refuses, NS-01). The session starts afresh."""
        injected = bool(self.out)
        self.out.clear()
        self.tls, self.greeted, self.mode = True, False, "command"
        self.tls_from = len(self.verbs)
        self._reset()
        return injected

    def hang_up(self) -> None:
        """Close once what is queued is read, and read nothing more."""
        self.closing = True
        self.reading = False

    @property
    def verbs_after_tls(self) -> list[str]:
        """The verbs read over TLS."""
        return [] if self.tls_from is None else self.verbs[self.tls_from :]

    # -- the reading side -------------------------------------------------------------------

    def _reset(self) -> None:
        self.mail, self.sender, self.accepted, self.rcpts = False, "", [], []

    def _client_wrote(self, data: bytes) -> None:
        self.inbuf += data
        while self.reading:
            if self.bdat_owed:
                take = bytes(self.inbuf[: self.bdat_owed])
                del self.inbuf[: len(take)]
                self.bdat_owed -= len(take)
                self.content += take
                if self.bdat_owed:
                    break
                self._chunk_complete()
                continue
            end = self.inbuf.find(b"\r\n")
            if end < 0:
                break
            line = bytes(self.inbuf[:end])
            del self.inbuf[: end + 2]
            if b"\r" in line or b"\n" in line:
                raise Violation(f"bare CR or LF on the wire: {line[:80]!r}")
            self._line(line)
        if b"\n" in self.inbuf and not self.bdat_owed and self.reading:
            raise Violation(f"bare LF on the wire: {bytes(self.inbuf[:80])!r}")

    def _chunk_complete(self) -> None:
        # RFC 3030 2: each chunk gets its reply once complete; BDAT LAST's ends the data.
        if not self.bdat_last:
            self.out += self.behaviour.reply(self, "BDAT-CHUNK", b"")
            return
        content = bytes(self.content)
        self.content.clear()
        if content.count(b"\r") != content.count(b"\r\n") or content.count(b"\n") != content.count(
            b"\r\n"
        ):
            raise Violation(f"bare CR or LF in BDAT content: {content[:80]!r}")
        if content and not content.endswith(b"\r\n"):
            raise Violation(f"BDAT content without a final CRLF: {content[-80:]!r}")
        limit = self.expect.line_length_limit
        if limit and any(len(line) > limit for line in content.split(b"\r\n")):
            raise Violation(f"BDAT content line longer than {limit}")
        self._end_of_data(content, chunked=True)

    def _line(self, line: bytes) -> None:
        if self.mode == "data":
            if line == b".":
                self.mode = "command"
                content = bytes(self.content)
                self.content.clear()
                self._end_of_data(content, chunked=False)
                return
            if line.startswith(b".") and not line.startswith(b".."):
                raise Violation(f"a message line starting with '.' was not stuffed: {line!r}")
            limit = self.expect.line_length_limit
            if limit and len(line) > limit:
                raise Violation(f"message line longer than {limit}: {len(line)}")
            self.data_lines += 1
            if self.keep:
                self.content += line[1:] if line.startswith(b".") else line
                self.content += b"\r\n"
            return
        if self.mode == "tls":
            raise Violation(f"plaintext written after a positive STARTTLS reply: {line[:80]!r}")
        if self.mode == "auth":
            reply = self.behaviour.reply(self, "AUTH-RESPONSE", line)
            self.out += reply
            if reply[:3] != b"334":  # RFC 4954 4: another challenge, another response
                self.mode = "command"
            return
        word = line.split(b" ", 1)[0].split(b":", 1)[0].decode("ascii", "replace").upper()
        verb = word
        if verb not in COMMAND_VERBS and self.expect.commands_only:
            if not self.behaviour.desync:
                raise Violation(f"not a command line: {line[:80]!r}")
            verb = "UNKNOWN"
        self.verbs.append(verb)
        self.lines.append(line)
        if self.expect.tls_required and not self.tls and verb in _TRANSACTION_VERBS:
            raise Violation(f"{verb} in plaintext at tls_security_level=encrypt (NS-03)")
        if verb == "BDAT":
            words = line.split()
            if len(words) < 2 or not words[1].isdigit():
                raise Violation(f"malformed BDAT: {line!r}")
            self.bdat_owed = int(words[1])
            self.bdat_last = len(words) > 2 and words[2].upper() == b"LAST"
            if not self.bdat_owed:
                self._chunk_complete()
            return
        reply = self.behaviour.reply(self, verb, line)
        self.out += reply
        code = reply[:3]
        positive = code[:1] == b"2"
        if verb in ("EHLO", "HELO", "LHLO") and positive:
            self.greeted = True
            self._reset()
        elif verb == "STARTTLS" and positive:
            self.mode = "tls"
        elif verb == "AUTH" and code == b"334":
            self.mode = "auth"
        elif verb == "MAIL" and positive:
            self._reset()
            self.mail, self.sender = True, address_in(line)
        elif verb == "RCPT":
            address = address_in(line)
            self.rcpts.append(address)
            if positive:
                self.accepted.append(address)
        elif verb == "DATA" and code[:1] == b"3":
            self.mode = "data"
        elif verb == "RSET":
            self._reset()
        elif verb == "QUIT":
            self.closing = True
        if code == b"421":
            self.closing = True

    def _end_of_data(self, content: bytes, *, chunked: bool) -> None:
        if self.keep:
            self.messages.append(Message(self.sender, tuple(self.accepted), content, chunked))
        for reply, recipients in self.behaviour.end_of_data(self):
            self.out += reply
            if reply[:1] == b"2":
                self.delivered.extend(recipients)
        self._reset()


# -- the correct server ----------------------------------------------------------------------

MX_DNS: Mapping[tuple[str, str], Any] = {
    ("example.com", "MX"): (MXRecord(10, "mx1.example.com"), MXRecord(20, "mx2.example.com")),
    ("mx1.example.com", "A"): ("192.0.2.1",),
    ("mx2.example.com", "A"): ("192.0.2.2",),
    ("mx1.example.com", "AAAA"): (),
    ("mx2.example.com", "AAAA"): (),
}
"""Two MX hosts for example.com (preferences 10 and 20), IPv4 only; `Canonical.dns`'s table."""


@dataclass
class Canonical(Behaviour):
    """A correct Postfix-like server with the given EHLO keywords, and rules for deviations.

    Recipients named ``reject*`` get 550, ``defer*`` 450 to RCPT; ``ldefer*`` get 450 at the
    end of data under LMTP; `rcpt` and `delivery` name others. `replies` replaces the correct
    reply to a verb every time (``b""``: silence); `hangup` verbs close the connection
    unanswered. `fault_at` (request index, failure or ``b""``) and `cut_at` (server octet
    offset over the whole world, ``"eof"``, ``"reset"`` or ``"split"``) are the in-memory
    world's faults for the fuzz target ``faults``: at most one fires.
    """

    keywords: tuple[str, ...] = ("PIPELINING", "8BITMIME", "DSN", "SIZE 1000000")
    fault_at: tuple[int, IOFailure | bytes] | None = None
    cut_at: tuple[int, str] | None = None
    fired: bool = False
    banner: bytes = b"220 mx.example ESMTP\r\n"
    domain: str = "mx.example"
    replies: Mapping[str, bytes] = field(default_factory=dict)
    rcpt: Mapping[str, bytes] = field(default_factory=dict)
    """Address -> its RCPT reply; every other address gets the prefix rule above."""
    delivery: Mapping[str, bytes] = field(default_factory=dict)
    """Address -> its LMTP end-of-data reply; every other one the ``ldefer*`` rule."""
    queued: bytes = b"250 2.0.0 Ok: queued as 4ABC\r\n"
    """The SMTP end-of-data reply when some recipient was accepted."""
    hangup: frozenset[str] = frozenset()
    dns_table: Mapping[tuple[str, str], Any] = field(default_factory=lambda: dict(MX_DNS))

    def dns(self, name: str, rrtype: str) -> Any:
        """`dns_table` (two MX hosts for example.com by default); NXDOMAIN for the rest."""
        answer = self.dns_table.get((name, rrtype))
        if answer is None:
            return DNSError("nxdomain", f"{name}: no such domain")
        return answer

    def greeting(self, server: ServerModel) -> bytes:
        """`banner`: a normal ESMTP banner by default."""
        return self.banner

    def reply(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """`replies`/`hangup` first, else what a correct Postfix-like server answers."""
        if verb in self.hangup:
            server.hang_up()
            return b""
        if verb in self.replies:
            return self.replies[verb]
        return self.correct(server, verb, line)

    def correct(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """The correct reply, rules for ``reject*``/``defer*`` and `rcpt` included."""
        if verb in ("EHLO", "LHLO"):
            if (verb == "LHLO") != server.lmtp:
                return b"500 5.5.1 wrong hello\r\n"
            keywords = [k for k in self.keywords if not (server.tls and k == "STARTTLS")]
            return ehlo_reply(*keywords, domain=self.domain)
        if verb == "HELO":
            return b"250 %s\r\n" % self.domain.encode()
        if not server.greeted and verb not in ("QUIT", "NOOP", "RSET"):
            return b"503 5.5.1 Error: send HELO/EHLO first\r\n"
        if verb == "STARTTLS":
            return b"220 2.0.0 Ready to start TLS\r\n"
        if verb == "MAIL":
            return b"250 2.1.0 Ok\r\n"
        if verb == "RCPT":
            if not server.mail:
                return b"503 5.5.1 Error: need MAIL command\r\n"
            address = address_in(line)
            if address in self.rcpt:
                return self.rcpt[address]
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

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        """SMTP: one reply for all; LMTP: one per accepted recipient, in RCPT order."""
        if not server.lmtp:
            if not server.accepted:
                return [(b"554 5.5.1 Error: no valid recipients\r\n", [])]
            return [(self.queued, list(server.accepted))]
        out = []
        for r in server.accepted:
            if r in self.delivery:
                out.append((self.delivery[r], [r]))
            elif r.startswith("ldefer"):
                out.append((b"450 4.2.1 <%s>: mailbox busy\r\n" % r.encode(), [r]))
            else:
                out.append((b"250 2.0.0 <%s> delivered\r\n" % r.encode(), [r]))
        return out

    def fault(self, index: int, request: IORequest) -> IOFailure | bytes | None:
        """The planned fault, at its request."""
        if self.fault_at is not None and self.fault_at[0] == index:
            return self.fault_at[1]
        return None

    def chunk(self, server: ServerModel, available: int, delivered: int) -> int | IOFailure | bytes:
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


@dataclass
class Scripted(Canonical):
    """`Canonical` answering from its tables alone, whatever came before.

    A differential test gives one server to two clients and compares their outcomes, so each
    command must get the same reply from both: no 503 for a command out of order, no 554 for
    DATA or the end of data without recipients, no ``reject*``/``defer*`` rules. `replies`
    still overrides any verb; RCPT gets `rcpt`'s reply for its address, else `rcpt_default`;
    every end of data gets `queued` (LMTP: each accepted recipient its `delivery` reply, else
    `queued`), so a server may answer 354 and 250 with every recipient refused (rule 7.7).
    Other verbs (STARTTLS, AUTH, XFORWARD, BDAT chunks) get `Canonical`'s answers.
    """

    rcpt_default: bytes = b"250 2.1.5 Ok\r\n"
    """The RCPT reply to an address `rcpt` does not name."""

    def correct(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """The scripted reply to `verb`, the same in any state."""
        if verb in ("EHLO", "LHLO"):
            return ehlo_reply(*self.keywords, domain=self.domain)
        if verb == "RCPT":
            return self.rcpt.get(address_in(line), self.rcpt_default)
        fixed = _SCRIPTED.get(verb)
        if fixed is not None:
            return fixed
        if verb == "HELO":
            return b"250 %s\r\n" % self.domain.encode()
        return super().correct(server, verb, line)

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        """SMTP: `queued` for all (even none); LMTP: `delivery` or `queued`, per recipient."""
        if not server.lmtp:
            return [(self.queued, list(server.accepted))]
        return [(self.delivery.get(r, self.queued), [r]) for r in server.accepted]


# What `Scripted` answers to these verbs in any state: Canonical's replies once greeted.
_SCRIPTED = {
    "MAIL": b"250 2.1.0 Ok\r\n",
    "DATA": b"354 End data with <CR><LF>.<CR><LF>\r\n",
    "RSET": b"250 2.0.0 Ok\r\n",
    "NOOP": b"250 2.0.0 Ok\r\n",
    "QUIT": b"221 2.0.0 Bye\r\n",
}


@dataclass
class Dialogue(Behaviour):
    """A byte-exact script: `banner`, then each command (and each end of data, each LMTP
    recipient's reply) takes the next entry of `replies`; past the end, silence."""

    banner: bytes
    replies: Sequence[bytes]
    used: int = 0

    def _next(self) -> bytes:
        if self.used >= len(self.replies):
            return b""
        self.used += 1
        return self.replies[self.used - 1]

    def greeting(self, server: ServerModel) -> bytes:
        """`banner`."""
        return self.banner

    def reply(self, server: ServerModel, verb: str, line: bytes) -> bytes:
        """The next scripted reply, whatever the command."""
        return self._next()

    def end_of_data(self, server: ServerModel) -> list[tuple[bytes, list[str]]]:
        """The next reply (LMTP: one per accepted recipient), delivering them if positive."""
        if not server.lmtp:
            return [(self._next(), list(server.accepted))]
        return [(self._next(), [r]) for r in server.accepted]
