"""Postfix lookup tables as values: ``inline:``, ``static:``, ``texthash:``, ``regexp:``, ``pcre:``.

Every ``*_maps`` and ``*_checks`` parameter of smtp(8) names one or more lookup tables
(``texthash:/etc/postfix/sasl_passwd, regexp:/etc/postfix/policy``). This module turns such a
value into a :class:`Lookup`, searched the way Postfix searches it: the tables in order, the
first one with a result wins. Embedders may pass a Python mapping or a callable instead.

The core never reads a file. A table that lives in a file (``texthash:``, ``regexp:``,
``pcre:``, and ``/file/name`` items of match lists) is opened through a *reader*, a callable
that returns the file's text for its path; the adapters supply one
(:func:`smtpproto.adapters.postfix.read_file`), ``ClientConfig.from_postconf`` takes it as
``reader=``, and without one such a table is a `LocalProtocolError` naming it. Binary tables
(``hash:``, ``lmdb:``, ``cdb:``, ``btree:``, ``dbm:``) are refused with a hint to name their
source file as ``texthash:`` instead: the library cannot read Berkeley DB or LMDB files, but
their source is the same text ``postmap`` reads.

``regexp:`` and ``pcre:`` use Python's `re`. Postfix's rule syntax is kept (delimiters,
flags, ``!`` negation, ``if``/``endif``, ``$1`` substitution); the patterns themselves are
translated where the dialects differ (POSIX ``[[:alpha:]]`` classes, PCRE ``\\Q...\\E``,
``(?<name>...)``, the ``E`` and ``U`` flags, and basic POSIX syntax when ``x`` turns
extended syntax off). Python picks the leftmost alternative where POSIX takes the longest
match, which can change what ``$1`` holds, never whether a rule matches.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, overload

from ._errors import LocalProtocolError

__all__ = [
    "BINARY_TYPES",
    "CallableTable",
    "HashTable",
    "KeyLookup",
    "Lookup",
    "MappingTable",
    "MatchList",
    "PatternTable",
    "Reader",
    "StaticTable",
    "Table",
    "logical_lines",
    "open_table",
    "split_list",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class KeyLookup(Protocol[T_co]):
    """Anything with a ``get(key)``: a `Lookup`, or a plain mapping (for callers of the
    engine's policy functions)."""

    def get(self, key: str, /) -> T_co | None:
        """The value for `key`, or ``None``."""
        ...


Reader = Callable[[str], str]
"""Returns the text of the file at the given absolute path (the adapters supply one)."""

BINARY_TYPES = frozenset({"hash", "btree", "lmdb", "cdb", "dbm", "sdbm"})
"""Table types built by ``postmap`` into a binary file; their source file is ``texthash:``."""

# Postfix tables the library cannot open at all (network services, daemons, other formats).
_UNSUPPORTED = frozenset(
    {
        "ldap", "mysql", "pgsql", "sqlite", "memcache", "tcp", "socketmap", "nis", "nisplus",
        "netinfo", "environ", "unix", "fail", "randmap", "pipemap", "unionmap", "internal",
        "cidr",
    }
)  # fmt: skip
_TABLE_TYPE = re.compile(r"([a-z][a-z0-9_]*):(.*)", re.ASCII | re.DOTALL)


# -- text helpers shared by main.cf and table files ----------------------------------------


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Postfix ``readllines()``: (first line number, logical line) for every logical line.

    Blank lines and lines whose first non-space character is ``#`` are skipped; a line that
    starts with whitespace continues the previous one (its text is appended as it is).
    """
    current: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        if raw[:1].isspace():
            if current:
                current.append(raw)
                continue
            # Postfix warns and ignores a continuation without text before it.
            continue
        if current:
            yield start, "".join(current)
        current, start = [raw], number
    if current:
        yield start, "".join(current)


def _balanced(text: str, start: int) -> int:
    """Index just past the ``}`` that closes the ``{`` at `start`."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return i + 1
    raise LocalProtocolError(f"unbalanced '{{' in {text!r}")


def split_list(text: str) -> tuple[str, ...]:
    """Split a Postfix list value on commas and whitespace, keeping ``{...}`` groups whole.

    ``a, b c`` -> ``(a, b, c)``; ``inline:{ x=1, y=2 }, d`` -> ``(inline:{ x=1, y=2 }, d)``.
    A whole item in braces loses them (``{ a b }`` -> ``a b``), as Postfix's
    ``mystrtokq()`` with ``extpar()`` does.
    """
    items: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i] in ", \t\r\n"):
            i += 1
        if i >= n:
            break
        begin = i
        while i < n and text[i] not in ", \t\r\n":
            if text[i] == "{":
                i = _balanced(text, i)
            elif text[i] == "}":
                raise LocalProtocolError(f"unbalanced '}}' in {text!r}")
            else:
                i += 1
        item = text[begin:i]
        if item.startswith("{") and item.endswith("}"):
            item = item[1:-1].strip()
        items.append(item)
    return tuple(items)


def _strip_braces(text: str) -> str:
    text = text.strip()
    if text.startswith("{"):
        if _balanced(text, 0) != len(text):
            raise LocalProtocolError(f"text after the closing '}}' in {text!r}")
        return text[1:-1].strip()
    return text


# -- tables --------------------------------------------------------------------------------


class Table:
    """One lookup table: `lookup` returns the value for a key, or ``None``."""

    spec: str
    """How the table was named (``texthash:/etc/postfix/x``), for messages."""

    def lookup(self, key: str) -> Any:
        """The value for `key`, or ``None`` when the table has no entry for it."""
        raise NotImplementedError

    def results(self) -> tuple[Any, ...] | None:
        """Every value the table can return, when that is known in advance; else ``None``."""
        return None

    def describe(self, *, redact: bool = False) -> str:
        """The table for humans; with `redact`, no value it holds is shown."""
        return self.spec


@dataclass(frozen=True)
class MappingTable(Table):
    """A Python mapping as a table; keys compare case-insensitively (Postfix's fixed-string
    tables fold case)."""

    entries: tuple[tuple[str, Any], ...]
    spec: str = "mapping"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> MappingTable:
        """A table holding `mapping`'s items; the first of two keys that fold alike wins."""
        seen: dict[str, Any] = {}
        for key, value in mapping.items():
            if not isinstance(key, str):
                raise LocalProtocolError(f"table keys must be strings, got {key!r}")
            seen.setdefault(key.lower(), (key, value))
        return cls(tuple(seen.values()))

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded", {k.lower(): v for k, v in reversed(self.entries)})

    def lookup(self, key: str) -> Any:
        """The value stored under `key` (case-insensitive), or ``None``."""
        folded: dict[str, Any] = self.__dict__["_folded"]
        return folded.get(key.lower())

    def results(self) -> tuple[Any, ...]:
        """Every stored value."""
        return tuple(v for _, v in self.entries)

    def keys(self) -> tuple[str, ...]:
        """The keys as given."""
        return tuple(k for k, _ in self.entries)

    def describe(self, *, redact: bool = False) -> str:
        """The entries (a file table: its name); with `redact`, keys only."""
        if self.spec.startswith("texthash:"):
            return self.spec
        shown = {k: "<redacted>" if redact else v for k, v in self.entries}
        if self.spec == "mapping":
            return repr(shown)
        return f"{self.spec.partition(':')[0]}:{shown!r}"


@dataclass(frozen=True)
class HashTable(MappingTable):
    """``inline:{...}`` or ``texthash:/path``: fixed keys, case-folded."""


@dataclass(frozen=True)
class StaticTable(Table):
    """``static:value``: every key finds `value`."""

    value: str
    spec: str = "static"

    def lookup(self, key: str) -> str:
        """Always `value`."""
        return self.value

    def results(self) -> tuple[str, ...]:
        """``(value,)``."""
        return (self.value,)


@dataclass(frozen=True, eq=False)
class CallableTable(Table):
    """A callable as a table: ``function(key)`` returns the value or ``None``."""

    function: Callable[[str], Any]
    spec: str = "callable"

    def lookup(self, key: str) -> Any:
        """Whatever the callable returns for `key`."""
        return self.function(key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CallableTable) and other.function is self.function

    def __hash__(self) -> int:
        return id(self.function)


# -- regexp: and pcre: -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Pattern:
    regex: re.Pattern[str]
    negated: bool

    def search(self, key: str) -> re.Match[str] | bool | None:
        found = self.regex.search(key)
        if self.negated:
            return found is None
        return found


@dataclass(frozen=True)
class _Rule:
    patterns: tuple[_Pattern, ...]  # all must hold; the first one's groups feed $n
    result: str | None  # None: an "if" whose body is `body`
    body: tuple[_Rule, ...] = ()
    line: int = 0


_SUBSTITUTION = re.compile(r"\$(?:\{([^}]*)\}|\(([^)]*)\)|([A-Za-z0-9_]+)|(\$)|(.?))", re.DOTALL)


def _expand_result(result: str, found: re.Match[str] | None) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(4):
            return "$"
        name = match.group(1) or match.group(2) or match.group(3) or ""
        group = int(name)
        assert found is not None  # checked when the table was read
        return found.group(group) or ""

    return _SUBSTITUTION.sub(replace, result)


def _check_result(result: str, groups: int | None, where: str) -> None:
    for match in _SUBSTITUTION.finditer(result):
        if match.group(4):
            continue
        name = match.group(1) or match.group(2) or match.group(3)
        if name is None:
            raise LocalProtocolError(f"{where}: '$' must be followed by a number or '$'")
        if not name.isdigit():
            raise LocalProtocolError(f"{where}: ${name}: only $1..$n substitute here")
        if groups is None:
            raise LocalProtocolError(f"{where}: a negated pattern has no $n to substitute")
        if int(name) > groups:
            raise LocalProtocolError(f"{where}: ${name}: the pattern has {groups} group(s)")


@dataclass(frozen=True)
class PatternTable(Table):
    """``regexp:`` or ``pcre:``: rules tried in order, the first match's result wins."""

    rules: tuple[_Rule, ...]
    spec: str
    substitutes: bool

    def lookup(self, key: str) -> str | None:
        """The (substituted) result of the first rule that matches `key`, or ``None``."""
        return self._search(self.rules, key)

    def _search(self, rules: tuple[_Rule, ...], key: str) -> str | None:
        for rule in rules:
            found: re.Match[str] | None = None
            for n, pattern in enumerate(rule.patterns):
                outcome = pattern.search(key)
                if not outcome:
                    break
                if n == 0 and isinstance(outcome, re.Match):
                    found = outcome
            else:
                if rule.result is None:
                    inner = self._search(rule.body, key)
                    if inner is not None:
                        return inner
                    continue
                return _expand_result(rule.result, found)
        return None

    def results(self) -> tuple[str, ...] | None:
        """Every result, when none substitutes ``$n``; else ``None``."""
        if self.substitutes:
            return None
        out: list[str] = []

        def walk(rules: tuple[_Rule, ...]) -> None:
            for rule in rules:
                if rule.result is None:
                    walk(rule.body)
                else:
                    out.append(rule.result)

        walk(self.rules)
        return tuple(out)


_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "a-zA-Z0-9",
    "upper": "A-Z",
    "lower": "a-z",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~",
    "xdigit": "0-9A-Fa-f",
    "cntrl": r"\x00-\x1f\x7f",
    "print": r" -~",
    "graph": r"!-~",
    "word": r"\w",
}
_BRE_SPECIAL = frozenset("(){}|+?")
_INTERVAL_END = re.compile(r"\{\d+(?:,\d*)?\}\Z")


def _is_quantifier(c: str, out: list[str]) -> bool:
    if c in "*+":
        return True
    if c == "?":
        return out[-2:-1] != ["("]  # "(?" opens group syntax
    return c == "}" and _INTERVAL_END.search("".join(out[-16:])) is not None


def _translate(pattern: str, *, basic: bool, endonly: bool, ungreedy: bool, pcre: bool) -> str:
    """Rewrite a POSIX (regexp:) or PCRE (pcre:) pattern into Python `re` syntax."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if pcre and nxt == "Q":
                end = pattern.find("\\E", i + 2)
                literal = pattern[i + 2 :] if end < 0 else pattern[i + 2 : end]
                out.append(re.escape(literal))
                i = n if end < 0 else end + 2
                continue
            if basic and nxt in _BRE_SPECIAL:
                out.append(nxt)  # BRE: \( \) \{ \} are the operators
            elif not pcre and nxt in "<>":
                out.append(r"\b")  # GNU regex word boundaries
            else:
                out.append(c + nxt)
            i += 2
            continue
        if c == "[":
            i, text = _bracket(pattern, i)
            out.append(text)
            continue
        if basic and c in _BRE_SPECIAL:
            out.append("\\" + c)  # BRE: a plain ( ) { } | + ? is literal
            i += 1
            continue
        if pcre and pattern.startswith("(?<", i) and pattern[i + 3 : i + 4] not in ("=", "!"):
            out.append("(?P<")  # PCRE's named group
            i += 3
            continue
        if endonly and c == "$":
            out.append(r"\Z")
            i += 1
            continue
        out.append(c)
        i += 1
        if ungreedy and _is_quantifier(c, out):
            # PCRE U swaps greediness: "x*" becomes lazy, "x*?" greedy, "x*+" stays possessive.
            following = pattern[i : i + 1]
            if following == "?":
                i += 1
            elif following == "+":
                out.append("+")
                i += 1
            else:
                out.append("?")
    return "".join(out)


def _bracket(pattern: str, start: int) -> tuple[int, str]:
    """A bracket expression from `start`; POSIX classes spelled out. (end index, text)"""
    out = ["["]
    i = start + 1
    if pattern[i : i + 1] == "^":
        out.append("^")
        i += 1
    if pattern[i : i + 1] == "]":
        out.append(r"\]")
        i += 1
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("[:", i):
            end = pattern.find(":]", i + 2)
            name = pattern[i + 2 : end] if end > 0 else ""
            if name not in _POSIX_CLASSES:
                raise LocalProtocolError(f"unknown character class [:{name}:]")
            out.append(_POSIX_CLASSES[name])
            i = end + 2
            continue
        if c == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if c == "[":
            out.append(r"\[")
            i += 1
            continue
        out.append(c)
        i += 1
        if c == "]":
            return i, "".join(out)
    raise LocalProtocolError("unterminated '[' bracket expression")


# Flags each dialect accepts, with their defaults (regexp_table(5), pcre_table(5)).
_REGEXP_DEFAULTS = {"i": True, "m": False, "x": True}
_PCRE_DEFAULTS = {
    "i": True, "m": False, "s": True, "x": False, "A": False, "E": False, "U": False, "X": False,
}  # fmt: skip


def _read_pattern(text: str, where: str, pcre: bool) -> tuple[_Pattern, str, int | None]:
    """One ``!/pattern/flags`` from the start of `text`; (pattern, rest, groups or None)."""
    negated = False
    i = 0
    while i < len(text) and (text[i] == "!" or text[i].isspace()):
        negated = negated != (text[i] == "!")
        i += 1
    if i >= len(text):
        raise LocalProtocolError(f"{where}: no pattern")
    delimiter = text[i]
    if delimiter.isalnum() or delimiter in "\\":
        raise LocalProtocolError(f"{where}: {delimiter!r} cannot delimit a pattern")
    j = i + 1
    while j < len(text) and text[j] != delimiter:
        j += 2 if text[j] == "\\" else 1
    if j >= len(text):
        raise LocalProtocolError(f"{where}: no closing {delimiter!r}")
    body = text[i + 1 : j]
    flags = dict(_PCRE_DEFAULTS if pcre else _REGEXP_DEFAULTS)
    k = j + 1
    while k < len(text) and not text[k].isspace() and text[k] != "!":
        letter = text[k]
        if letter not in flags:
            raise LocalProtocolError(f"{where}: unknown flag {letter!r}")
        flags[letter] = not flags[letter]
        k += 1
    options = re.IGNORECASE if flags["i"] else 0
    if flags["m"]:
        options |= re.MULTILINE
    if pcre:
        if flags["s"]:
            options |= re.DOTALL
        if flags["x"]:
            options |= re.VERBOSE
    try:
        translated = _translate(
            body,
            basic=not pcre and not flags["x"],
            endonly=pcre and flags["E"] and not flags["m"],
            ungreedy=pcre and flags["U"],
            pcre=pcre,
        )
    except LocalProtocolError as error:
        raise LocalProtocolError(f"{where}: bad pattern {body!r}: {error}") from None
    if pcre and flags["A"]:
        translated = r"\A(?:" + translated + ")"
    try:
        regex = re.compile(translated, options)
    except re.error as error:
        raise LocalProtocolError(f"{where}: bad pattern {body!r}: {error}") from None
    return _Pattern(regex, negated), text[k:], None if negated else regex.groups


def _parse_rules(text: str, spec: str, pcre: bool) -> tuple[tuple[_Rule, ...], bool]:
    stack: list[tuple[list[_Rule], tuple[_Pattern, ...], int]] = []
    rules: list[_Rule] = []
    substitutes = False
    for line, logical in logical_lines(text):
        where = f"{spec}, line {line}"
        word = logical.split(None, 1)[0].lower()
        if word == "endif":
            if not stack or logical.strip().lower() != "endif":
                raise LocalProtocolError(f"{where}: 'endif' without 'if'")
            outer, patterns, start = stack.pop()
            outer.append(_Rule(patterns, None, tuple(rules), start))
            rules = outer
            continue
        if word == "if" or logical.lower().startswith(("if/", "if!")):
            pattern, rest, _ = _read_pattern(logical[2:], where, pcre)
            if rest.strip():
                raise LocalProtocolError(f"{where}: text after the 'if' pattern")
            stack.append((rules, (pattern,), line))
            rules = []
            continue
        first, rest, groups = _read_pattern(logical, where, pcre)
        patterns = (first,)
        if rest.startswith("!"):
            # The old form "/pattern1/!/pattern2/ result": pattern1 and not pattern2.
            second, rest, _ = _read_pattern(rest, where, pcre)
            patterns += (second,)
        result = rest.strip()
        if not result:
            raise LocalProtocolError(f"{where}: no result after the pattern")
        _check_result(result, groups, where)
        substitutes = substitutes or "$" in result.replace("$$", "")
        rules.append(_Rule(patterns, result, (), line))
    if stack:
        raise LocalProtocolError(f"{spec}: 'if' on line {stack[-1][2]} has no 'endif'")
    return tuple(rules), substitutes


def _pattern_table(kind: str, name: str, reader: Reader | None) -> PatternTable:
    pcre = kind == "pcre"
    spec = f"{kind}:{name}"
    if name.startswith("{"):
        # Postfix >= 3.7 inline form: regexp:{ {rule-1}, {rule-2} }, one rule per line.
        text = "\n".join(split_list(_strip_braces(name)))
    else:
        text = _read(reader, spec, name)
    rules, substitutes = _parse_rules(text, spec, pcre)
    return PatternTable(rules, spec, substitutes)


# -- opening -------------------------------------------------------------------------------


def _read(reader: Reader | None, spec: str, path: str) -> str:
    if not path.startswith("/"):
        raise LocalProtocolError(f"{spec}: a table file needs an absolute path")
    if reader is None:
        raise LocalProtocolError(
            f"{spec}: the library reads no files; pass reader= (for example "
            "smtpproto.adapters.postfix.read_file) or a mapping"
        )
    try:
        return reader(path)
    except (OSError, LookupError) as error:
        reason = getattr(error, "strerror", None) or "no such file"
        raise LocalProtocolError(f"{spec}: cannot read {path}: {reason}") from None


def _hash_entries(text: str, spec: str) -> tuple[tuple[str, str], ...]:
    """``postmap`` source format: ``key whitespace value`` per logical line."""
    entries: dict[str, tuple[str, str]] = {}
    for line, logical in logical_lines(text):
        parts = logical.split(None, 1)
        if len(parts) != 2:
            raise LocalProtocolError(f"{spec}, line {line}: expected 'key whitespace value'")
        key, value = parts[0], parts[1].strip()
        # Postfix warns about a duplicate key and keeps the first entry.
        entries.setdefault(key.lower(), (key, value))
    return tuple(entries.values())


def _inline_entries(body: str, spec: str) -> tuple[tuple[str, str], ...]:
    entries: dict[str, tuple[str, str]] = {}
    for item in split_list(_strip_braces(body)):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise LocalProtocolError(f"{spec}: expected name=value, got {item!r}")
        entries[key.lower()] = (key, value)
    if not entries:
        raise LocalProtocolError(f"{spec}: empty inline table")
    return tuple(entries.values())


def open_table(spec: str, *, reader: Reader | None = None) -> Table:
    """Open one table named in Postfix syntax (``type:name``); see the module docstring."""
    match = _TABLE_TYPE.fullmatch(spec.strip())
    if match is None:
        raise LocalProtocolError(f"{spec!r}: expected type:name (texthash:/path, inline:{{..}})")
    kind, name = match.group(1), match.group(2).strip()
    if kind == "proxy":
        # proxymap(8) only forwards lookups to the table it names.
        return open_table(name, reader=reader)
    if kind in BINARY_TYPES:
        raise LocalProtocolError(
            f"{kind}:{name}: a binary {kind} file cannot be read by the library; "
            f"name its source file instead: texthash:{name}"
        )
    if kind == "texthash":
        return HashTable(_hash_entries(_read(reader, spec, name), spec), spec)
    if kind == "inline":
        return HashTable(_inline_entries(name, spec), spec)
    if kind == "static":
        return StaticTable(_strip_braces(name), spec)
    if kind in ("regexp", "pcre"):
        return _pattern_table(kind, name, reader)
    if kind in _UNSUPPORTED:
        raise LocalProtocolError(
            f"{kind}:{name}: {kind} tables are not supported; use texthash:, inline:, static:, "
            "regexp: or pcre:, or pass a Python mapping or callable"
        )
    raise LocalProtocolError(f"{kind}:{name}: unknown table type {kind!r}")


def _as_tables(value: Any, reader: Reader | None) -> tuple[Table, ...]:
    if isinstance(value, Lookup):
        return value.tables
    if isinstance(value, Table):
        return (value,)
    if isinstance(value, str):
        return tuple(open_table(item, reader=reader) for item in split_list(value))
    if isinstance(value, Mapping):
        return (MappingTable.from_mapping(value),)
    if callable(value):
        return (CallableTable(value),)
    if isinstance(value, Sequence):
        return tuple(t for item in value for t in _as_tables(item, reader))
    raise LocalProtocolError(
        f"expected a table (type:name text, a mapping or a callable), got {type(value).__name__}"
    )


@dataclass(frozen=True)
class Lookup(Generic[T]):
    """A parameter's list of tables with its value type: `get` searches them in order.

    Values are converted by the parameter's `convert` (for example a word list into a set);
    when every value a table can return is known (all but callables and ``$n`` patterns)
    they are converted once, up front, so a bad one is refused with the configuration.
    """

    tables: tuple[Table, ...] = ()
    convert: Callable[[Any], T] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls,
        value: Any,
        convert: Callable[[Any], T] | None = None,
        *,
        reader: Reader | None = None,
        substitution: bool = True,
    ) -> Lookup[T]:
        """Tables from text (``type:name, ...``), a mapping, a callable, a `Table` or a list."""
        if isinstance(value, str) and not value.strip():
            return cls((), convert)
        tables = _as_tables(value, reader)
        lookup = cls(tables, convert)
        for table in tables:
            results = table.results()
            if results is None and isinstance(table, PatternTable) and not substitution:
                raise LocalProtocolError(f"{table.spec}: $n substitution is not allowed here")
            if convert is not None and results is not None:
                for result in results:
                    convert(result)
        return lookup

    @overload
    def get(self, key: str, /) -> T | None: ...

    @overload
    def get(self, key: str, default: T, /) -> T: ...

    def get(self, key: str, default: T | None = None, /) -> T | None:
        """The converted value of the first table with an entry for `key`, else `default`."""
        for table in self.tables:
            value = table.lookup(key)
            if value is not None:
                return value if self.convert is None else self.convert(value)
        return default

    def __bool__(self) -> bool:
        return bool(self.tables)

    def known_results(self) -> tuple[Any, ...]:
        """The raw values the tables can return that are known in advance (`Table.results`):
        not those of callables or of ``$n`` patterns, which exist only for a key."""
        return tuple(result for table in self.tables for result in table.results() or ())

    def describe(self, *, redact: bool = False) -> str:
        """The tables for humans, in search order; with `redact`, no value is shown."""
        return "Lookup(" + ", ".join(t.describe(redact=redact) for t in self.tables) + ")"

    def __repr__(self) -> str:
        return self.describe()


# -- match lists -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    negated: bool
    word: str | None = None
    table: Table | None = None

    def matches(self, folded: str) -> bool:
        if self.table is not None:
            return self.table.lookup(folded) is not None
        return self.word == folded


def _is_table(item: str) -> bool:
    # Postfix MATCH_DICTIONARY(): "type:name", but never an "[address]:port" literal.
    return not item.startswith("[") and _TABLE_TYPE.fullmatch(item) is not None


@dataclass(frozen=True)
class MatchList:
    """A Postfix string list: names, ``!name``, ``type:table`` and ``/file/name`` items.

    `matches` folds case and stops at the first item that matches: a plain item says yes, a
    ``!`` item says no; when none matches the answer is no (Postfix ``match_list_match``).
    """

    items: tuple[_Item, ...] = ()

    @classmethod
    def of(cls, value: Any, *, reader: Reader | None = None) -> MatchList:
        """Parse list text (``!gssapi, !login, static:rest``) or an iterable of items."""
        if isinstance(value, MatchList):
            return value
        if isinstance(value, str):
            words: Iterable[str] = split_list(value)
        elif isinstance(value, Iterable) and not isinstance(value, bytes | Mapping):
            words = list(value)
        else:
            raise LocalProtocolError(f"expected a list of names, got {type(value).__name__}")
        return cls(tuple(cls._parse(words, reader, negate=False)))

    @staticmethod
    def _parse(words: Iterable[Any], reader: Reader | None, *, negate: bool) -> Iterator[_Item]:
        for word in words:
            if not isinstance(word, str):
                raise LocalProtocolError(f"list items are strings, got {word!r}")
            negated = negate
            item = word.strip()
            while item.startswith("!"):
                negated, item = not negated, item[1:]
            if not item:
                raise LocalProtocolError(f"no pattern after '!' in {word!r}")
            if any(c in item for c in "\r\n\0"):
                raise LocalProtocolError(f"CR, LF and NUL are not allowed in {word!r}")
            if item.startswith("/"):
                text = _read(reader, item, item)
                for _, line in logical_lines(text):
                    yield from MatchList._parse(split_list(line), reader, negate=negated)
            elif _is_table(item):
                yield _Item(negated, table=open_table(item, reader=reader))
            else:
                yield _Item(negated, word=item.lower())

    def matches(self, name: str) -> bool:
        """Whether `name` is in the list (first matching item decides; none: no)."""
        folded = name.lower()
        for item in self.items:
            if item.matches(folded):
                return not item.negated
        return False

    def names(self) -> tuple[str, ...]:
        """The plain, not negated names, folded to lower case."""
        return tuple(i.word for i in self.items if i.word is not None and not i.negated)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)
