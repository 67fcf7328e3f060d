"""Without Chromium the browser tests skip loudly, except under CI=true, where they fail."""

from __future__ import annotations

import os
import subprocess
import sys

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
