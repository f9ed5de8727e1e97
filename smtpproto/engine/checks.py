"""Header and body checks while the message streams: header_checks(5) in the client.

Postfix smtp_proto.c ``smtp_header_rewrite()``/``smtp_body_rewrite()`` over mime_state.c,
with header_body_checks.c's actions. The message is read line by line and never held whole:
at most one logical header (up to `HEADER_SIZE_LIMIT` octets) and one line piece. Which table
a line meets (Postfix's header classes):

    | Line | Table |
    |---|---|
    | top-level header, but the MIME ones | ``smtp_header_checks`` |
    | MIME header (Content-*, MIME-Version) anywhere | ``smtp_mime_header_checks`` |
    | any header of a multipart part | ``smtp_mime_header_checks`` |
    | other header of an attached message (message/rfc822) | ``smtp_nested_header_checks`` |
    | body lines, preamble, epilogue, boundaries | ``smtp_body_checks`` |

A logical header is looked up whole, its lines joined by ``\\n``; a body line in pieces of
at most `RECORD_LIMIT` octets (Postfix's queue records); an empty line never matches. The
actions (`smtpproto._parameters.CheckAction`):

    | Action | Effect |
    |---|---|
    | ``DUNNO``, ``OK``, no match | the line goes out unchanged |
    | ``WARN`` / ``INFO`` *text* | unchanged; a ``warning:``/``info:`` transcript line |
    | ``REPLACE`` *text* | the text instead (a header must stay ``name: value``) |
    | ``PREPEND`` *text* | the text as a line of its own, before it |
    | ``IGNORE`` / ``STRIP`` *text* | left out (STRIP says so in the transcript) |
    | ``REJECT`` / ``DISCARD`` *text* | the message is refused (below) |
    | ``BCC``, ``FILTER``, ``HOLD``, ``PASS``, ... | refused with the configuration |

A refusal is ``5.7.1`` (``bounced``), or the status the text starts with (``4.x.x``:
``deferred``), with the text, or ``message content rejected``/``discarded``, as diagnostic.

Deliberate differences from Postfix, whose smtp(8) supports neither REJECT nor DISCARD (it
warns and sends the line): here both refuse the message, and DISCARD is reported like REJECT,
since a client reports ``sent`` only when a server accepted the mail. An action that exists
only for one key (a ``$n`` result, a callable) and is not valid is a warning and the line
goes out, as in Postfix. The checks see the message as given, before any 8BITMIME -> 7bit
conversion (`smtpproto.mime`), where Postfix converts first; so a rule matches the same
lines whatever the server offers.

When the decision is made: the engine reads the message through the checks once before
anything is sent (`smtpproto.body.scan`, to learn its size), so a REJECT or DISCARD refuses
the message before the first connection (``deliver``) or before MAIL (``transact``). The
checks run again while the content is written; should a table answer differently then (a
callable), the refusal ends the connection without the end of data, and no partial message is
delivered (rule 8.5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from .._errors import LocalProtocolError, MessageRefused, Refusal
from .._parameters import CheckAction
from ..body import (
    MessageInfo,
    MessageSource,
    check_nesting,
    check_rereadable,
    iter_chunks,
    scan,
)
from ..config import ClientConfig
from ..mime import (
    Container,
    LineSplitter,
    content_type,
    match_boundary,
    run_lines,
    transfer_encoding,
)
from ..tables import Lookup
from .generic import GenericMaps

__all__ = [
    "HEADER_SIZE_LIMIT",
    "RECORD_LIMIT",
    "Checks",
    "InspectedMessage",
    "Prepared",
    "inspect",
    "prepare",
]

HEADER_SIZE_LIMIT = 102400
"""Octets of one logical header that are looked up (Postfix ``header_size_limit``); a longer
header is decided on its first this-many octets and streamed after that."""

RECORD_LIMIT = 2048
"""Body lines are looked up in pieces of at most this many octets (Postfix's queue records,
``line_length_limit``)."""

_MIME_HEADERS = frozenset(
    {
        "content-description", "content-disposition", "content-id",
        "content-transfer-encoding", "content-type", "mime-version",
    }
)  # fmt: skip
_CONTAINERS = ("message/rfc822", "message/news")
_ENCODED = ("base64", "quoted-printable")
_CRLF = b"\r\n"

Block = Literal["primary", "multipart", "nested"]


@dataclass(frozen=True)
class Checks:
    """The content rules of one configuration: the four check tables and generic maps."""

    header: Lookup[CheckAction]
    mime: Lookup[CheckAction]
    nested: Lookup[CheckAction]
    body: Lookup[CheckAction]
    generic: GenericMaps | None
    nesting_limit: int
    boundary_limit: int
    names: tuple[str, str, str, str]
    """The parameter names of the four tables (``smtp_`` or ``lmtp_``), for messages."""

    @classmethod
    def from_config(cls, config: ClientConfig) -> Checks | None:
        """The rules `config` sets, or None when it sets none."""
        generic = GenericMaps.from_config(config)
        tables = (
            config.header_checks,
            config.mime_header_checks,
            config.nested_header_checks,
            config.body_checks,
        )
        if generic is None and not any(tables):
            return None
        prefix = "lmtp_" if config.lmtp else "smtp_"
        names = (
            f"{prefix}header_checks",
            f"{prefix}mime_header_checks",
            f"{prefix}nested_header_checks",
            f"{prefix}body_checks",
        )
        return cls(
            *tables,
            generic=generic,
            nesting_limit=config.mime_nesting_limit,
            boundary_limit=config.mime_boundary_length_limit,
            names=names,
        )

    @property
    def mime_aware(self) -> bool:
        """Postfix parses MIME only with checks; generic maps alone see the top-level header."""
        return bool(self.header or self.mime or self.nested or self.body)

    @property
    def past_primary(self) -> bool:
        """Whether anything after the top-level header block can be checked."""
        return bool(self.mime or self.nested or self.body)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _field_name(line: bytes) -> str:
    return _text(line.partition(b":")[0].rstrip(b" \t")).lower()


def _is_field(line: bytes) -> bool:
    name, colon, _ = line.partition(b":")
    name = name.rstrip(b" \t")
    return bool(colon) and bool(name) and all(33 <= c <= 126 for c in name)


class _Inspector:
    """The line machine behind `inspect` (one per pass over the message)."""

    def __init__(self, checks: Checks, note: Callable[[str], None] | None) -> None:
        self.checks = checks
        self.note = note
        self.out: list[bytes] = []
        self._stack: list[Container] = []
        self._state: Literal["header", "body"] = "header"
        self._block: Block = "primary"
        self._default_type = "text/plain"
        self._type: bytes | None = None
        self._cte: bytes | None = None
        self._field: list[bytes] = []  # the physical lines of the open logical header
        self._size = 0
        self._long: Literal["pass", "drop"] | None = None
        self._split = LineSplitter()
        self._continued = False  # the open physical line already had a piece handled
        self._kind: Literal["header", "body", "boundary"] = "body"
        self.raw = False  # nothing left to check: the rest goes out as it comes

    # -- input ----------------------------------------------------------------------------

    def passing(self) -> bool:
        """Whether the rest of the input goes out unchecked (a method: it changes under
        the calls that feed lines, where an attribute test would be narrowed for good)."""
        return self.raw

    def feed(self, chunk: bytes) -> None:
        if self.passing():
            self.out.append(chunk)
            return
        split = self._split
        for line in split.lines(chunk):
            self._physical(line, eol=True)
        while len(split.partial) >= RECORD_LIMIT and not self.passing():
            piece, split.partial = split.partial[:RECORD_LIMIT], split.partial[RECORD_LIMIT:]
            self._piece(piece, eol=False)
        if self.passing():
            self.out.append(split.partial + (b"\r" if split.cr else b""))
            split.partial, split.cr = b"", False

    def finish(self) -> None:
        if not self.raw:
            split = self._split
            if split.cr:
                self._physical(split.partial, eol=True)
            elif split.partial or self._continued:
                self._physical(split.partial, eol=False)
            split.partial = b""
            if self._state == "header":
                self._close_field()
                self._end_headers()

    def _physical(self, line: bytes, *, eol: bool) -> None:
        while len(line) > RECORD_LIMIT and not self.raw:
            self._piece(line[:RECORD_LIMIT], eol=False)
            line = line[RECORD_LIMIT:]
        self._piece(line, eol=eol)

    def _piece(self, data: bytes, *, eol: bool) -> None:
        if self.raw:
            self.out.append(data + _CRLF if eol else data)
            return
        first = not self._continued
        self._continued = not eol
        if first:
            self._kind = "boundary" if data[:2] == b"--" and self._boundary(data) else "body"
            if self._kind != "boundary" and self._state == "header":
                self._kind = "header"
                self._header_line(data, eol)
                return
        elif self._kind == "header":
            self._header_more(data, eol)
            return
        self._body(data, eol)

    # -- headers --------------------------------------------------------------------------

    def _header_line(self, data: bytes, eol: bool) -> None:
        if not data and eol:
            self._close_field()
            self._end_headers()
            self._kind = "body"
            self.out.append(_CRLF)
            return
        if data[:1] in (b" ", b"\t") and (self._field or self._long):
            self._header_more(data, eol, new_line=True)
            return
        self._close_field()
        if _is_field(data):
            self._field = [data]
            self._size = len(data)
            self._limit_check()
            return
        # Not a header: Postfix takes it as the first body line (mime_state.c).
        self._end_headers()
        self._kind = "body"
        if self.raw:
            self.out.append(data + _CRLF if eol else data)
        else:
            self._body(data, eol)

    def _header_more(self, data: bytes, eol: bool, *, new_line: bool = False) -> None:
        if self._long is not None:
            if self._long == "pass":
                self.out.append((_CRLF if new_line else b"") + data)
            return
        if new_line:
            self._field.append(data)
        else:
            self._field[-1] += data
        self._size += len(data)
        self._limit_check()

    def _limit_check(self) -> None:
        if self._long is None and self._size > HEADER_SIZE_LIMIT:
            # Decide on the first HEADER_SIZE_LIMIT octets, then stream the rest.
            lines, original = self._decide(b"\n".join(self._field), whole=False)
            if original:
                self.out.append(_CRLF.join(lines))  # the open line goes on
                self._long = "pass"
            else:
                self.out.extend(line + _CRLF for line in lines)
                self._long = "drop"
            self._note_structure(self._field[0], b"\n".join(self._field))
            self._field = []

    def _close_field(self) -> None:
        if self._long is not None:
            if self._long == "pass":
                self.out.append(_CRLF)
            self._long = None
            return
        if not self._field:
            return
        raw = b"\n".join(self._field)
        self._field = []
        self._note_structure(raw, raw)
        lines, _ = self._decide(raw, whole=True)
        self.out.extend(line + _CRLF for line in lines)

    def _note_structure(self, first: bytes, raw: bytes) -> None:
        name = _field_name(first)
        value = raw.partition(b":")[2].replace(b"\n", b"")
        if name == "content-type":
            self._type = value
        elif name == "content-transfer-encoding":
            self._cte = value

    def _table(self, name: str) -> tuple[Lookup[CheckAction], str]:
        checks = self.checks
        if self._block == "multipart" or name in _MIME_HEADERS:
            return checks.mime, checks.names[1]
        if self._block == "nested":
            return checks.nested, checks.names[2]
        return checks.header, checks.names[0]

    def _decide(self, raw: bytes, *, whole: bool) -> tuple[list[bytes], bool]:
        """The lines that go out for one logical header, and whether they end with the
        header itself (not replaced or left out); a header that is not `whole` is looked up
        on its first `HEADER_SIZE_LIMIT` octets."""
        text = _text(raw if whole else raw[:HEADER_SIZE_LIMIT])
        name = _field_name(raw)
        table, parameter = self._table(name)
        action = self._lookup(table, text, parameter) if table else None
        lines = raw.split(b"\n")
        original = True
        out: list[bytes] = []
        if action is not None:
            verb = action.verb
            if verb in ("REJECT", "DISCARD"):
                self._refuse(action, parameter, "header", text)
            if verb in ("IGNORE", "STRIP"):
                if verb == "STRIP":
                    self._note("strip", "header", text, action.text)
                return [], False
            if verb == "REPLACE":
                self._note("replace", "header", text, action.text)
                lines, original = [_bytes(action.text)], False
            elif verb == "PREPEND":
                self._note("prepend", "header", text, action.text)
                out.append(_bytes(action.text))
            elif verb in ("WARN", "INFO"):
                self._note("warning" if verb == "WARN" else "info", "header", text, action.text)
        generic = self.checks.generic
        if generic is not None and whole and self._block == "primary":
            joined = _text(b"\n".join(lines))
            label, colon, value = joined.partition(":")
            rewritten = generic.rewrite_header(label.strip(), value) if colon else None
            if rewritten is not None:
                lines = _bytes(label + colon + rewritten).split(b"\n")
        return out + lines, original

    def _end_headers(self) -> None:
        """The header block ended: what follows (rules of mime_state.c, RFC 2046)."""
        if self._state != "header":
            return
        self._state = "body"
        declared, cte = self._type, self._cte
        self._type = self._cte = None
        checks = self.checks
        if not checks.mime_aware or (self._block == "primary" and not checks.past_primary):
            self.raw = True
            return
        kind, boundary = content_type(declared) if declared else (self._default_type, None)
        encoded = cte is not None and transfer_encoding(cte) in _ENCODED
        if encoded or len(self._stack) >= checks.nesting_limit:
            pass  # a leaf, whatever it claims (Postfix: encoding domain, nesting limit)
        elif kind.startswith("multipart/") and boundary is not None:
            limit = checks.boundary_limit
            self._stack.append(
                Container(boundary[:limit], len(boundary) > limit, kind == "multipart/digest")
            )
        elif kind in _CONTAINERS:
            self._stack.append(Container(None))
            self._start_entity("nested")
            return
        if not checks.body and all(c.boundary is None for c in self._stack):
            self.raw = True  # no part header can follow, and body lines are not checked

    def _start_entity(self, block: Block, *, digest: bool = False) -> None:
        self._state = "header"
        self._block = block
        # RFC 2046 5.1.5: parts of multipart/digest default to message/rfc822.
        self._default_type = "message/rfc822" if digest else "text/plain"

    def _boundary(self, line: bytes) -> bool:
        found = match_boundary(self._stack, line)
        if found is None:
            return False
        index, close = found
        container = self._stack[index]
        if self._state == "header":
            self._close_field()
            self._end_headers()
        del self._stack[index + 1 :]
        if close:
            self._stack.pop()
            self._state = "body"  # the epilogue
        else:
            self._start_entity("multipart", digest=container.digest)
        return True

    # -- body -----------------------------------------------------------------------------

    def _body(self, data: bytes, eol: bool) -> None:
        table = self.checks.body
        if table and data:
            text = _text(data)
            action = self._lookup(table, text, self.checks.names[3])
            if action is not None:
                verb = action.verb
                if verb in ("REJECT", "DISCARD"):
                    self._refuse(action, self.checks.names[3], "body", text)
                if verb in ("IGNORE", "STRIP"):
                    if verb == "STRIP":
                        self._note("strip", "body", text, action.text)
                    return
                if verb == "REPLACE":
                    self._note("replace", "body", text, action.text)
                    data = _bytes(action.text)
                elif verb == "PREPEND":
                    self._note("prepend", "body", text, action.text)
                    self.out.append(_bytes(action.text) + _CRLF)
                elif verb in ("WARN", "INFO"):
                    self._note("warning" if verb == "WARN" else "info", "body", text, action.text)
        self.out.append(data + _CRLF if eol else data)

    # -- actions --------------------------------------------------------------------------

    def _lookup(self, table: Lookup[CheckAction], key: str, parameter: str) -> CheckAction | None:
        try:
            return table.get(key)
        except LocalProtocolError as error:
            # A result known only for this key ($n, a callable): Postfix warns, the line stays.
            self._log(f"warning: {parameter}: {error}")
            return None

    def _refuse(self, action: CheckAction, parameter: str, where: str, line: str) -> None:
        verb = action.verb.lower()
        self._note(verb, where, line, action.text)
        default = "message content rejected" if verb == "reject" else "message content discarded"
        raise MessageRefused(Refusal(action.dsn, f"{parameter}: {action.text or default}"))

    def _note(self, action: str, where: str, line: str, text: str) -> None:
        # Postfix smtp_hbc_logger(): "action: where content: text", content cut at 200.
        content = line[:200].replace("\n", " ")
        self._log(f"{action}: {where} {content}" + (f": {text}" if text else ""))

    def _log(self, entry: str) -> None:
        if self.note is not None:
            self.note(entry.encode("utf-8", "replace").decode("utf-8"))


def inspect(
    chunks: Iterable[bytes], checks: Checks, *, note: Callable[[str], None] | None = None
) -> Iterator[bytes]:
    """`chunks` as the checks rewrite them; raises `MessageRefused` on REJECT or DISCARD.

    Output lines end in CRLF up to where nothing is left to check, then the input goes out
    as it came; a `BodyEncoder` after this does the rest. `note` gets the transcript lines of
    WARN, INFO, REPLACE, PREPEND, STRIP and refusals.
    """
    return run_lines(chunks, _Inspector(checks, note))


class InspectedMessage:
    """A message source that reads `message` through `checks` anew on every iteration."""

    def __init__(
        self,
        message: MessageSource,
        checks: Checks,
        *,
        note: Callable[[str], None] | None = None,
    ) -> None:
        check_rereadable(message)
        self.message = message
        self.checks = checks
        self.note = note

    def __iter__(self) -> Iterator[bytes]:
        return inspect(iter_chunks(self.message), self.checks, note=self.note)


@dataclass(frozen=True)
class Prepared:
    """A message ready for delivery: what the transactions send, and what `scan` found in it,
    or the refusal a check made before anything was sent."""

    source: MessageSource
    info: MessageInfo | None
    refusal: Refusal | None = None


def prepare(
    message: MessageSource, config: ClientConfig, *, note: Callable[[str], None]
) -> Prepared:
    """Scan `message` as `config`'s content rules will send it (module docstring).

    The scan is silent; the pass that sends gives its transcript lines to `note`, and a
    refusal found by the scan gives the lines that led to it.
    """
    # Pure in the (immutable) configuration and asked for every message: remembered with it.
    checks = config._derived(("checks",), lambda: Checks.from_config(config))
    limit = config.mime_nesting_limit
    if checks is None:
        return Prepared(message, scan(message, nesting_limit=limit))
    check_nesting(message, limit)  # the checks read the message through iter_chunks (CV-11)
    notes: list[str] = []
    try:
        info = scan(InspectedMessage(message, checks, note=notes.append), nesting_limit=limit)
    except MessageRefused as refused:
        for line in notes:
            note(line)
        return Prepared(message, None, refused.refusal)
    return Prepared(InspectedMessage(message, checks, note=note), info)
