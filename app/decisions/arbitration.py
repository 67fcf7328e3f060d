"""Next-best-action arbitration for one customer: eligibility → suitability → contact policy →
priority → top N.

Each step is the rule's own definition (`eligibility_failure`, `suitability_failure`,
`contact_failure`, `cap_reached`, priority.py), called per action of the prepared catalogue:
nothing is restated here. Service actions (risk_reassessment) are decided last, from the
best product the customer's missing or expired assessment keeps out (priority.py). Every
catalogue action comes back exactly once: recommended, or suppressed with the reason code of
the first step it fails. arbitration_batch.py makes the same decisions for many customers
at once with array operations; tests/decisions/test_batch_form.py is the one place that
checks the two against each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.decisions import contact_policy, eligibility, suitability
from app.decisions.contact_policy import (
    CONTACT_CAP,
    ContactEvent,
    cap_reached,
    contact_failure,
    describe_cap,
    describe_contact,
)
from app.decisions.eligibility import describe_eligibility, eligibility_failure
from app.decisions.prepared import PreparedAction, PreparedCatalog
from app.decisions.priority import (
    NO_PROPENSITY,
    RANKED_BELOW_TOP_N,
    REASON_CODES,
    TRIGGER_NOT_MET,
    no_propensity_detail,
    ranked_detail,
    trigger_detail,
)
from app.decisions.reasons import recommendation_dict
from app.decisions.suitability import SuitabilityLimits, describe_suitability, suitability_failure

__all__ = ["REASON_CODES", "ContactEvent", "Suppression", "arbitrate", "arbitrate_customer"]

# (action_id, reason_code, detail) of one action not recommended.
Suppression = tuple[str, str, str]


def arbitrate(
    prepared: PreparedCatalog,
    *,
    age: float | None,
    aum: float,
    booked_tier: str,
    risk_profile: str | None,
    risk_assessment_age_days: int | None,
    flags: Mapping[str, object],
    churn_probability: float | None,
    days_to_next_maturity: int | None,
    propensities: Mapping[str, float],
    channel: str | None,
    history: Sequence[ContactEvent],
    top_n: int,
    details: bool = True,
) -> tuple[list[dict[str, object]], list[Suppression]]:
    """The top N actions of `prepared` for one customer (response dicts, by rank) and every
    other action with the first rule it fails: in catalogue order, then those ranked out in
    rank order. `flags` are the customer's features by name (missing = False); `age` None is
    unknown. With `details` False every suppression detail is "" (the codes are the same),
    which saves formatting text nobody reads when only the metrics count them."""
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    limits = prepared.limits_for(risk_profile, risk_assessment_age_days, age)
    churn = churn_probability
    if churn is not None and not 0.0 <= churn <= 1.0:  # NaN included: it would poison sorting
        churn = None
    weights = prepared.weights_for(channel)
    by_action = _by_action(history)
    cap = prepared.contact_cap
    # With no history only a cap of 0 bites (skip the count).
    capped = cap is not None and (cap.max_offers == 0
                                  or (bool(history) and cap_reached(cap, history)))
    # Products a missing or expired assessment keeps out, for a risk_reassessment action.
    unlock = prepared.has_service and limits.reassessable
    best: tuple[float, str, int, float] | None = None  # (-priority, id, index, P)
    pending: list[tuple[int, int]] = []  # (slot in suppressed, index) of service actions
    suppressed: list[Suppression | None] = []
    ranked: list[tuple[float, str, int, float]] = []  # (-priority, id, index, P)
    actions = prepared.actions
    for i, a in enumerate(actions):
        code = eligibility_failure(a.eligibility, age, aum, booked_tier, flags, churn)
        if code is None and a.risk_rank:
            code = suitability_failure(a.risk_rank, a.elderly_allowed, limits)
            if code is not None and unlock and limits.unlocks(a.risk_rank, a.elderly_allowed):
                kept_out = _kept_out(a, i, by_action, capped, propensities, weights)
                if kept_out is not None and (best is None or kept_out < best):
                    best = kept_out
        if code is None and (a.never_contact or a.id in by_action):
            code = contact_failure(a.contact, by_action.get(a.id, ()))
        if code is None and capped:
            code = CONTACT_CAP
        if code is None:
            if a.is_service:  # decided once every product has been seen
                pending.append((len(suppressed), i))
                suppressed.append(None)
                continue
            p = churn if a.is_retention else propensities.get(a.propensity_model)  # type: ignore[arg-type]
            if p is not None and 0.0 <= p <= 1.0:
                p = float(p)  # numpy scalars in, plain floats out
                ranked.append((-(p * weights[i] * a.value * a.lever), a.id, i, p))
                continue
            code = NO_PROPENSITY
        detail = ""
        if details:
            detail = _detail(code, a, age, aum, booked_tier, flags, churn, limits,
                             by_action.get(a.id, ()), propensities, prepared, history)
        suppressed.append((a.id, code, detail))

    unlocked: dict[int, int] = {}
    for slot, i in reversed(pending):  # from the end, so the slots before stay in place
        if best is not None:
            ranked.append((best[0], actions[i].id, i, best[3]))
            unlocked[i] = best[2]
            del suppressed[slot]
        else:
            suppressed[slot] = (actions[i].id, TRIGGER_NOT_MET,
                                trigger_detail(limits.reassessable) if details else "")
    out = suppressed
    ranked.sort()  # ids are unique, so the tuple never compares past the id
    recommendations = []
    for neg, _, i, p in ranked[:top_n]:
        j = unlocked.get(i, i)
        recommendations.append(recommendation_dict(
            actions[i], -neg, p, weights[j], channel, booked_tier, days_to_next_maturity,
            limits, actions[j] if j != i else None))
    for rank, (neg, action_id, _, _) in enumerate(ranked[top_n:], start=top_n + 1):
        out.append((action_id, RANKED_BELOW_TOP_N,
                    ranked_detail(rank, -neg, top_n) if details else ""))
    return recommendations, out  # type: ignore[return-value]


def _kept_out(a: PreparedAction, i: int, by_action: Mapping[str, Sequence[ContactEvent]],
              capped: bool, propensities: Mapping[str, float],
              weights: Sequence[float]) -> tuple[float, str, int, float] | None:
    """The ranking key a product the assessment keeps out would have, if it passed the
    checks after suitability (contact policy, contact cap, propensity); else None."""
    if capped or ((a.never_contact or a.id in by_action)
                  and contact_failure(a.contact, by_action.get(a.id, ())) is not None):
        return None
    p = propensities.get(a.propensity_model)  # type: ignore[arg-type]
    if p is None or not 0.0 <= p <= 1.0:
        return None
    p = float(p)
    return (-(p * weights[i] * a.value * a.lever), a.id, i, p)


def _by_action(history: Sequence[ContactEvent]) -> dict[str, list[ContactEvent]]:
    by_action: dict[str, list[ContactEvent]] = {}
    for event in history:
        by_action.setdefault(event.action_id, []).append(event)
    return by_action


def arbitrate_customer(
    prepared: PreparedCatalog,
    features: Mapping[str, Any],
    *,
    booked_tier: str,
    churn_probability: float | None,
    propensities: Mapping[str, float],
    channel: str | None,
    history: Sequence[ContactEvent],
    top_n: int,
    details: bool = True,
) -> tuple[list[dict[str, object]], list[Suppression]]:
    """`arbitrate` for a customer given by its validated named features (flags included)."""
    return arbitrate(
        prepared,
        age=prepared.age_of(features),
        aum=prepared.aum_of(features),
        booked_tier=booked_tier,
        risk_profile=prepared.risk_profile_of(features),
        risk_assessment_age_days=prepared.assessment_age_of(features),
        flags=features,
        churn_probability=churn_probability,
        days_to_next_maturity=prepared.maturity_of(features),
        propensities=propensities,
        channel=channel,
        history=history,
        top_n=top_n,
        details=details,
    )


def _detail(code: str, a: PreparedAction, age: float | None, aum: float, booked_tier: str,
            flags: Mapping[str, object], churn: float | None, limits: SuitabilityLimits,
            events: Sequence[ContactEvent], propensities: Mapping[str, float],
            prepared: PreparedCatalog, history: Sequence[ContactEvent]) -> str:
    """The readable detail of a suppression, from the step that gave its code."""
    if code == CONTACT_CAP and prepared.contact_cap is not None:
        return describe_cap(prepared.contact_cap, history)
    if code in eligibility.REASON_CODES:
        return describe_eligibility(code, a.eligibility, age, aum, booked_tier, flags, churn)
    if code in suitability.REASON_CODES:
        return describe_suitability(code, a.risk_rank, limits)
    if code in contact_policy.REASON_CODES:
        return describe_contact(code, a.contact, events)
    model = a.propensity_model
    return no_propensity_detail(model, propensities.get(model))  # type: ignore[arg-type]
