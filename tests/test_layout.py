"""The package layout: layers import downwards only, and no module imports itself in a cycle.

Every ``import`` statement counts, wherever it stands (module level, inside a function, under
``TYPE_CHECKING``): a cycle hidden in a function body is still a cycle a reader must untangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"smtpproto": ROOT / "smtpproto", "smtpproto.adapters": ROOT / "adapters"}

# The wire layer and the shared value types never reach up into the engine or the adapters.
LOWER = "smtpproto.engine"


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if _is_package(path) else name.rpartition(".")[0]
    edges: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            edges.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                edges.add(candidate if candidate in modules else base)
    return {edge for edge in edges if edge in modules and edge != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    # Tarjan's strongly connected components; any component of two or more is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_cycle_detector_finds_a_planted_cycle() -> None:
    graph = _graph()
    graph["smtpproto.body"] = graph["smtpproto.body"] | {"smtpproto.connection"}
    assert ["smtpproto.body", "smtpproto.connection"] in _cycles(graph)


def test_wire_layer_and_value_types_never_import_the_engine_or_adapters() -> None:
    graph = _graph()
    upward = {
        (name, target)
        for name, targets in graph.items()
        if name != "smtpproto" and not name.startswith((LOWER, "smtpproto.adapters"))
        for target in targets
        if target.startswith((LOWER, "smtpproto.adapters"))
    }
    assert upward == set()


def test_core_never_imports_the_adapters() -> None:
    graph = _graph()
    core = {name for name in graph if not name.startswith("smtpproto.adapters")}
    assert {
        (name, target)
        for name in core
        for target in graph[name]
        if target.startswith("smtpproto.adapters")
    } == set()


def _documented_tree() -> set[str]:
    # The ```text block under "## The tree" in docs/internals.md: nested names by indentation.
    text = (ROOT / "docs" / "internals.md").read_text()
    block = text.split("## The tree", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    paths: set[str] = set()
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = "/".join([*(part for _, part in stack), name]).replace("//", "/")
        if name.endswith("/"):
            stack.append((indent, name.rstrip("/")))
        else:
            paths.add(path)
    return paths


def test_internals_lists_every_module_once_with_its_line() -> None:
    on_disk = {
        str(path.relative_to(ROOT)) for folder in PACKAGES.values() for path in folder.rglob("*.py")
    }
    assert _documented_tree() == on_disk
