"""The one place where failures become outcomes (Postfix smtp_trouble.c, rule 2).

Every reply or I/O failure the engine meets is turned into a :class:`Trouble` (a DSN status
and a Postfix diagnostic text) by one of the ``*_trouble`` functions, and a :class:`Ledger`
applies it to the recipients it concerns: KEEP (next server), ``deferred`` or ``bounced``,
exactly once per recipient.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from .._errors import LocalProtocolError
from ..report import RecipientResult, Status, printable
from ..requests import ConnectFailed, ConnectionLost, IOFailure, IOTimeout, TLSFailed
from ..tables import KeyLookup

if TYPE_CHECKING:
    from ..replies import Reply
    from .redact import Redactor

__all__ = [
    "Ledger",
    "Server",
    "Stage",
    "Trouble",
    "connect_trouble",
    "decide",
    "filter_status",
    "handshake_trouble",
    "is_protocol_error_code",
    "local_trouble",
    "remote_trouble",
    "slows_down",
    "stream_trouble",
]


class Stage(enum.Enum):
    """The reply being awaited when something went wrong (rules 2.7, 7.1)."""

    GREETING = "receiving the initial server greeting"
    EHLO = "performing the EHLO handshake"
    HELO = "performing the HELO handshake"
    LHLO = "performing the LHLO handshake"
    STARTTLS = "receiving the STARTTLS response"
    XFORWARD_NAME_ADDR = "sending XFORWARD name/address"
    XFORWARD_PROTO_HELO = "sending XFORWARD protocol/helo_name"
    MAIL = "sending MAIL FROM"
    RCPT = "sending RCPT TO"
    DATA = "sending DATA command"
    BODY = "sending message body"
    DOT = "sending end of data -- message may be sent more than once"
    BDAT = "sending BDAT"
    BDAT_LAST = "sending BDAT LAST -- message may be sent more than once"


# Rule 2.7: the "(in reply to ...)" part of a remote rejection.
_IN_REPLY_TO: dict[Stage, str] = {
    Stage.XFORWARD_NAME_ADDR: "XFORWARD name/address command",
    Stage.XFORWARD_PROTO_HELO: "XFORWARD helo/protocol command",
    Stage.MAIL: "MAIL FROM command",
    Stage.RCPT: "RCPT TO command",
    Stage.DATA: "DATA command",
    Stage.BODY: "end of DATA command",
    Stage.DOT: "end of DATA command",
    Stage.BDAT: "BDAT command",
    Stage.BDAT_LAST: "BDAT LAST command",
}


@dataclass(frozen=True)
class Server:
    """The server being talked to; `final` is Postfix's FINAL_SERVER flag (rule 14.7)."""

    host: str
    address: str
    port: int | None
    final: bool = False

    @property
    def label(self) -> str:
        """``host[address]`` as Postfix writes it in diagnostics (rule 2.7)."""
        return f"{self.host}[{self.address}]"

    @property
    def relay(self) -> str:
        """``host[address]:port`` for the ``relay=`` field of a log line."""
        return self.label if self.port is None else f"{self.label}:{self.port}"


@dataclass(frozen=True)
class Trouble:
    """A classified failure: status, Postfix diagnostic text, and the reply if there was one.

    `soft_non_final` is Postfix's SMTP_MISC_FAIL_SOFT_NON_FINAL (rule 2.3); `protocol_error`
    and `site` tell the engine not to cache the session (rules 2.1, 2.5, 2.6, 9.2);
    `final_server` makes the failing server the last one tried (``skip_4xx_greeting=no``);
    `stage` is the transaction command a remote rejection answered; `connected` is false
    when no connection was made, and the result's relay is then "none".
    """

    dsn: str
    diagnostic: str
    reply: Reply | None = None
    site: bool = False
    soft_non_final: bool = False
    protocol_error: bool = False
    final_server: bool = False
    stage: Stage | None = None
    connected: bool = True

    def __post_init__(self) -> None:
        if self.dsn[:2] not in ("4.", "5."):
            raise LocalProtocolError(f"dsn: a failure needs a 4.x.x or 5.x.x status: {self.dsn!r}")

    @property
    def soft(self) -> bool:
        """Status class 4 (rule 0: the class of the DSN, not the reply code, decides)."""
        return self.dsn.startswith("4")


def is_protocol_error_code(code: int) -> bool:
    """Reply codes that flag a protocol error and stop caching (rule 2.6)."""
    return code < 400 or code > 599 or code == 555 or 500 <= code <= 509


def _reply_status(reply: Reply) -> tuple[str, str, bool]:
    # Rule 2.5: a reply whose class is not 4 or 5 where a failure was found is a protocol error,
    # hard 5.5.0, and its diagnostic says so.
    dsn = reply.dsn
    if dsn[0] in "45":
        return dsn, "", is_protocol_error_code(reply.code)
    return "5.5.0", "Protocol error: ", True


def remote_trouble(server: Server, reply: Reply, stage: Stage) -> Trouble:
    """A transaction command rejected: ``host H[A] said: ... (in reply to ... command)``."""
    dsn, prefix, protocol_error = _reply_status(reply)
    what = _IN_REPLY_TO.get(stage, stage.value)
    return Trouble(
        dsn,
        f"{prefix}host {server.label} said: {reply} (in reply to {what})",
        reply,
        protocol_error=protocol_error,
        stage=stage,
    )


def slows_down(trouble: Trouble) -> bool:
    """Whether the server told the client to back off: a 421 (it is closing the channel:
    busy, or too many connections), or a 4.7.x refusal of the session or the message, the
    status servers use for rate limits. A 4.7.x refusal of one RCPT is about that
    recipient (greylisting uses it) and does not count."""
    reply = trouble.reply
    if reply is None or not trouble.soft:
        return False
    if reply.code == 421:
        return True
    status = reply.enhanced
    return (
        reply.code // 100 == 4
        and status is not None
        and (status.klass, status.subject) == (4, 7)
        and trouble.stage is not Stage.RCPT
    )


def handshake_trouble(
    server: Server, reply: Reply, *, soften: bool = False, text: str | None = None
) -> Trouble:
    """A site failure from the greeting, EHLO 421, HELO or LHLO (rules 3.1, 3.5-3.7).

    `soften` turns a 5.x.x status into 4.x.x (``skip_5xx_greeting``, rule 3.1); `text`
    replaces the standard ``refused to talk to me`` wording (STARTTLS refusal, rule 5.3).
    """
    dsn, prefix, protocol_error = _reply_status(reply)
    # Rule 2.6: a 500-509 or 555 code flags a protocol error but is classified like any 5xx,
    # so skip_5xx_greeting softens it too.
    if soften and reply.code // 100 == 5:
        dsn = "4" + dsn[1:]
    body = text if text is not None else f"host {server.label} refused to talk to me: {reply}"
    return Trouble(dsn, prefix + body, reply, site=True, protocol_error=protocol_error)


def stream_trouble(server: Server, failure: IOFailure, stage: Stage) -> Trouble:
    """A timeout or lost connection while awaiting `stage` (rules 2.9, 10.3, 10.4): 4.4.2."""
    if isinstance(failure, IOTimeout):
        text = f"conversation with {server.label} timed out while {stage.value}"
    elif isinstance(failure, (ConnectionLost, TLSFailed)):
        text = f"lost connection with {server.label} while {stage.value}"
    else:
        raise LocalProtocolError(f"failure: not a stream failure: {failure!r}")
    return Trouble("4.4.2", text, site=True)


def connect_trouble(server: Server, failure: ConnectFailed) -> Trouble:
    """A connection that could not be opened: ``4.4.1 connect to H[A]:port: ...`` (14.7)."""
    return Trouble(
        "4.4.1", f"connect to {server.relay}: {failure.reason}", site=True, connected=False
    )


def local_trouble(
    dsn: str, text: str, *, site: bool = False, soft_non_final: bool = False
) -> Trouble:
    """A status the client makes up itself, with no remote reply (rule 0 "local status")."""
    return Trouble(dsn, text, site=site, soft_non_final=soft_non_final)


Decision = Literal["keep", "deferred", "bounced"]

# Postfix dsn_filter.c: the replacement is "X.Y.Z text"; a success stays a success and a
# failure a failure, and a failure may move between 4 (defer) and 5 (bounce).
_FILTERED = re.compile(r"([245])\.([0-9]{1,3})\.([0-9]{1,3})(?:[ \t]+(.*))?", re.DOTALL)


def filter_status(
    table: KeyLookup[str], status: Status, dsn: str, diagnostic: str
) -> tuple[Status, str, str]:
    """``smtp_delivery_status_filter`` (Postfix dsn_filter.c), applied to a final outcome.

    The key is ``"<dsn> <diagnostic>"``; a result ``"X.Y.Z text"`` replaces both (no text:
    the old one stays), ``4``/``5`` choosing ``deferred``/``bounced``. A result that would
    turn a success into a failure or back, or that is not ``X.Y.Z [text]``, changes nothing,
    as Postfix ignores it with a warning.
    """
    try:
        found = table.get(f"{dsn} {diagnostic}")
    except LocalProtocolError:
        return status, dsn, diagnostic  # a "$n" result that is no status: Postfix ignores it
    if found is None:
        return status, dsn, diagnostic
    match = _FILTERED.fullmatch(str(found).strip())
    if match is None or (match.group(1) == "2") != (status == "sent"):
        return status, dsn, diagnostic
    new_dsn = ".".join(match.group(1, 2, 3))
    new_status: Status = "sent" if status == "sent" else _FAILED[match.group(1)]
    return new_status, new_dsn, match.group(4) or diagnostic


_FAILED: dict[str, Status] = {"4": "deferred", "5": "bounced"}


def decide(trouble: Trouble, *, final: bool) -> Decision:
    """Rules 2.2/2.3: KEEP for the next server, or a terminal ``deferred``/``bounced``."""
    soft = trouble.soft or (trouble.soft_non_final and not final)
    if soft:
        return "deferred" if final else "keep"
    return "bounced"


class Ledger:
    """Per-recipient bookkeeping of one delivery request (Postfix smtp_rcpt.c).

    Recipients are addressed by their index in the envelope. Each gets exactly one result;
    marking a recipient twice is a :class:`LocalProtocolError` (an engine bug, never input).
    """

    def __init__(
        self,
        addresses: Iterable[str],
        *,
        clock: Callable[[], float],
        status_filter: KeyLookup[str] | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        """Start the request now (by `clock`), with every recipient unmarked.

        `status_filter` is ``smtp_delivery_status_filter`` (see `filter_status`); `redactor`
        masks the secrets of the delivery in every diagnostic and reply (AU-18).
        """
        self._addresses = tuple(addresses)
        self._clock = clock
        # An empty table (the default) filters nothing: None keeps `_mark` on its fast path.
        self._filter = status_filter if status_filter else None
        self._redactor = redactor
        self._start = clock()
        self._results: dict[int, RecipientResult] = {}
        self.last: tuple[Trouble, Server | None] | None = None
        """The last status recorded, for the end-of-list rules (rule 14.8)."""
        self.completed_session = False
        """A transaction loop ended without a stream error (rule 7.10)."""
        self.throttled = False
        """Deferred by a site failure at the final server: destination down (rule 2.1)."""
        self.slowed: Trouble | None = None
        """The last trouble that deferred recipients because the server said to slow down
        (`slows_down`)."""

    @property
    def pending(self) -> tuple[int, ...]:
        """Indices of the recipients with no result yet, in envelope order."""
        return tuple(i for i in range(len(self._addresses)) if i not in self._results)

    def is_pending(self, index: int) -> bool:
        """True while recipient `index` has no result yet."""
        return index not in self._results

    @property
    def destination_down(self) -> bool:
        """Rule 2.1: site trouble deferred recipients and no session completed a transaction."""
        return self.throttled and not self.completed_session

    def _mark(
        self,
        index: int,
        status: Status,
        dsn: str,
        reply: Reply | None,
        relay: str | None,
        diagnostic: str,
    ) -> None:
        if index in self._results:
            raise LocalProtocolError(f"recipient {index} already has a result")
        table = self._filter
        if table is not None:
            status, dsn, diagnostic = filter_status(table, status, dsn, diagnostic)
        # The one place a result's text is made: escaped (RP-24), no secret in it (AU-18).
        if self._redactor is not None:
            diagnostic = self._redactor.shown(diagnostic)
            reply = None if reply is None else self._redactor.reply(reply)
        else:
            diagnostic = printable(diagnostic)
        delay = max(0.0, self._clock() - self._start)
        address = self._addresses[index]
        if status == "sent" and table is None:
            # From `done`: the DSN of a positive reply, class 2 (`Reply.dsn`); nothing to check.
            result = RecipientResult._sent(address, dsn, reply, relay, diagnostic, delay)
        else:
            result = RecipientResult(address, status, dsn, reply, relay, diagnostic, delay)
        self._results[index] = result

    def done(self, index: int, reply: Reply, server: Server) -> None:
        """Rule 2.8: a positive final reply; the status is the reply's (made-up) DSN code."""
        if not reply.is_positive:
            raise LocalProtocolError(f"reply: not a positive reply: {reply}")
        self._mark(index, "sent", reply.dsn, reply, server.relay, str(reply))

    def fail(
        self,
        trouble: Trouble,
        server: Server | None,
        indices: Iterable[int] | None = None,
        *,
        final: bool | None = None,
    ) -> Decision:
        """Apply `trouble` to `indices` (default: every unmarked recipient); marked ones stay.

        `final` defaults to the server's FINAL_SERVER flag (true when there is no server),
        and is forced on by a trouble that ends the walk (`Trouble.final_server`).
        """
        self.last = (trouble, server)
        if final is None:
            final = server is None or server.final
        final = final or trouble.final_server
        decision = decide(trouble, final=final)
        targets = (
            self.pending if indices is None else [i for i in indices if i not in self._results]
        )
        if decision != "keep":
            # Postfix smtp_bulk_fail: "session ? session->namaddrport : none".
            relay = None if server is None or not trouble.connected else server.relay
            for i in targets:
                self._mark(i, decision, trouble.dsn, trouble.reply, relay, trouble.diagnostic)
            if decision == "deferred" and trouble.site and targets:
                self.throttled = True
            if decision == "deferred" and targets and slows_down(trouble):
                self.slowed = trouble
        return decision

    def finish(self, indices: Iterable[int], *, hard_is_configuration: bool = False) -> None:
        """Rule 14.8: the destination list is exhausted; settle the unmarked `indices`.

        `hard_is_configuration` says the last status came from a fallback relay or the
        relayhost, whose hard errors Postfix reports as 4.3.5 configuration trouble.
        """
        targets = [i for i in indices if i not in self._results]
        if not targets:
            return
        if self.last is None:
            trouble = local_trouble("4.3.0", "server unavailable or unable to receive mail")
            self.fail(trouble, None, targets)
            return
        trouble, server = self.last
        if hard_is_configuration and not trouble.soft:
            trouble = replace(trouble, dsn="4.3.5")
        self.fail(trouble, server, targets, final=True)
        if not self.completed_session and trouble.site:
            self.throttled = True

    def results(self) -> tuple[RecipientResult, ...]:
        """Every recipient's result in envelope order; all must have been marked."""
        missing = self.pending
        if missing:
            raise LocalProtocolError(f"recipients {missing} have no result")
        return tuple(self._results[i] for i in range(len(self._addresses)))
