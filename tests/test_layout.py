"""The package's imports flow one way: read -> measure -> plan -> present -> pipeline -> scale -> cli.

Parses every module's imports (``if TYPE_CHECKING:`` blocks excluded, function-level imports
included) and fails on an import circle between modules or an import from a lower layer to a
higher one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lifecircle"

#: each module's layer; a module may import only modules of its own layer or a lower one
LAYERS = {
    "errors": 0, "validate": 0, "config": 0, "datasets": 0, "_moved": 0, "_version": 0, "_memory": 0,
    "read": 1, "measure": 2, "plan": 3, "present": 4,
    "pipeline": 5, "scale": 6, "cli": 7, "__main__": 7,
}


def _module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(path: Path, package: Path = PACKAGE) -> set[str]:
    """Absolute names of the lifecircle modules that ``path`` imports."""
    name = _module_name(path, package)
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("lifecircle"):
                for alias in node.names:  # `from . import cache` imports a module
                    sub = f"{mod}.{alias.name}"
                    found.add(sub if (package.parent / (sub.replace(".", "/") + ".py")).exists()
                              or (package.parent / sub.replace(".", "/")).is_dir() else mod)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("lifecircle"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return found


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def _graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    return {_module_name(p, package): _imports(p, package) for p in package.rglob("*.py")}


def _upward(graph: dict[str, set[str]], module: str) -> list[str]:
    return sorted(t for t in graph[module] if t != "lifecircle" and (_layer(t) or 0) > _layer(module))


GRAPH = _graph()


def test_every_module_has_a_layer():
    assert not [m for m in GRAPH if m != "lifecircle" and _layer(m) is None]


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m != "lifecircle"))
def test_no_upward_import(module):
    upward = _upward(GRAPH, module)
    assert not upward, f"{module} (layer {_layer(module)}) imports a higher layer: {upward}"


def _circles(full: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components over the module graph (the package face excluded)."""
    graph = {m: {t for t in deps if t in full and t != "lifecircle"} for m, deps in full.items() if m != "lifecircle"}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return circles


def test_no_import_circles():
    circles = _circles(GRAPH)
    assert not circles, f"import circles: {circles}"


def test_the_checker_sees_a_circle_and_an_upward_import(tmp_path):
    """On a hand-made package: a circle read.a <-> read.b, an upward read.a -> present.c (in a
    function), and an import under TYPE_CHECKING that must not count."""
    pkg = tmp_path / "lifecircle"
    for sub in ("read", "present"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "read" / "a.py").write_text("from . import b\n\ndef f():\n    from ..present.c import g\n")
    (pkg / "read" / "b.py").write_text("from .a import f\n")
    (pkg / "present" / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..read.a import f\nimport json\n")
    graph = _graph(pkg)
    assert _circles(graph) == [["lifecircle.read.a", "lifecircle.read.b"]]
    assert _upward(graph, "lifecircle.read.a") == ["lifecircle.present.c"]
    assert graph["lifecircle.present.c"] == set()


def test_old_import_paths_still_work():
    import importlib
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        old = importlib.import_module("lifecircle.network")
    new = importlib.import_module("lifecircle.read.network")
    assert old is new
    assert any("lifecircle.read.network" in str(w.message) for w in caught)
