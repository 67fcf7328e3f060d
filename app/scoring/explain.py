"""Reasons for a context's decisions: exact SHAP values (app/engine/attributions.py) of the
churn model and of each recommended product's model, turned into sentences an RM can read.

`Explainer.of(ctx)` holds, per context, the checked attributions of every model (native
when they build and agree with pred_contrib, else pred_contrib), built once and kept
with the context. `churn` gives the contributions of the rows asked for; `product_reasons`
the features that raised one product's propensity most for the rows that recommend it.
"""

from __future__ import annotations

import heapq
import math
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
from app.features.family import OfferText
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
        self.offers = offer_texts(ctx)

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
                        k: int = PRODUCT_REASONS) -> None:
        """Add `explanation` (the features that raised its propensity most: code, feature,
        contribution, text) to every recommended product of `results` (rows of x, in order)
        and their texts to its `reasons`: one native call per product over the rows that
        recommend it."""
        wanted: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for i, out in enumerate(results):
            for rec in out.get("recommendations", ()):
                model = self.action_model.get(rec.get("action_id", ""))
                if model is not None:
                    wanted.setdefault(model, []).append((i, rec))
        if not wanted:
            return
        for model, recs in wanted.items():
            if x.shape[0] == 1:  # one customer: no row indices to check
                phi = self.products[model].contributions(x)
            else:
                rows = np.fromiter((i for i, _ in recs), dtype=np.int64, count=len(recs))
                phi = self.products[model].contributions(x, rows)
            names = self.product_models[model].feature_names
            values = phi.tolist()
            orders = largest(phi, values, k)
            for (i, rec), order, v in zip(recs, orders, values, strict=True):
                reasons = raising(order, [v[j] for j in order], names, features[i], self.codes,
                                  self.offers)
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


def offer_texts(ctx: ScoringContext) -> dict[str, OfferText]:
    """Per feature of the context's contract: how its value reads as a reason for an offer
    (none for a feature whose contract has no such text)."""
    out = {}
    for f in getattr(getattr(ctx, "contract", None), "features", ()) or ():
        reason = getattr(f, "reason", None)
        if reason is not None and reason.offer is not None:
            out[f.name] = reason.offer
    return out


def offer_sentence(offer: OfferText, raw: Any, fmt: str) -> str:
    """The value `raw` as a reason for an offer: the offer's text for its kind of value."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        template = offer.missing or offer.zero or offer.text
    elif isinstance(raw, bool):
        template = offer.text if raw else offer.zero or offer.text
    elif isinstance(raw, int | float):
        template = (offer.text if raw > 0 else (offer.negative if raw < 0 else offer.zero)
                    or offer.text)
    else:
        template = offer.text
    return template.format(value=format_value(raw, fmt))


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
            offers: Mapping[str, OfferText] | None = None) -> list[dict[str, Any]]:
    """Reasons from the features that raised a score most (`order`: their positions, largest
    contribution first; `values`: those contributions), while they raised it: the feature's
    stable reason code and a sentence in the customer's terms, the feature contract's offer
    text for this customer's value ("salary of CNY 35,000 a month credited here", "no
    investment plan yet", "a product matures in 12 days"), else the feature and its value
    ("monthly salary: CNY 35,000")."""
    out = []
    for j, c in zip(order, values, strict=True):
        if not c > 0.0:
            break
        name = feature_names[j]
        code = codes.get(name)
        raw = features.get(name)
        offer = offers.get(name) if offers is not None else None
        if offer is not None:
            text = offer_sentence(offer, raw, code.format if code else "text")
        else:
            value = ({True: "yes", False: "no"}[raw] if isinstance(raw, bool)
                     else format_value(raw, code.format if code else "text"))
            text = f"{name.replace('_', ' ')}: {value}"
        out.append({"code": code.code if code else name, "feature": name,
                    "contribution": round(c, 6), "text": text})
    return out
