"""The reply parser `ClientConnection` uses: `FastReplyParser`, the reference parser made fast.

Equivalence contract: for every byte sequence, every chunking of it, every interleaving of
`feed`, `next_reply` and changes of `auth_mode`, and every `ReplyLimits`, a `FastReplyParser`
returns the same replies, raises the same errors (the same messages) at the same calls, and
reports the same `buffered`, `partial` and `at_eof` as the reference `ReplyParser` of
``smtpproto/replies.py``. ``tests/test_replyfast.py`` checks this with hypothesis on arbitrary
bytes, chunkings, end of input anywhere, auth mode toggles and limits; ``fuzz/replies.py``
checks both against a literal reading of the rules.

How the contract is kept: the fast path takes a shortcut only where the reference provably
does the same, on the complete lines of a `feed` made while auth mode is off.

- A complete line no longer than `ReplyLimits.max_line_length`, line end included, keeps all
  its octets and ends in its CR run, so the reference's framing (rules 1.1 and 1.2) comes
  down to stripping the CRs before the LF; a CR run longer than a line may keep, a longer
  line, a line begun in an earlier chunk and everything fed in auth mode are left to it.
- Whole replies are matched by regexes that are ``_abnf.REPLY_LINE`` for whole replies within
  the limits, and cut into replies by C-level splits and maps. A reply begun in an earlier
  chunk is completed, and the continuation lines that end a chunk are held, in the
  reference's own state (its code, lines and octet count), after the reference's checks.
- At anything else (a control or a CR inside a line, a malformed line, a code change, a limit
  passed) the fast path stops and the reference's own step reads the rest of the chunk, line
  by line; only it raises errors.

Its only state of its own is a cache of one-line replies it has checked under the current
limits.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from itertools import accumulate, compress, count
from operator import itemgetter, methodcaller, sub

from ._errors import RemoteProtocolError
from .replies import Reply, ReplyLimits, ReplyParser

__all__ = ["FastReplyParser"]

# Reply codes by their wire text; only well-formed codes are keys (RFC 5321 4.2, RP-08/09).
_CODES = {str(n): n for n in range(200, 600) if n // 10 % 10 <= 5}
# C0 controls but HT, LF and CR: a line holding one goes to the reference, which reports it
# (RP-14), unless the control is in the discarded part of an over-long line (rule 1.2).
_CONTROLS = bytes(range(0x09)) + bytes(range(0x0B, 0x0D)) + bytes(range(0x0E, 0x20))
# C-level pieces of the pipelines that cut a run of lines into replies.
_HEAD = itemgetter(slice(0, 3))
_SEPARATOR = itemgetter(slice(3, 4))
_TEXT = itemgetter(slice(4, None))
_TEXT_CRLF = itemgetter(slice(4, -1))
_CHAR_3 = itemgetter(3)
_END = methodcaller("end")
_FINAL = re.compile("[^-]")  # a separator that ends a reply
_CONTINUATION = re.compile(rb"\n[0-9]{3}-")  # a continuation line after the first
_CR_RUN_LF = re.compile(rb"\r+\n")
_NOT_DASH = "-".__ne__
# Bounds of a parser's cache of one-line replies: entries, and the characters of a cached
# line, so that the cache holds a few KiB at most.
_CACHE_ENTRIES = 32
_CACHE_LINE = 160
_CACHE_SCAN = 128  # lines of a parsed run looked at for the cache
_DEFAULT_LIMITS = ReplyLimits()


@functools.lru_cache(maxsize=8)
def _shared_cache(limits: ReplyLimits) -> dict[str, Reply]:
    # The cache of one-line replies, one per limits for every parser: a server gives each
    # connection the same greeting and the same MAIL, RCPT and DATA replies, so a fresh
    # connection finds them there. A cached Reply is immutable and passed every check under
    # these limits; concurrent parsers at worst miss an entry another one cleared.
    return {}


@functools.lru_cache(maxsize=8)
def _patterns(
    max_line_length: int, max_lines: int | None, crlf: bool
) -> tuple[re.Pattern[bytes], re.Pattern[bytes], re.Pattern[bytes]]:
    # _abnf.REPLY_LINE for whole replies: every line carries the code of the first
    # (backreference, RP-05) and holds at most `max_line_length` octets before its line end,
    # so no line needs cutting (rule 1.2). For data whose every line ends in CRLF (`crlf`) the
    # CR is matched as the text's last octet; otherwise the data holds no CR at all. Controls
    # and lone CRs are excluded before (RP-14). Possessive quantifiers: no backtracking could
    # ever help, as "." never matches the LF that ends a line. Three patterns:
    # - run: zero or more whole replies within `max_lines`; match().end() is where they stop;
    # - rest: the lines that complete a reply begun before (its code is checked after);
    # - opening: nothing but continuation lines of one code, a reply that goes on.
    text = max_line_length - 4 + crlf
    line_rest = rb"-.{0,%d}+\n" % text
    final_rest = rb"(?:[ ].{0,%d}+|\r)?+\n" % text
    bound = rb"*+" if max_lines is None else rb"{0,%d}+" % (max_lines - 1)
    code = rb"([2-5][0-5][0-9])"
    return (
        re.compile(rb"(?:%s(?:%s\1)%s%s)*+" % (code, line_rest, bound, final_rest)),
        re.compile(rb"%s(?:%s\1)*+%s" % (code, line_rest, final_rest)),
        re.compile(rb"%s%s(?:\1%s)*+" % (code, line_rest, line_rest)),
    )


def _texts(lines: bytes, crlf: bool) -> list[str]:
    # The text of each line of `lines` (complete, well formed, ending in CRLF if `crlf`).
    split = lines.decode("utf-8", "replace").split("\n")
    split.pop()
    return list(map(_TEXT_CRLF if crlf else _TEXT, split))


def _offset_before_stripping(original: bytes, taken: bytes) -> int:
    # Where in `original` the first lines of its CRLF-to-LF copy, `taken`, end.
    lines = taken.count(b"\n")
    if not lines:
        return 0
    return len(b"\n".join(original.split(b"\n", lines)[:lines])) + 1


class FastReplyParser(ReplyParser):
    """`ReplyParser` with a fast path for whole replies; same results by contract (module doc)."""

    __slots__ = ("_cache", "_patterns", "_single_lines_ok", "_tuned")

    def __init__(self, limits: ReplyLimits = _DEFAULT_LIMITS) -> None:
        super().__init__(limits)
        # Well-formed one-line CRLF replies seen before, by their line ("250 2.1.5 Ok\r"):
        # a server repeats a few of them for every message, and a Reply is immutable, so a
        # line seen before needs neither the checks nor a new object (`_shared_cache`).
        self._cache: dict[str, Reply] = _shared_cache(limits)
        self._tune()

    def feed(self, data: bytes) -> None:
        """Add received bytes; ``b""`` marks the end of input. Never raises for the peer's data."""
        end = data.rfind(b"\n") + 1
        if not end or self.auth_mode or self._error is not None or self._eof:
            super().feed(data)
            return
        pos = 0
        if self._line:  # a line begun in an earlier chunk: the reference finishes it
            pos = data.index(b"\n") + 1
            super().feed(data[:pos])
        try:
            if pos < end and self._error is None:
                pos = self._in_bulk(data, pos, end)
            pos = self._line_by_line(data, pos, end)
        except RemoteProtocolError as exc:
            self._fail(str(exc))
            return
        if pos < len(data):
            super().feed(data[pos:])

    def _line_by_line(self, data: bytes, pos: int, end: int) -> int:
        # The complete lines the fast path left, with the reference's own step for each. A
        # line that fits is kept whole and ends in its CR run: there the reference's framing
        # (_add, _end_line) comes down to rstrip, so only longer lines need it.
        limit = self.limits.max_line_length
        while pos < end and self._error is None:
            newline = data.index(b"\n", pos)
            if newline - pos <= limit:
                self._take(data[pos:newline].rstrip(b"\r"))
            else:
                super().feed(data[pos : newline + 1])
            pos = newline + 1
        return pos

    def _tune(self) -> None:
        # `limits` is a plain attribute: follow it if the caller replaces it.
        limits = self.limits
        self._tuned = limits  # the limits the fields below were made for
        self._cache = _shared_cache(limits)
        # One-line replies skip the per-reply size check only if a line cannot exceed it.
        self._single_lines_ok = limits.max_reply_bytes >= limits.max_line_length
        self._patterns = (
            _patterns(limits.max_line_length, limits.max_lines, False),
            _patterns(limits.max_line_length, limits.max_lines, True),
        )

    def _in_bulk(self, data: bytes, start: int, end: int) -> int:
        # Take what it can of data[start:end], complete lines from a line boundary (a reply
        # may be in progress); return where that ends.
        if self.limits is not self._tuned:
            self._tune()
        if not self._single_lines_ok:
            return start
        if data.find(b"\n", start) - start > self.limits.max_line_length + 1:
            return start  # a line to cut comes first: not worth scanning the rest
        block = data if start == 0 and end == len(data) else data[start:end]
        if self._cache and not self._lines and self._from_cache(block):
            return end
        newlines = block.count(b"\n")
        carriage_returns = block.count(b"\r")
        if not carriage_returns:
            return start + self._block(block, crlf=False)
        if carriage_returns == newlines and block.count(b"\r\n") == newlines:
            return start + self._block(block, crlf=True)
        # Mixed line ends, or runs of CRs before the LF: with the CRs before each LF dropped
        # (rule 1.1) no CR may be left; a CR inside a line is for the reference to read. So is
        # a run longer than a line may keep: the reference counts it against rule 1.2's
        # second bound.
        stripped = block.replace(b"\r\n", b"\n")
        if b"\r" in stripped:
            if b"\r" * (self.limits.max_line_length + 1) in block:
                return start
            stripped = _CR_RUN_LF.sub(b"\n", stripped)
            if b"\r" in stripped:
                return start
        taken = self._block(stripped, crlf=False)
        if taken == len(stripped):
            return end
        return start + _offset_before_stripping(block, stripped[:taken])

    def _from_cache(self, block: bytes) -> bool:
        # Every cached line passed every check of _single_lines under the same limits, so a
        # block made only of cached lines parses to the cached replies. latin-1 never fails;
        # a non-ASCII line is simply not a key. The first line is tried alone so that a run of
        # new lines is not split twice.
        cache = self._cache
        if block[: block.find(b"\n")].decode("latin-1") not in cache:
            return False
        lines = block.decode("latin-1").split("\n")
        lines.pop()  # the block ends with LF: the empty string after it
        try:
            replies = list(map(cache.__getitem__, lines))
        except KeyError:
            return False
        self._ready.extend(replies)
        return True

    def _block(self, block: bytes, crlf: bool) -> int:
        # For a block of complete lines with no control and no lone CR, whose lines all end in
        # CRLF (`crlf`) or all in LF: regex matches find the end of a reply begun in an earlier
        # chunk, the run of whole well-formed replies, and the opening lines of a reply that
        # goes on; C-level map/zip pipelines cut them into replies, with no Python loop per
        # line. Returns the octets taken.
        if len(block.translate(None, _CONTROLS)) != len(block):
            return 0
        if (
            crlf
            and not self._lines
            and block[3:4] != b"-"
            and _CONTINUATION.search(block) is None
            and block.isascii()
            and self._single_lines(block)
        ):
            return len(block)
        run, rest, opening = self._patterns[crlf]
        pos = 0
        if self._lines:  # a reply begun in an earlier chunk
            pos = self._end_of_reply(block, rest, crlf)
            if not pos:
                return 0
        end = run.match(block, pos).end()  # type: ignore[union-attr]
        if end > pos and not self._run(block[pos:end] if pos or end < len(block) else block, crlf):
            return pos
        if end < len(block) and opening.fullmatch(block, end):
            return end + self._opening(block[end:], crlf)
        return end

    def _end_of_reply(self, block: bytes, rest: re.Pattern[bytes], crlf: bool) -> int:
        # The reply begun in an earlier chunk, if the first lines of `block` complete it within
        # the limits: then it is returned, and where it ends; else 0 and nothing changes.
        match = rest.match(block)
        if match is None or match[1] != self._code:
            return 0
        texts = _texts(block[: match.end()], crlf)
        lines = self._lines
        limits = self.limits
        if limits.max_lines is not None and len(lines) + len(texts) > limits.max_lines:
            return 0
        size = match.end() - len(texts) * (1 + crlf)
        if self._reply_bytes + size > limits.max_reply_bytes:
            return 0
        code = _CODES[match[1].decode()]
        self._ready.extend(Reply._unchecked([code], [(*lines, *texts)]))
        lines.clear()
        self._reply_bytes = 0
        return match.end()

    def _opening(self, tail: bytes, crlf: bool) -> int:
        # `tail`: nothing but continuation lines of one code, at the end of the block. Within
        # the limits they become the reply in progress, as the reference would hold them.
        texts = _texts(tail, crlf)
        limits = self.limits
        size = len(tail) - len(texts) * (1 + crlf)
        if limits.max_lines is not None and len(texts) > limits.max_lines:
            return 0
        if size > limits.max_reply_bytes:
            return 0
        self._code = tail[:3]
        self._lines.extend(texts)
        self._reply_bytes = size
        return len(tail)

    def _run(self, run: bytes, crlf: bool) -> bool:
        # Whole replies, from the run regex, into _ready; False, with nothing taken, if some
        # reply is over the byte limit (RP-11: the reference tells which).
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
        else:
            if len(separators) == count_lines:
                ends = list(map(_END, _FINAL.finditer(separators)))
            else:  # "250" lines (LF mode) have no separator character
                ends = list(compress(count(1), map(_NOT_DASH, map(_SEPARATOR, lines))))
            starts = [0, *ends[:-1]]
            max_bytes = self.limits.max_reply_bytes
            if len(run) - count_lines * (1 + crlf) > max_bytes:
                raw = (run.replace(b"\r\n", b"\n") if crlf else run).split(b"\n")
                offsets = [0, *accumulate(map(len, raw))]
                sizes = map(sub, map(offsets.__getitem__, ends), map(offsets.__getitem__, starts))
                if max(sizes) > max_bytes:
                    return False
            heads = map(lines.__getitem__, starts)
            groups = map(tuple, map(texts.__getitem__, map(slice, starts, ends)))
        codes = list(map(_CODES.__getitem__, map(_HEAD, heads)))
        self._ready.extend(Reply._unchecked(codes, groups))
        return True

    def _single_lines(self, block: bytes) -> bool:
        # The commonest shape, pipelined one-line replies with CRLF and ASCII text, checked
        # without the regex: each line is at least "NNN\r", character 3 is SP or the CR, the
        # code is a key of _CODES, and (ASCII: characters are octets) no line is too long.
        # False, with nothing taken, when any check fails.
        lines = block.decode("ascii").split("\n")
        lines.pop()
        try:
            separators = "".join(map(_CHAR_3, lines))
            codes = list(map(_CODES.__getitem__, map(_HEAD, lines)))
        except (IndexError, KeyError):
            return False
        if separators.count(" ") + separators.count("\r") != len(lines):
            return False
        if max(map(len, lines)) > self.limits.max_line_length + 1:
            return False
        replies = Reply._unchecked(codes, zip(map(_TEXT_CRLF, lines)))
        self._ready.extend(replies)
        # The first lines only: a run of new texts costs little, a repeated one is found.
        fresh = dict(zip(lines[:_CACHE_SCAN], replies, strict=False))
        if len(fresh) <= _CACHE_ENTRIES and max(map(len, fresh)) <= _CACHE_LINE:
            cache = self._cache
            if len(cache) + len(fresh) > _CACHE_ENTRIES:
                cache.clear()
            cache.update(fresh)
        return True
