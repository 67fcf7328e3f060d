"""Readiness on a real registry runtime: not ready (and scoring refused with not_ready) while
the first context loads, ready after; swaps and refused versions reach the metrics."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sqlalchemy import text

from app.bundles.io import sha256_hex
from app.config import Settings
from app.main import create_app
from app.registry import service
from app.registry.live import LiveScoring
from tests.conftest import RunningServer
from tests.ops.scrape import delta, scrape, value
from tests.registry import bundles as b
from tests.registry.db import bypass_write_once
from tests.registry.test_service import APPROVER, promote, push


def _wait(check: Callable[[], Any], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def first_load_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Holds every registry refresh (the first load included) until the test opens it."""
    gate = threading.Event()
    refresh = LiveScoring.refresh

    def gated(self: LiveScoring) -> bool:
        gate.wait(30)
        return refresh(self)

    monkeypatch.setattr(LiveScoring, "refresh", gated)
    yield gate
    gate.set()


def _score(client: httpx.Client) -> httpx.Response:
    return client.post("/v1/score", json={"customer_id": "c-ready",
                                          "features": b.example_features(np.random.default_rng(1))})


def test_not_ready_until_the_first_context_is_live(tmp_path: Path,
                                                   first_load_gate: threading.Event) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}",
                        models_dir=b.write_models_dir(tmp_path / "models"), auth_enabled=False,
                        bootstrap_admin_key_file=tmp_path / "admin.key",
                        poll_interval_seconds=0.1, compile_models=False)
    app = create_app(settings)
    with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.get("/healthz").status_code == 200  # alive while loading
        resp = client.get("/readyz")
        assert resp.status_code == 503 and resp.json() == {"ready": False}
        refused = _score(client)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "not_ready"
        assert set(refused.json()["error"]) == {"code", "message", "details"}
        before = scrape(client)

        first_load_gate.set()
        _wait(lambda: client.get("/readyz").status_code == 200, 20, "readiness")
        assert client.get("/readyz").json() == {"ready": True}
        served = _score(client)
        assert served.status_code == 200 and served.json()["models"]["churn"]["version"] == 1
        loaded = scrape(client)
        for family in b.default_set():
            assert delta(before, loaded, "tierwise_registry_events_total", event="load",
                         family=family) == 1
        v1_sha = served.json()["models"]["churn"]["sha256"]
        assert value(loaded, "tierwise_model_info", family="churn", version="1",
                     sha256=v1_sha) == 1

        runtime = app.services.runtime
        assert runtime is not None
        with runtime.sessionmaker.begin() as s:
            v2 = push(s, b.churn_bundle(1)).version
            service.approve(session=s, family="churn", version=v2, actor=APPROVER)
            promote(s, churn=v2)
        _wait(lambda: _score(client).json()["models"]["churn"]["version"] == v2, 20, "swap")
        swapped = scrape(client)
        assert delta(loaded, swapped, "tierwise_registry_events_total", event="swap",
                     family="churn") == 1
        assert value(swapped, "tierwise_model_info", family="churn", version=str(v2),
                     sha256=b.churn_bundle(1).sha256) == 1
        assert value(swapped, "tierwise_model_info", family="churn", version="1",
                     sha256=v1_sha) == 0

        # A version tampered with at rest is refused: counted, and version 2 keeps serving.
        with runtime.sessionmaker.begin() as s:
            v3 = push(s, b.churn_bundle(2)).version
        with runtime.engine.begin() as conn:
            bypass_write_once(conn, "artifacts")
            row = conn.execute(text("SELECT id FROM model_versions WHERE family = 'churn' "
                                    "AND version = :v"), {"v": v3}).scalar_one()
            content = bytearray(b.archive(b.churn_bundle(2)))
            content[len(content) // 2] ^= 0xFF
            conn.execute(text("UPDATE artifacts SET content = :c, sha256 = :h "
                              "WHERE version_id = :v"),
                         {"c": bytes(content), "h": sha256_hex(bytes(content)), "v": row})
            conn.execute(text("UPDATE aliases SET version = :v WHERE family = 'churn' "
                              "AND alias = 'production'"), {"v": v3})
        _wait(lambda: client.get("/v1/status").json()["last_failure"] is not None, 20,
              "the refusal")
        refused_scrape = scrape(client)
        assert delta(swapped, refused_scrape, "tierwise_registry_events_total",
                     event="swap_failed", family="churn") == 1
        assert value(refused_scrape, "tierwise_model_info", family="churn", version=str(v2),
                     sha256=b.churn_bundle(1).sha256) == 1
        assert _score(client).json()["models"]["churn"]["version"] == v2
