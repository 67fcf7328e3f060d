"""The immutable scoring context: one consistent set of model versions, ready to score.

A replica holds exactly one live context; a registry change builds a new one in the
background, verifies it, and swaps a single reference (app/registry/live.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.bundles.io import Bundle
from app.bundles.manifest import FAMILIES, PlattCalibrator
from app.decisions.catalog import Catalog, condition_features
from app.decisions.policy import Policy
from app.decisions.prepared import prepare
from app.engine.evaluate import BoosterEvaluator, Evaluator, ModelLayout
from app.errors import BundleRejected, FieldProblem
from app.features.family import FeatureContract, Roles, model_fits
from app.features.schema import FeatureSchema
from app.scoring.families import ChurnFamily, ProductFamily, TierFamily
from app.scoring.loader import Family, load_family
from app.scoring.wealth import WealthTiers


@dataclass(frozen=True, slots=True)
class VersionRef:
    """Which version of a family decided: number in the registry and bundle sha256."""

    family: str
    version: int
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"version": self.version, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class ContextConstants:
    """Per-context values the scoring hot path needs, derived once at build time."""

    aum_col: int | None  # None: the contract has no aum role (no booked tier)
    tier_thresholds: tuple[float, ...]
    band_thresholds: tuple[float, ...]
    tier_names: tuple[str, ...]
    classes: tuple[str, ...]
    band_names: tuple[str, ...]
    product_names: tuple[str, ...]
    product_sigmoid: np.ndarray
    # One row's link functions in plain floats (pipeline._single_row): whether the models
    # allow it (multiclass tier, binary churn with no or a Platt calibrator), and the factors.
    single_row_links: bool
    product_neg_sigmoid: tuple[float, ...]
    churn_neg_sigmoid: float
    churn_platt: tuple[float, float] | None
    # A wallet-wealth tier model: its residual CDF read against this policy's thresholds
    # (None for a legacy multiclass tier model, whose classes are the policy's tiers).
    wealth: WealthTiers | None = None

    @classmethod
    def of(cls, ctx: ScoringContext) -> ContextConstants:
        sigmoid = np.array([m.sigmoid for m in ctx.layout.products])
        calibrator = ctx.churn.calibrator
        platt = isinstance(calibrator, PlattCalibrator)
        return cls(
            aum_col=ctx.schema.index[ctx.roles.aum] if ctx.roles.aum else None,
            tier_thresholds=tuple(float(t.min_aum) for t in ctx.policy.tiers),
            band_thresholds=tuple(float(b.min_probability) for b in ctx.policy.churn_bands),
            tier_names=tuple(ctx.policy.tier_names),
            classes=tuple(ctx.tier.classes) if ctx.tier.wealth is None
            else tuple(ctx.policy.tier_names),
            band_names=tuple(b.band for b in ctx.policy.churn_bands),
            product_names=ctx.layout.product_names,
            product_sigmoid=sigmoid,
            single_row_links=(ctx.tier.model.objective != "binary"
                              and ctx.churn.model.objective == "binary"
                              and (calibrator is None or platt)),
            product_neg_sigmoid=tuple(-s for s in sigmoid.tolist()),
            churn_neg_sigmoid=-ctx.churn.model.sigmoid,
            churn_platt=(calibrator.a, calibrator.b) if isinstance(calibrator, PlattCalibrator)
            else None,
            wealth=None if ctx.tier.wealth is None
            else WealthTiers.of(ctx.tier.wealth, [t.min_aum for t in ctx.policy.tiers]),
        )


@dataclass
class ScoringContext:
    """Every family needed to score, plus the derived lookups built once at load time.

    `schema` is the live contract's (every feature callers may send, in contract order);
    `roles` says which contract feature plays each part the decisions read."""

    contract: FeatureContract
    tier: TierFamily
    churn: ChurnFamily
    products: ProductFamily
    catalog: Catalog
    policy: Policy
    versions: dict[str, VersionRef]
    schema: FeatureSchema = field(init=False)
    roles: Roles = field(init=False)
    layout: ModelLayout = field(init=False)
    evaluator: Evaluator = field(init=False)
    _required_all: frozenset[str] = field(init=False)
    # (signer, alias) → the decision-id stamp of this context (pipeline.py), built once.
    decision_stamps: dict[tuple[object, str], Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.schema = self.contract.schema()
        self.roles = self.contract.roles
        self._required_all = frozenset(s.name for s in self.schema.specs if not s.nullable)
        self.layout = ModelLayout(
            schema=self.schema,
            tier=self.tier.model,
            churn=self.churn.model,
            products=tuple(self.products.models.values()),
        )
        self._check_consistency()
        self.evaluator = BoosterEvaluator(self.layout)
        self.tier_thresholds = np.array([t.min_aum for t in self.policy.tiers])
        self.band_thresholds = np.array([b.min_probability for b in self.policy.churn_bands])
        self.tier_rank = {name: i for i, name in enumerate(self.policy.tier_names)}
        self.models_served = {f: v.as_dict() for f, v in self.versions.items()}
        self.constants = ContextConstants.of(self)
        # arbitration's flat form under the contract's roles, built once
        self.prepared_catalog = prepare(self.catalog, self.roles)

    def _check_consistency(self) -> None:
        problems: list[FieldProblem] = []
        if self.tier.wealth is None and tuple(self.tier.classes) != self.policy.tier_names:
            problems.append(FieldProblem(
                "tier.classes",
                f"tier model classes {list(self.tier.classes)} differ from policy tiers "
                f"{list(self.policy.tier_names)}",
            ))
        for family, features in (("tier", self.tier.features), ("churn", self.churn.features),
                                 ("products", self.products.features)):
            problems += [
                FieldProblem(f"{family}.{p.field}", p.problem + (
                    "; promote a contract (features version) that declares it first, or "
                    "with this model in one call" if "does not declare" in p.problem else ""))
                for p in model_fits(self.contract, features)]
        for name, where in condition_features(self.catalog).items():
            if name not in self.schema.index:
                problems.append(FieldProblem(
                    where, f"{name!r} is not a feature of contract {self.contract.name!r}"))
        known = set(self.products.models)
        for action in self.catalog.actions:
            if action.propensity_model and action.propensity_model not in known:
                problems.append(FieldProblem(
                    f"catalog.actions.{action.id}.propensity_model",
                    f"no product model named {action.propensity_model}",
                ))
        if problems:
            raise BundleRejected("these versions do not fit together", problems)

    def use_evaluator(self, evaluator: Evaluator) -> None:
        """Swap in a faster evaluator once it has been built and checked."""
        self.evaluator = evaluator

    def required_for(self, parts: frozenset[str]) -> frozenset[str]:
        """The features a request must send: the contract's non-nullable ones, whichever
        parts it asks for (the contract, not the models, is what callers send)."""
        return self._required_all

    @property
    def num_trees(self) -> dict[str, int]:
        return {m.name: m.num_trees for m in self.layout.all_models()}


def build_context(bundles: Mapping[str, Bundle], versions: Mapping[str, int]) -> ScoringContext:
    """Load, verify and assemble one context from a bundle per family."""
    if missing := [f for f in FAMILIES if f not in bundles]:
        raise BundleRejected(
            "a scoring context needs every family",
            [FieldProblem(f, "no version available") for f in missing],
        )
    loaded = {f: load_family(bundles[f]) for f in FAMILIES}
    refs = {
        f: VersionRef(family=f, version=int(versions.get(f, 0)), sha256=bundles[f].sha256)
        for f in FAMILIES
    }
    return assemble_context(loaded, refs)


def assemble_context(loaded: Mapping[str, Family], refs: Mapping[str, VersionRef]
                     ) -> ScoringContext:
    """One context from families already loaded and verified by load_family (a replica
    reuses the family objects of versions that did not change, app/registry/builder.py)."""
    if missing := [f for f in FAMILIES if f not in loaded]:
        raise BundleRejected(
            "a scoring context needs every family",
            [FieldProblem(f, "no version available") for f in missing],
        )
    for family, expected in (("features", FeatureContract), ("tier", TierFamily),
                             ("churn", ChurnFamily),
                             ("products", ProductFamily), ("catalog", Catalog),
                             ("policy", Policy)):
        if not isinstance(loaded[family], expected):
            raise BundleRejected("wrong family", [FieldProblem(family, "bundle of another family")])
    return ScoringContext(
        contract=loaded["features"],  # type: ignore[arg-type]
        tier=loaded["tier"],  # type: ignore[arg-type]
        churn=loaded["churn"],  # type: ignore[arg-type]
        products=loaded["products"],  # type: ignore[arg-type]
        catalog=loaded["catalog"],  # type: ignore[arg-type]
        policy=loaded["policy"],  # type: ignore[arg-type]
        versions={f: refs[f] for f in FAMILIES},
    )


def families_of(ctx: ScoringContext) -> dict[str, Family]:
    """family name → the loaded family object a context holds."""
    return {"features": ctx.contract, "tier": ctx.tier, "churn": ctx.churn,
            "products": ctx.products, "catalog": ctx.catalog, "policy": ctx.policy}
