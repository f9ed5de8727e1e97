"""One mail transaction on an open session, in three steps (Postfix smtp_proto.c ``smtp_xfer``).

1. **plan**: the refusals that need no command (rules 3.10 and 6.8), then the commands:
   XFORWARD, MAIL, one RCPT per recipient, and DATA unless the content goes in BDAT chunks.
2. **pipeline**: the commands go out in as few flights as PIPELINING and Postfix's 4096-octet
   rule allow (rules 7.2-7.6), and a transaction that can no longer carry mail stops early.
3. **content**: DATA's message and its final dot, or BDAT chunks ending with ``BDAT n LAST``
   (RFC 3030), QUIT pipelined behind the end unless the session is kept (rules 7.3, 9.3).

`ClientConnection` alone matches replies to commands: every event names the command it
answers (and LMTP's per-recipient replies the RCPT), and the engine routes on that, so it keeps
no queue of its own that could fall out of step with the wire. A recipient is ``sent`` only on
its own positive RCPT reply and a positive reply to the end of its data (per recipient in
LMTP), which the connection accepts only after the whole content and the end were sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from .._errors import LocalProtocolError, MessageRefused, RemoteProtocolError
from ..body import MessageInfo
from ..commands import Bdat, Command, Data, EndOfData, Mail, MessageData, Quit, Rcpt, Rset, Xforward
from ..config import ClientConfig
from ..envelope import Envelope
from ..events import CommandReply, Event, RecipientReply
from ..mime import downgrade_8bit
from ..replies import Reply
from ..requests import ConnectionLost, IOFailure
from .generic import GenericMaps
from .refusals import eightbit_refusal, needs_downgrade, size_refusal, smtputf8_refusal
from .session import IO, Session, fail_stream
from .trouble import Decision, Ledger, Stage, Trouble, local_trouble, remote_trouble

__all__ = ["PIPELINE_LIMIT", "EnvelopeCommands", "run_transaction"]

PIPELINE_LIMIT = 4096
"""Unread pipelined command bytes never exceed this (rules 7.2, 7.4: PIPELINING_BUFSIZE)."""

BDAT_WINDOW = 16
"""With PIPELINING, at most this many BDAT replies are left unread while chunks go out.

Bounds what the server must buffer for us (RFC 3030 4.2 allows pipelined BDAT), so neither
side can block on a full socket while the other waits."""

CONTENT_FLUSH = 65536
"""Message content is handed to the adapter in writes of about this many octets."""

# Rule 13.1-13.2: the two XFORWARD commands and which attributes each carries, in order.
_XFORWARD_GROUPS: tuple[tuple[str, ...], ...] = (
    ("NAME", "ADDR", "PORT"),
    ("PROTO", "HELO", "IDENT", "SOURCE"),
)
# Rule 13.1: these are left out when "unknown"; the others only when empty.
_XFORWARD_UNKNOWN_MEANS_NONE = frozenset({"NAME", "ADDR", "PORT", "PROTO"})


@dataclass(frozen=True)
class EnvelopeCommands:
    """An envelope's MAIL and RCPT commands, built (and so checked) before any I/O.

    Addresses go out as ``smtp_generic_maps`` rewrites them (rule 6.7); ORCPT and the
    report keep the caller's.

    Built once per delivery with every parameter the envelope asks for, so a bad address or
    parameter is a `LocalProtocolError` before the first byte is sent, never after some
    recipients were delivered. A transaction sends these, or the same commands without the
    DSN parameters when the server has no DSN (shorter, so valid too).
    """

    mail: Mail
    rcpts: tuple[Rcpt, ...]
    unsized: Mail
    """`mail` without SIZE, for a server without it (rule 6.1 (1)): made once per envelope."""

    @classmethod
    def build(cls, envelope: Envelope, info: MessageInfo, config: ClientConfig) -> EnvelopeCommands:
        """Check every address of `envelope` as the transactions will send it."""
        quote = config.quote_rfc821_envelope
        generic = GenericMaps.from_config(config)
        rewrite = generic.rewrite if generic is not None else str
        mail = Mail(
            rewrite(envelope.sender),
            size=info.size,
            body="8BITMIME" if info.has_8bit else None,
            smtputf8=envelope.smtputf8,
            ret=envelope.ret,
            envid=envelope.envid,
            quote=quote,
        )
        rcpts = []
        for n, r in enumerate(envelope.recipients):
            try:
                rcpts.append(Rcpt(rewrite(r.address), notify=r.notify, orcpt=r.orcpt, quote=quote))
            except LocalProtocolError as error:
                raise LocalProtocolError(f"recipients[{n}]: {error}") from None
        return cls(mail, tuple(rcpts), mail._resized(None))

    @classmethod
    def for_session(
        cls, session: Session, envelope: Envelope, info: MessageInfo
    ) -> EnvelopeCommands:
        """`build`, remembering the session's last envelope: a held session often sends the
        same envelope again and again, and then only MAIL's SIZE changes (`Mail._resized`)."""
        # Everything `build` reads but the size; the configuration is the session's own.
        shape = (
            envelope.sender,
            envelope.recipients,
            envelope.smtputf8,
            envelope.ret,
            envelope.envid,
            info.has_8bit,
        )
        memo = session.commands_memo
        if isinstance(memo, tuple) and memo[0] == shape:
            last: EnvelopeCommands = memo[1]
            if last.mail.size == info.size:
                return last
            commands = cls(last.mail._resized(info.size), last.rcpts, last.unsized)
        else:
            commands = cls.build(envelope, info, session.config)
        session.commands_memo = (shape, commands)
        return commands


@dataclass
class _Marks:
    """Rule 7.1: each recipient of this session gets one mark, KEEP included."""

    ledger: Ledger
    session: Session
    batch: tuple[int, ...]
    kept: set[int] = field(default_factory=set)

    def unmarked(self, indices: Iterable[int] | None = None) -> list[int]:
        ledger = self.ledger
        chosen = self.batch if indices is None else indices
        return [i for i in chosen if ledger.is_pending(i) and i not in self.kept]

    def fail(self, trouble: Trouble, indices: Iterable[int] | None = None) -> Decision:
        targets = self.unmarked(indices)
        if trouble.protocol_error or trouble.site:
            self.session.cacheable = False  # rules 2.5, 2.6, 9.2
        decision = self.ledger.fail(trouble, self.session.server, targets)
        if decision == "keep":
            self.kept.update(targets)
        return decision

    def done(self, indices: Iterable[int], reply: Reply) -> None:
        for i in self.unmarked(indices):
            self.ledger.done(i, reply, self.session.server)


@dataclass
class _Transaction:
    """One transaction's commands and what the server said so far (smtp_proto.c's receiver)."""

    session: Session
    marks: _Marks
    commands: list[Command]
    recipient: dict[int, int]
    """id() of each RCPT sent -> its recipient's index in the envelope."""
    downgrade: bool
    chunking: bool
    one_flight: bool = False
    """The content may join the envelope's flight (`chunking_one_flight_limit`)."""
    mail_refused: bool = False
    accepted: list[int] = field(default_factory=list)
    data_accepted: bool = False
    chunk_refusal: Reply | None = None
    """The first refused BDAT chunk (RFC 3030 2: no more chunks after it)."""
    stage: Stage = Stage.MAIL
    """The command last written or awaited, for the diagnostic of a failure (rule 2.7)."""

    def route(self, event: Event) -> None:
        """Apply one event the connection matched to its command (rules 7.5, 12.4)."""
        server = self.session.server
        if isinstance(event, RecipientReply):
            self._end_of_data([self.recipient[id(event.recipient)]], event.reply, Stage.DOT)
            return
        if not isinstance(event, CommandReply):
            # A ServerClosing or ConnectionClosed only comes with nothing outstanding.
            raise LocalProtocolError(f"no reply to route in {event!r}")
        command, reply = event.command, event.reply
        kind = type(command)
        if kind is Rcpt:
            if self.mail_refused:
                return  # rule 7.8: already failed by the MAIL reply
            index = self.recipient[id(command)]
            if reply.is_positive:
                self.accepted.append(index)
            else:
                self.marks.fail(remote_trouble(server, reply, Stage.RCPT), [index])
        elif kind is Mail:
            if not reply.is_positive:
                self.mail_refused = True
                self.marks.fail(remote_trouble(server, reply, Stage.MAIL))
        elif kind is Data:
            self.data_accepted = reply.is_intermediate
            if not self.data_accepted and self.marks.unmarked(self.accepted):
                # Only a refusal that fails someone is recorded: after MAIL was refused it
                # must not replace MAIL's status as the last one (rule 14.8).
                self.marks.fail(remote_trouble(server, reply, Stage.DATA), self.accepted)
        elif kind is EndOfData:
            self._end_of_data(self.accepted, reply, Stage.DOT)
        elif kind is Bdat:
            assert isinstance(command, Bdat)
            if command.last:
                if self.chunk_refusal is None:
                    self._end_of_data(self.accepted, reply, Stage.BDAT_LAST)
            elif not reply.is_positive and self.chunk_refusal is None:
                self.chunk_refusal = reply
                self.marks.fail(remote_trouble(server, reply, Stage.BDAT), self.accepted)
        elif kind is Xforward:
            if not reply.is_positive:
                # Rule 13.3: a warning only; the transaction goes on.
                stage = _xforward_stage(command)
                self.session.note(f"Warning: {remote_trouble(server, reply, stage).diagnostic}")
        else:
            raise LocalProtocolError(f"a {kind.__name__} reply inside a transaction")

    def _end_of_data(self, indices: list[int], reply: Reply, stage: Stage) -> None:
        # Rules 7.5 and 12.4: the end-of-data reply decides for the recipients still unmarked.
        # With none accepted it is ignored, as in smtp_proto.c ("all recipients are dead
        # already"): it must not become the last status of rule 14.8 either.
        if not indices:
            return
        if reply.is_positive:
            self.marks.done(indices, reply)
        else:
            self.marks.fail(remote_trouble(self.session.server, reply, stage), indices)


def _xforward_stage(command: Command | EndOfData) -> Stage:
    assert isinstance(command, Xforward)
    first = command.attributes[0][0].upper()
    return Stage.XFORWARD_NAME_ADDR if first in _XFORWARD_GROUPS[0] else Stage.XFORWARD_PROTO_HELO


# Rule 2.7 and rule 10.1: for the command whose reply is awaited, the stage a failure is
# reported in and the ClientConfig timeout of the wait.
_AWAITED: dict[type, tuple[Stage, str]] = {
    Rcpt: (Stage.RCPT, "rcpt_timeout"),
    Mail: (Stage.MAIL, "mail_timeout"),
    Data: (Stage.DATA, "data_init_timeout"),
    EndOfData: (Stage.DOT, "data_done_timeout"),
    Rset: (Stage.BODY, "rset_timeout"),
    Quit: (Stage.BODY, "quit_timeout"),
}


def _stage(command: Command | EndOfData | None) -> Stage:
    """The stage a failure while awaiting `command`'s reply is reported in (rule 2.7)."""
    awaited = _AWAITED.get(type(command))
    if awaited is not None:
        return awaited[0]
    if type(command) is Bdat:
        assert isinstance(command, Bdat)
        return Stage.BDAT_LAST if command.last else Stage.BDAT
    if type(command) is Xforward:
        return _xforward_stage(command)
    return Stage.BODY


def _timeout(config: ClientConfig, command: Command | EndOfData | None) -> float | None:
    # Rule 10.1: the timeout of the command whose reply is awaited.
    awaited = _AWAITED.get(type(command))
    if awaited is not None:
        timeout: float | None = getattr(config, awaited[1])
        return timeout
    if type(command) is Bdat:
        assert isinstance(command, Bdat)
        return config.data_done_timeout if command.last else config.data_xfer_timeout
    if type(command) is Xforward:
        return config.xforward_timeout
    return config.quit_timeout


def _collect(txn: _Transaction, until: int = 0) -> IO:
    """Read and route replies until at most `until` commands (QUIT aside) are outstanding."""
    session = txn.session
    connection = session.connection
    config = session.config
    while connection.outstanding > until:
        awaiting = connection.awaiting
        if type(awaiting) is Quit:
            break
        txn.stage = _stage(awaiting)
        event = session.ready()
        if event is None:
            event = yield from session.read(_timeout(config, awaiting))
        txn.route(event)
        if connection.abandoned is not None:
            # RFC 5321 3.8: a 421 closed the session with commands unanswered; those
            # recipients meet a lost connection while awaiting the next reply (rule 10.4).
            txn.stage = _stage(connection.abandoned)
            raise ConnectionLost("the server closed the connection (421)")


# -- step 1: plan -------------------------------------------------------------------------


def _eightbit(session: Session) -> bool:
    # Rule 3.10: a server that advertises SMTPUTF8 but not 8BITMIME is assumed to have it.
    caps = session.capabilities
    return caps is not None and (caps.eightbitmime or caps.smtputf8)


def _refused(session: Session, envelope: Envelope, info: MessageInfo, marks: _Marks) -> bool:
    """Rules 3.10 and 6.8, before any transaction command; True: nothing is sent."""
    caps = session.capabilities
    server = session.server
    config = session.config
    # Only an SMTPUTF8 envelope (which every non-ASCII address makes one) or 8-bit content
    # can meet the refusals of rule 3.10 and 8-bit content; most messages skip them.
    if envelope.smtputf8 or info.has_8bit:
        addresses = [envelope.sender, *(r.address for r in envelope.recipients)]
        refusal = smtputf8_refusal(
            addresses,
            info,
            requested=envelope.smtputf8,
            server_smtputf8=caps is not None and caps.smtputf8,
            server=server.label,
            enabled=config.smtputf8_enable,
        )
        if refusal is None:
            # 8-bit octets never reach a server without 8BITMIME (docs/security.md); another
            # MX may have it, so like 5.6.7 this is SOFT_NON_FINAL (rule 2.3).
            refusal = eightbit_refusal(
                info, _eightbit(session), config.disable_mime_output_conversion
            )
        if refusal is not None:
            session.cacheable = False  # DONT_CACHE (rule 2.4)
            marks.fail(local_trouble(refusal.dsn, refusal.text, soft_non_final=True))
            return True
    refusal = size_refusal(info, None if caps is None else caps.size, server.label)
    if refusal is not None:
        # Rule 6.8: a message failure, a bounce even with other MX hosts left; the session
        # itself is fine and counts as completed.
        marks.fail(local_trouble(refusal.dsn, refusal.text))
        marks.ledger.completed_session = True
        return True
    return False


def _xforward_commands(session: Session, envelope: Envelope) -> list[Command]:
    caps = session.capabilities
    if not session.config.send_xforward_command or caps is None or not caps.xforward:
        return []
    values = {name.upper(): value for name, value in envelope.xforward}
    out: list[Command] = []
    for names in _XFORWARD_GROUPS:
        attributes = []
        for name in names:
            value = values.get(name, "")
            if name not in caps.xforward or not value:
                continue
            if name in _XFORWARD_UNKNOWN_MEANS_NONE and value.lower() == "unknown":
                continue
            attributes.append((name, value))
        if attributes:
            out.append(Xforward(tuple(attributes)))
    return out


def _plan(
    session: Session,
    envelope: Envelope,
    commands: EnvelopeCommands,
    info: MessageInfo,
    marks: _Marks,
) -> _Transaction:
    """The commands of this transaction, with the parameters this server takes (rule 6)."""
    caps = session.capabilities
    config = session.config
    dsn = caps is not None and caps.dsn
    downgrade = needs_downgrade(info, _eightbit(session), config.disable_mime_output_conversion)
    full = commands.mail
    size = info.size if caps is not None and caps.size is not None and not downgrade else None
    body: Literal["8BITMIME"] | None = "8BITMIME" if info.has_8bit and _eightbit(session) else None
    # rule 6.1 (5); smtputf8_enable=no never asks for it
    smtputf8 = config.smtputf8_enable and envelope.smtputf8 and caps is not None and caps.smtputf8
    ret, envid = (full.ret, full.envid) if dsn else (None, None)
    # smtp_send_dummy_mail_auth: the client authenticated, the sender is not vouched for
    # (Postfix smtp_proto.c; its AUTH feature is off unless the login happened).
    auth = "<>" if config.send_dummy_mail_auth and session.identity is not None else None
    if (body, smtputf8, ret, envid, auth) == (
        full.body, full.smtputf8, full.ret, full.envid, full.auth
    ):  # fmt: skip
        # Built and checked once per delivery (`EnvelopeCommands`), with and without SIZE.
        if size == full.size:
            mail = full
        elif size is None:
            mail = commands.unsized
        else:
            mail = full._resized(size)
    else:
        mail = Mail(
            full.sender,
            size=size,
            body=body,
            smtputf8=smtputf8,
            ret=ret,
            envid=envid,
            auth=auth,
            quote=full.quote,
        )
    planned: list[Command] = [*_xforward_commands(session, envelope), mail]
    recipient: dict[int, int] = {}
    for i in marks.batch:
        rcpt = commands.rcpts[i]
        if not dsn and (rcpt.notify is not None or rcpt.orcpt is not None):
            rcpt = Rcpt(rcpt.recipient, quote=rcpt.quote)
        recipient[id(rcpt)] = i
        planned.append(rcpt)
    chunking = config.chunking and caps is not None and caps.chunking
    if not chunking:
        planned.append(Data())
    limit = config.chunking_one_flight_limit
    one_flight = (
        chunking
        and caps is not None
        and caps.pipelining
        and not session.lmtp
        and limit > 0
        and info.size <= limit
    )
    return _Transaction(session, marks, planned, recipient, downgrade, chunking, one_flight)


# -- step 2: pipeline -----------------------------------------------------------------------


def _must_stop(txn: _Transaction, command: Command) -> bool:
    # Rule 7.6: course correction, only when sender and receiver are in step.
    if txn.session.connection.outstanding:
        return False
    kind = type(command)
    if kind is Rcpt:
        return txn.mail_refused
    return kind is Data and (txn.mail_refused or not txn.accepted)


def _pipeline(txn: _Transaction) -> IO:
    """Send the planned commands and route every reply, or leave the replies for the content
    to join the flight (`_Transaction.one_flight`); False: stop, no content (rule 7.6)."""
    session = txn.session
    connection = session.connection
    caps = session.capabilities
    pipelining = caps is not None and caps.pipelining
    for command in txn.commands:
        if _must_stop(txn, command):
            return False
        if connection.outstanding and (
            not pipelining
            or connection.unacknowledged_bytes + len(command.encode()) > PIPELINE_LIMIT
        ):
            yield from _collect(txn)
            if _must_stop(txn, command):
                return False
        txn.stage = _stage(command)
        session.write(command)
    if (
        txn.one_flight
        and connection.outstanding == len(txn.commands)
        and connection.outstanding <= BDAT_WINDOW
    ):
        # The whole envelope is in this flight, unanswered: the content joins it as BDAT
        # (RFC 3030 4.2 with RFC 2920). When every RCPT is refused the server refuses the
        # chunk too (RFC 3030 2; Postfix smtpd: "554 5.5.1 no valid recipients"), whose reply
        # then concerns no recipient (`_Transaction._end_of_data`).
        return True
    yield from _collect(txn)
    if txn.chunking:
        return not txn.mail_refused and bool(txn.accepted)
    return txn.data_accepted


# -- step 3: content -------------------------------------------------------------------------


def _source(chunks: Iterable[bytes], downgrade: bool, config: ClientConfig) -> Iterator[bytes]:
    # The connection's BodyEncoder does CRLF, dot-stuffing and line length; only the 8bit->7bit
    # conversion (rule 8.5) happens here, before it, within Postfix's MIME safety limits.
    if not downgrade:
        return iter(chunks)
    return downgrade_8bit(
        chunks,
        mime_nesting_limit=config.mime_nesting_limit,
        mime_boundary_length_limit=config.mime_boundary_length_limit,
    )


def _content(txn: _Transaction, chunks: Iterable[bytes]) -> IO:
    """Stream the message (DATA content or BDAT chunks), but for its last write's worth,
    which `_end_of_data` sends with the end; False: a chunk was refused, no more is sent."""
    session = txn.session
    config = session.config
    connection = session.connection
    window = 0
    if txn.chunking:
        caps = session.capabilities
        window = BDAT_WINDOW if caps is not None and caps.pipelining else 0
    budget = session.budget(config.data_xfer_timeout)
    txn.stage = Stage.BDAT if txn.chunking else Stage.BODY
    for chunk in _source(chunks, txn.downgrade, config):
        if txn.chunking and connection.outstanding > window:
            yield from _collect(txn, window)
            if txn.chunk_refusal is not None:
                return False
            txn.stage = Stage.BDAT
        session.write_content(MessageData(chunk))
        if session.buffered >= CONTENT_FLUSH:
            budget.credit((yield from session.flush(budget)), config.min_data_rate)
    # What is left goes out with the end of the content (rule 7.3), in `_end_of_data`.
    return True


def _deliver_content(txn: _Transaction, chunks: Iterable[bytes], keep_open: bool) -> IO:
    """Step 3; returns True when the session stays open for another transaction."""
    session = txn.session
    marks = txn.marks
    if not txn.chunking and (txn.mail_refused or not txn.accepted):
        # Rules 7.7-7.8: DATA was accepted after every recipient failed: an empty message.
        return (yield from _end_of_data(txn, keep_open))
    try:
        sent = yield from _content(txn, chunks)
    except IOFailure as exc:
        return (yield from _body_write_failed(txn, exc))
    except RemoteProtocolError as exc:
        marks.fail(fail_stream(session, exc, txn.stage))
        yield from session.close()
        return False
    except MessageRefused as refused:
        # Rule 8.5: hostile MIME met by the conversion; no partial message is ever delivered.
        trouble = local_trouble(refused.refusal.dsn, refused.refusal.text)
        return (yield from _content_failed(txn, trouble))
    except (LocalProtocolError, OSError) as exc:
        # SM-19: the source changed or failed to read after `scan` passed it; the message may
        # be fine next time, so the recipients are deferred.
        trouble = local_trouble("4.3.0", f"message content could not be sent: {exc}")
        return (yield from _content_failed(txn, trouble))
    if not sent:
        # RFC 3030 2: a refused chunk ends the content; the recipients are already failed.
        session.cacheable = False
        with contextlib.suppress(IOFailure, RemoteProtocolError):
            yield from _collect(txn)
        yield from session.quit()
        return False
    return (yield from _end_of_data(txn, keep_open))


def _content_failed(txn: _Transaction, trouble: Trouble) -> IO:
    """The content cannot go out: close without the end, so the server discards it all."""
    session = txn.session
    session.discard_output()
    session.cacheable = False
    txn.marks.fail(trouble)
    yield from session.close()
    return False


def _body_write_failed(txn: _Transaction, failure: IOFailure) -> IO:
    """Rule 7.9: no end of data, no QUIT; one reply is still read, hoping for an early 5xx.

    Only a refusal decides, for the recipients its command concerns; every other recipient
    meets the write failure. A success is never trusted here: the end of data either was not
    sent (and the connection takes no success then: an early 250 after the 354 is a
    RemoteProtocolError) or it went out in the very write that failed.
    """
    session = txn.session
    session.discard_output()
    session.cacheable = False
    stage = Stage.BDAT if txn.chunking else Stage.BODY
    try:
        event = yield from session.read(session.config.data_done_timeout)
    except (IOFailure, RemoteProtocolError):
        pass
    else:
        if isinstance(event, (CommandReply, RecipientReply)) and not event.reply.is_positive:
            txn.route(event)
    txn.marks.fail(fail_stream(session, failure, stage))
    yield from session.close()
    return False


def _end_of_data(txn: _Transaction, keep_open: bool) -> IO:
    """The end of the content, then QUIT pipelined behind it unless the session is kept.

    Rule 7.3: the content's last octets, the end and QUIT go out in one write, bounded by
    ``data_done_timeout`` as in smtp_proto.c (which flushes them when it reads the reply). A
    failure of a write that carries content is a failure during the content (rule 7.9).

    QUIT may follow the end of data in the same flight (rule 7.3) only because its reply can
    never be taken for the end-of-data reply or an LMTP recipient's: those accept 250 alone
    and QUIT gets 221 (`REPLY_CODES`); a server that answers only 221 leaves the recipients
    without their reply, and so deferred.
    """
    session = txn.session
    config = session.config
    pix = not txn.chunking and session.pix_dotcrlf_due() and bool(txn.accepted)
    if session.buffered and (pix or session.connection.unread):
        # Rule 8.4 wants the content out before the pause. A server that spoke during the
        # content gets the content alone first, as content of any length would, so that its
        # early reply is judged (rule 7.9) before the end goes out.
        try:
            yield from session.flush(session.budget(config.data_xfer_timeout))
        except IOFailure as exc:
            return (yield from _body_write_failed(txn, exc))
    stage = Stage.BDAT_LAST if txn.chunking else Stage.DOT
    with_content = session.buffered > 0
    try:
        if pix:
            yield from session.sleep(config.pix_workaround_delay_time)
        session.write_content(EndOfData())
        keep = keep_open and session.reusable()  # rule 9.3: decided now, never revisited
        caps = session.capabilities
        quit_queued = not keep and caps is not None and caps.pipelining
        if quit_queued:
            session.write(Quit())
        try:
            yield from session.flush(session.budget(config.data_done_timeout))
        except IOFailure as exc:
            if not with_content:
                raise
            return (yield from _body_write_failed(txn, exc))
        yield from _collect(txn)
    except (IOFailure, RemoteProtocolError) as exc:
        # Sent the end and lost the reply: "message may be sent more than once" (rule 10.3).
        txn.marks.fail(fail_stream(session, exc, stage))
        yield from session.close()
        return False
    txn.marks.ledger.completed_session = True  # rule 7.10
    if txn.chunk_refusal is not None:
        # RFC 3030 2: a chunk refused after more went out; that refusal decided.
        session.cacheable = False
        keep = False
    if keep:
        session.uses += 1
        return True
    if quit_queued:
        if not config.skip_quit_response:
            # Rule 9.7: the QUIT reply never matters.
            with contextlib.suppress(IOFailure, RemoteProtocolError):
                yield from session.read(config.quit_timeout)
        yield from session.close()
        return False
    yield from session.quit()
    return False


def _end(session: Session, keep_open: bool, *, abort: bool) -> IO:
    """Rule 7.6: abort with RSET (QUIT pipelined behind it unless kept); or just end."""
    keep = keep_open and session.reusable()
    if not abort:
        if keep:
            return True
        yield from session.quit()
        return False
    config = session.config
    caps = session.capabilities
    # After a 421 (RFC 5321 3.8) Session.write refuses RSET as a lost connection: closed below.
    try:
        session.write(Rset())
        quit_queued = not keep and caps is not None and caps.pipelining
        if quit_queued:
            session.write(Quit())
        event = yield from session.read(config.rset_timeout)
        if quit_queued and not config.skip_quit_response:
            yield from session.read(config.quit_timeout)
    except (IOFailure, RemoteProtocolError):
        # Rule 7.9: an error in the RSET or QUIT state has no effect on recipients.
        yield from session.close()
        return False
    positive = isinstance(event, CommandReply) and event.reply.is_positive
    if keep and positive:
        session.uses += 1
        return True
    if quit_queued:
        yield from session.close()
    else:
        yield from session.quit()
    return False


def run_transaction(
    session: Session,
    envelope: Envelope,
    commands: EnvelopeCommands,
    chunks: Iterable[bytes],
    info: MessageInfo,
    ledger: Ledger,
    batch: tuple[int, ...],
    *,
    keep_open: bool,
) -> IO:
    """Deliver to the `batch` recipients on `session`; returns True when the session stays open.

    Every recipient of `batch` ends up marked in `ledger`, or KEEP for the next server.
    """
    marks = _Marks(ledger, session, batch)
    if _refused(session, envelope, info, marks):
        return (yield from _end(session, keep_open, abort=False))
    txn = _plan(session, envelope, commands, info, marks)
    try:
        go_on = yield from _pipeline(txn)
    except (IOFailure, RemoteProtocolError) as exc:
        marks.fail(fail_stream(session, exc, txn.stage))
        yield from session.close()
        return False
    if not go_on:
        return (yield from _end(session, keep_open, abort=True))
    return (yield from _deliver_content(txn, chunks, keep_open))
