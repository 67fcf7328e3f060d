"""Unit tests of each arbitration step and of the whole pipeline on small catalogues."""

from __future__ import annotations

import gc
import math
from typing import Any

import numpy as np
import pytest

from app.decisions import prepared as prep
from app.decisions.arbitration import REASON_CODES, ContactEvent
from app.decisions.catalog import Action, Catalog
from app.decisions.contact_policy import ContactRule, contact_failure
from app.decisions.eligibility import EligibilityRule, eligibility_failure
from app.decisions.prepared import prepare
from app.decisions.suitability import customer_limits, level_rank, suitability_failure
from tests.support.arbitration import Customer, arbitrate


def customer(**kw: Any) -> Customer:
    base: dict[str, Any] = dict(
        age=40, aum=200_000.0, booked_tier="affluent", risk_profile="C3",
        risk_assessment_age_days=100, flags={}, churn_probability=0.1,
    )
    base.update(kw)
    return Customer(**base)


def product(id_: str, **kw: Any) -> Action:
    base: dict[str, Any] = dict(
        id=id_, name=id_.title(), category="fund", propensity_model=id_, value=1.0
    )
    base.update(kw)
    return Action(**base)


def retention(id_: str, **kw: Any) -> Action:
    base: dict[str, Any] = dict(
        id=id_, name=id_.title(), category="retention", kind="retention", value=1.0
    )
    base.update(kw)
    return Action(**base)


def run(actions: list[Action], cust: Customer | None = None, **kw: Any):
    args: dict[str, Any] = dict(
        catalog=Catalog(actions=tuple(actions)), customer=cust or customer(),
        propensities={}, channel=None, history=(), top_n=3,
    )
    args.update(kw)
    return arbitrate(**args)


def code(rule: EligibilityRule, **kw: Any) -> str | None:
    args: dict[str, Any] = dict(
        age=40, aum=200_000.0, booked_tier="affluent", flags={}, churn_probability=0.5
    )
    args.update(kw)
    return eligibility_failure(rule, **args)


# --- eligibility -------------------------------------------------------------------------


def test_eligibility_each_rule_and_inclusive_limits() -> None:
    assert code(EligibilityRule(min_age=18), age=17) == "age_below_minimum"
    assert code(EligibilityRule(min_age=18), age=18) is None
    assert code(EligibilityRule(max_age=65), age=66) == "age_above_maximum"
    assert code(EligibilityRule(max_age=65), age=65) is None
    assert code(EligibilityRule(min_aum=50_000), aum=49_999.99) == "aum_below_minimum"
    assert code(EligibilityRule(min_aum=50_000), aum=50_000.0) is None
    tiers = EligibilityRule(allowed_tiers=frozenset({"hnw", "private"}))
    assert code(tiers, booked_tier="affluent") == "tier_not_allowed"
    assert code(tiers, booked_tier="hnw") is None
    held = EligibilityRule(held_flag="has_sip")
    assert code(held, flags={"has_sip": True}) == "already_held"
    assert code(held, flags={"has_sip": False}) is None
    assert code(held, flags={}) is None  # a missing flag reads as False


def test_eligibility_requirements_and_churn() -> None:
    req = EligibilityRule(requires_flags=("payroll_customer", "vip_card"))
    assert code(req, flags={"payroll_customer": True}) == "requirement_not_met"
    assert code(req, flags={"payroll_customer": True, "vip_card": True}) is None
    thr = EligibilityRule(min_churn_probability=0.35, needs_churn=True)
    assert code(thr, churn_probability=None) == "churn_not_scored"
    assert code(thr, churn_probability=0.3499) == "churn_risk_below_threshold"
    assert code(thr, churn_probability=0.35) is None
    # A retention action without threshold still needs a churn score to rank on.
    assert code(EligibilityRule(needs_churn=True), churn_probability=None) == "churn_not_scored"
    assert code(EligibilityRule(), churn_probability=None) is None


def test_eligibility_first_failure_wins() -> None:
    rule = EligibilityRule(min_age=30, min_aum=1e6, held_flag="has_x")
    assert code(rule, age=20, aum=0.0, flags={"has_x": True}) == "age_below_minimum"
    assert code(rule, age=40, aum=0.0, flags={"has_x": True}) == "aum_below_minimum"


def test_eligibility_rule_from_action() -> None:
    rule = EligibilityRule.from_action(
        retention("r", eligibility={"allowed_tiers": ("hnw",), "requires_flags": ("a",)})
    )
    assert rule.allowed_tiers == frozenset({"hnw"})
    assert rule.requires_flags == ("a",)
    assert rule.needs_churn and rule.min_churn_probability == -math.inf
    assert not EligibilityRule.from_action(product("p")).needs_churn


# --- suitability -------------------------------------------------------------------------


def limits(profile: str | None = "C3", days: int | None = 10, age: int = 40, **kw: Any):
    settings: dict[str, Any] = dict(
        assessment_valid_days=365, elderly_age=65, elderly_max_risk="R3"
    )
    settings.update(kw)
    return customer_limits(profile, days, age, **settings)


def suit(rank: int, lim: Any, elderly_allowed: bool = False) -> str | None:
    return suitability_failure(rank, elderly_allowed, lim)


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("r", [1, 2, 3, 4, 5])
def test_profile_covers_levels_up_to_its_rank(c: int, r: int) -> None:
    expected = None if r <= c else "risk_level_above_profile"
    assert suit(r, limits(f"C{c}", age=30)) == expected


def test_missing_or_expired_assessment_allows_r1_only() -> None:
    assert suit(1, limits(None)) is None
    assert suit(2, limits(None)) == "assessment_missing"
    assert suit(2, limits("C9")) == "assessment_missing"  # unknown code reads as missing
    assert suit(2, limits("C5", days=366)) == "assessment_expired"
    assert suit(5, limits("C5", days=365)) is None  # exactly at validity is still valid
    assert suit(2, limits("C5", days=None)) == "assessment_expired"  # undated profile
    assert suit(1, limits("C5", days=10_000)) is None
    assert suit(3, limits("C5", days=40, assessment_valid_days=30)) == "assessment_expired"


def test_elderly_cap() -> None:
    assert suit(4, limits("C5", age=65)) == "elderly_risk_cap"
    assert suit(4, limits("C5", age=64)) is None
    assert suit(3, limits("C5", age=90)) is None
    assert suit(4, limits("C5", age=65), elderly_allowed=True) is None
    # Both rules fail: the profile is reported (the RM can act on it).
    assert suit(5, limits("C3", age=80)) == "risk_level_above_profile"
    assert suit(2, limits("C5", age=70, elderly_max_risk="R1")) == "elderly_risk_cap"


def test_actions_without_risk_level_skip_suitability() -> None:
    assert level_rank(None) == 0 and level_rank("R4") == 4
    assert suit(0, limits(None, age=99)) is None


# --- contact policy ----------------------------------------------------------------------


def ev(days: int, outcome: str, action_id: str = "a") -> ContactEvent:
    return ContactEvent(action_id, days, outcome)  # type: ignore[arg-type]


def contact(rule: ContactRule, *events: ContactEvent) -> str | None:
    return contact_failure(rule, events)


def test_contact_limit_counts_offers_inside_the_window() -> None:
    rule = ContactRule(max_offers=2, window_days=30, decline_cooloff_days=90)
    assert contact(rule, ev(1, "offered")) is None
    assert contact(rule, ev(1, "offered"), ev(29, "offered")) == "contact_limit_reached"
    assert contact(rule, ev(1, "offered"), ev(30, "offered")) is None  # day 30 is outside
    assert contact(ContactRule(max_offers=0)) == "contact_limit_reached"


def test_decline_cooloff_and_acceptance() -> None:
    rule = ContactRule(max_offers=5, window_days=30, decline_cooloff_days=90)
    assert contact(rule, ev(89, "declined")) == "declined_recently"
    assert contact(rule, ev(90, "declined")) is None
    assert contact(rule, ev(300, "declined"), ev(10, "declined")) == "declined_recently"
    assert rule.accepted_block_days == 90
    assert contact(rule, ev(89, "accepted")) == "accepted_recently"
    assert contact(rule, ev(90, "accepted")) is None
    assert ContactRule(window_days=60, decline_cooloff_days=0).accepted_block_days == 60


def test_contact_rule_order_accepted_then_declined_then_limit() -> None:
    rule = ContactRule(max_offers=1, window_days=30, decline_cooloff_days=90)
    events = (ev(1, "offered"), ev(2, "declined"), ev(3, "accepted"))
    assert contact(rule, *events) == "accepted_recently"
    assert contact(rule, *events[:2]) == "declined_recently"
    assert contact(rule, events[0]) == "contact_limit_reached"


def test_contact_event_is_validated() -> None:
    with pytest.raises(ValueError):
        ContactEvent("a", -1, "offered")
    with pytest.raises(ValueError):
        ContactEvent("a", 1, "ignored")  # type: ignore[arg-type]


# --- priority, ranking and the whole pipeline --------------------------------------------


def test_priority_is_p_c_v_l_and_sorted() -> None:
    actions = [
        product("a", value=2.0, lever=1.5, category="fund"),
        product("b", value=1.0, category="money_market"),
        retention("r", value=0.4, eligibility={"min_churn_probability": 0.3}),
    ]
    catalog = Catalog(
        actions=tuple(actions),
        channel_weights={"mobile": {"money_market": 3.0, "*": 0.5}},
    )
    recs, sup = arbitrate(
        catalog=catalog, customer=customer(churn_probability=0.6),
        propensities={"a": 0.1, "b": 0.2}, channel="mobile", history=(), top_n=3,
    )
    assert sup == []
    by_id = {r.action_id: r for r in recs}
    assert by_id["a"].priority == 0.1 * 0.5 * 2.0 * 1.5
    assert by_id["b"].priority == 0.2 * 3.0 * 1.0 * 1.0
    assert by_id["r"].priority == 0.6 * 0.5 * 0.4 * 1.0
    assert by_id["r"].propensity == 0.6 and by_id["r"].context_weight == 0.5
    assert [r.action_id for r in recs] == ["b", "a", "r"]


def test_ties_broken_by_id_and_ranked_out_suppressed_in_rank_order() -> None:
    actions = [product(x) for x in ("d", "b", "c", "a")]
    recs, sup = run(actions, propensities={x: 0.2 for x in "abcd"}, top_n=2)
    assert [r.action_id for r in recs] == ["a", "b"]
    assert [(s.action_id, s.reason_code) for s in sup] == [
        ("c", "ranked_below_top_n"), ("d", "ranked_below_top_n")
    ]
    assert "ranked 3" in sup[0].detail and "top 2" in sup[0].detail


def test_missing_or_invalid_propensity_is_suppressed() -> None:
    actions = [product("a"), product("b"), product("c"), product("d")]
    props = {"a": 0.3, "c": math.nan, "d": 1.5}
    recs, sup = run(actions, propensities=props)
    assert [r.action_id for r in recs] == ["a"]
    assert {s.action_id: s.reason_code for s in sup} == {
        "b": "no_propensity", "c": "no_propensity", "d": "no_propensity"
    }


def test_first_failing_step_is_the_reason() -> None:
    actions = [
        product("young", eligibility={"min_age": 50}, risk_level="R5"),
        product("risky", risk_level="R5"),
        product("tired", contact_policy={"max_offers": 0}),
        product("nopro"),
    ]
    recs, sup = run(actions, history=[ev(1, "declined", "young")])
    assert recs == []
    assert {s.action_id: s.reason_code for s in sup} == {
        "young": "age_below_minimum",
        "risky": "risk_level_above_profile",
        "tired": "contact_limit_reached",
        "nopro": "no_propensity",
    }


def test_each_detail_words_its_own_rule() -> None:
    """Details are worded apart from the decision; each says what failed, with the numbers."""
    actions = [
        product("young", eligibility={"min_age": 50}),
        product("poor", eligibility={"min_aum": 1_000_000}),
        product("vip", eligibility={"requires_flags": ("payroll_customer", "vip_card")}),
        product("risky", risk_level="R5"),
        product("old", risk_level="R2", contact_policy={"decline_cooloff_days": 90}),
        product("tired", contact_policy={"max_offers": 0}),
        product("nopro"),
        retention("keep", eligibility={"min_churn_probability": 0.5}),
    ]
    _, sup = run(actions, customer(flags={"payroll_customer": True}),
                 propensities={"old": 0.2, "nopro": 1.5}, history=[ev(12, "declined", "old")])
    assert {s.action_id: s.detail for s in sup} == {
        "young": "age 40 below minimum 50",
        "poor": "AUM 200,000 below minimum 1,000,000",
        "vip": "requires vip_card",
        "risky": "R5 product; profile C3 covers up to R3",
        "old": "declined 12 days ago (cool-off 90 days)",
        "tired": "contact policy allows no offers (max_offers 0)",
        "nopro": "propensity 1.5 from model nopro is not a probability",
        "keep": "churn risk 10% below threshold 50%",
    }


def test_history_of_other_actions_is_ignored_and_numpy_input_accepted() -> None:
    props = {"a": np.float64(0.25)}
    recs, sup = run([product("a")], propensities=props, history=[ev(0, "declined", "zzz")])
    assert sup == [] and type(recs[0].priority) is float and recs[0].propensity == 0.25


def test_retention_needs_and_competes_on_churn() -> None:
    actions = [retention("keep", value=1.0), product("p", value=1.0)]
    recs, sup = run(actions, customer(churn_probability=None), propensities={"p": 0.4})
    assert [s.reason_code for s in sup] == ["churn_not_scored"]
    recs, _ = run(actions, customer(churn_probability=0.7), propensities={"p": 0.4})
    assert [r.action_id for r in recs] == ["keep", "p"]
    _, sup = run(actions, customer(churn_probability=math.nan), propensities={"p": 0.4})
    assert [s.reason_code for s in sup] == ["churn_not_scored"]  # NaN reads as not scored


def test_top_n_zero_and_negative() -> None:
    recs, sup = run([product("a")], propensities={"a": 0.1}, top_n=0)
    assert recs == [] and sup[0].reason_code == "ranked_below_top_n"
    with pytest.raises(ValueError):
        run([product("a")], top_n=-1)


def test_reasons_are_useful() -> None:
    sip_rules = {"requires_flags": ("payroll_customer",), "allowed_tiers": ("affluent",)}
    actions = [
        product("sip", category="systematic_investment", risk_level="R3", lever=1.2,
                eligibility=sip_rules),
        product("mmf", category="money_market", risk_level="R1"),
    ]
    catalog = Catalog(actions=tuple(actions), channel_weights={"mobile": {"money_market": 1.3}})
    cust = customer(flags={"payroll_customer": True}, days_to_next_maturity=12)
    recs, _ = arbitrate(catalog=catalog, customer=cust, propensities={"sip": 0.12, "mmf": 0.04},
                        channel="mobile", history=(), top_n=2)
    sip, mmf = recs
    assert sip.reasons[:2] == ("propensity 12% for this product", "suitable: C3 covers R3")
    assert "maturity in 12 days: a moment to reinvest" in sip.reasons
    assert "payroll customer" in sip.reasons and "campaign lever x1.2" in sip.reasons
    assert "offered to affluent customers" in sip.reasons
    assert mmf.reasons[0] == "propensity 4.0% for this product"
    assert "suits the mobile channel (x1.3)" in mmf.reasons
    recs, _ = run([actions[1]], customer(risk_profile=None), propensities={"mmf": 0.5})
    assert "R1: allowed without a current risk assessment" in recs[0].reasons


def test_unknown_or_missing_channel_weighs_one() -> None:
    catalog = Catalog(actions=(product("a"),), channel_weights={"rm": {"*": 2.0}})
    for channel in (None, "branch", "nowhere"):
        recs, _ = arbitrate(catalog=catalog, customer=customer(), propensities={"a": 0.5},
                            channel=channel, history=(), top_n=1)
        assert recs[0].context_weight == 1.0 == catalog.channel_weight(channel, "fund")


def test_prepare_is_cached_per_catalogue_and_released() -> None:
    catalog = Catalog(actions=(product("a"),))
    prepared = prepare(catalog)
    assert prepare(catalog) is prepared
    assert prepare(Catalog(actions=(product("a"),))) is not prepared
    recs, _ = arbitrate(catalog=prepared, customer=customer(), propensities={"a": 0.5},
                        channel=None, history=(), top_n=1)
    assert recs[0].action_id == "a"
    key = id(catalog)
    del catalog
    gc.collect()
    assert key not in prep._CACHE


def test_reason_codes_are_unique_and_stable() -> None:
    assert len(set(REASON_CODES)) == len(REASON_CODES) == 22
    assert {"already_held", "elderly_risk_cap", "declined_recently", "no_propensity",
            "ranked_below_top_n", "age_unknown", "condition_not_met", "contact_cap",
            "risk_profile_unavailable", "trigger_not_met"} <= set(REASON_CODES)
