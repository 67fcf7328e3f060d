"""Arbitration for many customers at once: the same decisions as `arbitrate_tuples`, made
with array operations over customers × actions.

Per customer the Python loop of `arbitrate_tuples` costs ~10 µs for 13 actions, more than
the trees of a whole batch row. Here every rule of every action is one comparison over all
customers of the batch, in the same order (eligibility → suitability → contact policy →
propensity), and the ranking is one sort of (−priority, action id) per row. Priorities are
computed with the same IEEE operations in the same order ((P × C) × V) × L, so they are
bit-identical to the per-customer path; tests/decisions/test_arbitration_batch.py checks the
decisions against `arbitrate_tuples` on random batches.

Not covered here (the caller takes the per-customer path for those customers): a contact
history, and readable details for suppressed actions. Flags must name boolean or numeric
features of the batch's schema (others make `arbitrate_batch` return None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from app.decisions import eligibility as el
from app.decisions import suitability as su
from app.decisions.arbitration import NO_PROPENSITY, REASON_CODES, PreparedCatalog
from app.decisions.contact_policy import check_contact
from app.decisions.suitability import SuitabilityLimits
from app.features.schema import FeatureSchema

_CODE = {code: i + 1 for i, code in enumerate(REASON_CODES)}  # 0 = not suppressed
CODES: tuple[str, ...] = ("", *REASON_CODES)  # CODES[code number] → reason code


@dataclass(frozen=True, slots=True)
class BatchDecisions:
    """What `arbitrate_batch` decided, per customer (row) and action (column, catalogue order).

    order[i] lists action indices: the eligible ones by rank (−priority, id), then the others;
    the first min(top_n, eligible[i]) are recommended. code[i, j] is 0 for an eligible action,
    else the number of its reason code in CODES.
    """

    order: np.ndarray  # (n, actions) int
    eligible: np.ndarray  # (n,) int
    code: np.ndarray  # (n, actions) int8
    p: np.ndarray  # (n, actions) float: P of each action (churn for retention), NaN if none
    weight: np.ndarray  # (n, actions) float: C of each action for the customer's channel
    priority: np.ndarray  # (n, actions) float


def arbitrate_batch(
    prepared: PreparedCatalog,
    *,
    schema: FeatureSchema,
    x: np.ndarray,
    booked_tier: Sequence[str],
    limits: Sequence[SuitabilityLimits],
    churn: np.ndarray | None,
    propensities: np.ndarray | None,
    product_names: Sequence[str],
    channels: Sequence[str | None],
) -> BatchDecisions | None:
    """Decide for every row of `x` (laid out by `schema`) at once; None when a flag names a
    feature this path cannot read as a truth value (the caller then loops per customer).

    booked_tier[i] is the customer's booked tier ("" when unknown), limits[i] its suitability
    limits, churn the calibrated churn probabilities (None: not scored), propensities the
    (n, products) matrix in `product_names` order (None: not scored), channels[i] its channel.
    """
    n = x.shape[0]
    actions = prepared.actions
    count = len(actions)
    index = schema.index
    # The values arbitrate_tuples reads from the named features, from the validated rows:
    # a NaN in a row is a missing value, which the per-customer path reads as 0.
    age = np.nan_to_num(x[:, index["age"]], nan=0.0)
    aum = np.nan_to_num(x[:, index["aum_total"]], nan=0.0)
    if churn is None:
        churn_ok = np.zeros(n, dtype=bool)
        churn_v = np.full(n, np.nan)
    else:
        churn_ok = (churn >= 0.0) & (churn <= 1.0)  # NaN and out-of-range: as not scored
        churn_v = np.where(churn_ok, churn, np.nan)
    tiers = {t: k for k, t in enumerate(dict.fromkeys(booked_tier))}
    tier_code = np.fromiter((tiers[t] for t in booked_tier), dtype=np.intp, count=n)
    max_rank = np.fromiter((lim.max_rank for lim in limits), dtype=np.int64, count=n)
    over = np.fromiter((_CODE[lim.over_code] for lim in limits), dtype=np.int8, count=n)
    cap = np.fromiter((99 if lim.elderly_cap is None else lim.elderly_cap for lim in limits),
                      dtype=np.int64, count=n)
    flags: dict[str, np.ndarray] = {}

    def flag(name: str) -> np.ndarray | None:
        got = flags.get(name)
        if got is None:
            col = index.get(name)
            if col is None:  # not a feature: never in a validated row, so always false
                got = np.zeros(n, dtype=bool)
            elif schema.specs[col].kind in ("boolean", "number", "integer"):
                v = x[:, col]
                got = (v != 0.0) & ~np.isnan(v)  # Python truthiness of the value; None false
            else:
                return None
            flags[name] = got
        return got

    channel_keys = {c: k for k, c in enumerate(dict.fromkeys(channels))}
    weight_table = np.array([prepared.weights_for(c) for c in channel_keys], dtype=np.float64)
    channel_code = np.fromiter((channel_keys[c] for c in channels), dtype=np.intp, count=n)
    weight = weight_table[channel_code]

    code = np.zeros((n, count), dtype=np.int8)
    p = np.full((n, count), np.nan)
    products = {name: k for k, name in enumerate(product_names)}
    for j, a in enumerate(actions):
        c = code[:, j]
        min_age, max_age, min_aum, allowed, held, requires, needs_churn, min_churn = a.quick

        def fail(mask: np.ndarray, number: int, c: np.ndarray = c) -> None:
            c[(c == 0) & mask] = number  # the first rule failed is the reason

        fail(age < min_age, _CODE[el.AGE_BELOW_MINIMUM])
        fail(age > max_age, _CODE[el.AGE_ABOVE_MAXIMUM])
        fail(aum < min_aum, _CODE[el.AUM_BELOW_MINIMUM])
        if allowed is not None:
            table = np.array([t not in allowed for t in tiers], dtype=bool)
            fail(table[tier_code], _CODE[el.TIER_NOT_ALLOWED])
        if held is not None:
            f = flag(held)
            if f is None:
                return None
            fail(f, _CODE[el.ALREADY_HELD])
        for name in requires:
            f = flag(name)
            if f is None:
                return None
            fail(~f, _CODE[el.REQUIREMENT_NOT_MET])
        if needs_churn:
            fail(~churn_ok, _CODE[el.CHURN_NOT_SCORED])
            fail(churn_v < min_churn, _CODE[el.CHURN_RISK_BELOW_THRESHOLD])
        rank = a.risk_rank
        if rank:
            above = rank > max_rank
            c[(c == 0) & above] = over[(c == 0) & above]
            if not a.elderly_allowed:
                fail(rank > cap, _CODE[su.ELDERLY_RISK_CAP])
        if a.never_contact:
            failure = check_contact(a.contact, ())
            if failure is not None:
                fail(np.ones(n, dtype=bool), _CODE[failure[0]])
        if a.is_retention:
            p[:, j] = churn_v
        else:
            k = products.get(a.propensity_model)  # type: ignore[arg-type]
            if k is not None and propensities is not None:
                v = propensities[:, k]
                p[:, j] = np.where((v >= 0.0) & (v <= 1.0), v, np.nan)
            fail(np.isnan(p[:, j]), _CODE[NO_PROPENSITY])
    values = np.array([a.value for a in actions], dtype=np.float64)
    levers = np.array([a.lever for a in actions], dtype=np.float64)
    priority = p * weight * values * levers  # ((P × C) × V) × L, as arbitrate_tuples
    ok = code == 0
    key = np.where(ok, -priority, np.inf)
    id_rank = np.argsort(np.array([a.id for a in actions]), kind="stable").argsort()
    order = np.lexsort((np.broadcast_to(id_rank, (n, count)), key), axis=-1)
    return BatchDecisions(order=order, eligible=ok.sum(axis=1), code=code, p=p,
                          weight=weight, priority=priority)


def limits_of(prepared: PreparedCatalog, features: Sequence[Mapping[str, object]],
              age: Sequence[int]) -> list[SuitabilityLimits]:
    """Each customer's suitability limits, from the same values arbitrate_tuples reads."""
    return [prepared.limits_for(f.get("risk_profile"),  # type: ignore[arg-type]
                                f.get("risk_assessment_age_days"), a)  # type: ignore[arg-type]
            for f, a in zip(features, age, strict=True)]
