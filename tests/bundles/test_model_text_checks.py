"""The strict LightGBM text reader: each check refuses the text that breaks it, by name,
before LightGBM sees it; texts LightGBM writes pass."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache

import lightgbm as lgb
import numpy as np
import pytest

from app.engine.model_text import ModelTextError, check_model, parse_model
from app.engine.trees import TreeModel
from tests.hostile import corpus as c


@cache
def categorical_text() -> str:
    """A small model with categorical splits (num_cat > 0)."""
    rng = np.random.default_rng(3)
    x = np.column_stack([rng.integers(0, 12, 600), rng.normal(size=600)])
    y = ((x[:, 0] % 3 == 0) ^ (x[:, 1] > 0.5)).astype(int)
    data = lgb.Dataset(x, y, feature_name=["segment", "score"], categorical_feature=[0])
    params = {"objective": "binary", "num_leaves": 8, "verbose": -1, "min_data_per_group": 5,
              "cat_smooth": 1, "num_threads": 1, "seed": 1}
    return lgb.train(params, data, num_boost_round=4).model_to_string()


def _tree0(text: str, key: str, value: str) -> str:
    """`text` with tree 0's `key` line set to `value`, tree_sizes made to match."""
    head, sep, rest = text.partition("\nTree=0\n")
    block, sep2, tail = rest.partition("\nTree=1\n")
    block = re.sub(rf"^{key}=.*$", f"{key}={value}", block, count=1, flags=re.MULTILINE)
    return c.with_tree_sizes_fixed(text, head + sep + block + sep2 + tail)


def _line(text: str, key: str) -> list[str]:
    block = text.partition("\nTree=0\n")[2]
    return re.search(rf"^{key}=(.*)$", block, re.MULTILINE).group(1).split()  # type: ignore[union-attr]


def _cat_tree0(text: str) -> str:
    """The categorical text with its first categorical tree first (its tree 0 has one)."""
    assert "num_cat=0" not in text.partition("\nTree=1\n")[0], "tree 0 has no category split"
    return text


CASES: list[tuple[str, Callable[[], str], str]] = [
    ("num_leaves", c.num_leaves_off_by_one, "tree 0 leaf_value"),
    ("split_feature", c.split_feature_out_of_range, "tree 0 split_feature"),
    ("tree_sizes", lambda: c.model_text().replace("tree_sizes=", "tree_sizes=1", 1),
     "tree_sizes"),
    ("extra tree size", lambda: re.sub(r"^(tree_sizes=.*)$", r"\1 100", c.model_text(),
                                       count=1, flags=re.MULTILINE), "tree_sizes"),
    ("child out of range", lambda: _tree0(c.model_text(), "left_child", " ".join(
        ["7", *_line(c.model_text(), "left_child")[1:]])), "left_child/right_child"),
    ("child cycle", lambda: _tree0(c.model_text(), "right_child", " ".join(
        ["0", *_line(c.model_text(), "right_child")[1:]])), "left_child/right_child"),
    ("decision type", lambda: _tree0(c.model_text(), "decision_type", " ".join(
        ["64", *_line(c.model_text(), "decision_type")[1:]])), "decision_type"),
    ("nan leaf", lambda: _tree0(c.model_text(), "leaf_value", " ".join(
        ["nan", *_line(c.model_text(), "leaf_value")[1:]])), "leaf_value"),
    ("not a number", lambda: _tree0(c.model_text(), "leaf_count", " ".join(
        ["x", *_line(c.model_text(), "leaf_count")[1:]])), "leaf_count"),
    ("objective", lambda: c.model_text().replace("objective=binary", "objective=lambdarank", 1),
     "objective"),
    ("max_feature_idx", lambda: c.model_text().replace("max_feature_idx=", "max_feature_idx=9",
                                                       1), "feature_names"),
    ("cat_boundaries", lambda: _tree0(_cat_tree0(categorical_text()), "cat_boundaries", "0 1"),
     "cat_boundaries"),
    ("cat_threshold", lambda: _tree0(_cat_tree0(categorical_text()), "cat_threshold", "0"),
     "cat_boundaries"),
    ("num_cat", lambda: _tree0(_cat_tree0(categorical_text()), "num_cat", "0"), "num_cat"),
]


@pytest.mark.parametrize(("name", "text", "check"), CASES, ids=[case[0] for case in CASES])
def test_a_malformed_text_is_refused_by_name(name: str, text: Callable[[], str],
                                             check: str) -> None:
    with pytest.raises(ModelTextError) as info:
        check_model(text())
    assert check in info.value.check, info.value


@pytest.mark.parametrize("text", [c.model_text, categorical_text])
def test_texts_lightgbm_writes_pass(text: Callable[[], str]) -> None:
    parsed = parse_model(text())
    assert parsed.trees and parsed.objective == "binary"
    assert TreeModel.from_text("m", text()).num_trees == len(parsed.trees)


def test_undeclared_features_are_refused_before_lightgbm() -> None:
    with pytest.raises(ModelTextError) as info:
        TreeModel.from_text("m", c.model_text(), declared={"age"})
    assert info.value.check == "feature_names"
