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
from app.registry import database, repository
from app.registry.auth_keys import create_key
from app.training.default_contract import contract_bundle
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
        assert f"database at {database.head_revision()}" in run("db", "upgrade")
        key = run("keys", "create", "--role", "publisher", "--name", "ci bot").strip().splitlines()
        assert key[-1].startswith("tw_")
        assert any("--name is deprecated" in line for line in key)
        key_id = key[-1].split("_")[1]
        assert f"{key_id}  publisher  active              ci bot (person" in run("keys", "list")
        run("keys", "create", "--role", "emperor", "--name", "x", code=2)
        assert "revoked" in run("keys", "revoke", key_id)
        assert "revoked" in run("keys", "list")
        assert "base" in run("db", "downgrade", "base")
    finally:
        get_settings.cache_clear()


def test_keys_commands_record_the_acting_principal(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    monkeypatch.setenv("TIERWISE_DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        run("db", "upgrade")
        first = run("keys", "create", "--role", "admin", "--principal", "root")
        assert "no --as PRINCIPAL" in first  # the first admin: nobody could act yet
        run("keys", "create", "--role", "publisher", "--principal", "ada", "--as", "ada", code=2)
        run("keys", "create", "--role", "publisher", "--principal", "ada", "--as", "root")
        ada2 = run("keys", "create", "--role", "approver", "--principal", "ada", "--kind",
                   "person", "--as", "root").strip().splitlines()[-1]
        run("keys", "create", "--role", "scorer", "--principal", "ada", "--kind", "service",
            "--as", "root", code=2)  # ada is a person
        run("keys", "revoke", ada2.split("_")[1], "--as", "ada", code=2)  # not an admin
        run("keys", "revoke", ada2.split("_")[1], "--as", "root")
        engine = database.make_engine(url)
        with database.make_sessionmaker(engine)() as s:
            root = repository.get_principal_by_name(s, "root")
            ada = repository.get_principal_by_name(s, "ada")
            assert root is not None and ada is not None and ada.created_by == "root"
            keys = repository.list_api_keys(s)
            assert keys[0].created_by.startswith("cli:")
            assert [(k.principal_id, k.created_by) for k in keys[1:]] == [(ada.id, "root")] * 2
            entries = repository.list_ledger(s)
            assert [(e.action, e.actor_principal, e.actor_name, e.actor_key)
                    for e in entries[1:]] == \
                [("key_create", root.id, "root", keys[0].id)] * 2 + \
                [("key_revoke", root.id, "root", keys[0].id)]
            assert entries[0].actor_principal.startswith("cli:")
        engine.dispose()
        listing = run("keys", "list")
        assert listing.count(f"ada (person, principal {ada.id}; created by root)") == 2
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
    assert "churn production: already 2 (unchanged, not recorded)" in run(
        "promote", "churn", "2", *url, "--key", apr)
    assert "2 -> 1 (rollback)" in run("rollback", "churn", *url, "--key", apr)
    history = run("history", "churn", *url, "--key", apr)
    assert "rollback" in history and "by ada" in history
    assert "approve" in run("ledger", *url, "--key", apr)
    assert "cannot reach" in run("versions", "churn", "--url", "http://127.0.0.1:9",
                                 "--key", pub, code=1)


def test_promote_allow_breaking(migrated_engine: Engine, seeded: sessionmaker[Session],
                                serve: Callable, tmp_path: Path) -> None:  # type: ignore[type-arg]
    with seeded() as s:
        pub = create_key(session=s, name="pat", role="publisher")[1]
        apr = create_key(session=s, name="ada", role="approver")[1]
        s.commit()
    server = serve(registry_app(engine=migrated_engine, sessions=seeded))
    contract = b.small_contract(name="narrow")
    narrowed = contract.model_copy(update={"features": tuple(
        f.model_copy(update={"maximum": 600.0}) if f.name == "tenure_months" else f
        for f in contract.features)})
    write_dir(contract_bundle(narrowed, label="narrowed"), tmp_path / "features")
    url = ("--url", server.url)
    assert "published features version 2" in run("push", str(tmp_path / "features"), *url,
                                                 "--key", pub)
    run("approve", "features", "2", *url, "--key", apr)
    refused = run("promote", "features", "2", *url, "--key", apr, code=1)
    assert "breaking_contract" in refused and "tenure_months" in refused
    out = run("promote", "features", "2", "--allow-breaking", *url, "--key", apr)
    assert "features production: 1 -> 2" in out
    assert "breaking: tenure_months: range narrowed" in out
