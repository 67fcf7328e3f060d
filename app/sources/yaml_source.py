"""Reading a YAML source safely, with every field's line (sources.py validates it).

Every problem is reported as `FILE:LINE: field.path: problem`, the line being where the
field (or, when it is missing, its parent) is written. Hostile input is refused before any
Python object is built: files over MAX_SOURCE_BYTES, tabs in indentation, nesting deeper
than MAX_DEPTH, anchors/aliases that expand beyond MAX_NODES nodes ("billion laughs") or
refer to themselves, duplicate keys (YAML lets the last one win silently; we refuse), more
than one document, a top level that is not a mapping. Only YAML's own tags are constructed
(the safe loader refuses python/object and every other tag).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import yaml

MAX_SOURCE_BYTES = 2 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000  # after expanding every alias
TOP = "(file)"

Path_: TypeAlias = tuple[str | int, ...]


@dataclass(frozen=True)
class SourceProblem:
    """One problem of a source file, at a line."""

    file: str
    line: int
    field: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.field}: {self.problem}"


class SourceError(ValueError):
    """A YAML source that cannot be used; `problems` lists each with its line."""

    def __init__(self, problems: list[SourceProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


def field_path(loc: Path_) -> str:
    """A location as a dotted path: features[3].minimum."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


@dataclass(frozen=True)
class Located:
    """The plain data of a YAML document and the line of each of its fields."""

    file: str
    data: Any
    lines: dict[Path_, int]

    def line_of(self, loc: Path_) -> int:
        """The line of the longest prefix of `loc` that is written in the file."""
        for end in range(len(loc), -1, -1):
            if (line := self.lines.get(tuple(loc[:end]))) is not None:
                return line
        return 1

    def problem(self, loc: Path_, problem: str) -> SourceProblem:
        return SourceProblem(self.file, self.line_of(loc), field_path(loc) or TOP, problem)


def _fail(file: str, line: int, problem: str, field: str = TOP) -> SourceError:
    return SourceError([SourceProblem(file, line, field, problem)])


def _yaml_error(file: str, exc: yaml.YAMLError) -> SourceError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = mark.line + 1 if mark is not None else 1
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"not valid YAML: {context + ', ' if context else ''}{problem}"
    return _fail(file, line, text)


def _read_text(path: Path, file: str) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise _fail(file, 1, f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > MAX_SOURCE_BYTES:
        raise _fail(file, 1, f"the file is larger than {MAX_SOURCE_BYTES} bytes; a source "
                    "this big is not a hand-written contract, catalogue or policy")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(file, data[: exc.start].count(b"\n") + 1,
                    "the file is not UTF-8 text") from None
    return text.removeprefix("\ufeff")


def _tabs(text: str, file: str) -> None:
    problems = []
    for i, line in enumerate(text.splitlines(), 1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent and line.strip():
            problems.append(SourceProblem(file, i, TOP, "a tab in the indentation: YAML "
                                          "indents with spaces only"))
    if problems:
        raise SourceError(problems)


def _depth(text: str, file: str) -> None:
    """Bound the nesting from the event stream (PyYAML composes recursively)."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else 1
                raise _fail(file, line, f"nests deeper than {MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _children(node: yaml.Node) -> Iterator[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        yield from node.value
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield key
            yield value


def _measure(root: yaml.Node, file: str) -> None:
    """Refuse aliases that refer to themselves or expand beyond MAX_NODES / MAX_DEPTH
    (iterative: the expanded tree is what pydantic would walk)."""
    size: dict[int, int] = {}
    height: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = list(_children(node))
            size[key] = 1 + sum(size[id(c)] for c in kids)
            height[key] = 1 + max((height[id(c)] for c in kids), default=0)
            active.discard(key)
            line = node.start_mark.line + 1
            if size[key] > MAX_NODES:
                raise _fail(file, line, f"expands to more than {MAX_NODES} values through "
                            "anchors and aliases")
            if height[key] > MAX_DEPTH:
                raise _fail(file, line, f"nests deeper than {MAX_DEPTH} levels through "
                            "anchors and aliases")
            continue
        if key in size:
            continue
        active.add(key)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in active:
                raise _fail(file, child.start_mark.line + 1,
                            "an alias refers to the node that contains it")
            if id(child) not in size:
                stack.append((child, False))


def _locate(node: yaml.Node, path: Path_, lines: dict[Path_, int], file: str,
            problems: list[SourceProblem]) -> None:
    """Record the line of every field and item; collect duplicate keys."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _locate(item, (*path, i), lines, file, problems)
    elif isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                problems.append(SourceProblem(file, key_node.start_mark.line + 1,
                                              field_path(path) or TOP,
                                              "a key must be plain text"))
                continue
            key, line = key_node.value, key_node.start_mark.line + 1
            if key == "<<":  # a merge key: its keys fall back to this mapping's line
                continue
            if key in seen:
                problems.append(SourceProblem(
                    file, line, field_path((*path, key)),
                    f"duplicate key (first written on line {seen[key]}); YAML would keep "
                    "only the last one silently"))
                continue
            seen[key] = line
            lines[(*path, key)] = line
            _locate(value, (*path, key), lines, file, problems)


def read_yaml(path: Path | str) -> Located:
    """The data of one YAML file (a mapping at the top) and the line of each field."""
    path = Path(path)
    file = str(path)
    text = _read_text(path, file)
    _tabs(text, file)
    loader = yaml.SafeLoader(text)
    try:
        _depth(text, file)
        root = loader.get_single_node()
        if root is None:
            raise _fail(file, 1, "the file is empty; it must be a mapping of fields")
        _measure(root, file)
        if not isinstance(root, yaml.MappingNode):
            kind = "a list" if isinstance(root, yaml.SequenceNode) else "a single value"
            raise _fail(file, root.start_mark.line + 1,
                        f"the top level must be a mapping of fields, not {kind}")
        lines: dict[Path_, int] = {(): 1}
        problems: list[SourceProblem] = []
        _locate(root, (), lines, file, problems)
        if problems:
            raise SourceError(problems)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(file, exc) from None
    except (ValueError, TypeError, OverflowError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise _fail(file, 1, f"a value cannot be read: {exc}") from None
    finally:
        loader.dispose()
    return Located(file, data, lines)
