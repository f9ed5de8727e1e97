"""Server replies: the `Reply` value type and `ReplyParser`, the reference reply parser.

`ReplyParser` is the plain statement of how this library reads replies, one line at a time.
`ClientConnection` uses `smtpproto._replyfast.FastReplyParser`, which by contract returns
the same replies and raises the same errors at the same calls, for any input.

Decisions (each one tested in ``tests/test_replies.py``):

- Line ends (rule 1.1): LF ends a line, and the run of CRs just before it is part of the line
  end, so ``250 2.0.0 Ok\\r\\r\\n`` reads as ``250 2.0.0 Ok``. A bare LF is accepted (RP-13
  decided lenient: rule 1.1, and every peer but lettre, accept it). A CR anywhere else never
  ends a line: it stays in the line, where, like NUL and every other C0 control except HT,
  it is an error (RP-14), so no CR can smuggle a line break past the parser.
- Over-long lines (rule 1.2, Postfix 3.7 ``smtp_get()`` with ``line_length_limit``): a line
  keeps its first `ReplyLimits.max_line_length` octets and the rest, up to the LF, is read
  and discarded unseen; reading goes on with the next line. The line end does not count, so a
  line that fits is never cut however many CRs end it. A 334 line in `ReplyParser.auth_mode`
  keeps up to `ReplyLimits.max_auth_line_length` octets instead (RFC 4954 4; RP-12).
- The second bound (as Postfix releases after 3.7 add to ``smtp_get()``): a line that has to
  discard more than `ReplyLimits.max_line_length` octets, CRs included, before its LF ends
  the parse with a `RemoteProtocolError` saying that reading stops as on a lost connection,
  so a line without end cannot hold the client. The parser never holds more than the kept
  part of a line (RP-10).
- Grammar (RFC 5321 4.2, ``_abnf.REPLY_LINE``): three ASCII digits checked byte by byte
  (RP-08), first digit 2-5 and second 0-5 (RP-09), then ``-`` (more lines follow), SP, or
  the end of the line: ``250`` and ``"250 "`` are legal final lines with empty text (RP-02,
  RP-03). Anything else is a `RemoteProtocolError` (RP-07): unlike Postfix (rule 1.5, Quirk
  Q4) a malformed line is never absorbed into the next reply, because under pipelining that
  lets a QUIT reply pass for the end-of-data reply (RP-19).
- Every line of a reply carries the same code; a different code is an error (RP-05; unlike
  Postfix's Quirk Q11).
- Size: a reply holds at most `ReplyLimits.max_reply_bytes` kept octets (RP-11). There is no
  limit on the number of lines unless `ReplyLimits.max_lines` asks for one: Postfix has none
  (rule 1.7); an endless reply is ended by the byte limit or by the caller's deadline.
- End of input inside a reply, even between its lines, is an error (RP-06, rule 1.10).
- `ReplyParser.auth_mode` applies to the octets fed while it is set.
- Errors are sticky: the replies before an error come out first, then every call raises it.
- Text is decoded as UTF-8 with replacement characters, never an exception (RP-15).
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import repeat

from ._abnf import ENHANCED_STATUS, REPLY_LINE
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

    @classmethod
    def _unchecked(cls, codes: Sequence[int], lines: Iterable[tuple[str, ...]]) -> list[Reply]:
        """Skips validation; caller guarantees validity: one reply per code and lines pair.

        The one way to build a `Reply` without ``__post_init__``, for the fast parser, whose
        replies are valid by construction; a whole batch at a time, so that filling the slots
        costs no Python call per reply (``bench/bench_replies.py``).
        """
        replies = list(map(object.__new__, repeat(cls, len(codes))))
        slots = vars(cls)
        deque(map(slots["code"].__set__, replies, codes), maxlen=0)
        deque(map(slots["lines"].__set__, replies, lines), maxlen=0)
        return replies

    @property
    def text(self) -> str:
        """The text of all lines joined with ``"\\n"`` (rule 1.6)."""
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> EnhancedStatus | None:
        """The RFC 3463 status at the start of the final line, if its class matches the code.

        Rule 1.8: only the final line counts and only when the code is 2xx, 4xx or 5xx (RP-20).
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
        """The enhanced status as written (leading zeros kept), else ``"<class>.0.0"``;
        ``"5.5.0"`` for a 3xx (rule 1.8)."""
        return _dsn(self.code, self.lines[-1])

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


@functools.lru_cache(maxsize=256)
def _dsn(code: int, final_line: str) -> str:
    # Reply.dsn, once per distinct reply: a server repeats a few replies for every message.
    klass = code // 100
    if klass == 3:
        return "5.5.0"
    match = ENHANCED_STATUS.match(final_line)
    if match is None or int(match[1]) != klass:
        return f"{klass}.0.0"
    # Rule 1.8: the status as the server wrote it. Postfix's dsn_valid() accepts leading
    # zeros and its DSN is that text, so "550 5.01.1" is 5.01.1, not 5.1.1.
    return f"{match[1]}.{match[2]}.{match[3]}"


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """What the parser keeps of a reply; past a limit it raises `RemoteProtocolError`."""

    max_line_length: int = 2048
    """Octets kept of a line, code included, line end excluded; the rest up to the LF is
    discarded, and more than this many discarded octets end the parse (rule 1.2; RP-10)."""
    max_lines: int | None = None
    """Lines per reply, or None for no count limit (the default: Postfix has none, rule 1.7)."""
    max_reply_bytes: int = 65536
    """Kept octets per reply, codes included, line ends excluded (RP-11)."""
    max_auth_line_length: int = 16384
    """Octets kept of a 334 line while `ReplyParser.auth_mode` is set (RFC 4954 4: 12288
    octets of base64; RP-12)."""

    def __post_init__(self) -> None:
        # "250 " is the shortest final line that can carry text; below that nothing parses.
        for name in ("max_line_length", "max_reply_bytes", "max_auth_line_length"):
            value = getattr(self, name)
            if type(value) is not int or value < 4:
                raise LocalProtocolError(f"{name}: expected an int >= 4, got {value!r}")
        lines = self.max_lines
        if lines is not None and (type(lines) is not int or lines < 1):
            raise LocalProtocolError(f"max_lines: expected None or an int >= 1, got {lines!r}")


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
    `next_reply` until it returns None. The module docstring lists the decisions; this class
    is their reference implementation, a line at a time.
    """

    __slots__ = (
        "_code",
        "_cut",
        "_dropped",
        "_eof",
        "_error",
        "_line",
        "_lines",
        "_ready",
        "_reply_bytes",
        "auth_mode",
        "limits",
    )

    def __init__(self, limits: ReplyLimits = ReplyLimits()) -> None:
        self.limits = limits
        """The limits this parser enforces."""
        self.auth_mode = False
        """While True, a 334 line fed may keep ``limits.max_auth_line_length`` octets (RP-12)."""
        self._ready: deque[Reply] = deque()  # complete, not yet returned
        # The line being received: its kept octets, how many octets past them were
        # discarded, and whether one of those was not a CR, so that the line was cut.
        self._line = bytearray()
        self._dropped = 0
        self._cut = False
        # The reply being received: its code, the text of its lines, their kept octets.
        self._code = b""
        self._lines: list[str] = []
        self._reply_bytes = 0
        self._eof = False
        self._error: str | None = None  # raised once the replies before it are returned

    @property
    def buffered(self) -> int:
        """Octets held for a reply not yet complete: the kept part of a line and the lines of
        an unfinished reply; at most ``limits.max_reply_bytes`` plus one line (RP-10, RP-11)."""
        return len(self._line) + self._reply_bytes

    @property
    def ready(self) -> int:
        """Complete replies held for `next_reply`."""
        return len(self._ready)

    @property
    def partial(self) -> bool:
        """True while part of a reply is held: a line, or lines of an unfinished reply."""
        return bool(self._line or self._lines)

    @property
    def at_eof(self) -> bool:
        """True once ``feed(b"")`` was called."""
        return self._eof

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` marks the end of input. Never raises for the peer's data."""
        if not data:
            self._eof = True
            if self._line or self._lines:
                self._fail("connection closed inside a reply (RFC 5321 4.2, rule 1.10)")
            return
        if self._eof:
            raise LocalProtocolError("data: the end of input was already fed")
        pos = 0
        try:
            while self._error is None:
                newline = data.find(b"\n", pos)
                self._add(data[pos:] if newline < 0 else data[pos:newline])
                if newline < 0:
                    return
                self._end_line()
                pos = newline + 1
        except RemoteProtocolError as exc:
            self._fail(str(exc))

    def next_reply(self) -> Reply | None:
        """The next complete reply, or None when more data is needed (or input ended cleanly)."""
        if self._ready:
            return self._ready.popleft()
        if self._error is not None:
            raise RemoteProtocolError(self._error)
        return None

    def _fail(self, message: str) -> None:
        # Sticky: the first error stays, and nothing more is read.
        if self._error is None:
            self._error = message
        self._line = bytearray()
        self._dropped = 0
        self._cut = False
        self._lines = []
        self._reply_bytes = 0

    def _add(self, octets: bytes) -> None:
        # Octets of the current line, without its LF. Keep what fits; discard the rest unseen
        # (rule 1.2), and only once a line has discarded too much, give up on the connection.
        line = self._line
        room = 0 if self._dropped else self._keep(line, octets) - len(line)
        if len(octets) <= room:
            line += octets
            return
        room = max(room, 0)
        line += octets[:room]
        excess = octets[room:]
        self._dropped += len(excess)
        # A discarded octet that is not a CR means the line's content went past the limit;
        # CRs only may still turn out to be the line end (rule 1.1).
        self._cut = self._cut or excess.count(b"\r") != len(excess)
        bound = self.limits.max_line_length
        if self._dropped > bound:
            raise RemoteProtocolError(
                f"reply line with no LF after {len(line)} octets kept and {bound} discarded"
                " (rule 1.2): reading stops, as on a lost connection"
            )

    def _keep(self, line: bytearray, octets: bytes) -> int:
        # The octets a line may keep, by the mode its octets are fed in. Only a 334 line
        # needs more in auth mode (RP-12); its code is known before its length matters.
        limits = self.limits
        if self.auth_mode and (bytes(line[:3]) + octets[:3]).startswith(b"334"):
            return max(limits.max_line_length, limits.max_auth_line_length)
        return limits.max_line_length

    def _end_line(self) -> None:
        # The LF came. The CRs before it are the line end (rule 1.1), unless the line was cut:
        # then they were inside it, before the octets discarded after them.
        kept = bytes(self._line)
        line = kept if self._cut else kept.rstrip(b"\r")
        self._line = bytearray()
        self._dropped = 0
        self._cut = False
        self._take(line)

    def _take(self, line: bytes) -> None:
        # One line of a reply: its grammar, its code against the reply's, the reply's size.
        match = REPLY_LINE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError(_describe(line))
        code, separator, text = match.groups()
        lines = self._lines
        limits = self.limits
        if lines and code != self._code:
            raise RemoteProtocolError(
                f"reply code changed within a reply: {self._code!r} then {code!r} (RFC 5321 4.2.1)"
            )
        if limits.max_lines is not None and len(lines) >= limits.max_lines:
            raise RemoteProtocolError(f"reply longer than {limits.max_lines} lines")
        self._reply_bytes += len(line)
        if self._reply_bytes > limits.max_reply_bytes:
            raise RemoteProtocolError(f"reply longer than {limits.max_reply_bytes} octets")
        self._code = code
        lines.append(text.decode("utf-8", "replace") if text else "")
        if separator != b"-":
            # The grammar checked the code: three ASCII digits, 2xx-5xx (RP-08, RP-09).
            self._ready.append(Reply(int(code), tuple(lines)))
            lines.clear()
            self._reply_bytes = 0
