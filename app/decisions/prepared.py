"""A catalogue flattened for arbitration: plain Python per action, built once and cached.

Both forms of arbitration (per customer and over arrays) read this, never the pydantic
catalogue, so a catalogue costs nothing per request beyond a dictionary look-up. It is
prepared for a contract's roles (app/features/family.Roles): the customer values the rules
read (age, AUM, risk profile, assessment age, days to maturity) are read through the
feature names the roles give, never literal names; a role the contract leaves out reads as
unknown (`PreparedCatalog.age_of` etc.).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.decisions import suitability
from app.decisions.catalog import Action, Catalog, ContactCap
from app.decisions.contact_policy import ContactRule
from app.decisions.eligibility import EligibilityRule
from app.decisions.suitability import SuitabilityLimits, customer_limits, no_profile_limits
from app.features.family import Roles

DEFAULT_ROLES = Roles()


@dataclass(frozen=True, slots=True)
class PreparedAction:
    """One catalogue action flattened into plain Python for the hot path."""

    id: str
    name: str
    category: str
    kind: str
    is_retention: bool
    is_service: bool  # trigger risk_reassessment (the only trigger so far)
    risk_level: str | None
    risk_rank: int  # 0 = no risk level
    elderly_allowed: bool
    propensity_model: str | None
    value: float
    lever: float
    eligibility: EligibilityRule
    contact: ContactRule
    never_contact: bool  # max_offers 0: suppressed even with no history
    # The reasons that do not depend on the customer (see reasons.reason_list), formatted once.
    retention_suffix: str
    flag_reasons: tuple[str, ...]
    lever_reason: str | None

    @classmethod
    def of(cls, a: Action) -> PreparedAction:
        """Flatten one pydantic action."""
        threshold = a.eligibility.min_churn_probability
        return cls(
            id=a.id,
            name=a.name,
            category=a.category,
            kind=a.kind,
            is_retention=a.kind == "retention",
            is_service=a.kind == "service",
            risk_level=a.risk_level,
            risk_rank=suitability.level_rank(a.risk_level),
            elderly_allowed=a.elderly_allowed,
            propensity_model=a.propensity_model,
            value=0.0 if a.value is None else float(a.value),
            lever=float(a.lever),
            eligibility=EligibilityRule.from_action(a),
            contact=ContactRule.from_action(a),
            never_contact=a.contact_policy.max_offers == 0,
            retention_suffix=(f" (retention threshold {percent(threshold)})"
                              if threshold is not None else ""),
            flag_reasons=tuple(f.replace("_", " ") for f in a.eligibility.requires_flags),
            lever_reason=f"campaign lever x{float(a.lever):g}" if a.lever != 1.0 else None,
        )


@dataclass(frozen=True, slots=True)
class PreparedCatalog:
    """A catalogue ready for arbitration: flat actions and per-channel weight vectors."""

    actions: tuple[PreparedAction, ...]
    weights: Mapping[str, tuple[float, ...]]  # channel key ("" for None) → C per action
    ones: tuple[float, ...]  # weights of a channel the catalogue does not configure
    assessment_valid_days: int
    elderly_age: int
    elderly_max_risk: str
    contact_cap: ContactCap | None
    # Feature names of the roles (None: the contract has no such feature).
    age_feature: str | None
    aum_feature: str | None
    risk_profile_feature: str | None
    assessment_feature: str | None
    maturity_feature: str | None
    has_service: bool
    action_ids: frozenset[str]  # what a contact history may name
    # (risk_profile, assessment age, elderly?) → limits; SuitabilityLimits is immutable.
    limits_cache: dict[tuple[object, ...], SuitabilityLimits] = field(
        default_factory=dict, compare=False, repr=False)

    def limits_for(self, risk_profile: str | None, assessment_age_days: int | None,
                   age: float | None) -> SuitabilityLimits:
        """customer_limits under this catalogue's settings, remembered (bounded)."""
        # The types too: 30 and 30.0 are equal keys but print differently in the detail.
        elderly = age is None or age >= self.elderly_age
        key: tuple[object, ...] = (type(risk_profile), risk_profile, type(assessment_age_days),
                                   assessment_age_days, elderly)
        try:
            limits = self.limits_cache.get(key)
        except TypeError:  # an unhashable value: no caching
            limits = None
            key = ()
        if limits is None:
            if self.risk_profile_feature is None:
                limits = no_profile_limits(
                    suitability.level_rank(self.elderly_max_risk) if elderly else None)
            else:
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

    # The customer values the rules read, from validated named features, by role.
    def age_of(self, features: Mapping[str, object]) -> float | None:
        """Age in years; None when unknown (no role, or missing)."""
        name = self.age_feature
        return None if name is None else features.get(name)  # type: ignore[return-value]

    def aum_of(self, features: Mapping[str, object]) -> float:
        """Booked AUM; 0 when unknown (so a minimum AUM is not met)."""
        name = self.aum_feature
        return 0.0 if name is None else float(features.get(name) or 0.0)  # type: ignore[arg-type]

    def risk_profile_of(self, features: Mapping[str, object]) -> str | None:
        name = self.risk_profile_feature
        return None if name is None else features.get(name)  # type: ignore[return-value]

    def assessment_age_of(self, features: Mapping[str, object]) -> int | None:
        name = self.assessment_feature
        return None if name is None else features.get(name)  # type: ignore[return-value]

    def maturity_of(self, features: Mapping[str, object]) -> int | None:
        name = self.maturity_feature
        return None if name is None else features.get(name)  # type: ignore[return-value]

    def limits_of(self, features: Mapping[str, object]) -> SuitabilityLimits:
        """The suitability limits of a customer given by named features."""
        return self.limits_for(self.risk_profile_of(features), self.assessment_age_of(features),
                               self.age_of(features))


def percent(x: float) -> str:
    """A probability as an RM reads it."""
    # Small propensities are the norm; "0%" would tell the RM nothing.
    return f"{x:.0%}" if x >= 0.1 or x == 0 else f"{x:.1%}"


def _prepare_uncached(catalog: Catalog, roles: Roles) -> PreparedCatalog:
    actions = tuple(PreparedAction.of(a) for a in catalog.actions)
    # Catalog.channel_weight stays the single definition of C; it is only evaluated here.
    keys = {*catalog.channel_weights, ""}
    weights = {
        k: tuple(float(catalog.channel_weight(k or None, a.category)) for a in actions)
        for k in keys
    }
    return PreparedCatalog(
        actions, weights, tuple(1.0 for _ in actions),
        catalog.assessment_valid_days, catalog.elderly_age, catalog.elderly_max_risk,
        catalog.contact_cap, roles.age, roles.aum, roles.risk_profile,
        roles.risk_assessment_age_days, roles.days_to_next_maturity,
        any(a.is_service for a in actions), frozenset(a.id for a in actions),
    )


# id(catalog) → (weak reference, role names → prepared). The weak reference guards against id
# reuse after a catalogue is garbage-collected, and its callback drops the entry, so the cache
# holds no more than the catalogues alive. Hashing a pydantic model per call would cost more.
_CACHE: dict[int, tuple[weakref.ref[Catalog], dict[tuple[str | None, ...], PreparedCatalog]]] = {}
_CACHE_LOCK = threading.Lock()


def prepare(catalog: Catalog, roles: Roles | None = None) -> PreparedCatalog:
    """The prepared form of `catalog` under a contract's `roles` (default: the default
    contract's), built once per catalogue object and roles and cached."""
    if roles is None:
        roles = DEFAULT_ROLES
    names = (roles.age, roles.aum, roles.risk_profile, roles.risk_assessment_age_days,
             roles.days_to_next_maturity)
    key = id(catalog)
    entry = _CACHE.get(key)
    if entry is not None and entry[0]() is catalog:
        found = entry[1].get(names)
        if found is not None:
            return found
        with _CACHE_LOCK:
            prepared = entry[1][names] = _prepare_uncached(catalog, roles)
        return prepared
    prepared = _prepare_uncached(catalog, roles)

    def _drop(ref: weakref.ref[Catalog], key: int = key) -> None:
        with _CACHE_LOCK:
            current = _CACHE.get(key)
            if current is not None and current[0] is ref:
                del _CACHE[key]

    with _CACHE_LOCK:
        _CACHE[key] = (weakref.ref(catalog, _drop), {names: prepared})
    return prepared
