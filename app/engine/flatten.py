"""Every model of a layout as the arrays tw_new() takes: tier, churn and products, in order."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from app.engine.evaluate import ModelLayout
from app.engine.model_text import UnsupportedModelError, parse_model
from app.engine.nodes import _BIG, CATCOL_DTYPE, LANES, NodeBuilder
from app.engine.trees import TreeModel


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
    thresholds: dict[int, np.ndarray]  # schema column → finite thresholds used on it


def _add_model(b: NodeBuilder, layout: ModelLayout, model: TreeModel, c0: int, j: int) -> None:
    """Add the trees of `model`, the j-th of a part whose outputs start at column c0."""
    parsed = parse_model(model.text)
    if parsed.feature_names and parsed.feature_names != tuple(model.feature_names):
        raise UnsupportedModelError(f"model {model.name}: feature names differ from the booster's")
    cols = layout.columns(model)
    k = parsed.per_iteration
    if model.objective == "multiclass" and k != model.num_class:
        raise UnsupportedModelError(
            f"model {model.name}: {k} trees per round for {model.num_class} classes")
    if model.objective in ("binary", "regression") and k != 1:
        raise UnsupportedModelError(
            f"model {model.name}: {k} trees per round for a {model.objective} model")
    for i, tree in enumerate(parsed.trees):
        b.add_tree(tree, cols, c0 + (i % k if k > 1 else j))  # multiclass: round robin


def flatten(layout: ModelLayout) -> FlatModels:
    """The arrays for every model of `layout`: parts tier, churn, products (in that order)."""
    schema = layout.schema
    b = NodeBuilder(len(schema))
    parts: list[tuple[list[TreeModel], int]] = [
        ([layout.tier] if layout.tier else [], layout.tier.num_class if layout.tier else 0),
        ([layout.churn] if layout.churn else [], 1 if layout.churn else 0),
        (list(layout.products), len(layout.products)),
    ]
    part_t: list[tuple[int, int]] = []
    part_c: list[tuple[int, int]] = []
    ncols = 0
    for models, width in parts:
        c0, first_tree = ncols, len(b.root)
        for j, model in enumerate(models):
            _add_model(b, layout, model, c0, j)
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
        thresholds={c: np.unique(np.fromiter((v for v in vals if math.isfinite(v)), dtype=float))
                    for c, vals in b.by_column.items()},
    )
