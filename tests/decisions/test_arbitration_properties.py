"""Property tests: arbitration against an independent, straightforward reading of the rules.

The oracle below is written from the rule text (DESIGN §4 and the arbitration brief), not
from the rule definitions in app/decisions, and is checked on random customers, contexts,
histories and catalogues (plus the default catalogue). It tests what the definitions say;
tests/decisions/test_batch_form.py checks the array form against them.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.decisions.arbitration import REASON_CODES, ContactEvent
from app.decisions.catalog import Action, Catalog, Condition
from app.training.default_config import default_catalog
from tests.support.arbitration import Customer, arbitrate
from tests.support.decisions import (
    AGES,
    LEVELS,
    WINDOWS,
    catalogs,
    channels,
    customers,
    histories,
    propensity_maps,
    rarely,
)

# --- the oracle --------------------------------------------------------------------------


def oracle_condition(cond: Condition, v: object) -> bool:
    """A condition read from the rule text: missing meets only is_null; ordering needs a
    number; equality is numbers with numbers (booleans are 0/1), text with text."""
    if v is None:
        return cond.op == "is_null"
    if cond.op in ("is_null", "not_null"):
        return cond.op == "not_null"
    numeric = not isinstance(v, str)

    def equal(x: object) -> bool:
        return numeric != isinstance(x, str) and v == x

    if cond.op == ">":
        return numeric and v > cond.value  # type: ignore[operator]
    if cond.op == ">=":
        return numeric and v >= cond.value  # type: ignore[operator]
    if cond.op == "<":
        return numeric and v < cond.value  # type: ignore[operator]
    if cond.op == "<=":
        return numeric and v <= cond.value  # type: ignore[operator]
    if cond.op == "==":
        return equal(cond.value)
    if cond.op == "!=":
        return not equal(cond.value)
    found = any(equal(x) for x in cond.value)
    return found if cond.op == "in" else not found


def oracle_eligibility(a: Action, c: Customer) -> str | None:
    e = a.eligibility
    if c.age is None:
        if e.min_age is not None or e.max_age is not None:
            return "age_unknown"
    elif e.min_age is not None and c.age < e.min_age:
        return "age_below_minimum"
    elif e.max_age is not None and c.age > e.max_age:
        return "age_above_maximum"
    if e.min_aum is not None and c.aum < e.min_aum:
        return "aum_below_minimum"
    if e.allowed_tiers is not None and c.booked_tier not in e.allowed_tiers:
        return "tier_not_allowed"
    # Flags may name numeric features: true when non-zero, missing false.
    if e.held_flag is not None and c.flags.get(e.held_flag):
        return "already_held"
    if not all(c.flags.get(f) for f in e.requires_flags):
        return "requirement_not_met"
    if not all(oracle_condition(k, c.flags.get(k.feature)) for k in e.conditions):
        return "condition_not_met"
    churn = c.churn_probability
    if churn is not None and math.isnan(churn):
        churn = None
    if a.kind == "retention" or e.min_churn_probability is not None:
        if churn is None:
            return "churn_not_scored"
        if e.min_churn_probability is not None and churn < e.min_churn_probability:
            return "churn_risk_below_threshold"
    return None


def oracle_suitability(a: Action, c: Customer, catalog: Catalog) -> str | None:
    if a.risk_level is None:
        return None
    level = int(a.risk_level[1])
    profile = c.risk_profile
    assessed = profile in ("C1", "C2", "C3", "C4", "C5")
    current = (
        assessed
        and c.risk_assessment_age_days is not None
        and c.risk_assessment_age_days <= catalog.assessment_valid_days
    )
    allowed = int(profile[1]) if current and profile else 1
    if level > allowed:
        if current:
            return "risk_level_above_profile"
        return "assessment_expired" if assessed else "assessment_missing"
    elderly = c.age is None or c.age >= catalog.elderly_age  # unknown: the cap applies
    if elderly and not a.elderly_allowed and level > int(catalog.elderly_max_risk[1]):
        return "elderly_risk_cap"
    return None


def oracle_contact(a: Action, history: list[ContactEvent]) -> str | None:
    cp = a.contact_policy
    mine = [h for h in history if h.action_id == a.id]
    block = max(cp.window_days, cp.decline_cooloff_days)
    if any(h.outcome == "accepted" and h.days_ago < block for h in mine):
        return "accepted_recently"
    if any(h.outcome == "declined" and h.days_ago < cp.decline_cooloff_days for h in mine):
        return "declined_recently"
    offers = sum(1 for h in mine if h.outcome == "offered" and h.days_ago < cp.window_days)
    if offers >= cp.max_offers:
        return "contact_limit_reached"
    return None


def oracle_capped(catalog: Catalog, history: list[ContactEvent]) -> bool:
    cap = catalog.contact_cap
    return cap is not None and sum(
        1 for h in history if h.outcome == "offered" and h.days_ago < cap.window_days
    ) >= cap.max_offers


def oracle_unlocked(c: Customer, catalog: Catalog, props: dict[str, float],
                    history: list[ContactEvent], channel: str | None) -> Action | None:
    """The best product only a missing or expired assessment keeps out: with a current
    assessment of profile C5 it would pass every check and rank (ties by id)."""
    current = c.risk_profile in ("C1", "C2", "C3", "C4", "C5") and \
        c.risk_assessment_age_days is not None and \
        c.risk_assessment_age_days <= catalog.assessment_valid_days
    if current or oracle_capped(catalog, history):
        return None
    reassessed = dataclasses.replace(c, risk_profile="C5", risk_assessment_age_days=0)
    kept = [a for a in catalog.actions if a.kind == "product" and a.risk_level is not None
            and a.risk_level != "R1" and oracle_eligibility(a, c) is None
            and oracle_suitability(a, reassessed, catalog) is None
            and oracle_contact(a, history) is None and oracle_p(a, c, props) is not None]
    if not kept:
        return None
    return min(kept, key=lambda a: (-oracle_priority(a, c, catalog, props, channel), a.id))


def oracle_priority(a: Action, c: Customer, catalog: Catalog, props: dict[str, float],
                    channel: str | None) -> float:
    p = oracle_p(a, c, props)
    assert p is not None and a.value is not None
    return p * catalog.channel_weight(channel, a.category) * a.value * a.lever


def oracle_p(a: Action, c: Customer, propensities: dict[str, float]) -> float | None:
    if a.kind == "retention":
        return c.churn_probability
    p = propensities.get(a.propensity_model or "")
    if p is None or math.isnan(p) or p < 0 or p > 1:
        return None
    return p


def oracle(a: Action, c: Customer, catalog: Catalog, props: dict[str, float],
           history: list[ContactEvent], channel: str | None) -> str | None:
    return (
        oracle_eligibility(a, c)
        or oracle_suitability(a, c, catalog)
        or oracle_contact(a, history)
        or ("contact_cap" if oracle_capped(catalog, history) else None)
        or (None if a.kind == "service" or oracle_p(a, c, props) is not None
            else "no_propensity")
        or (None if a.kind != "service" or oracle_unlocked(c, catalog, props, history, channel)
            else "trigger_not_met")
    )


# --- the property ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_arbitration_respects_every_rule(data: st.DataObject) -> None:
    catalog = data.draw(st.just(default_catalog()) | catalogs(), label="catalog")
    cust = data.draw(customers, label="customer")
    props = data.draw(propensity_maps(), label="propensities")
    channel = data.draw(channels, label="channel")
    history = data.draw(histories([a.id for a in catalog.actions]), label="history")
    top_n = data.draw(rarely(st.just(0), st.integers(1, 6)), label="top_n")

    recs, sup = arbitrate(catalog=catalog, customer=cust, propensities=props,
                          channel=channel, history=history, top_n=top_n)

    # Without details (the service's metrics-only path) the codes and order are the same.
    quiet_recs, quiet_sup = arbitrate(catalog=catalog, customer=cust, propensities=props,
                                      channel=channel, history=history, top_n=top_n,
                                      details=False)
    assert quiet_recs == recs
    assert [(s.action_id, s.reason_code, "") for s in sup] == [
        (s.action_id, s.reason_code, s.detail) for s in quiet_sup]

    by_id = {a.id: a for a in catalog.actions}
    seen = [r.action_id for r in recs] + [s.action_id for s in sup]
    assert sorted(seen) == sorted(by_id), "every action exactly once"

    expected = {i: oracle(a, cust, catalog, props, history, channel) for i, a in by_id.items()}
    unlocked = oracle_unlocked(cust, catalog, props, history, channel)
    eligible = [i for i, code in expected.items() if code is None]
    assert len(recs) == min(top_n, len(eligible))

    def priority(a: Action) -> float:
        if a.kind == "service":  # the priority of the product it unlocks
            assert unlocked is not None
            a = unlocked
        return oracle_priority(a, cust, catalog, props, channel)

    for r in recs:
        a = by_id[r.action_id]
        assert oracle_eligibility(a, cust) is None
        assert oracle_suitability(a, cust, catalog) is None
        assert oracle_contact(a, history) is None
        assert not oracle_capped(catalog, history)
        assert r.priority == priority(a)
        assert r.kind == a.kind
        b = unlocked if a.kind == "service" else a
        assert b is not None
        assert r.propensity == oracle_p(b, cust, props)
        assert r.context_weight == catalog.channel_weight(channel, b.category)
        assert (r.value, r.lever, r.risk_level) == (b.value, b.lever, a.risk_level)
        assert r.reasons and all(r.reasons)
    keys = [(-r.priority, r.action_id) for r in recs]
    assert keys == sorted(keys), "sorted by priority, ties by id"

    for s in sup:
        assert s.reason_code and s.reason_code in REASON_CODES and s.detail
        if s.reason_code == "ranked_below_top_n":
            assert expected[s.action_id] is None
            if recs:  # ranked out only behind every recommendation
                assert (-priority(by_id[s.action_id]), s.action_id) > keys[-1]
        else:
            assert s.reason_code == expected[s.action_id]


@settings(max_examples=200, deadline=None)
@given(
    cust=customers,
    elderly_age=st.sampled_from(AGES) | st.integers(18, 121),
    elderly_max_risk=st.sampled_from(LEVELS),
    valid_days=st.sampled_from(WINDOWS[1:]) | st.integers(1, 800),
)
def test_suitability_on_every_level_and_elderly_setting(
    cust: Customer, elderly_age: int, elderly_max_risk: str, valid_days: int
) -> None:
    # Suitability alone: every risk level, with and without elderly_allowed, nothing else to
    # fail, so each combination of profile, assessment age and elderly cap is reached often.
    catalog = Catalog(
        actions=tuple(
            Action(id=f"r{level}_{allowed:d}", name="x", category="fund", risk_level=f"R{level}",
                   propensity_model="m_a", value=1.0, elderly_allowed=allowed)
            for level in range(1, 6)
            for allowed in (False, True)
        ),
        elderly_age=elderly_age,
        elderly_max_risk=elderly_max_risk,
        assessment_valid_days=valid_days,
    )
    recs, sup = arbitrate(catalog=catalog, customer=cust, propensities={"m_a": 0.5},
                          channel=None, history=(), top_n=10)
    outcome = {r.action_id: None for r in recs} | {s.action_id: s.reason_code for s in sup}
    assert outcome == {a.id: oracle_suitability(a, cust, catalog) for a in catalog.actions}
