"""Every example in docs/ runs here, so the documentation cannot rot.

Each page's ```python blocks run in order in one namespace, like one interpreter session;
they start their own loopback servers (`smtpproto.adapters.demo`) and assert what they show.
Each ```console block runs in bash, one ``$ command`` at a time, in a scratch directory that
holds ``message.eml``, with ``$DEST`` (aiosmtpd) and ``$LMTP_DEST`` (the scripted LMTP
server) pointing at loopback servers; the output must match the lines that follow the
command, where ``...`` stands for any text. Other fences (```sh for install commands,
```pyi for signatures, ```text) are not examples and are not run.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import linecache
import os
import re
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from smtpproto.adapters.demo import DemoHandler, LMTPServer, SMTPServer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
FENCE = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
# A test named the way the pages name them: file::function, relative to tests/.
TEST_REFERENCE = re.compile(r"\b((?:interop/)?test_\w+\.py)::(test_\w+)")
MARK = "@@smtpproto-docs-end-of-command@@"
RUNNABLE = {"python", "console"}
KNOWN = RUNNABLE | {"sh", "pyi", "text", ""}
# Pages that must show at least one runnable example (the rest are reference tables).
EXAMPLE_PAGES = {"index.md", "guide.md", "embedding.md", "security.md", "testing.md"}


@dataclass(frozen=True)
class Block:
    """One fenced block: its language, its text, the line it starts on, and where it runs.

    ``cwd=repo`` after the language runs a console block in the repository root instead of
    the scratch directory.
    """

    language: str
    text: str
    line: int
    in_repo: bool = False


def blocks(page: Path) -> list[Block]:
    """The fenced code blocks of `page`, in order."""
    source = page.read_text(encoding="utf-8")
    return [
        Block(
            m.group(1),
            m.group(3),
            source.count("\n", 0, m.start()) + 1,
            "cwd=repo" in m.group(2).split(),
        )
        for m in FENCE.finditer(source)
    ]


def commands(block: Block) -> list[tuple[str, str]]:
    """A console block as (command, expected output) pairs."""
    pairs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
        elif line.strip():
            raise AssertionError(f"line {block.line}: output before any command: {line!r}")
    return [(command, "\n".join(output)) for command, output in pairs]


def matches(expected: str, actual: str) -> bool:
    """Whether `actual` is `expected` with each ``...`` standing for any text."""
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("..."))
    return re.fullmatch(pattern, actual.strip(), re.DOTALL) is not None


@pytest.fixture
def servers() -> Iterator[dict[str, str]]:
    """Loopback SMTP and LMTP servers for console blocks, as environment variables."""
    rejected = {"nobody@example.com": "550 5.1.1 <nobody@example.com>: mailbox unavailable"}
    with (
        SMTPServer(DemoHandler(rejected={"nobody@example.com"})) as smtp,
        LMTPServer(rejected=rejected) as lmtp,
    ):
        yield {"DEST": smtp.destination, "LMTP_DEST": lmtp.destination, "CA_FILE": smtp.ca_file}


def run_console(block: Block, workdir: Path, variables: dict[str, str]) -> None:
    """Run every command of a console block in one bash and compare the outputs."""
    pairs = commands(block)
    script = ["exec 2>&1"]
    for command, _ in pairs:
        # Keep each command's status for a following "echo $?", then mark the end.
        script += [command, "__status=$?", f"echo {MARK}", "(exit $__status)"]
    env = {
        **os.environ,
        **variables,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)],
        cwd=ROOT if block.in_repo else workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outputs = done.stdout.split(MARK + "\n")
    assert len(outputs) == len(pairs) + 1, done.stdout
    for (command, expected), actual in zip(pairs, outputs, strict=False):
        assert matches(expected, actual), (
            f"line {block.line}: $ {command}\nexpected:\n{expected}\ngot:\n{actual}"
        )


def run_page(page: Path, workdir: Path, variables: dict[str, str]) -> int:
    """Run the examples of `page`; returns how many blocks ran."""
    namespace: dict[str, Any] = {"__name__": f"docs.{page.stem}"}
    ran = 0
    try:
        for block in blocks(page):
            assert block.language in KNOWN, f"{page.name}:{block.line}: {block.language}"
            if block.language == "python":
                name = f"{page.name}:{block.line}"
                # Tracebacks quote the example's lines (numbered from the fence's line).
                lines = ["\n"] * block.line + block.text.splitlines(keepends=True)
                linecache.cache[name] = (len(block.text), None, lines, name)
                code = compile("\n" * block.line + block.text, name, "exec")
                exec(code, namespace)
                ran += 1
            elif block.language == "console":
                run_console(block, workdir, variables)
                ran += 1
    finally:
        # A page that failed half-way still stops the servers it started.
        for value in namespace.values():
            if isinstance(value, contextlib.ExitStack):
                value.close()
    return ran


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_examples_of_the_page_run(
    page: Path, tmp_path: Path, servers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "message.eml").write_bytes(
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: docs\r\n\r\nHello.\r\n"
    )
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        # aiosmtpd 1.4 warns about its own legacy attribute on every successful AUTH.
        warnings.filterwarnings("ignore", "Session.login_data is deprecated")
        ran = run_page(page, tmp_path, servers)
    if page.name in EXAMPLE_PAGES:
        assert ran > 0, f"{page.name} has no runnable example"


def _test_names() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = path.relative_to(ROOT / "tests").as_posix()
        names.update(
            f"{relative}::{node.name}"
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        )
    return names


def test_every_test_a_page_names_exists() -> None:
    known = _test_names()
    named = {
        (page.name, f"{m.group(1)}::{m.group(2)}")
        for page in PAGES
        for m in TEST_REFERENCE.finditer(page.read_text(encoding="utf-8"))
    }
    assert named, "the pages name no tests at all"
    missing = sorted((page, test) for page, test in named if test not in known)
    assert not missing, f"pages name tests that do not exist: {missing}"


def test_api_reference_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("gen_api", DOCS / "gen_api.py")
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    text, problems = generator.render()
    assert not problems, "\n".join(problems)
    for module in generator.MODULES:
        assert f"## `{module}`" in text
    assert "### class `ClientConnection" in text and "### `deliver(" in text
    output = tmp_path / "api.md"
    assert generator.main(["--strict", "--output", str(output)]) == 0
    assert output.read_text(encoding="utf-8") == text


def test_the_example_pages_exist() -> None:
    assert {p.name for p in PAGES} >= EXAMPLE_PAGES


def test_console_output_matching() -> None:
    assert matches("to=<a>, delay=..., status=sent", "to=<a>, delay=0.05, status=sent\n")
    assert matches("one\n...\nfour", "one\ntwo\nthree\nfour")
    assert not matches("status=sent", "status=bounced")
    block = Block("console", "$ echo a\na\n$ false\n$ echo $?\n1\n", 1)
    assert commands(block) == [("echo a", "a"), ("false", ""), ("echo $?", "1")]


def test_console_blocks_really_run(tmp_path: Path) -> None:
    block = Block("console", "$ echo $DEST\nsomething else\n", 1)
    with pytest.raises(AssertionError, match="something else"):
        run_console(block, tmp_path, {"DEST": "[127.0.0.1]:25"})
