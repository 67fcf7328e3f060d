"""The feature contract as a versioned family: what callers send, and what each part means.

A bank authors its contract as YAML (names, kinds, units, ranges, nullability, categories,
descriptions, reason texts, and which feature plays which role for the decisions); it is
built into a `features` bundle (features.json) and versioned, approved and promoted in the
registry like any model. The live contract is what the scoring API validates against and
what the served OpenAPI document shows.

Model bundles record the contract they were trained against (`Manifest.contract`); a model
fits a contract when every feature it reads is declared there with the same encoding
(`model_fits`). A new contract version is compared with the live one (`contract_changes`):
removing a feature, narrowing a range, dropping a category or making a feature required are
breaking and must be promoted explicitly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.errors import FieldProblem
from app.features.schema import FeatureSchema
from app.features.spec import FeatureSpec

CONTRACT_FILE = "features.json"
ReasonFormat = Literal["number", "percent", "money", "integer", "text"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OfferText(_Strict):
    """How this feature's value reads as a reason for an offer: a fact in the customer's
    terms ("salary of CNY 35,000 a month credited here", "no investment plan yet"), by the
    kind of value; each text may use {value} (formatted as the reason's `format`)."""

    text: str = Field(description="A positive number, true, or a category.")
    negative: str | None = Field(default=None, description="A negative number (default: text).")
    zero: str | None = Field(default=None, description="False or 0 (default: text).")
    missing: str | None = Field(default=None, description="No value (default: zero, else "
                                "text with the value read as 'missing').")


class ReasonText(_Strict):
    """How this feature reads to an RM when it explains a score, by direction, and as a
    reason for an offer."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Stable reason code.")
    up: str = Field(description="Text when the feature raises the score; may use {value}.")
    down: str = Field(description="Text when the feature lowers the score; may use {value}.")
    format: ReasonFormat = "number"
    offer: OfferText | None = Field(
        default=None, description="The value as a reason for a recommended product (the "
        "churn texts speak of leaving); without it such a reason reads 'feature: value'.")


class ContractFeature(FeatureSpec):
    """One feature of the contract: a FeatureSpec plus its reason texts."""

    reason: ReasonText | None = None

    def spec(self) -> FeatureSpec:
        """The plain FeatureSpec (what schemas and model manifests hold)."""
        return FeatureSpec(**self.model_dump(exclude={"reason"}))


class Roles(_Strict):
    """Which contract feature plays each part the decisions read directly (null: none).

    The defaults are the default contract's names; a bank's contract with other names sets
    them (or null where it has no such feature: no booked tier without `aum`, every
    risk-rated product unsuitable without `risk_profile`)."""

    aum: str | None = Field(
        default="aum_total",
        description="Assets held at this bank: the booked tier, and the floor of the "
        "predicted wallet wealth.")
    age: str | None = Field(default="age", description="Age in years (eligibility, elderly rule).")
    risk_profile: str | None = Field(
        default="risk_profile",
        description="Suitability risk type C1..C5 (category); null = never assessed.")
    risk_assessment_age_days: str | None = Field(
        default="risk_assessment_age_days",
        description="Days since the risk assessment (expired after the catalogue's limit).")
    days_to_next_maturity: str | None = Field(
        default="days_to_next_maturity",
        description="Days until a deposit or product matures (maturity moments).")

    def used(self) -> dict[str, str]:
        """role → feature name, for the roles that are set."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


_ROLE_KINDS: dict[str, tuple[str, ...]] = {
    "aum": ("number", "integer"),
    "age": ("number", "integer"),
    "risk_profile": ("category",),
    "risk_assessment_age_days": ("number", "integer"),
    "days_to_next_maturity": ("number", "integer"),
}


class FeatureContract(_Strict):
    """features.json of a `features` bundle."""

    name: str = Field(default="default", pattern=r"^[a-z][a-z0-9_-]{0,63}$",
                      description="Whose contract this is, e.g. the bank's short name.")
    description: str = ""
    currency: str = Field(default="CNY", description="Currency of every money feature.")
    roles: Roles = Roles()
    features: tuple[ContractFeature, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> FeatureContract:
        names = [f.name for f in self.features]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError("feature names must be unique: " + ", ".join(dup))
        by_name = {f.name: f for f in self.features}
        for role, name in self.roles.used().items():
            spec = by_name.get(name)
            if spec is None:
                raise ValueError(
                    f"roles.{role} names {name!r}, which the contract does not declare "
                    "(declare it, or set the role to null)")
            if spec.kind not in _ROLE_KINDS[role]:
                raise ValueError(f"roles.{role}: feature {name!r} is {spec.kind}, the role "
                                 "needs " + " or ".join(_ROLE_KINDS[role]))
            if role == "risk_profile" and not all(
                    len(c) == 2 and c[0] == "C" and c[1] in "12345" for c in spec.categories):
                raise ValueError(f"roles.risk_profile: the categories of {name!r} must be "
                                 "risk types C1..C5")
        return self

    def specs(self) -> tuple[FeatureSpec, ...]:
        """The plain specs, in contract order."""
        return tuple(f.spec() for f in self.features)

    def schema(self) -> FeatureSchema:  # type: ignore[override]
        """The feature schema requests are validated and encoded with (shadows pydantic's
        deprecated `BaseModel.schema()`, which nothing here uses)."""
        return FeatureSchema(self.specs())

    def feature(self, name: str) -> ContractFeature | None:
        return next((f for f in self.features if f.name == name), None)

    def to_json(self) -> bytes:
        """The canonical features.json bytes (stable key order, no defaults dropped)."""
        return (json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True,
                           ensure_ascii=False) + "\n").encode()


class ContractRef(_Strict):
    """In a model manifest: the contract (features bundle) the model was trained against."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the features bundle.")


def _role_fits(role: str, spec: FeatureSpec) -> bool:
    return spec.kind in _ROLE_KINDS[role] and (role != "risk_profile" or all(
        len(c) == 2 and c[0] == "C" and c[1] in "12345" for c in spec.categories))


def contract_of_models(model_features: Iterable[Iterable[FeatureSpec]], *,
                       reasons: dict[str, ReasonText] | None = None,
                       name: str = "derived") -> FeatureContract:
    """The contract that accepts exactly what these models read (each name once, first
    declaration wins, in order), with the default roles kept where such a feature exists
    and fits, null otherwise. For a registry filled before contracts were versioned, whose
    models do not fit the default contract."""
    specs: dict[str, FeatureSpec] = {}
    for features in model_features:
        for spec in features:
            specs.setdefault(spec.name, spec)
    roles = {role: (n if n is not None and n in specs and _role_fits(role, specs[n]) else None)
             for role, n in Roles().model_dump().items()}
    return FeatureContract(
        name=name, description="Derived from the models in production when the feature "
        "contract became a family: what they read, as they declare it.",
        roles=Roles(**roles),
        features=tuple(ContractFeature(**spec.model_dump(), reason=(reasons or {}).get(n))
                       for n, spec in specs.items()))


# ---------------------------------------------------------------- fitting models to contracts

_NUMERIC = frozenset({"number", "integer"})


def encoding_fits(model: FeatureSpec, contract: FeatureSpec) -> str | None:
    """Why the float a model was trained on differs from what the contract feature encodes
    to, or None when they agree.

    number and integer encode the same way; a category encodes as its index, so the model's
    categories must be the first ones of the contract's, in the same order (a contract may
    append categories, never reorder or drop them)."""
    if model.kind in _NUMERIC and contract.kind in _NUMERIC:
        return None
    if model.kind != contract.kind:
        return f"the model reads it as {model.kind}, the contract declares {contract.kind}"
    if model.kind == "category" and \
            tuple(contract.categories[: len(model.categories)]) != tuple(model.categories):
        return ("the model's categories " + ", ".join(model.categories)
                + " are not the first categories of the contract's ("
                + ", ".join(contract.categories) + ")")
    return None


def model_fits(contract: FeatureContract, model_features: Iterable[FeatureSpec],
               where: str = "features") -> list[FieldProblem]:
    """Every reason the model's features cannot be read from requests under `contract`."""
    problems: list[FieldProblem] = []
    for spec in model_features:
        declared = contract.feature(spec.name)
        if declared is None:
            problems.append(FieldProblem(
                f"{where}.{spec.name}",
                f"the model needs it and contract {contract.name!r} does not declare it "
                "(callers do not send it)"))
            continue
        if problem := encoding_fits(spec, declared):
            problems.append(FieldProblem(f"{where}.{spec.name}", problem))
    return problems


# ---------------------------------------------------------------- comparing contract versions


@dataclass(frozen=True)
class ContractChanges:
    """What a new contract version changes for callers, by kind."""

    breaking: list[str] = field(default_factory=list)
    additive: list[str] = field(default_factory=list)

    @property
    def is_breaking(self) -> bool:
        return bool(self.breaking)


def contract_changes(old: FeatureContract, new: FeatureContract) -> ContractChanges:
    """Compare what callers send under `old` with what `new` accepts.

    Breaking (a request valid today may be refused): a feature removed or renamed, its kind
    changed, a range narrowed, a category dropped or reordered, a nullable feature made
    required, a new required feature. Additive: new nullable features, wider ranges,
    appended categories, a required feature made nullable. Roles, descriptions and reason
    texts are neither (they change no request's validity)."""
    out = ContractChanges()
    olds = {f.name: f for f in old.features}
    news = {f.name: f for f in new.features}
    for name, o in olds.items():
        n = news.get(name)
        if n is None:
            out.breaking.append(f"{name}: removed (callers send it today)")
            continue
        _compare_feature(name, o, n, out)
    for name, n in news.items():
        if name not in olds:
            (out.additive if n.nullable else out.breaking).append(
                f"{name}: new {'optional' if n.nullable else 'required'} feature")
    return out


def _compare_feature(name: str, o: FeatureSpec, n: FeatureSpec, out: ContractChanges) -> None:
    if o.kind != n.kind and not (o.kind == "integer" and n.kind == "number"):
        out.breaking.append(f"{name}: kind {o.kind} → {n.kind}")
        return
    if o.kind == "integer" and n.kind == "number":
        out.additive.append(f"{name}: integer → number")
    lo_o, lo_n = _bound(o.minimum, -1), _bound(n.minimum, -1)
    hi_o, hi_n = _bound(o.maximum, 1), _bound(n.maximum, 1)
    if lo_n > lo_o or hi_n < hi_o:
        out.breaking.append(f"{name}: range narrowed from [{o.minimum}, {o.maximum}] to "
                            f"[{n.minimum}, {n.maximum}]")
    elif lo_n < lo_o or hi_n > hi_o:
        out.additive.append(f"{name}: range widened to [{n.minimum}, {n.maximum}]")
    if o.kind == "category":
        if tuple(n.categories[: len(o.categories)]) != tuple(o.categories):
            dropped = [c for c in o.categories if c not in n.categories]
            out.breaking.append(
                f"{name}: categories " + (f"dropped {', '.join(dropped)}" if dropped
                                          else "reordered"))
        elif len(n.categories) > len(o.categories):
            out.additive.append(f"{name}: categories added "
                                + ", ".join(n.categories[len(o.categories):]))
    if o.nullable and not n.nullable:
        out.breaking.append(f"{name}: now required (was optional)")
    elif n.nullable and not o.nullable:
        out.additive.append(f"{name}: now optional (was required)")


def _bound(value: float | None, sign: int) -> float:
    return value if value is not None else sign * float("inf")


def describe(changes: ContractChanges) -> Sequence[FieldProblem]:
    """The breaking changes as field problems (for a refusal)."""
    return [FieldProblem("features." + c.split(":", 1)[0], c.split(": ", 1)[1])
            for c in changes.breaking]
