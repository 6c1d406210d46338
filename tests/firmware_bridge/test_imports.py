"""The modules of firmware_bridge import one another without a cycle (read from the source, like grimp).

Every import counts, also those inside functions and under ``TYPE_CHECKING``: a cycle hidden by a
lazy import is still a cycle to a reader.
"""

from __future__ import annotations

import ast
from pathlib import Path

import firmware_bridge

ROOT = Path(firmware_bridge.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the modules of the package it imports (``from a import b`` is ``a.b`` when that is a module)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in modules)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for a in node.names:
                    sub = f"{node.module}.{a.name}"
                    deps.add(sub if sub in modules else node.module)
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path ``[a, b, …, a]``, or ``[]`` when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (found := visit(dep)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_find_cycle_sees_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_firmware_bridge_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "firmware_bridge.emulator.serve" in graph
    assert find_cycle(graph) == []


def test_no_emulator_module_is_in_an_import_cycle() -> None:
    graph = import_graph()
    for module in (m for m in graph if m.startswith("firmware_bridge.emulator")):
        seen, todo = set(), list(graph[module])
        while todo:  # everything the module imports, directly or not
            dep = todo.pop()
            if dep not in seen:
                seen.add(dep)
                todo.extend(graph[dep])
        assert module not in seen, f"{module} imports itself through {sorted(seen)}"


def test_emulator_io_and_handlers_do_not_import_the_emulator_class() -> None:
    graph = import_graph()
    for inner in ("state", "parsing", "handlers", "sequences", "dialects", "serve"):
        assert "firmware_bridge.emulator" not in graph[f"firmware_bridge.emulator.{inner}"], inner
