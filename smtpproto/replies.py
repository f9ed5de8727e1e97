"""Server replies: the `Reply` value type and the incremental, bounded `ReplyParser`.

Decisions (each one tested in ``tests/test_replies.py``):

- Line ends: LF ends a line, and one CR immediately before it is dropped. A bare LF is
  accepted (RP-13 decided lenient: Postfix, rule 1.1, and every peer but lettre accept it). A CR
  anywhere else in a line never ends it: it is a lone CR, which, like NUL and every other C0
  control except HT, makes the line malformed (RP-14). Postfix strips every CR before the LF
  (rule 1.1, ``250 ok\\r\\r\\n``); here the second CR is a lone CR and an error.
- Grammar (RFC 5321 4.2): three ASCII digits checked byte by byte (RP-08), first digit 2-5
  and second 0-5 (RP-09), then ``-`` (more lines follow), SP, or the end of the line: ``250``
  and ``"250 "`` are legal final lines with empty text (RP-02, RP-03). Anything else is a
  `RemoteProtocolError` (RP-07): unlike Postfix (rule 1.5, quirk Q4) a malformed line is never
  absorbed into the next reply, because under pipelining that lets a QUIT reply pass for the
  end-of-data reply (RP-19).
- Every line of a reply carries the same code; a different code is an error (RP-05; unlike
  Postfix's Quirk Q11).
- Limits (`ReplyLimits`): octets per line, lines per reply, octets per reply. While
  `ReplyParser.auth_mode` is set, a 334 line may be as long as ``max_auth_line_length``
  (RFC 4954 4; RP-12). Past any limit the parser raises; it never buffers more than one
  line's limit plus its CRLF of incomplete data (RP-10, RP-11).
- End of input inside a reply, even between its lines, is an error (RP-06, rule 1.10).
- Every error is sticky: the parser raises it again on every later call.
- Text is decoded as UTF-8 with replacement characters, never an exception (RP-15).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import accumulate, compress, count, repeat
from operator import itemgetter, methodcaller, sub

from ._abnf import ENHANCED_STATUS, REPLY_LINE, reply_blocks
from ._errors import LocalProtocolError, RemoteProtocolError

__all__ = ["EnhancedStatus", "Reply", "ReplyLimits", "ReplyParser"]


@dataclass(frozen=True, slots=True)
class EnhancedStatus:
    """An RFC 3463 enhanced status code ``class.subject.detail``, such as ``2.1.5``."""

    klass: int
    subject: int
    detail: int

    def __post_init__(self) -> None:
        # RFC 3463 2: class is 2, 4 or 5; subject and detail have at most three digits.
        if type(self.klass) is not int or self.klass not in (2, 4, 5):
            raise LocalProtocolError(f"klass: expected 2, 4 or 5, got {self.klass!r}")
        for name in ("subject", "detail"):
            value = getattr(self, name)
            if type(value) is not int or not 0 <= value <= 999:
                raise LocalProtocolError(f"{name}: expected an int in 0..999, got {value!r}")

    def __str__(self) -> str:
        """The dotted form, ``"2.1.5"``."""
        return f"{self.klass}.{self.subject}.{self.detail}"

    @classmethod
    def parse(cls, text: str) -> EnhancedStatus | None:
        """The status code that starts `text` (after spaces), or None if there is no valid one."""
        match = ENHANCED_STATUS.match(text)
        if match is None:
            return None
        return cls(int(match[1]), int(match[2]), int(match[3]))


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete server reply: its code and the text of each of its lines."""

    code: int
    lines: tuple[str, ...]

    def __post_init__(self) -> None:
        code = self.code
        # RFC 5321 4.2: first digit 2-5, second digit 0-5 (RP-09).
        if type(code) is not int or not 200 <= code <= 599 or code // 10 % 10 > 5:
            raise LocalProtocolError(f"code: expected 2xx-5xx, second digit 0-5: {code!r}")
        if type(self.lines) is not tuple or not self.lines:
            raise LocalProtocolError(f"lines: expected a non-empty tuple of str: {self.lines!r}")
        for line in self.lines:
            if type(line) is not str or "\r" in line or "\n" in line:
                raise LocalProtocolError(f"lines: expected single-line str, got {line!r}")

    @property
    def text(self) -> str:
        """The text of all lines joined with ``"\\n"`` (rule 1.6)."""
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> EnhancedStatus | None:
        """The RFC 3463 status at the start of the final line, if its class matches the code.

        Postfix rule 1.8: only the final line counts and only when the code is 2xx, 4xx or 5xx
        (RP-20).
        """
        klass = self.code // 100
        if klass == 3:
            return None
        status = EnhancedStatus.parse(self.lines[-1])
        if status is None or status.klass != klass:
            return None
        return status

    @property
    def dsn(self) -> str:
        """The enhanced status, else ``"<class>.0.0"``; ``"5.5.0"`` for a 3xx (rule 1.8)."""
        status = self.enhanced
        if status is not None:
            return str(status)
        klass = self.code // 100
        return "5.5.0" if klass == 3 else f"{klass}.0.0"

    @property
    def is_positive(self) -> bool:
        """A 2xx reply: the command succeeded (RFC 5321 4.2.1)."""
        return 200 <= self.code < 300

    @property
    def is_intermediate(self) -> bool:
        """A 3xx reply: the server waits for more (354 after DATA, 334 during AUTH)."""
        return 300 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        """A 4xx reply: a temporary failure, worth retrying later."""
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        """A 5xx reply: a permanent failure."""
        return 500 <= self.code < 600

    def __str__(self) -> str:
        """The code and the lines on one line, ``"250 2.0.0 Ok"``, for logs and reports."""
        return " ".join((str(self.code), *self.lines)).rstrip(" ")


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """Hard limits on what the parser buffers; every one is a `RemoteProtocolError` when passed."""

    max_line_length: int = 2048
    """Octets per line, code included, CRLF excluded (RFC 5321 4.5.3.1.5 says 512; RP-10)."""
    max_lines: int = 100
    """Lines per reply (RP-11; Postfix has no such limit, Quirk Q10)."""
    max_reply_bytes: int = 65536
    """Octets per reply, codes included, line ends excluded (RP-11)."""
    max_auth_line_length: int = 16384
    """Octets of a 334 line while `ReplyParser.auth_mode` is set (RFC 4954 4: 12288; RP-12)."""

    def __post_init__(self) -> None:
        # "250 " is the shortest final line that can carry text; below that nothing parses.
        for name in ("max_line_length", "max_lines", "max_reply_bytes", "max_auth_line_length"):
            value = getattr(self, name)
            if type(value) is not int or value < 4:
                raise LocalProtocolError(f"{name}: expected an int >= 4, got {value!r}")


# Reply codes by their three wire bytes; only well-formed codes are keys (RFC 5321 4.2).
_CODES = {b"%d" % n: n for n in range(200, 600) if n // 10 % 10 <= 5}
_NEW = object.__new__
# Slot descriptors: the parser's replies are valid by construction (REPLY_LINE, reply_blocks,
# _CODES), so it fills the slots directly instead of going through __init__ and
# __post_init__; that halves the cost of a short reply (bench/bench_replies.py).
_SET_CODE: Callable[[Reply, int], None] = Reply.__dict__["code"].__set__
_SET_LINES: Callable[[Reply, tuple[str, ...]], None] = Reply.__dict__["lines"].__set__
# C0 controls but HT, LF and CR (the caller has ruled out lone CRs): a line holding one needs
# the line-by-line path, which reports it (RP-14).
_CONTROLS = bytes(range(0x09)) + bytes(range(0x0B, 0x0D)) + bytes(range(0x0E, 0x20))
# C-level pieces of the fast path's pipelines.
_TEXT_CODES = {str(code): code for code in _CODES.values()}
_HEAD = itemgetter(slice(0, 3))
_SEPARATOR = itemgetter(slice(3, 4))
_TEXT = itemgetter(slice(4, None))
_TEXT_CRLF = itemgetter(slice(4, -1))
_CHAR_3 = itemgetter(3)
_END = methodcaller("end")
_FINAL = re.compile("[^-]")  # a separator that ends a reply
_CONTINUATION = re.compile(rb"\n[0-9]{3}-")  # a continuation line after the first
_NOT_DASH = "-".__ne__
# Bounds of a parser's cache of one-line replies (see ReplyParser._parse): entries, and the
# characters of a cached line, so that the cache holds a few KiB at most.
_CACHE_ENTRIES = 32
_CACHE_LINE = 160
_CACHE_SCAN = 128  # lines of a parsed run looked at for the cache


def _consume(iterator: Iterable[object]) -> None:
    deque(iterator, maxlen=0)


def _describe(line: bytes) -> str:
    # Why a line failed REPLY_LINE, for the error message.
    if len(line) < 3 or any(not 0x30 <= b <= 0x39 for b in line[:3]):
        return f"malformed reply line (code is not three ASCII digits): {line[:40]!r}"
    if not (0x32 <= line[0] <= 0x35 and line[1] <= 0x35):
        return f"reply code out of range (RFC 5321 4.2): {line[:40]!r}"
    if line[3] not in b" -":
        return f"malformed reply line (no SP or '-' after the code): {line[:40]!r}"
    return f"control character in reply line: {line[:40]!r}"


class ReplyParser:
    """Turns the bytes a server sends into `Reply` objects, incrementally and within limits.

    Feed any chunks with `feed` (``b""`` marks the end of input) and collect replies with
    `next_reply` until it returns None. The module docstring lists the decisions.
    """

    __slots__ = (
        "_blocks_crlf",
        "_blocks_lf",
        "_buf",
        "_cache",
        "_cache_limits",
        "_code",
        "_eof",
        "_error",
        "_lines",
        "_ready",
        "_reply_bytes",
        "_single_lines_ok",
        "_tail",
        "auth_mode",
        "limits",
    )

    def __init__(self, limits: ReplyLimits = ReplyLimits()) -> None:
        self.limits = limits
        """The limits this parser enforces."""
        self.auth_mode = False
        """While True, a 334 line may be ``limits.max_auth_line_length`` long (RP-12)."""
        # One-line replies can skip the per-reply size check only if a line cannot exceed it.
        self._single_lines_ok = limits.max_reply_bytes >= limits.max_line_length
        self._blocks_lf = reply_blocks(limits.max_line_length, limits.max_lines, False)
        self._blocks_crlf = reply_blocks(limits.max_line_length, limits.max_lines, True)
        self._buf = bytearray()
        # Octets at the end of _buf after its last LF: the one incomplete line. Tracking it in
        # feed() is what spares next_reply() a rescan of a slowly trickling line (h11's
        # _receivebuffer keeps a search offset for the same reason).
        self._tail = 0
        self._ready: deque[Reply] = deque()  # parsed, not yet returned
        self._code = b""  # code of the unfinished reply whose lines are in _lines
        self._lines: list[str] = []
        self._reply_bytes = 0
        self._eof = False
        # Raised once the replies parsed before it are returned, then on every call.
        self._error: str | None = None
        # Well-formed one-line CRLF replies seen before, by their line ("250 2.1.5 Ok\r"):
        # a server repeats a few of them for every message, and a Reply is immutable, so a
        # line seen before needs neither the checks nor a new object.
        self._cache: dict[str, Reply] = {}
        self._cache_limits = limits  # what the cached lines were checked against

    @property
    def buffered(self) -> int:
        """Octets received and not yet parsed; once `next_reply` returns None, at most one
        incomplete line: ``limits.max_line_length + 1`` (RP-10; the auth limit in auth mode)."""
        return len(self._buf)

    @property
    def partial(self) -> bool:
        """True while part of a reply is buffered: lines of an unfinished reply, or a line."""
        return bool(self._buf or self._lines)

    @property
    def at_eof(self) -> bool:
        """True once ``feed(b"")`` was called."""
        return self._eof

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` marks the end of input. Never raises for the peer's data."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise LocalProtocolError("data: the end of input was already fed")
        if self._error is not None:
            return
        buf = self._buf
        buf += data
        newline = data.rfind(b"\n")
        self._tail = self._tail + len(data) if newline < 0 else len(data) - newline - 1
        limit = self.limits.max_line_length
        if self.auth_mode:
            limit = max(limit, self.limits.max_auth_line_length)
        if self._tail > limit + 1:
            # RP-10: the over-long line is never stored, whatever the chunking. The complete
            # lines before it are parsed first, as if everything had come in one piece.
            del buf[len(buf) - self._tail :]
            self._tail = 0
            self._parse()
            self._fail(f"reply line longer than {limit} octets")

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None when more data is needed (or input ended cleanly)."""
        ready = self._ready
        if ready:
            return ready.popleft()
        if self._error is None:
            if len(self._buf) > self._tail:
                self._parse()
                if ready:
                    return ready.popleft()
            if self._error is None:
                if not self._eof or not (self._buf or self._lines):
                    return None
                self._fail("connection closed inside a reply (RFC 5321 4.2, rule 1.10)")
        raise RemoteProtocolError(self._error)

    def _fail(self, message: str) -> None:
        if self._error is None:
            self._error = message
        self._buf.clear()
        self._tail = 0
        self._lines = []

    def _parse(self) -> None:
        # Parse every complete line in _buf into _ready (and _lines for an unfinished reply).
        # A peer's error is recorded, to be raised after the replies that came before it.
        buf = self._buf
        complete = len(buf) - self._tail
        data = bytes(buf[:complete])
        del buf[:complete]
        cache = self._cache
        if (
            cache
            and self.limits is self._cache_limits
            and not self._lines
            and not self.auth_mode
            and data[: data.find(b"\n")].decode("latin-1") in cache
        ):
            # Every cached line passed every check of _parse_single_lines under the same
            # limits, so a run made only of cached lines parses to the cached replies. latin-1
            # never fails; a non-ASCII line is simply not a key. The first line is tried alone
            # so that a run of new lines is not split twice.
            lines = data.decode("latin-1").split("\n")
            lines.pop()  # data ends with LF: the empty string after it
            try:
                replies = list(map(cache.__getitem__, lines))
            except KeyError:
                pass
            else:
                self._ready.extend(replies)
                return
        newlines = data.count(b"\n")
        carriage_returns = data.count(b"\r")
        crlf = carriage_returns == newlines and data.count(b"\r\n") == newlines
        fast = not self.auth_mode
        if carriage_returns and not crlf:
            # Mixed line ends: one CR before each LF goes (rule 1.1). If a lone CR is left,
            # keep the original so the line-by-line path reports it on its line (RP-14).
            stripped = data.replace(b"\r\n", b"\n")
            if b"\r" in stripped:
                fast = False
            else:
                data = stripped
        try:
            pos = 0
            if self._lines or not fast:
                pos = self._parse_lines(data, 0, one_reply=fast)
            if fast and len(data.translate(None, _CONTROLS)) == len(data):
                pos = self._parse_replies(data, pos, crlf)
            if pos < len(data):
                self._parse_lines(data, pos, one_reply=False)
        except RemoteProtocolError as exc:
            self._fail(str(exc))

    def _parse_replies(self, data: bytes, pos: int, crlf: bool) -> int:
        # Fast path for `data` without controls or lone CRs, whose lines all end in CRLF
        # (`crlf`) or all in LF: one regex match finds the run of whole well-formed replies
        # from `pos`, then C-level map/zip pipelines cut it into replies, with no Python loop
        # per line. Returns where the run ends; what follows (an unfinished reply, or an error)
        # is for the line-by-line path.
        # The fast path checks reply sizes only where a line cannot exceed max_reply_bytes.
        if pos == len(data) or not self._single_lines_ok:
            return pos
        if (
            crlf
            and self._single_lines_ok
            and data[pos + 3 : pos + 4] != b"-"
            and _CONTINUATION.search(data, pos) is None
            and data.isascii()
            and self._parse_single_lines(data, pos)
        ):
            return len(data)
        match = (self._blocks_crlf if crlf else self._blocks_lf).match(data, pos)
        end = match.end()  # type: ignore[union-attr]
        if end == pos:
            return pos
        run = data[pos:end] if pos or end < len(data) else data
        lines = run.decode("utf-8", "replace").split("\n")
        lines.pop()
        count_lines = len(lines)
        if crlf:
            # Every line is at least "250\r", so character 3 is its separator.
            separators = "".join(map(_CHAR_3, lines))
            texts = list(map(_TEXT_CRLF, lines))
        else:
            separators = "".join(map(_SEPARATOR, lines))
            texts = list(map(_TEXT, lines))
        if "-" not in separators:
            # One line per reply, the common case: no grouping needed.
            heads: Iterable[str] = lines
            groups: Iterable[tuple[str, ...]] = zip(texts)
            count_replies = count_lines
        else:
            if len(separators) == count_lines:
                ends = list(map(_END, _FINAL.finditer(separators)))
            else:  # "250" lines (LF mode) have no separator character
                ends = list(compress(count(1), map(_NOT_DASH, map(_SEPARATOR, lines))))
            starts = [0, *ends[:-1]]
            max_bytes = self.limits.max_reply_bytes
            if len(run) - count_lines * (2 if crlf else 1) > max_bytes:
                # RP-11: some reply may be too big; the line-by-line path tells which.
                raw = (run.replace(b"\r\n", b"\n") if crlf else run).split(b"\n")
                offsets = [0, *accumulate(map(len, raw))]
                sizes = map(sub, map(offsets.__getitem__, ends), map(offsets.__getitem__, starts))
                if max(sizes) > max_bytes:
                    return pos
            heads = map(lines.__getitem__, starts)
            groups = map(tuple, map(texts.__getitem__, map(slice, starts, ends)))
            count_replies = len(ends)
        replies = list(map(_NEW, repeat(Reply, count_replies)))
        _consume(map(_SET_CODE, replies, map(_TEXT_CODES.__getitem__, map(_HEAD, heads))))
        _consume(map(_SET_LINES, replies, groups))
        self._ready.extend(replies)
        return end

    def _parse_single_lines(self, data: bytes, pos: int) -> bool:
        # The commonest shape, pipelined one-line replies with CRLF and ASCII text, checked
        # without the regex: each line is at least "NNN\r", character 3 is SP or the CR, the
        # code is a key of _TEXT_CODES, and (ASCII: characters are octets) no line is too long.
        # False, with nothing consumed, when any check fails.
        lines = (data[pos:] if pos else data).decode("ascii").split("\n")
        lines.pop()
        try:
            separators = "".join(map(_CHAR_3, lines))
            codes = list(map(_TEXT_CODES.__getitem__, map(_HEAD, lines)))
        except (IndexError, KeyError):
            return False
        if separators.count(" ") + separators.count("\r") != len(lines):
            return False
        if max(map(len, lines)) > self.limits.max_line_length + 1:
            return False
        replies = list(map(_NEW, repeat(Reply, len(lines))))
        _consume(map(_SET_CODE, replies, codes))
        _consume(map(_SET_LINES, replies, zip(map(_TEXT_CRLF, lines))))
        self._ready.extend(replies)
        # The first lines only: a run of new texts costs little, a repeated one is found.
        fresh = dict(zip(lines[:_CACHE_SCAN], replies, strict=False))
        if len(fresh) <= _CACHE_ENTRIES and max(map(len, fresh)) <= _CACHE_LINE:
            cache = self._cache
            if len(cache) + len(fresh) > _CACHE_ENTRIES:
                cache.clear()
            cache.update(fresh)
        return True

    def _parse_lines(self, data: bytes, pos: int, *, one_reply: bool) -> int:
        # The reference path: one line at a time, every check with its own message. Used for
        # an unfinished reply, in auth mode, and wherever the fast path stops.
        limits = self.limits
        max_line = limits.max_line_length
        lines = self._lines
        code = self._code
        total = self._reply_bytes
        size_of_data = len(data)
        while pos < size_of_data:
            newline = data.index(b"\n", pos)
            end = newline
            if end > pos and data[end - 1] == 0x0D:
                end -= 1
            size = end - pos
            if size > max_line and not (
                self.auth_mode
                and size <= limits.max_auth_line_length
                and data.startswith(b"334", pos)
            ):
                raise RemoteProtocolError(f"reply line longer than {max_line} octets")
            m = REPLY_LINE.fullmatch(data, pos, end)
            if m is None:
                raise RemoteProtocolError(_describe(data[pos:end]))
            line_code, separator, text = m.groups()
            if lines:
                if line_code != code:
                    raise RemoteProtocolError(
                        f"reply code changed within a reply: {code!r} then {line_code!r}"
                        " (RFC 5321 4.2.1)"
                    )
                if len(lines) >= limits.max_lines:
                    raise RemoteProtocolError(f"reply longer than {limits.max_lines} lines")
            else:
                code = line_code
            total += size
            if total > limits.max_reply_bytes:
                raise RemoteProtocolError(f"reply longer than {limits.max_reply_bytes} octets")
            pos = newline + 1
            lines.append(text.decode("utf-8", "replace") if text else "")
            if separator != b"-":
                reply = _NEW(Reply)
                _SET_CODE(reply, _CODES[code])
                _SET_LINES(reply, tuple(lines))
                self._ready.append(reply)
                lines.clear()
                total = 0
                if one_reply:
                    break
        self._code = code
        self._reply_bytes = total
        return pos
