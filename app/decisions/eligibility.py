"""Step 1 of arbitration: may this customer be offered this action at all?

Checks, in this order (the first failure is the reason): minimum age, maximum age, minimum
AUM, allowed booked tiers, already held, required flags, conditions on contract features
(app/decisions/conditions.py), churn risk (retention actions and any action with a churn
threshold). Limits are inclusive: a customer exactly at min_age, max_age, min_aum or
min_churn_probability passes. An unknown age (the contract has no age role, or the value is
missing) fails an action with an age limit (`age_unknown`): age rules fail closed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from app.decisions.catalog import Action
from app.decisions.conditions import CompiledCondition

AGE_UNKNOWN = "age_unknown"
AGE_BELOW_MINIMUM = "age_below_minimum"
AGE_ABOVE_MAXIMUM = "age_above_maximum"
AUM_BELOW_MINIMUM = "aum_below_minimum"
TIER_NOT_ALLOWED = "tier_not_allowed"
ALREADY_HELD = "already_held"
REQUIREMENT_NOT_MET = "requirement_not_met"
CONDITION_NOT_MET = "condition_not_met"
CHURN_NOT_SCORED = "churn_not_scored"
CHURN_RISK_BELOW_THRESHOLD = "churn_risk_below_threshold"

REASON_CODES: tuple[str, ...] = (
    AGE_UNKNOWN,
    AGE_BELOW_MINIMUM,
    AGE_ABOVE_MAXIMUM,
    AUM_BELOW_MINIMUM,
    TIER_NOT_ALLOWED,
    ALREADY_HELD,
    REQUIREMENT_NOT_MET,
    CONDITION_NOT_MET,
    CHURN_NOT_SCORED,
    CHURN_RISK_BELOW_THRESHOLD,
)


@dataclass(frozen=True, slots=True)
class EligibilityRule:
    """An action's eligibility in plain Python types, built once per catalogue.

    Open limits are infinities (not None) so that each check is one comparison.
    """

    min_age: float = -math.inf
    max_age: float = math.inf
    min_aum: float = -math.inf
    allowed_tiers: frozenset[str] | None = None
    held_flag: str | None = None
    requires_flags: tuple[str, ...] = ()
    conditions: tuple[CompiledCondition, ...] = ()
    min_churn_probability: float = -math.inf
    # Retention actions rank on the churn probability, so they need one even without a threshold.
    needs_churn: bool = False
    has_age_limit: bool = False

    @classmethod
    def from_action(cls, action: Action) -> EligibilityRule:
        """Flatten the pydantic eligibility of `action` (done once, off the hot path)."""
        e = action.eligibility
        return cls(
            min_age=-math.inf if e.min_age is None else e.min_age,
            max_age=math.inf if e.max_age is None else e.max_age,
            min_aum=-math.inf if e.min_aum is None else e.min_aum,
            allowed_tiers=None if e.allowed_tiers is None else frozenset(e.allowed_tiers),
            held_flag=e.held_flag,
            requires_flags=tuple(e.requires_flags),
            conditions=tuple(CompiledCondition.of(c) for c in e.conditions),
            min_churn_probability=(-math.inf if e.min_churn_probability is None
                                   else e.min_churn_probability),
            needs_churn=action.kind == "retention" or e.min_churn_probability is not None,
            has_age_limit=e.min_age is not None or e.max_age is not None,
        )


def eligibility_failure(
    rule: EligibilityRule,
    age: float | None,
    aum: float,
    booked_tier: str,
    flags: Mapping[str, object],
    churn_probability: float | None,
) -> str | None:
    """The code of the first eligibility rule the customer fails, or None when eligible.

    This is the definition of eligibility; arbitration_batch.py is its array form, checked
    against it by tests/decisions/test_batch_form.py.
    """
    if age is None:
        if rule.has_age_limit:
            return AGE_UNKNOWN
    elif age < rule.min_age:
        return AGE_BELOW_MINIMUM
    elif age > rule.max_age:
        return AGE_ABOVE_MAXIMUM
    if aum < rule.min_aum:
        return AUM_BELOW_MINIMUM
    tiers = rule.allowed_tiers
    if tiers is not None and booked_tier not in tiers:
        return TIER_NOT_ALLOWED
    held = rule.held_flag
    if held is not None and flags.get(held, False):
        return ALREADY_HELD
    for flag in rule.requires_flags:
        if not flags.get(flag, False):
            return REQUIREMENT_NOT_MET
    for c in rule.conditions:
        if not c.test(flags.get(c.feature)):
            return CONDITION_NOT_MET
    if rule.needs_churn:
        if churn_probability is None:
            return CHURN_NOT_SCORED
        if churn_probability < rule.min_churn_probability:
            return CHURN_RISK_BELOW_THRESHOLD
    return None


def describe_eligibility(
    code: str,
    rule: EligibilityRule,
    age: float | None,
    aum: float,
    booked_tier: str,
    flags: Mapping[str, object],
    churn_probability: float | None,
) -> str:
    """The readable detail of a failure `eligibility_failure` returned (it decides nothing)."""
    if code == AGE_UNKNOWN:
        return "age unknown: the action has an age limit"
    if code == AGE_BELOW_MINIMUM:
        return f"age {age} below minimum {rule.min_age}"
    if code == AGE_ABOVE_MAXIMUM:
        return f"age {age} above maximum {rule.max_age}"
    if code == AUM_BELOW_MINIMUM:
        return f"AUM {aum:,.0f} below minimum {rule.min_aum:,.0f}"
    if code == TIER_NOT_ALLOWED:
        allowed = ", ".join(sorted(rule.allowed_tiers or ())) or "none"
        return f"booked tier {booked_tier} not in {allowed}"
    if code == ALREADY_HELD:
        return f"already held ({rule.held_flag})"
    if code == REQUIREMENT_NOT_MET:
        missing = [f for f in rule.requires_flags if not flags.get(f, False)]
        return f"requires {missing[0] if missing else ', '.join(rule.requires_flags)}"
    if code == CONDITION_NOT_MET:
        failed = next((c for c in rule.conditions if not c.test(flags.get(c.feature))), None)
        if failed is None:
            return "a condition is not met"
        return f"requires {failed.text} ({failed.feature} is {flags.get(failed.feature)!r})"
    if code == CHURN_NOT_SCORED:
        return "churn probability not scored"
    return (f"churn risk {churn_probability or 0.0:.0%} below threshold "
            f"{rule.min_churn_probability:.0%}")
