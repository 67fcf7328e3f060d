"""The action catalogue: products and retention actions, with the rules that govern offering them.

Everything a business owner may want to change (eligibility, risk levels, value, levers,
contact policy, channel weights, the elderly-customer rule) is data here, versioned and
approved in the registry like a model.
"""

from __future__ import annotations

from typing import Any, Literal

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
    "service",
]
ConditionOp = Literal[">", ">=", "<", "<=", "==", "!=", "in", "not_in", "is_null", "not_null"]
ORDER_OPS = frozenset((">", ">=", "<", "<="))
Scalar = bool | int | float | str


def risk_rank(level: str) -> int:
    """R1..R5 or C1..C5 → 1..5."""
    return int(level[1])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v == v \
        and v not in (float("inf"), float("-inf"))


class Condition(_Strict):
    """One test on a contract feature: `feature op value`.

    Ordering operators take a number; == and != a number, boolean or text; in and not_in a
    non-empty list of those; is_null and not_null no value. A missing value (null or
    absent) meets only is_null (see app/decisions/conditions.py)."""

    feature: str = Field(min_length=1, max_length=64, description="A feature of the contract.")
    op: ConditionOp
    value: Any = Field(default=None, description="Number for > >= < <=; number, boolean or "
                       "text for == !=; a list for in / not_in; none for is_null / not_null.")

    @model_validator(mode="after")
    def _typed(self) -> Condition:
        op, v = self.op, self.value
        if op in ORDER_OPS:
            if not _is_number(v):
                raise ValueError(f"op {op!r} needs a number as value, got {v!r}")
        elif op in ("==", "!="):
            if not (_is_number(v) or isinstance(v, bool | str)):
                raise ValueError(f"op {op!r} needs a number, boolean or text, got {v!r}")
        elif op in ("in", "not_in"):
            if not isinstance(v, list | tuple) or not v or not all(
                    _is_number(x) or isinstance(x, bool | str) for x in v):
                raise ValueError(f"op {op!r} needs a non-empty list of numbers, booleans or "
                                 f"texts, got {v!r}")
        elif v is not None:
            raise ValueError(f"op {op!r} takes no value, got {v!r}")
        return self


class ContactCap(_Strict):
    """Offers of all actions together a customer may receive within window_days."""

    max_offers: int = Field(ge=0, description="Offers of any action allowed within window_days.")
    window_days: int = Field(ge=1)


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
    conditions: tuple[Condition, ...] = Field(
        default=(), description="Tests on contract features that must all hold "
        "(e.g. loans_other_banks > 0).")


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
    kind: Literal["product", "retention", "service"] = "product"
    risk_level: RiskLevel | None = Field(
        default=None, description="Product risk R1–R5 for investment products; null otherwise."
    )
    propensity_model: str | None = Field(
        default=None,
        description="Model in the products bundle giving P; retention actions use the churn "
        "probability instead.",
    )
    value: float | None = Field(
        default=None, gt=0, description="Relative business value V of one conversion "
        "(products and retention actions; service actions take the unlocked product's).")
    lever: float = Field(default=1.0, gt=0, description="Business lever L (campaign weight).")
    trigger: Literal["risk_reassessment"] | None = Field(
        default=None, description="Service actions: when they are offered. risk_reassessment: "
        "when an expired or missing risk assessment is what keeps a product from the "
        "ranking (docs/decisions.md).")
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
        if self.kind == "service":
            if self.trigger is None:
                raise ValueError(f"service action {self.id} needs a trigger")
            if self.propensity_model or self.risk_level is not None:
                raise ValueError(f"service action {self.id} has no propensity_model or "
                                 "risk level")
            if self.value is not None or self.lever != 1.0:
                raise ValueError(f"service action {self.id} takes no value or lever: its "
                                 "priority is that of the product it unlocks")
        else:
            if self.trigger is not None:
                raise ValueError(f"only service actions have a trigger ({self.id})")
            if self.value is None:
                raise ValueError(f"{self.kind} action {self.id} needs a value")
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
    contact_cap: ContactCap | None = Field(
        default=None, description="Offers of all actions together within a window; at or "
        "above it nothing is offered (`contact_cap`).")

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


def condition_features(catalog: Catalog) -> dict[str, str]:
    """Every feature the catalogue's conditions name → the path of its first mention
    (`catalog.actions.<id>.eligibility.conditions[i].feature`), for the context to check
    against the contract."""
    out: dict[str, str] = {}
    for a in catalog.actions:
        for i, c in enumerate(a.eligibility.conditions):
            out.setdefault(c.feature, f"catalog.actions.{a.id}.eligibility.conditions[{i}].feature")
    return out
