"""The default policy and catalogue: valid, consistent with the feature contract and sensible."""

from __future__ import annotations

import json

from app.decisions.arbitration import ContactEvent
from app.decisions.catalog import Catalog
from app.decisions.policy import Policy
from app.features.contract import DEFAULT_FEATURES
from app.training.default_config import (
    CATALOG_JSON,
    POLICY_JSON,
    PRODUCT_MODELS,
    RETENTION_ACTIONS,
    default_catalog,
    default_policy,
)
from tests.support.arbitration import Customer, arbitrate
from tests.support.decisions import CHANNELS

BOOLEAN_FEATURES = {f.name for f in DEFAULT_FEATURES if f.kind == "boolean"}


def test_policy_values() -> None:
    policy = default_policy()
    assert [(t.tier, t.min_aum) for t in policy.tiers] == [
        ("mass", 0), ("affluent", 100_000), ("hnw", 1_000_000), ("private", 6_000_000)
    ]
    assert [(b.band, b.min_probability) for b in policy.churn_bands] == [
        ("low", 0), ("medium", 0.15), ("high", 0.35)
    ]
    assert policy.default_top_n == 3 and policy.challenger.mode == "off"


def test_catalog_products_and_retention_actions() -> None:
    catalog = default_catalog()
    products = [a for a in catalog.actions if a.kind == "product"]
    assert tuple(a.id for a in products) == PRODUCT_MODELS
    assert all(a.propensity_model == a.id for a in products)
    levels = {a.id: a.risk_level for a in products}
    assert levels == {
        "installment_plan": None, "fixed_income_wm": "R2", "money_market_fund": "R1",
        "sip_fund": "R3", "structured_deposit": "R2", "insurance_protection": None,
        "credit_card": None, "loan_refinance": None, "pension_savings": "R1",
        "equity_fund": "R4",
    }
    retention = {a.id: a for a in catalog.actions if a.kind == "retention"}
    assert tuple(retention) == RETENTION_ACTIONS
    assert retention["retention_exclusive_care"].eligibility.allowed_tiers == ("hnw", "private")
    assert all(a.eligibility.min_churn_probability for a in retention.values())
    assert all(a.pitch and a.name for a in catalog.actions)


def test_catalog_rules_from_the_domain() -> None:
    by_id = {a.id: a for a in default_catalog().actions}
    assert by_id["credit_card"].eligibility.held_flag == "has_credit_card"
    assert by_id["credit_card"].eligibility.min_age == 18
    assert by_id["sip_fund"].eligibility.held_flag == "has_sip"
    assert by_id["sip_fund"].eligibility.requires_flags == ("payroll_customer",)
    assert by_id["pension_savings"].eligibility.min_age == 40
    assert by_id["structured_deposit"].eligibility.min_aum == 50_000
    assert "mass" not in (by_id["installment_plan"].eligibility.allowed_tiers or ("mass",))


def test_catalog_names_only_known_features_tiers_and_channels() -> None:
    catalog = default_catalog()
    tiers = set(default_policy().tier_names)
    for a in catalog.actions:
        e = a.eligibility
        flags = {*e.requires_flags, *([e.held_flag] if e.held_flag else [])}
        assert flags <= BOOLEAN_FEATURES, a.id
        assert set(e.allowed_tiers or ()) <= tiers, a.id
    assert set(catalog.channel_weights) == set(CHANNELS)
    categories = {a.category for a in catalog.actions} | {"*"}
    for weights in catalog.channel_weights.values():
        assert set(weights) <= categories and all(w > 0 for w in weights.values())
    assert catalog.channel_weight("rm", "retention") > catalog.channel_weight("mobile", "retention")
    assert catalog.channel_weight("branch", "retention") > 1.0
    assert catalog.channel_weight("mobile", "money_market") > 1.0


def test_json_forms_round_trip_and_defaults_are_shared() -> None:
    assert Catalog.model_validate(json.loads(json.dumps(CATALOG_JSON))) == default_catalog()
    assert Policy.model_validate(json.loads(json.dumps(POLICY_JSON))) == default_policy()
    assert default_catalog() is default_catalog()


def test_default_catalog_arbitrates_a_typical_customer() -> None:
    cust = Customer(
        age=72, aum=2_500_000.0, booked_tier="hnw", risk_profile="C5",
        risk_assessment_age_days=30, flags={"has_money_market": True},
        churn_probability=0.3,
    )
    props = {m: 0.1 for m in PRODUCT_MODELS}
    recs, sup = arbitrate(
        catalog=default_catalog(), customer=cust, propensities=props, channel="rm",
        history=[ContactEvent("retention_exclusive_care", 5, "declined")], top_n=3,
    )
    codes = {s.action_id: s.reason_code for s in sup}
    assert codes["equity_fund"] == "elderly_risk_cap"  # R4 above the R3 cap at 72
    assert codes["money_market_fund"] == "already_held"
    assert codes["credit_card"] == codes["insurance_protection"] == "age_above_maximum"
    assert codes["retention_rm_call"] == "churn_risk_below_threshold"
    assert codes["retention_exclusive_care"] == "declined_recently"
    assert len(recs) == 3 and len(recs) + len(sup) == len(default_catalog().actions)
