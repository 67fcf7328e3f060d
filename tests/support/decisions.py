"""Hypothesis strategies for arbitration tests: catalogues, customers, propensities, histories.

Thresholds and values are drawn from shared small sets too, so the edges (==) are hit often.
"""

from __future__ import annotations

import math
from typing import Any

from hypothesis import strategies as st

from app.decisions.arbitration import ContactEvent
from app.decisions.catalog import Action, Catalog, Condition
from app.features.contract import OCCUPATIONS
from app.training.default_config import PRODUCT_MODELS
from tests.support.arbitration import Customer

TIERS = ("mass", "affluent", "hnw", "private")
# The channels callers name (the API's channel values).
CHANNELS = ("branch", "mobile", "online", "call_centre", "rm")
FLAGS = ("has_credit_card", "has_sip", "payroll_customer", "vip_card")
# Rules may name numeric features too (true when non-zero; missing is false).
RULE_FLAGS = (*FLAGS, "loans_other_banks", "monthly_salary")
MODELS = ("m_a", "m_b", "m_c", *PRODUCT_MODELS)
CATEGORIES = ("fund", "money_market", "insurance", "pension", "credit_card", "retention")
LEVELS = ("R1", "R2", "R3", "R4", "R5")
AUMS = (0.0, 10_000.0, 50_000.0, 100_000.0, 1_000_000.0)
WINDOWS = (0, 1, 30, 90, 365)
AGES = (18, 40, 64, 65, 66, 120)
# Conditions name features of the default contract of every kind (and one it lacks); values
# are drawn from what customers hold, plus values of the wrong kind.
NUMBERS = (0, 1, 3, 0.5, 18_000, 18_000.0)
CONDITION_FEATURES = ("loans_other_banks", "monthly_salary", "has_sip", "vip_card",
                      "occupation_class", "tenure_months", "not_a_feature")
OPS = (">", ">=", "<", "<=", "==", "!=", "in", "not_in", "is_null", "not_null")
_SCALARS = (st.sampled_from(NUMBERS) | st.booleans()
            | st.sampled_from((*OCCUPATIONS[:3], "pilot")))


@st.composite
def conditions(draw: Any) -> Condition:
    op = draw(st.sampled_from(OPS))
    value: Any = None
    if op in (">", ">=", "<", "<="):
        value = draw(st.sampled_from(NUMBERS))
    elif op in ("==", "!="):
        value = draw(_SCALARS)
    elif op in ("in", "not_in"):
        value = draw(st.lists(_SCALARS, min_size=1, max_size=3))
    return Condition(feature=draw(st.sampled_from(CONDITION_FEATURES)), op=op, value=value)


def sometimes(draw: Any, strategy: st.SearchStrategy[Any], default: Any = None) -> Any:
    """A rule present one time in four: with every rule 50/50, almost nothing is eligible."""
    return draw(strategy) if draw(st.integers(0, 3)) == 0 else default


@st.composite
def actions(draw: Any, id_: str) -> Action:
    kind = draw(st.sampled_from(("product", "product", "product", "retention", "service")))
    age = st.sampled_from(AGES) | st.integers(18, 120)
    eligibility = {
        "min_age": sometimes(draw, age),
        "max_age": sometimes(draw, age),
        "min_aum": sometimes(draw, st.sampled_from(AUMS)),
        "allowed_tiers": sometimes(draw, st.lists(st.sampled_from(TIERS), unique=True).map(tuple)),
        "held_flag": sometimes(draw, st.sampled_from(RULE_FLAGS)),
        "requires_flags": sometimes(
            draw, st.lists(st.sampled_from(RULE_FLAGS), max_size=2, unique=True).map(tuple),
            (),
        ),
        "min_churn_probability": sometimes(
            draw, st.sampled_from((0.0, 0.15, 0.25, 0.35)) | st.floats(0, 1)
        ),
        "conditions": sometimes(draw, st.lists(conditions(), min_size=1, max_size=2), ()),
    }
    contact = {
        "max_offers": draw(st.integers(0, 3)),
        "window_days": draw(st.sampled_from(WINDOWS[1:]) | st.integers(1, 120)),
        "decline_cooloff_days": draw(st.sampled_from(WINDOWS) | st.integers(0, 200)),
    }
    if kind == "service":
        return Action(id=id_, name=id_, category="service", kind="service",
                      trigger="risk_reassessment", eligibility=eligibility,
                      contact_policy=contact)
    return Action(
        id=id_,
        name=id_,
        category="retention" if kind == "retention" else draw(st.sampled_from(CATEGORIES[:-1])),
        kind=kind,
        risk_level=None if kind == "retention" else draw(st.none() | st.sampled_from(LEVELS)),
        propensity_model=draw(st.sampled_from(MODELS)) if kind == "product" else None,
        value=draw(st.floats(0.01, 10)),
        lever=draw(st.floats(0.1, 5)),
        elderly_allowed=draw(st.booleans()),
        eligibility=eligibility,
        contact_policy=contact,
    )


@st.composite
def catalogs(draw: Any) -> Catalog:
    ids = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True),
                        min_size=0, max_size=8, unique=True))
    weight_maps = st.dictionaries(
        st.sampled_from((*CATEGORIES, "*")), st.floats(0.1, 3), max_size=4
    )
    return Catalog(
        actions=tuple(draw(actions(i)) for i in ids),
        channel_weights=draw(st.dictionaries(st.sampled_from(CHANNELS), weight_maps, max_size=3)),
        elderly_age=draw(st.sampled_from(AGES) | st.integers(18, 121)),
        elderly_max_risk=draw(st.sampled_from(("R1", "R2", *LEVELS))),  # low caps bite more
        assessment_valid_days=draw(st.sampled_from(WINDOWS[1:]) | st.integers(1, 800)),
        contact_cap=sometimes(draw, st.builds(
            dict, max_offers=st.integers(0, 4),
            window_days=st.sampled_from(WINDOWS[1:]) | st.integers(1, 120))),
    )


def rarely(odd: st.SearchStrategy[Any], usual: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """`odd` one time in five. (one_of picks its distinct branches evenly, whatever their count.)"""
    return st.sampled_from((False, False, False, False, True)).flatmap(
        lambda is_odd: odd if is_odd else usual
    )


# Features the conditions read, as a validated request holds them (None: missing).
_FEATURES = st.fixed_dictionaries({}, optional={
    "loans_other_banks": st.none() | st.sampled_from((0, 1, 3)),
    "monthly_salary": st.none() | st.sampled_from((0.0, 0.5, 18_000.0, 25_000.0)),
    "occupation_class": st.none() | st.sampled_from(OCCUPATIONS[:4]),
    "tenure_months": st.sampled_from((0, 1, 3, 86)),
})
customers = st.builds(
    Customer,
    age=rarely(st.none(), st.sampled_from(AGES) | st.integers(18, 120)),
    aum=st.sampled_from(AUMS) | st.floats(0, 1e7),
    booked_tier=st.sampled_from(TIERS),
    risk_profile=rarely(st.none(), st.sampled_from(("C1", "C2", "C3", "C4", "C5"))),
    risk_assessment_age_days=rarely(
        st.none(), st.sampled_from(WINDOWS) | st.integers(0, 900)
    ),
    flags=st.builds(lambda f, g: {**f, **g},
                    st.dictionaries(st.sampled_from(FLAGS), st.booleans()), _FEATURES),
    churn_probability=rarely(st.none() | st.just(math.nan), st.floats(0, 1)),
    days_to_next_maturity=st.none() | st.integers(0, 400),
)
@st.composite
def propensity_maps(draw: Any) -> dict[str, float]:
    """A full map, as the products bundle gives, with a few models missing or invalid at times."""
    props = draw(st.fixed_dictionaries({m: st.floats(0, 1) for m in MODELS}))
    for m in draw(rarely(st.lists(st.sampled_from(MODELS), max_size=3), st.just([]))):
        bad = draw(st.sampled_from((None, math.nan, 1.5, -0.1)))
        if bad is None:
            props.pop(m, None)
        else:
            props[m] = bad
    return props


channels = st.none() | st.sampled_from((*CHANNELS, "kiosk"))


def histories(ids: list[str]) -> st.SearchStrategy[list[ContactEvent]]:
    return st.lists(
        st.builds(
            ContactEvent,
            action_id=st.sampled_from([*ids, "unknown_action"]),
            days_ago=st.sampled_from((0, 1, 29, 30, 31, 89, 90, 91)) | st.integers(0, 400),
            outcome=st.sampled_from(("offered", "declined", "accepted")),
        ),
        max_size=8,
    )
