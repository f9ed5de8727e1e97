"""8BITMIME -> 7bit conversion for servers without 8BITMIME (RFC 6152 3, rule 8.5).

`downgrade_8bit` is a streaming, line-based MIME state machine (Postfix mime_state.c in
spirit): it reads message chunks and yields 7-bit content, holding at most one header block
and one 64 KiB line piece. A stack of open containers (multipart boundaries, embedded
messages) is bounded by `mime_nesting_limit`; boundaries are compared on at most their first
`mime_boundary_length_limit` octets (Postfix ``mime_boundary_length_limit``).

What each entity becomes (rule 8.5 (b), header changes minimal: only the
Content-Transfer-Encoding field is replaced, written at the end of the entity's header block)::

    | Entity | Content-Transfer-Encoding | Body |
    |---|---|---|
    | leaf, declared ``8bit``/``binary`` | ``quoted-printable`` | quoted-printable |
    | leaf, ``7bit``, undeclared or unknown | ``quoted-printable`` | quoted-printable (1) |
    | leaf, ``quoted-printable`` | unchanged | 8-bit octets become ``=HH`` (2) |
    | leaf, ``base64`` | unchanged | 8-bit octets become ``?`` (2) |
    | multipart/*, message/rfc822, message/news | 8bit/binary -> 7bit | parsed |
    | preamble, epilogue, boundary lines | - | 8-bit octets become ``?`` (3) |

(1) Deviation from Postfix (rules 8.5 (c), quirk Q7), which sends 8-bit octets of unlabelled
or 7bit-labelled parts raw: a streaming converter cannot know whether such a part holds
8-bit octets before its header is out, and the rule here is that no 8-bit octet reaches a
server without 8BITMIME. A converted top-level or embedded message without MIME-Version gets
``MIME-Version: 1.0`` too, so that readers honour the new field (RFC 2045 4), and, without a
Content-Type, ``Content-Type: text/plain; charset=unknown-8bit`` (RFC 1428): MIME's default
``us-ascii`` would mislabel the decoded octets.
(2) Raw 8-bit octets are invalid in these encodings; ``=HH`` decodes to the same octet and
base64 decoders skip non-alphabet characters (RFC 2045 6.8), so the decoded content is what
a lenient reader of the original would get. (3) Not content (RFC 2046 5.1.1).

Refusals (`smtpproto.MessageRefused`; rule 8.5 "bounce conditions"): nesting deeper
than `mime_nesting_limit` -> ``5.6.0 MIME nesting exceeds safety limit``; a header block over
1 MiB -> ``5.6.0 MIME header exceeds safety limit``; 8-bit octets in a header -> ``5.6.3``
(MIME cannot encode a header field without rewriting it; Postfix sends them raw).

Quoted-printable (rule 8.5 "QP details", RFC 2045 6.7): octets below 32 but TAB, ``=`` and
octets above 126 become ``=HH`` (upper case); a soft line break ``=`` follows the token that
takes an encoded line past 72 characters (lines stay within 76); a SP or TAB ending a hard
line is encoded. Line ends are CRLF, a bare CR or LF ending a line as in `BodyEncoder`; dot
stuffing and folding are left to the encoder that follows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from ._errors import LocalProtocolError, MessageRefused, Refusal

__all__ = ["content_type", "downgrade_8bit", "transfer_encoding"]

_State = Literal["header", "body"]
_BodyMode = Literal["qp", "escape", "question"]

_PIECE = 65536  # longest line piece held; well above 2 + any boundary limit used in practice
_HEADER_LIMIT = 1048576  # octets in one header block (hostile input only)

# RFC 2045 5.1 token; RFC 5322 2.2 field name with obs WSP before the colon (4.5.2).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TYPE = re.compile(rb"[ \t]*(" + _TOKEN + rb")[ \t]*/[ \t]*(" + _TOKEN + rb")")
_BOUNDARY = re.compile(
    rb';[ \t]*boundary[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|(' + _TOKEN + rb"))", re.IGNORECASE
)
_CTE = re.compile(rb"[ \t]*(" + _TOKEN + rb")")
_COMMENT = re.compile(rb"\([^()]*\)")
_FIELD = re.compile(rb"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_QP_UNSAFE = re.compile(rb"[^\t\x20-\x3c\x3e-\x7e]+")
_EIGHTBIT = re.compile(rb"[\x80-\xff]+")
_TO_QUESTION = bytes(range(128)) + b"?" * 128

_ENCODED = ("base64", "quoted-printable")
_LEAF_BODY: dict[str, _BodyMode] = {"quoted-printable": "escape", "base64": "question"}
_CONTAINERS = ("message/rfc822", "message/news")
_NESTING = Refusal("5.6.0", "MIME nesting exceeds safety limit")
_HEADER_SIZE = Refusal("5.6.0", "MIME header exceeds safety limit")
_HEADER_8BIT = Refusal(
    "5.6.3",
    "MIME header has 8-bit octets, which cannot be converted for a server without 8BITMIME",
)


def content_type(value: bytes) -> tuple[str, bytes | None]:
    """``(type/subtype, boundary)`` of a Content-Type value; ``text/plain`` if unparsable."""
    value = _COMMENT.sub(b"", value)
    match = _TYPE.match(value)
    if match is None:
        return "text/plain", None  # RFC 2045 5.2: the default for a syntactically bad field
    kind = (match.group(1) + b"/" + match.group(2)).decode("ascii").lower()
    param = _BOUNDARY.search(value, match.end())
    if param is None:
        return kind, None
    quoted = param.group(1)
    boundary = re.sub(rb"\\(.)", rb"\1", quoted) if quoted is not None else param.group(2)
    return kind, boundary or None


def transfer_encoding(value: bytes) -> str:
    """The Content-Transfer-Encoding token, lower case (RFC 2045 6.1); ``""`` if unparsable."""
    match = _CTE.match(_COMMENT.sub(b"", value))
    return "" if match is None else match.group(1).decode("ascii").lower()


def _escape(match: re.Match[bytes]) -> bytes:
    return ("=" + match.group().hex("=")).upper().encode("ascii")


def _soft_cut(line: bytes) -> int:
    # Postfix: the soft break follows the token that takes the line past 72 characters; an
    # "=" only ever starts an escape, so the token covering index 72 is found by looking back.
    for start in (70, 71, 72):
        if line[start : start + 1] == b"=":
            return start + 3
    return 73


class _QuotedPrintable:
    """Streaming quoted-printable encoder over line pieces (RFC 2045 6.7, rule 8.5)."""

    def __init__(self) -> None:
        self._line = b""  # encoded text of the open output line, at most 76 characters
        self._held = b""  # a final SP/TAB not yet known to end the hard line

    def feed(self, data: bytes, eol: bool, out: list[bytes]) -> None:
        data = self._held + data
        self._held = b""
        if not eol and data[-1:] in (b" ", b"\t"):
            self._held = data[-1:]
            data = data[:-1]
        encoded = _QP_UNSAFE.sub(_escape, data)
        if eol and encoded[-1:] in (b" ", b"\t"):
            encoded = encoded[:-1] + b"=%02X" % encoded[-1]
        line = self._line + encoded
        while len(line) > 76:
            cut = _soft_cut(line)
            out.append(line[:cut] + b"=\r\n")
            line = line[cut:]
        if eol:
            out.append(line + b"\r\n")
            self._line = b""
        else:
            self._line = line

    def close(self, out: list[bytes]) -> None:
        if self._line or self._held:
            self.feed(b"", True, out)


@dataclass(frozen=True, slots=True)
class _Container:
    """An open multipart (with its boundary) or embedded message on the MIME stack."""

    boundary: bytes | None
    truncated: bool = False
    digest: bool = False


class _Downgrader:
    """The line-based MIME state machine behind `downgrade_8bit`."""

    def __init__(self, nesting_limit: int, boundary_limit: int) -> None:
        self._nesting_limit = nesting_limit
        self._boundary_limit = boundary_limit
        self._stack: list[_Container] = []
        self._state: _State = "header"
        self._body: _BodyMode = "question"
        self._qp = _QuotedPrintable()
        self._fields: list[list[bytes]] = []  # raw lines of each header field
        self._header_size = 0
        self._is_message = True  # the open header block starts a message (MIME-Version)
        self._default_type = "text/plain"
        self._partial = b""
        self._cr = False
        self._continued = False  # the open line already had a piece handled
        self._boundary_line = False  # the open line is a boundary line
        self.out: list[bytes] = []

    def feed(self, chunk: bytes) -> None:
        if self._cr:
            chunk = b"\r" + chunk
        self._cr = chunk.endswith(b"\r")
        if self._cr:
            chunk = chunk[:-1]
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line, True)
        if len(self._partial) >= _PIECE:
            piece, self._partial = self._partial, b""
            self._line(piece, False)

    def finish(self) -> None:
        if self._cr:
            self._line(self._partial, True)
        elif self._partial or self._continued:
            self._line(self._partial, False)
        self._partial = b""
        if self._state == "header":
            self._end_headers(blank=False)
        elif self._body == "qp":
            self._qp.close(self.out)

    def _line(self, data: bytes, eol: bool) -> None:
        first = not self._continued
        self._continued = not eol
        if first:
            self._boundary_line = data[:2] == b"--" and self._boundary(data)
            if self._boundary_line:
                self._pass(data, eol)
                return
        elif self._boundary_line:
            self._pass(data, eol)
            return
        if self._state == "header":
            self._header_line(data, first, eol)
        else:
            self._body_line(data, eol)

    def _pass(self, data: bytes, eol: bool) -> None:
        self.out.append(data.translate(_TO_QUESTION))
        if eol:
            self.out.append(b"\r\n")

    def _boundary(self, line: bytes) -> bool:
        # RFC 2046 5.1.1: "--" boundary ["--"] then only whitespace; any enclosing
        # multipart's boundary also ends the parts nested inside it.
        for index in range(len(self._stack) - 1, -1, -1):
            container = self._stack[index]
            boundary = container.boundary
            if boundary is None or not line.startswith(boundary, 2):
                continue
            rest = line[2 + len(boundary) :]
            if container.truncated:
                close = line.rstrip(b" \t").endswith(b"--")
            else:
                close = rest.startswith(b"--")
                if close:
                    rest = rest[2:]
                if rest.strip(b" \t"):
                    continue
            self._enter_boundary(index, close)
            return True
        return False

    def _enter_boundary(self, index: int, close: bool) -> None:
        if self._state == "header":
            self._end_headers(blank=False)
        elif self._body == "qp":
            self._qp.close(self.out)
        container = self._stack[index]
        del self._stack[index + 1 :]
        if close:
            self._stack.pop()
            self._state = "body"  # the epilogue
            self._body = "question"
        else:
            self._start_entity(is_message=False, digest=container.digest)

    def _start_entity(self, *, is_message: bool, digest: bool = False) -> None:
        self._state = "header"
        self._fields = []
        self._header_size = 0
        self._is_message = is_message
        # RFC 2046 5.1.5: parts of multipart/digest default to message/rfc822.
        self._default_type = "message/rfc822" if digest else "text/plain"

    def _header_line(self, data: bytes, first: bool, eol: bool) -> None:
        self._header_size += len(data) + 2
        if self._header_size > _HEADER_LIMIT:
            raise MessageRefused(_HEADER_SIZE)
        if not first:
            self._fields[-1][-1] += data
        elif not data and eol:
            self._end_headers(blank=True)
        elif data[:1] in (b" ", b"\t") and self._fields:
            self._fields[-1].append(data)
        elif _FIELD.match(data):
            self._fields.append([data])
        else:
            # Not a header field: Postfix takes it as the first body line (mime_state.c),
            # or, after an embedded message's header, the first line of that message.
            self._end_headers(blank=False)
            if self._state == "header":
                self._header_line(data, first, eol)
            else:
                self._body_line(data, eol)

    def _field(self, name: bytes) -> bytes | None:
        for lines in self._fields:
            match = _FIELD.match(lines[0])
            if match is not None and match.group(1).lower() == name:
                return b"".join(lines)[match.end() :]
        return None

    def _end_headers(self, *, blank: bool) -> None:
        if any(not line.isascii() for lines in self._fields for line in lines):
            raise MessageRefused(_HEADER_8BIT)
        declared_type = self._field(b"content-type")
        kind, boundary = (
            content_type(declared_type) if declared_type else (self._default_type, None)
        )
        declared_cte = self._field(b"content-transfer-encoding")
        cte = "" if declared_cte is None else transfer_encoding(declared_cte)
        added: list[bytes] = []
        if cte in _ENCODED:
            entity = "leaf"
        elif kind.startswith("multipart/") and boundary is not None:
            entity = "multipart"
        elif kind in _CONTAINERS:
            entity = "message"
        else:
            entity = "leaf"
        if entity == "leaf" and cte not in _ENCODED:
            added.append(b"Content-Transfer-Encoding: quoted-printable")
            if self._is_message and self._field(b"mime-version") is None:
                added.append(b"MIME-Version: 1.0")
                if declared_type is None:
                    # Now MIME, the text would read as us-ascii (RFC 2045 5.2); its 8-bit octets
                    # are in a charset nobody declared, which RFC 1428 names unknown-8bit.
                    added.append(b"Content-Type: text/plain; charset=unknown-8bit")
        elif entity != "leaf" and cte in ("8bit", "binary"):
            added.append(b"Content-Transfer-Encoding: 7bit")
        for lines in self._fields:
            if added and _is_cte(lines[0]):
                continue  # rule 8.5 (b): the old field goes, the new one ends the block
            for line in lines:
                self.out.append(line)
                self.out.append(b"\r\n")
        for line in added:
            self.out.append(line)
            self.out.append(b"\r\n")
        if blank or added:
            self.out.append(b"\r\n")
        self._fields = []
        self._state = "body"
        if entity == "leaf":
            self._body = _LEAF_BODY.get(cte, "qp")
            return
        if len(self._stack) >= self._nesting_limit:
            raise MessageRefused(_NESTING)
        if entity == "multipart":
            assert boundary is not None
            limit = self._boundary_limit
            self._stack.append(
                _Container(boundary[:limit], len(boundary) > limit, kind == "multipart/digest")
            )
            self._body = "question"  # the preamble
        else:
            self._stack.append(_Container(None))
            self._start_entity(is_message=True)

    def _body_line(self, data: bytes, eol: bool) -> None:
        if self._body == "qp":
            self._qp.feed(data, eol, self.out)
            return
        if self._body == "escape":
            self.out.append(_EIGHTBIT.sub(_escape, data))
        else:
            self.out.append(data.translate(_TO_QUESTION))
        if eol:
            self.out.append(b"\r\n")


def _is_cte(line: bytes) -> bool:
    match = _FIELD.match(line)
    return match is not None and match.group(1).lower() == b"content-transfer-encoding"


def downgrade_8bit(
    chunks: Iterable[bytes],
    *,
    mime_nesting_limit: int = 100,
    mime_boundary_length_limit: int = 2048,
) -> Iterator[bytes]:
    """Convert message chunks to 7-bit MIME (rule 8.5); raises `MessageRefused` on hostile MIME.

    Output lines end in CRLF and hold only octets below 128; feed them to a `BodyEncoder`.
    """
    for name, value in (
        ("mime_nesting_limit", mime_nesting_limit),
        ("mime_boundary_length_limit", mime_boundary_length_limit),
    ):
        if type(value) is not int or value < 1:
            raise LocalProtocolError(f"{name}: expected a positive int, got {value!r}")
    return _downgrade(chunks, _Downgrader(mime_nesting_limit, mime_boundary_length_limit))


def _downgrade(chunks: Iterable[bytes], machine: _Downgrader) -> Iterator[bytes]:
    for chunk in chunks:
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise LocalProtocolError(f"chunks: expected bytes, got {type(chunk).__name__}")
        machine.feed(bytes(chunk))
        if machine.out:
            yield b"".join(machine.out)
            machine.out.clear()
    machine.finish()
    if machine.out:
        yield b"".join(machine.out)
