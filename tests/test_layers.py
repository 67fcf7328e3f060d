"""The import graph of app/: no cycles, and dependencies pointing one way (DESIGN.md).

Every module of app/ is parsed with ast (nothing is imported). An edge A → B is any
`import` or `from … import` statement in A naming a module of app/: at module level, inside
functions (lazy imports), under `if TYPE_CHECKING:` and in try/except alike, because each
of them is a dependency of A's code on B's. `from app.x import y` is an edge to the module
app.x.y when y is a module, else to app.x. Relative imports are resolved. The implicit
import of a parent package's __init__ when a submodule is imported is not counted (it would
make every package that re-exports its submodules a cycle of its own).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"

# The web and database frameworks the pure layers must not touch.
FRAMEWORKS = frozenset({"fastapi", "starlette", "uvicorn", "httpx", "sqlalchemy", "alembic",
                        "psycopg", "psycopg2"})
PURE = ("engine", "decisions", "features", "outcomes", "monitoring")
UPPER = frozenset({"api", "dataplane", "registry", "serve", "scoring"})

# Layers, lowest first; a package may import only packages of a strictly lower layer.
# DESIGN.md: api -> dataplane -> scoring -> {engine, decisions, features, bundles};
# registry -> scoring; nothing imports back up. Placed around that: features under the
# other pure packages (they vectorise its rows, bundles declare its specs), the utilities
# every layer may use at the bottom (errors, settings, metrics and logs, the package's own
# __init__), training beside registry (it builds bundles with scoring's loader), the
# process (serve, main) and the settings reference over api, and the command line on top;
# the web pages' files and headers (ui) low, as they import nothing else of app/; decision
# ids and the control group's hash (outcomes) pure, beside decisions, since scoring signs
# every recommendation (the outcomes' SQL is the registry's: app/registry/outcomes.py);
# monitoring's statistics and counters (monitoring) pure, beside scoring, since the data
# plane counts what it scores and the trainers write references (its SQL, flushing and
# reports are the registry's: app/registry/monitoring.py, monitor.py).
LAYER: dict[str, int] = {
    "app": 0, "errors": 0, "config": 0, "observability": 0,
    "features": 1, "ui": 1,
    "engine": 2, "decisions": 2, "bundles": 2, "outcomes": 2,
    "scoring": 3, "sources": 3, "monitoring": 3,
    "dataplane": 4, "registry": 4, "training": 4,
    "api": 5, "authoring": 5, "book": 5,
    "serve": 6, "main": 6, "config_reference": 6,
    "cli": 7,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(APP.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {_module_name(p): p for p in sorted(APP.rglob("*.py"))}


def _imported(module: str, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
    """The names an import statement of `module` brings in, as absolute dotted names."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    base = node.module or ""
    if node.level:
        package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
        for _ in range(node.level - 1):
            package = package.rpartition(".")[0]
        base = f"{package}.{base}" if base else package
    for alias in node.names:
        yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base


def _imports(module: str) -> set[str]:
    """Everything `module` imports, anywhere in its code."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"), str(MODULES[module]))
    return {name for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)
            for name in _imported(module, node)}


IMPORTS: dict[str, set[str]] = {m: _imports(m) for m in MODULES}


def _app_module(name: str) -> str | None:
    """The module of app/ an imported name belongs to (the longest prefix that is one)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


GRAPH: dict[str, set[str]] = {
    m: {t for name in names if (t := _app_module(name)) is not None and t != m}
    for m, names in IMPORTS.items()
}


def package(module: str) -> str:
    """app.scoring.pipeline → scoring; app.errors → errors; app → app."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(graph) + 100))
    try:
        for v in sorted(graph):
            if v not in index:
                visit(v)
    finally:
        sys.setrecursionlimit(limit)
    return found


def _package_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for m, targets in GRAPH.items():
        graph[package(m)] |= {package(t) for t in targets if package(t) != package(m)}
    return graph


def _edges_from(packages: Iterable[str]) -> list[tuple[str, str]]:
    wanted = set(packages)
    return sorted((m, t) for m, targets in GRAPH.items() if package(m) in wanted
                  for t in targets)


def test_the_graph_is_read() -> None:
    """The parser sees the imports it must see (a broken parser would pass everything)."""
    assert "app.scoring.pipeline" in MODULES and "app.engine.walker" in MODULES
    assert "app.decisions.arbitration" in GRAPH["app.scoring.pipeline"]
    assert "app.engine.native" in GRAPH["app.engine.walker"]
    assert {"app.decisions.eligibility", "app.decisions.suitability"} <= GRAPH[
        "app.decisions.arbitration"]  # `from app.decisions import eligibility, …`
    assert "numpy" in IMPORTS["app.engine.walker"]


def test_no_cycle_between_modules() -> None:
    assert _cycles(GRAPH) == []


def test_no_cycle_between_packages() -> None:
    assert _cycles(_package_graph()) == []


def test_every_package_has_a_layer() -> None:
    assert sorted({package(m) for m in MODULES} - set(LAYER)) == []


def test_dependencies_point_down() -> None:
    upward = [(m, t) for m, targets in sorted(GRAPH.items()) for t in sorted(targets)
              if package(m) != package(t)
              and LAYER.get(package(t), 99) >= LAYER.get(package(m), -1)]
    assert upward == []


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_import_no_framework(layer: str) -> None:
    """Directly or through any module of app/ they import."""
    seen: set[str] = set()
    todo = [m for m in MODULES if package(m) == layer]
    while todo:
        m = todo.pop()
        if m not in seen:
            seen.add(m)
            todo.extend(GRAPH[m])
    used = sorted((m, name) for m in seen for name in IMPORTS[m]
                  if name.split(".")[0] in FRAMEWORKS)
    assert used == []


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_import_nothing_above_them(layer: str) -> None:
    assert [(m, t) for m, t in _edges_from([layer]) if package(t) in UPPER] == []


def test_bundles_depend_on_features_only() -> None:
    assert [(m, t) for m, t in _edges_from(["bundles"])
            if package(t) not in {"bundles", "features", "errors"}] == []
