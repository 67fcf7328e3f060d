"""A regression (L2, identity link) tier model: accepted by the strict checker, served by the
walker with exactly Booster.predict(raw_score=True)'s scores, every kernel, batch and single."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from app.engine.compiled import fastest_evaluator, max_difference, probe_rows
from app.engine.evaluate import BoosterEvaluator, ModelLayout
from app.engine.model_text import ModelTextError, check_model
from app.engine.trees import TreeModel
from app.engine.walker import TreeWalkEvaluator
from tests.engine.test_compiled import SCHEMA, _data, _few, _kernels, _signal, _train
from tests.support.engine import use_isa, warm_cache

ALL = {"tier": True, "churn": True, "products": True}


@pytest.fixture(scope="module")
def layout() -> ModelLayout:
    x = _data(3000, seed=81)
    names = list(SCHEMA.names)
    s = _signal(x, seed=82)
    wealth = _train("tier", x, 11 + 1.5 * s, names, "regression", rounds=40, num_leaves=48)
    churn = _train("churn", x, (s > np.median(s)).astype(int), names, "binary")
    perm = ["ratio", "segment", "amount"]
    other = _train("other", x[:, SCHEMA.columns(perm)], s, perm, "regression", rounds=5,
                   zero_as_missing=True)
    stump = _train("stump", x, s, names, "regression", rounds=3, min_gain_to_split=1e12)
    assert wealth.objective == "regression" and wealth.num_class == 1
    return ModelLayout(schema=SCHEMA, tier=wealth, churn=churn, products=(other, stump))


@pytest.fixture(scope="module")
def walker(layout: ModelLayout, walker_library: Path,
           tmp_path_factory: pytest.TempPathFactory) -> TreeWalkEvaluator:
    cache = tmp_path_factory.mktemp("regression")
    warm_cache(walker_library, cache)  # the library is the same: no need to compile it again
    return TreeWalkEvaluator(layout, cache_dir=cache)


def test_regression_is_read_with_an_identity_link(layout: ModelLayout) -> None:
    model = layout.tier
    assert model is not None
    parsed = check_model(model.text)
    assert (parsed.objective, parsed.num_class, parsed.per_iteration) == ("regression", 1, 1)
    raw = model.predict_raw(_data(50, seed=83))
    assert raw.shape == (50,)
    assert np.array_equal(model.link(raw), raw)
    assert np.array_equal(raw, np.asarray(model.booster.predict(_data(50, seed=83))))


@pytest.mark.parametrize("objective", ["regression sqrt", "regression_l1", "huber", "poisson",
                                       "regression extra", ""])
def test_other_regression_objectives_are_refused(layout: ModelLayout, objective: str) -> None:
    assert layout.tier is not None
    text = layout.tier.text.replace("\nobjective=regression\n", f"\nobjective={objective}\n")
    with pytest.raises(ModelTextError) as info:
        check_model(text)
    assert info.value.check == "objective"
    with pytest.raises(ValueError):
        TreeModel.from_text("tier", text)


def test_a_regression_booster_predicting_a_transform_is_refused() -> None:
    x = _data(500, seed=84)
    y = np.abs(_signal(x, seed=85)) + 1
    params = {"objective": "regression", "reg_sqrt": True, "verbosity": -1, "num_threads": 1}
    booster = lgb.train(params, lgb.Dataset(x, y), num_boost_round=3)
    with pytest.raises(ModelTextError, match="objective"):
        TreeModel.from_text("tier", booster.model_to_string())


def test_the_boosters_tier_output_is_two_dimensional(layout: ModelLayout) -> None:
    raw = BoosterEvaluator(layout).raw(_data(20, seed=86), **ALL)
    assert raw.tier is not None and raw.tier.shape == (20, 1)


def test_walker_equals_booster_for_regression(layout: ModelLayout,
                                              walker: TreeWalkEvaluator) -> None:
    x = np.vstack([probe_rows(SCHEMA, 3000, seed=87, thresholds=walker.flat.thresholds),
                   _data(2000, seed=88)])
    booster = BoosterEvaluator(layout)
    want = booster.raw(x, **ALL)
    for kernel in _kernels(walker):
        assert use_isa(walker, kernel) == kernel
        got = walker.raw(x, **ALL)
        assert got.tier is not None and got.tier.shape == (len(x), 1)
        assert max_difference(got, want) == 0.0, kernel
        assert max_difference(_few(walker, x[:300], **ALL), booster.raw(x[:300], **ALL)) == 0.0
        only = walker.raw(x[:50], tier=True, churn=False, products=False)
        assert np.array_equal(only.tier, want.tier[:50])  # type: ignore[index]


def test_fastest_evaluator_takes_the_walker(layout: ModelLayout, walker_library: Path,
                                            tmp_path: Path) -> None:
    warm_cache(walker_library, tmp_path)  # it passes the check against Booster.predict
    assert isinstance(fastest_evaluator(layout, cache_dir=tmp_path), TreeWalkEvaluator)
