"""One mail transaction on an open session: Postfix's pipelining engine (rules 6, 7, 8, 12).

Postfix smtp_proto.c ``smtp_xfer()``/``smtp_loop()``: the commands of a transaction go out in
as few flights as the PIPELINING and 4096-byte rules allow, replies are matched in FIFO order,
and each reply is classified once through :mod:`.trouble`.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .._errors import LocalProtocolError, MessageRefused, RemoteProtocolError
from ..body import BodyEncoder, MessageInfo
from ..commands import Bdat, Command, Data, EndOfData, Mail, MessageData, Quit, Rcpt, Rset, Xforward
from ..envelope import Envelope
from ..events import RecipientReply
from ..mime import downgrade_8bit
from ..replies import Reply
from ..requests import ConnectionLost, IOFailure
from .refusals import (
    eightbit_refusal,
    needs_downgrade,
    size_refusal,
    smtputf8_refusal,
)
from .session import IO, Session, fail_stream
from .trouble import Decision, Ledger, Stage, Trouble, local_trouble, remote_trouble

__all__ = ["PIPELINE_LIMIT", "run_transaction"]

PIPELINE_LIMIT = 4096
"""Unread pipelined command bytes never exceed this (rules 7.2, 7.4: Postfix PIPELINING_BUFSIZE)."""

BDAT_WINDOW = 16
"""With PIPELINING, at most this many BDAT replies are left unread while chunks go out.

Bounds what the server must buffer for us (RFC 3030 4.2 allows pipelined BDAT), so neither
side can block on a full socket while the other waits."""

# Rules 13.1-13.2: the two XFORWARD commands and which attributes each carries, in order.
_XFORWARD_GROUPS: tuple[tuple[Stage, tuple[str, ...]], ...] = (
    (Stage.XFORWARD_NAME_ADDR, ("NAME", "ADDR", "PORT")),
    (Stage.XFORWARD_PROTO_HELO, ("PROTO", "HELO", "IDENT", "SOURCE")),
)
# Rule 13.1: these are left out when "unknown"; the others only when empty.
_XFORWARD_UNKNOWN_MEANS_NONE = frozenset({"NAME", "ADDR", "PORT", "PROTO"})


@dataclass
class _Marks:
    """Rules 0, 7.1: each recipient of this session gets one mark, KEEP included."""

    ledger: Ledger
    session: Session
    batch: tuple[int, ...]
    kept: set[int] = field(default_factory=set)

    def unmarked(self, indices: Iterable[int] | None = None) -> list[int]:
        pending = set(self.ledger.pending)
        chosen = self.batch if indices is None else indices
        return [i for i in chosen if i in pending and i not in self.kept]

    def fail(self, trouble: Trouble, indices: Iterable[int] | None = None) -> Decision:
        targets = self.unmarked(indices)
        if trouble.protocol_error or trouble.site:
            self.session.cacheable = False  # rules 2.5, 2.6, 9.2
        decision = self.ledger.fail(trouble, self.session.server, targets)
        if decision == "keep":
            self.kept.update(targets)
        return decision


def _timeout(session: Session, stage: Stage) -> float | None:
    # Rule 10.1: the timeout of the command whose reply is awaited. Identity tests, commonest
    # first: a dict built per call, and Stage's Python-level hash, cost more than the lookup.
    config = session.config
    if stage is Stage.RCPT:
        return config.rcpt_timeout
    if stage is Stage.MAIL:
        return config.mail_timeout
    if stage is Stage.DATA:
        return config.data_init_timeout
    if stage is Stage.DOT:
        return config.data_done_timeout
    if stage is Stage.BODY:
        return config.data_xfer_timeout
    if stage is Stage.XFORWARD_NAME_ADDR or stage is Stage.XFORWARD_PROTO_HELO:
        return config.xforward_timeout
    raise KeyError(stage)


def _xforward_commands(session: Session, envelope: Envelope) -> list[tuple[Stage, Command]]:
    caps = session.capabilities
    if not session.config.send_xforward_command or caps is None or not caps.xforward:
        return []
    values = {name.upper(): value for name, value in envelope.xforward}
    out: list[tuple[Stage, Command]] = []
    for stage, names in _XFORWARD_GROUPS:
        attributes = []
        for name in names:
            value = values.get(name, "")
            if name not in caps.xforward or not value:
                continue
            if name in _XFORWARD_UNKNOWN_MEANS_NONE and value.lower() == "unknown":
                continue
            attributes.append((name, value))
        if attributes:
            out.append((stage, Xforward(tuple(attributes))))
    return out


def _eightbit(session: Session) -> bool:
    # Rule 3.10: a server that advertises SMTPUTF8 but not 8BITMIME is assumed to have it.
    caps = session.capabilities
    return caps is not None and (caps.eightbitmime or caps.smtputf8)


def _precheck(session: Session, envelope: Envelope, info: MessageInfo, marks: _Marks) -> bool:
    """Rules 3.10 and 6.8, before any transaction command; False: nothing more to send."""
    caps = session.capabilities
    server = session.server
    config = session.config
    addresses = [envelope.sender, *(r.address for r in envelope.recipients)]
    refusal = smtputf8_refusal(
        addresses,
        info,
        requested=envelope.smtputf8,
        server_smtputf8=caps is not None and caps.smtputf8,
        server=server.label,
    )
    if refusal is None:
        # Quirk Q7: 8-bit octets never reach a server without 8BITMIME; another MX may have
        # it, so like 5.6.7 this is SOFT_NON_FINAL (rule 2.3).
        refusal = eightbit_refusal(info, _eightbit(session), config.disable_mime_output_conversion)
    if refusal is not None:
        session.cacheable = False  # DONT_CACHE (rule 2.4)
        marks.fail(local_trouble(refusal.dsn, refusal.text, soft_non_final=True))
        return False
    refusal = size_refusal(info, None if caps is None else caps.size, server.label)
    if refusal is not None:
        # Rule 6.8: a message failure, a bounce even with other MX hosts left; the session
        # itself is fine and counts as completed.
        marks.fail(local_trouble(refusal.dsn, refusal.text))
        marks.ledger.completed_session = True
        return False
    return True


@dataclass
class _Receiver:
    """Rule 7.5: the receiver state machine, fed replies in FIFO order."""

    session: Session
    marks: _Marks
    mail_rejected: bool = False
    accepted: list[int] = field(default_factory=list)
    data_accepted: bool = False

    def handle(self, stage: Stage, index: int, reply: Reply) -> None:
        server = self.session.server
        if stage in (Stage.XFORWARD_NAME_ADDR, Stage.XFORWARD_PROTO_HELO):
            if not reply.is_positive:
                # Rule 13.3: a warning only; the transaction goes on.
                self.session.transcript.append(
                    f"Warning: {remote_trouble(server, reply, stage).diagnostic}"
                )
        elif stage is Stage.MAIL:
            if not reply.is_positive:
                self.mail_rejected = True
                self.marks.fail(remote_trouble(server, reply, stage))
        elif stage is Stage.RCPT:
            if self.mail_rejected:
                return  # rule 7.8: already failed by the MAIL reply
            if reply.is_positive:
                self.accepted.append(index)
            else:
                self.marks.fail(remote_trouble(server, reply, stage), [index])
        elif stage is Stage.DATA:
            self.data_accepted = reply.is_intermediate
            if not self.data_accepted and self.marks.unmarked(self.accepted):
                self.marks.fail(remote_trouble(server, reply, stage), self.accepted)


def _message_chunks(message_chunks: Iterable[bytes], downgrade: bool) -> Iterable[bytes]:
    # The connection's BodyEncoder does CRLF, dot-stuffing and line length; only the 8bit->7bit
    # conversion (rule 8.5) happens here, before it.
    if downgrade:
        return downgrade_8bit(message_chunks)
    return message_chunks


def run_transaction(
    session: Session,
    envelope: Envelope,
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
    if not _precheck(session, envelope, info, marks):
        return (yield from _end(session, keep_open, abort=False))
    caps = session.capabilities
    config = session.config
    quote = config.quote_rfc821_envelope
    dsn = caps is not None and caps.dsn
    eightbit = _eightbit(session)
    downgrade = needs_downgrade(info, eightbit, config.disable_mime_output_conversion)
    mail = Mail(
        envelope.sender,
        size=info.size if caps is not None and caps.size is not None and not downgrade else None,
        body="8BITMIME" if info.has_8bit and eightbit else None,
        smtputf8=envelope.smtputf8 and caps is not None and caps.smtputf8,  # rule 6.1 (5)
        ret=envelope.ret if dsn else None,
        envid=envelope.envid if dsn else None,
        quote=quote,
    )
    plan: list[tuple[Stage, Command, int]] = [
        (stage, command, -1) for stage, command in _xforward_commands(session, envelope)
    ]
    plan.append((Stage.MAIL, mail, -1))
    for i in batch:
        r = envelope.recipients[i]
        rcpt = Rcpt(
            r.address,
            notify=r.notify if dsn else None,
            orcpt=r.orcpt if dsn else None,
            quote=quote,
        )
        plan.append((Stage.RCPT, rcpt, i))
    chunking = config.chunking and caps is not None and caps.chunking
    if not chunking:
        plan.append((Stage.DATA, Data(), -1))

    pipelining = caps is not None and caps.pipelining
    receiver = _Receiver(session, marks)
    outstanding: deque[tuple[Stage, int]] = deque()
    stage = Stage.MAIL

    def receive_all() -> IO:
        nonlocal stage
        while outstanding:
            stage, index = outstanding[0]
            reply: Reply = yield from session.read_reply(_timeout(session, stage))
            outstanding.popleft()
            receiver.handle(stage, index, reply)

    def must_abort(next_stage: Stage) -> bool:
        # Rule 7.6: course correction, checked only when sender and receiver are in step.
        if outstanding:
            return False
        if next_stage is Stage.RCPT and receiver.mail_rejected:
            return True
        return next_stage is Stage.DATA and not receiver.accepted

    try:
        for next_stage, command, index in plan:
            if must_abort(next_stage):
                return (yield from _end(session, keep_open, abort=True))
            size = len(command.encode())
            unread = session.connection.unacknowledged_bytes
            if outstanding and (not pipelining or unread + size > PIPELINE_LIMIT):
                yield from receive_all()
                if must_abort(next_stage):
                    return (yield from _end(session, keep_open, abort=True))
            stage = next_stage
            session.write(command)
            outstanding.append((next_stage, index))
        yield from receive_all()
    except (IOFailure, RemoteProtocolError) as exc:
        marks.fail(fail_stream(session, exc, stage))
        yield from session.close()
        return False

    if chunking:
        if receiver.mail_rejected or not receiver.accepted:
            # Rule 7.7: no content when every recipient failed; BDAT has no empty-message form.
            return (yield from _end(session, keep_open, abort=True))
        return (yield from _send_bdat(session, marks, receiver, chunks, downgrade, keep_open))
    if not receiver.data_accepted:
        return (yield from _end(session, keep_open, abort=True))
    if not receiver.accepted or receiver.mail_rejected:
        # Rules 7.7-7.8: DATA accepted after every recipient failed: an empty message, just ".".
        return (yield from _dot(session, marks, receiver, keep_open, deliver=False))

    try:
        for chunk in _message_chunks(chunks, downgrade):
            session.write_content(MessageData(chunk))
            if session.buffered >= 65536:
                yield from session.flush(config.data_xfer_timeout)
        yield from session.flush(config.data_xfer_timeout)
    except IOFailure as exc:
        return (yield from _body_write_failed(session, marks, receiver, exc))
    except MessageRefused as refused:
        # Rule 8.5: hostile MIME met by the conversion; no partial message is ever delivered.
        trouble = local_trouble(refused.refusal.dsn, refused.refusal.text)
        return (yield from _content_failed(session, marks, receiver, trouble))
    except (LocalProtocolError, OSError) as exc:
        # SM-19: the source changed or failed to read after `scan` passed it; the message may
        # be fine next time, so the recipients are deferred.
        trouble = local_trouble("4.3.0", f"message content could not be sent: {exc}")
        return (yield from _content_failed(session, marks, receiver, trouble))
    return (yield from _dot(session, marks, receiver, keep_open, deliver=True))


def _send_bdat(
    session: Session,
    marks: _Marks,
    receiver: _Receiver,
    chunks: Iterable[bytes],
    downgrade: bool,
    keep_open: bool,
) -> IO:
    """RFC 3030: the content as ``BDAT n`` chunks; the ``BDAT LAST`` reply ends the data.

    MAIL and RCPT were answered before the first chunk, so no content goes to a transaction
    without recipients. A refused chunk ends the chunks (RFC 3030 2: no BDAT may follow).
    """
    config = session.config
    caps = session.capabilities
    window = BDAT_WINDOW if caps is not None and caps.pipelining else 0
    encoder = BodyEncoder(mode="bdat", line_length_limit=config.line_length_limit)
    unread = 0
    refusal: list[Reply] = []

    def read_chunk_replies(limit: int) -> IO:
        nonlocal unread
        while unread > limit:
            reply: Reply = yield from session.read_reply(config.data_xfer_timeout)
            unread -= 1
            if not reply.is_positive and not refusal:
                refusal.append(reply)

    held = b""  # the latest chunk, held back so that the final one can go as BDAT LAST
    try:
        for chunk in _message_chunks(chunks, downgrade):
            data = encoder.feed(chunk)
            if not data:
                continue
            if held:
                session.write(Bdat(len(held)))
                session.write_content(MessageData(held))
                unread += 1
                yield from session.flush(config.data_xfer_timeout)
                yield from read_chunk_replies(window)
                if refusal:
                    break
            held = data
        last = b"" if refusal else held + encoder.finish()
    except (IOFailure, RemoteProtocolError) as exc:
        # Unlike rule 7.9 no reply is read: it would be a chunk's 250, not the end of data.
        marks.fail(fail_stream(session, exc, Stage.BDAT), receiver.accepted)
        yield from session.close()
        return False
    except MessageRefused as refused:
        trouble = local_trouble(refused.refusal.dsn, refused.refusal.text)
        return (yield from _content_failed(session, marks, receiver, trouble))
    except (LocalProtocolError, OSError) as exc:
        trouble = local_trouble("4.3.0", f"message content could not be sent: {exc}")
        return (yield from _content_failed(session, marks, receiver, trouble))
    if refusal:
        with contextlib.suppress(IOFailure, RemoteProtocolError):
            yield from read_chunk_replies(0)  # owed, but the refusal already decided
        marks.fail(remote_trouble(session.server, refusal[0], Stage.BDAT), receiver.accepted)
        session.cacheable = False
        return (yield from _end(session, False, abort=False))

    def drain() -> IO:
        yield from read_chunk_replies(0)
        return refusal[0] if refusal else None

    return (yield from _dot(session, marks, receiver, keep_open, deliver=True, bdat=(last, drain)))


def _content_failed(session: Session, marks: _Marks, receiver: _Receiver, trouble: Trouble) -> IO:
    """The content cannot go out: close without ".", so the server discards the partial message."""
    session.discard_output()
    session.cacheable = False
    marks.fail(trouble, receiver.accepted)
    yield from session.close()
    return False


def _body_write_failed(
    session: Session, marks: _Marks, receiver: _Receiver, failure: IOFailure
) -> IO:
    """Rule 7.9: no ".", no QUIT; one reply is still read, hoping for an early 5xx."""
    session.discard_output()
    session.cacheable = False
    try:
        reply: Reply = yield from session.read_reply(session.config.data_done_timeout)
    except (IOFailure, RemoteProtocolError):
        marks.fail(fail_stream(session, failure, Stage.BODY))
    else:
        _end_of_data_reply(session, marks, receiver.accepted, reply)
    yield from session.close()
    return False


def _end_of_data_reply(
    session: Session,
    marks: _Marks,
    indices: list[int],
    reply: Reply,
    stage: Stage = Stage.DOT,
) -> None:
    # Rule 7.5 (SMTP end of data) and 12.4 (one LMTP reply): 2xx delivers the unmarked ones.
    targets = marks.unmarked(indices)
    if reply.is_positive:
        for i in targets:
            marks.ledger.done(i, reply, session.server)
    else:
        marks.fail(remote_trouble(session.server, reply, stage), targets)


def _dot(
    session: Session,
    marks: _Marks,
    receiver: _Receiver,
    keep_open: bool,
    *,
    deliver: bool,
    bdat: tuple[bytes, Callable[[], IO]] | None = None,
) -> IO:
    """End of data, then QUIT pipelined behind it unless the session is kept (rules 7.3, 9.3).

    `bdat` is the last chunk and a reader of the chunk replies still owed: the end is then
    ``BDAT n LAST`` and its reply (per recipient for LMTP) plays the end-of-data reply.
    """
    config = session.config
    timeout = config.data_done_timeout
    stage = Stage.DOT if bdat is None else Stage.BDAT_LAST
    try:
        if bdat is not None:
            last = bdat[0]
            session.write(Bdat(len(last), last=True))
            if last:
                session.write_content(MessageData(last))
        elif session.pix_dotcrlf_due() and deliver:
            # Rule 8.4: flush everything, wait, and only then send ".".
            yield from session.flush(config.data_xfer_timeout)
            yield from session.sleep(config.pix_workaround_delay_time)
        if bdat is None:
            session.write_content(EndOfData())
            session.transcript.append("Out: .")
        keep = keep_open and session.reusable()  # rule 9.3: decided now, never revisited
        caps = session.capabilities
        quit_queued = not keep and caps is not None and caps.pipelining
        if quit_queued:
            session.write(Quit())
        refused: Reply | None = None
        if bdat is not None:
            refused = yield from bdat[1]()
        if not deliver:
            yield from session.read_reply(timeout)  # rule 7.7: the reply is ignored
        elif refused is not None:
            # A chunk was refused after more went out: that refusal decides, whatever follows.
            yield from session.read(timeout)
            _end_of_data_reply(session, marks, receiver.accepted, refused, Stage.BDAT)
            session.cacheable = False
            keep = False
        elif session.lmtp:
            for i in list(receiver.accepted):
                event = yield from session.read(timeout)
                if not isinstance(event, RecipientReply):
                    raise ConnectionLost("connection closed before every recipient had a reply")
                _end_of_data_reply(session, marks, [i], event.reply, stage)
        else:
            reply: Reply = yield from session.read_reply(timeout)
            _end_of_data_reply(session, marks, receiver.accepted, reply, stage)
    except (IOFailure, RemoteProtocolError) as exc:
        if deliver:
            marks.fail(fail_stream(session, exc, stage), receiver.accepted)
        yield from session.close()
        return False
    marks.ledger.completed_session = True  # rule 7.10
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
        reply: Reply = yield from session.read_reply(config.rset_timeout)
        if quit_queued and not config.skip_quit_response:
            yield from session.read(config.quit_timeout)
    except (IOFailure, RemoteProtocolError):
        # Rule 7.9: an error in the RSET or QUIT state has no effect on recipients.
        yield from session.close()
        return False
    if keep and reply.is_positive:
        session.uses += 1
        return True
    if quit_queued:
        yield from session.close()
    else:
        yield from session.quit()
    return False
