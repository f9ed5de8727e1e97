"""``smtp_generic_maps``: address rewriting on output, envelope and headers (rule 6.7).

Postfix smtp_map11.c and mail_addr_map.c, with generic(5)'s search order. A non-empty
envelope address, and each address in the sender and recipient headers of the top-level
header block (`ADDRESS_HEADERS`), is looked up:

1. ``user@domain`` in every table, in order (pattern tables and callables see only this);
2. ``user`` in the fixed-key tables (``inline:``, ``texthash:``, ``static:``, mappings)
   when ``domain`` is local: ``$myhostname``, ``localhost``, ``localhost.$mydomain``, or an
   address literal of ``inet_interfaces``/``proxy_interfaces`` (Postfix's default
   ``mydestination``; smtp(8) has no ``mydestination`` parameter of its own);
3. ``@domain`` in the fixed-key tables.

A result ``@otherdomain`` keeps the user; a result without ``@`` gets ``@$myhostname``
(``$myorigin``'s default); of a list of addresses the first is used, as smtp(8) does. A
header address is replaced where it stands, so display names, comments and folding are kept
(Postfix rebuilds such a header, which can move its line breaks). Results are checked when
used: one that is not an address is a `LocalProtocolError` naming the table, before any byte
of the delivery is sent.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass

from .._errors import LocalProtocolError
from ..config import ClientConfig
from ..tables import Lookup, MappingTable, StaticTable, split_list

__all__ = ["ADDRESS_HEADERS", "GenericMaps"]

ADDRESS_HEADERS = frozenset(
    {
        "apparently-to", "bcc", "cc", "disposition-notification-to", "errors-to", "from",
        "mail-followup-to", "reply-to", "resent-bcc", "resent-cc", "resent-from",
        "resent-reply-to", "resent-sender", "resent-to", "return-path", "return-receipt-to",
        "sender", "to",
    }
)  # fmt: skip
"""Header names whose addresses are rewritten: Postfix header_opts.c's HDR_OPT_SENDER and
HDR_OPT_RECIP headers."""

# RFC 5322 3.2.3 atext: a local part made of such atoms joined by dots needs no quotes.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\x80-\U0010ffff-]+"
_DOT_ATOM = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*")
_TOKEN = re.compile(
    r"""(?P<ws>[ \t\r\n]+)
      | (?P<quoted>"(?:[^"\\]|\\.)*"?)
      | (?P<literal>\[(?:[^\]\\]|\\.)*\]?)
      | (?P<special>[<>@,;:.])
      | (?P<atom>[^ \t\r\n()<>@,;:.\\"\[\]]+)
      | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    start: int
    end: int


def _tokens(text: str) -> Iterator[_Token]:
    """RFC 5322 tokens of a header value; comments (nested, with escapes) are one token."""
    i, n = 0, len(text)
    while i < n:
        if text[i] == "(":
            depth, j = 0, i
            while j < n:
                c = text[j]
                if c == "\\":
                    j += 2
                    continue
                depth += c == "("
                depth -= c == ")"
                j += 1
                if depth == 0:
                    break
            yield _Token("comment", text[i:j], i, j)
            i = j
            continue
        match = _TOKEN.match(text, i)
        assert match is not None and match.lastgroup is not None  # "other" takes anything
        yield _Token(match.lastgroup, match.group(), i, match.end())
        i = match.end()


def _unquote(word: str) -> str:
    if word.startswith('"'):
        return re.sub(r"\\(.)", r"\1", word[1:-1] if word.endswith('"') else word[1:])
    return word


def _quote_local(local: str) -> str:
    """Postfix quote_822_local(): quotes only a local part that is not a dot-atom."""
    if _DOT_ATOM.fullmatch(local):
        return local
    return '"' + re.sub(r'(["\\])', r"\\\1", local) + '"'


def _address_spans(value: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, internal address) of each mailbox address in a header value.

    An address is the addr-spec inside ``<...>`` (a source route before it is skipped), or
    a bare ``local@domain`` segment; group names and display names are never addresses.
    """
    significant = [t for t in _tokens(value) if t.kind not in ("ws", "comment")]
    segment: list[_Token] = []
    angle: list[_Token] | None = None
    saw_angle = False
    for token in [*significant, _Token("special", ",", len(value), len(value))]:
        if angle is not None:
            if token.text == ">" and token.kind == "special":
                route = [i for i, t in enumerate(angle) if t.text == ":" and t.kind == "special"]
                spec = angle[route[-1] + 1 :] if route else angle
                found = _internal(spec)
                if found is not None:
                    yield spec[0].start, spec[-1].end, found
                angle = None
            else:
                angle.append(token)
            continue
        if token.kind == "special" and token.text == "<":
            angle, saw_angle = [], True
        elif token.kind == "special" and token.text in ",;:":
            if not saw_angle and segment and token.text != ":":
                found = _internal(segment)
                if found is not None:
                    yield segment[0].start, segment[-1].end, found
            segment, saw_angle = [], False
        else:
            segment.append(token)


def _internal(spec: list[_Token]) -> str | None:
    """The internal (unquoted) form of an addr-spec's tokens, or None if it is not one."""
    if not spec:
        return None
    words: list[str] = []
    expect_word = True
    for token in spec:
        if token.kind == "special" and token.text in ".@":
            if expect_word and token.text == ".":
                return None
            words.append(token.text)
            expect_word = True
        elif token.kind in ("atom", "quoted", "literal") and expect_word:
            words.append(_unquote(token.text) if token.kind == "quoted" else token.text)
            expect_word = False
        else:
            return None
    address = "".join(words)
    if address.count("@") > 1 or address.endswith("@") or address.startswith("@"):
        return None
    return address


@dataclass(frozen=True)
class GenericMaps:
    """``smtp_generic_maps`` with the names that make a domain local (module docstring)."""

    maps: Lookup[str]
    local_domains: frozenset[str]
    origin: str

    @classmethod
    def from_config(cls, config: ClientConfig) -> GenericMaps | None:
        """The rewriting `config` asks for, or None when ``generic_maps`` is empty."""
        if not config.generic_maps:
            return None
        host = config.myhostname.lower().rstrip(".")
        domain = host.partition(".")[2]
        local = {host, "localhost"}
        if domain:
            local.add("localhost." + domain)
        for literal in config.inet_interfaces + config.proxy_interfaces:
            parsed = ipaddress.ip_address(literal)
            local.add(f"[{parsed}]" if parsed.version == 4 else f"[ipv6:{parsed}]")
        return cls(config.generic_maps, frozenset(local), host)

    def _find(self, address: str) -> str | None:
        user, at, domain = address.rpartition("@")
        fixed_keys: list[str] = []
        if at:
            if domain.lower().rstrip(".") in self.local_domains:
                fixed_keys.append(user)
            fixed_keys.append("@" + domain)
        for table in self.maps.tables:
            found = table.lookup(address)
            if found is not None:
                return str(found)
        for key in fixed_keys:
            for table in self.maps.tables:
                if isinstance(table, MappingTable | StaticTable):
                    found = table.lookup(key)
                    if found is not None:
                        return str(found)
        return None

    def rewrite(self, address: str) -> str:
        """`address` (internal form) as the tables map it; unchanged when none has it."""
        if not address:
            return address  # the null sender is never rewritten
        found = self._find(address)
        if found is None:
            return address
        items = split_list(found)
        result = _unquote_local(items[0]) if items else ""
        if result.startswith("@"):
            result = address.rpartition("@")[0] + result if "@" in address else address + result
        elif "@" not in result:
            result = f"{result}@{self.origin}"
        if not result or any(c in result for c in "\r\n\0") or result.endswith("@"):
            raise LocalProtocolError(
                f"smtp_generic_maps: {found!r} for {address!r} is not an address"
            )
        return result

    def rewrite_header(self, name: str, value: str) -> str | None:
        """`value` of header `name` with its addresses rewritten, or None if none changed."""
        if name.lower() not in ADDRESS_HEADERS:
            return None
        out: list[str] = []
        last = 0
        changed = False
        for start, end, address in _address_spans(value):
            new = self.rewrite(address)
            if new == address:
                continue
            local, at, domain = new.rpartition("@")
            out.append(value[last:start])
            out.append(_quote_local(local) + at + domain if at else _quote_local(new))
            last = end
            changed = True
        if not changed:
            return None
        out.append(value[last:])
        return "".join(out)


def _unquote_local(address: str) -> str:
    """A table result in external form (``"a b"@x``) in internal form (``a b@x``)."""
    local, at, domain = address.rpartition("@")
    if at and local.startswith('"'):
        return _unquote(local) + at + domain
    return address
