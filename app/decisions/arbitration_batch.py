"""Arbitration for many customers at once: the decisions of arbitration.py, made with array
operations over customers × actions.

Per customer the Python loop of arbitration.py costs ~10 µs for 13 actions, more than the
trees of a whole batch row. Here every rule of every action is one comparison over all
customers of the batch, in the same order (eligibility → suitability → contact policy →
propensity), and the ranking is one sort of (−priority, action id) per row. Priorities are
computed with the same IEEE operations in the same order ((P × C) × V) × L, so they are
bit-identical to the per-customer path. This is the array form of the rules defined in
eligibility.py, suitability.py, contact_policy.py and priority.py;
tests/decisions/test_batch_form.py checks it against arbitration.py on random catalogues,
customers, channels and top N.

Service actions (risk_reassessment) take the priority of the best product each customer's
missing or expired assessment keeps out, as arbitration.py does (the same key, the same
tie-break by id). Customer values are read through the roles the catalogue was prepared
for (PreparedCatalog.*_feature); a role without a feature, or a missing value, is unknown.

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
from app.decisions.conditions import CompiledCondition, condition_mask
from app.decisions.contact_policy import CONTACT_CAP, cap_reached, contact_failure
from app.decisions.prepared import PreparedAction, PreparedCatalog
from app.decisions.priority import (
    NO_PROPENSITY,
    RANKED_BELOW_TOP_N,
    REASON_CODES,
    TRIGGER_NOT_MET,
)
from app.decisions.reasons import recommendation_dict
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
    # (n,) int: the product a service action's priority comes from (its column); -1 none.
    unlock: np.ndarray | None = None


class _Customers:
    """The values the rules read, one array over the batch each, from the validated rows: a
    NaN in a row is a missing value, which the per-customer path reads as 0 (or False)."""

    def __init__(self, prepared: PreparedCatalog, schema: FeatureSchema, x: np.ndarray,
                 booked_tier: Sequence[str], limits: Sequence[SuitabilityLimits],
                 churn: np.ndarray | None) -> None:
        n = self.n = x.shape[0]
        self.schema, self.x = schema, x
        self.age = self.column(prepared.age_feature)  # NaN: unknown
        self.age_unknown = np.isnan(self.age)
        self.aum = np.nan_to_num(self.column(prepared.aum_feature), nan=0.0)
        if churn is None:
            self.churn_ok = np.zeros(n, dtype=bool)
            self.churn = np.full(n, np.nan)
        else:
            self.churn_ok = (churn >= 0.0) & (churn <= 1.0)  # NaN, out of range: not scored
            self.churn = np.where(self.churn_ok, churn, np.nan)
        self.tiers = {t: k for k, t in enumerate(dict.fromkeys(booked_tier))}
        self.tier_code = np.fromiter(map(self.tiers.__getitem__, booked_tier), dtype=np.intp,
                                     count=n)
        # The limits objects are shared (PreparedCatalog.limits_for remembers them): each
        # distinct one is read once, and every customer indexes its row of the table.
        ids = list(map(id, limits))
        by_id = dict(zip(ids, limits, strict=True))
        first = {i: k for k, i in enumerate(by_id)}
        which = np.fromiter(map(first.__getitem__, ids), dtype=np.intp, count=n)
        distinct = list(by_id.values())
        self.max_rank = np.array([lim.max_rank for lim in distinct], dtype=np.int64)[which]
        self.over = np.array([_CODE[lim.over_code] for lim in distinct], dtype=np.int8)[which]
        self.cap = np.array([99 if lim.elderly_cap is None else lim.elderly_cap
                             for lim in distinct], dtype=np.int64)[which]
        self.reassessable = np.array([lim.reassessable for lim in distinct], dtype=bool)[which]
        self._flags: dict[str, np.ndarray | None] = {}

    def column(self, name: str | None) -> np.ndarray:
        """A feature's encoded values (NaN where missing; all NaN without such a feature)."""
        col = None if name is None else self.schema.index.get(name)
        return np.full(self.n, np.nan) if col is None else self.x[:, col]

    def meets(self, c: CompiledCondition) -> np.ndarray:
        """conditions.condition_met for every customer."""
        col = self.schema.index.get(c.feature)
        if col is None:  # never in a validated row: missing for everyone
            return np.full(self.n, c.op == "is_null", dtype=bool)
        return condition_mask(c, self.schema.specs[col], self.x[:, col])

    def flag(self, name: str) -> np.ndarray | None:
        """Truth of a feature per customer; None when it cannot be read as one."""
        if name not in self._flags:
            col = self.schema.index.get(name)
            got: np.ndarray | None
            if col is None:  # not a feature: never in a validated row, so always false
                got = np.zeros(self.n, dtype=bool)
            elif self.schema.specs[col].kind in ("boolean", "number", "integer"):
                v = self.x[:, col]
                got = (v != 0.0) & ~np.isnan(v)  # Python truthiness of the value; None false
            else:
                got = None
            self._flags[name] = got
        return self._flags[name]


def _eligibility(c: np.ndarray, a: PreparedAction, cu: _Customers) -> bool:
    """Codes of eligibility.eligibility_failure into column c; False when a flag is unreadable."""

    def fail(mask: np.ndarray, code: str) -> None:
        c[(c == 0) & mask] = _CODE[code]  # the first rule failed is the reason

    rule = a.eligibility
    if rule.has_age_limit:
        fail(cu.age_unknown, el.AGE_UNKNOWN)  # NaN compares false below
    fail(cu.age < rule.min_age, el.AGE_BELOW_MINIMUM)
    fail(cu.age > rule.max_age, el.AGE_ABOVE_MAXIMUM)
    fail(cu.aum < rule.min_aum, el.AUM_BELOW_MINIMUM)
    if rule.allowed_tiers is not None:
        table = np.array([t not in rule.allowed_tiers for t in cu.tiers], dtype=bool)
        fail(table[cu.tier_code], el.TIER_NOT_ALLOWED)
    if rule.held_flag is not None:
        f = cu.flag(rule.held_flag)
        if f is None:
            return False
        fail(f, el.ALREADY_HELD)
    for name in rule.requires_flags:
        f = cu.flag(name)
        if f is None:
            return False
        fail(~f, el.REQUIREMENT_NOT_MET)
    for cond in rule.conditions:
        fail(~cu.meets(cond), el.CONDITION_NOT_MET)
    if rule.needs_churn:
        fail(~cu.churn_ok, el.CHURN_NOT_SCORED)
        fail(cu.churn < rule.min_churn_probability, el.CHURN_RISK_BELOW_THRESHOLD)
    return True


def _suitability_and_contact(c: np.ndarray, a: PreparedAction, cu: _Customers,
                             capped: bool, unlock: bool) -> np.ndarray | None:
    """Codes of suitability.suitability_failure, with no history of contact_failure, and of
    the contact cap; returns the rows where the product is kept out only by a missing or
    expired assessment and passes the contact checks (SuitabilityLimits.unlocks), when
    `unlock` asks for them."""
    kept = None
    rank = a.risk_rank
    if rank:
        above = (c == 0) & (rank > cu.max_rank)
        c[above] = cu.over[above]
        if unlock:
            kept = above & cu.reassessable
            if not a.elderly_allowed:
                kept &= rank <= cu.cap
        if not a.elderly_allowed:
            c[(c == 0) & (rank > cu.cap)] = _CODE[su.ELDERLY_RISK_CAP]
    if a.never_contact:
        code = contact_failure(a.contact, ())  # the same for every customer without history
        if code is not None:
            c[c == 0] = _CODE[code]
            kept = None
    if capped:  # the catalogue's cap with no history: max_offers 0
        c[c == 0] = _CODE[CONTACT_CAP]
        kept = None
    return kept


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
    cu = _Customers(prepared, schema, x, booked_tier, limits, churn)
    n, actions = cu.n, prepared.actions
    capped = cap_reached(prepared.contact_cap, ())
    unlock = prepared.has_service and bool(cu.reassessable.any())
    kept = np.zeros((n, len(actions)), dtype=bool) if unlock else None
    count = len(actions)
    channel_keys = {c: k for k, c in enumerate(dict.fromkeys(channels))}
    weight_table = np.array([prepared.weights_for(c) for c in channel_keys], dtype=np.float64)
    channel_code = np.fromiter(map(channel_keys.__getitem__, channels), dtype=np.intp,
                               count=n)
    weight = weight_table[channel_code]

    code = np.zeros((n, count), dtype=np.int8)
    p = np.full((n, count), np.nan)
    products = {name: k for k, name in enumerate(product_names)}
    for j, a in enumerate(actions):
        if not _eligibility(code[:, j], a, cu):
            return None
        kept_j = _suitability_and_contact(code[:, j], a, cu, capped, unlock)
        if kept_j is not None and kept is not None:
            kept[:, j] = kept_j
        if a.is_service:
            continue  # decided below, from the products
        if a.is_retention:
            p[:, j] = cu.churn
        else:
            k = products.get(a.propensity_model)  # type: ignore[arg-type]
            if k is not None and propensities is not None:
                v = propensities[:, k]
                p[:, j] = np.where((v >= 0.0) & (v <= 1.0), v, np.nan)
            code[(code[:, j] == 0) & np.isnan(p[:, j]), j] = _CODE[NO_PROPENSITY]
    values = np.array([a.value for a in actions], dtype=np.float64)
    levers = np.array([a.lever for a in actions], dtype=np.float64)
    priority = p * weight * values * levers  # ((P × C) × V) × L, as arbitration.py
    id_rank = np.broadcast_to(
        np.argsort(np.array([a.id for a in actions]), kind="stable").argsort(), (n, count))
    unlocked = None
    if prepared.has_service:
        unlocked = _services(actions, code, p, weight, priority, kept, id_rank)
    ok = code == 0
    key = np.where(ok, -priority, np.inf)
    order = np.lexsort((id_rank, key), axis=-1)
    return BatchDecisions(order=order, eligible=ok.sum(axis=1), code=code, p=p,
                          weight=weight, priority=priority, unlock=unlocked)


def _services(actions: Sequence[PreparedAction], code: np.ndarray, p: np.ndarray,
              weight: np.ndarray, priority: np.ndarray, kept: np.ndarray | None,
              id_rank: np.ndarray) -> np.ndarray:
    """Decide the service actions' columns in place: each takes P, C and priority of the
    best kept-out product with a propensity (−priority, then id, as arbitration.py), or
    `trigger_not_met`. Returns that product's column per row (-1: none)."""
    n = code.shape[0]
    unlocked = np.full(n, -1, dtype=np.intp)
    if kept is not None:
        candidate = kept & ~np.isnan(p)
        key = np.where(candidate, -priority, np.inf)
        first = np.lexsort((id_rank, key), axis=-1)[:, 0]
        rows = np.arange(n)
        found = candidate[rows, first]
        unlocked = np.where(found, first, -1)
    found = unlocked >= 0
    src = np.where(found, unlocked, 0)
    rows = np.arange(n)
    for j, a in enumerate(actions):
        if not a.is_service:
            continue
        c = code[:, j]
        c[(c == 0) & ~found] = _CODE[TRIGGER_NOT_MET]
        p[:, j] = np.where(found, p[rows, src], np.nan)
        weight[:, j] = np.where(found, weight[rows, src], weight[:, j])
        priority[:, j] = np.where(found, priority[rows, src], np.nan)
    return unlocked


class BatchArbitration:
    """The batch's decisions, unpacked per customer into what arbitration.arbitrate returns
    with details=False."""

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
        self.unlock = None if decisions.unlock is None else decisions.unlock.tolist()
        self.limits = limits
        self.top = top
        self.order = decisions.order.tolist() if with_suppressed else None
        self.code = decisions.code.tolist() if with_suppressed else None

    def customer(self, i: int, *, booked_tier: str, channel: str | None,
                 days_to_next_maturity: int | None
                 ) -> tuple[list[dict[str, object]], list[tuple[str, str, str]]]:
        """Customer i's recommendations (response dicts) and suppressed actions."""
        actions = self.actions
        shown = min(self.top, self.eligible[i])
        idx, p, w, priority = self.idx[i], self.p[i], self.w[i], self.priority[i]
        limits = self.limits[i]
        unlock = self.unlock
        recs = []
        for r in range(shown):
            a = actions[idx[r]]
            # A service action carries the product it stands for (unlock[i]).
            recs.append(recommendation_dict(
                a, priority[r], p[r], w[r], channel, booked_tier, days_to_next_maturity, limits,
                actions[unlock[i]] if unlock is not None and a.is_service else None))
        suppressed: list[tuple[str, str, str]] = []
        if self.code is not None and self.order is not None:
            suppressed = [(actions[j].id, CODES[c], "")
                          for j, c in enumerate(self.code[i]) if c]
            suppressed += [(actions[j].id, RANKED_BELOW_TOP_N, "")
                           for j in self.order[i][shown:self.eligible[i]]]
        return recs, suppressed


def arbitrate_many(
    prepared: PreparedCatalog,
    *,
    schema: FeatureSchema,
    x: np.ndarray,
    features: Sequence[Mapping[str, object]],
    booked_tier: Sequence[str],
    churn: np.ndarray | None,
    propensities: np.ndarray | None,
    product_names: Sequence[str],
    channels: Sequence[str | None],
    top_n: int,
    with_suppressed: bool,
) -> BatchArbitration | None:
    """`arbitrate_batch` on customers given by their rows and validated named features,
    unpacked per customer."""
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    profile, assessment, age = (prepared.risk_profile_feature, prepared.assessment_feature,
                                prepared.age_feature)
    if profile is None or assessment is None or age is None:
        limits = [prepared.limits_of(f) for f in features]
    else:  # limits_of without its three look-ups by role per customer
        limits_for = prepared.limits_for
        limits = [limits_for(f.get(profile), f.get(assessment), f.get(age))  # type: ignore[arg-type]
                  for f in features]
    decisions = arbitrate_batch(
        prepared, schema=schema, x=x, booked_tier=booked_tier, limits=limits, churn=churn,
        propensities=propensities, product_names=product_names, channels=channels)
    if decisions is None:
        return None
    return BatchArbitration(prepared, decisions, limits, top_n, with_suppressed)
