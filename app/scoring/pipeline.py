"""Scoring one or many customers on a context: models → calibration → tier → arbitration.

Pure: feature rows and named values in, plain dicts out. Every step runs vectorised over
the rows (one row: the same arithmetic on Python floats, one np.exp call); only the
arbitration (small, per customer) loops.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import mul
from typing import Any

import numpy as np

from app.decisions.arbitration import (
    RANKED_BELOW_TOP_N,
    ContactEvent,
    PreparedCatalog,
    arbitrate_tuples,
    recommendation_dict,
)
from app.decisions.arbitration_batch import CODES, BatchDecisions, arbitrate_batch, limits_of
from app.decisions.suitability import SuitabilityLimits
from app.engine.evaluate import RawScores
from app.scoring.context import ScoringContext
from app.scoring.families import calibrate
from app.scoring.reasons import contributions, top_reasons

PARTS: tuple[str, ...] = ("tier", "churn", "recommendations")


@dataclass(frozen=True, slots=True)
class Options:
    """What a caller asked for: which parts, how many recommendations, whether to explain."""

    parts: frozenset[str] = frozenset(PARTS)
    top_n: int | None = None
    explain: bool = False
    include_suppressed: bool = False
    # With include_suppressed: whether each suppressed action carries its readable detail.
    # The service lists suppressed actions on every call for its metrics but formats the
    # details only for callers who asked to see them.
    suppressed_details: bool = True


@dataclass(frozen=True, slots=True)
class CustomerInput:
    """One customer to score: the caller's id, named features and contact context."""

    customer_id: str
    features: Mapping[str, Any]
    channel: str | None = None
    history: tuple[ContactEvent, ...] = ()


def score_rows(
    ctx: ScoringContext, x: np.ndarray, customers: Sequence[CustomerInput], options: Options
) -> list[dict[str, Any]]:
    """Score rows `x` (laid out by ctx.schema) of `customers`; results in input order."""
    parts = options.parts
    want_tier = "tier" in parts
    want_churn = "churn" in parts
    want_recs = "recommendations" in parts
    need_churn = want_churn or want_recs  # retention actions compete on churn risk
    raw = ctx.evaluator.raw(x, tier=want_tier, churn=need_churn, products=want_recs)
    n = x.shape[0]
    k = ctx.constants

    aum_col = x[:, k.aum_col]
    churn_arr: np.ndarray | None = None
    product_arr: np.ndarray | None = None
    tier_probs: list[list[float]] | None = None
    churn_p: list[float] | None = None
    product_p: list[list[float]] | None = None
    single = _single_row(ctx, raw) if n == 1 else None
    if single is not None:
        # One customer: the same operations on Python floats, with a single np.exp call
        # (identical results: + - * / are IEEE in both, exp is numpy's in both).
        tier_probs, churn_p, product_p = single
        aum = aum_col.tolist()
        booked_idx = [bisect_right(k.tier_thresholds, aum[0]) - 1]
    else:
        aum = aum_col.tolist()
        booked_idx = (np.searchsorted(ctx.tier_thresholds, aum_col, side="right") - 1).tolist()
        if want_tier and raw.tier is not None:
            tier_probs = ctx.tier.model.link(raw.tier).tolist()
        if need_churn and raw.churn is not None:
            churn_arr = calibrate(ctx.churn.calibrator, raw.churn,
                                  ctx.churn.model.link(raw.churn))
            churn_p = churn_arr.tolist()
        if want_recs and raw.products is not None:
            product_arr = 1.0 / (1.0 + np.exp(-k.product_sigmoid * raw.products))

    band_idx: list[int] | None = None
    if churn_p is not None:
        if n == 1 and not math.isnan(churn_p[0]):
            band_idx = [bisect_right(k.band_thresholds, churn_p[0]) - 1]
        else:
            band_idx = (np.searchsorted(ctx.band_thresholds, churn_p, side="right") - 1).tolist()

    contrib = None
    if want_churn and options.explain:
        contrib = contributions(ctx.churn, x, ctx.layout.columns(ctx.churn.model))

    top_n = options.top_n or ctx.policy.default_top_n
    include_suppressed = options.include_suppressed
    details = include_suppressed and options.suppressed_details
    prepared = ctx.prepared_catalog if want_recs else None
    tier_names = k.tier_names
    classes = k.classes
    tier_rank = ctx.tier_rank
    band_names = k.band_names
    product_names = k.product_names
    churn_features = ctx.churn.model.feature_names
    batch = None
    if prepared is not None and n >= BATCH_ARBITRATION_MIN and not details:
        if top_n < 0:
            raise ValueError(f"top_n must be >= 0, got {top_n}")
        batch = _Batch.decide(ctx, x, customers, booked_idx, aum, churn_arr, product_arr,
                              top_n, include_suppressed)
    if product_arr is not None and (batch is None or any(c.history for c in customers)):
        product_p = product_arr.tolist()  # per-customer arbitration reads them by name
    results: list[dict[str, Any]] = []
    for i in range(n):
        cust = customers[i]
        booked = tier_names[booked_idx[i]] if aum[i] == aum[i] else None  # not NaN
        out: dict[str, Any] = {"customer_id": cust.customer_id}
        if tier_probs is not None:
            probs = tier_probs[i]
            predicted = classes[probs.index(max(probs))]
            out["tier"] = {
                "booked": booked,
                "predicted": predicted,
                "probabilities": dict(zip(classes, probs, strict=True)),
                "upgrade_candidate": booked is not None
                and tier_rank[predicted] > tier_rank[booked],
            }
        probability = churn_p[i] if churn_p is not None else None
        if want_churn and churn_p is not None and band_idx is not None:
            out["churn"] = {
                "probability": probability,
                "band": band_names[band_idx[i]],
                "reasons": (
                    top_reasons(contrib[i], churn_features, cust.features,
                                ctx.churn.reason_codes)
                    if contrib is not None
                    else []
                ),
            }
        if prepared is None:
            results.append(out)
            continue
        if batch is not None and not cust.history:
            out["recommendations"], suppressed = batch.customer(i, booked or "", cust)
        else:
            features = cust.features
            propensities = (
                dict(zip(product_names, product_p[i], strict=True))
                if product_p is not None
                else {}
            )
            recs, suppressed = arbitrate_tuples(
                prepared,
                age=int(features.get("age") or 0),
                aum=float(features.get("aum_total") or 0.0),
                booked_tier=booked or "",
                risk_profile=features.get("risk_profile"),
                risk_assessment_age_days=features.get("risk_assessment_age_days"),
                flags=features,
                churn_probability=probability,
                days_to_next_maturity=features.get("days_to_next_maturity"),
                propensities=propensities,
                channel=cust.channel,
                history=cust.history,
                top_n=top_n,
                details=details,
                build=recommendation_dict,
            )
            out["recommendations"] = recs
        if include_suppressed:
            out["suppressed"] = [
                {"action_id": s[0], "reason_code": s[1], "detail": s[2]} for s in suppressed
            ]
        results.append(out)
    return results


# From this many customers on, arbitration runs over the whole batch as array operations
# (app/decisions/arbitration_batch.py); below it the per-customer loop is cheaper.
BATCH_ARBITRATION_MIN = 16


class _Batch:
    """The batch arbitration's decisions, unpacked per customer into the same tuples
    arbitrate_tuples returns (with details=False)."""

    def __init__(self, prepared: PreparedCatalog, decisions: BatchDecisions,
                 limits: list[SuitabilityLimits], top_n: int, with_suppressed: bool) -> None:
        self.actions = prepared.actions
        top = min(top_n, len(self.actions))
        idx = decisions.order[:, :top]
        self.idx = idx.tolist()
        self.p = np.take_along_axis(decisions.p, idx, axis=1).tolist()
        self.w = np.take_along_axis(decisions.weight, idx, axis=1).tolist()
        self.priority = np.take_along_axis(decisions.priority, idx, axis=1).tolist()
        self.eligible = decisions.eligible.tolist()
        self.limits = limits
        self.top = top
        self.order = decisions.order.tolist() if with_suppressed else None
        self.code = decisions.code.tolist() if with_suppressed else None

    @classmethod
    def decide(cls, ctx: ScoringContext, x: np.ndarray, customers: Sequence[CustomerInput],
               booked_idx: list[int], aum: list[float], churn: np.ndarray | None,
               products: np.ndarray | None, top_n: int, with_suppressed: bool) -> _Batch | None:
        prepared = ctx.prepared_catalog
        tier_names = ctx.constants.tier_names
        features = [c.features for c in customers]
        ages = [int(f.get("age") or 0) for f in features]
        limits = limits_of(prepared, features, ages)
        booked = [(tier_names[b] if a == a else None) or "" for b, a in zip(booked_idx, aum,
                                                                          strict=True)]
        decisions = arbitrate_batch(
            prepared, schema=ctx.schema, x=x, booked_tier=booked, limits=limits, churn=churn,
            propensities=products, product_names=ctx.constants.product_names,
            channels=[c.channel for c in customers])
        if decisions is None:
            return None
        return cls(prepared, decisions, limits, top_n, with_suppressed)

    def customer(self, i: int, booked_tier: str, cust: CustomerInput
                 ) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
        """Customer i's recommendations (response dicts) and suppressed actions."""
        actions = self.actions
        shown = min(self.top, self.eligible[i])
        idx, p, w, priority = self.idx[i], self.p[i], self.w[i], self.priority[i]
        limits = self.limits[i]
        channel = cust.channel
        days = cust.features.get("days_to_next_maturity")
        recs = [recommendation_dict(actions[idx[r]], priority[r], p[r], w[r], channel,
                                    booked_tier, days, limits)
                for r in range(shown)]
        suppressed: list[tuple[str, str, str]] = []
        if self.code is not None and self.order is not None:
            suppressed = [(actions[j].id, CODES[c], "")
                          for j, c in enumerate(self.code[i]) if c]
            suppressed += [(actions[j].id, RANKED_BELOW_TOP_N, "")
                           for j in self.order[i][shown:self.eligible[i]]]
        return recs, suppressed


def _single_row(
    ctx: ScoringContext, raw: RawScores
) -> tuple[list[list[float]] | None, list[float] | None, list[list[float]] | None] | None:
    """Tier probabilities, calibrated churn and product propensities of one row as Python
    lists, computed exactly as the vectorised path does; None to use that path instead
    (NaN scores, an isotonic calibrator)."""
    k = ctx.constants
    if not k.single_row_links:
        return None
    args: list[float] = []
    tier = churn = products = None
    if raw.tier is not None:
        tier = raw.tier.tolist()[0]
        top = max(tier)
        args = [t - top for t in tier]
    if raw.churn is not None:
        churn = raw.churn.tolist()[0]
        platt = k.churn_platt
        args.append(k.churn_neg_sigmoid * churn if platt is None
                    else platt[0] * churn + platt[1])
    if raw.products is not None:
        products = raw.products.tolist()[0]
        args += map(mul, k.product_neg_sigmoid, products)  # (-s) * r, as the batch path
    if not args:
        return None, None, None
    total = sum(args)
    if total != total:  # a NaN (or inf - inf): leave the edge cases to numpy
        return None
    e = np.exp(np.array(args)).tolist()
    j = 0
    tier_probs = churn_p = product_p = None
    if tier is not None:
        m = len(tier)
        total = 0.0
        for v in e[:m]:
            total += v
        tier_probs = [[v / total for v in e[:m]]]
        j = m
    if churn is not None:
        churn_p = [1.0 / (1.0 + e[j])]
        j += 1
    if products is not None:
        product_p = [[1.0 / (1.0 + v) for v in e[j:]]]
    return tier_probs, churn_p, product_p
