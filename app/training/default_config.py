"""The default business policy and action catalogue shipped with the default bundles.

Both are plain JSON-style dicts (`POLICY_JSON`, `CATALOG_JSON`: what the registry stores,
treat them as read-only) validated into the pydantic models by `default_policy()` and
`default_catalog()`. Figures follow the bank material in /work/shared/DOMAIN.md; money in CNY.

Value V is the relative business value of one conversion (fee and margin income, assets
brought in). For retention actions P is the churn probability, not the chance the action
works, so their V already folds in a modest save rate; otherwise every at-risk customer would
see only retention actions.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from app.decisions.catalog import Catalog
from app.decisions.policy import Policy

PRODUCT_MODELS: tuple[str, ...] = (
    "installment_plan",
    "fixed_income_wm",
    "money_market_fund",
    "sip_fund",
    "structured_deposit",
    "insurance_protection",
    "credit_card",
    "loan_refinance",
    "pension_savings",
    "equity_fund",
)
RETENTION_ACTIONS: tuple[str, ...] = (
    "retention_rm_call",
    "retention_rate_offer",
    "retention_exclusive_care",
)
SERVICE_ACTIONS: tuple[str, ...] = ("reassess_risk_profile",)

POLICY_JSON: dict[str, Any] = {
    "tiers": [
        {"tier": "mass", "min_aum": 0},
        {"tier": "affluent", "min_aum": 100_000},
        {"tier": "hnw", "min_aum": 1_000_000},
        {"tier": "private", "min_aum": 6_000_000},
    ],
    "churn_bands": [
        {"band": "low", "min_probability": 0.0},
        {"band": "medium", "min_probability": 0.15},
        {"band": "high", "min_probability": 0.35},
    ],
    "default_top_n": 3,
    "challenger": {"mode": "off", "share": 0.0},
}

_AFFLUENT_UP = ["affluent", "hnw", "private"]


def _product(
    id_: str, name: str, category: str, risk: str | None, value: float, pitch: str,
    **eligibility: Any,
) -> dict[str, Any]:
    return {
        "id": id_,
        "name": name,
        "category": category,
        "kind": "product",
        "risk_level": risk,
        "propensity_model": id_,
        "value": value,
        "lever": 1.0,
        "pitch": pitch,
        "eligibility": {"min_age": 18, **eligibility},
    }


def _retention(
    id_: str, name: str, value: float, threshold: float, pitch: str, contact: dict[str, int],
    **eligibility: Any,
) -> dict[str, Any]:
    return {
        "id": id_,
        "name": name,
        "category": "retention",
        "kind": "retention",
        "value": value,
        "lever": 1.0,
        "pitch": pitch,
        "eligibility": {"min_churn_probability": threshold, **eligibility},
        "contact_policy": contact,
    }


CATALOG_JSON: dict[str, Any] = {
    "actions": [
        _product(
            "installment_plan", "Installment plan (car / home purchase)", "installment", None,
            1.2, "Spread a large purchase over instalments and keep your capital invested.",
            allowed_tiers=_AFFLUENT_UP, held_flag="has_installment",
        ),
        _product(
            "fixed_income_wm", "Fixed-income wealth product", "fixed_income", "R2", 1.0,
            "A steady, principal-focused return above deposit rates, for cautious savers.",
            min_aum=10_000,
        ),
        _product(
            "money_market_fund", "Money-market fund", "money_market", "R1", 0.6,
            "More yield than a current account and you can withdraw any day.",
            held_flag="has_money_market",
        ),
        _product(
            "sip_fund", "Systematic investment plan (monthly fund SIP)", "systematic_investment",
            "R3", 1.1, "Invest a fixed amount every payday and build wealth step by step.",
            held_flag="has_sip", requires_flags=["payroll_customer"],
        ),
        _product(
            "structured_deposit", "Structured deposit", "structured_deposit", "R2", 1.3,
            "Deposit-like safety with an upside linked to the market; bring funds from "
            "other banks.",
            min_aum=50_000, held_flag="has_structured_deposit",
        ),
        _product(
            "insurance_protection", "Protection insurance", "insurance", None, 1.4,
            "Protect your income and family; a simple first step with us.",
            max_age=65, held_flag="has_insurance",
        ),
        _product(
            "credit_card", "Credit card", "credit_card", None, 0.9,
            "A card with interest-free days and rewards on everyday spending.",
            max_age=65, held_flag="has_credit_card",
        ),
        _product(
            "loan_refinance", "Loan refinancing package", "loan_refinance", None, 1.5,
            "Move loans from other banks to us at a better rate, in one package.",
            max_age=70,
            # Only customers the credit bureau shows with loans elsewhere (null: no hit).
            conditions=[{"feature": "loans_other_banks", "op": ">", "value": 0}],
        ),
        _product(
            "pension_savings", "Pension savings plan", "pension", "R1", 1.2,
            "Top up your retirement income with a low-risk, long-term savings plan.",
            min_age=40, held_flag="has_pension_product",
        ),
        _product(
            "equity_fund", "Equity fund", "fund", "R4", 1.3,
            "Long-term growth from a diversified equity fund, for customers who accept swings.",
            min_aum=10_000,
        ),
        _retention(
            "retention_rm_call", "Relationship manager call", 1.0, 0.35,
            "Call to review the customer's needs and recent service experience.",
            {"max_offers": 1, "window_days": 30, "decline_cooloff_days": 60},
        ),
        _retention(
            "retention_rate_offer", "Preferential rate offer", 0.8, 0.35,
            "Offer a preferential deposit or wealth-product rate to keep the assets here.",
            {"max_offers": 1, "window_days": 90, "decline_cooloff_days": 180},
        ),
        _retention(
            "retention_exclusive_care", "Exclusive care programme", 1.5, 0.25,
            "Invite to exclusive care: dedicated adviser, priority service, events.",
            {"max_offers": 1, "window_days": 60, "decline_cooloff_days": 120},
            allowed_tiers=["hnw", "private"],
        ),
        {
            "id": "reassess_risk_profile",
            "name": "Reassess risk profile",
            "category": "service",
            "kind": "service",
            "trigger": "risk_reassessment",
            "pitch": "Update the risk questionnaire so suitable investment products can be "
                     "offered again.",
            "contact_policy": {"max_offers": 1, "window_days": 30, "decline_cooloff_days": 90},
        },
    ],
    # At most 4 offers of any action in 30 days (docs/decisions.md).
    "contact_cap": {"max_offers": 4, "window_days": 30},
    # channel → category → C; categories not listed weigh 1.0 ('*').
    "channel_weights": {
        "branch": {
            "*": 1.0, "installment": 1.1, "fixed_income": 1.1, "structured_deposit": 1.2,
            "insurance": 1.1, "loan_refinance": 1.2, "pension": 1.2, "retention": 1.2,
        },
        "mobile": {
            "*": 1.0, "money_market": 1.3, "credit_card": 1.2, "systematic_investment": 1.2,
            "fund": 1.1, "insurance": 0.8, "loan_refinance": 0.8, "pension": 0.8,
            "structured_deposit": 0.9, "retention": 0.7,
        },
        "online": {
            "*": 1.0, "money_market": 1.2, "systematic_investment": 1.1, "fund": 1.1,
            "retention": 0.8,
        },
        "call_centre": {
            "*": 1.0, "credit_card": 1.1, "insurance": 1.1, "retention": 1.1, "fund": 0.8,
            "structured_deposit": 0.9,
        },
        "rm": {
            "*": 1.0, "retention": 1.5, "installment": 1.2, "loan_refinance": 1.3,
            "structured_deposit": 1.2, "fixed_income": 1.2, "money_market": 0.8,
            "credit_card": 0.8,
        },
    },
    "elderly_age": 65,
    "elderly_max_risk": "R3",
    "assessment_valid_days": 365,
}


@cache
def default_policy() -> Policy:
    """The default business policy (shared, immutable instance)."""
    return Policy.model_validate(copy.deepcopy(POLICY_JSON))


@cache
def default_catalog() -> Catalog:
    """The default action catalogue (shared instance, so arbitration prepares it only once)."""
    return Catalog.model_validate(copy.deepcopy(CATALOG_JSON))
