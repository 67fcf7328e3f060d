"""Exact tree attributions (SHAP values) of every feature, as LightGBM's pred_contrib gives
them, computed natively (treeshap.c) at a small multiple of the cost of a prediction.

`NativeAttributions` flattens one LightGBM text model into the arrays ts_new() takes;
`BoosterAttributions` is the reference (`Booster.predict(pred_contrib=True)`);
`attributions_for` picks the native one when it builds and agrees with the reference on probe
rows (to 1e-9), else the reference, logging once: the same fallback rules as the walker.

Both read rows laid out by a schema (`columns` maps the model's features to its columns) and
return (rows, num_class * (features + 1)) in the model's own feature order, the expected
value last in each class's block: the layout of pred_contrib.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from app.engine.model_text import TextTree, UnsupportedModelError, parse_model
from app.engine.native import BuildError, load_library, warn_once
from app.engine.trees import TreeModel

log = logging.getLogger("tierwise.scoring")

TOLERANCE = 1e-9  # largest difference from pred_contrib the self-check accepts
QMAX = 32  # TS_QMAX in treeshap.c: Gauss-Legendre points per tree (64 features on a path)

# ts_node of treeshap.c (natural C alignment: 48 bytes).
NODE_DTYPE = np.dtype([
    ("a", "<f8"), ("z", "<f8"), ("r", "<f8"), ("right", "<i2"), ("parent", "<i2"),
    ("anc", "<i2"), ("sub", "<i2"), ("col", "<i2"), ("out", "<i2"), ("cat", "<i4"),
    ("ncat", "<i2"), ("dtype", "u1"), ("isleft", "u1"),
], align=True)
assert NODE_DTYPE.itemsize == 48


class Attributions(Protocol):
    """SHAP values of one model for rows of a schema layout."""

    name: str

    def contributions(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """(len(rows) or n, num_class * (features + 1)), as pred_contrib lays them out."""
        ...


class BoosterAttributions:
    """LightGBM's own pred_contrib: the reference, and the fallback."""

    name = "lightgbm"

    def __init__(self, model: TreeModel, columns: np.ndarray) -> None:
        self.model = model
        self.columns = np.asarray(columns, dtype=np.intp)

    def contributions(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        picked = x if rows is None else x[np.asarray(rows, dtype=np.intp)]
        sub = picked[:, self.columns]
        width = self.model.num_class * (len(self.columns) + 1)
        if sub.shape[0] == 0:
            return np.zeros((0, width))
        return np.asarray(self.model.booster.predict(sub, pred_contrib=True)).reshape(-1, width)


def tree_counts(text: str) -> list[tuple[list[float], list[float]]]:
    """Per tree of a checked model text: (internal_count, leaf_count), empty when absent."""
    body = text.partition("\nend of trees")[0]
    out = []
    for block in body.split("\nTree=")[1:]:
        kv = dict(line.partition("=")[::2] for line in block.splitlines()[1:] if "=" in line)
        out.append(([float(v) for v in kv.get("internal_count", "").split()],
                    [float(v) for v in kv.get("leaf_count", "").split()]))
    return out


def gauss_legendre(q: int) -> tuple[np.ndarray, np.ndarray]:
    """q points and weights on [0, 1], padded to a multiple of 4 (padding: t 0.5, weight 0)."""
    x, w = np.polynomial.legendre.leggauss(q)
    pad = -q % 4
    return (np.concatenate([(x + 1.0) / 2.0, np.full(pad, 0.5)]),
            np.concatenate([w / 2.0, np.zeros(pad)]))


def expected_value(tree: TextTree, internal: list[float], leaves: list[float]) -> float:
    """Tree::ExpectedValue of LightGBM, in its order of operations."""
    if tree.num_leaves == 1:
        return tree.leaf_value[0]
    total = internal[0]
    ev = 0.0
    for count, value in zip(leaves, tree.leaf_value, strict=True):
        ev += (count / total) * value
    return ev


class _Flat:
    """Trees of one model as treeshap.c's arrays."""

    def __init__(self, text: str, columns: Sequence[int] | np.ndarray, width: int) -> None:
        parsed = parse_model(text)
        nf = len(parsed.feature_names)
        if len(columns) != nf:
            raise UnsupportedModelError(f"{len(columns)} columns for {nf} features")
        if nf >= 32767 or width >= 32767:
            raise UnsupportedModelError("more than 32,766 features")
        k = parsed.per_iteration
        counts = tree_counts(text)
        if len(counts) != len(parsed.trees):
            raise UnsupportedModelError("the tree counts cannot be read")
        self.nout = k * (nf + 1)
        self.width = width
        bias = np.zeros(self.nout)
        nodes: list[np.ndarray] = []
        node0, qs, qoff, base = [0], [], [], []
        tq: list[np.ndarray] = []
        wq: list[np.ndarray] = []
        self.cat: list[int] = []
        for i, (tree, (internal, leaves)) in enumerate(zip(parsed.trees, counts, strict=True)):
            b = (i % k) * (nf + 1)
            bias[b + nf] += expected_value(tree, internal, leaves) if tree.num_leaves > 1 \
                else tree.leaf_value[0]
            arr, depth = self._tree(i, tree, internal, leaves, columns)
            q = max(1, math.ceil(depth / 2))
            if q > QMAX:
                raise UnsupportedModelError(f"tree {i}: {depth} distinct features on a path")
            t, w = gauss_legendre(q)
            nodes.append(arr)
            node0.append(node0[-1] + len(arr))
            qs.append(len(t))
            qoff.append(sum(len(v) for v in tq))
            tq.append(t)
            wq.append(w)
            base.append(b)
        self.nodes = np.ascontiguousarray(np.concatenate(nodes) if nodes else
                                          np.zeros(0, NODE_DTYPE))
        self.node0 = np.asarray(node0, dtype=np.int32)
        self.q = np.asarray(qs, dtype=np.int32)
        self.qoff = np.asarray(qoff, dtype=np.int32)
        self.tq = np.ascontiguousarray(np.concatenate(tq) if tq else np.zeros(0))
        self.wq = np.ascontiguousarray(np.concatenate(wq) if wq else np.zeros(0))
        self.base = np.asarray(base, dtype=np.int32)
        self.bias = bias
        self.cats = np.asarray(self.cat if self.cat else [0], dtype=np.uint32)

    def _tree(self, i: int, t: TextTree, internal: list[float], leaves: list[float],
              columns: Sequence[int] | np.ndarray) -> tuple[np.ndarray, int]:
        """The tree's nodes in pre-order, and the most distinct features on one path."""
        if t.num_leaves == 1:
            arr = np.zeros(1, NODE_DTYPE)
            arr[0] = (t.leaf_value[0], 1.0, 1.0, -1, -1, -1, -1, 0, 0, -1, 0, 0, 0)
            return arr, 0
        if len(internal) != t.num_leaves - 1 or len(leaves) != t.num_leaves \
                or min(internal) <= 0 or min(leaves) <= 0:
            raise UnsupportedModelError(f"tree {i}: data counts missing or zero")
        if 2 * t.num_leaves - 1 > 32767:
            raise UnsupportedModelError(f"tree {i}: more than 32,767 nodes")
        rows: list[list[float | int]] = []
        depth = 0
        cats: dict[int, int] = {}
        # (LightGBM node, parent position, is left, feature -> edge position on the path)
        stack: list[tuple[int, int, int, dict[int, int]]] = [(0, -1, 0, {})]
        while stack:
            node, parent, isleft, path = stack.pop()
            c = len(rows)
            count = internal[node] if node >= 0 else leaves[~node]
            z = r = 1.0
            anc = out = -1
            if parent >= 0:
                if not isleft:
                    rows[parent][3] = c
                pnode = int(rows[parent][13])  # the parent's LightGBM node
                f = t.split_feature[pnode]
                r = count / (internal[pnode])
                anc = path.get(f, -1)
                z = (float(rows[anc][1]) if anc >= 0 else 1.0) * r
                out = f
                path = {**path, f: c}
            if node < 0:
                depth = max(depth, len(path))
                rows.append([t.leaf_value[~node], z, r, -1, parent, anc, -1, 0, out, -1, 0, 0,
                             isleft, node])
                continue
            f = t.split_feature[node]
            d = t.decision_type[node]
            cat, ncat = -1, 0
            if d & 1:
                ci = int(t.threshold[node])
                b0, b1 = t.cat_boundaries[ci], t.cat_boundaries[ci + 1]
                if ci not in cats:
                    cats[ci] = len(self.cat)
                    self.cat.extend(t.cat_threshold[b0:b1])
                cat, ncat = cats[ci], b1 - b0
            rows.append([t.threshold[node], z, r, 0, parent, anc, path.get(f, -1),
                         int(columns[f]), out, cat, ncat, d, isleft, node])
            stack.append((t.right[node], c, 0, path))
            stack.append((t.left[node], c, 1, path))
        return np.array([tuple(row[:13]) for row in rows], dtype=NODE_DTYPE), depth


class NativeAttributions:
    """treeshap.c on one model's trees: pred_contrib's values, natively."""

    name = "treeshap"

    def __init__(self, model: TreeModel, columns: Sequence[int] | np.ndarray, width: int, *,
                 cache_dir: Path | None = None, cc: str | None = None,
                 lib: ctypes.CDLL | None = None) -> None:
        self.model = model
        self.columns = np.asarray(columns, dtype=np.intp)
        flat = _Flat(model.text, self.columns.tolist(), width)
        self._lib = lib or load_library(cache_dir, cc=cc)
        ptr = lambda a: a.ctypes.data  # noqa: E731
        handle = self._lib.ts_new(
            len(flat.q), len(flat.nodes), ptr(flat.nodes), ptr(flat.node0), ptr(flat.q),
            ptr(flat.qoff), len(flat.tq), ptr(flat.tq), ptr(flat.wq), ptr(flat.base),
            len(flat.cats), ptr(flat.cats), width, flat.nout, ptr(flat.bias))
        if not handle:
            raise BuildError("the attribution engine refused the model arrays "
                             "(or memory is short)")
        self._handle = handle
        self._free = self._lib.ts_free
        self._contrib = self._lib.ts_contrib
        self.width = width
        self.nout = flat.nout

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._free(handle)

    def contributions(self, x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        if type(x) is not np.ndarray or x.dtype != np.float64 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"rows must have shape (n, {self.width}), got {x.shape}")
        rp = None
        n = x.shape[0]
        if rows is not None:
            idx = np.ascontiguousarray(rows, dtype=np.int64)
            if idx.ndim != 1 or (len(idx) and (idx.min() < 0 or idx.max() >= n)):
                raise IndexError(f"row indices must lie in [0, {n})")
            n, rp = len(idx), idx.ctypes.data
        out = np.empty((n, self.nout))
        if n and self._contrib(self._handle, x.ctypes.data, n, rp, out.ctypes.data):
            raise MemoryError("ts_contrib failed")
        return out


def max_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Largest |a - b| (inf when the shapes differ or one is NaN where the other is not)."""
    if a.shape != b.shape:
        return math.inf
    if not a.size:
        return 0.0
    d = np.abs(a - b)
    return float(np.nan_to_num(d, nan=math.inf).max())


# Checked attributions kept per process, keyed by the model's text, the layout, the probe rows,
# the compile cache and the compiler (everything the check depends on): a context rebuilt on
# the same model (a swap back, another replica's build, the next test) reuses the checked
# object instead of checking it again (~0.8 s for the default models). Both kinds only read
# their arrays once built, so one object serves any number of contexts and threads.
KEPT_ATTRIBUTIONS = 64
_kept: OrderedDict[tuple[object, ...], Attributions] = OrderedDict()
_kept_lock = threading.Lock()


def attributions_for(model: TreeModel, columns: Sequence[int] | np.ndarray, probe: np.ndarray, *,
                     cache_dir: Path | None, cc: str | None = None) -> Attributions:
    """The native attributions when they build and equal pred_contrib on `probe` rows (and
    on its first rows one at a time), else pred_contrib itself, with a warning logged once.
    Kept per process for the same model text, layout and probe (the last KEPT_ATTRIBUTIONS)."""
    cols = np.ascontiguousarray(columns, dtype=np.int64)
    probe = np.ascontiguousarray(probe, dtype=np.float64)
    key = (hashlib.sha256(model.text.encode("utf-8")).digest(), cols.tobytes(), probe.shape,
           hashlib.sha256(probe.tobytes()).digest(), str(cache_dir), cc)
    with _kept_lock:
        got = _kept.get(key)
        if got is not None:
            _kept.move_to_end(key)
            return got
    got = _checked(model, cols, probe, cache_dir=cache_dir, cc=cc)
    with _kept_lock:
        _kept[key] = got
        while len(_kept) > KEPT_ATTRIBUTIONS:
            _kept.popitem(last=False)
    return got


def forget_kept() -> None:
    """Drop the checked attributions kept per process (the next call checks again)."""
    with _kept_lock:
        _kept.clear()


def _checked(model: TreeModel, columns: np.ndarray, probe: np.ndarray, *,
             cache_dir: Path | None, cc: str | None) -> Attributions:
    reference = BoosterAttributions(model, np.asarray(columns))
    try:
        fast = NativeAttributions(model, columns, probe.shape[1], cache_dir=cache_dir, cc=cc)
        want = reference.contributions(probe)
        diff = max_difference(fast.contributions(probe), want)
        for i in range(min(len(probe), 4)):
            diff = max(diff, max_difference(fast.contributions(probe[i:i + 1]), want[i:i + 1]))
    except BuildError as exc:
        warn_once("shap-build", "native attributions unavailable, using pred_contrib: %s", exc)
        return reference
    except UnsupportedModelError as exc:
        warn_once(f"shap-unsupported:{exc}", "model %s is not supported by the native "
                  "attributions, using pred_contrib: %s", model.name, exc)
        return reference
    except Exception as exc:  # a fast path must never stop a context from serving
        log.exception("the native attributions failed, using pred_contrib: %s", exc)
        return reference
    if not diff <= TOLERANCE:
        warn_once(f"shap-mismatch:{model.name}", "native attributions of %s differ from "
                  "pred_contrib by %g on probe rows, using pred_contrib", model.name, diff)
        return reference
    return fast
