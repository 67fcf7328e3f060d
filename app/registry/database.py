"""Engines, sessions and migrations for the registry database (SQLite or PostgreSQL)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker

from app.config import DATA_ROOT

MIGRATIONS_DIR = DATA_ROOT / "migrations"  # the checkout's migrations/, or the wheel's copy
# Arbitrary but fixed: every replica takes this advisory lock while migrating and seeding.
_PG_STARTUP_LOCK = 0x7469657277697365  # "tierwise"


def normalise_url(url: str) -> str:
    """Accept postgresql:// and postgres:// and route them to psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages and logs."""
    return make_url(normalise_url(url)).render_as_string(hide_password=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the registry; SQLite gets real transactions, WAL and foreign keys."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        if parsed.get_backend_name() == "postgresql":  # fail fast, not after the OS timeout
            kwargs.setdefault("connect_args", {"connect_timeout": 10})
        return create_engine(url, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False},
                           **kwargs)
    _sqlite_transactions(engine)
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    # The sqlite3 driver's legacy mode skips BEGIN for SELECT, DDL and SAVEPOINT; we emit
    # BEGIN ourselves so migrations are transactional and savepoints nest (SQLAlchemy's recipe).
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN")


def make_sessionmaker(bind: Engine | Connection, **kwargs: Any) -> sessionmaker[Session]:
    """Sessions that keep loaded rows usable after commit (views are built after it)."""
    return sessionmaker(bind=bind, expire_on_commit=False, **kwargs)


def alembic_config(url: str | None = None, connection: Connection | None = None) -> Config:
    """Alembic configured in code: script location in the repo, URL or live connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` (one transaction)."""
    with engine.begin() as conn:
        command.upgrade(alembic_config(connection=conn), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Revert migrations down to `revision` ("base" removes every registry table)."""
    with engine.begin() as conn:
        command.downgrade(alembic_config(connection=conn), revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None when never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest revision in migrations/."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def is_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached (down, refused, connection lost,
    pool exhausted), as opposed to a query the database refused."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def check_reachable(engine: Engine) -> None:
    """Open one connection and run a trivial query (raises on an unreachable database)."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


@contextlib.contextmanager
def startup_lock(engine: Engine) -> Iterator[None]:
    """Serialise migrate-and-seed across replicas/workers starting at the same time."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_STARTUP_LOCK})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_STARTUP_LOCK})
                conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield
        return
    fd = os.open(f"{database}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
