"""Migrations upgrade and downgrade cleanly on both databases, and the guards come and go."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from app.registry import database
from app.registry.auth_keys import check_key, hash_key
from app.registry.tables import Base
from tests.registry.db import drop_pg_database, fresh_database


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_downgrade_upgrade(kind: str, tmp_path: Path) -> None:
    url = fresh_database(kind, tmp_path)
    engine = database.make_engine(url)
    try:
        assert database.current_revision(engine) is None
        database.upgrade(engine)
        assert database.current_revision(engine) == database.head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM families")).scalar() == 6
        database.downgrade(engine, "base")
        assert database.current_revision(engine) is None
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        if kind == "postgresql":
            with engine.connect() as conn:
                assert conn.execute(text(
                    "SELECT count(*) FROM pg_proc WHERE proname = 'tierwise_write_once'"
                )).scalar() == 0
        database.upgrade(engine)  # and back up again on the emptied database
        assert database.current_revision(engine) == database.head_revision()
    finally:
        engine.dispose()
        if kind == "postgresql":
            drop_pg_database(url)


def test_orm_matches_the_migration(migrated_engine) -> None:  # type: ignore[no-untyped-def]
    """The ORM and the static migration describe the same columns and constraint names."""
    insp = inspect(migrated_engine)
    for table in Base.metadata.sorted_tables:
        assert {c["name"] for c in insp.get_columns(table.name)} == {c.name for c in table.c}
        fks = {fk["name"] for fk in insp.get_foreign_keys(table.name)}
        assert fks == {c.name for c in table.foreign_key_constraints}, table.name
        uniques = {u["name"] for u in insp.get_unique_constraints(table.name)}
        expected = {c.name for c in table.constraints if c.__class__.__name__ == "UniqueConstraint"}
        assert uniques == expected, table.name


OLD_ROWS = [
    "INSERT INTO api_keys (id, name, role, key_hash, created_at, created_by) VALUES "
    "('aaaa01', 'ada', 'approver', 'x', :at, 'system'), "
    "('aaaa02', 'ada', 'publisher', 'x', :at, 'system'), "
    "('aaaa03', 'ci bot', 'publisher', :ci_hash, :at, 'system'), "
    "('aaaa04', 'system', 'scorer', 'x', :at, 'system')",
    "INSERT INTO model_versions (family, version, sha256, label, manifest, size_bytes, "
    "created_by_key, created_by_name, created_at) "
    "VALUES ('churn', 1, 'sha', '', '{}', 1, 'aaaa02', 'ada', :at)",
    "INSERT INTO approvals (family, version, approver_key, approver_name, note, created_at) "
    "VALUES ('churn', 1, 'aaaa01', 'ada', '', :at)",
    "INSERT INTO ledger (at, actor_key, actor_name, actor_role, action, family, version, detail) "
    "VALUES (:at, 'system', 'system', 'admin', 'key_create', NULL, NULL, '{}'), "
    "(:at, 'aaaa02', 'ada', 'publisher', 'push', 'churn', 1, '{}'), "
    "(:at, 'aaaa01', 'ada', 'approver', 'approve', 'churn', 1, '{}')",
]
CI_KEY = "tw_aaaa03_secret"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_makes_each_existing_key_its_own_principal(kind: str, tmp_path: Path) -> None:
    url = fresh_database(kind, tmp_path)
    engine = database.make_engine(url)
    try:
        database.upgrade(engine, "20261123_registry")
        with engine.begin() as conn:
            for sql in OLD_ROWS:
                conn.execute(text(sql), {"at": "2026-11-30 10:00:00+00:00",
                                         "ci_hash": hash_key(CI_KEY)})
        database.upgrade(engine)
        with engine.connect() as conn:
            principals = dict(conn.execute(text("SELECT id, name FROM principals")).all())
            assert principals == {"aaaa01": "ada (key aaaa01)", "aaaa02": "ada (key aaaa02)",
                                  "aaaa03": "ci bot", "aaaa04": "system (key aaaa04)"}
            assert conn.execute(text(
                "SELECT count(*) FROM api_keys WHERE principal_id = id")).scalar() == 4
            assert conn.execute(text("SELECT created_by_principal FROM model_versions")
                                ).scalar() == "aaaa02"
            assert conn.execute(text("SELECT approver_principal FROM approvals")).scalar() \
                == "aaaa01"
            assert conn.execute(text("SELECT actor_principal FROM ledger ORDER BY id")
                                ).scalars().all() == ["system", "aaaa02", "aaaa01"]
            for sql in ("UPDATE ledger SET actor_principal = 'x'",
                        "UPDATE model_versions SET created_by_principal = 'x'",
                        "UPDATE approvals SET approver_principal = 'x'"):
                with pytest.raises(Exception, match="tierwise: "), conn.begin_nested():
                    conn.execute(text(sql))
        with database.make_sessionmaker(engine)() as session:
            found = check_key(session, CI_KEY)
            assert found is not None and (found.name, found.principal_id) == ("ci bot", "aaaa03")
        database.downgrade(engine, "20261123_registry")
        assert "principals" not in inspect(engine).get_table_names()
        assert "actor_principal" not in {c["name"] for c in inspect(engine).get_columns("ledger")}
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM ledger")).scalar() == 3
            assert conn.execute(text("SELECT name FROM api_keys ORDER BY id")).scalars().all() \
                == ["ada", "ada", "ci bot", "system"]
            with pytest.raises(Exception, match="tierwise: "):
                conn.execute(text("UPDATE ledger SET actor_name = 'x'"))
        database.upgrade(engine)
        assert database.current_revision(engine) == database.head_revision()
    finally:
        engine.dispose()
        if kind == "postgresql":
            drop_pg_database(url)
