"""The catalogue rules of issue 11 one by one: conditions on contract features, roles, the
risk-reassessment service action, the catalogue's contact cap, and history action ids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from app.api.schemas import BatchItem, ScoreRequest
from app.dataplane.plane import DataPlane
from app.decisions.arbitration import ContactEvent, arbitrate_customer
from app.decisions.catalog import Action, Catalog, Condition, condition_features
from app.decisions.conditions import catalog_features, condition_met, condition_problems
from app.decisions.prepared import prepare
from app.errors import InvalidRequest
from app.features.contract import DEFAULT_FEATURES, default_example
from app.features.family import ContractFeature, FeatureContract, Roles
from app.observability.metrics import ScoreTally
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from app.training.default_config import CATALOG_JSON, default_catalog
from tests.decisions.test_arbitration import customer, product, run


def service(id_: str = "reassess", **kw: Any) -> Action:
    return Action(id=id_, name="Reassess", category="service", kind="service",
                  trigger="risk_reassessment", **kw)


# --- the catalogue model ----------------------------------------------------------------


@pytest.mark.parametrize(("fields", "message"), [
    ({"op": ">", "value": "0"}, "needs a number"),
    ({"op": ">", "value": True}, "needs a number"),
    ({"op": ">=", "value": None}, "needs a number"),
    ({"op": "==", "value": [1]}, "number, boolean or text"),
    ({"op": "in", "value": 1}, "non-empty list"),
    ({"op": "in", "value": []}, "non-empty list"),
    ({"op": "not_in", "value": [{"a": 1}]}, "non-empty list"),
    ({"op": "is_null", "value": 0}, "takes no value"),
    ({"op": "like", "value": "x"}, "Input should be"),
    ({"op": ">", "value": float("nan")}, "needs a number"),
])
def test_condition_values_are_typed(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Condition(feature="loans_other_banks", **fields)


def test_a_bad_condition_in_a_catalogue_names_its_place() -> None:
    doc = {"actions": [{"id": "a", "name": "A", "category": "fund", "propensity_model": "a",
                        "value": 1.0, "eligibility": {"conditions": [
                            {"feature": "x", "op": ">", "value": 1},
                            {"feature": "y", "op": "in", "value": "C1"}]}}]}
    with pytest.raises(ValidationError) as err:
        Catalog.model_validate(doc)
    locs = [e["loc"] for e in err.value.errors()]
    assert locs == [("actions", 0, "eligibility", "conditions", 1)]


@pytest.mark.parametrize(("fields", "message"), [
    ({"kind": "service"}, "needs a trigger"),
    ({"kind": "service", "trigger": "risk_reassessment", "value": 1.0}, "no value or lever"),
    ({"kind": "service", "trigger": "risk_reassessment", "lever": 2.0}, "no value or lever"),
    ({"kind": "service", "trigger": "risk_reassessment", "risk_level": "R1"},
     "no propensity_model or risk level"),
    ({"kind": "product", "propensity_model": "a", "value": 1.0,
      "trigger": "risk_reassessment"}, "only service actions"),
    ({"kind": "product", "propensity_model": "a"}, "needs a value"),
    ({"kind": "service", "trigger": "birthday"}, "Input should be"),
])
def test_service_actions_are_checked(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Action.model_validate({"id": "s", "name": "S", "category": "service", **fields})


def test_contact_cap_is_checked() -> None:
    for cap in ({"max_offers": -1, "window_days": 30}, {"max_offers": 2, "window_days": 0},
                {"max_offers": 2}, {"max_offers": 2, "window_days": 30, "per": "day"}):
        with pytest.raises(ValidationError):
            Catalog.model_validate({"actions": [], "contact_cap": cap})


# --- conditions --------------------------------------------------------------------------


@pytest.mark.parametrize(("op", "value", "v", "met"), [
    (">", 0, 1, True), (">", 0, 0, False), (">", 0, None, False), (">", 0, "C1", False),
    (">=", 0, 0, True), ("<", 1, 0.5, True), ("<=", 1, 1.0, True), (">", 0, True, True),
    ("==", 1, 1.0, True), ("==", 1, True, True), ("==", "1", 1, False), ("==", "C1", "C1", True),
    ("!=", "C1", "C2", True), ("!=", "C1", None, False), ("!=", 0, "C1", True),
    ("in", ("C1", 3), 3, True), ("in", ("C1", 3), "C1", True), ("in", ("C1",), None, False),
    ("not_in", ("C1",), "C2", True), ("not_in", ("C1",), None, False),
    ("not_in", (1,), "1", True),
    ("is_null", None, None, True), ("is_null", None, 0, False), ("is_null", None, float("nan"),
                                                                   True),
    ("not_null", None, 0, True), ("not_null", None, None, False),
])
def test_condition_semantics(op: str, value: object, v: object, met: bool) -> None:
    assert condition_met(op, value, v) is met
    cond = Condition(feature="f", op=op,  # type: ignore[arg-type]
                     value=list(value) if isinstance(value, tuple) else value)
    from app.decisions.conditions import CompiledCondition
    assert CompiledCondition.of(cond).test(v) is met


def test_default_catalogue_conditions_fit_the_default_contract() -> None:
    contract = FeatureContract(features=tuple(ContractFeature(**f.model_dump())
                                              for f in DEFAULT_FEATURES))
    catalog = default_catalog()
    assert catalog_features(catalog) == {"loans_other_banks"}
    assert set(condition_features(catalog)) == {"loans_other_banks"}
    assert condition_problems(catalog, contract) == []
    bad = Catalog(actions=(product("a", eligibility={"conditions": [
        {"feature": "loans_other_banks", "op": ">", "value": 0},
        {"feature": "no_such", "op": "is_null"},
        {"feature": "risk_profile", "op": ">", "value": 2},
        {"feature": "risk_profile", "op": "in", "value": ["C1", "C9"]},
        {"feature": "age", "op": "==", "value": "forty"}]}),))
    problems = {p.field: p.problem for p in condition_problems(bad, contract)}
    assert set(problems) == {
        "catalog.actions.a.eligibility.conditions[1].feature",
        "catalog.actions.a.eligibility.conditions[2].value",
        "catalog.actions.a.eligibility.conditions[3].value",
        "catalog.actions.a.eligibility.conditions[4].value"}
    assert "does not declare 'no_such'" in problems[
        "catalog.actions.a.eligibility.conditions[1].feature"]


def test_loan_refinancing_needs_loans_elsewhere() -> None:
    prepared = prepare(default_catalog())
    base = {**default_example(), "age": 40}
    for loans, code in ((0, "condition_not_met"), (None, "condition_not_met"), (2, None)):
        features = {**base, "loans_other_banks": loans}
        recs, sup = arbitrate_customer(
            prepared, features, booked_tier="affluent", churn_probability=0.01,
            propensities={"loan_refinance": 0.99}, channel=None, history=(), top_n=3)
        got = {s[0]: s[1] for s in sup}.get("loan_refinance")
        assert got == code, (loans, got)
        if code is not None:
            assert "loans_other_banks > 0" in {s[0]: s[2] for s in sup}["loan_refinance"]
        else:
            assert recs[0]["action_id"] == "loan_refinance"


# --- roles -------------------------------------------------------------------------------


def test_roles_rename_the_features_the_rules_read() -> None:
    catalog = Catalog(actions=(
        product("young", eligibility={"max_age": 30}), product("rich", eligibility={
            "min_aum": 100_000}), product("risky", risk_level="R4")))
    features = {"age": 25, "aum_total": 500_000.0, "risk_profile": "C5",
                "risk_assessment_age_days": 10}
    renamed = {"alter": 25, "vermoegen": 500_000.0, "risiko": "C5", "alter_der_pruefung": 10}
    roles = Roles(age="alter", aum="vermoegen", risk_profile="risiko",
                  risk_assessment_age_days="alter_der_pruefung", days_to_next_maturity=None)
    props = {"young": 0.1, "rich": 0.2, "risky": 0.3}

    def decide(prepared: Any, f: dict[str, Any]) -> Any:
        return arbitrate_customer(prepared, f, booked_tier="affluent", churn_probability=None,
                                  propensities=props, channel=None, history=(), top_n=5)

    assert decide(prepare(catalog, roles), renamed) == decide(prepare(catalog), features)
    # The literal names mean nothing under the renamed roles: unknown, rules fail closed.
    recs, sup = decide(prepare(catalog, roles), features)
    assert recs == []
    assert {s[0]: s[1] for s in sup} == {"young": "age_unknown", "rich": "aum_below_minimum",
                                         "risky": "assessment_missing"}


def test_a_contract_without_risk_profile_or_age_fails_closed() -> None:
    catalog = Catalog(actions=(product("r1", risk_level="R1"), product("plain"),
                               product("adult", eligibility={"min_age": 18}),
                               product("r3", risk_level="R3", elderly_allowed=False),
                               service()),
                      elderly_max_risk="R2")
    props = {"r1": 0.5, "plain": 0.5, "adult": 0.5, "r3": 0.5}
    features = {"age": 40, "risk_profile": "C5", "risk_assessment_age_days": 10}
    no_profile = prepare(catalog, Roles(risk_profile=None))
    recs, sup = arbitrate_customer(no_profile, features, booked_tier="", churn_probability=None,
                                   propensities=props, channel=None, history=(), top_n=5)
    codes = {s[0]: s[1] for s in sup}
    assert codes["r1"] == codes["r3"] == "risk_profile_unavailable"
    assert codes["reassess"] == "trigger_not_met"  # a reassessment cannot help here
    assert {r["action_id"] for r in recs} == {"plain", "adult"}
    no_age = prepare(catalog, Roles(age=None))
    recs, sup = arbitrate_customer(no_age, features, booked_tier="", churn_probability=None,
                                   propensities=props, channel=None, history=(), top_n=5)
    codes = {s[0]: s[1] for s in sup}
    assert codes == {"adult": "age_unknown", "r3": "elderly_risk_cap",
                     "reassess": "trigger_not_met"}


# --- the risk reassessment ------------------------------------------------------------


def _catalog(*extra: Action, **kw: Any) -> Catalog:
    return Catalog(actions=(product("equity", risk_level="R4", value=2.0),
                            product("bond", risk_level="R2", value=1.0),
                            product("mmf", risk_level="R1", value=1.0),
                            service(), *extra), **kw)


PROPS = {"equity": 0.3, "bond": 0.4, "mmf": 0.2}


def test_reassessment_takes_the_best_product_it_unlocks() -> None:
    expired = customer(risk_profile="C5", risk_assessment_age_days=400)
    recs, sup = run(list(_catalog().actions), expired, propensities=PROPS, channel="rm")
    assert [r.action_id for r in recs] == ["reassess", "mmf"]
    r = recs[0]
    assert r.kind == "service" and r.risk_level is None
    assert r.priority == 0.3 * 1.0 * 2.0 * 1.0  # the equity fund's P × C × V × L
    assert (r.propensity, r.value, r.lever) == (0.3, 2.0, 1.0)
    assert "risk assessment expired" in r.reasons[0] and "Equity (R4" in r.reasons[1]
    codes = {s.action_id: s.reason_code for s in sup}
    assert codes == {"equity": "assessment_expired", "bond": "assessment_expired"}
    missing = customer(risk_profile=None, risk_assessment_age_days=None)
    recs, _ = run(list(_catalog().actions), missing, propensities=PROPS)
    assert recs[0].action_id == "reassess" and "no risk assessment" in recs[0].reasons[0]


def test_no_reassessment_when_the_assessment_is_current_or_would_not_help() -> None:
    actions = list(_catalog().actions)
    current = customer(risk_profile="C1", risk_assessment_age_days=10)
    _, sup = run(actions, current, propensities=PROPS)
    assert {s.action_id: s.reason_code for s in sup}["reassess"] == "trigger_not_met"
    expired = customer(risk_profile="C5", risk_assessment_age_days=400)
    # Kept out for other reasons too: declined recently, no propensity, the elderly cap.
    history = [ContactEvent("equity", 3, "declined"), ContactEvent("bond", 3, "declined")]
    _, sup = run(actions, expired, propensities=PROPS, history=history)
    assert {s.action_id: s.reason_code for s in sup}["reassess"] == "trigger_not_met"
    _, sup = run(actions, expired, propensities={"mmf": 0.2})
    assert {s.action_id: s.reason_code for s in sup}["reassess"] == "trigger_not_met"
    old = customer(age=80, risk_profile="C5", risk_assessment_age_days=400)
    recs, _ = run([], old, propensities=PROPS, catalog=_catalog(elderly_max_risk="R1"))
    assert [r.action_id for r in recs] == ["mmf"]
    # Under a cap of R2 the bond still counts, the equity fund does not.
    recs, _ = run([], old, propensities=PROPS, catalog=_catalog(elderly_max_risk="R2"))
    assert recs[0].action_id == "reassess" and recs[0].priority == 0.4


def test_reassessment_follows_its_own_contact_policy() -> None:
    expired = customer(risk_profile="C5", risk_assessment_age_days=400)
    _, sup = run(list(_catalog().actions), expired, propensities=PROPS,
                 history=[ContactEvent("reassess", 5, "declined")])
    assert {s.action_id: s.reason_code for s in sup}["reassess"] == "declined_recently"


# --- the contact cap -----------------------------------------------------------------


def test_the_contact_cap_counts_offers_of_every_action() -> None:
    catalog = Catalog(actions=(product("a"), product("b"), service()),
                      contact_cap={"max_offers": 2, "window_days": 30})
    props = {"a": 0.5, "b": 0.4}
    one = [ContactEvent("a", 1, "offered")]
    recs, _ = arbitrate_plain(catalog, props, one)
    assert [r.action_id for r in recs] == ["a", "b"]
    for history in ([*one, ContactEvent("zz", 29, "offered")],
                    [*one, ContactEvent("b", 0, "offered"), ContactEvent("b", 100, "offered")]):
        recs, sup = arbitrate_plain(catalog, props, history)
        assert recs == []
        codes = {s.action_id: s.reason_code for s in sup}
        assert codes["a"] == codes["b"] == "contact_cap"
        assert "offers of any action in the last 30 days (cap 2)" in \
            {s.action_id: s.detail for s in sup}["a"]
    # Declines and acceptances do not count, nor offers 30 days ago or more.
    history = [*one, ContactEvent("b", 2, "declined"), ContactEvent("b", 30, "offered")]
    _, sup = arbitrate_plain(catalog, props, history)
    assert {s.action_id: s.reason_code for s in sup}["b"] == "declined_recently"
    assert "a" not in {s.action_id for s in sup}


def arbitrate_plain(catalog: Catalog, props: dict[str, float],
                    history: list[ContactEvent]) -> Any:
    return run([], propensities=props, history=history, catalog=catalog)


def test_a_zero_cap_offers_nothing() -> None:
    catalog = Catalog(actions=(product("a"),), contact_cap={"max_offers": 0, "window_days": 1})
    recs, sup = run([], propensities={"a": 0.5}, catalog=catalog)
    assert recs == [] and [(s.action_id, s.reason_code) for s in sup] == [("a", "contact_cap")]


def test_the_default_catalogue_has_the_issue_11_rules() -> None:
    catalog = default_catalog()
    assert catalog.contact_cap is not None
    assert (catalog.contact_cap.max_offers, catalog.contact_cap.window_days) == (4, 30)
    kinds = {a.id: a.kind for a in catalog.actions}
    assert kinds["reassess_risk_profile"] == "service"
    assert CATALOG_JSON["contact_cap"] == {"max_offers": 4, "window_days": 30}


# --- history action ids --------------------------------------------------------------


def test_history_action_ids_must_be_in_the_live_catalogue(
        default_context: ScoringContext) -> None:
    plane = DataPlane(live=StaticContexts(default_context), batcher=None, tally=ScoreTally())
    history = [{"action_id": "credit_card", "date": "2026-11-01", "outcome": "offered"},
               {"action_id": "credit_crad", "date": "2026-11-01", "outcome": "offered"}]
    body = {"customer_id": "C1", "features": default_example(),
            "context": {"as_of": "2026-11-20", "history": history}}
    with pytest.raises(InvalidRequest) as err:
        plane.score_now(ScoreRequest.model_validate(body))
    assert [p.field for p in err.value.details] == ["context.history[1].action_id"]
    assert "'credit_crad' is not an action of the live catalogue" in err.value.details[0].problem
    good = {**body, "context": {"as_of": "2026-11-20", "history": history[:1]}}
    items = [BatchItem.model_validate(good), BatchItem.model_validate(body)]
    out = plane.score_batch_now(items, None)
    assert (out["scored"], out["failed"]) == (1, 1)
    error = out["results"][1]["error"]
    assert error["details"][0]["field"] == "items[1].context.history[1].action_id"


def test_on_a_synthetic_book_refinancing_needs_loans_elsewhere(
        default_context: ScoringContext) -> None:
    """bench/decisions_book.py on a small book: the 0% of docs/decisions.md, both forms."""
    from bench.decisions_book import measure
    from tests.customers import book_customers

    features = [c["features"] for c in book_customers(1_500, 23)]
    x = np.array([default_context.schema.row(f) for f in features])
    # The array form on all, then customer by customer (the per-customer form) on a few.
    for n, chunk in ((1_500, 1_500), (200, 1)):
        shares = measure(default_context, default_catalog(), features[:n], x[:n], chunk=chunk)
        assert shares["refinance in top 3, loans_other_banks 0"] == 0.0
        assert shares["refinance in top 3, no bureau hit"] == 0.0
        assert shares["refinance in top 3"] > 0.0
        assert 0.0 < shares["reassessment offered"] <= shares["assessment missing or expired"]
