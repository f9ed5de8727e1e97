"""Render the API reference from the docstrings, with the standard library only.

    .venv/bin/python docs/gen_api.py --strict --output build/docs/api.md

Neither Sphinx nor mkdocs is a dependency of the project, so this walks the public modules
with `inspect`: each module's docstring, then every name in its ``__all__`` with its
signature and docstring (classes with their public methods and properties). With
``--strict`` every problem (a module without ``__all__`` or docstring, a public name without
a docstring, a name in ``__all__`` that does not exist) is an error, as a documentation build
with warnings as errors would treat it; tests/test_docs.py builds it that way.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MODULES = (
    "smtpproto",
    "smtpproto.replies",
    "smtpproto.commands",
    "smtpproto.capabilities",
    "smtpproto.events",
    "smtpproto.connection",
    "smtpproto.body",
    "smtpproto.mime",
    "smtpproto.sasl",
    "smtpproto.engine.tlspolicy",
    "smtpproto.tables",
    "smtpproto.config",
    "smtpproto.destinations",
    "smtpproto.envelope",
    "smtpproto.engine.routing",
    "smtpproto.requests",
    "smtpproto.report",
    "smtpproto.engine.redact",
    "smtpproto.engine",
    "smtpproto.engine.refusals",
    "smtpproto.adapters",
    "smtpproto.adapters.blocking",
    "smtpproto.adapters.asyncio",
    "smtpproto.adapters.trio",
    "smtpproto.adapters.postfix",
    "smtpproto.adapters.cli",
)
"""The public modules, in the order of the layers (wire, connection, engine, adapters)."""


def _doc(obj: Any) -> str | None:
    # inspect.getdoc would inherit a base class's docstring; a public name needs its own.
    doc = obj.__doc__ if isinstance(obj, type) or callable(obj) else None
    if doc is None and not isinstance(obj, type) and not callable(obj):
        return None
    return inspect.cleandoc(doc) if doc else None


def _signature(obj: Any) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _members(cls: type) -> list[tuple[str, Any]]:
    own = []
    for name, value in vars(cls).items():
        if name.startswith("_") and name not in ("__init__", "__call__"):
            continue
        if isinstance(value, property | classmethod | staticmethod) or inspect.isfunction(value):
            own.append((name, value))
    return own


def _render_class(module: str, name: str, cls: type, problems: list[str], out: list[str]) -> None:
    out.append(f"### class `{name}{_signature(cls)}`\n")
    doc = _doc(cls)
    if doc is None:
        problems.append(f"{module}.{name}: class without a docstring")
    else:
        out.append(doc + "\n")
    for member, value in _members(cls):
        target = value.fget if isinstance(value, property) else value
        if isinstance(value, classmethod | staticmethod):
            target = value.__func__
        kind = "property" if isinstance(value, property) else "method"
        text = target.__doc__ if target is not None else None
        if member == "__init__" and not text:
            continue  # the class docstring documents construction
        if not text:
            problems.append(f"{module}.{name}.{member}: {kind} without a docstring")
            continue
        shown = member if kind == "property" else f"{member}{_signature(target)}"
        out.append(f"- `{shown}` ({kind}): {inspect.cleandoc(text).splitlines()[0]}\n")
    out.append("")


def render_module(module_name: str, problems: list[str]) -> str:
    """One module's section; problems found are appended to `problems`."""
    module = importlib.import_module(module_name)
    out = [f"## `{module_name}`\n"]
    if not module.__doc__:
        problems.append(f"{module_name}: module without a docstring")
    else:
        out.append(inspect.cleandoc(module.__doc__) + "\n")
    names = getattr(module, "__all__", None)
    if names is None:
        # A package whose public surface is its submodules (smtpproto.adapters) needs none.
        if not hasattr(module, "__path__"):
            problems.append(f"{module_name}: no __all__")
        names = []
    for name in names:
        if not hasattr(module, name):
            problems.append(f"{module_name}.{name}: in __all__ but not defined")
            continue
        value = getattr(module, name)
        if inspect.isclass(value):
            _render_class(module_name, name, value, problems, out)
        elif inspect.isfunction(value):
            out.append(f"### `{name}{_signature(value)}`\n")
            if value.__doc__:
                out.append(inspect.cleandoc(value.__doc__) + "\n")
            else:
                problems.append(f"{module_name}.{name}: function without a docstring")
        else:
            # Constants and aliases: their documentation is the module's, or a string after
            # the assignment, which the runtime does not keep; show the value's type.
            out.append(f"### `{name}`\n\n`{type(value).__name__}`: `{value!r:.120}`\n")
    return "\n".join(out)


def render(modules: Sequence[str] = MODULES) -> tuple[str, list[str]]:
    """The whole reference, and the list of problems found on the way."""
    problems: list[str] = []
    sections = [render_module(name, problems) for name in modules]
    header = (
        "# API reference\n\n"
        "<!-- Generated by docs/gen_api.py from the docstrings; do not edit. -->\n\n"
        "Modules: " + ", ".join(f"`{m}`" for m in modules) + "\n"
    )
    return header + "\n" + "\n".join(sections), problems


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reference; with ``--strict``, exit 1 when any problem was found."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "build" / "docs" / "api.md")
    parser.add_argument("--strict", action="store_true", help="treat problems as errors")
    args = parser.parse_args(argv)
    text, problems = render()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    for problem in problems:
        print(f"{'error' if args.strict else 'warning'}: {problem}", file=sys.stderr)
    return 1 if problems and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
