"""Training on a small synthetic book: encoding parity, bundles that load, metrics, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.bundles.manifest import IsotonicCalibrator, PlattCalibrator
from app.features.contract import DEFAULT_FEATURE_NAMES, DEFAULT_FEATURES
from app.features.schema import FeatureSchema
from app.scoring.families import ChurnFamily, ProductFamily, TierFamily, calibrate
from app.scoring.loader import load_family
from app.training.calibration import choose_calibrator, fit_isotonic, fit_platt
from app.training.dataset import TrainingDataError, encode_book, split_rows
from app.training.metrics import expected_calibration_error, precision_at_k
from app.training.reasons import default_reason_codes
from app.training.synth import PRODUCTS, WALLET_TIERS, generate_book
from app.training.train import train_churn, train_products, train_tier

N = 20_000


@pytest.fixture(scope="module")
def book() -> dict[str, np.ndarray]:
    return generate_book(N, seed=5)


def _named_rows(book: dict[str, np.ndarray], rows: range) -> list[dict[str, object]]:
    """Rows as a caller sends them: Python values, None (or absent) where missing."""
    out = []
    for i in rows:
        row: dict[str, object] = {}
        for spec in DEFAULT_FEATURES:
            v = book[spec.name][i]
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            if spec.kind == "boolean":
                row[spec.name] = bool(v)
            elif spec.kind == "integer":
                row[spec.name] = int(v)
            elif spec.kind == "number":
                row[spec.name] = float(v)
            else:
                row[spec.name] = v
        out.append(row)
    return out


def test_column_encoding_gives_the_same_floats_as_the_serving_schema(book):
    x = encode_book(book, DEFAULT_FEATURES)
    served = FeatureSchema(DEFAULT_FEATURES).matrix(_named_rows(book, range(2_000)))
    np.testing.assert_array_equal(x[:2_000], served)  # NaN == NaN for assert_array_equal
    assert np.isnan(x).any(), "the book should exercise missing values"


def test_encoding_names_the_column_with_an_unknown_category(book):
    bad = dict(book)
    bad["risk_profile"] = np.array(["C9"] * N, dtype=object)
    with pytest.raises(TrainingDataError, match="risk_profile"):
        encode_book(bad, DEFAULT_FEATURES)


def test_split_is_deterministic_and_disjoint():
    a, b = split_rows(1_000, 3, calibration=0.15), split_rows(1_000, 3, calibration=0.15)
    np.testing.assert_array_equal(a.test, b.test)
    every = np.concatenate([a.train, a.calibration, a.test])
    assert sorted(every.tolist()) == list(range(1_000))
    assert a.sizes() == {"train": 650, "calibration": 150, "test": 200}


def test_small_churn_training_gives_a_loadable_calibrated_bundle(book):
    bundle = train_churn(book, 1, rounds=40, created_at="2026-01-01T00:00:00+00:00")
    family = load_family(bundle)
    assert isinstance(family, ChurnFamily)
    m = bundle.manifest
    assert m.calibrator is not None and m.metrics["calibration"]["chosen"] == m.calibrator.method
    assert m.metrics["trees"] == 40
    for key in ("auc", "log_loss", "brier", "ece"):
        assert m.metrics["uncalibrated"][key] is not None
        assert m.metrics["calibrated"][key] is not None
    assert m.metrics["calibrated"]["auc"] > 0.75
    assert set(m.metrics["calibration"]["on_test"]) == {"isotonic", "platt"}
    assert m.training_data["rows"] == N and m.training_data["seed"] == 1
    assert sum(m.training_data["split"].values()) == N
    assert set(m.reason_codes) == set(DEFAULT_FEATURE_NAMES)
    assert [f.name for f in m.features] == list(DEFAULT_FEATURE_NAMES)
    assert len(m.reference_rows) == 8


def test_training_twice_gives_identical_bytes(book):
    kwargs = {"rounds": 8, "created_at": "2026-01-01T00:00:00+00:00"}
    first, second = train_churn(book, 2, **kwargs), train_churn(book, 2, **kwargs)
    assert first.manifest_bytes == second.manifest_bytes
    assert first.files == second.files


def test_small_tier_training_beats_the_majority_class(book):
    bundle = train_tier(book, 1, rounds=25)
    family = load_family(bundle)
    assert isinstance(family, TierFamily) and family.classes == WALLET_TIERS
    m = bundle.manifest.metrics
    assert m["trees"] == 25 * len(WALLET_TIERS)
    assert set(m["model"]["per_class"]) == set(WALLET_TIERS)
    assert m["model"]["macro_f1"] > m["baselines"]["majority_class"]["macro_f1"]
    assert m["model"]["log_loss"] < m["baselines"]["majority_class"]["log_loss"]


def test_small_product_training_has_one_model_per_product(book):
    bundle = train_products(book, 1, rounds=10)
    family = load_family(bundle)
    assert isinstance(family, ProductFamily)
    assert set(family.models) == set(PRODUCTS)
    m = bundle.manifest.metrics
    assert m["trees"] == 10 * len(PRODUCTS)
    for product in PRODUCTS:
        assert m["products"][product]["auc"] > 0.5
        assert m["products"][product]["precision_at_top"] is not None


def test_every_default_feature_has_a_readable_reason():
    codes = default_reason_codes()
    assert set(codes) == set(DEFAULT_FEATURE_NAMES)
    assert codes["balance_trend_90d"].format == "percent"
    assert codes["balance_trend_90d"].up.format(value="45%") == "balance down 45% in 90 days"
    for code in codes.values():
        code.up.format(value="x")
        code.down.format(value="x")


def test_expected_calibration_error():
    y = np.array([0, 0, 1, 1, 0, 1, 1, 1, 1, 1], dtype=float)
    p = np.array([0.05] * 2 + [0.95] * 8)
    # bin 0: 2 rows, mean p 0.05, observed 0; bin 9: 8 rows, mean p 0.95, observed 7/8.
    assert expected_calibration_error(y, p) == pytest.approx(0.05 * 0.2 + 0.075 * 0.8)
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0


def test_precision_at_k_takes_the_top_scores():
    y = np.array([1, 0, 0, 0, 1, 0, 0, 0, 0, 0] * 10, dtype=float)
    score = np.arange(100, dtype=float)[::-1]  # the first rows score highest
    assert precision_at_k(y, score, share=0.05) == pytest.approx(2 / 5)


def test_calibrators_are_valid_manifest_objects():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=4_000)
    y = (rng.random(4_000) < 1 / (1 + np.exp(-(2 * raw - 1)))).astype(float)
    p = 1 / (1 + np.exp(-raw))
    iso, platt = fit_isotonic(p, y), fit_platt(raw, y)
    assert isinstance(iso, IsotonicCalibrator) and isinstance(platt, PlattCalibrator)
    assert platt.a == pytest.approx(-2, abs=0.2) and platt.b == pytest.approx(1, abs=0.2)
    chosen, report = choose_calibrator(raw, p, y, seed=0)
    assert report["chosen"] == chosen.method
    out = calibrate(chosen, raw, p)
    assert ((out > 0) & (out < 1)).all()
