"""Without Chromium the browser tests skip loudly, except under CI=true, where they fail."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from app.config import PROJECT_ROOT

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("ci", "outcome"), [("", "1 skipped"), ("true", "1 error")])
def test_a_missing_chromium_skips_loudly_but_never_in_ci(ci: str, outcome: str) -> None:
    env = {**os.environ, "TIERWISE_CHROMIUM": "/nonexistent/chromium", "CI": ci}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/ui/test_card.py::test_the_card_speaks_chinese"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert outcome in run.stdout, run.stdout[-3000:]
    if ci:
        assert "CI=true: the browser tests may not skip" in run.stdout
        assert run.returncode != 0
    else:
        assert "!!! SKIPPING the browser tests" in run.stdout


@pytest.mark.parametrize("ci", ["", "true"])
def test_make_installs_chromium_in_ci_and_warns_elsewhere(ci: str, tmp_path: Any) -> None:
    """`make browser` (a step of `make test`), with a stand-in apt-get that records its
    arguments instead of installing."""
    fake = tmp_path / "apt-get"
    fake.write_text(f"#!/bin/sh\necho \"$@\" >> {tmp_path / 'calls'}\n")
    fake.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "CI": ci}
    run = subprocess.run(["make", "--no-print-directory", "browser",
                          "CHROMIUM=/nonexistent/chromium"], cwd=PROJECT_ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr
    calls = (tmp_path / "calls").read_text().splitlines() if ci else []
    if ci:
        assert calls == ["update -q", "install -y -q chromium"]
    else:
        assert not (tmp_path / "calls").exists()
        assert "!!! /nonexistent/chromium is missing: the browser tests (tests/ui) will SKIP" \
            in run.stdout
