"""The whole service on real HTTP for contract tests: a fresh SQLite registry seeded with
the default models, auth on, and the bootstrap admin key it wrote."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import MODELS_DIR, RunningServer


@contextmanager
def running_service(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base URL, admin key) of the service, once it is ready; stopped on exit."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}",
                        models_dir=MODELS_DIR, auth_enabled=True,
                        bootstrap_admin_key_file=tmp_path / "admin.key",
                        compile_models=False, poll_interval_seconds=0.5, log_level="ERROR")
    with RunningServer(create_app(settings)) as running:
        deadline = time.monotonic() + 60
        while httpx.get(running.url + "/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service did not become ready"
            time.sleep(0.1)
        yield running.url, (tmp_path / "admin.key").read_text().strip()


@contextmanager
def service_with_role_keys(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """`running_service`, plus a key per role for three people (scorer `crm`, publisher
    `dana`, approver `marc`) made with `tierwise keys create` on its registry database."""
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    with running_service(tmp_path) as (url, _admin), pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIERWISE_DATABASE_URL", f"sqlite:///{tmp_path / 'registry.sqlite3'}")
        get_settings.cache_clear()
        keys = {}
        for role, who in (("scorer", "crm"), ("publisher", "dana"), ("approver", "marc")):
            result = CliRunner().invoke(cli, ["keys", "create", "--role", role, "--principal",
                                              who, "--as", "bootstrap admin"])
            assert result.exit_code == 0, result.output
            keys[role] = result.output.strip().splitlines()[-1]
        get_settings.cache_clear()
        try:
            yield url, keys
        finally:
            get_settings.cache_clear()
