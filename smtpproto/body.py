"""Message content on the wire: sources, the streaming body encoder, sizes (RFC 5321 4.5.2).

`BodyEncoder` turns message content into the octets that follow ``DATA``'s 354 (or go in
``BDAT`` chunks), one input chunk at a time, with state carried across chunk boundaries so the
output never depends on how the input was split (SM-18). Its rules, in order:

1. NUL octets are refused (`LocalProtocolError` naming ``message``, SM-17: the 2024 NUL
   smuggling variant; RFC 2045 2.7/2.8 allow no NUL outside BINARYMIME) or, with
   ``nul="strip"``, removed before anything else looks at the line.
2. Every CRLF, bare LF and bare CR ends a line and becomes CRLF (SM-01..SM-16, RFC 5321
   2.3.8): no bare CR or LF ever reaches the wire, which is what keeps an embedding
   MTA from relaying SMTP smuggling payloads (CVE-2023-51764 class, SM-01..SM-09). So
   ``CR CR LF`` is two line ends (SM-16), and a trailing CR is held back until the next chunk
   shows whether an LF follows (so BDAT sizes stay exact). With
   ``bare_line_ends="reject"`` (the strict mode of the SM cases) a bare CR or LF is a
   `LocalProtocolError` instead (SM-19).
3. In ``data`` mode a line starting with ``.`` gets one more ``.``, the first line included
   (RFC 5321 4.5.2; SM-10, SM-11).
4. `line_length_limit` (Postfix ``smtp_line_length_limit``, default 998, 0 = off): a wire
   line longer than the limit is cut after exactly `limit` octets and continues on a new line
   that starts with a single space (Postfix, rule 8.3), so continuation lines hold at most
   ``limit - 1`` octets of the original and are never dot-stuffed. **Deviation from Postfix
   (rule 8.2, quirk Q6):** the stuffing dot counts towards the limit, so with the default no
   wire line ever exceeds 998 octets + CRLF = 1000 (RFC 5321 4.5.3.1.6), where Postfix would
   send 999 + CRLF for a 998-octet line starting with ``.``. A line of exactly `limit` wire
   octets is not folded.
5. `finish()` ends an unterminated last line with CRLF (SM-13, SM-14) and, in ``data`` mode,
   sends ``.`` CRLF, never an extra blank line; an empty message is just ``.`` CRLF (SM-12).
   ``bdat`` mode does the same normalization and folding but no stuffing and no terminator:
   the connection frames the octets with ``BDAT n [LAST]`` (RFC 3030 2).

A `feed()` returns at most ``2 * len(chunk) + 3 * (len(chunk) // (limit - 1) + 1)`` octets
(a bare CR or LF doubles; a fold adds CRLF SP), so output chunks are bounded by input chunks,
which `iter_chunks` bounds by `chunk_size`.
"""

from __future__ import annotations

import copy
import re
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Literal,
    Protocol,
    TypeAlias,
    TypedDict,
    TypeGuard,
    Unpack,
    runtime_checkable,
)

from ._errors import LocalProtocolError
from .mime import content_type, transfer_encoding

if TYPE_CHECKING:
    import email.message

__all__ = [
    "MIME_NESTING_LIMIT",
    "BodyEncoder",
    "EncoderOptions",
    "LineEndPolicy",
    "MessageInfo",
    "MessageSource",
    "Mode",
    "NulPolicy",
    "ScanOptions",
    "SupportsRead",
    "check_nesting",
    "check_rereadable",
    "encoded_size",
    "iter_chunks",
    "iter_wire",
    "scan",
]

Mode = Literal["data", "bdat"]
NulPolicy = Literal["reject", "strip"]
LineEndPolicy = Literal["normalize", "reject"]


class ScanOptions(TypedDict, total=False):
    """Keyword options of `scan`: those of `BodyEncoder` but `mode`."""

    line_length_limit: int
    nul: NulPolicy
    bare_line_ends: LineEndPolicy


class EncoderOptions(ScanOptions, total=False):
    """Keyword options of `BodyEncoder`, `iter_wire` and `encoded_size`."""

    mode: Mode


DEFAULT_CHUNK_SIZE = 65536
"""Octets per chunk read from a message source."""

MIME_NESTING_LIMIT = 100
"""Postfix's ``mime_nesting_limit``: `scan`'s default bound on a Message's nesting (CV-11)."""

_MODES = ("data", "bdat")
_NUL_POLICIES = ("reject", "strip")
_LINE_END_POLICIES = ("normalize", "reject")
_TERMINATOR = b".\r\n"
# A line that starts with a dot; the regex finds the usual absence twice as fast as a count.
_DOT_LINE = re.compile(rb"\n\.")


@runtime_checkable
class SupportsRead(Protocol):
    """A binary file object, or anything else with ``read(n) -> bytes``."""

    def read(self, size: int, /) -> bytes:
        """At most `size` octets; ``b""`` at the end."""
        ...


MessageSource: TypeAlias = (
    "bytes | bytearray | memoryview | SupportsRead | Iterable[bytes] | email.message.Message"
)
"""Anything `iter_chunks` can read a message from. An ``email.message.Message`` goes out
without its ``Bcc`` and ``Resent-Bcc`` headers, as ``smtplib.send_message`` sends it; bytes,
files and chunks go out as given."""


def _check_line_length_limit(line_length_limit: object) -> int:
    if type(line_length_limit) is not int or line_length_limit < 0 or line_length_limit == 1:
        # A fold continues with SP plus at least one octet, so 1 could never make progress.
        raise LocalProtocolError(
            f"line_length_limit: expected 0 (off) or an int >= 2, got {line_length_limit!r}"
        )
    return line_length_limit


class BodyEncoder:
    """Streaming body encoder: CRLF normalization, dot-stuffing, line folding, terminator."""

    __slots__ = (
        "_col",
        "_cr",
        "_dots",
        "_finished",
        "_folds",
        "_limit",
        "_mode",
        "_nul",
        "_reject_bare",
        "_stuff",
    )

    def __init__(
        self,
        *,
        mode: Mode = "data",
        line_length_limit: int = 998,
        nul: NulPolicy = "reject",
        bare_line_ends: LineEndPolicy = "normalize",
    ) -> None:
        if bare_line_ends not in _LINE_END_POLICIES:
            raise LocalProtocolError(
                f"bare_line_ends: expected 'normalize' or 'reject', got {bare_line_ends!r}"
            )
        self._reject_bare = bare_line_ends == "reject"
        if mode not in _MODES:
            raise LocalProtocolError(f"mode: expected 'data' or 'bdat', got {mode!r}")
        if nul not in _NUL_POLICIES:
            raise LocalProtocolError(f"nul: expected 'reject' or 'strip', got {nul!r}")
        self._limit = _check_line_length_limit(line_length_limit)
        self._mode: Mode = mode
        self._nul: NulPolicy = nul
        self._stuff = mode == "data"
        self._col = 0  # wire octets already written on the current line; 0: at a line start
        self._cr = False  # the input so far ends with a CR whose line end is still undecided
        self._dots = 0
        self._folds = 0
        self._finished = False

    @property
    def mode(self) -> Mode:
        """``"data"`` (dot-stuffed, ``.`` terminator) or ``"bdat"`` (raw, framed by BDAT)."""
        return self._mode

    @property
    def line_length_limit(self) -> int:
        """Longest wire line in octets before folding, CRLF excluded; 0: no folding."""
        return self._limit

    @property
    def dots_added(self) -> int:
        """Stuffing dots written so far (RFC 1870 3: not part of the SIZE message size)."""
        return self._dots

    @property
    def folds(self) -> int:
        """Line breaks inserted so far by `line_length_limit` (rule 8.3)."""
        return self._folds

    def feed(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode the next piece of content; returns the wire octets ready now (may be ``b""``)."""
        if self._finished:
            raise LocalProtocolError("feed: the encoder has already finished")
        if not isinstance(chunk, bytes):
            if not isinstance(chunk, bytearray | memoryview):
                raise LocalProtocolError(
                    f"message: expected a bytes chunk, got {type(chunk).__name__}"
                )
            chunk = bytes(chunk)
        if b"\0" in chunk:
            if self._nul == "reject":
                raise LocalProtocolError(
                    "message: contains a NUL octet, which no SMTP transfer without BINARYMIME "
                    "allows (RFC 2045 2.7, SM-17); remove it or use nul='strip'"
                )
            chunk = chunk.replace(b"\0", b"")
        if self._cr:
            chunk = b"\r" + chunk
        if chunk.endswith(b"\r"):
            self._cr = True
            chunk = chunk[:-1]
        else:
            self._cr = False
        if not chunk:
            return b""
        if b"\r" in chunk:
            lines = chunk.split(b"\r\n")
            if chunk.count(b"\r") == len(lines) - 1 == chunk.count(b"\n"):
                # Every CR starts a CRLF and every LF ends one (most mail): already wire line
                # ends, so no round trip through LF-only text.
                return self._crlf_lines(chunk, lines)
            crlf = chunk.count(b"\r\n")
            if self._reject_bare and crlf != chunk.count(b"\r"):
                raise _bare("CR")
            chunk = chunk.replace(b"\r\n", b"\n")
            if self._reject_bare and crlf != chunk.count(b"\n"):
                raise _bare("LF")
            chunk = chunk.replace(b"\r", b"\n")
        elif self._reject_bare and b"\n" in chunk:
            raise _bare("LF")
        return self._lines(chunk)

    def finish(self) -> bytes:
        """The rest: a CRLF if the last line is open, then ``.`` CRLF in ``data`` mode."""
        if self._finished:
            raise LocalProtocolError("finish: the encoder has already finished")
        self._finished = True
        if self._cr and self._reject_bare:
            raise _bare("CR")
        tail = b"\r\n" if self._cr or self._col else b""
        self._cr = False
        self._col = 0
        return tail + _TERMINATOR if self._stuff else tail

    def _lines(self, text: bytes) -> bytes:
        # `text` holds LF-only line ends. The fast path is two C-level replaces when no line
        # can reach the limit, even with a stuffing dot (hence the strict comparisons).
        limit = self._limit
        col = self._col
        if limit:
            lines = text.split(b"\n")
            if col + len(lines[0]) >= limit or max(map(len, lines)) >= limit:
                return self._slow(lines)
            last = lines[-1]
        else:
            cut = text.rfind(b"\n")
            last = text if cut < 0 else text[cut + 1 :]
        out = text.replace(b"\n", b"\r\n")
        if self._stuff:
            dots = out.count(b"\n.") if _DOT_LINE.search(out) else 0
            if dots:
                out = out.replace(b"\n.", b"\n..")
            if col == 0 and out[:1] == b".":
                out = b"." + out
                dots += 1
            self._dots += dots
        if len(last) == len(text):
            self._col = col + len(out)
        else:
            self._col = len(last) + (1 if self._stuff and last[:1] == b"." else 0)
        return out

    def _crlf_lines(self, wire: bytes, lines: list[bytes]) -> bytes:
        # _lines for `wire` with CRLF line ends only, `lines` being its split at CRLF: the same
        # lines _lines would see, the same checks, and `wire` is already its ``out``.
        limit = self._limit
        col = self._col
        if limit and (col + len(lines[0]) >= limit or max(map(len, lines)) >= limit):
            return self._slow(lines)
        out = wire
        if self._stuff:
            dots = out.count(b"\n.") if _DOT_LINE.search(out) else 0
            if dots:
                out = out.replace(b"\n.", b"\n..")
            if col == 0 and out[:1] == b".":
                out = b"." + out
                dots += 1
            self._dots += dots
        last = lines[-1]
        if len(lines) == 1:
            self._col = col + len(out)
        else:
            self._col = len(last) + (1 if self._stuff and last[:1] == b"." else 0)
        return out

    def _slow(self, lines: list[bytes]) -> bytes:
        out: list[bytes] = []
        first = True
        for line in lines:
            if not first:
                out.append(b"\r\n")
                self._col = 0
            first = False
            if line:
                self._segment(line, out)
        return b"".join(out)

    def _segment(self, seg: bytes, out: list[bytes]) -> None:
        # Append `seg` (no line ends) to the current wire line, folding at the limit (rule 8.3).
        if self._col == 0 and self._stuff and seg[:1] == b".":
            seg = b"." + seg
            self._dots += 1
        limit = self._limit
        col = self._col
        if not limit or col + len(seg) <= limit:
            out.append(seg)
            self._col = col + len(seg)
            return
        room = limit - col
        out.append(seg[:room])
        step = limit - 1
        pos = room
        end = len(seg)
        while pos < end:
            piece = seg[pos : pos + step]
            out.append(b"\r\n ")
            out.append(piece)
            pos += step
            self._folds += 1
            self._col = 1 + len(piece)


def _bare(kind: str) -> LocalProtocolError:
    return LocalProtocolError(
        f"message: contains a bare {kind} (RFC 5321 2.3.8: lines end in CRLF only; SM-19); "
        "fix the line ends or use bare_line_ends='normalize'"
    )


def _chunks_of_buffer(data: bytes | bytearray | memoryview, chunk_size: int) -> Iterator[bytes]:
    if isinstance(data, bytes) and len(data) <= chunk_size:
        if data:
            yield data
        return
    view = memoryview(data)
    if not view.c_contiguous:
        raise LocalProtocolError("message: a memoryview must be C-contiguous")
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    with view:
        for start in range(0, len(view), chunk_size):
            # One chunk-sized copy at a time; the caller's buffer is never copied whole.
            yield bytes(view[start : start + chunk_size])


def _chunks_of_file(source: SupportsRead, chunk_size: int) -> Iterator[bytes]:
    # A seekable file is read from where it stands and put back there afterwards, so the
    # same file can be scanned, sent, and sent again to the next MX.
    start = _tell(source)
    try:
        while True:
            data = source.read(chunk_size)
            if not isinstance(data, bytes | bytearray):
                raise LocalProtocolError(
                    f"message: read() returned {type(data).__name__}, expected bytes "
                    "(open the file in binary mode)"
                )
            if not data:
                return
            yield bytes(data)
    finally:
        if start is not None:
            source.seek(start)  # type: ignore[attr-defined]


def _tell(source: object) -> int | None:
    seekable = getattr(source, "seekable", None)
    try:
        if seekable is None or not seekable():
            return None
        position = source.tell()  # type: ignore[attr-defined]
    except (OSError, ValueError):
        return None
    return position if isinstance(position, int) else None


class _Collector:
    """A write-only file for BytesGenerator that keeps the pieces instead of one buffer."""

    def __init__(self) -> None:
        self.pieces: deque[bytes] = deque()

    def write(self, data: bytes) -> int:
        self.pieces.append(data)
        return len(data)


def _is_email(message: object) -> TypeGuard[email.message.Message]:
    # `import email.message` pulls in socket (through email.utils), which `import smtpproto`
    # must not; a caller holding a Message has imported the module already.
    module = sys.modules.get("email.message")
    return module is not None and isinstance(message, module.Message)


def _without_bcc(message: email.message.Message) -> email.message.Message:
    # smtplib.send_message's rule: Bcc and Resent-Bcc name recipients the others must not
    # see, so they never go out. A shallow copy: `del` rebinds the copy's header list only.
    if message.get("Bcc") is None and message.get("Resent-Bcc") is None:
        return message
    stripped = copy.copy(message)
    del stripped["Bcc"]
    del stripped["Resent-Bcc"]
    return stripped


def check_nesting(message: MessageSource, limit: int) -> None:
    """Refuse an ``email.message.Message`` nested deeper than `limit` (CV-11).

    The standard library's generator recurses about four frames per level, so a deep
    object (which its parser builds without complaint) would raise `RecursionError` once
    flattened. The walk here is iterative; each multipart or ``message/rfc822`` is a level,
    as in Postfix's ``mime_nesting_limit``. Other sources are not walked: their MIME is only
    parsed by the 8-bit downgrade, which has the same bound (rule 8.5).
    """
    if not _is_email(message):
        return
    stack: list[tuple[email.message.Message, int]] = [(message, 0)]
    while stack:
        part, depth = stack.pop()
        payload = part.get_payload()
        if isinstance(payload, list):
            if depth + 1 > limit:
                raise LocalProtocolError(
                    f"message: MIME nesting deeper than mime_nesting_limit ({limit})"
                )
            stack.extend((child, depth + 1) for child in payload if _is_email(child))


def _chunks_of_email(message: email.message.Message, chunk_size: int) -> Iterator[bytes]:
    import email.errors
    import email.generator

    message = _without_bcc(message)

    # The stdlib generator has no incremental interface (and buffers every multipart's
    # subparts itself), so the flattened pieces are collected and handed out chunk by chunk,
    # each released once yielded. The message object is in memory anyway.
    collector = _Collector()
    policy = message.policy.clone(linesep="\r\n")  # = email.policy.SMTP for EmailMessage
    try:
        email.generator.BytesGenerator(collector, mangle_from_=False, policy=policy).flatten(
            message
        )
    except (email.errors.MessageError, AttributeError, LookupError, TypeError, ValueError) as exc:
        raise LocalProtocolError(f"message: cannot be flattened: {exc}") from None
    except RecursionError:
        # CV-11: nesting within the limit, but the caller's stack was already deep.
        raise LocalProtocolError("message: too deeply nested to be flattened") from None
    pending = collector.pieces
    buffer = bytearray()
    while pending:
        buffer += pending.popleft()
        if len(buffer) >= chunk_size:
            yield from _chunks_of_buffer(bytes(buffer), chunk_size)
            buffer = bytearray()
    if buffer:
        yield bytes(buffer)


def _chunks_of_iterable(source: Iterable[object], chunk_size: int) -> Iterator[bytes]:
    for item in source:
        if not isinstance(item, bytes | bytearray | memoryview):
            raise LocalProtocolError(
                f"message: expected an iterable of bytes, got an item of type {type(item).__name__}"
            )
        yield from _chunks_of_buffer(item, chunk_size)


def iter_chunks(message: MessageSource, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """The content of `message` as non-empty chunks of at most `chunk_size` octets."""
    if type(chunk_size) is not int or chunk_size < 1:
        raise LocalProtocolError(f"chunk_size: expected a positive int, got {chunk_size!r}")
    if isinstance(message, bytes | bytearray | memoryview):
        return _chunks_of_buffer(message, chunk_size)
    if _is_email(message):
        return _chunks_of_email(message, chunk_size)
    if isinstance(message, str):
        raise LocalProtocolError(
            "message: expected bytes, a binary file, an iterable of bytes or an "
            "email.message.Message, got str (encode it first)"
        )
    if isinstance(message, SupportsRead):
        return _chunks_of_file(message, chunk_size)
    if isinstance(message, Iterable):
        return _chunks_of_iterable(message, chunk_size)
    raise LocalProtocolError(
        "message: expected bytes, a binary file, an iterable of bytes or an "
        f"email.message.Message, got {type(message).__name__}"
    )


def iter_wire(
    message: MessageSource,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **options: Unpack[EncoderOptions],
) -> Iterator[bytes]:
    """The wire octets of `message`, as non-empty chunks, through one `BodyEncoder`."""
    encoder = BodyEncoder(**options)
    for chunk in iter_chunks(message, chunk_size):
        data = encoder.feed(chunk)
        if data:
            yield data
    data = encoder.finish()
    if data:
        yield data


# What frozen dataclasses use to fill their own fields, looked up once (MessageInfo._trusted).
_NEW = object.__new__
_SET = object.__setattr__


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What one streaming pass (`scan`) learned about a message: sizes and content flags."""

    size: int
    """RFC 1870 3 message size: octets with CRLFs, without stuffing dots and the final ``.``.

    It is also the total of the ``BDAT`` chunk sizes for the same content."""
    wire_size: int
    """Exact octets written after DATA's 354, stuffing dots and ``.`` CRLF included."""
    has_8bit: bool
    """Some octet is above 127 (RFC 6152: needs BODY=8BITMIME or a 7bit conversion)."""
    has_nul: bool
    """A NUL octet was found (only possible with ``nul="strip"``; it is not sent)."""
    header_8bit: bool
    """The top-level header block holds octets above 127 (RFC 6532 UTF-8 headers)."""
    mime_version: bool
    """The top-level header has a MIME-Version field (RFC 2045 4)."""
    content_type: str
    """Top-level ``type/subtype``, lower case; ``text/plain`` when absent (RFC 2045 5.2)."""
    transfer_encoding: str | None
    """Declared top-level Content-Transfer-Encoding, lower case; None when absent."""
    folded: bool
    """Some line is longer than `line_length_limit` and is folded (rule 8.3 logs this)."""

    def __post_init__(self) -> None:
        for name in ("size", "wire_size"):
            value = getattr(self, name)
            if type(value) is not int or value < 0:
                raise LocalProtocolError(f"{name}: expected a non-negative int, got {value!r}")
        if self.wire_size < self.size:
            raise LocalProtocolError("wire_size: cannot be less than size")

    @classmethod
    def _trusted(
        cls,
        size: int,
        wire_size: int,
        has_8bit: bool,
        has_nul: bool,
        header_8bit: bool,
        mime_version: bool,
        content_type: str,
        transfer_encoding: str | None,
        folded: bool,
    ) -> MessageInfo:
        """Skips validation; for `scan`, whose counts are non-negative ints with `wire_size`
        at least `size` by construction. One per message, at half the validating
        ``__init__``'s cost."""
        info = _NEW(cls)
        _SET(info, "size", size)
        _SET(info, "wire_size", wire_size)
        _SET(info, "has_8bit", has_8bit)
        _SET(info, "has_nul", has_nul)
        _SET(info, "header_8bit", header_8bit)
        _SET(info, "mime_version", mime_version)
        _SET(info, "content_type", content_type)
        _SET(info, "transfer_encoding", transfer_encoding)
        _SET(info, "folded", folded)
        return info

    @property
    def body_type(self) -> Literal["7BIT", "8BITMIME"]:
        """The RFC 6152 ``BODY=`` value this content calls for."""
        return "8BITMIME" if self.has_8bit else "7BIT"


# RFC 5322 2.2 field name (printable ASCII but ":"), with obs-optional WSP before the colon
# (RFC 5322 4.5.2); a line starting with SP/HT continues the previous field (2.2.3).
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_HEADER_PROBE_LIMIT = 262144  # octets of top-level header looked at; far above any real one


class _HeaderProbe:
    """Finds the top-level header block in encoder output (CRLF lines) and keeps its fields."""

    def __init__(self) -> None:
        self.fields: list[tuple[bytes, bytes]] = []  # (lower-case name, unfolded raw value)
        self.eightbit = False
        self.done = False
        self._buffer = b""
        self._seen = 0

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data
        if not self.done:
            # Split only up to the first empty line, where the header surely ends, so the
            # body of a large chunk is never cut into lines; one loop, no call per line.
            blank = buffer.find(b"\r\n\r\n")
            lines = (buffer if blank < 0 else buffer[: blank + 4]).split(b"\r\n")
            rest = lines.pop()  # after the last CRLF: an incomplete line (b"" past the blank)
            fields = self.fields
            for line in lines:
                if line[:1] in (b" ", b"\t") and fields:
                    name, value = fields[-1]
                    fields[-1] = (name, value + line)
                elif (match := _FIELD.match(line)) is not None:
                    fields.append((match.group(1).lower(), line[match.end() :]))
                else:
                    self.done = True  # RFC 5322 2.1: the empty line (or, leniently, any non-field)
                    break
                if not line.isascii():
                    self.eightbit = True
            self._buffer = b"" if self.done else rest
        else:
            self._buffer = b""
        self._seen += len(data)
        if self._seen > _HEADER_PROBE_LIMIT:
            self.done = True
            self._buffer = b""

    def value(self, name: bytes) -> bytes | None:
        for field, value in self.fields:
            if field == name:
                return value
        return None


def check_rereadable(message: MessageSource) -> None:
    """Refuse (`LocalProtocolError`) a source that can be read only once."""
    # The engine scans a message and then sends it (again for each MX): a one-shot source
    # would be consumed by the scan and the send would silently carry an empty message.
    if isinstance(message, bytes | bytearray | memoryview | str) or _is_email(message):
        return
    if isinstance(message, SupportsRead):
        if _tell(message) is None:
            raise LocalProtocolError(
                "message: a file that cannot seek can be read only once; read it into bytes "
                "or pass a seekable file"
            )
    elif isinstance(message, Iterator):
        raise LocalProtocolError(
            "message: an iterator can be read only once; pass bytes, a seekable file or a "
            "re-iterable collection of chunks"
        )


def scan(
    message: MessageSource,
    *,
    nesting_limit: int = MIME_NESTING_LIMIT,
    **options: Unpack[ScanOptions],
) -> MessageInfo:
    """Read `message` once through a ``data``-mode `BodyEncoder` with `options`; describe it.

    Whatever the encoder would refuse (a NUL under ``nul="reject"``, a bare CR or LF under
    ``bare_line_ends="reject"``), sources that cannot be read again (iterators, unseekable
    files) and an ``email.message.Message`` nested deeper than `nesting_limit`
    (`check_nesting`) raise `LocalProtocolError` here, before anything is sent (SM-17, CV-11).
    """
    check_rereadable(message)
    check_nesting(message, nesting_limit)
    encoder = BodyEncoder(mode="data", **options)
    probe = _HeaderProbe()
    wire = 0
    has_8bit = has_nul = False
    for chunk in iter_chunks(message):
        if not has_8bit and not chunk.isascii():
            has_8bit = True
        if not has_nul and b"\0" in chunk:
            has_nul = True
        data = encoder.feed(chunk)
        if not probe.done:
            probe.feed(data)
        wire += len(data)
    data = encoder.finish()
    if not probe.done:
        probe.feed(data)
    wire += len(data)
    size = wire - encoder.dots_added - len(_TERMINATOR)
    declared_cte = probe.value(b"content-transfer-encoding")
    declared_type = probe.value(b"content-type")
    return MessageInfo._trusted(
        size=size,
        wire_size=wire,
        has_8bit=has_8bit,
        has_nul=has_nul,
        header_8bit=probe.eightbit,
        mime_version=probe.value(b"mime-version") is not None,
        content_type=content_type(declared_type)[0] if declared_type else "text/plain",
        transfer_encoding=None if declared_cte is None else transfer_encoding(declared_cte),
        folded=encoder.folds > 0,
    )


def encoded_size(message: MessageSource, **options: Unpack[EncoderOptions]) -> int:
    """The exact number of octets the encoder writes for `message` (terminator included).

    In ``bdat`` mode this is the total of the BDAT chunk sizes.
    """
    return sum(map(len, iter_wire(message, **options)))
