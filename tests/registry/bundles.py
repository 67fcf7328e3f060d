"""Tiny but real bundles for registry tests: LightGBM boosters of a few trees, trained in ms."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import lightgbm as lgb
import numpy as np

from app.bundles.io import Bundle, build_bundle, to_archive, write_dir
from app.bundles.manifest import PlattCalibrator
from app.features.contract import DEFAULT_FEATURES
from app.features.family import CONTRACT_FILE, ContractFeature, FeatureContract, Roles
from app.features.schema import FeatureSchema
from app.training.bundling import config_bundle, model_bundle
from app.training.default_contract import contract_bundle

FEATURE_NAMES = ("age", "aum_total", "tenure_months", "risk_profile", "risk_assessment_age_days")
FEATURES = tuple(f for f in DEFAULT_FEATURES if f.name in FEATURE_NAMES)
SCHEMA = FeatureSchema(FEATURES)
PRODUCT_MODELS = ("money_market_fund", "equity_fund")
TIERS = ("mass", "affluent", "hnw", "private")

POLICY = {
    "tiers": [{"tier": t, "min_aum": m} for t, m in zip(TIERS, (0, 1e5, 1e6, 6e6), strict=True)],
    "churn_bands": [{"band": "low", "min_probability": 0.0},
                    {"band": "high", "min_probability": 0.3}],
    "default_top_n": 2,
    "challenger": {"mode": "off", "share": 0.0},
}
CATALOG = {
    "actions": [
        {"id": "money_market_fund", "name": "Money-market fund", "category": "money_market",
         "risk_level": "R1", "propensity_model": "money_market_fund", "value": 0.6},
        {"id": "equity_fund", "name": "Equity fund", "category": "fund", "risk_level": "R4",
         "propensity_model": "equity_fund", "value": 1.3},
        {"id": "retention_rm_call", "name": "RM call", "category": "retention",
         "kind": "retention", "value": 1.0,
         "eligibility": {"min_churn_probability": 0.3}},
    ],
}
_PARAMS = {"num_leaves": 4, "min_data_in_leaf": 5, "learning_rate": 0.3, "verbose": -1,
           "num_threads": 1, "deterministic": True, "seed": 1}


def small_contract(*extra: ContractFeature, name: str = "test") -> FeatureContract:
    """The test models' five features (no maturity role), plus `extra` features."""
    return FeatureContract(
        name=name, roles=Roles(days_to_next_maturity=None),
        features=(*(ContractFeature(**f.model_dump()) for f in FEATURES), *extra))


@cache
def features_bundle(*extra: ContractFeature, name: str = "test") -> Bundle:
    """A features bundle of small_contract(*extra)."""
    return contract_bundle(small_contract(*extra, name=name),
                           label=f"test features {name} {len(extra)}")


def example_features(rng: np.random.Generator | None = None) -> dict[str, object]:
    """One valid customer for these models."""
    rng = rng or np.random.default_rng(0)
    return {"age": int(rng.integers(18, 90)), "aum_total": float(rng.uniform(0, 3e6)),
            "tenure_months": int(rng.integers(0, 300)),
            "risk_profile": str(rng.choice(["C1", "C2", "C3", "C4", "C5"])),
            "risk_assessment_age_days": int(rng.integers(0, 700))}


@cache
def _data(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = SCHEMA.matrix([example_features(rng) for _ in range(200)])
    return x, rng.random(len(x))


def _train(x: np.ndarray, y: np.ndarray, rounds: int, **params: object) -> lgb.Booster:
    data = lgb.Dataset(x, y, feature_name=list(SCHEMA.names), free_raw_data=False)
    return lgb.train({**_PARAMS, **params}, data, num_boost_round=rounds)


@cache
def tier_bundle(seed: int = 0) -> Bundle:
    """A 4-class tier bundle."""
    x, _ = _data(seed)
    y = np.digitize(x[:, SCHEMA.index["aum_total"]], [1e5, 1e6, 2e6])
    booster = _train(x, y, 2, objective="multiclass", num_class=4)
    return model_bundle(family="tier", boosters={"tier": booster}, features=FEATURES,
                        reference_x=x, classes=TIERS, label=f"test tier {seed}")


@cache
def churn_bundle(seed: int = 0) -> Bundle:
    """A churn bundle; each seed gives a different model (and sha256)."""
    x, noise = _data(seed)
    y = ((x[:, SCHEMA.index["tenure_months"]] < 60) ^ (noise < 0.2)).astype(float)
    booster = _train(x, y, 3, objective="binary")
    return model_bundle(family="churn", boosters={"churn": booster}, features=FEATURES,
                        reference_x=x, calibrator=PlattCalibrator(a=-1.0, b=0.0),
                        label=f"test churn {seed}", metrics={"auc": 0.5 + seed / 100})


@cache
def products_bundle(seed: int = 0, models: tuple[str, ...] = PRODUCT_MODELS) -> Bundle:
    """One binary model per product action."""
    x, noise = _data(seed)
    boosters = {
        name: _train(x, (noise < 0.3 + 0.1 * i).astype(float), 2, objective="binary")
        for i, name in enumerate(models)
    }
    return model_bundle(family="products", boosters=boosters, features=FEATURES,
                        reference_x=x, label=f"test products {seed}")


@cache
def catalog_bundle(extra_model: str | None = None) -> Bundle:
    """The test catalogue; `extra_model` adds an action naming that propensity model."""
    doc = {"actions": list(CATALOG["actions"])}
    if extra_model:
        doc["actions"].append({"id": extra_model, "name": extra_model, "category": "fund",
                               "risk_level": "R2", "propensity_model": extra_model,
                               "value": 1.0})
    return config_bundle(family="catalog", document=doc, label=f"test catalog {extra_model}")


@cache
def policy_bundle(mode: str = "off", share: float = 0.0) -> Bundle:
    """The test policy with a challenger setting."""
    doc = {**POLICY, "challenger": {"mode": mode, "share": share}}
    return config_bundle(family="policy", document=doc, label=f"test policy {mode} {share}")


def default_set() -> dict[str, Bundle]:
    """Version 1 of every family."""
    return {"features": features_bundle(), "tier": tier_bundle(), "churn": churn_bundle(),
            "products": products_bundle(), "catalog": catalog_bundle(),
            "policy": policy_bundle()}


def write_models_dir(path: Path) -> Path:
    """A models/ directory holding the default test set, as the seeder expects it."""
    for family, bundle in default_set().items():
        write_dir(bundle, path / family)
    return path


def archive(bundle: Bundle) -> bytes:
    """The bundle as upload bytes."""
    return to_archive(bundle)


APP_RATING = ContractFeature(
    name="app_rating", kind="number", minimum=0, maximum=5, nullable=True, unit="stars",
    description="The customer's last rating of the mobile app.", example=4.0)


def with_contract(bundle: Bundle, contract: Bundle | None) -> Bundle:
    """`bundle` with manifest.contract naming `contract` (None: no reference)."""
    fields = json.loads(bundle.manifest_bytes)
    fields.pop("files")
    fields.pop("contract", None)
    if contract is not None:
        fields["contract"] = {"name": contract.json(CONTRACT_FILE)["name"],
                              "sha256": contract.sha256}
    return build_bundle(fields, bundle.files)


@cache
def rating_churn_bundle(seed: int = 7) -> Bundle:
    """A churn model that reads the five test features plus `app_rating` (low rating →
    churn), with no contract reference."""
    rng = np.random.default_rng(seed)
    features = (*FEATURES, APP_RATING.spec())
    schema = FeatureSchema(features)
    rows = [{**example_features(rng), "app_rating": float(rng.uniform(0, 5))}
            for _ in range(300)]
    x = schema.matrix(rows)
    y = (x[:, schema.index["app_rating"]] < 2.5).astype(float)
    data = lgb.Dataset(x, y, feature_name=list(schema.names), free_raw_data=False)
    booster = lgb.train({**_PARAMS, "objective": "binary"}, data, num_boost_round=5)
    return model_bundle(family="churn", boosters={"churn": booster}, features=features,
                        reference_x=x, calibrator=PlattCalibrator(a=-1.0, b=0.0),
                        label=f"churn reading app_rating {seed}")
