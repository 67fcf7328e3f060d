"""Reasons for a context's decisions: exact SHAP values (app/engine/attributions.py) of the
churn model and of each recommended product's model, turned into sentences an RM can read.

`Explainer.of(ctx)` holds, per context, the checked attributions of every model (native
when they build and agree with pred_contrib, else pred_contrib), built once and kept
with the context. `churn` gives the contributions of the rows asked for; `product_reasons`
the features that raised one product's propensity most for the rows that recommend it.
"""

from __future__ import annotations

import heapq
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from app.bundles.manifest import ReasonCode
from app.engine.attributions import Attributions, BoosterAttributions, attributions_for
from app.engine.compiled import probe_rows
from app.engine.trees import TreeModel
from app.scoring.context import ScoringContext
from app.scoring.reasons import format_value

PRODUCT_REASONS = 3  # at most; only features that raised the propensity
PROBE_ROWS = 64  # rows the native attributions are checked on against pred_contrib
SORT_IN_NUMPY = 16  # rows of one product from which its top features are sorted in numpy

_lock = threading.Lock()
_explainers: dict[int, Explainer] = {}  # id(context) -> its explainer, while it lives


class Explainer:
    """The attributions of a context's churn model and product models."""

    def __init__(self, ctx: ScoringContext, *, cache_dir: Path | None = None,
                 cc: str | None = None, native: bool = True) -> None:
        schema, layout = ctx.schema, ctx.layout
        thresholds = getattr(getattr(ctx.evaluator, "flat", None), "thresholds", None)
        probe = probe_rows(schema, PROBE_ROWS, seed=5, thresholds=thresholds)

        def make(model: TreeModel) -> Attributions:
            if not native:
                return BoosterAttributions(model, layout.columns(model))
            return attributions_for(model, layout.columns(model), probe, cache_dir=cache_dir,
                                    cc=cc)

        self.churn_model = ctx.churn.model
        self.churn: Attributions = make(ctx.churn.model)
        self.products: dict[str, Attributions] = {m.name: make(m) for m in layout.products}
        self.product_models = {m.name: m for m in layout.products}
        # Action id -> the product model giving its propensity.
        self.action_model = {a.id: a.propensity_model for a in ctx.catalog.actions
                             if a.kind == "product" and a.propensity_model in self.products}
        self.codes = reason_texts(ctx)
        # Per product model: the churn model's position of each of its features (-1: none).
        pos = {n: j for j, n in enumerate(ctx.churn.model.feature_names)}
        self.churn_cols = {m.name: [pos.get(n, -1) for n in m.feature_names]
                           for m in layout.products}

    @classmethod
    def of(cls, ctx: ScoringContext, *, cache_dir: Path | None = None) -> Explainer:
        """The context's explainer, built at the first call (and kept with the context)."""
        got = _explainers.get(id(ctx))
        if got is None:
            with _lock:
                got = _explainers.get(id(ctx))
                if got is None:
                    from app.config import get_settings

                    settings = get_settings()  # no native code when compile_models is off
                    got = _explainers[id(ctx)] = cls(
                        ctx, cache_dir=cache_dir or settings.compile_cache_dir,
                        native=settings.compile_models)
                    weakref.finalize(ctx, _explainers.pop, id(ctx), None)
        return got

    @property
    def name(self) -> str:
        """"treeshap" when every model's attributions are native, else "lightgbm"."""
        names = {a.name for a in (self.churn, *self.products.values())}
        return "treeshap" if names == {"treeshap"} else "lightgbm"

    def churn_contributions(self, x: np.ndarray) -> np.ndarray:
        """(n, churn features + 1): the churn model's SHAP values of every row."""
        return self.churn.contributions(x)

    def product_reasons(self, x: np.ndarray, results: Sequence[dict[str, Any]],
                        features: Sequence[Mapping[str, Any]], *,
                        churn: np.ndarray | None = None, k: int = PRODUCT_REASONS) -> None:
        """Add `explanation` (the features that raised its propensity most: code, feature,
        contribution, text) to every recommended product of `results` (rows of x, in order)
        and their texts to its `reasons`: one native call per product over the rows that
        recommend it. `churn`: the rows' churn contributions when the caller has them (they
        pick which of a feature's two contract texts states the customer's value)."""
        wanted: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for i, out in enumerate(results):
            for rec in out.get("recommendations", ()):
                model = self.action_model.get(rec.get("action_id", ""))
                if model is not None:
                    wanted.setdefault(model, []).append((i, rec))
        if not wanted:
            return
        if churn is None:
            churn = self.churn.contributions(x)
        churn_rows = churn.tolist()  # which of a feature's texts states the customer's value
        for model, recs in wanted.items():
            if x.shape[0] == 1:  # one customer: no row indices to check
                phi = self.products[model].contributions(x)
            else:
                rows = np.fromiter((i for i, _ in recs), dtype=np.int64, count=len(recs))
                phi = self.products[model].contributions(x, rows)
            names = self.product_models[model].feature_names
            cols = self.churn_cols[model]
            values = phi.tolist()
            orders = largest(phi, values, k)
            for (i, rec), order, v in zip(recs, orders, values, strict=True):
                c = churn_rows[i]
                side = [c[cols[j]] if cols[j] >= 0 else 0.0 for j in order]
                reasons = raising(order, [v[j] for j in order], names, features[i], self.codes,
                                  side)
                rec["explanation"] = reasons
                rec["reasons"] = [*rec.get("reasons", ()), *(r["text"] for r in reasons)]


def largest(phi: np.ndarray, values: list[list[float]], k: int) -> list[list[int]]:
    """Per row of contributions (bias last; `values`: phi.tolist()): the positions of its k
    largest, largest first, ties by position; sorted in numpy for many rows, in Python for a
    few (numpy's overhead per call is larger than the sort)."""
    if len(values) >= SORT_IN_NUMPY:
        return np.argsort(-phi[:, :-1], axis=1, kind="stable")[:, :k].tolist()
    last = phi.shape[1] - 1
    return [heapq.nlargest(k, range(last), key=v.__getitem__) for v in values]


def reason_texts(ctx: ScoringContext) -> dict[str, ReasonCode]:
    """Reason texts per feature: the feature contract's when the context has one, else the
    churn bundle's reason codes."""
    codes = dict(ctx.churn.reason_codes)
    contract = getattr(ctx, "contract", None)
    for f in getattr(contract, "features", ()) or ():
        reason = getattr(f, "reason", None)
        if reason is not None:
            codes[f.name] = ReasonCode(code=reason.code, up=reason.up, down=reason.down,
                                       format=reason.format)
    return codes


def raising(order: Sequence[int], values: Sequence[float], feature_names: Sequence[str],
            features: Mapping[str, Any], codes: Mapping[str, ReasonCode],
            churn: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Reasons from the features that raised a score most (`order`: their positions, largest
    contribution first; `values`: those contributions), while they raised it: the feature's
    stable reason code and a sentence in the customer's terms, the feature contract's text
    that states this customer's value (`churn`: the same features' churn contributions; up
    when positive, as the churn reasons pick it: "salary of CNY 35,000 a month credited
    here", "a product matures in 12 days"), else the feature and its value ("monthly
    salary: CNY 35,000")."""
    out = []
    for n, (j, c) in enumerate(zip(order, values, strict=True)):
        if not c > 0.0:
            break
        name = feature_names[j]
        code = codes.get(name)
        raw = features.get(name)
        side = churn[n] if churn is not None else 0.0
        if code is not None and side != 0.0:
            text = (code.up if side > 0.0 else code.down).format(
                value=format_value(raw, code.format))
        else:
            value = ({True: "yes", False: "no"}[raw] if isinstance(raw, bool)
                     else format_value(raw, code.format if code else "text"))
            text = f"{name.replace('_', ' ')}: {value}"
        out.append({"code": code.code if code else name, "feature": name,
                    "contribution": round(c, 6), "text": text})
    return out
