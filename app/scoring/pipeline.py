"""Scoring one or many customers on a context: models → calibration → tier → arbitration.

Pure: feature rows and named values in, plain dicts out. Every step runs vectorised over
the rows (one row: the same arithmetic on Python floats, one np.exp call); only the
arbitration (small, per customer) loops.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import mul
from typing import Any

import numpy as np

from app.decisions.arbitration import ContactEvent, arbitrate_customer
from app.decisions.arbitration_batch import BatchArbitration, arbitrate_many
from app.engine.evaluate import RawScores
from app.outcomes.decision_ids import (
    DecisionSigner,
    DecisionStamp,
    customer_json,
    number,
    process_signer,
)
from app.scoring.context import ScoringContext
from app.scoring.explain import Explainer
from app.scoring.families import calibrate
from app.scoring.reasons import top_order, top_reasons

PARTS: tuple[str, ...] = ("tier", "churn", "recommendations")


@dataclass(frozen=True, slots=True)
class Options:
    """What a caller asked for: which parts, how many recommendations, whether to explain."""

    parts: frozenset[str] = frozenset(PARTS)
    top_n: int | None = None
    explain: bool = True  # reasons (issue 13); the book command keeps them opt-in
    include_suppressed: bool = False
    # With include_suppressed: whether each suppressed action carries its readable detail.
    # The service lists suppressed actions on every call for its metrics but formats the
    # details only for callers who asked to see them.
    suppressed_details: bool = True
    # Decision ids on every recommendation (app/outcomes/decision_ids.py): made with
    # `signer` (None: a random key of this process), naming `alias` as what decided.
    decision_ids: bool = True
    signer: DecisionSigner | None = None
    alias: str = "production"


@dataclass(frozen=True, slots=True)
class CustomerInput:
    """One customer to score: the caller's id, named features and contact context."""

    customer_id: str
    features: Mapping[str, Any]
    channel: str | None = None
    history: tuple[ContactEvent, ...] = ()
    as_of: dt.date | None = None  # the decision day; None is today (UTC)
    # Where the history came from when not from the caller: "recorded" (the outcomes
    # table) or "unavailable" (the database could not be reached); said in the response.
    history_source: str | None = None


def score_rows(
    ctx: ScoringContext, x: np.ndarray, customers: Sequence[CustomerInput], options: Options
) -> list[dict[str, Any]]:
    """Score rows `x` (laid out by ctx.schema) of `customers`; results in input order."""
    parts = options.parts
    want_churn = "churn" in parts
    want_recs = "recommendations" in parts
    s = _Scores.of(ctx, x, tier="tier" in parts, churn=want_churn or want_recs,
                   products=want_recs)
    contrib = None
    order: tuple[list[list[int]], list[list[float]]] = ([], [])
    if want_churn and options.explain:
        contrib = Explainer.of(ctx).churn_contributions(x)  # native SHAP (issue 13)
        order = top_order(contrib)
    arbiter = _Arbiter.of(ctx, x, customers, s, options) if want_recs else None
    k = ctx.constants
    tier_names, classes, tier_rank = k.tier_names, k.classes, ctx.tier_rank
    band_names, churn_features = k.band_names, ctx.churn.model.feature_names
    control = ctx.policy.control_group
    holds_out = control.holds_out if control.share > 0.0 else None
    results: list[dict[str, Any]] = []
    booked_idx, aum, tier_probs, tier_wealth = s.booked_idx, s.aum, s.tier_probs, s.tier_wealth
    for i, cust in enumerate(customers):
        booked = tier_names[booked_idx[i]] if aum[i] == aum[i] else None  # not NaN
        out: dict[str, Any] = {"customer_id": cust.customer_id,
                               "control": holds_out is not None
                               and holds_out(cust.customer_id)}
        if tier_probs is not None:
            probs = tier_probs[i]
            predicted = classes[probs.index(max(probs))]
            out["tier"] = {
                "booked": booked,
                "predicted": predicted,
                "predicted_wealth": tier_wealth[i] if tier_wealth is not None else None,
                "probabilities": dict(zip(classes, probs, strict=True)),
                "upgrade_candidate": booked is not None
                and tier_rank[predicted] > tier_rank[booked],
            }
        probability = s.churn_p[i] if s.churn_p is not None else None
        if want_churn and s.churn_p is not None and s.band_idx is not None:
            out["churn"] = {
                "probability": probability,
                "band": band_names[s.band_idx[i]],
                "reasons": (
                    top_reasons(contrib[i], churn_features, cust.features,
                                ctx.churn.reason_codes,
                                top=(order[0][i], order[1][i]))
                    if contrib is not None
                    else []
                ),
            }
        if cust.history_source is not None:
            out["contact_history"] = cust.history_source
        if arbiter is not None:
            arbiter.customer(out, i, cust, booked or "", probability)
        results.append(out)
    if arbiter is not None and options.explain:  # why each recommended product (issue 13)
        Explainer.of(ctx).product_reasons(x, results, [c.features for c in customers])
    return results


@dataclass(slots=True)
class _Scores:
    """The models' outputs for the rows, as the response needs them: Python lists per row
    (and the arrays the batch arbitration reads)."""

    aum: list[float]
    booked_idx: list[int]
    tier_probs: list[list[float]] | None = None
    churn_p: list[float] | None = None
    band_idx: list[int] | None = None
    churn_arr: np.ndarray | None = None
    product_arr: np.ndarray | None = None
    product_p: list[list[float]] | None = None  # filled in single-row mode only
    tier_wealth: list[float] | None = None  # a wealth tier model's conditional median

    @classmethod
    def of(cls, ctx: ScoringContext, x: np.ndarray, *, tier: bool, churn: bool,
           products: bool) -> _Scores:
        """Evaluate the models asked for and turn their raw scores into probabilities."""
        raw = ctx.evaluator.raw(x, tier=tier, churn=churn, products=products)
        k = ctx.constants
        aum_col = x[:, k.aum_col] if k.aum_col is not None else np.full(x.shape[0], np.nan)
        aum = aum_col.tolist()
        single = _single_row(ctx, raw) if x.shape[0] == 1 else None
        if single is not None:
            # One customer: the same operations on Python floats, with a single np.exp call
            # (identical results: + - * / are IEEE in both, exp is numpy's in both).
            s = cls(aum, [bisect_right(k.tier_thresholds, aum[0]) - 1], *single[:2])
            s.product_p = single[2]
        else:
            booked = np.searchsorted(ctx.tier_thresholds, aum_col, side="right") - 1
            s = cls(aum, booked.tolist())
            if tier and raw.tier is not None and k.wealth is None:
                s.tier_probs = ctx.tier.model.link(raw.tier).tolist()
            if churn and raw.churn is not None:
                s.churn_arr = calibrate(ctx.churn.calibrator, raw.churn,
                                        ctx.churn.model.link(raw.churn))
                s.churn_p = s.churn_arr.tolist()
            if products and raw.products is not None:
                s.product_arr = 1.0 / (1.0 + np.exp(-k.product_sigmoid * raw.products))
        if tier and raw.tier is not None and k.wealth is not None:
            # Wallet wealth against the live thresholds (app/scoring/wealth.py): one customer
            # in plain floats, a batch in numpy, the same answer either way.
            if x.shape[0] == 1:
                probs, wealth = k.wealth.one(raw.tier[0, 0].item(), aum[0])
                s.tier_probs, s.tier_wealth = [probs], [wealth]
            else:
                s.tier_probs, s.tier_wealth = k.wealth.many(raw.tier[:, 0], aum_col)
        churn_p = s.churn_p
        if churn_p is not None:
            if len(churn_p) == 1 and not math.isnan(churn_p[0]):
                s.band_idx = [bisect_right(k.band_thresholds, churn_p[0]) - 1]
            else:
                s.band_idx = (np.searchsorted(ctx.band_thresholds, churn_p, side="right")
                              - 1).tolist()
        return s


# From this many customers on, arbitration runs over the whole batch as array operations
# (app/decisions/arbitration_batch.py); below it the per-customer loop is cheaper.
BATCH_ARBITRATION_MIN = 16


class _Arbiter:
    """Recommendations for each customer: from the batch arbitration when it applies, else
    from the per-customer arbitration (customers with a contact history always)."""

    def __init__(self, ctx: ScoringContext, s: _Scores, options: Options,
                 batch: BatchArbitration | None) -> None:
        self.prepared = ctx.prepared_catalog  # prepared for the contract's roles at load
        self.product_names = ctx.constants.product_names
        self.top_n = options.top_n or ctx.policy.default_top_n
        self.include_suppressed = options.include_suppressed
        self.details = options.include_suppressed and options.suppressed_details
        self.batch = batch
        self.product_p = s.product_p
        self.product_arr = s.product_arr
        self.stamp = _stamp(ctx, options) if options.decision_ids else None
        self.today = _today()

    @classmethod
    def of(cls, ctx: ScoringContext, x: np.ndarray, customers: Sequence[CustomerInput],
           s: _Scores, options: Options) -> _Arbiter:
        """Decide the batch at once when it is large enough and no details are asked for."""
        arbiter = cls(ctx, s, options, None)
        if len(customers) >= BATCH_ARBITRATION_MIN and not arbiter.details:
            tier_names = ctx.constants.tier_names
            features = [c.features for c in customers]
            arbiter.batch = arbitrate_many(
                arbiter.prepared, schema=ctx.schema, x=x, features=features,
                booked_tier=[(tier_names[b] if a == a else None) or ""
                             for b, a in zip(s.booked_idx, s.aum, strict=True)],
                churn=s.churn_arr, propensities=s.product_arr,
                product_names=arbiter.product_names,
                channels=[c.channel for c in customers], top_n=arbiter.top_n,
                with_suppressed=arbiter.include_suppressed)
        return arbiter

    def customer(self, out: dict[str, Any], i: int, cust: CustomerInput, booked: str,
                 churn: float | None) -> None:
        """Add customer i's recommendations (and suppressed actions) to its result."""
        features = cust.features
        if self.batch is not None and not cust.history:
            out["recommendations"], suppressed = self.batch.customer(
                i, booked_tier=booked, channel=cust.channel,
                days_to_next_maturity=self.prepared.maturity_of(features))
        else:
            product_p = self.product_p
            if product_p is None and self.product_arr is not None:
                # Only now: the batch path, when it answers everyone, never reads them by name.
                product_p = self.product_p = self.product_arr.tolist()
            out["recommendations"], suppressed = arbitrate_customer(
                self.prepared, features, booked_tier=booked, churn_probability=churn,
                propensities=({} if product_p is None
                              else dict(zip(self.product_names, product_p[i], strict=True))),
                channel=cust.channel, history=cust.history, top_n=self.top_n,
                details=self.details)
        if self.stamp is not None:
            self._decision_ids(out["recommendations"], cust, churn, out["control"])
        if out["control"]:  # held out of product offers, to measure their uplift
            recs = out["recommendations"]
            out["recommendations"] = [r for r in recs if r["kind"] != "product"]
            out["held_out"] = [r for r in recs if r["kind"] == "product"]
        if self.include_suppressed:
            out["suppressed"] = [
                {"action_id": a, "reason_code": c, "detail": d} for a, c, d in suppressed
            ]


    def _decision_ids(self, recs: list[dict[str, Any]], cust: CustomerInput,
                      churn: float | None, control: bool) -> None:
        """A decision id on each recommendation, ranked as arbitration ranked them."""
        if not recs:
            return
        stamp = self.stamp
        assert stamp is not None
        make = stamp.make
        head = stamp.customer(customer_json(cust.customer_id),
                              self.today if cust.as_of is None else cust.as_of.isoformat(),
                              number(churn))
        for rank, r in enumerate(recs, start=1):
            group = "control" if control and r["kind"] == "product" else "treatment"
            r["decision_id"] = make(head, r["action_id"], group, rank, r["propensity"])


def _stamp(ctx: ScoringContext, options: Options) -> DecisionStamp:
    """The context's decision-id stamp for this signer and alias (built once, then reused)."""
    signer = options.signer or process_signer()
    key = (signer, options.alias)
    stamp = ctx.decision_stamps.get(key)
    if stamp is None:
        stamp = ctx.decision_stamps[key] = DecisionStamp(
            signer, {f: v.version for f, v in ctx.versions.items()}, options.alias)
    return stamp


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_day: tuple[int, str] = (-1, "")


def _today() -> str:
    """Today in UTC as YYYY-MM-DD (recomputed when the day changes, not per call)."""
    global _day
    day = int(time.time() // 86400)
    if day != _day[0]:
        _day = (day, dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat())
    return _day[1]


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
    if raw.tier is not None and k.wealth is None:  # a wealth tier is read in _Scores.of
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
