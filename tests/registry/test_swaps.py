"""Fast, targeted swaps: only changed families are loaded, recent contexts come back without a
rebuild, slow preparation runs after the swap, and PostgreSQL notifications wake the poller."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session, sessionmaker

from app.bundles.io import sha256_hex
from app.registry import database, service
from app.registry.builder import forget_loaded_families
from app.registry.live import LiveScoring
from app.registry.notify import AliasListener, announce_moves, libpq_conninfo
from app.registry.poller import AliasPoller
from app.scoring.context import ScoringContext
from tests.registry import bundles as b
from tests.registry.db import PG_ADMIN_URL, bypass_write_once, pg_unavailable
from tests.registry.test_live import _ship
from tests.registry.test_service import APPROVER


def _rollback(sessions: sessionmaker[Session], family: str) -> None:
    with sessions() as s:
        service.rollback(session=s, family=family, actor=APPROVER)
        s.commit()


def test_only_the_family_that_moved_is_loaded(seeded: sessionmaker[Session]) -> None:
    forget_loaded_families()  # loaded families are kept process-wide, by their bytes
    live = LiveScoring(sessions=seeded)
    live.refresh()
    first = live.current()
    assert live.builder.loads == 6  # every family, once
    _ship(seeded, b.churn_bundle(1))
    forget_loaded_families()  # the promotion's own check loaded churn 2 in this process
    assert live.refresh()
    second = live.current()
    assert second.versions["churn"].version == 2 and live.builder.loads == 7
    assert second.churn is not first.churn
    # The families that did not move are the very objects the first context holds.
    for part in ("contract", "tier", "products", "catalog", "policy"):
        assert getattr(second, part) is getattr(first, part), part
    assert live.status()["last_build_seconds"] is not None


def test_moving_back_reuses_the_recent_context(seeded: sessionmaker[Session]) -> None:
    live = LiveScoring(sessions=seeded)
    live.refresh()
    first = live.current()
    _ship(seeded, b.churn_bundle(1))
    live.refresh()
    second = live.current()
    loads = live.builder.loads
    _rollback(seeded, "churn")
    assert live.refresh()
    assert live.current() is first  # the context itself, evaluator and all: no rebuild
    assert live.builder.loads == loads and live.builder.reused == 1
    with seeded() as s:  # promote version 2 again: the second context comes back
        service.move_aliases(session=s, actor=APPROVER,
                             moves=[service.AliasMove("churn", "production", 2)])
        s.commit()
    assert live.refresh() and live.current() is second
    assert live.status()["recent_contexts"] == 2


def test_recent_contexts_are_bounded(seeded: sessionmaker[Session]) -> None:
    live = LiveScoring(sessions=seeded, recent_contexts=1)
    live.refresh()
    first = live.current()
    _ship(seeded, b.churn_bundle(1))
    live.refresh()
    _rollback(seeded, "churn")
    live.refresh()
    back = live.current()
    assert back is not first and back.versions["churn"].version == 1  # built again
    assert live.builder.reused == 0 and live.status()["recent_contexts"] == 1
    assert back.tier is first.tier  # still only the family that moved is loaded


def test_a_version_tampered_after_it_was_loaded_is_refused(
        seeded: sessionmaker[Session], connection: Connection) -> None:
    live = LiveScoring(sessions=seeded)
    live.refresh()
    _ship(seeded, b.churn_bundle(1))
    live.refresh()
    _rollback(seeded, "churn")
    live.refresh()
    assert live.current().versions["churn"].version == 1
    # Version 2 was loaded and verified before; its bytes change at rest (recorded hash
    # included). The cached copy must not be taken for it: the archive is hashed again.
    bypass_write_once(connection, "artifacts")
    content = bytearray(b.archive(b.churn_bundle(1)))
    content[len(content) // 2] ^= 0xFF
    connection.execute(text(
        "UPDATE artifacts SET content = :c, sha256 = :h WHERE version_id = "
        "(SELECT id FROM model_versions WHERE family = 'churn' AND version = 2)"),
        {"c": bytes(content), "h": sha256_hex(bytes(content))})
    connection.execute(text("UPDATE aliases SET version = 2 WHERE family = 'churn' "
                            "AND alias = 'production'"))
    assert not live.refresh()
    assert live.current().versions["churn"].version == 1
    failure = live.status()["last_failure"]
    assert failure["not_swapped_in"] == {"churn": 2}
    assert failure["error"]["code"] == "bundle_rejected"


def test_warm_up_runs_after_the_swap_and_does_not_delay_it(
        seeded: sessionmaker[Session]) -> None:
    release = threading.Event()
    warmed: list[tuple[int, bool]] = []
    holder: dict[str, LiveScoring] = {}

    def warm(ctx: ScoringContext) -> None:
        warmed.append((ctx.versions["churn"].version, holder["live"].current() is ctx))
        release.wait(10)

    live = holder["live"] = LiveScoring(sessions=seeded, warm=warm)
    live.refresh()
    _ship(seeded, b.churn_bundle(1))
    started = time.monotonic()
    assert live.refresh()  # returns while the warm-up of the new context is still blocked
    assert time.monotonic() - started < 5 and live.current().versions["churn"].version == 2
    deadline = time.monotonic() + 5
    while len(warmed) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    assert (2, True) in warmed  # the context it prepared was already serving


class _Counting:
    def __init__(self) -> None:
        self.calls = 0

    def refresh(self) -> bool:
        self.calls += 1
        return False


def test_wake_refreshes_at_once_without_waiting_for_the_interval() -> None:
    target = _Counting()
    poller = AliasPoller(target, interval=60)
    poller.start()
    try:
        deadline = time.monotonic() + 5
        while target.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        poller.wake()
        while target.calls < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert target.calls == 2
    finally:
        poller.stop()


def test_conninfo_drops_the_driver_and_keeps_the_password() -> None:
    assert libpq_conninfo("postgresql+psycopg://u:p%40ss@db:5433/reg") == \
        "postgresql://u:p%40ss@db:5433/reg"


def test_a_move_announces_on_either_database(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:  # SQLite: nothing is sent; PostgreSQL: queued until commit
        service.move_aliases(session=s, actor=APPROVER,
                             moves=[service.AliasMove("churn", "staging", 1)])
        announce_moves(s, [])
        s.commit()


@pytest.fixture
def pg_sessions() -> sessionmaker[Session]:
    engine = database.make_engine(PG_ADMIN_URL)
    try:
        database.check_reachable(engine)
    except Exception as exc:
        pg_unavailable(str(exc).splitlines()[0])
    return database.make_sessionmaker(engine)


def test_a_committed_move_wakes_the_listener_and_a_rolled_back_one_does_not(
        pg_sessions: sessionmaker[Session]) -> None:
    woken = threading.Event()
    listener = AliasListener(PG_ADMIN_URL, woken.set)
    listener.start()
    try:
        assert listener.wait_listening(10)
        assert woken.wait(2)  # woken once on connecting: catch up on missed moves
        woken.clear()
        with pg_sessions() as s:
            announce_moves(s, ["churn"])
            s.rollback()
        assert not woken.wait(1.0)
        with pg_sessions() as s:
            announce_moves(s, ["churn", "policy"])
            sent = time.monotonic()
            s.commit()
        assert woken.wait(2)
        print(f"notified after {time.monotonic() - sent:.4f}s")
        assert listener.notifications == 1
    finally:
        listener.stop()
    assert not listener.listening


def test_listener_without_a_database_keeps_trying_quietly() -> None:
    woken = threading.Event()
    listener = AliasListener("postgresql+psycopg://nobody@127.0.0.1:1/none", woken.set,
                             max_backoff=0.5)
    listener.start()
    try:
        time.sleep(1.0)
        assert not listener.listening and not woken.is_set()
    finally:
        listener.stop()


def test_a_policy_change_keeps_the_checked_evaluator(seeded: sessionmaker[Session]) -> None:
    built: list[int] = []
    live = LiveScoring(sessions=seeded, accelerate=lambda ctx: built.append(id(ctx)))
    live.refresh()
    first = live.current()
    _ship(seeded, b.policy_bundle("shadow"))
    live.refresh()
    second = live.current()
    assert second.versions["policy"].version == 2 and second.policy is not first.policy
    assert second.evaluator is first.evaluator and built == [id(first)]
    _ship(seeded, b.churn_bundle(1))  # a model moved: its evaluator is built and checked,
    live.refresh()  # right after the new context went live
    deadline = time.monotonic() + 10
    while len(built) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert built == [id(first), id(live.current())]


def test_a_new_model_serves_at_once_and_gets_its_evaluator_right_after(
        seeded: sessionmaker[Session]) -> None:
    release, fast = threading.Event(), object()

    def accelerate(ctx: ScoringContext) -> None:
        if ctx.versions["churn"].version == 2:
            release.wait(10)
        ctx.use_evaluator(fast)  # type: ignore[arg-type]

    live = LiveScoring(sessions=seeded, accelerate=accelerate)
    live.refresh()
    assert live.current().evaluator is fast  # the first context: before it serves
    _ship(seeded, b.churn_bundle(1))
    assert live.refresh()  # does not wait for the evaluator
    ctx = live.current()
    assert ctx.versions["churn"].version == 2 and ctx.evaluator.name == "lightgbm"
    release.set()
    deadline = time.monotonic() + 10
    while ctx.evaluator is not fast and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ctx.evaluator is fast


def test_a_lost_listening_connection_is_logged_once_and_comes_back(
        pg_sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    woken = threading.Event()
    listener = AliasListener(PG_ADMIN_URL, woken.set, max_backoff=0.5)
    listener.start()
    try:
        assert listener.wait_listening(10) and woken.wait(2)
        woken.clear()
        with pg_sessions() as s:  # cut the listener's connection from the server's side
            s.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE query = 'LISTEN tierwise_aliases'"))
            s.commit()
        assert woken.wait(10)  # reconnected: woken once to read the aliases it may have missed
        assert listener.wait_listening(5)
        messages = [r.getMessage() for r in caplog.records]
        assert sum("not listening for alias moves" in m for m in messages) == 1
        assert sum("listening for alias moves again" in m for m in messages) == 1
        woken.clear()
        with pg_sessions() as s:
            announce_moves(s, ["tier"])
            s.commit()
        assert woken.wait(2)
    finally:
        listener.stop()


def test_checks_of_a_move_reuse_families_loaded_from_the_same_bytes(
        seeded: sessionmaker[Session]) -> None:
    forget_loaded_families()
    with seeded() as s:
        production = {f: 1 for f in b.default_set()}
        first = service.build_from(s, production)
        again = service.build_from(s, production)
        assert again is not first
        assert again.products is first.products and again.churn is first.churn
        replaced = service.build_from(s, production, {"churn": b.churn_bundle(1)})
        assert replaced.churn is not first.churn and replaced.tier is first.tier
