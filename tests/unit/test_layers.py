"""The library's modules depend one way: no import cycle, no private name used across modules.

Read from the source (every import, at module level or inside a function), so a lazy import that
closes a cycle counts as the cycle it is.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "prompt_learning"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, names)`` for each import of another module of the package in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level == 1:
            module = node.module or ""
        elif node.level == 0 and (node.module or "").startswith("prompt_learning."):
            module = node.module.removeprefix("prompt_learning.")
        else:
            continue
        names = [a.name for a in node.names]
        if not module:  # from . import x, y
            found += [(name, []) for name in names]
        else:
            found.append((module.split(".")[0], names))
    return found


def graph() -> dict[str, set[str]]:
    modules = {p.stem: p for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {
        name: {m for m, _ in imports(path) if m in modules and m != name} for name, path in modules.items()
    }


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path ``a → b → … → a``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_module_graph_has_no_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_a_private_name_of_another():
    crossing = [
        f"{path.stem} imports {module}.{name}"
        for path in PACKAGE.glob("*.py")
        for module, names in imports(path)
        for name in names
        if name.startswith("_") and not name.startswith("__")
    ]
    assert not crossing, crossing


def test_the_foundations_import_nothing_of_the_package():
    edges = graph()
    for module in ("errors", "switches", "quantiles", "attention", "memory"):
        assert edges[module] <= {"errors"}, (module, edges[module])
