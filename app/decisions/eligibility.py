"""Step 1 of arbitration: may this customer be offered this action at all?

Checks, in this order (the first failure is the reason): minimum age, maximum age, minimum
AUM, allowed booked tiers, already held, required flags, churn risk (retention actions and
any action with a churn threshold). Limits are inclusive: a customer exactly at min_age,
max_age, min_aum or min_churn_probability passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.decisions.catalog import Action

# (reason_code, detail) for a failed check; None means the check passed.
Failure = tuple[str, str] | None

AGE_BELOW_MINIMUM = "age_below_minimum"
AGE_ABOVE_MAXIMUM = "age_above_maximum"
AUM_BELOW_MINIMUM = "aum_below_minimum"
TIER_NOT_ALLOWED = "tier_not_allowed"
ALREADY_HELD = "already_held"
REQUIREMENT_NOT_MET = "requirement_not_met"
CHURN_NOT_SCORED = "churn_not_scored"
CHURN_RISK_BELOW_THRESHOLD = "churn_risk_below_threshold"

REASON_CODES: tuple[str, ...] = (
    AGE_BELOW_MINIMUM,
    AGE_ABOVE_MAXIMUM,
    AUM_BELOW_MINIMUM,
    TIER_NOT_ALLOWED,
    ALREADY_HELD,
    REQUIREMENT_NOT_MET,
    CHURN_NOT_SCORED,
    CHURN_RISK_BELOW_THRESHOLD,
)


@dataclass(frozen=True, slots=True)
class EligibilityRule:
    """An action's eligibility in plain Python types, built once per catalogue."""

    min_age: int | None = None
    max_age: int | None = None
    min_aum: float | None = None
    allowed_tiers: frozenset[str] | None = None
    held_flag: str | None = None
    requires_flags: tuple[str, ...] = ()
    min_churn_probability: float | None = None
    # Retention actions rank on the churn probability, so they need one even without a threshold.
    needs_churn: bool = False

    @classmethod
    def from_action(cls, action: Action) -> EligibilityRule:
        """Flatten the pydantic eligibility of `action` (done once, off the hot path)."""
        e = action.eligibility
        return cls(
            min_age=e.min_age,
            max_age=e.max_age,
            min_aum=e.min_aum,
            allowed_tiers=None if e.allowed_tiers is None else frozenset(e.allowed_tiers),
            held_flag=e.held_flag,
            requires_flags=tuple(e.requires_flags),
            min_churn_probability=e.min_churn_probability,
            needs_churn=action.kind == "retention" or e.min_churn_probability is not None,
        )


def check_eligibility(
    rule: EligibilityRule,
    age: int,
    aum: float,
    booked_tier: str,
    flags: Mapping[str, bool],
    churn_probability: float | None,
) -> Failure:
    """The first eligibility rule the customer fails, or None when eligible."""
    if rule.min_age is not None and age < rule.min_age:
        return AGE_BELOW_MINIMUM, f"age {age} below minimum {rule.min_age}"
    if rule.max_age is not None and age > rule.max_age:
        return AGE_ABOVE_MAXIMUM, f"age {age} above maximum {rule.max_age}"
    if rule.min_aum is not None and aum < rule.min_aum:
        return AUM_BELOW_MINIMUM, f"AUM {aum:,.0f} below minimum {rule.min_aum:,.0f}"
    if rule.allowed_tiers is not None and booked_tier not in rule.allowed_tiers:
        allowed = ", ".join(sorted(rule.allowed_tiers)) or "none"
        return TIER_NOT_ALLOWED, f"booked tier {booked_tier} not in {allowed}"
    if rule.held_flag is not None and flags.get(rule.held_flag, False):
        return ALREADY_HELD, f"already held ({rule.held_flag})"
    for flag in rule.requires_flags:
        if not flags.get(flag, False):
            return REQUIREMENT_NOT_MET, f"requires {flag}"
    if rule.needs_churn:
        if churn_probability is None:
            return CHURN_NOT_SCORED, "churn probability not scored"
        threshold = rule.min_churn_probability
        if threshold is not None and churn_probability < threshold:
            return (
                CHURN_RISK_BELOW_THRESHOLD,
                f"churn risk {churn_probability:.0%} below threshold {threshold:.0%}",
            )
    return None
