"""Native tree attributions equal LightGBM's pred_contrib, and fall back to it when they cannot."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from app.config import PROJECT_ROOT
from app.engine import attributions as attr
from app.engine import native
from app.engine.attributions import (
    BoosterAttributions,
    NativeAttributions,
    attributions_for,
    forget_kept,
    max_difference,
)
from app.engine.compiled import probe_rows
from app.engine.evaluate import ModelLayout
from app.engine.flatten import flatten
from app.engine.native import BuildError
from app.engine.trees import TreeModel
from tests.engine.test_compiled import SCHEMA, _data, _signal, _train, layout  # noqa: F401
from tests.support.engine import warm_cache

TOL = 1e-9


@pytest.fixture(scope="module")
def cache(walker_library: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A warm compile cache: the attributions are in the walker's library, compiled once."""
    directory = tmp_path_factory.mktemp("shap")
    warm_cache(walker_library, directory)
    return directory


@pytest.fixture(scope="module")
def rows(layout: ModelLayout) -> np.ndarray:  # noqa: F811
    """The walker's fuzz corpus: NaN, zeros, tiny and huge values, odd category codes, and
    values at and next to every split threshold."""
    return probe_rows(SCHEMA, 3000, seed=21, thresholds=flatten(layout).thresholds)


def _native(model: TreeModel, cache: Path, columns: np.ndarray | None = None) -> NativeAttributions:
    cols = SCHEMA.columns(model.feature_names) if columns is None else columns
    return NativeAttributions(model, cols, len(SCHEMA), cache_dir=cache)


def _reference(model: TreeModel) -> BoosterAttributions:
    return BoosterAttributions(model, SCHEMA.columns(model.feature_names))


def test_equal_to_pred_contrib_on_the_fuzz_corpus(layout: ModelLayout, rows: np.ndarray,  # noqa: F811
                                                  cache: Path) -> None:
    for model in layout.all_models():  # multiclass, binary, categorical, missing kinds, stumps
        got = _native(model, cache).contributions(rows)
        want = _reference(model).contributions(rows)
        assert got.shape == (len(rows), model.num_class * (len(model.feature_names) + 1))
        assert max_difference(got, want) <= TOL, model.name
        # Single rows and chosen rows give the same values as the batch.
        fast = _native(model, cache)
        for i in range(0, 40, 7):
            assert max_difference(fast.contributions(rows[i:i + 1]), want[i:i + 1]) <= TOL
        # Fewer than 4 rows take the single-row kernel, more the 4-lane one in chunks of 64
        # rows (the last block padded): the same values either way.
        for pick in (np.array([5, 3, 3, 2999, 0]), np.arange(2990, 2960, -1)):
            assert max_difference(fast.contributions(rows, pick), got[pick]) <= TOL
        for n in (3, 4, 5, 63, 64, 65, 70):
            assert max_difference(fast.contributions(rows[:n]), want[:n]) <= TOL


def test_values_add_up_to_the_raw_score(layout: ModelLayout, rows: np.ndarray,  # noqa: F811
                                        cache: Path) -> None:
    model = layout.tier
    assert model is not None and model.num_class == 3
    phi = _native(model, cache).contributions(rows).reshape(len(rows), 3, -1)
    raw = model.predict_raw(rows[:, SCHEMA.columns(model.feature_names)])
    assert np.abs(phi.sum(axis=2) - raw).max() < 1e-9


def test_regression_models(cache: Path) -> None:
    x = _data(2000, seed=8)
    names = list(SCHEMA.names)
    params = {"objective": "regression", "num_leaves": 31, "min_data_in_leaf": 5,
              "verbosity": -1, "num_threads": 1, "seed": 1, "deterministic": True,
              "learning_rate": 0.2}
    y = _signal(x, seed=9) * 3
    booster = lgb.train(params, lgb.Dataset(x, label=y, feature_name=names,
                                            categorical_feature=[4, 5], params=params),
                        num_boost_round=20)
    text = booster.model_to_string()
    # The trees are the same whatever the link; the text checker may not know "regression"
    # yet, so the engine reads it as a raw-score model.
    readable = "\n".join("objective=binary sigmoid:1" if line.startswith("objective=") else line
                         for line in text.splitlines()) + "\n"
    model = TreeModel(name="wealth", booster=booster, feature_names=tuple(names),
                      objective="regression", num_class=1, sigmoid=1.0, text=readable)
    p = probe_rows(SCHEMA, 2000, seed=10)
    got = _native(model, cache).contributions(p)
    want = np.asarray(booster.predict(p, pred_contrib=True))
    assert max_difference(got, want) <= TOL


def test_a_permuted_subset_of_columns(layout: ModelLayout, rows: np.ndarray,  # noqa: F811
                                      cache: Path) -> None:
    subset = next(m for m in layout.products if m.name == "subset")
    wide = np.column_stack([rows, np.full(len(rows), 7.0)])  # an extra column nobody reads
    fast = NativeAttributions(subset, SCHEMA.columns(subset.feature_names), len(SCHEMA) + 1,
                              cache_dir=cache)
    assert max_difference(fast.contributions(wide), _reference(subset).contributions(rows)) <= TOL


def test_bad_calls(layout: ModelLayout, rows: np.ndarray, cache: Path) -> None:  # noqa: F811
    assert layout.churn is not None
    fast = _native(layout.churn, cache)
    with pytest.raises(ValueError, match="shape"):
        fast.contributions(rows[:, :3])
    with pytest.raises(IndexError):
        fast.contributions(rows, np.array([0, len(rows)]))
    with pytest.raises(IndexError):
        fast.contributions(rows, np.array([-1]))
    assert fast.contributions(rows[:0]).shape == (0, len(layout.churn.feature_names) + 1)
    ro = rows[:10].copy()
    ro.flags.writeable = False
    assert np.array_equal(fast.contributions(ro), fast.contributions(rows[:10]))
    assert np.array_equal(fast.contributions(np.asfortranarray(rows[:10])),
                          fast.contributions(rows[:10]))


@pytest.mark.parametrize("damage", ["anc_forward", "sub_below", "col_out", "right_back", "z_zero"])
def test_bad_arrays_are_refused(layout: ModelLayout, cache: Path,  # noqa: F811
                                monkeypatch: pytest.MonkeyPatch, damage: str) -> None:
    assert layout.churn is not None
    real = attr._Flat.__init__

    def damaged(self: attr._Flat, *a: object, **kw: object) -> None:
        real(self, *a, **kw)  # type: ignore[arg-type]
        n = self.nodes
        inner = np.flatnonzero(n["right"] > 0)
        i = int(inner[3])
        if damage == "anc_forward":
            n["anc"][i] = i + 1
        elif damage == "sub_below":
            n["sub"][i] = i + 1
        elif damage == "col_out":
            n["col"][i] = 999
        elif damage == "right_back":
            n["right"][i] = i
        else:
            n["z"][i + 1] = 0.0

    monkeypatch.setattr(attr._Flat, "__init__", damaged)
    with pytest.raises(BuildError, match="refused"):
        _native(layout.churn, cache)


def test_fallbacks(layout: ModelLayout, rows: np.ndarray, cache: Path,  # noqa: F811
                   monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(native, "_warned", set())
    churn = layout.churn
    assert churn is not None
    cols = SCHEMA.columns(churn.feature_names)
    probe = rows[:200]
    assert isinstance(attributions_for(churn, cols, probe, cache_dir=cache), NativeAttributions)
    # No compiler and no library built with it: pred_contrib.
    with caplog.at_level(logging.WARNING, logger="tierwise.scoring"):
        got = attributions_for(churn, cols, probe, cache_dir=cache / "empty", cc="no-such-cc")
    assert isinstance(got, BoosterAttributions)
    assert "pred_contrib" in caplog.text
    # A model with a zero data count (pred_contrib divides by it): pred_contrib.
    text = re.sub(r"^leaf_count=\S+", "leaf_count=0", churn.text, count=1, flags=re.M)
    assert text != churn.text
    zero = TreeModel(name="zero", booster=churn.booster, feature_names=churn.feature_names,
                     objective="binary", num_class=1, sigmoid=1.0, text=text)
    assert isinstance(attributions_for(zero, cols, probe, cache_dir=cache), BoosterAttributions)
    # The same model, layout and probe again: the checked object kept for the process.
    assert attributions_for(churn, cols, probe, cache_dir=cache) is attributions_for(
        churn, cols, probe, cache_dir=cache)
    # A native result that differs from pred_contrib never serves (checked anew).
    forget_kept()
    monkeypatch.setattr(NativeAttributions, "contributions",
                        lambda self, x, rows=None: np.zeros((len(x), self.nout)))
    assert isinstance(attributions_for(churn, cols, probe, cache_dir=cache), BoosterAttributions)
    forget_kept()  # what this test made up is not kept for the next ones


MODELS = PROJECT_ROOT / "models"


@pytest.mark.skipif(not (MODELS / "churn" / "churn.txt").is_file(), reason="no default bundles")
def test_default_models(cache: Path) -> None:
    for path in (MODELS / "churn" / "churn.txt", MODELS / "products" / "credit_card.txt"):
        model = TreeModel.from_text(path.stem, path.read_text(encoding="utf-8"))
        n = len(model.feature_names)
        cols = np.arange(n)
        rng = np.random.default_rng(3)
        p = rng.normal(0, 1, (300, n)) * rng.choice([1, 10, 1e4], (300, n))
        p[rng.random(p.shape) < 0.1] = np.nan
        p[rng.random(p.shape) < 0.1] = 0.0
        got = NativeAttributions(model, cols, n, cache_dir=cache).contributions(p)
        want = BoosterAttributions(model, cols).contributions(p)
        assert max_difference(got, want) <= TOL
