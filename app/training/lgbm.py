"""LightGBM settings and fitting shared by every trainer: deterministic, bounded, with progress."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from app.features.spec import FeatureSpec
from app.training.dataset import categorical_indices

# One thread: on a shared 2-core machine a second OpenMP thread spin-waits for a busy core
# and made training 3-5x slower (measured), never faster.
DEFAULT_THREADS = 1


def lgb_params(
    objective: str,
    *,
    seed: int,
    num_threads: int = DEFAULT_THREADS,
    num_leaves: int = 31,
    learning_rate: float = 0.05,
    min_data_in_leaf: int = 100,
    **extra: Any,
) -> dict[str, Any]:
    """Parameters that give the same trees for the same data, seed and thread count."""
    return {
        "objective": objective,
        "learning_rate": learning_rate,
        "num_leaves": num_leaves,
        "min_data_in_leaf": min_data_in_leaf,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "max_bin": 255,
        "max_cat_to_onehot": 8,
        "cat_smooth": 10.0,
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": num_threads,
        "verbosity": -1,
        **extra,
    }


def dataset(x: np.ndarray, y: np.ndarray, specs: Sequence[FeatureSpec],
            params: dict[str, Any]) -> lgb.Dataset:
    """A LightGBM dataset naming the features and splitting categories natively."""
    return lgb.Dataset(
        x, label=y, feature_name=[s.name for s in specs],
        categorical_feature=categorical_indices(specs), params=params, free_raw_data=False,
    )


class _Progress:
    """A LightGBM callback advancing a tqdm bar on stderr, one step per boosting round."""

    def __init__(self, desc: str, total: int, enabled: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="round", disable=not enabled,
                        file=sys.stderr, leave=True, mininterval=0.5)

    def __call__(self, env: Any) -> None:
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def fit(
    train: lgb.Dataset,
    params: dict[str, Any],
    rounds: int,
    *,
    desc: str,
    progress: bool = False,
    valid: lgb.Dataset | None = None,
    early_stopping: int | None = None,
) -> lgb.Booster:
    """Boost `rounds` trees (fewer with early stopping on `valid`)."""
    bar = _Progress(desc, rounds, progress)
    callbacks: list[Any] = [bar]
    if valid is not None and early_stopping:
        callbacks.append(lgb.early_stopping(early_stopping, verbose=False))
    try:
        booster = lgb.train(
            params, train, num_boost_round=rounds, callbacks=callbacks,
            valid_sets=[valid] if valid is not None else None,
        )
    finally:
        bar.close()
    if valid is not None and early_stopping and booster.best_iteration > 0:
        # Ship only the trees that helped: the text model then holds exactly those.
        booster = lgb.Booster(model_str=booster.model_to_string(
            num_iteration=booster.best_iteration))
    return booster
