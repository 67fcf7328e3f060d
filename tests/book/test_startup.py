"""`tierwise score` as its own process starts without what it does not use (LightGBM's
scikit-learn and pandas interfaces), parses each model text once, and still gives the answers
of the in-process command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from app.bundles.manifest import FAMILIES
from app.cli import cli
from app.engine import model_text
from app.engine.flatten import flatten
from app.scoring.context import build_context
from tests.conftest import MODELS_DIR

ROOT = Path(__file__).resolve().parents[2]


def test_the_score_process_imports_neither_sklearn_nor_pandas(book_parquet: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "process.parquet"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app.cli", "score", "--data",
         str(book_parquet), "--out", str(out), "--bundles", str(MODELS_DIR), "--no-progress"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "lightgbm" in imported  # the log is complete: LightGBM is imported
    # (a refused import is logged under its own name too: look for their modules)
    assert not {"sklearn.base", "pandas.core.api"} & imported
    # The same answers as the command run in this process (where both may be loaded).
    here = tmp_path / "here.parquet"
    ran = CliRunner().invoke(cli, ["score", "--data", str(book_parquet), "--out", str(here),
                                   "--bundles", str(MODELS_DIR), "--no-progress"])
    assert ran.exit_code == 0, ran.output
    assert pq.read_table(out).equals(pq.read_table(here))


def test_lightgbm_predicts_without_sklearn_and_pandas() -> None:
    code = ("import sys\n"
            "from app.book.command import skip_unneeded_imports\n"
            "skip_unneeded_imports()\n"
            "import numpy as np, lightgbm as lgb\n"
            "assert 'sklearn' not in sys.modules and 'pandas' not in sys.modules\n"
            "try:\n"
            "    import pandas\n"
            "except ModuleNotFoundError:\n"
            "    pass\n"
            "else:\n"
            "    raise AssertionError('pandas imported')\n"
            "x = np.random.default_rng(0).random((200, 3))\n"
            "b = lgb.train({'objective': 'binary', 'verbose': -1, 'num_threads': 1},\n"
            "              lgb.Dataset(x, (x[:, 0] > 0.5).astype(float)), 5)\n"
            "print(b.predict(x[:2]).shape)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout.strip() == "(2,)", done.stderr[-2000:]


def test_the_walker_gets_the_trees_the_context_build_parsed(monkeypatch) -> None:
    from app.bundles import read_dir

    calls: list[int] = []
    check = model_text.check_model
    monkeypatch.setattr(model_text, "check_model", lambda text: calls.append(1) or check(text))
    monkeypatch.setattr(model_text, "_PASSED", {})  # as in a fresh process
    monkeypatch.setattr(model_text, "_HANDOFF", {})
    ctx = build_context({f: read_dir(MODELS_DIR / f) for f in FAMILIES},
                        dict.fromkeys(FAMILIES, 1))
    models = list(ctx.layout.all_models())
    assert len(calls) == len(models)  # each text checked once by the build
    flat = flatten(ctx.layout)
    assert len(calls) == len(models)  # ... and not again for the walker
    assert not model_text._HANDOFF  # nothing kept once handed over
    # What was handed over is what a fresh parse gives.
    again = flatten(ctx.layout)
    assert len(calls) == 2 * len(models)
    assert flat.nodes.tobytes() == again.nodes.tobytes()
    assert flat.leaf.tobytes() == again.leaf.tobytes()
