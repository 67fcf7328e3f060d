"""The wallet-wealth tier trainer: labels only where wealth is known (raised to booked AUM),
CV'd number of trees, out-of-fold residual quantiles, honest metrics, and the command."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from app.bundles.io import Bundle
from app.cli import cli
from app.engine.model_text import check_model
from app.features.contract import DEFAULT_FEATURES
from app.scoring.families import TierFamily
from app.scoring.loader import load_family
from app.training.dataset import TrainingDataError, encode_book
from app.training.synth import write_book
from app.training.tier_wealth import PROBABILITIES, residual_quantiles, train_wealth_tier
from tests.support.wealth import wealth_book, wealth_tier_bundle

AT = "2026-01-01T00:00:00+00:00"


def _train(book: dict[str, np.ndarray], wealth: np.ndarray, seed: int = 0) -> Bundle:
    x = encode_book(book, DEFAULT_FEATURES)
    return train_wealth_tier(x, DEFAULT_FEATURES, wealth, wealth_column="w",
                             aum_feature="aum_total", folds=3, max_rounds=200, created_at=AT,
                             seed=seed)


def test_the_bundle_is_a_regression_with_a_residual_cdf() -> None:
    bundle = wealth_tier_bundle()
    m = bundle.manifest
    assert m.classes == () and m.wealth is not None and m.wealth.transform == "log1p"
    q, p = m.wealth.residual_quantiles, m.wealth.probabilities
    assert len(q) == len(p) > 150
    assert all(b > a for a, b in itertools.pairwise(q))
    assert p[0] < 0.001 and p[-1] > 0.999 and 0.5 in p
    assert q[0] < 0 < q[-1]
    assert check_model(bundle.text("tier.txt")).objective == "regression"
    family = load_family(bundle)
    assert isinstance(family, TierFamily) and family.wealth == m.wealth


def test_metrics_with_sample_sizes() -> None:
    book = wealth_book()
    known = int(np.isfinite(book["wallet_wealth"]).sum())
    m = wealth_tier_bundle().manifest.metrics
    rows = m["rows"]
    assert rows["labelled"] == known and rows["unlabelled"] == len(book["aum_total"]) - known
    assert rows["train"] + rows["test"] == known
    assert m["cv"]["trees"] == m["trees"] > 5  # the refit has the CV'd number of trees
    t = m["test"]
    assert t["rows"] == rows["test"]
    lw = t["log_wealth"]
    assert 0 < lw["mae"] < lw["rmse"] < 1.5 and lw["mae_ci95"][0] < lw["mae"] < lw["mae_ci95"][1]
    assert 0.7 < t["interval_80"]["coverage"] < 0.9  # the residual quantiles are honest
    tier = t["tier"]
    assert tier["never_below_booked"] is True
    assert tier["accuracy_ci95"][0] < tier["accuracy"] < tier["accuracy_ci95"][1]
    assert tier["accuracy"] > t["baseline_booked_tier_from_aum"]["accuracy"]
    assert tier["macro_f1"] > t["baseline_booked_tier_from_aum"]["macro_f1"]
    assert sum(v["support"] for v in tier["per_tier"].values()) == t["rows"]


def test_rows_without_wealth_are_not_labels() -> None:
    book = dict(wealth_book())
    wealth = book["wallet_wealth"]
    first = _train(book, wealth)
    unknown = np.isnan(wealth)
    scrambled = dict(book)
    for name in ("age", "monthly_salary", "aum_total"):
        col = scrambled[name].copy()
        col[unknown] = np.random.default_rng(1).permutation(col[unknown])
        scrambled[name] = col
    second = _train(scrambled, wealth)
    assert first.text("tier.txt") == second.text("tier.txt")
    assert first.manifest.wealth == second.manifest.wealth


def test_wealth_below_booked_aum_is_raised_and_counted() -> None:
    book = wealth_book()
    aum = book["aum_total"]
    wealth = book["wallet_wealth"].copy()
    known = np.flatnonzero(np.isfinite(wealth) & (aum > 1000))[:150]
    wealth[known] = aum[known] / 2
    bundle = _train(book, wealth)
    assert bundle.manifest.metrics["rows"]["raised_to_aum"] >= 150


def test_same_seed_same_bytes() -> None:
    book = wealth_book()
    a, b = _train(book, book["wallet_wealth"], seed=3), _train(book, book["wallet_wealth"], seed=3)
    assert a.manifest_bytes == b.manifest_bytes and a.files == b.files


@pytest.mark.parametrize(("change", "words"), [
    ("few", "known for 200 rows; at least 300"),
    ("negative", "'w': 3 negative values"),
    ("infinite", "'w': 2 infinite values"),
])
def test_bad_wealth_columns_are_clear_errors(change: str, words: str) -> None:
    book = wealth_book()
    wealth = book["wallet_wealth"].copy()
    known = np.flatnonzero(np.isfinite(wealth))
    if change == "few":
        wealth[known[200:]] = np.nan
    elif change == "negative":
        wealth[known[:3]] = -5.0
    else:
        wealth[known[:2]] = np.inf
    with pytest.raises(TrainingDataError, match=words):
        _train(book, wealth)


def test_tied_residuals_keep_the_quantiles_increasing() -> None:
    r = np.concatenate([np.zeros(500), np.linspace(-1, 1, 500)])
    model = residual_quantiles(r)
    assert len(model.residual_quantiles) < len(PROBABILITIES)
    with pytest.raises(TrainingDataError, match="all equal"):
        residual_quantiles(np.zeros(100))


# ------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def book_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("book") / "book.parquet"
    write_book(dict(wealth_book(1500, seed=8)), path)
    return path


def test_train_tier_uses_wallet_wealth_by_default(book_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "tier"
    result = CliRunner().invoke(cli, ["train", "tier", "--data", str(book_file), "--out",
                                      str(out), "--folds", "3", "--no-progress", "--archive"])
    assert result.exit_code == 0, result.output
    assert "tier accuracy" in result.output and "log-wealth MAE" in result.output
    from app.bundles.io import read_dir

    bundle = read_dir(out)
    assert bundle.manifest.wealth is not None
    assert bundle.manifest.training_data["wealth_column"] == "wallet_wealth"
    assert (tmp_path / "tier.tar.gz").is_file()


def test_train_tier_names_a_missing_wealth_column(book_file: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["train", "tier", "--data", str(book_file), "--out",
                                      str(tmp_path / "t"), "--wealth-column", "net_worth",
                                      "--no-progress"])
    assert result.exit_code == 2
    assert "--wealth-column 'net_worth' is not a column" in result.output


def test_train_tier_on_an_old_book_trains_the_legacy_model(tmp_path: Path) -> None:
    from app.training.synth import generate_book

    book = {k: v for k, v in generate_book(800, 2).items() if k != "wallet_wealth"}
    path = tmp_path / "old.parquet"
    write_book(book, path)
    result = CliRunner().invoke(cli, ["train", "tier", "--data", str(path), "--out",
                                      str(tmp_path / "t"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.output


def test_out_of_time_test_rows_with_a_contract(tmp_path: Path) -> None:
    """--time-column/--test-from: the labelled rows from that month on are the test rows."""
    import yaml

    from app.bundles.io import read_dir
    from tests.support.second_bank import generate, write_csv

    data = write_csv(tmp_path / "bank.csv", n=3000)
    run = CliRunner().invoke
    result = run(cli, ["contract", "init", "--data", str(data), "--id-column", "client_no",
                       "--out", str(tmp_path / "draft.yaml")])
    assert result.exit_code == 0, result.output
    draft = yaml.safe_load((tmp_path / "draft.yaml").read_text())
    labels = {"left_bank", "wealth_declared", "offered", "snapshot_month", "bond_fund",
              "travel_card", "loan_switch"}
    draft["features"] = [f for f in draft["features"] if f["name"] not in labels]
    draft["roles"] = {"aum": "holdings_here", "age": "years_old", "risk_profile": None,
                      "risk_assessment_age_days": None, "days_to_next_maturity": None}
    (tmp_path / "contract.yaml").write_text(yaml.safe_dump(draft))
    result = run(cli, ["bundle", "build", "features", str(tmp_path / "contract.yaml"),
                       "--out", str(tmp_path / "features")])
    assert result.exit_code == 0, result.output
    args = ["train", "tier", "--data", str(data), "--contract", str(tmp_path / "features"),
            "--wealth-column", "wealth_declared", "--id-column", "client_no", "--no-progress",
            "--out", str(tmp_path / "tier")]
    result = run(cli, [*args, "--time-column", "snapshot_month"])
    assert result.exit_code != 0 and "together" in result.output
    result = run(cli, [*args, "--time-column", "snapshot_month", "--test-from", "202505"])
    assert result.exit_code == 0, result.output
    cols = generate(3000)
    expected = sum(w is not None and m >= 202505
                   for w, m in zip(cols["wealth_declared"], cols["snapshot_month"], strict=True))
    manifest = read_dir(tmp_path / "tier").manifest
    assert manifest.training_data["split"]["test_rows"] == "out of time"
    assert manifest.metrics["rows"]["test"] == expected
    assert "snapshot_month" not in {f.name for f in manifest.features}
