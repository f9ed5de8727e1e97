"""Every citation in the code, the tests and the docs resolves inside the repository.

Two pages under ``docs/reference/`` define what comments cite: ``client-rules.md`` (Postfix's
client behaviour: ``rule N.M``, ``rules N.M and N.K``, ``rule N`` for a section, ``quirk QN``,
``Appendix A``) and ``security-cases.md`` (case ids such as ``NS-01``, ``NS-01(a)``,
``CV-10c``, ``RP-01..RP-04``, a family as ``AU-*``). Each rule, quirk and case has an
``<a id="...">`` anchor there. This module checks, over every tracked ``.py`` and ``.md``
file, that each such citation names an anchor that exists, and that no citation still points
outside the repository: the old forms that named the design notes' specification by section
number, its section sign, the case catalogue by section, or the project's issue tracker.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "docs" / "reference"
SCANNED = ("smtpproto", "adapters", "tests", "fuzz", "bench", "docs")

ANCHOR = re.compile(r'<a id="([^"]+)"></a>')

# -- rule citations ---------------------------------------------------------------------------
# One item: a section or a rule number, optionally with a section sign, a lettered or numbered
# part ("8.5 (c)", "7.2(b)", "8.5 (c)-(e)") and a range end ("9.1-9.4"); or a quirk or the
# appendix, which may be listed among rules ("rules 2.5, Q2", "rules 10.1, 12.5, Appendix A").
_PART = r"(?:\s*\([a-z0-9]\)(?:\s*-\s*\([a-z0-9]\))?)?"
_NUMBER = r"§?\s*\d{1,2}(?:\.\d{1,2})?"
_ITEM = (
    rf"(?:{_NUMBER}{_PART}(?:\s*-\s*{_NUMBER}{_PART})?"
    r"|Appendix\s+A\b|(?:quirks?\s+)?Q\d{1,2}\b)"
)
_SEP = r"(?:\s*,\s*(?:and\s+)?|\s+and\s+|\s+or\s+|\s*/\s*)"
RULES = re.compile(rf"\brules?\s+(?P<items>{_ITEM}(?:{_SEP}{_ITEM})*)", re.IGNORECASE)
QUIRK = re.compile(r"\bquirks?\s+Q(\d{1,2})\b", re.IGNORECASE)
APPENDIX = re.compile(r"\bAppendix\s+A\b")
_NUMBER_IN_ITEMS = re.compile(r"(?<![\d.])(\d{1,2}(?:\.\d{1,2})?)")
_QUIRK_IN_ITEMS = re.compile(r"\bQ(\d{1,2})\b", re.IGNORECASE)
# "body.py rule 4" numbers the rules of another file's docstring, not of client-rules.md.
_OTHER_DOCUMENT = re.compile(r"\.(?:py|md)\s*$")

# -- case citations ---------------------------------------------------------------------------
FAMILIES = ("NS", "CV", "SM", "RP", "AU", "DN")
_FAMILY = "|".join(FAMILIES)
CASES = re.compile(
    rf"\b(?P<first>(?:{_FAMILY})-\d{{2}}(?!\d)[a-z]?)(?:\((?P<part>[a-z])\))?"
    rf"(?P<more>(?:\s*(?:,|/|\.\.)\s*(?:(?:{_FAMILY})-)?\d{{2}}[a-z]?(?![\w-]))*)"
)
_CASE_MORE = re.compile(rf"(?:(?P<family>{_FAMILY})-)?(?P<number>\d{{2}}[a-z]?)")
CASE_FAMILY = re.compile(rf"\b({_FAMILY})-\*")
# Tests are named after the case they check: test_ns01a_..., test_cv10c_..., test_dn14_...
CASE_TEST = re.compile(rf"\bdef (test_({_FAMILY.lower()})(\d{{2}})([a-z]?)_\w*)")

# -- forms that point outside the repository ---------------------------------------------------
STALE = {
    "specification section": re.compile(
        r"\bspec(?:s|ification)?\s*(?:§|sections?\s+\d|appendix\b|\d)", re.IGNORECASE
    ),
    "Postfix specification": re.compile(r"\bPostfix\s+(?:client\s+)?spec\b", re.IGNORECASE),
    "section sign": re.compile(r"§\s*\d"),
    "issue tracker": re.compile(r"\bissues?\s+#?\d+", re.IGNORECASE),
    "case catalogue section": re.compile(
        r"\bsecurity-cases(?:\.md)?\s+(?:section\s+)?\d", re.IGNORECASE
    ),
    "design notes path": re.compile(r"shared/(?:security-cases|postfix-client-spec)"),
}


@dataclass(frozen=True)
class Citation:
    """One cited anchor, and where: for the failure message."""

    anchor: str
    where: str
    text: str


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def rule_citations(text: str, where: str = "") -> list[Citation]:
    """The client-rules anchors `text` cites."""
    found: list[Citation] = []
    for match in RULES.finditer(text):
        if _OTHER_DOCUMENT.search(text, max(0, match.start() - 20), match.start()):
            continue
        items = match.group("items")
        # Drop the lettered parts first so "(5)" in "6.1 (5)" is not read as a section.
        numbers = re.sub(r"\([a-z0-9]\)", "", items)
        numbers = _QUIRK_IN_ITEMS.sub("", re.sub(r"Appendix\s+A", "", numbers))
        at = f"{where}:{_line(text, match.start())}"
        for number in _NUMBER_IN_ITEMS.findall(numbers):
            found.append(Citation(f"rule-{number}", at, match.group(0)))
        for quirk in _QUIRK_IN_ITEMS.findall(items):
            found.append(Citation(f"quirk-q{int(quirk)}", at, match.group(0)))
        if re.search(r"Appendix\s+A", items):
            found.append(Citation("appendix-a", at, match.group(0)))
    for match in QUIRK.finditer(text):
        at = f"{where}:{_line(text, match.start())}"
        found.append(Citation(f"quirk-q{int(match.group(1))}", at, match.group(0)))
    for match in APPENDIX.finditer(text):
        at = f"{where}:{_line(text, match.start())}"
        found.append(Citation("appendix-a", at, match.group(0)))
    return found


def case_citations(text: str, where: str = "") -> list[Citation]:
    """The security-cases anchors `text` cites: ids, lists and ranges of ids, families, and
    the case a test function's name claims to check."""
    found: list[Citation] = []
    for match in CASES.finditer(text):
        at = f"{where}:{_line(text, match.start())}"
        first = match.group("first")
        family = first.split("-")[0]
        found.append(Citation(first.lower(), at, match.group(0)))
        for more in _CASE_MORE.finditer(match.group("more")):
            family = more.group("family") or family
            found.append(Citation(f"{family}-{more.group('number')}".lower(), at, match.group(0)))
    for match in CASE_FAMILY.finditer(text):
        at = f"{where}:{_line(text, match.start())}"
        found.append(Citation(match.group(1).lower(), at, match.group(0)))
    for match in CASE_TEST.finditer(text):
        at = f"{where}:{_line(text, match.start())}"
        anchor = f"{match.group(2)}-{match.group(3)}{match.group(4)}"
        found.append(Citation(anchor, at, match.group(1)))
    return found


def stale_citations(text: str, where: str = "") -> list[Citation]:
    """Citations of documents outside the repository, named by the kind of form used."""
    return [
        Citation(kind, f"{where}:{_line(text, match.start())}", match.group(0))
        for kind, pattern in STALE.items()
        for match in pattern.finditer(text)
    ]


def anchors(folder: Path = REFERENCE) -> set[str]:
    """Every anchor id defined by the reference pages in `folder`."""
    return {a for page in folder.glob("*.md") for a in ANCHOR.findall(page.read_text("utf-8"))}


def unresolved(files: dict[str, str], defined: set[str]) -> list[Citation]:
    """The rule and case citations in `files` (name -> text) with no anchor in `defined`."""
    return [
        c
        for name, text in files.items()
        for c in rule_citations(text, name) + case_citations(text, name)
        if c.anchor not in defined
    ]


def stale(files: dict[str, str]) -> list[Citation]:
    """The citations in `files` that still point outside the repository."""
    return [c for name, text in files.items() for c in stale_citations(text, name)]


def _tracked(root: Path = ROOT) -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", *(f"{d}/" for d in SCANNED), "*.md"],
            cwd=root,
            capture_output=True,
            check=True,
        ).stdout.decode()
        names = [n for n in listed.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout (an unpacked sdist): every file under the scanned folders.
        names = [
            p.relative_to(root).as_posix()
            for d in SCANNED
            for p in (root / d).rglob("*")
            if p.is_file() and not any(part.startswith(".") for part in p.parts)
        ]
    return sorted(n for n in set(names) if n.endswith((".py", ".md")) and (root / n).is_file())


def _texts(names: list[str]) -> dict[str, str]:
    return {name: (ROOT / name).read_text(encoding="utf-8") for name in names}


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    texts = _texts(_tracked())
    assert any(n.startswith("smtpproto/") for n in texts), "no sources found to scan"
    return texts


@pytest.fixture(scope="module")
def defined() -> set[str]:
    return anchors()


# -- the reference pages -----------------------------------------------------------------------


def test_reference_pages_define_each_anchor_once() -> None:
    ids = [
        a
        for page in sorted(REFERENCE.glob("*.md"))
        for a in ANCHOR.findall(page.read_text("utf-8"))
    ]
    repeated = sorted({a for a in ids if ids.count(a) > 1})
    assert not repeated, f"anchors defined twice: {repeated}"
    # Every section and rule number the comments use, every quirk, every case family.
    for anchor in ("rule-0", "rule-7.9", "rule-16", "quirk-q11", "appendix-a", "ns-01", "dn-36"):
        assert anchor in ids, anchor


def test_links_inside_the_reference_pages_resolve(defined: set[str]) -> None:
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken = []
    for page in sorted(REFERENCE.glob("*.md")):
        for target in link.findall(page.read_text(encoding="utf-8")):
            if target.startswith(("http://", "https://")):
                continue
            path, _, fragment = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            dangling = fragment and file.parent == REFERENCE and fragment not in defined
            if not file.exists() or dangling:
                broken.append(f"{page.name}: {target}")
    assert not broken, f"links to nothing: {broken}"


# -- the citations ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("finder", "page"),
    [(rule_citations, "client-rules.md"), (case_citations, "security-cases.md")],
    ids=["rules", "cases"],
)
def test_every_citation_resolves(
    finder: Callable[[str, str], list[Citation]],
    page: str,
    sources: dict[str, str],
    defined: set[str],
) -> None:
    cited = [c for name, text in sources.items() for c in finder(text, name)]
    assert len(cited) > 100, f"the scan found almost no citations of {page}: regex broken?"
    missing = [c for c in cited if c.anchor not in defined]
    assert not missing, f"cited but not defined in docs/reference/{page}:\n" + "\n".join(
        f"{c.where}: {c.text!r} -> #{c.anchor}" for c in missing
    )


def test_no_citation_points_outside_the_repository(sources: dict[str, str]) -> None:
    outside = stale({n: t for n, t in sources.items() if not n.startswith("docs/reference/")})
    assert not outside, "citations of documents outside the repository:\n" + "\n".join(
        f"{c.where}: {c.anchor}: {c.text!r}" for c in outside
    )


# -- the checker itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(rule 7.9)", {"rule-7.9"}),
        ("rules 7.2 and 7.4", {"rule-7.2", "rule-7.4"}),
        ("Rules 8.5 (c)-(e), 8.6, quirk Q7", {"rule-8.5", "rule-8.6", "quirk-q7"}),
        ("rule 6.1 (5)", {"rule-6.1"}),
        ("rule 7.2(b)", {"rule-7.2"}),
        ("rules 9.1-9.4", {"rule-9.1", "rule-9.4"}),
        ("rules 0, 2, 14.7", {"rule-0", "rule-2", "rule-14.7"}),
        ("rule \N{SECTION SIGN}6", {"rule-6"}),
        ("rules 2.2/2.3", {"rule-2.2", "rule-2.3"}),
        ("rule 3.6, Q1", {"rule-3.6", "quirk-q1"}),
        ("rules 10.1, 12.5, Appendix A", {"rule-10.1", "rule-12.5", "appendix-a"}),
        ("rule 11.5; AU-06", {"rule-11.5"}),
        ("(body.py rule 4)", set()),
        ("the rules allow", set()),
    ],
)
def test_rule_forms_are_read(text: str, expected: set[str]) -> None:
    assert {c.anchor for c in rule_citations(text)} == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(RP-12)", {"rp-12"}),
        ("NS-01(a): bytes", {"ns-01"}),
        ("CV-10c", {"cv-10c"}),
        ("RP-01..RP-04", {"rp-01", "rp-04"}),
        ("NS-04/05/07", {"ns-04", "ns-05", "ns-07"}),
        ("DN-02, 06, 07, 09, 14).", {"dn-02", "dn-06", "dn-07", "dn-09", "dn-14"}),
        ("the RP-* cases", {"rp"}),
        ("def test_ns01c_fragment() -> None:", {"ns-01c"}),
        ("SHA-256, UTF-8", set()),
    ],
)
def test_case_forms_are_read(text: str, expected: set[str]) -> None:
    assert {c.anchor for c in case_citations(text)} == expected


# The planted texts are built from pieces so that this file holds none of the forms it plants.
PLANTED_UNRESOLVED = [
    "# the ru" + "le 99.9 says so",
    "# quirk " + "Q99",
    "# see NS" + "-99",
    "def test_" + "dn99_made_up() -> None:",
]
PLANTED_STALE = [
    "# sp" + "ec 7.9: QUIT after the dot",
    '"""Sp' + 'ec \N{SECTION SIGN}6: parameters."""',
    "# (Postfix sp" + "ec sections 9 and 14)",
    "# unlike Postfix sp" + "ec",
    "# iss" + "ue 3: no 8-bit octet",
    "see " + "§" + "14",
    "security-cases" + " 3.5 rule 1",
    "../shared/" + "security-cases.md",
]


@pytest.mark.parametrize("planted", PLANTED_UNRESOLVED)
def test_checker_catches_a_planted_unresolvable_citation(planted: str, defined: set[str]) -> None:
    good = "# rules 7.2 and 7.4, NS-01(a), quirk Q7\n"
    assert unresolved({"good.py": good}, defined) == []
    found = unresolved({"bad.py": good + planted + "\n"}, defined)
    assert found and all(c.where == "bad.py:2" for c in found), found


@pytest.mark.parametrize("planted", PLANTED_STALE)
def test_checker_catches_a_planted_stale_citation(planted: str) -> None:
    good = "# rule 7.9 (RFC 5321 4.5.2; smtp_proto.c)\n"
    assert stale({"good.py": good}) == []
    found = stale({"bad.md": good + planted + "\n"})
    assert found and all(c.where == "bad.md:2" for c in found), found
