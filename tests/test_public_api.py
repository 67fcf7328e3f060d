"""app/ uses only the public API of the libraries it is built on.

A private name (leading underscore) of FastAPI, Starlette, uvicorn, numpy, LightGBM or any
other library can change in a patch release and silently switch a code path off; so can a
subclass of a server's internals. Checked on the source, with the AST:
- no import of a private module or name from a third-party package;
- no attribute `._name` read or written unless app/ itself defines `_name` (its own classes'
  private members are fine: `self._lock`, `formatter._timestamp`);
- no subclass of a uvicorn class, nor of a FastAPI/Starlette class other than their
  documented extension points (Response classes, exceptions);
- none of the scope keys or attribute names that earlier code borrowed from the framework.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

APP = Path(__file__).resolve().parent.parent / "app"
FRAMEWORKS = ("fastapi", "starlette", "uvicorn")
BORROWED = ("fastapi.telemetry", "_native_telemetry", "original_router", "httptools_impl",
            "HttpToolsProtocol", "build_middleware_stack")


def _modules() -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted(APP.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_names(trees: list[ast.Module]) -> set[str]:
    """Every name app/ defines: functions, classes, assigned attributes and names, slots."""
    names: set[str] = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
            elif (isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets)):
                names.update(c.value for c in ast.walk(node.value)
                             if isinstance(c, ast.Constant) and isinstance(c.value, str))
    return names


def _private_reads(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """`obj._x` and getattr/setattr/hasattr(obj, "_x") in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            yield node.lineno, node.attr
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
              and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and _is_private(node.args[1].value)):
            yield node.lineno, node.args[1].value


def _third_party(module: str) -> bool:
    top = module.split(".")[0]
    return top != "app" and top not in sys.stdlib_module_names


def test_no_private_imports_from_libraries() -> None:
    found = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if not _third_party(node.module):
                    continue
                if any(_is_private(part) for part in node.module.split(".")):
                    found.append(f"{path}:{node.lineno} from {node.module}")
                found.extend(f"{path}:{node.lineno} {node.module}.{alias.name}"
                             for alias in node.names if _is_private(alias.name))
            elif isinstance(node, ast.Import):
                found.extend(f"{path}:{node.lineno} import {alias.name}" for alias in node.names
                             if _third_party(alias.name)
                             and any(_is_private(p) for p in alias.name.split(".")))
    assert not found, "private library names imported:\n" + "\n".join(found)


def test_no_private_attributes_of_other_code() -> None:
    modules = list(_modules())
    own = _own_names([tree for _, tree in modules])
    found = [f"{path}:{line} .{attr}" for path, tree in modules
             for line, attr in _private_reads(tree) if attr not in own]
    assert not found, "private attributes of code app/ does not own:\n" + "\n".join(found)


def _imported_from(tree: ast.Module) -> dict[str, str]:
    """Local name -> the module it was imported from."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                names[alias.asname or alias.name] = node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                names[(alias.asname or alias.name).split(".")[0]] = alias.name
    return names


def test_no_subclass_of_server_internals() -> None:
    found = []
    for path, tree in _modules():
        imported = _imported_from(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.ClassDef):
                continue
            for base in node.bases:
                name = base.id if isinstance(base, ast.Name) else (
                    base.attr if isinstance(base, ast.Attribute) else "")
                root = base.value.id if (isinstance(base, ast.Attribute)
                                         and isinstance(base.value, ast.Name)) else name
                module = imported.get(root, "")
                if module.split(".")[0] not in FRAMEWORKS:
                    continue
                extension_point = name.endswith(("Response", "Exception", "Error"))
                if module.startswith("uvicorn") or not extension_point:
                    found.append(f"{path}:{node.lineno} class {node.name}({module}.{name})")
    assert not found, "subclasses of framework internals:\n" + "\n".join(found)


def test_no_borrowed_framework_names() -> None:
    found = [f"{path}: {name}" for path in sorted(APP.rglob("*.py"))
             for name in BORROWED if name in path.read_text(encoding="utf-8")]
    assert not found, "\n".join(found)


def test_the_checks_would_catch_what_they_look_for() -> None:
    """The AST checks flag the shapes of code that app/ had before (so they can fail)."""
    sample = ast.parse(
        "from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol\n"
        "from numpy import _core\n"
        "class P(HttpToolsProtocol): pass\n"
        "x = app._native_telemetry\n")
    imports = [n for n in ast.walk(sample) if isinstance(n, ast.ImportFrom)]
    assert any(_is_private(a.name) for n in imports for a in n.names)
    private = [attr for _, attr in _private_reads(sample)]
    assert private == ["_native_telemetry"]
    assert [a for _, a in _private_reads(ast.parse("getattr(app, '_x', None)"))] == ["_x"]
    assert _imported_from(sample)["HttpToolsProtocol"].startswith("uvicorn")
