"""The walker's libraries are verified before loading: a truncated, foreign, loose or
unrecorded file is rebuilt (with a compiler) or refused (without), never loaded; one built
ahead of time serves with no compiler at all."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import PROJECT_ROOT
from app.engine import native
from app.engine.compiled import evaluator_info, fastest_evaluator
from app.engine.evaluate import BoosterEvaluator, ModelLayout
from app.engine.trees import TreeModel
from app.engine.walker import TreeWalkEvaluator
from app.features.schema import FeatureSchema
from app.features.spec import FeatureSpec
from tests.support.engine import warm_cache

NO_CC = "/nonexistent/cc"
# A library with the walker's ABI whose constructor leaves a mark: if the mark appears, its
# code ran, i.e. it was loaded.
PLANTED_C = """#include <stdio.h>
#include <stdlib.h>
__attribute__((constructor)) static void planted(void) {
    const char *p = getenv("TW_MARKER");
    if (p) { FILE *f = fopen(p, "w"); if (f) { fputs("ran", f); fclose(f); } }
}
int tw_abi(void) { return ABI; }
"""
LOAD_CHILD = """import sys
from pathlib import Path
from app.engine import native
try:
    native.load_library(Path(sys.argv[1]))
    print("loaded")
except Exception as exc:
    print("refused:", exc)
"""


@pytest.fixture(scope="module")
def layout() -> ModelLayout:
    schema = FeatureSchema((FeatureSpec(name="a", kind="number", minimum=-5, maximum=5),
                            FeatureSpec(name="b", kind="number", minimum=-5, maximum=5)))
    rng = np.random.default_rng(3)
    x = rng.normal(0, 2, (800, 2))
    params = {"objective": "binary", "num_leaves": 7, "verbosity": -1, "num_threads": 1,
              "seed": 1, "deterministic": True}
    booster = lgb.train(params, lgb.Dataset(x, label=(x[:, 0] + x[:, 1] > 0).astype(int),
                                            feature_name=["a", "b"]), num_boost_round=5)
    churn = TreeModel.from_text("churn", booster.model_to_string())
    return ModelLayout(schema=schema, tier=None, churn=churn, products=())


@pytest.fixture(autouse=True)
def fresh_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """As in a new process, with no walker built ahead of time unless a test builds one."""
    monkeypatch.setattr(native, "_libs", {})
    monkeypatch.setattr(native, "_warned", set())
    monkeypatch.setenv("TIERWISE_WALKER_DIR", str(tmp_path / "walker"))
    monkeypatch.delenv("TIERWISE_CC", raising=False)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIERWISE_")}
    env.update({"TIERWISE_WALKER_DIR": str(tmp_path / "walker"),
                "TIERWISE_COMPILE_CACHE_DIR": str(tmp_path / "cache")}, **extra)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                          cwd=PROJECT_ROOT, timeout=180, check=False)


def test_a_truncated_library_would_crash_and_is_rebuilt_or_refused(tmp_path: Path,
                                                                   walker_library: Path) -> None:
    so = warm_cache(walker_library, tmp_path / "cache")  # what a compile leaves there
    os.truncate(so, so.stat().st_size // 2)
    crash = _run(["-c", f"import ctypes; ctypes.CDLL({str(so)!r}).tw_abi()"], _env(tmp_path))
    assert crash.returncode == -signal.SIGBUS, "loaded by name, it kills the process"

    rebuilt = _run(["-m", "app.cli", "walker", "check"], _env(tmp_path))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "evaluator: treewalk" in rebuilt.stdout
    assert native.verify(so)["size"] == so.stat().st_size  # rebuilt, whole again

    os.truncate(so, so.stat().st_size // 2)
    refused = _run(["-m", "app.cli", "walker", "check"], _env(tmp_path, TIERWISE_CC=NO_CC))
    assert refused.returncode == 1, refused.stderr  # served by LightGBM, not crashed
    assert "evaluator: lightgbm isa: none" in refused.stdout
    assert "not loading the tree walker" in refused.stderr
    assert "truncated or replaced" in refused.stderr


def _planted(tmp_path: Path) -> Path:
    src = tmp_path / "planted.c"
    src.write_text(PLANTED_C.replace("ABI", str(native._ABI)))
    out = tmp_path / "planted.so"
    subprocess.run([native.find_compiler(None), "-shared", "-fPIC", "-o", str(out), str(src)],
                   check=True, timeout=60)
    return out


CASES = ["trusted (control)", "foreign sha256", "no record", "writable by others",
         "directory writable by others", "symlink", "owned by another user"]


@pytest.mark.parametrize("where", ["walker", "cache"])
@pytest.mark.parametrize("case", CASES)
def test_a_planted_library_is_never_loaded(tmp_path: Path, walker_library: Path, where: str,
                                           case: str) -> None:
    if case == "owned by another user" and os.geteuid() != 0:
        pytest.skip("chown to another user needs root")
    directory = tmp_path / where
    directory.mkdir(mode=0o755)
    name = native.PREBUILT_NAME if where == "walker" else "treewalk-0123456789abcdef.so"
    target = directory / name
    genuine = native.read_record(walker_library)  # a genuine build's record
    planted = _planted(tmp_path)
    data = planted.read_bytes()
    forged = dict(genuine, sha256=hashlib.sha256(data).hexdigest(),
                  size=len(data))
    if case == "symlink":
        target.symlink_to(planted)
    else:
        target.write_bytes(data)
    if case != "no record":
        record = genuine if case == "foreign sha256" else forged
        native.record_path(target).write_text(json.dumps(record))
    if case == "writable by others":
        target.chmod(0o646)
    elif case == "directory writable by others":
        directory.chmod(0o777)
    elif case == "owned by another user":
        os.chown(target, 4242, 4242)
    marker = tmp_path / "ran"
    # No compiler in the child: nothing can be rebuilt, so only what is there could load.
    done = _run(["-c", LOAD_CHILD, str(tmp_path / "cache")],
                _env(tmp_path, TIERWISE_CC=NO_CC, TW_MARKER=str(marker)))
    assert done.returncode == 0, done.stderr
    if case == "trusted (control)":  # the mark shows a load would be seen
        assert marker.exists(), done.stdout + done.stderr
    else:
        assert not marker.exists(), f"{case}: the planted library ran"
        assert done.stdout.startswith("refused:"), done.stdout
        assert "not loading the tree walker" in done.stderr


def test_built_ahead_serves_without_a_compiler(layout: ModelLayout, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    result = CliRunner().invoke(cli, ["walker", "build", "--out", str(tmp_path / "walker")])
    assert result.exit_code == 0, result.output
    record = native.verify(tmp_path / "walker" / native.PREBUILT_NAME)
    assert record["source_sha256"] == native.source_sha256() and "-O2" in record["flags"]
    monkeypatch.setenv("TIERWISE_CC", NO_CC)
    monkeypatch.setenv("CC", NO_CC)
    ev = fastest_evaluator(layout, cache_dir=tmp_path / "cache")
    assert isinstance(ev, TreeWalkEvaluator)
    assert not (tmp_path / "cache").exists(), "nothing compiled, the cache untouched"
    x = np.random.default_rng(5).normal(0, 3, (300, 2))
    got = ev.raw(x, tier=False, churn=True, products=False).churn
    want = BoosterEvaluator(layout).raw(x, tier=False, churn=True, products=False).churn
    assert got is not None and want is not None and np.array_equal(got, want)


def test_a_warm_cache_serves_without_a_compiler(layout: ModelLayout, tmp_path: Path,
                                                walker_library: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    warm_cache(walker_library, tmp_path / "cache")  # as a compile leaves it
    assert isinstance(fastest_evaluator(layout, cache_dir=tmp_path / "cache"), TreeWalkEvaluator)
    monkeypatch.setattr(native, "_libs", {})
    monkeypatch.setenv("TIERWISE_CC", NO_CC)
    assert isinstance(fastest_evaluator(layout, cache_dir=tmp_path / "cache"), TreeWalkEvaluator)
    monkeypatch.setattr(native, "_libs", {})
    assert isinstance(fastest_evaluator(layout, cache_dir=tmp_path / "empty"), BoosterEvaluator)


def test_a_loose_library_is_rebuilt(layout: ModelLayout, tmp_path: Path, walker_library: Path,
                                    caplog: pytest.LogCaptureFixture) -> None:
    so = warm_cache(walker_library, tmp_path / "cache")
    so.chmod(0o666)
    loose = so.stat().st_ino
    with caplog.at_level(logging.WARNING, logger="tierwise.scoring"):
        assert isinstance(fastest_evaluator(layout, cache_dir=tmp_path / "cache"),
                          TreeWalkEvaluator)
    assert any("writable by group or others" in r.getMessage() for r in caplog.records)
    assert so.stat().st_mode & 0o777 == 0o644
    assert so.stat().st_ino != loose, "a new file, compiled, not the loose one"
    native.verify(so)


def test_a_cache_others_may_write_is_not_used(layout: ModelLayout, tmp_path: Path,
                                              caplog: pytest.LogCaptureFixture) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o775)
    with caplog.at_level(logging.WARNING, logger="tierwise.scoring"):
        assert isinstance(fastest_evaluator(layout, cache_dir=cache), TreeWalkEvaluator)
    assert not list(cache.iterdir()), "built in a private directory instead"
    assert any("not using the compile cache" in r.getMessage() for r in caplog.records)


def test_walker_build_fails_cleanly_without_a_compiler(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["walker", "build", "--out", str(tmp_path / "w"),
                                      "--cc", NO_CC])
    assert result.exit_code == 1
    assert "no C compiler" in result.output
    assert not (tmp_path / "w" / native.PREBUILT_NAME).exists()


def test_evaluator_info_names_the_evaluator_and_kernels(layout: ModelLayout, tmp_path: Path,
                                                         walker_library: Path) -> None:
    warm_cache(walker_library, tmp_path / "cache")
    fast = fastest_evaluator(layout, cache_dir=tmp_path / "cache")
    assert isinstance(fast, TreeWalkEvaluator)
    assert evaluator_info(fast) == ("treewalk", fast.isa)
    assert fast.isa in ("avx512", "avx2", "walk")
    assert evaluator_info(BoosterEvaluator(layout)) == ("lightgbm", "none")
