"""Postfix lookup tables (smtpproto.tables): each table type as regexp_table(5), pcre_table(5)
and postconf(5) describe it, match lists as Postfix's match_list.c, and properties for the
parsers."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smtpproto import LocalProtocolError
from smtpproto.tables import (
    HashTable,
    Lookup,
    MatchList,
    PatternTable,
    StaticTable,
    logical_lines,
    open_table,
    split_list,
)

FILES = {
    "/etc/postfix/generic": "# comment\nroot@LOCALHOST   admin@example.com\n"
    "multi   first part\n   continued\nroot@localhost   duplicate, ignored\n",
    "/etc/postfix/access.regexp": (
        "# regexp_table(5)'s example\n"
        "/[%!@].*[%!@]/       550 Sender-specified routing rejected\n"
        "/^postmaster@/       OK\n"
        "if !/^owner-/\n"
        "/^(.*)-outgoing@(.*)$/  550 Use ${1}@${2} instead\n"
        "endif\n"
    ),
    "/etc/postfix/access.pcre": (
        "/^(?!owner-)(.*)-outgoing@(.*)/ 550 Use ${1}@${2} instead\n"
        "/^noddy@my\\.domain$/\n"
        " 550 This user is a funny one.\n"
    ),
}


def read(path: str) -> str:
    return FILES[path]


# -- logical lines and lists ---------------------------------------------------------------


def test_logical_lines_join_continuations_and_skip_comments() -> None:
    text = "a 1\n  # comment\n b\n\n#x\nc 2\n\t d\n"
    assert list(logical_lines(text)) == [(1, "a 1 b"), (6, "c 2\t d")]


def test_split_list_keeps_braced_groups_whole() -> None:
    assert split_list("a, b  c,inline:{ x=1, y=2 }, {d e}") == (
        "a",
        "b",
        "c",
        "inline:{ x=1, y=2 }",
        "d e",
    )
    with pytest.raises(LocalProtocolError, match="unbalanced"):
        split_list("inline:{ a=b")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abc.-_:/@", min_size=1, max_size=8), max_size=6))
def test_split_list_inverts_joining_with_commas_and_spaces(items: list[str]) -> None:
    assert split_list(", ".join(items)) == tuple(items)
    assert split_list("  ".join(items)) == tuple(items)


# -- fixed-key tables ------------------------------------------------------------------------


def test_texthash_is_postmap_source_format_folded_first_entry_winning() -> None:
    table = open_table("texthash:/etc/postfix/generic", reader=read)
    assert isinstance(table, HashTable)
    assert table.lookup("ROOT@localhost") == "admin@example.com"
    assert table.lookup("multi") == "first part   continued"
    assert table.lookup("nobody") is None


def test_inline_and_static_tables() -> None:
    inline = open_table("inline:{ a=1, { b = two words }, C=3 }")
    assert (inline.lookup("A"), inline.lookup("b"), inline.lookup("c")) == ("1", "two words", "3")
    assert open_table("static:OK").lookup("anything") == "OK"
    assert open_table("static:{ 550 go away }").lookup("x") == "550 go away"
    with pytest.raises(LocalProtocolError, match="expected name=value"):
        open_table("inline:{ novalue }")


def test_file_tables_need_a_reader_and_an_absolute_path() -> None:
    with pytest.raises(LocalProtocolError, match="pass reader="):
        open_table("texthash:/etc/postfix/generic")
    with pytest.raises(LocalProtocolError, match="absolute path"):
        open_table("texthash:generic", reader=read)
    with pytest.raises(LocalProtocolError, match="cannot read"):
        open_table("regexp:/etc/postfix/missing", reader=read)


@pytest.mark.parametrize("kind", ["hash", "btree", "lmdb", "cdb", "dbm", "sdbm"])
def test_binary_tables_point_at_their_texthash_source(kind: str) -> None:
    with pytest.raises(LocalProtocolError, match=r"instead: texthash:/etc/postfix/x$"):
        open_table(f"{kind}:/etc/postfix/x", reader=read)


@pytest.mark.parametrize("spec", ["ldap:/etc/postfix/ldap.cf", "mysql:/x", "tcp:localhost:1"])
def test_network_tables_are_refused_with_the_alternatives(spec: str) -> None:
    with pytest.raises(LocalProtocolError, match="not supported; use texthash:"):
        open_table(spec, reader=read)


def test_proxy_forwards_to_the_table_it_names() -> None:
    assert open_table("proxy:texthash:/etc/postfix/generic", reader=read).lookup("multi")


# -- regexp: and pcre: ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "result"),
    [
        ("a@b!c", "550 Sender-specified routing rejected"),
        ("postmaster@example.com", "OK"),
        ("POSTMASTER@example.com", "OK"),  # case-insensitive by default
        ("list-outgoing@example.com", "550 Use list@example.com instead"),
        ("owner-list-outgoing@example.com", None),  # the if !/^owner-/ block
        ("someone@example.com", None),
    ],
)
def test_regexp_table_is_regexp_table_5s_example(key: str, result: str | None) -> None:
    table = open_table("regexp:/etc/postfix/access.regexp", reader=read)
    assert table.lookup(key) == result


@pytest.mark.parametrize(
    ("key", "result"),
    [
        ("list-outgoing@example.com", "550 Use list@example.com instead"),
        ("owner-list-outgoing@example.com", None),
        ("noddy@my.domain", "550 This user is a funny one."),
    ],
)
def test_pcre_table_is_pcre_table_5s_example(key: str, result: str | None) -> None:
    assert open_table("pcre:/etc/postfix/access.pcre", reader=read).lookup(key) == result


@pytest.mark.parametrize(
    ("rule", "key", "found"),
    [
        ("/abc/ x", "ABC", True),  # i: case-insensitive by default
        ("/abc/i x", "ABC", False),  # i toggles it off
        ("/^b/ x", "a\nb", False),
        ("/^b/m x", "a\nb", True),
        ("!/abc/ x", "xyz", True),  # negation
        ("!/abc/ x", "abc", False),
        ("/a/!/b/ x", "ab", False),  # the old two-pattern form
        ("/a/!/b/ x", "ac", True),
        ("~[[:digit:]]{3}~ x", "a123", True),  # any delimiter; POSIX classes
        ("/\\<word\\>/ x", "a word here", True),  # GNU word boundaries
        ("/a\\(b\\)c/x x", "abc", True),  # x off: basic syntax, \\( \\) group
        ("/a(b)c/x x", "a(b)c", True),  # and ( ) are literal
    ],
)
def test_regexp_flags_and_syntax(rule: str, key: str, found: bool) -> None:
    table = open_table("regexp:{ {" + rule + "} }")
    assert (table.lookup(key) is not None) == found


@pytest.mark.parametrize(
    ("rule", "key", "result"),
    [
        ("/a.b/ x", "a\nb", "x"),  # s: dot matches newline by default
        ("/a.b/s x", "a\nb", None),
        ("/a b/x x", "ab", "x"),  # x: extended, spaces ignored
        ("/b/A x", "ab", None),  # A: anchored
        ("/b$/E x", "ab\n", None),  # E: $ only at the very end
        ("/b$/ x", "ab\n", "x"),
        ("/(a+)/U $1", "aaa", "a"),  # U: ungreedy
        ("/(a+?)/U $1", "aaa", "aaa"),
        ("/\\Qa.b\\E/ x", "a.b", "x"),  # \\Q..\\E quotes
        ("/\\Qa.b\\E/ x", "axb", None),
        ("/(?<user>\\w+)@/ ${1}", "bob@x", "bob"),  # named groups
        ("/(a)|(b)/ [$1][$2]", "b", "[][b]"),  # an unmatched group is empty
        ("/x/ cost $$5", "x", "cost $5"),
    ],
)
def test_pcre_flags_and_syntax(rule: str, key: str, result: str | None) -> None:
    assert open_table("pcre:{ {" + rule + "} }").lookup(key) == result


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("/abc x", "no closing"),
        ("/a/q x", "unknown flag"),
        ("/a/", "no result"),
        ("/(a)/ $2", "has 1 group"),
        ("!/(a)/ $1", "negated pattern"),
        ("/a/ $name", "only \\$1..\\$n"),
        ("if /a/\n/b/ x", "no 'endif'"),
        ("endif", "without 'if'"),
        ("/[/ x", "bad pattern|unterminated"),
        ("a/b/ x", "cannot delimit"),
        ("/[[:nope:]]/ x", "unknown character class"),
    ],
)
def test_bad_rules_are_refused_naming_table_and_line(text: str, error: str) -> None:
    with pytest.raises(LocalProtocolError, match=error) as info:
        open_table("regexp:/etc/postfix/bad", reader={"/etc/postfix/bad": text}.__getitem__)
    assert "regexp:/etc/postfix/bad" in str(info.value)


def test_nested_if_blocks() -> None:
    text = "if /^a/\nif !/b$/\n/c/ inner\nendif\n/./ outer\nendif\n/./ last\n"
    table = open_table("pcre:/x", reader={"/x": text}.__getitem__)
    assert [table.lookup(k) for k in ("acx", "acb", "zzz")] == ["inner", "outer", "last"]


_LITERAL = st.text(alphabet="abcXYZ019.-_@[]()*+?{}|^$\\", min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(_LITERAL, st.from_regex(r"[abc12]( ?[abc12]){0,3}", fullmatch=True), max_size=5)
)
def test_a_pattern_table_of_escaped_literals_is_a_case_insensitive_dict(
    entries: dict[str, str],
) -> None:
    # The rules are anchored, escaped copies of the keys: lookups agree with a folded dict.
    text = "".join(
        "/^" + re.escape(k).replace("/", "\\/") + "$/ " + v + "\n" for k, v in entries.items()
    )
    table = open_table("pcre:/t", reader={"/t": text}.__getitem__)
    folded: dict[str, str] = {}
    for k, v in entries.items():
        folded.setdefault(k.lower(), v.strip())
    for key in entries:
        assert table.lookup(key) == folded[key.lower()]
        assert table.lookup(key.upper()) == folded.get(key.upper().lower(), folded[key.lower()])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_reading_any_regexp_text_raises_nothing_but_local_protocol_error(text: str) -> None:
    for kind in ("regexp", "pcre"):
        try:
            table = open_table(f"{kind}:/t", reader={"/t": text}.__getitem__)
        except LocalProtocolError:
            continue
        assert isinstance(table, PatternTable)
        table.lookup("probe@example.com")


# -- Lookup: a parameter's tables -----------------------------------------------------------


def test_lookup_searches_tables_in_order_and_converts_results() -> None:
    lookup: Lookup[int] = Lookup.of("inline:{ a=1 }, static:9", int, reader=read)
    assert (lookup.get("A"), lookup.get("zzz")) == (1, 9)
    empty: Lookup[Any] = Lookup.of("")
    assert not empty and empty.get("a", "default") == "default"


def test_lookup_takes_mappings_callables_tables_and_lists_of_them() -> None:
    calls: list[str] = []

    def probe(key: str) -> str | None:
        calls.append(key)
        return "called" if key == "c" else None

    lookup: Lookup[str] = Lookup.of([{"M": "mapped"}, probe, StaticTable("last")])
    assert [lookup.get(k) for k in ("m", "c", "x")] == ["mapped", "called", "last"]
    assert calls == ["c", "x"]


def test_lookup_converts_known_results_up_front() -> None:
    with pytest.raises(ValueError):
        Lookup.of("inline:{ a=one }", int)
    with pytest.raises(LocalProtocolError, match="substitution is not allowed"):
        Lookup.of("regexp:{ {/(.*)/ $1} }", str, substitution=False)


def test_lookup_describe_can_hide_values() -> None:
    lookup: Lookup[str] = Lookup.of({"k": "secret"})
    assert "secret" in lookup.describe()
    assert "secret" not in lookup.describe(redact=True) and "k" in lookup.describe(redact=True)


# -- match lists -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "name", "matches"),
    [
        ("plain, login", "PLAIN", True),
        ("plain, login", "cram-md5", False),
        ("!gssapi, !login, static:rest", "gssapi", False),
        ("!gssapi, !login, static:rest", "LOGIN", False),
        ("!gssapi, !login, static:rest", "plain", True),
        ("!inline:{ plain=x }, static:any", "plain", False),
        ("!inline:{ plain=x }, static:any", "login", True),
        ("", "plain", False),
    ],
)
def test_match_list_first_match_decides(items: str, name: str, matches: bool) -> None:
    assert MatchList.of(items).matches(name) == matches


def test_match_list_reads_file_items_with_the_reader() -> None:
    files = {"/etc/postfix/mechs": "# allowed\nplain\n  login\n!cram-md5\n"}
    listed = MatchList.of("!/etc/postfix/mechs, static:rest", reader=files.__getitem__)
    # "!/file" negates every item of the file: a negated "!cram-md5" matches again
    assert listed.matches("cram-md5") and not listed.matches("plain")
    assert not listed.matches("login")
    assert MatchList.of("/etc/postfix/mechs", reader=files.__getitem__).names() == (
        "plain",
        "login",
    )


def test_match_list_refuses_empty_negations_and_controls() -> None:
    with pytest.raises(LocalProtocolError, match="no pattern after"):
        MatchList.of("!")
    with pytest.raises(LocalProtocolError, match="CR, LF and NUL"):
        MatchList.of(["a\nb"])
    with pytest.raises(LocalProtocolError, match="expected a list"):
        MatchList.of(42)
