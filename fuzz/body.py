"""Fuzz target ``body``: arbitrary message bytes and chunkings through `BodyEncoder`.

Checked for every input and option set (mode, line length limit, NUL and bare line-end
policies):

- only `LocalProtocolError` escapes, exactly when the policies say (a NUL under
  ``nul="reject"``, a bare CR or LF under ``bare_line_ends="reject"``);
- on the wire every CR is followed by LF and every LF follows a CR (no smuggling line ends);
- in ``data`` mode the output ends with ``.`` CRLF and no other line is a lone ``.``; every
  line starting with ``.`` is stuffed; no line is longer than the limit;
- the output equals `reference_encode`, a naive model of the rules in ``smtpproto/body.py``;
- without folding, unstuffing the ``data`` output gives back the ``bdat`` output and the
  normalized message itself (the dot-stuffing round trip);
- the output does not depend on the chunking; `encoded_size` and `scan` agree with it;
- `downgrade_8bit` output is 7-bit with CRLF lines, or the input is refused with
  `LocalProtocolError` (`MessageRefused`), whatever the chunking.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from itertools import pairwise

from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.body import BodyEncoder, encoded_size, scan
from smtpproto.mime import downgrade_8bit

from ._harness import Target, main


@dataclass(frozen=True)
class Options:
    """One `BodyEncoder` configuration."""

    mode: str
    limit: int
    nul: str
    bare: str


def _normalize(message: bytes) -> bytes:
    # CRLF, then any remaining CR or LF, is a line end: CR CR LF is two (SM-16).
    return message.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def reference_encode(message: bytes, options: Options) -> bytes | None:
    """The encoder's rules read literally, for the whole message at once; None: refused."""
    if b"\0" in message:
        if options.nul == "reject":
            return None
        message = message.replace(b"\0", b"")
    crlf = message.count(b"\r\n")
    bare = message.count(b"\r") != crlf or message.count(b"\n") != crlf
    if options.bare == "reject" and bare:
        return None
    text = _normalize(message)
    lines = text.split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the message ended with a line end
    out = []
    for line in lines:
        if options.mode == "data" and line.startswith(b"."):
            line = b"." + line
        limit = options.limit
        if limit and len(line) > limit:
            pieces = [line[:limit]]
            rest = line[limit:]
            while rest:
                pieces.append(b" " + rest[: limit - 1])
                rest = rest[limit - 1 :]
            out.extend(pieces)
        else:
            out.append(line)
    wire = b"".join(line + b"\r\n" for line in out)
    return wire + b".\r\n" if options.mode == "data" else wire


def _encode(pieces: list[bytes], options: Options) -> bytes | None:
    encoder = BodyEncoder(
        mode=options.mode,  # type: ignore[arg-type]
        line_length_limit=options.limit,
        nul=options.nul,  # type: ignore[arg-type]
        bare_line_ends=options.bare,  # type: ignore[arg-type]
    )
    out = []
    try:
        for piece in pieces:
            out.append(encoder.feed(piece))
        out.append(encoder.finish())
    except LocalProtocolError:
        return None
    return b"".join(out)


def _check_wire(wire: bytes, options: Options) -> None:
    assert wire.count(b"\r") == wire.count(b"\r\n") == wire.count(b"\n"), wire
    lines = wire.split(b"\r\n")
    assert lines.pop() == b""
    if options.mode == "data":
        assert lines.pop() == b".", wire
        for line in lines:
            assert line != b".", wire
            assert not line.startswith(b".") or line.startswith(b".."), wire
    if options.limit:
        assert all(len(line) <= options.limit for line in lines), wire


def _unstuff(wire: bytes) -> bytes:
    lines = wire.split(b"\r\n")[:-2]  # drop "." and the empty tail
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines)


_PIECE = st.one_of(
    st.sampled_from(
        [
            b"\r\n",
            b"\n",
            b"\r",
            b".",
            b"..",
            b"\r\n.\r\n",
            b"\n.\n",
            b"\r.\r",
            b"\0",
            b" ",
            b"x",
            b"\xc3\xa9",
            b"\xff",
        ]
    ),
    st.binary(max_size=8),
    st.integers(1, 40).map(lambda n: b"a" * n),
)
_MESSAGE = st.one_of(st.lists(_PIECE, max_size=20).map(b"".join), st.binary(max_size=120))
_OPTIONS = st.builds(
    Options,
    st.sampled_from(["data", "bdat"]),
    st.sampled_from([0, 2, 3, 5, 8, 998]),
    st.sampled_from(["reject", "strip"]),
    st.sampled_from(["normalize", "reject"]),
)


@st.composite
def _case(draw: st.DrawFn) -> tuple[bytes, list[int], Options]:
    message = draw(_MESSAGE)
    cuts = sorted(draw(st.lists(st.integers(0, len(message)), max_size=8)))
    return message, cuts, draw(_OPTIONS)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(bounds)]  # empty pieces on purpose


def _check_downgrade(message: bytes, pieces: list[bytes]) -> None:
    results: list[bytes | None] = []
    for chunks in ([message], pieces):
        try:
            out = b"".join(downgrade_8bit(chunks))
        except LocalProtocolError:
            results.append(None)
            continue
        assert out.isascii(), out
        assert out.count(b"\r") == out.count(b"\r\n") == out.count(b"\n"), out
        results.append(out)
    assert results[0] == results[1], results


def check(case: tuple[bytes, list[int], Options]) -> None:
    """The properties in the module docstring, for one input."""
    message, cuts, options = case
    expected = reference_encode(message, options)
    whole = _encode([message], options)
    assert whole == expected, (whole, expected)
    chunked = _encode(_split(message, cuts), options)
    assert chunked == expected, (chunked, expected)
    if expected is None:
        return
    _check_wire(expected, options)
    kwargs = {
        "line_length_limit": options.limit,
        "nul": options.nul,
        "bare_line_ends": options.bare,
    }
    assert encoded_size(message, mode=options.mode, **kwargs) == len(expected)  # type: ignore[arg-type]
    if options.mode == "data":
        if not options.limit:
            # With folding the two modes differ by design: the stuffing dot counts towards
            # the limit (body.py rule 4), so the round trip is checked without folding.
            other = _encode([message], Options("bdat", 0, options.nul, options.bare))
            assert other is not None and _unstuff(expected) == other, (expected, other)
            normalized = _normalize(message.replace(b"\0", b""))
            if normalized and not normalized.endswith(b"\n"):
                normalized += b"\n"
            assert _unstuff(expected) == normalized.replace(b"\n", b"\r\n")
        info = scan(message, **kwargs)  # type: ignore[arg-type]
        assert info.wire_size == len(expected)
        assert info.size == len(_unstuff(expected))
    _check_downgrade(message.replace(b"\0", b""), _split(message.replace(b"\0", b""), []))


TARGET = Target(
    "body",
    "BodyEncoder and downgrade_8bit: wire invariants vs a reference model",
    strategy=_case(),
    check=check,
)

if __name__ == "__main__":
    sys.exit(main({TARGET.name: TARGET}, only=TARGET.name))
