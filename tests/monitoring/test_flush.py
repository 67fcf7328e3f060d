"""Flushing counts: absolute values per replica (a repeated flush changes nothing, two
replicas add up), kept in memory while the database is down, read back as totals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from app.monitoring.aggregate import ScoredCounts
from app.monitoring.alerts import Thresholds
from app.registry import database
from app.registry import monitoring as queries
from app.registry.monitor import ReplicaMonitoring
from app.scoring.context import ScoringContext
from tests.registry.db import drop_pg_database, fresh_database

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh migrated database of each kind (its own PostgreSQL database per test)."""
    url = fresh_database(request.param, tmp_path)
    engine = database.make_engine(url)
    database.upgrade(engine)
    engine.dispose()
    yield url
    if request.param == "postgresql":
        drop_pg_database(url)


@pytest.fixture
def sessions(db_url: str) -> Iterator[database.sessionmaker[Session]]:
    engine = database.make_engine(db_url)
    yield database.make_sessionmaker(engine)
    engine.dispose()


def _replica(sessions: object, name: str) -> ReplicaMonitoring:
    return ReplicaMonitoring(ScoredCounts(), sessions, interval=3600,  # type: ignore[arg-type]
                             retention_days=400, window_days=30, thresholds=Thresholds(),
                             replica=name)


def _rows(sessions: database.sessionmaker[Session]) -> dict[str, int]:
    with sessions() as session:
        totals = queries.totals(session, since=TODAY, until=TODAY)
    return {f: n for (f, _, _, series, _), n in totals.items() if series == "rows"}


def test_flushes_are_absolute_and_replicas_add_up(
        sessions: database.sessionmaker[Session], default_context: ScoringContext) -> None:
    x = np.zeros((7, len(default_context.schema)))
    a, b = _replica(sessions, "a"), _replica(sessions, "b")
    a.counts.observe(default_context, "production", x, [{}] * 7)
    b.counts.observe(default_context, "production", x[:3], [{}] * 3)
    assert a.flush() > 0 and b.flush() > 0
    a.flush()  # again: nothing new, nothing added
    assert _rows(sessions) == {"tier": 10, "churn": 10, "products": 10}
    a.counts.observe(default_context, "production", x[:1], [{}])
    a.flush()
    assert _rows(sessions) == {"tier": 11, "churn": 11, "products": 11}


def test_counts_wait_in_memory_while_the_database_is_down(
        sessions: database.sessionmaker[Session], default_context: ScoringContext) -> None:
    down = True

    @contextmanager
    def flaky() -> Iterator[Session]:
        if down:
            raise ConnectionError("database down")
        with sessions() as session:
            yield session

    replica = _replica(flaky, "r")
    x = np.zeros((5, len(default_context.schema)))
    replica.counts.observe(default_context, "production", x, [{}] * 5)
    with pytest.raises(ConnectionError):
        replica.flush()
    replica.counts.observe(default_context, "production", x, [{}] * 5)
    down = False
    replica.flush()
    assert _rows(sessions) == {"tier": 10, "churn": 10, "products": 10}


def test_the_report_reads_the_database_directly(
        sessions: database.sessionmaker[Session], db_url: str, tmp_path: Path,
        default_context: ScoringContext, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from app.cli import cli
    from app.config import get_settings

    replica = _replica(sessions, "r")
    x = np.zeros((5, len(default_context.schema)))
    replica.counts.observe(default_context, "production", x, [{}] * 5)
    replica.flush()
    monkeypatch.setenv("TIERWISE_DATABASE_URL", db_url)
    get_settings.cache_clear()
    try:
        out = tmp_path / "report.html"
        result = CliRunner().invoke(cli, ["report", "--out", str(out)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "3 scored version(s)" in result.output
    page = out.read_text()
    assert "churn v1 (production), 5 customers scored" in page
    # The registry holds no version yet: no reference to compare with, said plainly.
    assert "No reference" in page
