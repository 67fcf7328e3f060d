"""Without Chromium the browser tests skip loudly, except under CI=true, where they fail;
`make browser` (run by `make test`) installs it when CI=true."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from app.config import PROJECT_ROOT
from tests.ui.conftest import chromium_path


@pytest.mark.parametrize("ci", ["", "false", "true"])
def test_a_missing_chromium_skips_loudly_but_never_in_ci(ci: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", ci)
    if ci == "true":
        with pytest.raises(pytest.fail.Exception,
                           match=r"no Chromium at /nonexistent/chromium .*\(CI=true: the "
                                 r"browser tests may not skip\)"):
            chromium_path("/nonexistent/chromium")
    else:
        with pytest.raises(pytest.skip.Exception,
                           match=r"^!!! SKIPPING the browser tests .*no Chromium at "):
            chromium_path("/nonexistent/chromium")
    assert chromium_path(sys.executable) == sys.executable  # a file that is there


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
