"""The reasons an RM reads next to a recommended action, and its response form."""

from __future__ import annotations

from app.decisions.prepared import PreparedAction, percent
from app.decisions.suitability import ASSESSMENT_MISSING, SuitabilityLimits

# Categories where a maturing deposit or wealth product is the moment to pitch (换单).
_REINVEST_CATEGORIES = frozenset(("fixed_income", "money_market", "structured_deposit", "fund",
                                  "systematic_investment", "pension"))
_MATURITY_HORIZON_DAYS = 30


def recommendation_dict(
    a: PreparedAction,
    priority: float,
    p: float,
    c: float,
    channel: str | None,
    booked_tier: str,
    days_to_next_maturity: int | None,
    limits: SuitabilityLimits,
    unlocks: PreparedAction | None = None,
) -> dict[str, object]:
    """One recommended action as the response carries it, reasons included. A service
    action carries the P, C, V and L of the product it `unlocks` (its priority is that
    product's)."""
    if unlocks is not None:
        return {"action_id": a.id, "name": a.name, "category": a.category, "kind": a.kind,
                "risk_level": None, "priority": priority, "propensity": p,
                "context_weight": c, "value": unlocks.value, "lever": unlocks.lever,
                "reasons": service_reasons(unlocks, p, limits)}
    return {"action_id": a.id, "name": a.name, "category": a.category, "kind": a.kind,
            "risk_level": a.risk_level, "priority": priority, "propensity": p,
            "context_weight": c, "value": a.value, "lever": a.lever,
            "reasons": reason_list(a, p, c, channel, booked_tier, days_to_next_maturity,
                                   limits)}


def service_reasons(unlocks: PreparedAction, p: float, limits: SuitabilityLimits) -> list[str]:
    """Why a risk reassessment is recommended: what it would open up."""
    why = ("no risk assessment on file" if limits.over_code == ASSESSMENT_MISSING
           else "risk assessment expired")
    return [f"{why}: only R1 products may be offered",
            f"a current assessment would allow {unlocks.name} ({unlocks.risk_level}, "
            f"propensity {percent(p)})"]


def reason_list(
    a: PreparedAction,
    p: float,
    c: float,
    channel: str | None,
    booked_tier: str,
    days_to_next_maturity: int | None,
    limits: SuitabilityLimits,
) -> list[str]:
    """Short reasons an RM can read; built for recommended actions only, so cheap overall."""
    if a.is_retention:
        out = [f"churn risk {percent(p)}{a.retention_suffix}"]
    else:
        out = [f"propensity {percent(p)} for this product"]
    if a.risk_rank:
        if limits.profile is not None:
            out.append(f"suitable: {limits.profile} covers {a.risk_level}")
        else:
            out.append(f"{a.risk_level}: allowed without a current risk assessment")
        if limits.elderly_cap is not None and a.risk_rank > limits.elderly_cap:
            out.append(f"{a.risk_level} cleared above the elderly risk cap")
    d = days_to_next_maturity
    if d is not None and d <= _MATURITY_HORIZON_DAYS and a.category in _REINVEST_CATEGORIES:
        out.append(f"maturity in {d} days: a moment to reinvest")
    if a.flag_reasons:
        out += a.flag_reasons
    if a.eligibility.allowed_tiers is not None:
        out.append(f"offered to {booked_tier} customers")
    if c != 1.0 and channel:
        out.append(f"{'suits' if c > 1.0 else 'less suited to'} the {channel} channel (x{c:g})")
    if a.lever_reason is not None:
        out.append(a.lever_reason)
    return out
