"""A registry database outage under load: two replicas keep scoring, the registry says 503.

The test starts its own PostgreSQL (initdb and pg_ctl on a spare port, in a temporary
directory; as the `postgres` user when run as root, which initdb refuses), starts two
`tierwise serve` replicas on it (they migrate and seed it), sends scoring traffic from two
clients to both, and stops the database for OUTAGE_SECONDS (30 s, as issue 12 asks: long
enough for every cached key to pass its 5 s lifetime and for several outage log intervals).
It checks: no scoring request fails; registry reads and
writes answer 503 registry_unavailable; a key never seen by a replica is 503, not 401;
/readyz stays 200; /v1/status says degraded; tierwise_registry_up goes 0 then 1; the outage
is logged a bounded number of times; and after the database is back, with no restart, a
promotion is written and reaches both replicas. Everything it started is stopped and removed.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.config import PROJECT_ROOT
from app.registry import database
from app.registry.auth_keys import create_key
from tests.conftest import free_port
from tests.registry import bundles as b

pytestmark = pytest.mark.slow
OUTAGE_SECONDS = 30.0
LOG_INTERVAL = 5.0


def _unavailable(reason: str) -> None:
    """Fail in CI (CI=true), skip loudly elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot start a private PostgreSQL: {reason} (CI=true: may not skip)")
    pytest.skip(f"!!! SKIPPING the database outage test (CI=true makes this fail): {reason}")


@dataclass
class Cluster:
    """A private PostgreSQL cluster run by pg_ctl."""

    bin: Path
    data: Path
    port: int
    as_user: list[str]

    def pg_ctl(self, *args: str) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
                       check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self.pg_ctl("-w", "-l", str(self.data / "server.log"), "-o",
                    f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                    "-c fsync=off -c full_page_writes=off", "start")

    def stop(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    if not found:
        _unavailable("no initdb under /usr/lib/postgresql/*/bin")
    bindir = Path(found[-1]).parent
    as_user: list[str] = []
    root = tempfile.mkdtemp(prefix="tierwise-pg-")
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        runuser = shutil.which("runuser")
        if runuser is None:
            _unavailable("running as root without runuser")
        try:
            shutil.chown(root, user="postgres", group=None)
        except (LookupError, OSError) as exc:
            _unavailable(f"running as root and no postgres user: {exc}")
        as_user = [str(runuser), "-u", "postgres", "--"]
    node = Cluster(bindir, Path(root) / "data", free_port(), as_user)
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(node.data), "-A", "trust",
                        "-U", "postgres", "--no-sync", "-E", "UTF8"],
                       check=True, capture_output=True, timeout=120)
        node.start()
        yield node
    finally:
        # Not running after a failed start or an earlier stop: nothing to stop then.
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            node.pg_ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Replica:
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@pytest.fixture
def replicas(cluster: Cluster, tmp_path: Path) -> Iterator[list[Replica]]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TIERWISE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update({"TIERWISE_DATABASE_URL": cluster.url,
                "TIERWISE_MODELS_DIR": str(b.write_models_dir(tmp_path / "models")),
                "TIERWISE_BOOTSTRAP_ADMIN_KEY_FILE": str(tmp_path / "admin.key"),
                "TIERWISE_POLL_INTERVAL_SECONDS": "0.25", "TIERWISE_COMPILE_MODELS": "false",
                "TIERWISE_REGISTRY_LOG_INTERVAL_SECONDS": str(LOG_INTERVAL),
                "TIERWISE_LOG_LEVEL": "WARNING", "PYTHONWARNINGS": "ignore"})
    started: list[Replica] = []
    try:
        for n in range(2):  # both at once: migrating and seeding must not collide
            port, log = free_port(), tmp_path / f"replica{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    [str(Path(sys.executable).parent / "tierwise"), "serve", "--host",
                     "127.0.0.1", "--port", str(port)],
                    cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
            started.append(Replica(f"http://127.0.0.1:{port}", process, log))
        for replica in started:
            _wait(lambda r=replica: _ready(r), 90, f"{replica.url} ready", started)
        yield started
    finally:
        for replica in started:
            replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(15)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()


def _ready(replica: Replica) -> bool:
    assert replica.process.poll() is None, replica.log.read_text()[-3000:]
    try:
        return httpx.get(f"{replica.url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(check: Callable[[], bool], seconds: float, what: str,
          replicas: list[Replica]) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            logs = "\n".join(r.log.read_text()[-2000:] for r in replicas)
            raise AssertionError(f"timed out after {seconds}s waiting for {what}\n{logs}")
        time.sleep(0.1)


@dataclass
class Load:
    """Two clients scoring on both replicas until stopped (or 120 s); every outcome counted."""

    urls: list[str]
    key: str
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    seen: Counter[tuple[str, int]] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)

    def client(self, n: int) -> None:
        rng, deadline = np.random.default_rng(n), time.monotonic() + 120
        with httpx.Client(headers={"X-API-Key": self.key}, timeout=10) as http:
            i = n
            while not self.stop.is_set() and time.monotonic() < deadline:
                url, i = self.urls[i % len(self.urls)], i + 1
                body = {"customer_id": f"c{n}-{i}", "features": b.example_features(rng)}
                try:
                    r = http.post(f"{url}/v1/score", json=body)
                except httpx.HTTPError as exc:
                    self.failures.append(f"{url}: {exc!r}")
                    continue
                if r.status_code != 200:
                    self.failures.append(f"{url}: {r.status_code} {r.text[:200]}")
                    continue
                self.ok += 1
                self.seen[(url, r.json()["models"]["churn"]["version"])] += 1


def _keys(url: str) -> dict[str, str]:
    engine = database.make_engine(url)
    try:
        with database.make_sessionmaker(engine).begin() as s:
            return {role: create_key(session=s, principal=f"fault {role}", role=role)[1]
                    for role in ("scorer", "publisher", "approver", "admin")}
    finally:
        engine.dispose()


def _metric(replica: Replica, name: str) -> float:
    text = httpx.get(f"{replica.url}/metrics", timeout=5).text
    values = [float(line.split()[-1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    assert values, f"{name} not exported"
    return values[0]


def _status(replica: Replica, key: str) -> dict[str, Any]:
    r = httpx.get(f"{replica.url}/v1/status", headers={"X-API-Key": key}, timeout=5)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def _unavailable_answer(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "registry_unavailable"


def test_scoring_outlives_a_database_outage(cluster: Cluster, replicas: list[Replica],
                                            tmp_path: Path) -> None:
    keys = _keys(cluster.url)
    h = {role: {"X-API-Key": key} for role, key in keys.items()}
    first, second = replicas
    # Before the outage: a new churn version, approved (its promotion comes after it).
    r = httpx.post(f"{first.url}/v1/models/churn/versions", content=b.archive(b.churn_bundle(5)),
                   headers={**h["publisher"], "Content-Type": "application/gzip"}, timeout=60)
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    r = httpx.post(f"{second.url}/v1/models/churn/versions/{version}/approve", json={},
                   headers=h["approver"], timeout=30)
    assert r.status_code == 200, r.text
    promote = {"moves": [{"family": "churn", "alias": "production", "version": version}]}
    for replica in replicas:  # each replica has verified these keys (they are cached now)
        assert _status(replica, keys["scorer"])["registry"] == "up"
        assert httpx.get(f"{replica.url}/v1/models", headers=h["approver"]).status_code == 200
        assert _metric(replica, "tierwise_registry_up") == 1

    load = Load(urls=[r.url for r in replicas], key=keys["scorer"])
    clients = [threading.Thread(target=load.client, args=(n,), daemon=True) for n in range(2)]
    for c in clients:
        c.start()
    try:
        _wait(lambda: load.ok > 40, 30, "first scores", replicas)
        cluster.stop()
        stopped = time.monotonic()
        _wait(lambda: all(_status(r, keys["scorer"])["registry"] == "degraded"
                          for r in replicas), 10, "both replicas degraded", replicas)
        during = load.ok
        for replica in replicas:
            status = _status(replica, keys["scorer"])
            assert status["registry_error"] and status["ready"]
            assert _metric(replica, "tierwise_registry_up") == 0
            assert httpx.get(f"{replica.url}/readyz").status_code == 200
            _unavailable_answer(httpx.post(f"{replica.url}/v1/models/aliases", json=promote,
                                           headers=h["approver"], timeout=30))
            _unavailable_answer(httpx.get(f"{replica.url}/v1/models", headers=h["approver"],
                                          timeout=30))
        # Never used on a replica: it may be valid, so 503, not 401.
        _unavailable_answer(httpx.get(f"{first.url}/v1/status", headers=h["admin"]))
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - stopped)))
        assert load.ok > during  # scoring went on past every key's cache lifetime
        for replica in replicas:  # still degraded at the end of the outage
            assert _status(replica, keys["scorer"])["registry"] == "degraded"
        cluster.start()
        _wait(lambda: all(_status(r, keys["scorer"])["registry"] == "up" for r in replicas),
              15, "both replicas up again", replicas)
        assert all(_metric(r, "tierwise_registry_up") == 1 for r in replicas)
        r = httpx.post(f"{second.url}/v1/models/aliases", json=promote, headers=h["approver"],
                       timeout=30)
        assert r.status_code == 200, r.text
        _wait(lambda: all(load.seen[(r.url, version)] > 0 for r in replicas), 15,
              f"scores from churn {version} on both replicas", replicas)
    finally:
        load.stop.set()
        for c in clients:
            c.join(30)
    assert load.failures == [], load.failures[:5]
    assert all(r.process.poll() is None for r in replicas)  # no restart
    for replica in replicas:
        records = replica.log.read_text(errors="replace")
        lost = records.count("registry database unreachable")
        still = records.count("registry database still unreachable")
        assert lost == 1 and records.count("registry database reachable again") == 1, records
        assert still <= OUTAGE_SECONDS / LOG_INTERVAL + 2, records
        assert "Traceback" not in records
