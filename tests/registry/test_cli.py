"""The `tierwise` registry commands: db and keys on a database, the rest over real HTTP."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.bundles.io import write_dir
from app.cli import cli
from app.config import get_settings
from app.registry.auth_keys import create_key
from tests.registry import bundles as b
from tests.registry.app import registry_app

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args))
    assert result.exit_code == code, result.output + str(result.exception or "")
    return result.output


def test_db_and_keys_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_DATABASE_URL", f"sqlite:///{tmp_path / 'r.sqlite3'}")
    get_settings.cache_clear()
    try:
        assert "base (empty)" in run("db", "current")
        assert "20261123_registry" in run("db", "upgrade")
        key = run("keys", "create", "--role", "publisher", "--name", "ci bot").strip().splitlines()
        assert key[-1].startswith("tw_")
        key_id = key[-1].split("_")[1]
        assert f"{key_id}  publisher" in run("keys", "list")
        run("keys", "create", "--role", "emperor", "--name", "x", code=2)
        assert "revoked" in run("keys", "revoke", key_id)
        assert "revoked" in run("keys", "list")
        assert "base" in run("db", "downgrade", "base")
    finally:
        get_settings.cache_clear()


def test_http_commands(migrated_engine: Engine, seeded: sessionmaker[Session],
                       serve: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    with seeded() as s:
        pub = create_key(session=s, name="pat", role="publisher")[1]
        apr = create_key(session=s, name="ada", role="approver")[1]
        s.commit()
    server = serve(registry_app(engine=migrated_engine, sessions=seeded))
    write_dir(b.churn_bundle(1), tmp_path / "churn")
    url = ("--url", server.url)
    assert "published churn version 2" in run("push", str(tmp_path / "churn"), *url, "--key", pub)
    out = run("push", str(tmp_path / "churn"), *url, "--key", pub, code=1)
    assert "error 409" in out
    assert "v2" in run("versions", "churn", *url, "--key", pub)
    assert "four_eyes" not in run("approve", "churn", "2", *url, "--key", apr)
    assert "error 403 forbidden" in run("approve", "churn", "2", *url, "--key", pub, code=1)
    assert "churn staging: None -> 2" in run("promote", "--set", "churn=2", "--alias", "staging",
                                             *url, "--key", pub)
    assert "churn production: 1 -> 2" in run("promote", "churn", "2", *url, "--key", apr)
    assert "2 -> 1 (rollback)" in run("rollback", "churn", *url, "--key", apr)
    history = run("history", "churn", *url, "--key", apr)
    assert "rollback" in history and "by ada" in history
    assert "approve" in run("ledger", *url, "--key", apr)
    assert "cannot reach" in run("versions", "churn", "--url", "http://127.0.0.1:9",
                                 "--key", pub, code=1)
