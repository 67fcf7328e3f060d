"""The fast evaluator: every tree of every model of a context walked in one native call.

`TreeWalkEvaluator` flattens the LightGBM text models of a `ModelLayout` into node arrays
(pre-order, 6 bytes a node, thresholds as 16-bit ranks, feature indices already mapped to
schema columns, leaves numbered left to right; treewalk.c explains the layout), plus the
QuickScorer arrays of every tree with at most 64 leaves (internal nodes with the leaf mask of
their left subtree) for batches and, with AVX-512, single rows, and hands them to a small C
tree walker.
The C source is compiled once per machine with the system C compiler into the compile cache
(keyed by the sha256 of the source, the flags and the compiler) and loaded with ctypes:
there is no per-model or per-version compile, so a new version gets the fast path as soon
as its arrays are built (a fraction of a second for ~2,600 trees).

The walker follows LightGBM's prediction rules exactly (see treewalk.c) and sums leaf values
in the same order, so raw scores are bit-identical to `Booster.predict(raw_score=True)`.
`fastest_evaluator` checks that on probe rows before returning it, and falls back to the
plain `BoosterEvaluator` (logging once) when no compiler is available, the build fails, a
model uses something the walker does not support (linear trees, random-forest averaging,
very large trees) or the check fails, so a broken fast path can never serve.

ctypes releases the GIL for the duration of the foreign call, and the native model is
read-only after it is built, so any number of request threads may call `raw` at once.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.engine.evaluate import BoosterEvaluator, Evaluator, ModelLayout, RawScores
from app.engine.trees import TreeModel
from app.features.schema import FeatureSchema

log = logging.getLogger("tierwise.scoring")

SOURCE = Path(__file__).with_name("treewalk.c")
LANES = 8  # TW_LANES in treewalk.c: node entries are stored multiplied by it
_ABI = 1100 + LANES  # TW_ABI * 100 + TW_LANES
CFLAGS = ("-O2", "-std=c99", "-shared", "-fPIC", "-fno-fast-math", "-ffp-contract=off")
# Largest difference from Booster.predict accepted by the self-check (the walker is exact).
TOLERANCE = 1e-9

# The structs of treewalk.c.
NODE_DTYPE = np.dtype([("thr", "<u2"), ("col", "<u2"), ("rm1", "<i2")])  # rm1: bytes to right
CATCOL_DTYPE = np.dtype([("feat", "<i4"), ("off", "<u4"), ("words", "<u4")])
# QuickScorer nodes (internal nodes of trees with <= 32 and <= 64 leaves): the ranked-row
# entry (not multiplied), the threshold index and the leaf mask: 0 bits for the leaves of the
# node's left subtree (leaves numbered left to right), 1 bits elsewhere.
Q32_DTYPE = np.dtype([("thr", "<u2"), ("col", "<u2"), ("mask", "<u4")])
Q64_DTYPE = np.dtype([("mask", "<u8"), ("thr", "<u2"), ("col", "<u2"), ("unused", "<u4")])
assert NODE_DTYPE.itemsize == 6 and CATCOL_DTYPE.itemsize == 12
assert Q32_DTYPE.itemsize == 8 and Q64_DTYPE.itemsize == 16
# Kernels of treewalk.c (tw_isa): none (every tree walked, batches and single rows), AVX2
# (QuickScorer batches; single rows walk), AVX-512 (QuickScorer batches and single rows).
ISA_NAMES = ("walk", "avx2", "avx512")


class UnsupportedModelError(ValueError):
    """A model uses something the tree walker does not implement; use Booster.predict."""


class BuildError(RuntimeError):
    """The C tree walker could not be compiled or loaded on this machine."""


# --------------------------------------------------------------------------------------------
# LightGBM text model → trees


@dataclass(frozen=True)
class _Tree:
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
    feature_names: tuple[str, ...]
    per_iteration: int  # trees per boosting round (num_class for multiclass, else 1)
    trees: tuple[_Tree, ...]


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
            trees.append(_Tree(max(n, 1), [], [], [], [], [],
                               _floats(kv.get("leaf_value", "0")), [0], []))
            continue
        num_cat = int(kv.get("num_cat", "0"))
        trees.append(_Tree(
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


# --------------------------------------------------------------------------------------------
# trees → flat arrays


@dataclass
class FlatModels:
    """Every tree of a layout as the arrays tw_new() takes (see treewalk.c)."""

    nfeat: int
    ncols: int
    nodes: np.ndarray  # NODE_DTYPE, trees in pre-order, leaves included
    leaf: np.ndarray  # float64 leaf values, tree after tree, each tree's left to right
    thr: np.ndarray  # float64 sorted thresholds, column after column
    thr_off: np.ndarray  # int32 (nfeat + 1)
    cat: np.ndarray  # uint32 bitsets
    catcols: np.ndarray  # CATCOL_DTYPE: the membership entries of the ranked row
    root: np.ndarray  # int32 per tree
    leaf0: np.ndarray  # int32 per tree
    col: np.ndarray  # int32 per tree
    depth: np.ndarray  # int32 per tree
    part_t: np.ndarray  # int32 (parts, 2): tree range of tier, churn, products
    part_c: np.ndarray  # int32 (parts, 2): output column range of each part
    q32: np.ndarray  # Q32_DTYPE: internal nodes of the trees with <= 32 leaves
    q64: np.ndarray  # Q64_DTYPE: internal nodes of the trees with 33..64 leaves
    qkind: np.ndarray  # int32 per tree: 32, 64 (its nodes in q32 / q64) or 0 (walked)
    qoff: np.ndarray  # int32 per tree: its first node in q32 or q64
    qn: np.ndarray  # int32 per tree: its internal nodes
    nleaf: np.ndarray  # int32 per tree: its leaves
    trees_per_model: dict[str, int]
    thresholds: dict[int, np.ndarray]  # schema column → finite thresholds used on it


_BIG = 65535
_LEAF_ENTRY = -1  # placeholder for the always-BIG entry, the last of the ranked row


class _Builder:
    """Collects trees; node thresholds become indices into per-column sorted lists at the end."""

    def __init__(self, nfeat: int) -> None:
        self.nfeat = nfeat
        # Per node: ranked-row entry, threshold (None: categorical or leaf), right child offset
        # (the left child is the next node), leaf number (leaves, left to right), and the
        # leaves of its left subtree: [lstart, lmid) (internal nodes).
        self.entry: list[int] = []
        self.thr: list[float | None] = []
        self.right: list[int] = []
        self.leafno: list[int] = []
        self.lstart: list[int] = []
        self.lmid: list[int] = []
        self.leaf: list[float] = []
        self.cat: list[int] = []
        self.catcols: dict[tuple[int, tuple[int, ...]], int] = {}  # (column, bitset) → index
        self.catloc: list[tuple[int, int, int]] = []  # per membership entry: column, off, words
        self.root: list[int] = []
        self.leaf0: list[int] = []
        self.col: list[int] = []
        self.depth: list[int] = []
        self.nleaf: list[int] = []
        self.by_column: dict[int, set[float]] = {}

    def _entry(self, d: int, column: int, thr: float) -> int:
        """Which entry of the ranked row a numerical node compares (treewalk.c, top)."""
        nf = self.nfeat
        default_left = bool(d & 2)
        missing = (d >> 2) & 3
        if missing == 1 and default_left != (thr >= 0.0):
            # Zero as missing, and 0.0 itself would compare to the other side.
            return column + (2 * nf if default_left else 3 * nf)
        # None: NaN reads as 0.0, so it goes where 0.0 goes; Zero (with 0.0 going to the
        # default side anyway) and NaN: NaN goes to the default side.
        nan_left = thr >= 0.0 if missing == 0 else default_left
        return column if nan_left else column + nf

    def _membership(self, column: int, bits: list[int]) -> int:
        key = (column, tuple(bits))
        index = self.catcols.get(key)
        if index is None:
            index = self.catcols[key] = len(self.catloc)
            self.catloc.append((column, len(self.cat), len(bits)))
            self.cat.extend(bits)
        return 4 * self.nfeat + index

    def add_tree(self, t: _Tree, cols: np.ndarray, out_col: int) -> None:
        self.leaf0.append(len(self.leaf))
        self.col.append(out_col)
        if t.num_leaves > 32768:
            raise UnsupportedModelError("a tree with more than 32,768 leaves")
        base = len(self.entry)
        self.root.append(base)
        max_depth = 0
        leaves = 0  # pre-order meets the leaves left to right: the next one's number
        # Iterative pre-order walk: (LightGBM node id, ~leaf for a leaf; depth; parent
        # position or -1; which child slot of the parent to fill).
        stack: list[tuple[int, int, int, int]] = [(0 if t.num_leaves > 1 else -1, 0, -1, 0)]
        while stack:
            node, depth, parent, slot = stack.pop()
            idx = len(self.entry)
            if idx - base > 32767:
                raise UnsupportedModelError("a tree with more than 32,767 nodes")
            if parent >= 0 and slot == 1:
                self.right[parent] = idx - parent
                self.lmid[parent] = leaves  # the left subtree's leaves are numbered by now
            max_depth = max(max_depth, depth)
            self.lstart.append(leaves)
            self.lmid.append(leaves)
            if node < 0:  # leaf ~node: reads the always-BIG entry, stays (right offset 0)
                self.entry.append(_LEAF_ENTRY)
                self.thr.append(None)
                self.right.append(0)
                self.leafno.append(leaves)
                self.leaf.append(t.leaf_value[~node])
                leaves += 1
                continue
            d = t.decision_type[node]
            column = int(cols[t.split_feature[node]])
            thr: float | None = t.threshold[node]
            if d & 1:  # categorical: "in the set" is rank 0 <= 0 on its membership entry
                ci = int(t.threshold[node])
                b0, b1 = t.cat_boundaries[ci], t.cat_boundaries[ci + 1]
                entry = self._membership(column, t.cat_threshold[b0:b1])
                thr = None
            else:
                assert thr is not None
                if math.isnan(thr):
                    raise UnsupportedModelError("a split threshold is NaN")
                entry = self._entry(d, column, thr)
                self.by_column.setdefault(column, set()).add(thr)
            self.entry.append(entry)
            self.thr.append(thr)
            self.right.append(0)  # set when the right child is placed
            self.leafno.append(0)
            # Pre-order: the left child is the next node, the right one follows its subtree.
            stack.append((t.right[node], depth + 1, idx, 1))
            stack.append((t.left[node], depth + 1, idx, 0))
        self.depth.append(max_depth)
        self.nleaf.append(leaves)

    def quickscorer(self, nodes: np.ndarray) -> tuple[np.ndarray, ...]:
        """q32, q64, qkind, qoff, qn: the QuickScorer arrays from the finished nodes."""
        nleaf = np.asarray(self.nleaf, dtype=np.int64)
        root = np.asarray(self.root, dtype=np.int64)
        ends = np.append(root[1:], len(nodes))
        inner = np.asarray([e != _LEAF_ENTRY for e in self.entry], dtype=bool)
        tree = np.repeat(np.arange(len(root)), ends - root)  # tree of every node
        kind = np.where(nleaf <= 32, 32, np.where(nleaf <= 64, 64, 0)).astype(np.int32)
        qn = np.bincount(tree[inner], minlength=len(root)).astype(np.int32)
        # Bits [lstart, lmid); in the trees kept here lmid <= 63 (the last leaf is in no left
        # subtree), the clip only keeps the shifts of the larger trees defined.
        start = np.minimum(np.asarray(self.lstart, dtype=np.uint64), np.uint64(63))
        mid = np.minimum(np.asarray(self.lmid, dtype=np.uint64), np.uint64(63))
        lm = (np.uint64(1) << mid) - (np.uint64(1) << start)
        arrays = []
        qoff = np.zeros(len(root), dtype=np.int32)
        for width, dtype in ((32, Q32_DTYPE), (64, Q64_DTYPE)):
            mine = kind == width
            pick = inner & mine[tree]
            q = np.zeros(int(pick.sum()), dtype=dtype)
            q["thr"] = nodes["thr"][pick]
            q["col"] = nodes["col"][pick] // LANES
            q["mask"] = ~lm[pick] & np.uint64(2**width - 1)
            counts = np.where(mine, qn, 0)
            qoff[mine] = (np.cumsum(counts) - counts)[mine]
            arrays.append(q)
        qn = np.where(kind > 0, qn, 0).astype(np.int32)
        return arrays[0], arrays[1], kind, qoff, qn

    def finish(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Nodes, sorted thresholds and their offsets per column."""
        nf = self.nfeat
        lists = [np.unique(np.fromiter(self.by_column.get(j, ()), dtype=np.float64))
                 for j in range(nf)]
        if any(len(v) > _BIG for v in lists):
            raise UnsupportedModelError("more than 65,535 distinct thresholds on one feature")
        offsets = np.zeros(nf + 1, dtype=np.int32)
        offsets[1:] = np.cumsum([len(v) for v in lists])
        index = [{v: i for i, v in enumerate(vals.tolist())} for vals in lists]
        width = 4 * nf + len(self.catloc) + 1
        nodes = np.zeros(len(self.entry), dtype=NODE_DTYPE)
        nodes["col"] = [(width - 1 if e == _LEAF_ENTRY else e) * LANES for e in self.entry]
        nodes["thr"] = [leaf if e == _LEAF_ENTRY else 0 if thr is None else index[e % nf][thr]
                        for e, thr, leaf in zip(self.entry, self.thr, self.leafno, strict=True)]
        # Bytes from the left child (the next node) to the right one; leaves -6 (stay put).
        gap = (np.asarray(self.right, dtype=np.int64) - 1) * NODE_DTYPE.itemsize
        if len(gap) and gap.max() > 32767:
            raise UnsupportedModelError("a tree too large for 16-bit node offsets "
                                        "(more than ~2,700 leaves)")
        nodes["rm1"] = gap
        thr = np.concatenate(lists) if lists else np.zeros(0)
        return nodes, np.ascontiguousarray(thr, dtype=np.float64), offsets


def flatten(layout: ModelLayout) -> FlatModels:
    """The arrays for every model of `layout`: parts tier, churn, products (in that order)."""
    schema = layout.schema
    b = _Builder(len(schema))
    parts: list[tuple[list[TreeModel], int]] = [
        ([layout.tier] if layout.tier else [], layout.tier.num_class if layout.tier else 0),
        ([layout.churn] if layout.churn else [], 1 if layout.churn else 0),
        (list(layout.products), len(layout.products)),
    ]
    part_t: list[tuple[int, int]] = []
    part_c: list[tuple[int, int]] = []
    ncols = 0
    per_model: dict[str, int] = {}
    for models, width in parts:
        c0, first_tree = ncols, len(b.root)
        for j, model in enumerate(models):
            parsed = parse_model(model.text)
            if parsed.feature_names and parsed.feature_names != tuple(model.feature_names):
                raise UnsupportedModelError(
                    f"model {model.name}: feature names differ from the booster's")
            cols = layout.columns(model)
            k = parsed.per_iteration
            if model.objective == "multiclass" and k != model.num_class:
                raise UnsupportedModelError(
                    f"model {model.name}: {k} trees per round for {model.num_class} classes")
            if model.objective == "binary" and k != 1:
                raise UnsupportedModelError(
                    f"model {model.name}: {k} trees per round for a binary model")
            for i, tree in enumerate(parsed.trees):
                b.add_tree(tree, cols, c0 + (i % k if k > 1 else j))
            per_model[model.name] = len(parsed.trees)
        ncols = c0 + width
        part_t.append((first_tree, len(b.root)))
        part_c.append((c0, ncols))
    if (4 * len(schema) + len(b.catloc) + 1) * LANES > _BIG:
        raise UnsupportedModelError("too many features and category sets for 16-bit entries")
    nodes, thr, thr_off = b.finish()
    q32, q64, qkind, qoff, qn = b.quickscorer(nodes)

    def i32(v: object) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(v, dtype=np.int32))

    catcols = np.zeros(len(b.catloc), dtype=CATCOL_DTYPE)
    if b.catloc:
        catcols["feat"], catcols["off"], catcols["words"] = zip(*b.catloc, strict=True)
    return FlatModels(
        nfeat=len(schema),
        ncols=ncols,
        nodes=nodes,
        leaf=np.asarray(b.leaf, dtype=np.float64),
        thr=thr,
        thr_off=thr_off,
        cat=np.asarray(b.cat if b.cat else [0], dtype=np.uint32),
        catcols=catcols,
        root=i32(b.root),
        leaf0=i32(b.leaf0),
        col=i32(b.col),
        depth=i32(b.depth),
        part_t=i32(part_t).reshape(-1, 2),
        part_c=i32(part_c).reshape(-1, 2),
        q32=q32,
        q64=q64,
        qkind=i32(qkind),
        qoff=i32(qoff),
        qn=i32(qn),
        nleaf=i32(b.nleaf),
        trees_per_model=per_model,
        thresholds={c: np.unique(np.fromiter((v for v in vals if math.isfinite(v)), dtype=float))
                    for c, vals in b.by_column.items()},
    )


# --------------------------------------------------------------------------------------------
# compile cache


_lib_lock = threading.Lock()
_libs: dict[str, ctypes.CDLL] = {}
_warned: set[str] = set()


def _warn_once(key: str, message: str, *args: object) -> None:
    if key not in _warned:
        _warned.add(key)
        log.warning(message, *args)


def _compiler(cc: str | None) -> str:
    name = cc or os.environ.get("TIERWISE_CC") or os.environ.get("CC") or "cc"
    path = shutil.which(name)
    if path is None:
        raise BuildError(f"no C compiler: {name!r} is not on PATH")
    return path


def library_key(cc_path: str) -> str:
    """sha256 of everything that decides the shared object's content."""
    h = hashlib.sha256()
    h.update(SOURCE.read_bytes())
    h.update("\0".join((*CFLAGS, cc_path, platform.machine(), sys.platform)).encode())
    return h.hexdigest()


def _load(path: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(path))
    lib.tw_abi.restype = ctypes.c_int
    lib.tw_abi.argtypes = []
    if lib.tw_abi() != _ABI:
        raise BuildError(f"{path} has ABI {lib.tw_abi()}, expected {_ABI}")
    p = ctypes.c_void_p
    i32 = ctypes.c_int32
    lib.tw_new.restype = p
    lib.tw_new.argtypes = [i32, i32, i32, p, i32, p, p, p, i32, p, i32, p, i32, p, p, p, p,
                           i32, p, p, i32, p, i32, p, p, p, p, p]
    lib.tw_isa.restype = ctypes.c_int
    lib.tw_isa.argtypes = [p]
    lib.tw_set_isa.restype = ctypes.c_int
    lib.tw_set_isa.argtypes = [p, i32]
    lib.tw_free.restype = None
    lib.tw_free.argtypes = [p]
    lib.tw_predict.restype = ctypes.c_int
    lib.tw_predict.argtypes = [p, p, ctypes.c_int64, p, ctypes.c_uint32]
    lib.tw_predict_arrays.restype = ctypes.c_int
    lib.tw_predict_arrays.argtypes = [p, ctypes.py_object, ctypes.c_int64, ctypes.py_object,
                                      ctypes.c_uint32, ctypes.c_int64]
    return lib


def _data_offset() -> int | None:
    """Where an ndarray object keeps its data pointer, when that can be read safely."""
    if sys.implementation.name != "cpython":
        return None
    probe = np.zeros((3, 2))
    offset = 2 * ctypes.sizeof(ctypes.c_void_p)  # after the object header (refcount, type)
    for a in (probe, probe[1:], np.empty((1, 7)), np.empty((0, 3))):
        if ctypes.c_void_p.from_address(id(a) + offset).value != a.ctypes.data:
            return None
    return offset


_DATA_AT = _data_offset()


def load_library(cache_dir: Path | None, *, cc: str | None = None) -> ctypes.CDLL:
    """The compiled walker, from the cache or compiled now; raises BuildError."""
    cc_path = _compiler(cc)
    key = library_key(cc_path)
    with _lib_lock:
        lib = _libs.get(key)
        if lib is not None:
            return lib
        private = cache_dir is None
        directory = (Path(tempfile.mkdtemp(prefix="tierwise-tw-")) if cache_dir is None
                     else Path(cache_dir))
        try:
            directory.mkdir(parents=True, exist_ok=True)
            target = directory / f"treewalk-{key[:24]}.so"
            if not target.is_file():
                _compile(cc_path, target)
            try:
                lib = _load(target)
            except (OSError, BuildError):
                # A stale or damaged file: build again once.
                _compile(cc_path, target)
                lib = _load(target)
        except OSError as exc:
            raise BuildError(f"cannot use the compile cache {directory}: {exc}") from exc
        finally:
            if private:
                shutil.rmtree(directory, ignore_errors=True)  # mapped already, safe to delete
        _libs[key] = lib
        return lib


def _compile(cc_path: str, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    t0 = time.perf_counter()
    # A compiler without the x86 intrinsics or target attributes the vector batch kernels use
    # builds the portable walker instead (the same for a given compiler, so the key holds).
    first_error = ""
    for extra in ((), ("-DTW_PORTABLE",)):
        cmd = [cc_path, *CFLAGS, *extra, "-o", str(tmp), str(SOURCE), "-lm"]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                                  check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise BuildError(f"{cc_path} could not run: {exc}") from exc
        if done.returncode == 0 and tmp.is_file():
            break
        tmp.unlink(missing_ok=True)
        if extra:  # the portable build failed too: the first error is the one that matters
            raise BuildError(f"{cc_path} failed ({done.returncode}): {first_error[:500]}")
        first_error = done.stderr.strip()
    if first_error:
        _warn_once("portable", "the tree walker's vector batch kernels do not compile with %s, "
                   "built without them (batches are ~3x slower): %s", cc_path,
                   first_error[:300])
    os.replace(tmp, target)  # atomic: concurrent builders never see a partial file
    log.info("compiled the tree walker in %.2f s into %s", time.perf_counter() - t0, target)


# --------------------------------------------------------------------------------------------
# the evaluator


class TreeWalkEvaluator:
    """All models of a layout in one native call per batch; raw scores equal Booster.predict's."""

    name = "treewalk"

    def __init__(self, layout: ModelLayout, *, cache_dir: Path | None = None,
                 cc: str | None = None, lib: ctypes.CDLL | None = None) -> None:
        t0 = time.perf_counter()
        self.layout = layout
        flat = flatten(layout)
        self._lib = lib or load_library(cache_dir, cc=cc)
        self.flat = flat
        self.trees_per_model = flat.trees_per_model
        ptr = lambda a: a.ctypes.data  # noqa: E731
        handle = self._lib.tw_new(
            flat.nfeat, flat.ncols, len(flat.nodes), ptr(flat.nodes), len(flat.leaf),
            ptr(flat.leaf), ptr(flat.thr), ptr(flat.thr_off), len(flat.cat), ptr(flat.cat),
            len(flat.catcols), ptr(flat.catcols), len(flat.root), ptr(flat.root),
            ptr(flat.leaf0), ptr(flat.col), ptr(flat.depth), len(flat.part_t),
            ptr(flat.part_t), ptr(flat.part_c), len(flat.q32), ptr(flat.q32), len(flat.q64),
            ptr(flat.q64), ptr(flat.qkind), ptr(flat.qoff), ptr(flat.qn), ptr(flat.nleaf),
        )
        if not handle:
            raise BuildError("the tree walker refused the model arrays (or memory is short)")
        self._handle = handle
        self._free = self._lib.tw_free
        self._predict = self._lib.tw_predict
        self._predict_arrays = self._lib.tw_predict_arrays
        self._nfeat = flat.nfeat
        self._ncols = flat.ncols
        (t_c0, t_c1), (c_c0, _), (p_c0, p_c1) = (tuple(r) for r in flat.part_c.tolist())
        self._tier = slice(t_c0, t_c1) if layout.tier else None
        self._churn = c_c0 if layout.churn else None
        self._products = slice(p_c0, p_c1) if layout.products else None
        self.build_seconds = time.perf_counter() - t0

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._free(handle)

    @property
    def num_trees(self) -> int:
        return len(self.flat.root)

    @property
    def isa(self) -> str:
        """The kernels in use: "avx512" (QuickScorer for batches and for single rows), "avx2"
        (QuickScorer batches, single rows walked) or "walk" (lock-step walks, when the CPU has
        neither or the walker was built without them)."""
        return ISA_NAMES[self._lib.tw_isa(self._handle)]

    def use_isa(self, name: str) -> str:
        """Use other kernels (tests; never while other threads call raw): at most what this
        CPU runs. Returns the kernels now in use."""
        return ISA_NAMES[self._lib.tw_set_isa(self._handle, ISA_NAMES.index(name))]

    def raw(self, x: np.ndarray, *, tier: bool, churn: bool, products: bool) -> RawScores:
        if type(x) is not np.ndarray or x.dtype != np.float64 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self._nfeat:
            raise ValueError(f"rows must have shape (n, {self._nfeat}), got {x.shape}")
        n = x.shape[0]
        out = np.empty((n, self._ncols))
        want_t = tier and self._tier is not None
        want_c = churn and self._churn is not None
        want_p = products and self._products is not None
        mask = want_t | (want_c << 1) | (want_p << 2)
        if n and mask:
            if _DATA_AT is not None:  # both are exact ndarrays here: read their data pointers
                failed = self._predict_arrays(self._handle, x, n, out, mask, _DATA_AT)
            else:
                failed = self._predict(self._handle, x.ctypes.data, n, out.ctypes.data, mask)
            if failed:
                raise MemoryError("tw_predict failed")
        return RawScores(
            tier=out[:, self._tier] if want_t else None,
            churn=out[:, self._churn] if want_c else None,
            products=out[:, self._products] if want_p else None,
        )


# --------------------------------------------------------------------------------------------
# probe rows and the checked choice


def probe_rows(schema: FeatureSchema, n: int, *, seed: int = 0,
               thresholds: dict[int, np.ndarray] | None = None) -> np.ndarray:
    """Rows that exercise every branch kind: NaN, zeros, tiny values, out-of-range values,
    every category code (and invalid ones), and values exactly at and next to split
    thresholds when `thresholds` (schema column → values) is given."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, len(schema)))
    for j, spec in enumerate(schema.specs):
        if spec.kind == "category":
            k = len(spec.categories)
            codes = np.arange(k, dtype=np.float64)
            odd = np.array([-1.0, -0.5, k, k + 0.5, 31.0, 32.0, 1e10, -1e10, math.inf])
            col = np.where(rng.random(n) < 0.9, rng.choice(codes, n), rng.choice(odd, n))
            col[: min(n, k)] = codes[: min(n, k)]
        elif spec.kind == "boolean":
            col = rng.choice(np.array([0.0, 1.0, -1.0, 2.0, 0.5]), n, p=[.45, .45, .04, .03, .03])
        else:
            lo = spec.minimum if spec.minimum is not None else -1e6
            hi = spec.maximum if spec.maximum is not None else 1e6
            span = hi - lo
            uniform = lo + rng.random(n) * span
            logscale = np.sign(rng.random(n) - 0.3) * np.exp(rng.uniform(-5, math.log1p(abs(hi)),
                                                                          n))
            col = np.where(rng.random(n) < 0.5, uniform, logscale)
            if spec.kind == "integer":
                col = np.round(col)
            z = float(np.float32(1e-35))  # LightGBM's kZeroThreshold, and next to it
            odd = np.array([0.0, -0.0, 1e-36, -1e-36, 1e-300, z, -z, np.nextafter(z, 1),
                            -np.nextafter(z, 1), lo - 1, hi + 1, lo - span, hi + span, 1e300,
                            -1e300, math.inf, -math.inf])
            col = np.where(rng.random(n) < 0.1, rng.choice(odd, n), col)
            if thresholds and j in thresholds and len(thresholds[j]):
                t = rng.choice(thresholds[j], n)
                t = np.where(rng.random(n) < 0.5, t,
                             np.nextafter(t, np.where(rng.random(n) < 0.5, -np.inf, np.inf)))
                col = np.where(rng.random(n) < 0.3, t, col)
        col[rng.random(n) < 0.1] = math.nan
        x[:, j] = col
    return x


def max_difference(a: RawScores, b: RawScores) -> float:
    """Largest absolute difference between two results (inf when their shapes differ)."""
    worst = 0.0
    for u, v in ((a.tier, b.tier), (a.churn, b.churn), (a.products, b.products)):
        if u is None and v is None:
            continue
        if u is None or v is None or np.shape(u) != np.shape(v):
            return math.inf
        if u.size:
            same = (u == v) | (np.isnan(u) & np.isnan(v))
            if not same.all():
                d = np.abs(np.asarray(u, dtype=float) - np.asarray(v, dtype=float))[~same]
                worst = max(worst, float(np.nan_to_num(d, nan=math.inf).max()))
    return worst


def check_against_booster(evaluator: Evaluator, layout: ModelLayout, *, rows: int = 512,
                          seed: int = 0) -> float:
    """Max |difference| from BoosterEvaluator on probe rows, all parts, batch and single row."""
    thresholds = getattr(getattr(evaluator, "flat", None), "thresholds", None)
    x = probe_rows(layout.schema, rows, seed=seed, thresholds=thresholds)
    ref = BoosterEvaluator(layout).raw(x, tier=True, churn=True, products=True)
    worst = max_difference(evaluator.raw(x, tier=True, churn=True, products=True), ref)
    for i in range(min(rows, 8)):
        one = evaluator.raw(x[i:i + 1], tier=True, churn=True, products=True)
        ref_one = RawScores(
            tier=None if ref.tier is None else ref.tier[i:i + 1],
            churn=None if ref.churn is None else ref.churn[i:i + 1],
            products=None if ref.products is None else ref.products[i:i + 1],
        )
        worst = max(worst, max_difference(one, ref_one))
    return worst


def fastest_evaluator(layout: ModelLayout, *, cache_dir: Path | None,
                      cc: str | None = None) -> Evaluator:
    """The fastest evaluator that works here and matches Booster.predict on probe rows.

    Falls back to BoosterEvaluator (logging a warning once per reason) when the walker
    cannot be built or does not agree; never raises for those reasons.
    """
    try:
        fast = TreeWalkEvaluator(layout, cache_dir=cache_dir, cc=cc)
        diff = check_against_booster(fast, layout)
    except BuildError as exc:
        _warn_once("build", "compiled tree evaluation unavailable, using plain LightGBM: %s", exc)
        return BoosterEvaluator(layout)
    except UnsupportedModelError as exc:
        _warn_once(f"unsupported:{exc}", "a model is not supported by the tree walker, using "
                   "plain LightGBM: %s", exc)
        return BoosterEvaluator(layout)
    except Exception as exc:  # a fast path must never stop a context from serving
        log.exception("the tree walker failed, using plain LightGBM: %s", exc)
        return BoosterEvaluator(layout)
    if not diff <= TOLERANCE:
        _warn_once("mismatch", "the tree walker differs from LightGBM by %g on probe rows, "
                   "using plain LightGBM", diff)
        return BoosterEvaluator(layout)
    return fast
