"""Two uvicorn replicas on one PostgreSQL registry: promote, roll back and refuse a corrupt
version while a load runs, with no restart and no failed request. Promotion and rollback
reach both replicas within 2 s through LISTEN/NOTIFY; the corrupt version, moved by SQL
without a notification, is found by polling.

Needs the PostgreSQL server on 127.0.0.1:5432 (a fresh database is made and dropped); with
CI=true it fails instead of skipping when the server is down.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from app.bundles.io import sha256_hex, write_dir
from app.cli import cli
from app.config import PROJECT_ROOT, get_settings
from app.registry.database import make_engine
from tests.conftest import free_port
from tests.registry import bundles as b
from tests.registry.db import create_pg_database, drop_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
# Promote and rollback reach both replicas through LISTEN/NOTIFY: the poll interval below is
# longer than the deadline, so a swap in time is one a notification woke.
SWAP_DEADLINE = 2.0
POLL_INTERVAL = 5.0
# A move behind the API's back sends no notification: the replicas' polling finds it.
POLL_DEADLINE = 3 * POLL_INTERVAL


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Load:
    """Scoring traffic across the replicas until stopped; counts every outcome."""

    urls: list[str]
    key: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    async def _worker(self, client: httpx.AsyncClient, n: int, deadline: float) -> None:
        rng = np.random.default_rng(n)
        i = n
        while not self.stop.is_set() and time.monotonic() < deadline:
            url = self.urls[i % len(self.urls)]
            i += 1
            body = {"customer_id": f"c{n}-{i}", "features": b.example_features(rng)}
            try:
                r = await client.post(f"{url}/v1/score", json=body)
            except httpx.HTTPError as exc:
                self.failures.append(f"{url}: {exc!r}")
                continue
            if r.status_code != 200:
                self.failures.append(f"{url}: {r.status_code} {r.text[:200]}")
                continue
            self.ok += 1
            self.seen[(url, r.json()["models"]["churn"]["version"])] += 1

    def run(self, workers: int = 6, max_seconds: float = 30.0) -> None:
        async def main() -> None:
            deadline = time.monotonic() + max_seconds
            async with httpx.AsyncClient(headers={"X-API-Key": self.key}, timeout=10) as client:
                await asyncio.gather(*(self._worker(client, n, deadline) for n in range(workers)))

        asyncio.run(main())


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    url = create_pg_database("tierwise_e2e")
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="module")
def replicas(database_url: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    tmp = tmp_path_factory.mktemp("e2e")
    env = {**os.environ, "TIERWISE_DATABASE_URL": database_url,
           "TIERWISE_MODELS_DIR": str(b.write_models_dir(tmp / "models")),
           "TIERWISE_BOOTSTRAP_ADMIN_KEY_FILE": str(tmp / "admin.key"),
           "TIERWISE_POLL_INTERVAL_SECONDS": str(POLL_INTERVAL), "TIERWISE_COMPILE_MODELS": "false",
           "TIERWISE_LOG_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore"}
    started: list[Replica] = []
    for n in range(2):  # both start at once: migrations and seeding must not collide
        port, log = free_port(), tmp / f"replica{n}.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=PROJECT_ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
        started.append(Replica(f"http://127.0.0.1:{port}", process, log))
    try:
        for replica in started:
            _wait(lambda r=replica: _ready(r), 60, f"{replica.url} ready", started)
        yield started
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(15)
            except subprocess.TimeoutExpired:
                replica.process.kill()


def _ready(replica: Replica) -> bool:
    if replica.process.poll() is not None:
        raise RuntimeError(f"{replica.url} exited:\n{replica.log.read_text()[-3000:]}")
    try:
        return httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(check, seconds: float, what: str, replicas: list[Replica] | None = None) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds:
            logs = "\n".join(r.log.read_text()[-2000:] for r in replicas or [])
            raise AssertionError(f"timed out after {seconds}s waiting for {what}\n{logs}")
        time.sleep(0.05)
    return time.monotonic() - started


def _cli(*args: str, key: str) -> str:
    result = CliRunner().invoke(cli, [*args, "--key", key])
    assert result.exit_code == 0, result.output
    return result.output


def _status(replica: Replica, key: str) -> dict:  # type: ignore[type-arg]
    return httpx.get(f"{replica.url}/v1/status", headers={"X-API-Key": key}, timeout=5).json()


def _all_serve(replicas: list[Replica], key: str, version: int) -> bool:
    return all(_status(r, key)["versions"]["churn"]["version"] == version for r in replicas)


def test_promotion_and_rollback_reach_every_replica_under_load(
        replicas: list[Replica], database_url: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    admin_key = (replicas[0].log.parent / "admin.key").read_text().strip()  # first start made it
    monkeypatch.setenv("TIERWISE_DATABASE_URL", database_url)
    get_settings.cache_clear()
    keys = {}
    for role in ("scorer", "publisher", "approver"):
        result = CliRunner().invoke(cli, ["keys", "create", "--role", role,
                                          "--name", f"e2e {role}"])
        assert result.exit_code == 0, result.output
        keys[role] = result.output.strip().splitlines()[-1]
    get_settings.cache_clear()
    url = replicas[0].url
    write_dir(b.churn_bundle(7), tmp_path / "churn")

    load = Load(urls=[r.url for r in replicas], key=keys["scorer"])
    runner = threading.Thread(target=load.run, daemon=True)
    runner.start()
    try:
        _wait(lambda: load.ok > 50, 15, "first scored requests")
        assert "version 2" in _cli("push", str(tmp_path / "churn"), "--url", url,
                                   key=keys["publisher"])
        _cli("approve", "churn", "2", "--url", replicas[1].url, key=keys["approver"])
        _cli("promote", "churn", "2", "--url", url, key=keys["approver"])
        promote_latency = _wait(lambda: _all_serve(replicas, admin_key, 2), SWAP_DEADLINE,
                                "both replicas on churn 2", replicas)
        _wait(lambda: all(load.seen[(r.url, 2)] > 0 for r in replicas), 5, "scores from v2")

        _cli("rollback", "churn", "--url", replicas[1].url, key=keys["approver"])
        rollback_latency = _wait(lambda: _all_serve(replicas, admin_key, 1), SWAP_DEADLINE,
                                 "both replicas back on churn 1", replicas)
        served_v1 = {r.url: load.seen[(r.url, 1)] for r in replicas}
        _wait(lambda: all(load.seen[(r.url, 1)] > served_v1[r.url] for r in replicas), 5,
              "scores from v1 after the rollback")

        # Tamper with version 2 at rest and point production at it behind the API's back:
        # every replica must refuse it, keep serving version 1, and say so in /v1/status.
        engine = make_engine(database_url)
        with engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            content = bytearray(conn.execute(text(
                "SELECT a.content FROM artifacts a JOIN model_versions v ON v.id = a.version_id "
                "WHERE v.family = 'churn' AND v.version = 2")).scalar_one())
            content[len(content) // 2] ^= 0xFF
            conn.execute(text(
                "UPDATE artifacts SET content = :c, sha256 = :h WHERE version_id = "
                "(SELECT id FROM model_versions WHERE family = 'churn' AND version = 2)"),
                {"c": bytes(content), "h": sha256_hex(bytes(content))})
            conn.execute(text("UPDATE aliases SET version = 2 "
                              "WHERE family = 'churn' AND alias = 'production'"))
        engine.dispose()
        _wait(lambda: all((_status(r, admin_key)["last_failure"] or {}).get("not_swapped_in")
                          == {"churn": 2} for r in replicas), POLL_DEADLINE,
              "both replicas to refuse the corrupt version", replicas)
        served_v1 = {r.url: load.seen[(r.url, 1)] for r in replicas}
        _wait(lambda: all(load.seen[(r.url, 1)] > served_v1[r.url] + 20 for r in replicas), 5,
              "scores still from v1")
        for replica in replicas:
            status = _status(replica, admin_key)
            assert not status["in_sync"] and status["versions"]["churn"]["version"] == 1
    finally:
        load.stop.set()
        runner.join(30)
    history = _cli("history", "churn", "--url", url, key=keys["approver"])
    assert "rollback" in history
    print(f"\nswap latency: promote {promote_latency:.2f}s, rollback {rollback_latency:.2f}s; "
          f"{load.ok} requests, {len(load.failures)} failed; per (replica, churn version): "
          f"{dict(load.seen)}")
    assert load.failures == [], load.failures[:5]
    assert load.ok >= 200
    assert all(r.process.poll() is None for r in replicas)  # no restart happened
