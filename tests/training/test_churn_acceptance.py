"""Issue 11 acceptance: on a ~10,000-row table shaped like the public bank-churn dataset, the
bundle `tierwise train churn` writes ranks at least as well as plain LightGBM with tuned
parameters trained on the same rows, and is calibrated (ECE <= 0.02), on the same test rows.

Setup (tests/support/bank_churn.py, seed 2026): 10,000 rows; RowNumber is the time column and
`--test-from 8001` makes rows 8001-10000 the test slice (2,000 rows, the generator's rows are
i.i.d., so this is an 80/20 split), so our final model and the baseline train on exactly the
same 8,000 rows. Surname is dropped from the file (2,200 distinct names: the trainer refuses it
as a category, see the last test). CustomerId is --id-column.

Baseline: LightGBM binary, native categoricals, learning rate 0.05, a 4x4 grid of num_leaves x
min_data_in_leaf chosen by 5-fold CV AUC with early stopping on the same 8,000 rows, refitted
on all 8,000 with the CV'd number of trees.

Our bundle is scored through the serving path (app.scoring.loader.load_family → FeatureSchema
encoding of named values → the tree walker → calibrator), not over HTTP (the lead's e2e run).

Tolerance: AUC(ours) >= AUC(baseline) - 0.005. Both are tuned GBMs on identical rows; their
AUCs on the same 2,000 rows differ by seed-level noise (measured: seeds 0-3 of one baseline
setting with bagging move its AUC within 0.002), far below the AUC's 95% interval (±0.02).
Measured (seed 0): see docs/training.md, "Acceptance on a bank-churn-shaped table".
"""

from __future__ import annotations

import itertools

import lightgbm as lgb
import numpy as np
import pytest
from typer.testing import CliRunner

from app.bundles.io import read_dir
from app.cli import cli
from app.features.schema import FeatureSchema
from app.scoring.loader import family_outputs, load_family
from app.training.metrics import auc, auc_interval, expected_calibration_error
from tests.support.bank_churn import generate, write_csv

TRAIN_ROWS = 8_000
AUC_TOLERANCE = 0.005
CATEGORIES = {"Geography": ("France", "Germany", "Spain"), "Gender": ("Female", "Male")}
FEATURES = ("CreditScore", "Geography", "Gender", "Age", "Tenure", "Balance", "NumOfProducts",
            "HasCrCard", "IsActiveMember", "EstimatedSalary")


def _matrix(cols: dict[str, list], rows: slice) -> np.ndarray:
    out = []
    for name in FEATURES:
        values = cols[name][rows]
        if name in CATEGORIES:
            out.append([float(CATEGORIES[name].index(v)) for v in values])
        else:
            out.append([float(v) for v in values])
    return np.array(out).T


def tuned_lightgbm(x: np.ndarray, y: np.ndarray) -> lgb.Booster:
    """Plain LightGBM, parameters tuned by 5-fold CV AUC on (x, y), refitted on all of it."""
    cats = [FEATURES.index(c) for c in CATEGORIES]
    best = (-1.0, {}, 0)
    for leaves, min_leaf in itertools.product((4, 8, 16, 32), (10, 20, 50, 100)):
        params = {"objective": "binary", "metric": "auc", "learning_rate": 0.05,
                  "num_leaves": leaves, "min_data_in_leaf": min_leaf, "verbosity": -1,
                  "num_threads": 1, "seed": 0, "deterministic": True}
        data = lgb.Dataset(x, y, categorical_feature=cats, free_raw_data=False)
        res = lgb.cv(params, data, num_boost_round=1000, nfold=5, stratified=True, seed=0,
                     callbacks=[lgb.early_stopping(50, verbose=False)])
        score = res["valid auc-mean"][-1]
        if score > best[0]:
            best = (score, params, len(res["valid auc-mean"]))
    _, params, trees = best
    return lgb.train(params, lgb.Dataset(x, y, categorical_feature=cats), trees)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    cols = generate()
    tmp = tmp_path_factory.mktemp("acceptance")
    data = write_csv(tmp / "bank_churn.csv", cols, drop=("Surname",))
    out = tmp / "churn"
    result = CliRunner().invoke(cli, [
        "train", "churn", "--data", str(data), "--target", "Exited", "--id-column",
        "CustomerId", "--time-column", "RowNumber", "--test-from", str(TRAIN_ROWS + 1),
        "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return {"cols": cols, "out": out, "tmp": tmp}


def test_bundle_ranks_like_tuned_lightgbm_and_is_calibrated(trained: dict):
    cols, bundle = trained["cols"], read_dir(trained["out"])
    y = np.array(cols["Exited"], dtype=float)
    y_train, y_test = y[:TRAIN_ROWS], y[TRAIN_ROWS:]

    family = load_family(bundle)
    schema = FeatureSchema(family.features)  # type: ignore[union-attr]
    names = {s.name: s for s in family.features}  # type: ignore[union-attr]
    source = {n.lower(): n for n in cols}
    x = np.empty((len(y_test), len(schema)))
    for i in range(len(y_test)):
        row = {}
        for name, spec in names.items():
            v = cols[source[name]][TRAIN_ROWS + i]
            row[name] = bool(v) if spec.kind == "boolean" else v
        assert not schema.encode_into(row, x[i])
    ours = family_outputs(family, x, schema)["probability"]  # type: ignore[arg-type]

    baseline = tuned_lightgbm(_matrix(cols, slice(0, TRAIN_ROWS)), y_train)
    theirs = np.asarray(baseline.predict(_matrix(cols, slice(TRAIN_ROWS, None))))

    ours_auc, theirs_auc = auc(y_test, ours), auc(y_test, theirs)
    ece = expected_calibration_error(y_test, ours)
    print(f"\nours AUC {ours_auc:.4f} {auc_interval(y_test, ours)}, ECE {ece:.4f}; "
          f"baseline AUC {theirs_auc:.4f}, ECE {expected_calibration_error(y_test, theirs):.4f}")
    assert ours_auc >= theirs_auc - AUC_TOLERANCE
    assert ece <= 0.02
    # the manifest holds the same test figures, with the sample and intervals
    m = bundle.manifest.metrics
    assert m["calibrated"]["n"] == len(y_test) and m["calibrated"]["positives"] == y_test.sum()
    assert m["calibrated"]["auc"] == pytest.approx(ours_auc, abs=1e-6)
    lo, hi = m["calibrated"]["intervals_95"]["auc"]
    assert lo < ours_auc < hi
    assert m["evaluation"]["train_rows"] == TRAIN_ROWS
    assert "customerid" not in names and "rownumber" not in names


def test_surname_left_in_is_a_clear_error(trained: dict):
    data = write_csv(trained["tmp"] / "with_surname.csv", trained["cols"])
    result = CliRunner().invoke(cli, [
        "train", "churn", "--data", str(data), "--target", "Exited", "--id-column",
        "CustomerId", "--out", str(trained["tmp"] / "x"), "--no-progress"])
    assert result.exit_code == 2
    assert "column 'Surname' has" in result.output and "too many for a category" in \
        result.output
    assert "Traceback" not in result.output
