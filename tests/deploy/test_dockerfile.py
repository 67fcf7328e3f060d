"""No Docker engine runs here: check that what the Dockerfile copies and runs exists."""

from __future__ import annotations

import json
import re
import shlex

from typer.testing import CliRunner

from app.cli import cli
from app.config import PROJECT_ROOT

DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")


def _instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines()
            if line.strip().upper().startswith(name + " ")]


def test_copied_sources_exist() -> None:
    for args in _instructions("COPY"):
        parts = [p for p in shlex.split(args) if not p.startswith("--")]
        if any(a.startswith("--from") for a in shlex.split(args)):
            continue
        for src in parts[:-1]:
            assert (PROJECT_ROOT / src).exists(), f"Dockerfile copies missing {src}"


def test_runs_tierwise_serve_on_all_interfaces_as_non_root() -> None:
    (cmd,) = _instructions("CMD")
    argv = json.loads(cmd)  # exec (JSON-array) form
    assert argv[:2] == ["tierwise", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    assert "--host" in result.output and "--workers" in result.output
    users = _instructions("USER")
    assert users and users[-1].strip() not in ("root", "0")
    (health,) = _instructions("HEALTHCHECK")
    assert "/healthz" in health
    assert "pip install -e ." in DOCKERFILE
