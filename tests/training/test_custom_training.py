"""Churn models from a data scientist's own file, and the training CLI end to end."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from app.bundles.io import read_archive, read_dir, write_dir
from app.cli import cli
from app.features.schema import FeatureSchema
from app.scoring.families import ChurnFamily
from app.scoring.loader import load_family
from app.training.custom import feature_name, train_churn_from_file
from app.training.dataset import TrainingDataError

N = 4_000
SEGMENTS = ("gold", "silver", "basic")


def _columns(n: int = N, seed: int = 0) -> dict[str, list]:
    """A bank's own extract: id, text category with gaps, numbers with gaps, flags, target."""
    rng = np.random.default_rng(seed)
    segment = rng.choice(SEGMENTS, n)
    spend = rng.lognormal(8, 1, n)
    region = rng.integers(1, 6, n)
    has_app = rng.random(n) < 0.6
    inactive = rng.poisson(10, n).astype(float)
    logit = (-3.0 + 0.2 * inactive - 1.2 * has_app + 1.0 * (segment == "basic")
             - 0.5 * (np.log(spend) - 8) + 0.8 * (region == 3))
    churned = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    seg = [None if rng.random() < 0.05 else s for s in segment]
    spend_l = [None if rng.random() < 0.1 else round(float(s), 2) for s in spend]
    return {
        "Customer ID": [f"K{i:06d}" for i in range(n)],
        "Segment": seg,
        "Monthly Spend": spend_l,
        "region": region.tolist(),
        "has_app": ["true" if h else "false" for h in has_app],
        "days_inactive": inactive.tolist(),
        "left_bank": churned.tolist(),
    }


def _write_csv(path: Path, columns: dict[str, list]) -> Path:
    names = list(columns)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(names)
        for row in zip(*(columns[c] for c in names), strict=True):
            w.writerow(["" if v is None else v for v in row])
    return path


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory) -> Path:
    return _write_csv(tmp_path_factory.mktemp("custom") / "extract.csv", _columns())


def test_custom_training_from_csv_end_to_end(csv_file: Path, tmp_path: Path):
    bundle = train_churn_from_file(csv_file, target="left_bank", id_column="Customer ID",
                                   categorical=["region"], seed=3)
    family = load_family(bundle)
    assert isinstance(family, ChurnFamily)
    specs = {f.name: f for f in bundle.manifest.features}
    assert set(specs) == {"segment", "monthly_spend", "region", "has_app", "days_inactive"}
    assert "customer_id" not in specs and "left_bank" not in specs
    assert specs["segment"].kind == "category" and specs["segment"].categories == tuple(
        sorted(SEGMENTS))
    assert specs["segment"].nullable and specs["monthly_spend"].nullable
    assert specs["region"].kind == "category"
    assert specs["region"].categories == ("1", "2", "3", "4", "5")
    assert specs["has_app"].kind == "boolean" and not specs["has_app"].nullable
    assert specs["monthly_spend"].kind == "number" and specs["monthly_spend"].minimum == 0
    seen = max(_columns()["days_inactive"])
    assert specs["days_inactive"].maximum >= 3 * seen  # widened above anything seen
    m = bundle.manifest
    assert m.metrics["calibrated"]["auc"] > 0.65
    assert m.calibrator is not None
    assert m.training_data["renamed_columns"] == {"segment": "Segment",
                                                  "monthly_spend": "Monthly Spend"}
    assert m.training_data["id_column"] == "Customer ID"
    assert set(m.reason_codes) == set(specs)
    assert m.reason_codes["monthly_spend"].up == "monthly spend raises risk ({value})"
    # It serves: a caller's named values encode and score like any churn bundle.
    schema = FeatureSchema(m.features)
    x = schema.row({"segment": "gold", "region": "3", "has_app": False, "days_inactive": 30})
    assert math.isnan(x[schema.index["monthly_spend"]])
    write_dir(bundle, tmp_path / "custom")
    assert read_dir(tmp_path / "custom").sha256 == bundle.sha256


def test_custom_training_from_parquet(tmp_path: Path):
    cols = _columns(2_000, seed=1)
    cols["has_app"] = [v == "true" for v in cols["has_app"]]
    path = tmp_path / "extract.parquet"
    pq.write_table(pa.table(cols), path)
    bundle = train_churn_from_file(path, target="left_bank", id_column="Customer ID")
    specs = {f.name: f for f in bundle.manifest.features}
    assert specs["region"].kind == "number"  # not listed as categorical this time
    assert specs["has_app"].kind == "boolean"
    load_family(bundle)


@pytest.mark.parametrize(
    ("column", "expected"),
    [("Monthly Spend", "monthly_spend"), ("  days-inactive ", "days_inactive"),
     ("AUM (CNY)", "aum_cny")],
)
def test_column_names_are_cleaned_up(column: str, expected: str):
    assert feature_name(column) == expected


@pytest.mark.parametrize("column", ["2nd_account", "余额", "x" * 65])
def test_unusable_column_names_are_refused(column: str):
    with pytest.raises(TrainingDataError, match="rename the column"):
        feature_name(column)


def test_bad_files_give_clear_errors(tmp_path: Path, csv_file: Path):
    with pytest.raises(TrainingDataError, match="target 'churn' is not a column"):
        train_churn_from_file(csv_file, target="churn")
    cols = _columns(500)
    cols["left_bank"] = [2] * 500
    with pytest.raises(TrainingDataError, match="must be 0/1"):
        train_churn_from_file(_write_csv(tmp_path / "a.csv", cols), target="left_bank")
    cols = _columns(500)
    cols["Monthly-Spend"] = cols["Monthly Spend"]
    with pytest.raises(TrainingDataError, match="both become feature 'monthly_spend'"):
        train_churn_from_file(_write_csv(tmp_path / "b.csv", cols), target="left_bank",
                              id_column="Customer ID")
    with pytest.raises(TrainingDataError, match="too many for a category"):
        train_churn_from_file(csv_file, target="left_bank")  # the id column left in
    with pytest.raises(TrainingDataError, match=r"use a \.csv or \.parquet file"):
        train_churn_from_file(tmp_path / "data.xlsx", target="left_bank")


def test_cli_synth_train_custom_and_verify(tmp_path: Path):
    runner = CliRunner()
    book = tmp_path / "book.csv"
    result = runner.invoke(cli, ["synth", "--customers", "2000", "--seed", "3", "--out",
                                 str(book), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert book.is_file()

    out = tmp_path / "custom"
    result = runner.invoke(cli, [
        "train", "churn", "--data", str(book), "--target", "churn_90d",
        "--id-column", "customer_id", "--categorical", "occupation_class,risk_profile",
        "--out", str(out), "--archive", "--no-progress",
    ])
    assert result.exit_code == 0, result.output
    bundle = read_dir(out)
    names = {f.name for f in bundle.manifest.features}
    assert "customer_id" not in names and "churn_90d" not in names and "age" in names
    archive = tmp_path / "custom.tar.gz"
    assert read_archive(archive.read_bytes(), max_bytes=1 << 26).sha256 == bundle.sha256

    for path in (out, archive):
        result = runner.invoke(cli, ["bundle", "verify", str(path)])
        assert result.exit_code == 0, result.output
        assert f"OK churn {bundle.sha256}" in result.output

    (out / "churn.txt").write_text("tampered")
    result = runner.invoke(cli, ["bundle", "verify", str(out)])
    assert result.exit_code == 1
    assert "REJECTED" in result.output and "sha256 mismatch for churn.txt" in result.output


def test_cli_reports_data_errors_without_a_traceback(tmp_path: Path, csv_file: Path):
    result = CliRunner().invoke(cli, ["train", "churn", "--data", str(csv_file), "--target",
                                      "nope", "--out", str(tmp_path / "x"), "--no-progress"])
    assert result.exit_code == 2
    assert "error: target 'nope' is not a column" in result.output
