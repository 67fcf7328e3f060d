"""Alias moves from many threads at once, each with its own session and connection, on
committed data (SQLite file and PostgreSQL): the ledger stays a true chain of moves."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict
from app.registry import database, repository, service
from app.registry.auth_keys import Principal
from app.registry.seed import seed_from_dir
from app.registry.tables import LedgerRow
from tests.registry import bundles as b
from tests.registry.db import drop_pg_database, fresh_database

PAT = Principal("k-pat", "pat", "publisher", "p-pat")
ADA = Principal("k-ada", "ada", "approver", "p-ada")
VERSIONS = range(2, 22)  # churn 2..21: twenty approved versions besides the seeded 1


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
             models_dir: Path) -> Iterator[sessionmaker[Session]]:
    """A committed registry: seeded, plus churn 2..21 published by Pat and approved by Ada."""
    url = fresh_database(request.param, tmp_path_factory.mktemp("cas"))
    engine = database.make_engine(url, pool_size=25, max_overflow=5)
    try:
        database.upgrade(engine)
        sessions = database.make_sessionmaker(engine)
        with sessions.begin() as s:
            seed_from_dir(session=s, models_dir=models_dir, max_bytes=1 << 24)
            for seed in VERSIONS:
                row = service.publish(session=s, family="churn", max_bytes=1 << 24, actor=PAT,
                                      archive=b.archive(b.churn_bundle(seed)))
                service.approve(session=s, family="churn", version=row.version, actor=ADA)
        yield sessions
    finally:
        engine.dispose()
        if request.param == "postgresql":
            drop_pg_database(url)


def all_at_once(calls: Sequence[Callable[[], object]]) -> list[object]:
    """Run each call in its own thread, released together; results or raised errors."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # kept and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads)
    return results


def promote(sessions: sessionmaker[Session], version: int) -> Callable[[], object]:
    """One promotion in its own transaction (commits when it returns)."""
    def call() -> object:
        with sessions.begin() as s:
            return service.move_aliases(session=s, actor=ADA, moves=[
                service.AliasMove("churn", "production", version)])
    return call


def rollback(sessions: sessionmaker[Session]) -> Callable[[], object]:
    """One rollback in its own transaction."""
    def call() -> object:
        with sessions.begin() as s:
            return service.rollback(session=s, family="churn", actor=ADA)
    return call


def production_moves(sessions: sessionmaker[Session]) -> list[LedgerRow]:
    """Every recorded move of churn's production, in ledger order."""
    with sessions() as s:
        return list(repository.alias_moves(s, "churn", "production"))


def assert_true_chain(sessions: sessionmaker[Session]) -> list[LedgerRow]:
    """Each move replaced the version the move before it set; the alias is the last one."""
    moves = production_moves(sessions)
    for before, after in itertools.pairwise(moves):
        assert after.previous_version == before.version, (before.id, after.id)
        assert after.version != after.previous_version  # no-ops are never recorded
    with sessions() as s:
        alias = repository.get_alias(s, "churn", "production")
        assert alias is not None and alias.version == moves[-1].version
    return moves


def test_twenty_concurrent_promotions_record_a_true_chain(
        registry: sessionmaker[Session]) -> None:
    start = len(production_moves(registry))
    results = all_at_once([promote(registry, v) for v in VERSIONS])
    assert not [r for r in results if isinstance(r, Exception)]
    moves = assert_true_chain(registry)[start:]
    assert sorted(m.version for m in moves) == list(VERSIONS)  # every promotion recorded once
    assert len({m.previous_version for m in moves}) == len(moves)  # not all "previous: 1"


def test_concurrent_rollbacks_and_promotions_never_record_a_false_previous(
        registry: sessionmaker[Session]) -> None:
    start = len(production_moves(registry))
    calls = [c for v in VERSIONS[:10] for c in (promote(registry, v), rollback(registry))]
    results = all_at_once(calls)
    unexpected = [r for r in results if isinstance(r, Exception) and not isinstance(r, Conflict)]
    assert not unexpected
    moves = assert_true_chain(registry)
    rollbacks = [i for i, m in enumerate(moves) if i >= start and m.detail["reason"] == "rollback"]
    assert rollbacks  # some rollbacks ran between the promotions
    for i in rollbacks:  # each went back to what production was before the version it replaced
        lineage = service.production_lineage(moves[:i])
        assert (moves[i].previous_version, moves[i].version) == (lineage[-1], lineage[-2])


def test_concurrent_moves_to_the_current_version_record_nothing(
        registry: sessionmaker[Session]) -> None:
    current = assert_true_chain(registry)[-1].version
    before = len(production_moves(registry))
    results = all_at_once([promote(registry, current) for _ in range(10)])
    assert all(isinstance(r, service.MovesDone) and not r.entries and len(r.unchanged) == 1
               for r in results), results
    assert len(production_moves(registry)) == before
