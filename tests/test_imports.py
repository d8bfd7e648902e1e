"""The project's import structure: no cycles, no generic top-level names, the server free of torch.

Read from the source with `ast`, so every import counts: a lazy one inside a function and one under
`if TYPE_CHECKING:` tie two modules together as much as one at the top.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"server": "vr_recognition.server", "training": "vr_recognition.training",
            "sim": "vr_recognition.sim", "bench": "vr_recognition.bench"}  # fmt: skip
GENERIC = set(PACKAGES)


def project_modules() -> dict[str, Path]:
    modules = {}
    for folder, package in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            modules[name] = path
    return modules


def imports_of(path: Path, modules: dict[str, Path]) -> tuple[set[str], set[str]]:
    """(project modules imported, top-level names imported)."""
    edges, tops = set(), set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Import):
            for alias in node.names:
                tops.add(alias.name.split(".")[0])
                if alias.name in modules:
                    edges.add(alias.name)
        elif node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                if full in modules:
                    edges.add(full)
                elif node.module in modules:
                    edges.add(node.module)
    return edges, tops


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    modules = project_modules()
    edges, tops = {}, {}
    for name, path in modules.items():
        edges[name], tops[name] = imports_of(path, modules)
    return edges, tops


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
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
            if len(component) > 1 or node in edges.get(node, ()):
                cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_among_the_projects_modules():
    edges, _ = graph()
    assert len(edges) > 50  # the walk really found the project
    assert find_cycles(edges) == []


def test_no_module_imports_a_generic_top_level_name():
    """`import server` would work in a checkout and break once installed (or import a user's file)."""
    _, tops = graph()
    offenders = {name: sorted(found & GENERIC) for name, found in tops.items() if found & GENERIC}
    assert offenders == {}


def test_the_server_never_reaches_torch():
    """Everything vr_recognition.server imports, transitively, is free of torch and the training code."""
    edges, tops = graph()
    reached, todo = set(), [m for m in edges if m.startswith("vr_recognition.server")]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(edges[module])
    assert not [m for m in reached if not m.startswith("vr_recognition.server")]
    assert not [m for m in reached if tops[m] & {"torch", "torchvision", "timm"}]
