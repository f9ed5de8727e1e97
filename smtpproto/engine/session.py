"""One SMTP/LMTP session: greeting, EHLO/HELO/LHLO, STARTTLS and AUTH, QUIT (rules 3, 5, 9).

Postfix smtp_proto.c ``smtp_helo()`` and ``smtp_quit()``. All protocol bytes come from
:class:`~smtpproto.connection.ClientConnection`; this module only decides what to send, when,
and what each reply means, through :mod:`.trouble`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Generator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .._errors import RemoteProtocolError
from ..capabilities import Capabilities
from ..commands import (
    Auth,
    AuthResponse,
    Command,
    Ehlo,
    EndOfData,
    Helo,
    Lhlo,
    MessageData,
    Quit,
)
from ..config import ClientConfig
from ..connection import NEED_DATA, ClientConnection, State
from ..events import Event, Greeting
from ..replies import Reply
from ..report import TLSState
from ..requests import (
    Channel,
    Close,
    ConnectionLost,
    IOFailure,
    IORequest,
    IOTimeout,
    Random,
    Receive,
    Send,
    Sleep,
    TLSInfo,
)
from ..tables import KeyLookup
from .cache import reuse_allowed
from .redact import Redactor, redact_client_line
from .trouble import Server, Stage, Trouble, handshake_trouble, stream_trouble

__all__ = [
    "IO",
    "Budget",
    "Session",
    "SessionPolicy",
    "fail_stream",
    "handshake",
    "hello",
    "queued_at_least",
    "reply_line_filter",
]

IO = Generator[IORequest, Any, Any]
"""The type of every engine generator: yields requests, receives their results."""

# Rule 3.3: a greeting made only of these characters is Cisco PIX's mangled banner.
_PIX_BANNER = frozenset("20 *\t\n")


class Budget:
    """The time one request may take: a limit per read or write, or a deadline (rule 10.2).

    Postfix 3.7's ``smtp_per_request_deadline``: with `deadline` on, the limit covers sending
    the whole request and receiving its whole reply, so a peer that trickles one byte at a
    time cannot stretch it; without, each read or write gets the whole limit again. During
    the content, `credit` adds time for the octets written (``smtp_min_data_rate``).
    """

    __slots__ = ("_clock", "_end", "_limit")

    def __init__(self, clock: Callable[[], float], limit: float | None, deadline: bool) -> None:
        self._clock = clock
        self._limit = limit
        self._end = clock() + limit if deadline and limit is not None else None

    def timeout(self) -> float | None:
        """The timeout for the next read or write; `IOTimeout` once the deadline passed."""
        if self._end is None:
            return self._limit
        left = self._end - self._clock()
        if left <= 0:
            raise IOTimeout(f"deadline of {self._limit}s passed")
        return left

    def credit(self, octets: int, rate: int) -> None:
        """Octets written earn ``octets / rate`` seconds, never beyond the whole limit ahead."""
        if self._end is not None and self._limit is not None and rate > 0:
            self._end = min(self._end + octets / rate, self._clock() + self._limit)


@dataclass
class Session:
    """One open connection and what the engine knows about it.

    Created by :func:`smtpproto.engine.open_session` (or internally by ``deliver``); adapters
    treat it as opaque and hand it back to ``transact`` and ``close_session``.
    """

    connection: ClientConnection
    channel: Channel
    server: Server
    config: ClientConfig
    clock: Callable[[], float]
    rng: Random
    nonce: Callable[[], str] | None
    lmtp: bool
    started: float
    capabilities: Capabilities | None = None
    tls: TLSInfo | None = None
    tls_state: TLSState | None = None
    """Postfix's trust word, protocol and cipher once TLS is up (rule 5.6)."""
    identity: str | None = None
    """The SASL identity the session authenticated as (rules 9.5, 11.8)."""
    cacheable: bool = True
    """False after anything in rule 9.2 that forbids reuse."""
    forbidden: bool = False
    """No more I/O at all: a TLS handshake failed (rules 5.5, 9.8)."""
    closed: bool = False
    pinned: bool = False
    """Opened by ``open_session``: the caller keeps it for its own transactions, TLS or not."""
    uses: int = 0
    pix_delay_dotcrlf: bool = False
    """PIX ``delay_dotcrlf`` is on for this connection (rule 3.3); see `pix_dotcrlf_due`."""
    arrival: float | None = None
    """When the message of the current transaction was queued (``Envelope.arrival``)."""
    retired: bool = False
    """A held session the library closed so that the next transaction gets a new connection:
    it reached a reuse limit (rule 9.1), or its login was for another sender (rule 11.8)."""
    held: object | None = None
    """What ``open_session`` keeps for a held session (the delivery layer's, opaque here)."""
    commands_memo: object | None = None
    """The last envelope's checked commands (``EnvelopeCommands.for_session``'s, opaque here)."""
    transcript: list[str] = field(default_factory=list)
    redactor: Redactor = field(default_factory=Redactor)
    """The secrets of the delivery this session serves; every string goes through it."""
    _out: bytearray = field(default_factory=bytearray)

    def note(self, line: str) -> None:
        """Add `line` to the transcript, escaped and with every known secret masked
        (RP-24, AU-18): the one way text reaches it."""
        redactor = self.redactor
        # `Redactor.shown` changes nothing in a printable line when no secret is known (most
        # sessions, nine lines per message): skip its calls then.
        if redactor.active or not line.isprintable():
            line = redactor.shown(line)
        self.transcript.append(line)

    # -- output ---------------------------------------------------------------------------

    def _check_usable(self, command: Command | MessageData | EndOfData) -> None:
        # CV-10a: nothing after a protocol error; RFC 5321 3.8: only QUIT after a 421. The
        # callers already treat a lost connection as a site failure, which is what this is.
        state = self.connection.state
        if state is State.ERROR or (state is State.CLOSING and not isinstance(command, Quit)):
            raise ConnectionLost(
                f"connection unusable ({state.value}): no {type(command).__name__} may follow"
            )

    def write(self, command: Command) -> int:
        """Queue `command` for the next flight; returns its size on the wire."""
        self._check_usable(command)
        data = self.connection.send(command)
        self._out += data
        if isinstance(command, (Auth, AuthResponse)):
            # Secrets never reach the transcript (AU-15): the verb, mechanism, "*" stay visible.
            line = redact_client_line(data, auth_exchange=isinstance(command, AuthResponse))
            self.note("Out: " + line)
        else:
            self.note("Out: " + data.decode("utf-8", "replace").rstrip("\r\n"))
        return len(data)

    def write_content(self, content: MessageData | EndOfData) -> None:
        """Queue message content (encoded by the connection); the transcript shows its end
        and the BDAT header of each chunk, never the content itself."""
        self._check_usable(content)
        in_data = self.connection.state is State.CONTENT
        data = self.connection.send(content)
        self._out += data
        if in_data:
            if type(content) is EndOfData:
                self.note("Out: .")
        elif data:
            # A chunk the connection framed: its data starts with the BDAT header line.
            self.note("Out: " + data[: data.index(b"\r\n")].decode("ascii"))

    @property
    def buffered(self) -> int:
        """Bytes queued and not yet handed to the adapter."""
        return len(self._out)

    def budget(self, timeout: float | None) -> Budget:
        """The time budget of one request under this session's deadline setting."""
        return Budget(self.clock, timeout, self.config.per_request_deadline)

    def flush(self, budget: Budget) -> IO:
        """Write everything queued in one ``Send``; returns the number of octets written."""
        if not self._out:
            return 0
        data = bytes(self._out)
        self._out.clear()
        yield Send(self.channel, data, budget.timeout())
        return len(data)

    def discard_output(self) -> None:
        """Forget queued output (rule 7.9: after a body write failure nothing more is sent)."""
        self._out.clear()

    # -- input ----------------------------------------------------------------------------

    def read(self, timeout: float | None) -> IO:
        """Flush, then read until the connection has the next event; return it.

        `timeout` is the limit of the request (rule 10.1), per call or as a deadline for the
        flush and every read of the reply (rule 10.2). End of stream while a reply is awaited
        is a lost connection (rule 10.4).
        """
        connection = self.connection
        # The budget starts with the first I/O: a reply that came with an earlier one needs
        # none (most replies of a pipelined group do).
        budget = None
        if self._out:
            budget = self.budget(timeout)
            yield from self.flush(budget)
        event = connection.next_event()
        while event is NEED_DATA:
            if budget is None:
                budget = self.budget(timeout)
            data = yield Receive(self.channel, budget.timeout())
            if not data:
                # A complete reply is always taken before reading again, so EOF here is EOF
                # while a reply is awaited (rules 1.10, 10.4).
                raise ConnectionLost("connection closed by the server")
            connection.receive_data(data)
            event = connection.next_event()
        self._record(event)
        return event

    def ready(self) -> Event | None:
        """The next event when `read` would need no I/O for it (nothing queued to write, the
        reply already received); else None, and nothing changes."""
        if self._out:
            return None
        event = self.connection.next_event()
        if event is NEED_DATA:
            return None
        self._record(event)
        return event

    def _record(self, event: Event) -> None:
        reply = getattr(event, "reply", None)
        if isinstance(reply, Reply):
            last = len(reply.lines) - 1
            for n, line in enumerate(reply.lines):
                self.note(f"In: {reply.code}{' ' if n == last else '-'}{line}")

    def read_reply(self, timeout: float | None) -> IO:
        """The next event's reply; a connection that closes instead is lost (rule 10.4)."""
        event: Event = yield from self.read(timeout)
        reply = getattr(event, "reply", None)
        if not isinstance(reply, Reply):
            raise ConnectionLost("connection closed by the server")
        return reply

    def command(self, command: Command, timeout: float | None) -> IO:
        """Send one command and return the reply to it (no pipelining)."""
        self.write(command)
        reply: Reply = yield from self.read_reply(timeout)
        return reply

    # -- ending ---------------------------------------------------------------------------

    def _reuse_allowed(self, reuses: int) -> bool:
        config = self.config
        return reuse_allowed(
            self.started,
            reuses,
            self.clock(),
            reuse_time=config.connection_reuse_time_limit,
            reuse_count=config.connection_reuse_count_limit,
        )

    def worn_out(self) -> bool:
        """Whether a transaction starting now would pass rule 9.1's reuse limits
        (`reuse_allowed`): `uses` transactions went before it, the first of them no reuse."""
        return self.uses > 0 and not self._reuse_allowed(self.uses - 1)

    def reusable(self) -> bool:
        """May this session be kept for another transaction (rules 9.1, 9.2, 9.6)?

        A held session (`pinned`) obeys the reuse limits too: one that reached them is
        marked `retired`, and ``transact`` opens a new connection in its place (rule 9.1).
        """
        usable = (
            self.cacheable
            and not self.forbidden
            and not self.closed
            and self.connection.state not in (State.CLOSING, State.ERROR)
        )
        if self.pinned:
            if usable and not self._reuse_allowed(self.uses):
                self.retired = True
                return False
            return usable
        config = self.config
        return (
            usable
            and (self.tls is None or config.tls_connection_reuse)
            # `uses` counts the transactions kept before this one: the reuses so far.
            and self._reuse_allowed(self.uses)
        )

    def adopt(self, other: Session) -> None:
        """Become `other` (a new connection for this held session), keeping this object,
        which the caller holds."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(other, name))

    def quit(self) -> IO:
        """QUIT (reply read only when `skip_quit_response` is off, rule 9.7), then close."""
        if self.closed:
            return
        if not self.forbidden:
            timeout = self.config.quit_timeout
            try:
                self.write(Quit())
                if self.config.skip_quit_response:
                    yield from self.flush(self.budget(timeout))
                else:
                    yield from self.read(timeout)
            except (IOFailure, RemoteProtocolError):
                # Rule 9.7: whatever happens to QUIT, delivery is not affected.
                pass
        yield from self.close()

    def close(self) -> IO:
        """Close the channel without further protocol (rule 9.8, after a TLS failure)."""
        if not self.closed:
            self.closed = True
            self.cacheable = False
            self.discard_output()
            yield Close(self.channel)

    def pix_dotcrlf_due(self) -> bool:
        """Whether ``delay_dotcrlf`` applies to the current message (rules 3.3, 8.4).

        Postfix drops it for a message queued less than ``pix_workaround_threshold_time``
        (`queued_at_least`).
        """
        if not self.pix_delay_dotcrlf:
            return False
        return queued_at_least(
            self.arrival, self.clock(), self.config.pix_workaround_threshold_time
        )

    def sleep(self, seconds: float) -> IO:
        """Wait, for the PIX ``delay_dotcrlf`` workaround (rule 8.4)."""
        yield Sleep(seconds)


def queued_at_least(arrival: float | None, now: float, seconds: float) -> bool:
    """Whether a message that arrived at `arrival` has been queued `seconds` by `now`.

    The one reading of ``Envelope.arrival`` for both rules that ask (rules 3.3, 5.5): a
    message of unknown arrival counts as just queued, its first attempt, so only a threshold
    of 0 holds for it. A caller that retries tells the engine when the message arrived.
    """
    if arrival is None:
        return seconds <= 0
    return now - arrival >= seconds


def reply_line_filter(
    table: KeyLookup[str], note: Callable[[str], None]
) -> Callable[[str], str | None] | None:
    """``smtp_reply_filter`` for a `ClientConnection` (rule 1.9): each reply line is looked
    up whole; a result replaces it before it is parsed, and `note` (the transcript) says so."""
    if not table:
        return None

    def rewrite(line: str) -> str | None:
        found = table.get(line)
        if found is None:
            return None
        replacement = str(found)
        note(f'replacing server reply "{line}" with "{replacement}"')
        return replacement

    return rewrite


class SessionPolicy(Protocol):
    """The STARTTLS and AUTH steps of the handshake, plugged in by the TLS/SASL work.

    Each step returns ``None`` to go on, or the site failure that ends the session (rules 5,
    11); `prepare` runs first, before the greeting is read.
    """

    def prepare(self, session: Session) -> None:
        """Tell `session.redactor` the secrets this connection may send (AU-18)."""
        ...

    def starttls(self, session: Session) -> IO:
        """Run STARTTLS (and the second EHLO) if the policy wants TLS."""
        ...

    def authenticate(self, session: Session) -> IO:
        """Run AUTH if the policy has credentials for this server."""
        ...


def _greeting_analysis(reply: Reply) -> tuple[bool, bool]:
    # Rule 3.3: (PIX banner, banner announces ESMTP), read as Postfix reads them: on the
    # reply as smtp_chat_resp() keeps it, every line with its code and separator, joined by
    # LF. So a multi-line banner is never a PIX banner (its "220-" has a "-"), and after the
    # first word (the code) the words are split at space, TAB and LF only: an "ESMTP" on a
    # continuation line past the first stays glued to its "220-" and does not count.
    code, last = str(reply.code), len(reply.lines) - 1
    text = "\n".join(
        f"{code}-{line}" if n < last else f"{code} {line}" if line else code
        for n, line in enumerate(reply.lines)
    )
    pix = set(text) <= _PIX_BANNER
    # strcasecmp(): ASCII letters only (U+017F, long s, upper-cases to "S").
    esmtp = any(
        word.isascii() and word.upper() == "ESMTP" for word in re.split(r"[ \t\n]", text[4:])
    )
    return pix, esmtp


def hello(session: Session, *, esmtp: bool) -> IO:
    """EHLO with HELO fallback, or LHLO (rules 3.4-3.7); returns a Trouble or None."""
    config = session.config
    server = session.server
    timeout = config.helo_timeout
    hello: Command
    if session.lmtp:
        stage, hello = Stage.LHLO, Lhlo(config.helo_name)
    elif esmtp:
        stage, hello = Stage.EHLO, Ehlo(config.helo_name)
    else:
        stage, hello = Stage.HELO, Helo(config.helo_name)
    try:
        reply: Reply = yield from session.command(hello, timeout)
        if reply.is_positive:
            if stage is not Stage.HELO:
                # The connection applied the discard lists (rule 4.5) when it parsed the reply.
                session.capabilities = session.connection.capabilities
            return None
        if stage is not Stage.EHLO or reply.code == 421:
            # Rules 3.5-3.7: EHLO 421, and HELO/LHLO failures, are site failures.
            session.cacheable = False
            return handshake_trouble(server, reply)
        stage = Stage.HELO
        reply = yield from session.command(Helo(config.helo_name), timeout)
    except (IOFailure, RemoteProtocolError) as exc:
        return fail_stream(session, exc, stage)
    if reply.is_positive:
        return None
    session.cacheable = False
    return handshake_trouble(server, reply)


def fail_stream(session: Session, exc: Exception, stage: Stage) -> Trouble:
    """A stream exception (rule 2.9) or a malformed reply; the session becomes unusable."""
    session.cacheable = False
    if isinstance(exc, IOFailure):
        session.forbidden = True
        return stream_trouble(session.server, exc, stage)
    # A reply our parser cannot accept (RP-* cases): Postfix would absorb it (1.5), we cannot
    # trust the rest of the stream, so it is a protocol-level site failure. The connection
    # refuses every command after it (CV-10a), QUIT included: close without one.
    session.forbidden = True
    return Trouble(
        "4.5.0",
        f"protocol error with {session.server.label} while {stage.value}: {exc}",
        site=True,
        protocol_error=True,
    )


def handshake(session: Session, policy: SessionPolicy) -> IO:
    """Greeting, EHLO/HELO/LHLO, STARTTLS and AUTH; returns ``None`` or the site Trouble."""
    config = session.config
    server = session.server
    policy.prepare(session)
    try:
        event: Event = yield from session.read(config.helo_timeout)
    except (IOFailure, RemoteProtocolError) as exc:
        return fail_stream(session, exc, Stage.GREETING)
    if not isinstance(event, Greeting):
        session.forbidden = True
        return stream_trouble(server, ConnectionLost("closed"), Stage.GREETING)
    reply = event.reply
    if not reply.is_positive:
        session.cacheable = False
        # Rule 3.1: 5xx with skip_5xx_greeting is treated as 4xx (next MX or defer).
        refusal = handshake_trouble(server, reply, soften=config.skip_5xx_greeting)
        if reply.code // 100 == 4 and not config.skip_4xx_greeting:
            # Postfix <= 2.0 smtp_skip_4xx_greeting=no: a 4xx greeting defers at once, with
            # no other server tried (later versions always skip to the next server).
            refusal = replace(refusal, final_server=True)
        return refusal
    pix, announces_esmtp = _greeting_analysis(reply)
    # Rule 3.3: the per-address table, when it has this server, replaces the global list.
    chosen = config.pix_workaround_maps.get(server.address, config.pix_workarounds)
    workarounds = {w.lower() for w in chosen} if pix else set()
    session.pix_delay_dotcrlf = "delay_dotcrlf" in workarounds
    if config.never_send_ehlo or "disable_esmtp" in workarounds:
        esmtp = False  # rule 3.4: this wins
    else:
        esmtp = config.always_send_ehlo or announces_esmtp
    trouble: Trouble | None = yield from hello(session, esmtp=esmtp)
    if trouble is None:
        trouble = yield from policy.starttls(session)
    if trouble is None:
        trouble = yield from policy.authenticate(session)
    if trouble is not None:
        session.cacheable = False
    return trouble
