"""The action catalogue: products and retention actions, with the rules that govern offering them.

Everything a business owner may want to change (eligibility, risk levels, value, levers,
contact policy, channel weights, the elderly-customer rule) is data here, versioned and
approved in the registry like a model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

RiskLevel = Literal["R1", "R2", "R3", "R4", "R5"]
Category = Literal[
    "installment",
    "fixed_income",
    "money_market",
    "systematic_investment",
    "structured_deposit",
    "insurance",
    "credit_card",
    "loan_refinance",
    "pension",
    "fund",
    "retention",
]


def risk_rank(level: str) -> int:
    """R1..R5 or C1..C5 → 1..5."""
    return int(level[1])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Eligibility(_Strict):
    """Who may be offered an action at all (before suitability)."""

    min_age: int | None = Field(default=None, ge=0, le=130)
    max_age: int | None = Field(default=None, ge=0, le=130)
    min_aum: float | None = Field(default=None, ge=0)
    allowed_tiers: tuple[str, ...] | None = Field(
        default=None, description="Booked tiers that may be offered this action; null = all."
    )
    held_flag: str | None = Field(
        default=None, description="Boolean feature that is true when the customer already holds it."
    )
    requires_flags: tuple[str, ...] = Field(
        default=(), description="Boolean features that must be true (e.g. payroll_customer)."
    )
    min_churn_probability: float | None = Field(
        default=None, ge=0, le=1, description="Retention actions: offered only above this risk."
    )


class ContactPolicy(_Strict):
    """How often an action may be offered, from the offers and declines the caller reports."""

    max_offers: int = Field(default=2, ge=0, description="Offers allowed within window_days.")
    window_days: int = Field(default=30, ge=1)
    decline_cooloff_days: int = Field(
        default=90, ge=0, description="Days after a decline before the action is offered again."
    )


class Action(_Strict):
    """One product or retention action that can be recommended."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    name: str
    category: Category
    kind: Literal["product", "retention"] = "product"
    risk_level: RiskLevel | None = Field(
        default=None, description="Product risk R1–R5 for investment products; null otherwise."
    )
    propensity_model: str | None = Field(
        default=None,
        description="Model in the products bundle giving P; retention actions use the churn "
        "probability instead.",
    )
    value: float = Field(gt=0, description="Relative business value V of one conversion.")
    lever: float = Field(default=1.0, gt=0, description="Business lever L (campaign weight).")
    elderly_allowed: bool = Field(
        default=False,
        description="May be offered above the elderly risk cap to customers at or over "
        "elderly_age.",
    )
    pitch: str = Field(default="", description="One line an RM can say about this action.")
    eligibility: Eligibility = Eligibility()
    contact_policy: ContactPolicy = ContactPolicy()

    @model_validator(mode="after")
    def _consistent(self) -> Action:
        if self.kind == "product" and not self.propensity_model:
            raise ValueError(f"product action {self.id} needs a propensity_model")
        if self.kind == "retention" and self.risk_level is not None:
            raise ValueError(f"retention action {self.id} carries no risk level")
        return self


class Catalog(_Strict):
    """The whole catalogue plus the suitability and channel settings that apply to it."""

    actions: tuple[Action, ...]
    channel_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="channel → category → weight C (key '*' is the default weight).",
    )
    elderly_age: int = Field(default=65, ge=0)
    elderly_max_risk: RiskLevel = "R3"
    assessment_valid_days: int = Field(default=365, ge=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Catalog:
        ids = [a.id for a in self.actions]
        if len(set(ids)) != len(ids):
            raise ValueError("action ids must be unique")
        return self

    def channel_weight(self, channel: str | None, category: str) -> float:
        """The context weight C of a category in a channel (1.0 when not configured)."""
        weights = self.channel_weights.get(channel or "", {})
        return weights.get(category, weights.get("*", 1.0))
