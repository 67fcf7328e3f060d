"""Schemathesis over every operation of the served document, all checks, against real HTTP.

The server is the whole service (`create_app`) on uvicorn, on a fresh SQLite registry seeded
with the default models, with auth on and its bootstrap admin key: every operation is
reachable, and the registry writes schemathesis makes start from the same state on every
run. The number of examples per operation is bounded (SCHEMATHESIS_MAX_EXAMPLES, default 25)
and the seed fixed (SCHEMATHESIS_SEED) so that CI is repeatable; set another seed to explore.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.bundles.io import read_dir, to_archive
from app.bundles.manifest import FAMILIES
from app.config import PROJECT_ROOT
from tests.api.live_service import running_service
from tests.conftest import MODELS_DIR, models_present

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not models_present(), reason="default models missing")]
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


def _archives(root: Path) -> Path:
    """The registered (seeded) version of each family as an upload body."""
    root.mkdir(parents=True)
    for family in FAMILIES:
        (root / f"{family}.tar.gz").write_bytes(to_archive(read_dir(MODELS_DIR / family)))
    return root


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, admin key) of the service on a fresh registry."""
    with running_service(tmp_path) as service:
        yield service


def test_every_operation_passes_every_check(server: tuple[str, str], tmp_path: Path) -> None:
    url, key = server
    served = httpx.get(url + "/openapi.json").json()
    operations = sum(len(item) for item in served["paths"].values())
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", url + "/openapi.json",
        "--checks", "all",
        "--max-examples", os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"),
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "20261201"),
        "--header", f"X-API-Key: {key}",
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "30",
        "--no-color", "--output-truncate", "false",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS),
           "TIERWISE_ST_ARCHIVES": str(_archives(tmp_path / "archives")),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    # In a scratch directory: the CLI leaves a .schemathesis/ directory where it runs.
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600, check=False)
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"schemathesis found problems:\n{output}"
    assert f"Selected: {operations}/{operations}" in output, output
    assert f"Tested: {operations}" in output, output

