"""First start and a running replica: seeding, the bootstrap admin key, polling, fail-fast."""

from __future__ import annotations

import gc
import stat
import time
from pathlib import Path

import pytest

from app.config import Settings
from app.engine.compiled import evaluator_info
from app.registry import repository, service
from app.registry.runtime import RegistryStartupError, open_runtime
from tests.registry import bundles as b
from tests.registry.db import create_pg_database, drop_pg_database
from tests.registry.test_service import APPROVER, promote, push


def _settings(tmp_path: Path, models_dir: Path, **kw: object) -> Settings:
    fields: dict[str, object] = {
        "database_url": f"sqlite:///{tmp_path / 'var' / 'registry.sqlite3'}",
        "models_dir": models_dir, "bootstrap_admin_key_file": tmp_path / "var" / "admin.key",
        "poll_interval_seconds": 0.05, **kw}
    return Settings(**fields)  # type: ignore[arg-type]


def test_first_start_then_hot_swap_by_polling(tmp_path: Path, models_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path, models_dir)
    runtime = open_runtime(settings)
    try:
        key_file = settings.bootstrap_admin_key_file
        assert f"admin key written to {key_file}" in capsys.readouterr().err
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        admin = runtime.keys.authenticate(key_file.read_text().strip())
        assert admin is not None and (admin.role, admin.name) == ("admin", "bootstrap admin")
        with runtime.sessionmaker() as s:  # the one key the actor `system` creates
            (key,) = repository.list_api_keys(s)
            assert (key.principal_id, key.created_by) == (admin.principal_id, "system")
        gc.unfreeze()
        assert runtime.wait_ready(10)
        assert runtime.live.status()["versions"]["churn"]["version"] == 1
        # The live context's objects sit in the collector's permanent generation.
        deadline = time.monotonic() + 5
        while gc.get_freeze_count() < 50_000 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gc.get_freeze_count() >= 50_000, gc.get_freeze_count()
        with runtime.sessionmaker.begin() as s:
            v = push(s, b.churn_bundle(1)).version
            service.approve(session=s, family="churn", version=v, actor=APPROVER)
            promote(s, churn=v)
        moved = time.monotonic()
        while runtime.live.current().versions["churn"].version != 2:
            assert time.monotonic() - moved < 5, runtime.live.status()
            time.sleep(0.02)
    finally:
        runtime.close()
    key_file.unlink()
    runtime = open_runtime(settings, start_poller=False)  # second start: no new key, no reseed
    try:
        assert not key_file.exists()
        with runtime.sessionmaker() as s:
            assert repository.count_active_keys(s) == 1
            assert repository.latest_version_number(s, "tier") == 1
    finally:
        runtime.close()


def test_unreachable_database_fails_fast(tmp_path: Path, models_dir: Path) -> None:
    settings = _settings(tmp_path, models_dir,
                         database_url="postgresql+psycopg://tw:secret@127.0.0.1:9/registry")
    started = time.monotonic()
    with pytest.raises(RegistryStartupError, match="cannot reach the registry database") as exc:
        open_runtime(settings)
    assert "secret" not in str(exc.value) and time.monotonic() - started < 10


def test_missing_default_models_fail_fast(tmp_path: Path) -> None:
    (tmp_path / "models" / "tier").mkdir(parents=True)
    with pytest.raises(RegistryStartupError, match="has no bundle for features, tier, churn"):
        open_runtime(_settings(tmp_path, tmp_path / "models"))


def test_live_contexts_use_the_native_evaluator_unless_disabled(tmp_path: Path,
                                                                models_dir: Path) -> None:
    settings = _settings(tmp_path, models_dir, compile_cache_dir=tmp_path / "compiled")
    runtime = open_runtime(settings)
    try:
        assert runtime.wait_ready(30)
        assert runtime.live.current().evaluator.name == "treewalk"
        status = runtime.live.status()
        assert status["evaluator"] == "treewalk"
        # The CPU's kernels, as the tierwise_evaluator_info metric labels them.
        assert status["isa"] in ("avx512", "avx2", "walk")
        assert status["isa"] == evaluator_info(runtime.live.current().evaluator)[1]
    finally:
        runtime.close()
    slow = _settings(tmp_path / "plain", models_dir, compile_models=False)
    runtime = open_runtime(slow)
    try:
        assert runtime.wait_ready(30)
        assert runtime.live.current().evaluator.name == "lightgbm"
        assert (runtime.live.status()["evaluator"], runtime.live.status()["isa"]) == \
            ("lightgbm", "none")
    finally:
        runtime.close()


def test_on_postgresql_a_move_is_heard_not_polled(tmp_path: Path, models_dir: Path) -> None:
    url = create_pg_database("tierwise_notify")
    try:
        settings = _settings(tmp_path, models_dir, database_url=url, poll_interval_seconds=60,
                             compile_models=False)
        runtime = open_runtime(settings)
        try:
            assert runtime.wait_ready(30) and runtime.listener is not None
            assert runtime.listener.wait_listening(10)
            assert runtime.live.status()["alias_notify"] == "listening"
            with runtime.sessionmaker.begin() as s:
                v = push(s, b.churn_bundle(1)).version
                service.approve(session=s, family="churn", version=v, actor=APPROVER)
                promote(s, churn=v)
            moved = time.monotonic()
            while runtime.live.current().versions["churn"].version != 2:  # polls: every 60 s
                assert time.monotonic() - moved < 2, runtime.live.status()
                time.sleep(0.01)
        finally:
            runtime.close()
        assert not runtime.listener.listening
        quiet = open_runtime(_settings(tmp_path / "quiet", models_dir, database_url=url,
                                       registry_notify=False, compile_models=False))
        try:  # TIERWISE_REGISTRY_NOTIFY=false: polling only
            assert quiet.listener is None and quiet.live.status()["alias_notify"] is None
        finally:
            quiet.close()
    finally:
        drop_pg_database(url)
    # SQLite: nothing to listen to; polling alone.
    runtime = open_runtime(_settings(tmp_path / "lite", models_dir), start_poller=True)
    try:
        assert runtime.listener is None and runtime.live.status()["alias_notify"] is None
    finally:
        runtime.close()
