"""A small wallet-wealth tier bundle for tests: the synthetic book, wealth known for ~40%."""

from __future__ import annotations

from functools import cache

import numpy as np

from app.bundles.io import Bundle
from app.features.contract import DEFAULT_FEATURES
from app.training.dataset import encode_book
from app.training.synth import generate_book
from app.training.tier_wealth import train_wealth_tier


@cache
def wealth_book(n: int = 6000, seed: int = 5) -> dict[str, np.ndarray]:
    """A synthetic book with a `wallet_wealth` column: the latent wealth for ~40% of rows
    (NaN elsewhere), as disclosed assets and credit applications would reveal it."""
    book = dict(generate_book(n, seed))
    if "wallet_wealth" not in book:  # books before the generator records it
        known = np.random.default_rng(seed + 1).random(n) < 0.4
        book["wallet_wealth"] = np.where(known, book["true_wealth"], np.nan)
    return book


@cache
def wealth_tier_bundle(seed: int = 0, max_rounds: int = 300) -> Bundle:
    """A wealth tier bundle on the default features, trained in a few seconds."""
    book = wealth_book()
    x = encode_book(book, DEFAULT_FEATURES)
    return train_wealth_tier(x, DEFAULT_FEATURES, book["wallet_wealth"],
                             wealth_column="wallet_wealth", aum_feature="aum_total", seed=seed,
                             folds=3, max_rounds=max_rounds, source="test book",
                             created_at="2026-01-01T00:00:00+00:00")
