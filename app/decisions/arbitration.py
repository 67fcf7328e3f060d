"""Next-best-action arbitration: eligibility → suitability → contact policy → priority → top N.

Pure and fast: plain Python on the hot path. The pydantic catalogue is flattened once into a
`PreparedCatalog` (cached per catalogue object), so one call costs a few comparisons per
action. Every catalogue action comes back exactly once: recommended, or suppressed with the
reason code of the first step it fails. priority = P × C × V × L, where P is the product's
propensity (or the churn probability for retention actions), C the channel weight of its
category, V its value and L its lever. Ties are broken by action id.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from app.decisions import contact_policy, eligibility, suitability
from app.decisions.catalog import Catalog
from app.decisions.contact_policy import ContactEvent, ContactRule, check_contact
from app.decisions.eligibility import EligibilityRule, check_eligibility
from app.decisions.suitability import SuitabilityLimits, check_suitability, customer_limits

__all__ = [
    "REASON_CODES", "ContactEvent", "Customer", "PreparedAction", "PreparedCatalog",
    "Recommendation", "Suppressed", "arbitrate", "arbitrate_prepared", "arbitrate_tuples",
    "prepare", "reason_list", "recommendation", "recommendation_dict",
]

NO_PROPENSITY = "no_propensity"
RANKED_BELOW_TOP_N = "ranked_below_top_n"
REASON_CODES: tuple[str, ...] = (
    *eligibility.REASON_CODES,
    *suitability.REASON_CODES,
    *contact_policy.REASON_CODES,
    NO_PROPENSITY,
    RANKED_BELOW_TOP_N,
)

# Categories where a maturing deposit or wealth product is the moment to pitch (换单).
_REINVEST_CATEGORIES = frozenset(("fixed_income", "money_market", "structured_deposit", "fund",
                                  "systematic_investment", "pension"))
_MATURITY_HORIZON_DAYS = 30


@dataclass(frozen=True, slots=True)
class Customer:
    """What arbitration needs to know about one customer."""

    age: int
    aum: float
    booked_tier: str
    risk_profile: str | None  # "C1".."C5" or None (never assessed)
    risk_assessment_age_days: int | None
    flags: Mapping[str, bool]  # boolean features by name; missing = False
    churn_probability: float | None  # calibrated; None when churn was not scored
    days_to_next_maturity: int | None = None  # only feeds an RM reason, never the ranking


@dataclass(frozen=True, slots=True)
class Recommendation:
    """One recommended action, its priority factors and why it was chosen."""

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


@dataclass(frozen=True, slots=True)
class PreparedAction:
    """One catalogue action flattened into plain Python for the hot path."""

    id: str
    name: str
    category: str
    kind: str
    is_retention: bool
    risk_level: str | None
    risk_rank: int  # 0 = no risk level
    elderly_allowed: bool
    propensity_model: str | None
    value: float
    lever: float
    eligibility: EligibilityRule
    contact: ContactRule
    never_contact: bool  # max_offers 0: suppressed even with no history
    # The eligibility rule as one flat tuple with open limits as ±inf, for a quick pass test
    # (see _passes); a customer who fails it goes through check_eligibility for the reason.
    quick: tuple[float, float, float, frozenset[str] | None, str | None, tuple[str, ...], bool,
                 float]
    # The reasons that do not depend on the customer (see reason_list), formatted once.
    retention_suffix: str
    flag_reasons: tuple[str, ...]
    lever_reason: str | None


@dataclass(frozen=True, slots=True)
class PreparedCatalog:
    """A catalogue ready for arbitration: flat actions and per-channel weight vectors."""

    actions: tuple[PreparedAction, ...]
    weights: Mapping[str, tuple[float, ...]]  # channel key ("" for None) → C per action
    ones: tuple[float, ...]  # weights of a channel the catalogue does not configure
    assessment_valid_days: int
    elderly_age: int
    elderly_max_risk: str
    # (risk_profile, assessment age, elderly?) → limits; SuitabilityLimits is immutable.
    limits_cache: dict[tuple[object, ...], SuitabilityLimits] = field(
        default_factory=dict, compare=False, repr=False)

    def limits_for(self, risk_profile: str | None, assessment_age_days: int | None,
                   age: int) -> SuitabilityLimits:
        """customer_limits under this catalogue's settings, remembered (bounded)."""
        # The types too: 30 and 30.0 are equal keys but print differently in the detail.
        key: tuple[object, ...] = (type(risk_profile), risk_profile, type(assessment_age_days),
                                   assessment_age_days, age >= self.elderly_age)
        try:
            limits = self.limits_cache.get(key)
        except TypeError:  # an unhashable value: no caching
            limits = None
            key = ()
        if limits is None:
            limits = customer_limits(
                risk_profile, assessment_age_days, age,
                assessment_valid_days=self.assessment_valid_days,
                elderly_age=self.elderly_age, elderly_max_risk=self.elderly_max_risk,
            )
            if key and len(self.limits_cache) < 65_536:
                self.limits_cache[key] = limits
        return limits

    def weights_for(self, channel: str | None) -> tuple[float, ...]:
        """Context weight C of every action, in catalogue order, for a channel."""
        return self.weights.get(channel or "", self.ones)


def _prepare_uncached(catalog: Catalog) -> PreparedCatalog:
    actions = tuple(
        PreparedAction(
            id=a.id,
            name=a.name,
            category=a.category,
            kind=a.kind,
            is_retention=a.kind == "retention",
            risk_level=a.risk_level,
            risk_rank=suitability.level_rank(a.risk_level),
            elderly_allowed=a.elderly_allowed,
            propensity_model=a.propensity_model,
            value=float(a.value),
            lever=float(a.lever),
            eligibility=EligibilityRule.from_action(a),
            contact=ContactRule.from_action(a),
            never_contact=a.contact_policy.max_offers == 0,
            quick=_quick(EligibilityRule.from_action(a)),
            retention_suffix=(
                f" (retention threshold {_pct(a.eligibility.min_churn_probability)})"
                if a.eligibility.min_churn_probability is not None else ""),
            flag_reasons=tuple(f.replace("_", " ") for f in a.eligibility.requires_flags),
            lever_reason=f"campaign lever x{float(a.lever):g}" if a.lever != 1.0 else None,
        )
        for a in catalog.actions
    )
    # Catalog.channel_weight stays the single definition of C; it is only evaluated here.
    keys = {*catalog.channel_weights, ""}
    weights = {
        k: tuple(float(catalog.channel_weight(k or None, a.category)) for a in actions)
        for k in keys
    }
    return PreparedCatalog(
        actions, weights, tuple(1.0 for _ in actions),
        catalog.assessment_valid_days, catalog.elderly_age, catalog.elderly_max_risk,
    )


_INF = float("inf")
_AGE_LOW = (eligibility.AGE_BELOW_MINIMUM, "")
_AGE_HIGH = (eligibility.AGE_ABOVE_MAXIMUM, "")
_AUM_LOW = (eligibility.AUM_BELOW_MINIMUM, "")
_TIER = (eligibility.TIER_NOT_ALLOWED, "")
_HELD = (eligibility.ALREADY_HELD, "")
_REQUIRES = (eligibility.REQUIREMENT_NOT_MET, "")
_NO_CHURN = (eligibility.CHURN_NOT_SCORED, "")
_CHURN_LOW = (eligibility.CHURN_RISK_BELOW_THRESHOLD, "")
_ELDERLY = (suitability.ELDERLY_RISK_CAP, "")


def _quick(e: EligibilityRule) -> tuple[float, float, float, frozenset[str] | None, str | None,
                                       tuple[str, ...], bool, float]:
    return (
        -_INF if e.min_age is None else e.min_age,
        _INF if e.max_age is None else e.max_age,
        -_INF if e.min_aum is None else e.min_aum,
        e.allowed_tiers,
        e.held_flag,
        e.requires_flags,
        e.needs_churn,
        -_INF if e.min_churn_probability is None else e.min_churn_probability,
    )


# id(catalog) → (weak reference, prepared). The weak reference guards against id reuse after
# a catalogue is garbage-collected, and its callback drops the entry, so the cache holds no
# more than the catalogues alive. Hashing a pydantic model per call would cost more than this.
_CACHE: dict[int, tuple[weakref.ref[Catalog], PreparedCatalog]] = {}
_CACHE_LOCK = threading.Lock()


def prepare(catalog: Catalog) -> PreparedCatalog:
    """The prepared form of `catalog`, built once per catalogue object and cached."""
    key = id(catalog)
    entry = _CACHE.get(key)
    if entry is not None and entry[0]() is catalog:
        return entry[1]
    prepared = _prepare_uncached(catalog)

    def _drop(ref: weakref.ref[Catalog], key: int = key) -> None:
        with _CACHE_LOCK:
            current = _CACHE.get(key)
            if current is not None and current[0] is ref:
                del _CACHE[key]

    with _CACHE_LOCK:
        _CACHE[key] = (weakref.ref(catalog, _drop), prepared)
    return prepared


def arbitrate(
    *,
    catalog: Catalog,
    customer: Customer,
    propensities: Mapping[str, float],
    channel: str | None,
    history: Sequence[ContactEvent],
    top_n: int,
) -> tuple[list[Recommendation], list[Suppressed]]:
    """Recommend the top N actions of `catalog` for `customer`; say why each other is not."""
    return arbitrate_prepared(prepare(catalog), customer=customer, propensities=propensities,
                              channel=channel, history=history, top_n=top_n)


def arbitrate_prepared(
    prepared: PreparedCatalog,
    *,
    customer: Customer,
    propensities: Mapping[str, float],
    channel: str | None,
    history: Sequence[ContactEvent],
    top_n: int,
) -> tuple[list[Recommendation], list[Suppressed]]:
    """`arbitrate` on an already prepared catalogue (skips the cache look-up).

    Suppressed actions come in catalogue order, then those ranked out, in rank order.
    """
    recs, suppressed = arbitrate_tuples(
        prepared, age=customer.age, aum=customer.aum, booked_tier=customer.booked_tier,
        risk_profile=customer.risk_profile,
        risk_assessment_age_days=customer.risk_assessment_age_days, flags=customer.flags,
        churn_probability=customer.churn_probability,
        days_to_next_maturity=customer.days_to_next_maturity, propensities=propensities,
        channel=channel, history=history, top_n=top_n)
    return [Recommendation(*r) for r in recs], [Suppressed(*s) for s in suppressed]


# (action_id, name, category, kind, risk_level, priority, propensity, context_weight, value,
#  lever, reasons): the fields of a Recommendation, in order.
RecommendationTuple = tuple[str, str, str, str, "str | None", float, float, float, float, float,
                            tuple[str, ...]]


def recommendation(
    a: PreparedAction,
    priority: float,
    p: float,
    c: float,
    channel: str | None,
    booked_tier: str,
    days_to_next_maturity: int | None,
    limits: SuitabilityLimits,
) -> RecommendationTuple:
    """One recommended action as a tuple of the Recommendation fields, reasons included."""
    reasons = tuple(reason_list(a, p, c, channel, booked_tier, days_to_next_maturity, limits))
    return (a.id, a.name, a.category, a.kind, a.risk_level, priority, p, c, a.value, a.lever,
            reasons)


def arbitrate_tuples(
    prepared: PreparedCatalog,
    *,
    age: int,
    aum: float,
    booked_tier: str,
    risk_profile: str | None,
    risk_assessment_age_days: int | None,
    flags: Mapping[str, bool],
    churn_probability: float | None,
    days_to_next_maturity: int | None,
    propensities: Mapping[str, float],
    channel: str | None,
    history: Sequence[ContactEvent],
    top_n: int,
    details: bool = True,
    build: Callable[..., Any] = recommendation,
) -> tuple[list[Any], list[tuple[str, str, str]]]:
    """The arbitration itself, on plain values, returning plain tuples.

    `arbitrate_prepared` wraps it in `Customer` / `Recommendation` / `Suppressed`; the
    scoring pipeline calls it directly (no dataclass built per action on the hot path).
    Recommendations are tuples of the Recommendation fields in order; suppressed actions are
    (action_id, reason_code, detail); with `details` False every detail is "" (the codes are
    the same), which saves formatting text nobody reads when only the metrics count them.
    `build` makes each recommendation: `recommendation` (the tuple) or `recommendation_dict`
    (the response's dict, which the scoring pipeline asks for).
    """
    if top_n < 0:
        raise ValueError(f"top_n must be >= 0, got {top_n}")
    limits = prepared.limits_for(risk_profile, risk_assessment_age_days, age)
    churn = churn_probability
    if churn is not None and not 0.0 <= churn <= 1.0:  # NaN included: it would poison sorting
        churn = None
    weights = prepared.weights_for(channel)
    max_rank = limits.max_rank
    elderly_cap = 99 if limits.elderly_cap is None else limits.elderly_cap
    _over = (limits.over_code, "")

    by_action: dict[str, list[ContactEvent]] | None = None
    if history:
        by_action = {}
        for event in history:
            by_action.setdefault(event.action_id, []).append(event)

    suppressed: list[tuple[str, str, str]] = []
    ranked: list[tuple[float, str, int, float]] = []  # (-priority, id, index, P)
    actions = prepared.actions
    eligible = check_eligibility
    for i, a in enumerate(actions):
        # check_eligibility's rules in its order, on the flat tuple (half the actions fail
        # one for a typical customer); its readable detail is built only when asked for.
        # tests/scoring keep the two in step (same codes with and without details).
        min_age, max_age, min_aum, tiers, held, requires, needs_churn, min_churn = a.quick
        if age < min_age:
            fail = _AGE_LOW
        elif age > max_age:
            fail = _AGE_HIGH
        elif aum < min_aum:
            fail = _AUM_LOW
        elif tiers is not None and booked_tier not in tiers:
            fail = _TIER
        elif held is not None and flags.get(held, False):
            fail = _HELD
        elif requires and not all(flags.get(f, False) for f in requires):
            fail = _REQUIRES
        elif needs_churn and (churn is None or churn < min_churn):
            fail = _NO_CHURN if churn is None else _CHURN_LOW
        else:
            fail = None
        if fail is not None and details:
            fail = eligible(a.eligibility, age, aum, booked_tier, flags, churn)
        if fail is None:
            rank = a.risk_rank
            if rank and (rank > max_rank or (rank > elderly_cap and not a.elderly_allowed)):
                fail = check_suitability(rank, a.elderly_allowed, limits) if details else (
                    _over if rank > max_rank else _ELDERLY)
            if fail is None and by_action is not None and (a.never_contact or a.id in by_action):
                fail = check_contact(a.contact, by_action.get(a.id, ()))
            elif fail is None and by_action is None and a.never_contact:
                fail = check_contact(a.contact, ())
        if fail is None:
            if a.is_retention:
                p = churn  # eligibility guarantees a churn probability for retention actions
            else:
                p = propensities.get(a.propensity_model)  # type: ignore[arg-type]
                if p is None or not 0.0 <= p <= 1.0:
                    fail = (NO_PROPENSITY, _no_propensity_detail(a.propensity_model, p))
        if fail is not None:
            suppressed.append((a.id, fail[0], fail[1] if details else ""))
            continue
        p = float(p)  # type: ignore[arg-type]  # numpy scalars in, plain floats out
        ranked.append((-(p * weights[i] * a.value * a.lever), a.id, i, p))

    ranked.sort()  # ids are unique, so the tuple never compares past the id
    recommendations: list[Any] = []
    for neg, _, i, p in ranked[:top_n]:
        recommendations.append(build(actions[i], -neg, p, weights[i], channel, booked_tier,
                                     days_to_next_maturity, limits))
    if not details:
        suppressed.extend((r[1], RANKED_BELOW_TOP_N, "") for r in ranked[top_n:])
        return recommendations, suppressed
    for rank, (neg, action_id, _, _) in enumerate(ranked[top_n:], start=top_n + 1):
        suppressed.append((
            action_id,
            RANKED_BELOW_TOP_N,
            f"ranked {rank} (priority {-neg:.4g}); only the top {top_n} are shown",
        ))
    return recommendations, suppressed


def recommendation_dict(
    a: PreparedAction,
    priority: float,
    p: float,
    c: float,
    channel: str | None,
    booked_tier: str,
    days_to_next_maturity: int | None,
    limits: SuitabilityLimits,
) -> dict[str, object]:
    """One recommended action as the response carries it (as_dict of `recommendation`)."""
    return {"action_id": a.id, "name": a.name, "category": a.category, "kind": a.kind,
            "risk_level": a.risk_level, "priority": priority, "propensity": p,
            "context_weight": c, "value": a.value, "lever": a.lever,
            "reasons": reason_list(a, p, c, channel, booked_tier, days_to_next_maturity,
                                   limits)}


def _no_propensity_detail(model: str | None, p: object) -> str:
    if p is None:
        return f"no propensity from model {model}"
    return f"propensity {p!r} from model {model} is not a probability"


def _pct(x: float) -> str:
    # Small propensities are the norm; "0%" would tell the RM nothing.
    return f"{x:.0%}" if x >= 0.1 or x == 0 else f"{x:.1%}"


def reason_list(
    a: PreparedAction,
    p: float,
    c: float,
    channel: str | None,
    booked_tier: str,
    days_to_next_maturity: int | None,
    limits: SuitabilityLimits,
) -> list[str]:
    """Short reasons an RM can read; built for recommended actions only, so cheap overall."""
    if a.is_retention:
        out = [f"churn risk {_pct(p)}{a.retention_suffix}"]
    else:
        out = [f"propensity {_pct(p)} for this product"]
    if a.risk_rank:
        if limits.profile is not None:
            out.append(f"suitable: {limits.profile} covers {a.risk_level}")
        else:
            out.append(f"{a.risk_level}: allowed without a current risk assessment")
        if limits.elderly_cap is not None and a.risk_rank > limits.elderly_cap:
            out.append(f"{a.risk_level} cleared above the elderly risk cap")
    d = days_to_next_maturity
    if d is not None and d <= _MATURITY_HORIZON_DAYS and a.category in _REINVEST_CATEGORIES:
        out.append(f"maturity in {d} days: a moment to reinvest")
    if a.flag_reasons:
        out += a.flag_reasons
    if a.eligibility.allowed_tiers is not None:
        out.append(f"offered to {booked_tier} customers")
    if c != 1.0 and channel:
        out.append(f"{'suits' if c > 1.0 else 'less suited to'} the {channel} channel (x{c:g})")
    if a.lever_reason is not None:
        out.append(a.lever_reason)
    return out
