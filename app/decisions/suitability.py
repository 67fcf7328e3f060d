"""Step 2 of arbitration: suitability (适当性) of investment products for this customer.

Only actions with a risk level R1–R5 are checked. A customer of risk type Cn may be offered
products up to Rn. A missing or expired assessment allows R1 only. Customers aged at least
`elderly_age` get nothing above `elderly_max_risk` unless the action is `elderly_allowed`.
When both the profile and the elderly cap fail, the profile is reported: it is the rule the
RM can act on (reassess the customer), the elderly cap is not. A contract without a risk
profile role makes every risk-rated product unsuitable (`risk_profile_unavailable`), and
one without an age role (or a missing age) applies the elderly cap: both fail closed.

The customer side is computed once per call (`customer_limits`), the per-action check is a
couple of integer comparisons (`suitability_failure`).
"""

from __future__ import annotations

from dataclasses import dataclass

RISK_LEVEL_ABOVE_PROFILE = "risk_level_above_profile"
ASSESSMENT_MISSING = "assessment_missing"
ASSESSMENT_EXPIRED = "assessment_expired"
ELDERLY_RISK_CAP = "elderly_risk_cap"
RISK_PROFILE_UNAVAILABLE = "risk_profile_unavailable"

REASON_CODES: tuple[str, ...] = (
    RISK_PROFILE_UNAVAILABLE,
    RISK_LEVEL_ABOVE_PROFILE,
    ASSESSMENT_MISSING,
    ASSESSMENT_EXPIRED,
    ELDERLY_RISK_CAP,
)

_PROFILE_RANK = {"C1": 1, "C2": 2, "C3": 3, "C4": 4, "C5": 5}
_LEVEL_RANK = {"R1": 1, "R2": 2, "R3": 3, "R4": 4, "R5": 5}


def level_rank(risk_level: str | None) -> int:
    """R1..R5 → 1..5; 0 for actions without a risk level (not investment products)."""
    return 0 if risk_level is None else _LEVEL_RANK[risk_level]


@dataclass(frozen=True, slots=True)
class SuitabilityLimits:
    """What one customer may be offered: the highest risk rank and the code when above it."""

    max_rank: int  # 1..5 from the profile; 1 when the assessment is missing or expired
    over_code: str  # reason code for a product above max_rank
    over_detail: str  # detail prefix for that code
    elderly_cap: int | None  # rank cap for elderly customers; None when not elderly
    profile: str | None  # the assessed profile when current, else None (for RM reasons)

    @property
    def reassessable(self) -> bool:
        """A current risk assessment would lift max_rank (missing or expired)."""
        return self.over_code in (ASSESSMENT_MISSING, ASSESSMENT_EXPIRED)

    def unlocks(self, rank: int, elderly_allowed: bool) -> bool:
        """Whether a product of risk rank `rank` that this customer's missing or expired
        assessment keeps out would suit them under a current assessment of a high enough
        profile (the elderly cap still applies)."""
        cap = self.elderly_cap
        return (self.reassessable and rank > self.max_rank
                and (cap is None or rank <= cap or elderly_allowed))


def no_profile_limits(elderly_cap: int | None) -> SuitabilityLimits:
    """The limits under a contract without a risk profile role: no risk-rated product."""
    return SuitabilityLimits(0, RISK_PROFILE_UNAVAILABLE,
                             "the feature contract has no risk profile: no risk-rated products",
                             elderly_cap, None)


def customer_limits(
    risk_profile: str | None,
    assessment_age_days: int | None,
    age: float | None,
    *,
    assessment_valid_days: int,
    elderly_age: int,
    elderly_max_risk: str,
) -> SuitabilityLimits:
    """The suitability limits of one customer under a catalogue's settings (age None:
    unknown, treated as elderly)."""
    elderly = age is None or age >= elderly_age
    elderly_cap = _LEVEL_RANK[elderly_max_risk] if elderly else None
    rank = _PROFILE_RANK.get(risk_profile) if risk_profile is not None else None
    if rank is None:
        # Never assessed (or an unknown code): treat as missing, R1 only.
        return SuitabilityLimits(
            1, ASSESSMENT_MISSING, "no risk assessment: R1 only", elderly_cap, None
        )
    if assessment_age_days is None:
        # A profile without a date cannot be shown to be current: the safe reading is expired.
        return SuitabilityLimits(
            1, ASSESSMENT_EXPIRED, "risk assessment date unknown: R1 only", elderly_cap, None
        )
    if assessment_age_days > assessment_valid_days:
        detail = f"risk assessment {assessment_age_days} days old (valid {assessment_valid_days})"
        return SuitabilityLimits(1, ASSESSMENT_EXPIRED, detail + ": R1 only", elderly_cap, None)
    return SuitabilityLimits(
        rank, RISK_LEVEL_ABOVE_PROFILE, f"profile {risk_profile} covers up to R{rank}",
        elderly_cap, risk_profile,
    )


def suitability_failure(rank: int, elderly_allowed: bool,
                        limits: SuitabilityLimits) -> str | None:
    """The code when a product of risk rank `rank` (1..5; 0 = no risk level) does not suit
    the customer, or None. The definition of suitability per action (see eligibility)."""
    if rank == 0:
        return None
    if rank > limits.max_rank:
        return limits.over_code
    cap = limits.elderly_cap
    if cap is not None and rank > cap and not elderly_allowed:
        return ELDERLY_RISK_CAP
    return None


def describe_suitability(code: str, rank: int, limits: SuitabilityLimits) -> str:
    """The readable detail of a failure `suitability_failure` returned."""
    if code == ELDERLY_RISK_CAP:
        return f"R{rank} above the R{limits.elderly_cap} cap for elderly customers"
    return f"R{rank} product; {limits.over_detail}"
