"""The fast evaluator: every tree of every model of a context walked in one native call.

`TreeWalkEvaluator` flattens the LightGBM text models of a `ModelLayout` (flatten.py) and
hands the arrays to the C tree walker (native.py). A new version gets the fast path as soon
as its arrays are built (a fraction of a second for ~2,600 trees). The walker follows
LightGBM's prediction rules exactly (see treewalk.c) and sums leaf values in the same order,
so raw scores are bit-identical to `Booster.predict(raw_score=True)`.

ctypes releases the GIL for the duration of the foreign call, and the native model is
read-only after it is built, so any number of request threads may call `raw` at once.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from app.engine.evaluate import ModelLayout, RawScores
from app.engine.flatten import flatten
from app.engine.native import BuildError, load_library

# Kernels of treewalk.c (tw_isa): none (every tree walked, batches and single rows), AVX2
# (QuickScorer batches; single rows walk), AVX-512 (QuickScorer batches and single rows).
ISA_NAMES = ("walk", "avx2", "avx512")


class TreeWalkEvaluator:
    """All models of a layout in one native call per batch; raw scores equal Booster.predict's."""

    name = "treewalk"

    def __init__(self, layout: ModelLayout, *, cache_dir: Path | None = None,
                 cc: str | None = None, lib: ctypes.CDLL | None = None) -> None:
        self.layout = layout
        flat = flatten(layout)
        self._lib = lib or load_library(cache_dir, cc=cc)
        self.flat = flat
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
        self._nfeat = flat.nfeat
        self._ncols = flat.ncols
        (t_c0, t_c1), (c_c0, _), (p_c0, p_c1) = (tuple(r) for r in flat.part_c.tolist())
        self._tier = slice(t_c0, t_c1) if layout.tier else None
        self._churn = c_c0 if layout.churn else None
        self._products = slice(p_c0, p_c1) if layout.products else None

    def __del__(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._free(handle)

    @property
    def isa(self) -> str:
        """The kernels in use: "avx512" (QuickScorer for batches and for single rows), "avx2"
        (QuickScorer batches, single rows walked) or "walk" (lock-step walks, when the CPU has
        neither or the walker was built without them)."""
        return ISA_NAMES[self._lib.tw_isa(self._handle)]

    def use_isa(self, name: str) -> str:
        """Use the kernels `name` ("walk", "avx2", "avx512") if this CPU runs them (else the
        kernels stay as they are); the kernels now in use. For benchmarks and tests (the
        service always runs the best): e.g. the AVX2 figures of a CPU without AVX-512,
        measured on one with it. Not while other threads call raw."""
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
            # The arrays' addresses through the buffer protocol (public): ~0.4 µs each, against
            # ~1.1 µs for ndarray.ctypes.data or __array_interface__, which build Python objects
            # (passing the ctypes object itself to the call costs more still).
            byte, at = ctypes.c_char, ctypes.addressof
            try:
                xp = at(byte.from_buffer(x))  # type: ignore[arg-type]
            except TypeError:  # a read-only array: from_buffer wants a writable buffer
                xp = x.ctypes.data
            if self._predict(self._handle, xp, n, at(byte.from_buffer(out)), mask):  # type: ignore[arg-type]
                raise MemoryError("tw_predict failed")
        return RawScores(
            tier=out[:, self._tier] if want_t else None,
            churn=out[:, self._churn] if want_c else None,
            products=out[:, self._products] if want_p else None,
        )
