"""What a server offers: its positive EHLO/LHLO reply parsed into `Capabilities`.

Parsing follows Postfix ``smtp_helo()`` (rules 4.1-4.5) with these decisions, each tested in
``tests/test_capabilities.py``:

- The first word of the first line is the server's name, never a capability, whatever it
  says (RP-21: ``250-STARTTLS`` then ``250 SIZE 10`` offers no STARTTLS). The rest of the
  first line is greeting text and is ignored.
- On every later line, leading spaces and TABs are skipped; the keyword ends at a space, a TAB
  or ``=`` (the old ``AUTH=PLAIN LOGIN`` form, rule 4.1); the rest, split on spaces and TABs,
  are its parameters. Keywords match whole and case-insensitively: ``XSTARTTLS`` is not
  ``STARTTLS`` and ``AUTH PLAINX`` offers no ``PLAIN`` (RP-21; nodemailer matched substrings).
- A line whose keyword is not an RFC 5321 4.1.1.1 ehlo-keyword, or that holds a control
  character other than TAB, is ignored (RP-21 ``250-AUTH\\x00``). An empty line (Postfix
  smtp-sink ends its reply with ``"250 "``) is ignored too. Unknown keywords are kept.
- A keyword on several lines keeps the parameters of all of them, in order, without
  duplicates: several AUTH lines, and AUTH with AUTH=, are merged (rule 4.3).
- ``discard`` drops keywords as if the server had not sent them (Postfix
  ``smtp_discard_ehlo_keywords``, rule 4.5); names are case-insensitive and unknown names are
  harmless.
- SIZE (RFC 1870): ``size`` is None without SIZE. With SIZE, it is the limit when the (last)
  parameter is 1 to 20 ASCII digits (RFC 1870 4 size-value), else 0, which, like an advertised
  ``SIZE 0``, means "no fixed limit": a missing, negative, non-numeric or over-long value never
  becomes a limit and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ._abnf import ESMTP_KEYWORD
from ._errors import LocalProtocolError
from .replies import Reply

__all__ = ["Capabilities"]

# RFC 1870 4: size-value = 1*20DIGIT, ASCII digits only (str.isdigit() accepts others, and
# int() of a huge string would raise).
_SIZE_VALUE = re.compile(r"[0-9]{1,20}")
# Rule 4.1: the keyword ends at SP, TAB or "=".
_KEYWORD_END = re.compile(r"[ \t=]")
# Controls other than TAB; a line holding one is ignored (RP-21).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def _parse_line(line: str) -> tuple[str, tuple[str, ...]] | None:
    line = line.lstrip(" \t")
    if not line or _CONTROL.search(line):
        return None
    end = _KEYWORD_END.search(line)
    keyword, rest = (line, "") if end is None else (line[: end.start()], line[end.end() :])
    if not ESMTP_KEYWORD.fullmatch(keyword):
        return None
    return keyword.upper(), tuple(rest.split())


_PARSED: dict[tuple[Reply, frozenset[str]], Capabilities] = {}
"""EHLO/LHLO replies parsed before, with the keywords discarded (`Capabilities.from_reply`)."""
_PARSED_LIMIT = 64
_PARSED_OCTETS = 2048


@dataclass(frozen=True)
class Capabilities:
    """The server's name and ESMTP keywords from a positive EHLO or LHLO reply."""

    domain: str
    """The first word of the first line: the name the server gives itself (rule 4.2)."""
    keywords: Mapping[str, tuple[str, ...]] = field(hash=False)
    """Upper-case keyword -> its parameters as sent, in order; read-only."""

    def __post_init__(self) -> None:
        if not isinstance(self.domain, str):
            raise LocalProtocolError(f"domain: expected str, got {self.domain!r}")
        if not isinstance(self.keywords, Mapping):
            raise LocalProtocolError(f"keywords: expected a mapping, got {self.keywords!r}")
        keywords: dict[str, tuple[str, ...]] = {}
        for keyword, parameters in self.keywords.items():
            if not isinstance(keyword, str) or not ESMTP_KEYWORD.fullmatch(keyword):
                raise LocalProtocolError(f"keywords: not an ESMTP keyword: {keyword!r}")
            if not isinstance(parameters, tuple) or not all(isinstance(p, str) for p in parameters):
                raise LocalProtocolError(f"keywords: parameters of {keyword} must be a tuple")
            keywords[keyword.upper()] = parameters
        object.__setattr__(self, "keywords", MappingProxyType(keywords))

    @classmethod
    def from_reply(cls, reply: Reply, *, discard: Iterable[str] = ()) -> Capabilities:
        """Parse a positive EHLO/LHLO reply, ignoring the keywords named in `discard`."""
        if not isinstance(reply, Reply) or not reply.is_positive:
            raise LocalProtocolError(f"reply: expected a positive EHLO/LHLO reply, got {reply!r}")
        if isinstance(discard, str):
            raise LocalProtocolError("discard: expected an iterable of keywords, not one str")
        dropped = set()
        for name in discard:
            if not isinstance(name, str):
                raise LocalProtocolError(f"discard: expected keyword names, got {name!r}")
            dropped.add(name.upper())
        # A server sends the same EHLO reply to every connection: parsed once (a Capabilities
        # is immutable). Only short replies are kept, a few of them, so a peer cannot make
        # this hold much.
        key = (reply, frozenset(dropped))
        parsed = _PARSED.get(key)
        if parsed is None:
            parsed = cls._parse(reply, dropped)
            if sum(map(len, reply.lines)) <= _PARSED_OCTETS:
                if len(_PARSED) >= _PARSED_LIMIT:
                    _PARSED.clear()
                _PARSED[key] = parsed
        return parsed

    @classmethod
    def _parse(cls, reply: Reply, dropped: set[str]) -> Capabilities:
        words = reply.lines[0].split(maxsplit=1)
        domain = words[0] if words else ""
        keywords: dict[str, tuple[str, ...]] = {}
        for line in reply.lines[1:]:
            parsed = _parse_line(line)
            if parsed is None or parsed[0] in dropped:
                continue
            keyword, parameters = parsed
            merged = keywords.get(keyword, ()) + parameters
            keywords[keyword] = tuple(dict.fromkeys(merged))
        return cls(domain, keywords)

    def __contains__(self, keyword: object) -> bool:
        """Whether `keyword` was offered, case-insensitively."""
        return isinstance(keyword, str) and keyword.upper() in self.keywords

    @property
    def pipelining(self) -> bool:
        """PIPELINING (RFC 2920)."""
        return "PIPELINING" in self.keywords

    @property
    def eightbitmime(self) -> bool:
        """8BITMIME (RFC 6152)."""
        return "8BITMIME" in self.keywords

    @property
    def dsn(self) -> bool:
        """DSN (RFC 3461)."""
        return "DSN" in self.keywords

    @property
    def smtputf8(self) -> bool:
        """SMTPUTF8 (RFC 6531)."""
        return "SMTPUTF8" in self.keywords

    @property
    def chunking(self) -> bool:
        """CHUNKING, the BDAT command (RFC 3030)."""
        return "CHUNKING" in self.keywords

    @property
    def binarymime(self) -> bool:
        """BINARYMIME (RFC 3030)."""
        return "BINARYMIME" in self.keywords

    @property
    def starttls(self) -> bool:
        """STARTTLS (RFC 3207)."""
        return "STARTTLS" in self.keywords

    @property
    def enhancedstatuscodes(self) -> bool:
        """ENHANCEDSTATUSCODES (RFC 2034)."""
        return "ENHANCEDSTATUSCODES" in self.keywords

    @property
    def size(self) -> int | None:
        """The SIZE limit in octets; None: no SIZE; 0: SIZE without a valid fixed limit."""
        parameters = self.keywords.get("SIZE")
        if parameters is None:
            return None
        if parameters and _SIZE_VALUE.fullmatch(parameters[-1]):
            return int(parameters[-1])
        return 0

    @property
    def auth_mechanisms(self) -> frozenset[str]:
        """The SASL mechanisms of every AUTH and AUTH= line, upper-case (rule 4.3)."""
        return frozenset(m.upper() for m in self.keywords.get("AUTH", ()))

    @property
    def xforward(self) -> frozenset[str]:
        """The XFORWARD attribute names offered, upper-case (rule 4.3)."""
        return frozenset(a.upper() for a in self.keywords.get("XFORWARD", ()))
