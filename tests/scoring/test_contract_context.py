"""The scoring context on its feature contract: schema and required features from the
contract, every model checked against it, no booked tier without an `aum` role."""

from __future__ import annotations

import pytest

from app.bundles.io import Bundle
from app.bundles.manifest import FAMILIES
from app.errors import BundleRejected
from app.features.family import ContractFeature, Roles
from app.scoring.context import build_context
from app.scoring.pipeline import CustomerInput, Options, score_rows
from app.training.default_contract import contract_bundle
from tests.registry import bundles as b


def _context(features: Bundle):  # type: ignore[no-untyped-def]
    return build_context({**b.default_set(), "features": features}, dict.fromkeys(FAMILIES, 1))


def test_schema_roles_and_required_come_from_the_contract() -> None:
    ctx = _context(b.features_bundle(b.APP_RATING, name="wider"))
    assert ctx.schema.names == (*(f.name for f in b.FEATURES), "app_rating")
    assert ctx.roles == ctx.contract.roles and ctx.roles.days_to_next_maturity is None
    required = {f.name for f in b.FEATURES if not f.nullable}
    for parts in (frozenset({"churn"}), frozenset({"tier", "recommendations"})):
        assert ctx.required_for(parts) == required
    assert ctx.versions["features"].sha256 == b.features_bundle(b.APP_RATING, name="wider").sha256


def test_a_model_reading_an_undeclared_feature_does_not_fit() -> None:
    lacking = b.small_contract(name="lacking").model_copy(update={"features": tuple(
        f for f in b.small_contract().features if f.name != "tenure_months")})
    with pytest.raises(BundleRejected) as err:
        _context(contract_bundle(lacking))
    assert err.value.message == "these versions do not fit together"
    fields = {d.field for d in err.value.details}
    assert fields == {f"{f}.features.tenure_months" for f in ("tier", "churn", "products")}
    assert all("promote a contract" in d.problem for d in err.value.details)


def test_a_model_reading_a_category_differently_does_not_fit() -> None:
    contract = b.small_contract(name="reordered")
    reordered = contract.model_copy(update={"features": tuple(
        f.model_copy(update={"categories": ("C5", "C4", "C3", "C2", "C1")})
        if f.name == "risk_profile" else f for f in contract.features)})
    with pytest.raises(BundleRejected) as err:
        _context(contract_bundle(reordered))
    assert {d.field for d in err.value.details} == \
        {f"{f}.features.risk_profile" for f in ("tier", "churn", "products")}


def test_no_aum_role_means_no_booked_tier() -> None:
    contract = b.small_contract(name="noaum")
    no_aum = contract.model_copy(update={"roles": Roles(aum=None, days_to_next_maturity=None)})
    ctx = _context(contract_bundle(no_aum))
    assert ctx.constants.aum_col is None
    customers = [CustomerInput(customer_id=f"c{i}", features=b.example_features())
                 for i in range(3)]
    x = ctx.schema.matrix([c.features for c in customers])
    options = Options(parts=frozenset({"tier", "churn"}))
    batch = score_rows(ctx, x, customers, options)
    alone = [score_rows(ctx, x[i:i + 1], [c], options)[0] for i, c in enumerate(customers)]
    assert alone == batch
    assert all(r["tier"]["booked"] is None and r["tier"]["upgrade_candidate"] is False
               for r in batch)


def test_a_catalogue_condition_on_an_undeclared_feature_does_not_fit() -> None:
    from app.training.bundling import config_bundle

    actions = [dict(a) for a in b.CATALOG["actions"]]
    actions[0] = {**actions[0], "eligibility": {"conditions": [
        {"feature": "age", "op": ">=", "value": 18},
        {"feature": "loans_other_banks", "op": ">", "value": 0}]}}
    catalog = config_bundle(family="catalog", document={"actions": actions})
    with pytest.raises(BundleRejected) as err:
        build_context({**b.default_set(), "catalog": catalog}, dict.fromkeys(FAMILIES, 1))
    assert [d.field for d in err.value.details] == \
        ["catalog.actions.money_market_fund.eligibility.conditions[1].feature"]
    assert "loans_other_banks" in err.value.details[0].problem
    wider = b.features_bundle(ContractFeature(name="loans_other_banks", kind="integer",
                                              minimum=0, maximum=100), name="loans")
    ctx = build_context({**b.default_set(), "catalog": catalog, "features": wider},
                        dict.fromkeys(FAMILIES, 1))
    assert ctx.prepared_catalog is not None
