"""Migrations upgrade and downgrade cleanly on both databases, and the guards come and go."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from app.registry import database
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
            assert conn.execute(text("SELECT count(*) FROM families")).scalar() == 5
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
