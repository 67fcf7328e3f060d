"""Step 4 of arbitration: priority = P × C × V × L, and only the top N are recommended.

P is the product's propensity (the churn probability for retention actions) and must be a
probability, else the action is suppressed with `no_propensity`; C is the channel weight of
its category, V its value, L its lever. Ties are broken by action id; eligible actions
ranked below the top N are suppressed with `ranked_below_top_n`.

A service action (trigger risk_reassessment) has no P of its own: it takes the priority
(and P, C, V, L) of the best product a missing or expired risk assessment keeps out
(`SuitabilityLimits.unlocks`) that passed every other check and has a propensity; without
one it is suppressed with `trigger_not_met`.
"""

from __future__ import annotations

from app.decisions import contact_policy, eligibility, suitability

NO_PROPENSITY = "no_propensity"
TRIGGER_NOT_MET = "trigger_not_met"
RANKED_BELOW_TOP_N = "ranked_below_top_n"

# Every code arbitration may suppress an action with, in the order of its steps.
REASON_CODES: tuple[str, ...] = (
    *eligibility.REASON_CODES,
    *suitability.REASON_CODES,
    *contact_policy.REASON_CODES,
    NO_PROPENSITY,
    TRIGGER_NOT_MET,
    RANKED_BELOW_TOP_N,
)


def no_propensity_detail(model: str | None, p: object) -> str:
    """Why a propensity could not be used."""
    if p is None:
        return f"no propensity from model {model}"
    return f"propensity {p!r} from model {model} is not a probability"


def ranked_detail(rank: int, priority: float, top_n: int) -> str:
    """Why an eligible action is not shown."""
    return f"ranked {rank} (priority {priority:.4g}); only the top {top_n} are shown"


def trigger_detail(reassessable: bool) -> str:
    """Why a risk_reassessment service action is not offered."""
    if not reassessable:
        return "risk assessment is current (or cannot be reassessed here)"
    return "no product is kept out only by the missing or expired risk assessment"
