"""LightGBM text models → trees, by a strict reader of the text format (never pickle).

`check_model` checks a text completely before anything else reads it: LightGBM's own parser
trusts its input (a `num_leaves` that disagrees with an array aborts the process, a feature
index out of range is read out of bounds), so no text reaches `lgb.Booster` unless it passed
here. A malformed text raises ModelTextError naming the check. Only what the native walker
implements is walked; the rest (linear trees, random-forest averaging) is checked the same
way, then `parse_model` raises UnsupportedModelError for it, and the Booster serves instead.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar


class UnsupportedModelError(ValueError):
    """A model uses something the tree walker does not implement; use Booster.predict."""


class ModelTextError(ValueError):
    """A model text is malformed; `check` names the rule it broke."""

    def __init__(self, check: str, problem: str) -> None:
        super().__init__(f"{check}: {problem}")
        self.check = check
        self.problem = problem


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
    is_linear: bool = False


@dataclass(frozen=True)
class ParsedModel:
    """The trees of one model text, and its feature names in the booster's order."""

    feature_names: tuple[str, ...]
    per_iteration: int  # trees per boosting round (num_class for multiclass, else 1)
    trees: tuple[TextTree, ...]
    objective: str = ""  # "binary", "multiclass" or "regression" (L2, identity link)
    num_class: int = 1
    average_output: bool = False


MAX_TREES = 100_000
MAX_LEAVES = 1 << 17
MAX_FEATURES = 100_000
_T = TypeVar("_T")
# Arrays with one value per internal node, or per leaf; LightGBM fills the optional ones.
_INTERNAL = ("split_feature", "threshold", "decision_type", "left_child", "right_child")
_INTERNAL_OPTIONAL = ("split_gain", "internal_value", "internal_weight", "internal_count")
_LEAF_OPTIONAL = ("leaf_weight", "leaf_count")


def _values(check: str, s: str, cast: Callable[[str], _T]) -> list[_T]:
    try:
        return list(map(cast, s.split()))
    except ValueError:
        raise ModelTextError(check, "holds a value that is not a number") from None


def _int(check: str, s: str | None, low: int, high: int) -> int:
    if s is None:
        raise ModelTextError(check, "missing")
    values = _values(check, s, int)
    v = values[0] if len(values) == 1 else low - 1
    if not low <= v <= high:
        raise ModelTextError(check, f"{s.strip()[:40]!r} is not an integer in [{low}, {high}]")
    return v


def _finite(check: str, s: str, *, infinite: bool = False) -> list[float]:
    # float() is correctly rounded, as LightGBM's own parser: the same doubles, bit for bit.
    # LightGBM writes thresholds of inf for splits at a feature's top; NaN never.
    out = _values(check, s, float)
    if not (all(map(math.isfinite, out)) or (infinite and not any(map(math.isnan, out)))):
        raise ModelTextError(check, "holds a value that is not finite")
    return out


def _header(head: str) -> tuple[dict[str, str], set[str]]:
    header: dict[str, str] = {}
    flags: set[str] = set()
    for line in head.splitlines():
        key, eq, value = line.partition("=")
        if eq:
            header[key.strip()] = value.strip()
        elif line.strip():
            flags.add(line.strip())
    return header, flags


def _objective(value: str | None) -> tuple[str, int]:
    words = (value or "").split()
    if words[:1] == ["binary"] and all(w.startswith("sigmoid:") for w in words[1:]):
        if len(words) > 1:
            _finite("objective", words[1].partition(":")[2])
        return "binary", 1
    if words[:1] == ["multiclass"] and len(words) == 2 and words[1].startswith("num_class:"):
        return "multiclass", _int("objective", words[1].partition(":")[2], 2, 1000)
    if words == ["regression"]:  # L2: raw score is the prediction ("regression sqrt" is not)
        return "regression", 1
    raise ModelTextError("objective", f"{(value or '')[:60]!r} is not binary, multiclass or "
                                      "regression")


def _blocks(data: bytes, sizes: list[int]) -> Iterable[str]:
    """The tree blocks as `tree_sizes` cuts them (LightGBM reads them by these offsets)."""
    start = data.find(b"\nTree=0\n")
    if start < 0:
        raise ModelTextError("trees", "no Tree=0")
    pos = start + 1
    for i, size in enumerate(sizes):
        block = data[pos:pos + size]
        if len(block) != size or not block.startswith(b"Tree=%d\n" % i) \
                or not (block.endswith(b"\n\n\n") or i == len(sizes) - 1):
            raise ModelTextError("tree_sizes", f"tree {i} does not span {size} bytes")
        yield block.decode("utf-8", errors="strict")
        pos += size
    if not data[pos:].lstrip(b"\n").startswith(b"end of trees"):
        raise ModelTextError("tree_sizes", "the trees do not end where tree_sizes says")
    if data.count(b"\nTree=", start) != len(sizes):
        raise ModelTextError("tree_sizes", f"{len(sizes)} sizes for another number of trees")


def check_model(text: str) -> ParsedModel:
    """A LightGBM text model checked in full; ModelTextError names the first failed check."""
    data = text.encode("utf-8")
    head = text.partition("\nTree=")[0]
    header, flags = _header(head)
    if header.get("version") != "v4":
        raise ModelTextError("version", f"{header.get('version', '')[:20]!r} is not v4")
    objective, num_class = _objective(header.get("objective"))
    if _int("num_class", header.get("num_class"), 1, 1000) != num_class:
        raise ModelTextError("num_class", "differs from the objective's")
    per_iteration = _int("num_tree_per_iteration", header.get("num_tree_per_iteration"), 1, 1000)
    if per_iteration != num_class:
        raise ModelTextError("num_tree_per_iteration", f"is {per_iteration}, not {num_class}")
    max_idx = _int("max_feature_idx", header.get("max_feature_idx"), 0, MAX_FEATURES - 1)
    names = tuple(header.get("feature_names", "").split())
    if len(names) != max_idx + 1 or len(set(names)) != len(names):
        raise ModelTextError("feature_names", f"{len(names)} distinct names needed "
                                              f"{max_idx + 1} (max_feature_idx + 1)")
    if "feature_infos" in header and len(header["feature_infos"].split()) != len(names):
        raise ModelTextError("feature_infos", "not one per feature")
    sizes = _values("tree_sizes", header.get("tree_sizes", ""), int)
    if not 0 < len(sizes) <= MAX_TREES or len(sizes) % per_iteration or min(sizes) <= 0:
        raise ModelTextError("tree_sizes", f"{len(sizes)} trees for {per_iteration} per round")
    trees = tuple(_tree(i, block, len(names)) for i, block in enumerate(_blocks(data, sizes)))
    return ParsedModel(feature_names=names, per_iteration=per_iteration, trees=trees,
                       objective=objective, num_class=num_class,
                       average_output="average_output" in flags)


_PASSED: dict[str, tuple[str, ...]] = {}  # sha256 of a text that passed → its feature names
_PASSED_MAX = 256
_PASSED_LOCK = threading.Lock()


def checked_features(text: str) -> tuple[str, ...]:
    """The feature names of a text that passes check_model; a text seen before (by sha256)
    is not checked again (a context build loads every family's models each time)."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    if (names := _PASSED.get(digest)) is None:
        parsed = check_model(text)
        names = parsed.feature_names
        with _PASSED_LOCK:
            if len(_PASSED) >= _PASSED_MAX:
                _PASSED.pop(next(iter(_PASSED)))
            _PASSED[digest] = names
            if len(_HANDOFF) >= _HANDOFF_MAX:
                _HANDOFF.pop(next(iter(_HANDOFF)))
            _HANDOFF[digest] = parsed
    return names


# The trees checked_features parsed, kept for the next parse_model of the same text: a context
# build checks every model, then the tree walker flattens them, and parsing a model is the
# longest step of both (~15 ms a model). Each is handed over once (popped), so the cache
# holds nothing once the walker is built; bounded for contexts built without the walker.
_HANDOFF: dict[str, ParsedModel] = {}
_HANDOFF_MAX = 16


def _handed_over(text: str) -> ParsedModel | None:
    if not _HANDOFF:
        return None
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    with _PASSED_LOCK:
        return _HANDOFF.pop(digest, None)


def parse_model(text: str) -> ParsedModel:
    """The checked trees of a model text; UnsupportedModelError for what the walker lacks."""
    parsed = _handed_over(text) or check_model(text)
    if parsed.average_output:
        raise UnsupportedModelError("random-forest averaging (average_output)")
    if any(t.is_linear for t in parsed.trees):
        raise UnsupportedModelError("linear trees")
    return parsed


def _keys(i: int, block: str) -> dict[str, str]:
    kv: dict[str, str] = {}
    for line in block.splitlines()[1:]:
        key, eq, value = line.partition("=")
        if eq:
            if key in kv:
                raise ModelTextError(f"tree {i} {key}", "given twice")
            kv[key] = value
        elif line:
            raise ModelTextError(f"tree {i}", f"unexpected line {line[:40]!r}")
    return kv


def _tree(i: int, block: str, num_features: int) -> TextTree:
    kv = _keys(i, block)
    n = _int(f"tree {i} num_leaves", kv.get("num_leaves"), 1, MAX_LEAVES)
    num_cat = _int(f"tree {i} num_cat", kv.get("num_cat", "0"), 0, max(n - 1, 0))
    linear = _int(f"tree {i} is_linear", kv.get("is_linear", "0"), 0, 1) == 1
    _finite(f"tree {i} shrinkage", kv.get("shrinkage", "1"))
    leaf_value = _finite(f"tree {i} leaf_value", kv.get("leaf_value", ""))
    if len(leaf_value) != n:
        raise ModelTextError(f"tree {i} leaf_value", f"{len(leaf_value)} values for {n} leaves")
    for key in _LEAF_OPTIONAL if n > 1 else ():  # LightGBM reads only leaf_value of a stump
        if key in kv and len(_finite(f"tree {i} {key}", kv[key])) != n:
            raise ModelTextError(f"tree {i} {key}", f"not {n} values (num_leaves)")
    if linear:
        _linear(i, kv, n, num_features)
    if n == 1:
        return TextTree(1, [], [], [], [], [], leaf_value, [0], [], linear)
    for key in (*_INTERNAL, *_INTERNAL_OPTIONAL):
        if key in _INTERNAL and key not in kv:
            raise ModelTextError(f"tree {i} {key}", "missing")
        if key in kv and len(kv[key].split()) != n - 1:
            raise ModelTextError(f"tree {i} {key}",
                                 f"{len(kv[key].split())} values for {n - 1} splits "
                                 f"(num_leaves - 1)")
    for key in _INTERNAL_OPTIONAL:
        if key in kv:
            _finite(f"tree {i} {key}", kv[key])
    split_feature = _values(f"tree {i} split_feature", kv["split_feature"], int)
    if any(not 0 <= f < num_features for f in split_feature):
        raise ModelTextError(f"tree {i} split_feature",
                             f"a feature index outside [0, {num_features})")
    decision = _values(f"tree {i} decision_type", kv["decision_type"], int)
    # bit 0 categorical, bit 1 default left, bits 2-3 missing type (none, zero, NaN)
    if any(d & ~0x0F or (d >> 2) & 3 == 3 for d in decision):
        raise ModelTextError(f"tree {i} decision_type", "an unknown decision type")
    threshold = _finite(f"tree {i} threshold", kv["threshold"], infinite=True)
    left = _values(f"tree {i} left_child", kv["left_child"], int)
    right = _values(f"tree {i} right_child", kv["right_child"], int)
    _shape(i, left, right, n)
    bounds, cats = _categories(i, kv, num_cat, decision, threshold)
    return TextTree(n, split_feature, threshold, decision, left, right, leaf_value,
                    bounds, cats, linear)


def _shape(i: int, left: list[int], right: list[int], n: int) -> None:
    """Children in range, and every node and leaf reached exactly once from the root."""
    seen_nodes, seen_leaves, stack = [False] * (n - 1), [False] * n, [0]
    seen_nodes[0] = True
    while stack:
        node = stack.pop()
        for child in (left[node], right[node]):
            if 0 <= child < n - 1 and not seen_nodes[child]:
                seen_nodes[child] = True
                stack.append(child)
            elif child < 0 and ~child < n and not seen_leaves[~child]:
                seen_leaves[~child] = True
            else:
                raise ModelTextError(f"tree {i} left_child/right_child",
                                     f"node {node} has child {child}: out of range or "
                                     "reached twice (not a tree)")
    if not all(seen_nodes) or not all(seen_leaves):
        raise ModelTextError(f"tree {i} left_child/right_child", "nodes unreachable from the root")


def _categories(i: int, kv: dict[str, str], num_cat: int, decision: list[int],
                threshold: list[float]) -> tuple[list[int], list[int]]:
    categorical = [k for k, d in enumerate(decision) if d & 1]
    if num_cat == 0:
        if categorical:
            raise ModelTextError(f"tree {i} num_cat", "0 with categorical splits")
        return [0], []
    bounds = _values(f"tree {i} cat_boundaries", kv.get("cat_boundaries", ""), int)
    cats = _values(f"tree {i} cat_threshold", kv.get("cat_threshold", ""), int)
    if len(bounds) != num_cat + 1 or bounds[0] != 0 or bounds[-1] != len(cats) \
            or any(b > a for b, a in itertools.pairwise(bounds)):
        raise ModelTextError(f"tree {i} cat_boundaries",
                             f"not {num_cat + 1} non-decreasing offsets from 0 to "
                             f"{len(cats)} (cat_threshold's length)")
    if any(not 0 <= c < 1 << 32 for c in cats):
        raise ModelTextError(f"tree {i} cat_threshold", "a bitset word outside 32 bits")
    for k in categorical:
        if not 0 <= threshold[k] < num_cat or threshold[k] != int(threshold[k]):
            raise ModelTextError(f"tree {i} threshold",
                                 f"split {k} names category set {threshold[k]!r} of {num_cat}")
    return bounds, cats


def _linear(i: int, kv: dict[str, str], n: int, num_features: int) -> None:
    if len(_finite(f"tree {i} leaf_const", kv.get("leaf_const", ""))) != n:
        raise ModelTextError(f"tree {i} leaf_const", f"not {n} values (num_leaves)")
    counts = _values(f"tree {i} num_features", kv.get("num_features", ""), int)
    if len(counts) != n or any(not 0 <= c <= num_features for c in counts):
        raise ModelTextError(f"tree {i} num_features", f"not {n} counts in range")
    features = _values(f"tree {i} leaf_features", kv.get("leaf_features", ""), int)
    coeff = _finite(f"tree {i} leaf_coeff", kv.get("leaf_coeff", ""))
    if len(features) != sum(counts) or len(coeff) != sum(counts) \
            or any(not 0 <= f < num_features for f in features):
        raise ModelTextError(f"tree {i} leaf_features", "do not match num_features")
