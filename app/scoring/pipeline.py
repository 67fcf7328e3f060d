"""Scoring one or many customers on a context: models → calibration → tier → arbitration.

Pure: feature rows and named values in, plain dicts out. Every step runs vectorised over
the rows; only the arbitration (small, per customer) loops.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.scoring.arbitration import ContactEvent, Customer, arbitrate
from app.scoring.context import ScoringContext
from app.scoring.models import calibrate
from app.scoring.reasons import contributions, top_reasons

PARTS: tuple[str, ...] = ("tier", "churn", "recommendations")


@dataclass(frozen=True, slots=True)
class Options:
    """What a caller asked for: which parts, how many recommendations, whether to explain."""

    parts: frozenset[str] = frozenset(PARTS)
    top_n: int | None = None
    explain: bool = False
    include_suppressed: bool = False


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

    aum = x[:, ctx.schema.index["aum_total"]]
    booked_idx = np.searchsorted(ctx.tier_thresholds, aum, side="right") - 1
    tier_names = ctx.policy.tier_names

    tier_probs = predicted_idx = None
    if want_tier and raw.tier is not None:
        tier_probs = ctx.tier.model.link(raw.tier)
        predicted_idx = tier_probs.argmax(axis=1)

    churn_p = band_idx = None
    if need_churn and raw.churn is not None:
        churn_p = calibrate(ctx.churn.calibrator, raw.churn, ctx.churn.model.link(raw.churn))
        band_idx = np.searchsorted(ctx.band_thresholds, churn_p, side="right") - 1

    contrib = None
    if want_churn and options.explain:
        contrib = contributions(ctx.churn, x, ctx.layout.columns(ctx.churn.model))

    product_p = None
    if want_recs and raw.products is not None:
        sig = np.array([m.sigmoid for m in ctx.layout.products])
        product_p = 1.0 / (1.0 + np.exp(-sig * raw.products))

    top_n = options.top_n or ctx.policy.default_top_n
    classes = ctx.tier.classes
    bands = ctx.policy.churn_bands
    product_names = ctx.layout.product_names
    churn_features = ctx.churn.model.feature_names
    results: list[dict[str, Any]] = []
    for i in range(n):
        cust = customers[i]
        booked = tier_names[booked_idx[i]] if not math.isnan(aum[i]) else None
        out: dict[str, Any] = {"customer_id": cust.customer_id}
        if tier_probs is not None and predicted_idx is not None:
            predicted = classes[predicted_idx[i]]
            out["tier"] = {
                "booked": booked,
                "predicted": predicted,
                "probabilities": dict(zip(classes, tier_probs[i].tolist(), strict=True)),
                "upgrade_candidate": booked is not None
                and ctx.tier_rank[predicted] > ctx.tier_rank[booked],
            }
        probability = float(churn_p[i]) if churn_p is not None else None
        if want_churn and churn_p is not None and band_idx is not None:
            out["churn"] = {
                "probability": probability,
                "band": bands[band_idx[i]].band,
                "reasons": (
                    top_reasons(contrib[i], churn_features, cust.features,
                                ctx.churn.reason_codes)
                    if contrib is not None
                    else []
                ),
            }
        if want_recs:
            propensities = (
                dict(zip(product_names, product_p[i].tolist(), strict=True))
                if product_p is not None
                else {}
            )
            recs, suppressed = arbitrate(
                catalog=ctx.catalog,
                customer=_customer(cust.features, booked, probability),
                propensities=propensities,
                channel=cust.channel,
                history=cust.history,
                top_n=top_n,
            )
            out["recommendations"] = [_recommendation(r) for r in recs]
            if options.include_suppressed:
                out["suppressed"] = [
                    {"action_id": s.action_id, "reason_code": s.reason_code, "detail": s.detail}
                    for s in suppressed
                ]
        results.append(out)
    return results


def _customer(features: Mapping[str, Any], booked: str | None, churn: float | None) -> Customer:
    return Customer(
        age=int(features.get("age") or 0),
        aum=float(features.get("aum_total") or 0.0),
        booked_tier=booked or "",
        risk_profile=features.get("risk_profile"),
        risk_assessment_age_days=features.get("risk_assessment_age_days"),
        flags=features,
        churn_probability=churn,
        days_to_next_maturity=features.get("days_to_next_maturity"),
    )


def _recommendation(r: Any) -> dict[str, Any]:
    return {
        "action_id": r.action_id,
        "name": r.name,
        "category": r.category,
        "kind": r.kind,
        "risk_level": r.risk_level,
        "priority": r.priority,
        "propensity": r.propensity,
        "context_weight": r.context_weight,
        "value": r.value,
        "lever": r.lever,
        "reasons": list(r.reasons),
    }
