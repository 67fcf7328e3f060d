"""LightGBM text models → trees, by a strict reader of the text format (never pickle).

Only what the native walker implements is accepted; anything else (linear trees,
random-forest averaging) raises UnsupportedModelError, and the Booster serves instead.
"""

from __future__ import annotations

from dataclasses import dataclass


class UnsupportedModelError(ValueError):
    """A model uses something the tree walker does not implement; use Booster.predict."""


@dataclass(frozen=True)
class TextTree:
    """One tree as the text gives it: LightGBM node ids, children (~leaf for a leaf)."""

    num_leaves: int
    split_feature: list[int]
    threshold: list[float]
    decision_type: list[int]
    left: list[int]
    right: list[int]
    leaf_value: list[float]
    cat_boundaries: list[int]
    cat_threshold: list[int]


@dataclass(frozen=True)
class ParsedModel:
    """The trees of one model text, and its feature names in the booster's order."""

    feature_names: tuple[str, ...]
    per_iteration: int  # trees per boosting round (num_class for multiclass, else 1)
    trees: tuple[TextTree, ...]


def _ints(s: str) -> list[int]:
    return [int(v) for v in s.split()]


def _floats(s: str) -> list[float]:
    # float() is correctly rounded, as LightGBM's own parser: the same doubles, bit for bit.
    return [float(v) for v in s.split()]


def parse_model(text: str) -> ParsedModel:
    """The trees of a LightGBM text model; UnsupportedModelError for what the walker lacks."""
    head, sep, rest = text.partition("\nTree=")
    if not sep:
        raise UnsupportedModelError("no trees in the model text")
    header: dict[str, str] = {}
    flags: set[str] = set()
    for line in head.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            header[key.strip()] = value.strip()
        elif line.strip():
            flags.add(line.strip())
    if "average_output" in flags:
        raise UnsupportedModelError("random-forest averaging (average_output)")
    per_iteration = int(header.get("num_tree_per_iteration", "1"))
    names = tuple(header.get("feature_names", "").split())
    body = rest.split("end of trees", 1)[0]
    trees = []
    for block in ("Tree=" + body).split("\nTree=")[0:]:
        kv: dict[str, str] = {}
        for line in block.splitlines():
            key, eq, value = line.partition("=")
            if eq:
                kv[key.strip()] = value
        if not kv:
            continue
        if kv.get("is_linear", "0").strip() not in ("0", ""):
            raise UnsupportedModelError("linear trees")
        n = int(kv["num_leaves"])
        if n <= 1:
            trees.append(TextTree(max(n, 1), [], [], [], [], [],
                               _floats(kv.get("leaf_value", "0")), [0], []))
            continue
        num_cat = int(kv.get("num_cat", "0"))
        trees.append(TextTree(
            num_leaves=n,
            split_feature=_ints(kv["split_feature"]),
            threshold=_floats(kv["threshold"]),
            decision_type=_ints(kv["decision_type"]),
            left=_ints(kv["left_child"]),
            right=_ints(kv["right_child"]),
            leaf_value=_floats(kv["leaf_value"]),
            cat_boundaries=_ints(kv["cat_boundaries"]) if num_cat > 0 else [0],
            cat_threshold=_ints(kv["cat_threshold"]) if num_cat > 0 else [],
        ))
    return ParsedModel(feature_names=names, per_iteration=per_iteration, trees=tuple(trees))
