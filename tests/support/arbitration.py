"""Arbitration on a pydantic catalogue with dataclass results, for readable tests.

The service calls app.decisions.arbitration.arbitrate on plain values (response dicts and
tuples out); these wrappers only name things for the tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from app.decisions.arbitration import ContactEvent
from app.decisions.arbitration import arbitrate as arbitrate_plain
from app.decisions.catalog import Catalog
from app.decisions.prepared import PreparedCatalog, prepare


@dataclass(frozen=True, slots=True)
class Customer:
    """What arbitration needs to know about one customer."""

    age: int | None  # None: unknown (no age role, or missing)
    aum: float
    booked_tier: str
    risk_profile: str | None  # "C1".."C5" or None (never assessed)
    risk_assessment_age_days: int | None
    flags: Mapping[str, object]  # features by name (booleans, numbers, categories); missing = None
    churn_probability: float | None  # calibrated; None when churn was not scored
    days_to_next_maturity: int | None = None  # only feeds an RM reason, never the ranking


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended action, as the response dict carries it (reasons as a tuple)."""

    action_id: str
    name: str
    category: str
    kind: str
    risk_level: str | None
    priority: float
    propensity: float
    context_weight: float
    value: float
    lever: float
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Suppressed:
    """One action not recommended, with the first rule it failed."""

    action_id: str
    reason_code: str
    detail: str


def plain_arguments(customer: Customer) -> dict[str, Any]:
    """The keyword arguments of app.decisions.arbitration.arbitrate for `customer`."""
    return dict(age=customer.age, aum=customer.aum, booked_tier=customer.booked_tier,
                risk_profile=customer.risk_profile,
                risk_assessment_age_days=customer.risk_assessment_age_days,
                flags=customer.flags, churn_probability=customer.churn_probability,
                days_to_next_maturity=customer.days_to_next_maturity)


def arbitrate(
    *,
    catalog: Catalog | PreparedCatalog,
    customer: Customer,
    propensities: Mapping[str, float],
    channel: str | None,
    history: Sequence[ContactEvent],
    top_n: int,
    details: bool = True,
) -> tuple[list[Recommendation], list[Suppressed]]:
    """Recommend the top N actions of `catalog` for `customer`; say why each other is not."""
    prepared = catalog if isinstance(catalog, PreparedCatalog) else prepare(catalog)
    recs, suppressed = arbitrate_plain(
        prepared, **plain_arguments(customer), propensities=propensities, channel=channel,
        history=history, top_n=top_n, details=details)
    return ([Recommendation(**{**r, "reasons": tuple(r["reasons"])})  # type: ignore[arg-type]
             for r in recs],
            [Suppressed(*s) for s in suppressed])
