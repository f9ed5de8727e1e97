"""The distribution installs `adapters/` as `smtpproto.adapters` (editable here; the wheel in
test_wheel.py), and the core imports nothing it must not."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import smtpproto

ROOT = Path(__file__).resolve().parent.parent


def test_editable_install_maps_adapters_into_the_package() -> None:
    import smtpproto.adapters as adapters

    assert Path(adapters.__file__).resolve().parent == ROOT / "adapters"
    assert Path(smtpproto.__file__).resolve().parent == ROOT / "smtpproto"


def test_core_import_pulls_in_no_io_modules() -> None:
    # DESIGN.md: `import smtpproto` never imports adapters, sockets, event loops, time or dns.
    code = (
        "import sys, smtpproto; "
        "bad = {'socket', 'asyncio', 'trio', 'ssl', 'dns', 'smtpproto.adapters', 'selectors'}; "
        "print(sorted(bad & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


# Modules the core may never import, even lazily: I/O, clocks, randomness, and peers' code.
# Nor `logging`: the adapters log, the core never does.
_CORE_FORBIDDEN = frozenset(
    {
        "logging",
        "socket",
        "asyncio",
        "trio",
        "ssl",
        "dns",
        "selectors",
        "time",
        "random",
        "secrets",
        "threading",
        "subprocess",
        "os",
        "io",
        "tempfile",
        "select",
        "smtplib",
    }
)


def test_every_core_module_imports_only_the_standard_library() -> None:
    # The mission: smtpproto/ imports only the stdlib and performs no I/O; adapters/ does that.
    offenders = []
    for path in sorted((ROOT / "smtpproto").rglob("*.py")):
        if path.name == "__main__.py":
            continue  # ``python -m smtpproto`` only: runs the CLI, never imported by the core
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                stdlib = top in sys.stdlib_module_names or top == "__future__"
                allowed = top == "smtpproto" or (stdlib and top not in _CORE_FORBIDDEN)
                if allowed and not name.startswith("smtpproto.adapters"):
                    continue
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []


def test_public_names_are_exported_and_documented() -> None:
    # Every name of the top-level surface resolves and carries a docstring (the mission).
    missing = [name for name in smtpproto.__all__ if not hasattr(smtpproto, name)]
    assert missing == []
    undocumented = [
        name
        for name in smtpproto.__all__
        if callable(getattr(smtpproto, name)) and not getattr(smtpproto, name).__doc__
    ]
    assert undocumented == []
    assert smtpproto.ClientConfig is __import__("smtpproto.config").config.ClientConfig
