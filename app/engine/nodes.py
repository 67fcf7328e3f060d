"""Trees → the node arrays of treewalk.c (see its top comment for the layout).

Nodes in pre-order, 6 bytes each: the entry of the ranked row the node compares, the
threshold as a 16-bit rank among the thresholds of its column, and the byte offset to the
right child (the left one is the next node); leaves numbered left to right. Plus the
QuickScorer arrays of the trees with at most 64 leaves: their internal nodes with the leaf
mask of their left subtree.
"""

from __future__ import annotations

import math

import numpy as np

from app.engine.model_text import TextTree, UnsupportedModelError

LANES = 8  # TW_LANES in treewalk.c: node entries are stored multiplied by it

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


_BIG = 65535
_LEAF_ENTRY = -1  # placeholder for the always-BIG entry, the last of the ranked row


class NodeBuilder:
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

    def add_tree(self, t: TextTree, cols: np.ndarray, out_col: int) -> None:
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

