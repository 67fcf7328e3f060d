"""Database fixtures for registry tests: SQLite and a fresh PostgreSQL database per run.

Each test runs inside one outer transaction that is rolled back at the end; sessions the
code under test opens join it through savepoints, so `commit()` works and nothing leaks.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.registry import database
from app.registry.seed import seed_from_dir
from app.registry.tables import Base
from tests.registry.bundles import write_models_dir

PG_ADMIN_URL = os.environ.get("TIERWISE_TEST_PG_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_unavailable(reason: str) -> None:
    """Fail in CI (CI=true), skip loudly elsewhere."""
    message = f"PostgreSQL at {database.safe_url(PG_ADMIN_URL)} unavailable: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " (CI=true: the PostgreSQL suite may not skip)")
    pytest.skip("!!! SKIPPING a PostgreSQL test (set CI=true to make this fail): " + message)


def create_pg_database(prefix: str = "tierwise_test") -> str:
    """A new, empty database on the test server; returns its URL."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    admin = database.make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        pg_unavailable(str(exc).splitlines()[0])
    finally:
        admin.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def drop_pg_database(url: str) -> None:
    """Drop a database made by create_pg_database (its connections are closed first)."""
    name = url.rsplit("/", 1)[1]
    admin = database.make_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def fresh_database(kind: str, tmp: Path) -> str:
    """The URL of a new empty database of `kind` (sqlite or postgresql)."""
    if kind == "sqlite":
        return f"sqlite:///{tmp / f'registry-{secrets.token_hex(3)}.sqlite3'}"
    return create_pg_database()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[str]:
    """Which database the test runs on."""
    return request.param


@pytest.fixture(scope="session")
def migrated_engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated, empty registry database for the whole run (dropped at the end)."""
    url = fresh_database(backend, tmp_path_factory.mktemp("db"))
    engine = database.make_engine(url)
    database.upgrade(engine)
    yield engine
    engine.dispose()
    if backend == "postgresql":
        drop_pg_database(url)


@pytest.fixture
def connection(migrated_engine: Engine) -> Iterator[Connection]:
    """One connection in a transaction that the test's end rolls back."""
    with migrated_engine.connect() as conn:
        outer = conn.begin()
        yield conn
        if outer.is_active:
            outer.rollback()


@pytest.fixture
def sessions(connection: Connection) -> sessionmaker[Session]:
    """Sessions joined to the test transaction (their commits become savepoints)."""
    return database.make_sessionmaker(connection, join_transaction_mode="create_savepoint")


def snapshot(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every registry table, in primary-key order."""
    out = {}
    for table in Base.metadata.sorted_tables:
        rows = conn.execute(select(table).order_by(*table.primary_key.columns)).all()
        out[table.name] = [tuple(r) for r in rows]
    return out


def bypass_write_once(conn: Connection, table: str) -> None:
    """Let this transaction UPDATE a write-once table (tests simulate tampering at rest)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SET LOCAL session_replication_role = replica"))
    else:
        for verb in ("update", "delete"):
            conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{verb}"))


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models/ directory with version 1 of every family (tiny test models)."""
    return write_models_dir(tmp_path_factory.mktemp("models"))


@pytest.fixture
def seeded(sessions: sessionmaker[Session], models_dir: Path) -> sessionmaker[Session]:
    """The registry seeded from models_dir: version 1 of each family in production."""
    with sessions() as session:
        seed_from_dir(session=session, models_dir=models_dir, max_bytes=1 << 24)
        session.commit()
    return sessions
