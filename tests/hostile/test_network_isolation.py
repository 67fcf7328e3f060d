"""No network for the verification child: a new network namespace where the host allows it,
reported in the verdict and in /v1/status; with TIERWISE_VERIFY_REQUIRE_NETWORK_ISOLATION
a host without it refuses pushes (503) and the registry stays as it was.

The isolation tests run the production helper (isolate_network) in a subprocess and then
try to reach a server this test listens on; they are skipped where the host cannot isolate
(the flag is then false, which is checked too)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from app.errors import BundleRejected
from app.registry.auth_keys import create_key
from app.scoring import isolation, verification
from app.scoring.isolation import Isolation, network_isolation_available
from app.scoring.verification import IsolationUnavailable, VerifyLimits, verify_archive
from tests.registry import bundles as b
from tests.registry.app import registry_app
from tests.registry.db import (
    backend,
    connection,
    migrated_engine,
    models_dir,
    seeded,
    sessions,
    snapshot,
)

__all__ = ["backend", "connection", "migrated_engine", "models_dir", "seeded", "sessions"]

HOST = network_isolation_available()
needs_isolation = pytest.mark.skipif(not HOST.isolated,
                                     reason=f"no network namespace here: {HOST.reason}")

CONNECT = """
import json, socket, sys
from app.scoring.isolation import isolate_network
result = isolate_network() if sys.argv[2] == "isolate" else None
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5).close()
    reached = True
except OSError as exc:
    reached = False
print(json.dumps({"isolated": bool(result and result.isolated), "reached": reached}))
"""


@pytest.fixture
def listening() -> Iterator[int]:
    """A TCP server on 127.0.0.1 of the host; its port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def _connect(port: int, mode: str) -> dict[str, bool]:
    done = subprocess.run([sys.executable, "-c", CONNECT, str(port), mode],
                          capture_output=True, timeout=60, check=True)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_the_test_server_is_reachable_without_isolation(listening: int) -> None:
    assert _connect(listening, "plain") == {"isolated": False, "reached": True}


@needs_isolation
def test_an_isolated_child_cannot_reach_the_hosts_loopback(listening: int) -> None:
    assert _connect(listening, "isolate") == {"isolated": True, "reached": False}


def test_the_verdict_says_whether_the_child_was_isolated() -> None:
    bundle = b.churn_bundle(5)
    verdict = verify_archive(b.archive(bundle), VerifyLimits())
    assert verdict.sha256 == bundle.sha256
    assert verdict.network_isolated is HOST.isolated


@needs_isolation
def test_required_isolation_verifies_where_the_host_has_it() -> None:
    verdict = verify_archive(b.archive(b.churn_bundle(5)),
                             VerifyLimits(require_network_isolation=True))
    assert verdict.network_isolated


def test_required_isolation_refuses_before_the_child_when_the_probe_found_none(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "network_isolation_available",
                        lambda: Isolation(False, "", "user namespaces disabled"))
    monkeypatch.setattr(verification.subprocess, "run", _no_child)
    with pytest.raises(IsolationUnavailable) as info:
        verify_archive(b.archive(b.churn_bundle(5)), VerifyLimits(require_network_isolation=True))
    assert info.value.status == 503
    assert [d.field for d in info.value.details] == [
        "verification", "TIERWISE_VERIFY_REQUIRE_NETWORK_ISOLATION"]
    assert "user namespaces disabled" in info.value.details[0].problem


def _no_child(*args: object, **kwargs: object) -> None:
    raise AssertionError("no child may be started")


CHILD_WITHOUT_ISOLATION = """
import sys
from app.scoring import isolation, verification
verification.isolate_network = lambda: isolation.Isolation(False, "", "forced by the test")
sys.argv = ["verification", sys.argv[1]]
verification.main()
"""


def test_the_child_itself_refuses_to_read_the_archive_without_isolation() -> None:
    """The probe said yes, the child could not: it answers without reading the archive."""
    limits = json.dumps({"memory_mb": 2048, "cpu_seconds": 60, "open_files": 64,
                         "file_size_mb": 1, "max_bytes": 1 << 20,
                         "require_network_isolation": True})
    done = subprocess.run([sys.executable, "-c", CHILD_WITHOUT_ISOLATION, limits],
                          input=b.archive(b.churn_bundle(5)), capture_output=True,
                          timeout=120, check=True)
    verdict = json.loads(done.stdout)
    assert verdict["ok"] is False and verdict["network_isolated"] is False
    assert verdict["code"] == IsolationUnavailable.code
    assert verdict["details"][0] == {"field": "verification", "problem": "forced by the test"}


def test_a_hostile_bundle_is_still_refused_in_an_isolated_child() -> None:
    from tests.hostile import corpus as c

    with pytest.raises(BundleRejected):
        verify_archive(c.archive(c.churn_files(c.split_feature_out_of_range())),
                       VerifyLimits(require_network_isolation=HOST.isolated))


# --- over HTTP -----------------------------------------------------------------------------


def _client(engine: Engine, sessions: sessionmaker[Session], require: bool) -> TestClient:
    return TestClient(registry_app(engine=engine, sessions=sessions,
                                   verify_require_network_isolation=require))


def _key(sessions: sessionmaker[Session], role: str) -> dict[str, str]:
    with sessions() as s:
        plain = create_key(session=s, name=f"net-{role}", role=role)[1]
        s.commit()
    return {"X-API-Key": plain}


def test_a_required_isolation_the_host_lacks_refuses_the_push(
        migrated_engine: Engine, seeded: sessionmaker[Session], connection: Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "network_isolation_available",
                        lambda: Isolation(False, "", "user namespaces disabled"))
    headers = {**_key(seeded, "publisher"), "Content-Type": "application/gzip"}
    before = snapshot(connection)
    with _client(migrated_engine, seeded, require=True) as client:
        r = client.post("/v1/models/churn/versions", content=b.archive(b.churn_bundle(5)),
                        headers=headers)
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == "verification_isolation_unavailable"
    assert error["details"][0] == {"field": "verification",
                                   "problem": "user namespaces disabled"}
    assert snapshot(connection) == before


def test_status_says_whether_verification_is_isolated(
        migrated_engine: Engine, seeded: sessionmaker[Session],
        monkeypatch: pytest.MonkeyPatch) -> None:
    headers = _key(seeded, "scorer")
    with _client(migrated_engine, seeded, require=False) as client:
        assert client.get("/v1/status", headers=headers).json()[
            "verify_network_isolated"] is HOST.isolated
        network_isolation_available.cache_clear()
        monkeypatch.setattr(isolation.subprocess, "run", _probe_fails)  # the probe's child
        try:
            assert client.get("/v1/status", headers=headers).json()[
                "verify_network_isolated"] is False
        finally:
            network_isolation_available.cache_clear()


def _probe_fails(*args: object, **kwargs: object) -> None:
    raise OSError("no child processes here")
