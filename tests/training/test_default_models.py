"""The shipped default bundles in models/, judged on a fresh synthetic book they never saw."""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from app.bundles.io import Bundle, read_dir
from app.config import PROJECT_ROOT
from app.decisions.catalog import Catalog
from app.features.schema import FeatureSchema
from app.scoring.families import ChurnFamily, ProductFamily, TierFamily
from app.scoring.loader import family_outputs, load_family
from app.scoring.wealth import WealthTiers
from app.training.dataset import encode_book
from app.training.default_config import default_policy
from app.training.default_models import CREATED_AT, SEED
from app.training.metrics import (
    auc,
    class_prediction_metrics,
    expected_calibration_error,
    multiclass_metrics,
)
from app.training.synth import PRODUCTS, WALLET_TIERS, generate_book

MODELS = PROJECT_ROOT / "models"
FRESH_SEED = 7  # not the training seed
FRESH_ROWS = 50_000


@pytest.fixture(scope="module")
def fresh_book() -> dict[str, np.ndarray]:
    assert FRESH_SEED != SEED
    return generate_book(FRESH_ROWS, FRESH_SEED)


@cache
def _load(family: str) -> tuple[Bundle, object]:
    bundle = read_dir(MODELS / family)
    return bundle, load_family(bundle)


def _outputs(family, book) -> dict[str, np.ndarray]:
    schema = FeatureSchema(family.features)
    return family_outputs(family, encode_book(book, schema.specs), schema)


def test_default_churn_is_accurate_and_calibrated_on_fresh_customers(fresh_book):
    _, family = _load("churn")
    assert isinstance(family, ChurnFamily) and family.calibrator is not None
    p = _outputs(family, fresh_book)["probability"]
    y = fresh_book["churn_90d"].astype(float)
    assert auc(y, p) >= 0.80
    assert expected_calibration_error(y, p) <= 0.03
    assert abs(p.mean() - y.mean()) < 0.01  # budgets sized on these probabilities add up


def test_default_tier_beats_trivial_baselines_on_fresh_customers(fresh_book):
    _, family = _load("tier")
    assert isinstance(family, TierFamily)
    index = {t: i for i, t in enumerate(WALLET_TIERS)}
    y = np.array([index[t] for t in fresh_book["wallet_tier"]])
    majority = class_prediction_metrics(y, np.full(len(y), np.bincount(y).argmax()), WALLET_TIERS)
    if family.wealth is not None:  # wallet wealth, read against the default thresholds
        policy = default_policy()
        assert policy.tier_names == WALLET_TIERS
        aum = fresh_book["aum_total"]
        probs, wealth = WealthTiers.of(family.wealth, [t.min_aum for t in policy.tiers]).many(
            _outputs(family, fresh_book)["mu"], aum)
        pred = np.argmax(np.asarray(probs), axis=1)
        booked = np.searchsorted([t.min_aum for t in policy.tiers], aum, side="right") - 1
        assert (pred >= booked).all() and (np.asarray(wealth) >= aum).all()
        model = class_prediction_metrics(y, pred, WALLET_TIERS)
        from_aum = class_prediction_metrics(y, booked, WALLET_TIERS)
        assert model["macro_f1"] > from_aum["macro_f1"] + 0.1
    else:
        assert family.classes == WALLET_TIERS
        model = multiclass_metrics(y, _outputs(family, fresh_book)["probabilities"],
                                   WALLET_TIERS)
    assert model["macro_f1"] > majority["macro_f1"] + 0.3
    assert model["accuracy"] > majority["accuracy"]


def test_default_products_beat_chance_for_every_product(fresh_book):
    _, family = _load("products")
    assert isinstance(family, ProductFamily) and set(family.models) == set(PRODUCTS)
    out = _outputs(family, fresh_book)
    for product in PRODUCTS:
        y = fresh_book[f"bought_{product}"].astype(float)
        assert auc(y, out[product]) > 0.6, product


def test_every_default_bundle_loads_and_is_small():
    for family in ("tier", "churn", "products", "catalog", "policy"):
        bundle, _ = _load(family)
        assert bundle.manifest.created_at == CREATED_AT
        size = len(bundle.manifest_bytes) + sum(len(d) for d in bundle.files.values())
        assert size < 6 * 1024 * 1024, f"{family} bundle is {size} bytes"


def test_the_catalogue_points_at_product_models_that_exist():
    _, catalog = _load("catalog")
    _, products = _load("products")
    assert isinstance(catalog, Catalog) and isinstance(products, ProductFamily)
    wanted = {a.propensity_model for a in catalog.actions if a.propensity_model}
    assert wanted <= set(products.models)


def test_manifests_record_their_metrics_and_training_data():
    tier, _ = _load("tier")
    churn, _ = _load("churn")
    products, _ = _load("products")
    if tier.manifest.wealth is not None:  # as many trees as cross-validation chose
        assert tier.manifest.metrics["trees"] == tier.manifest.metrics["cv"]["trees"]
    else:
        assert tier.manifest.metrics["trees"] == 150 * len(WALLET_TIERS)
    # churn: the refit has as many trees as cross-validation chose, within the cap
    assert churn.manifest.metrics["trees"] == churn.manifest.metrics["cv"]["trees"] <= 300
    assert products.manifest.metrics["trees"] == 120 * len(PRODUCTS)
    for bundle in (tier, churn, products):
        assert bundle.manifest.training_data["seed"] == SEED
        assert bundle.manifest.training_data["rows"] == 200_000
    assert churn.manifest.metrics["calibrated"]["ece"] <= churn.manifest.metrics[
        "uncalibrated"]["ece"] + 0.005
