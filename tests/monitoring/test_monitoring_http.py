"""Monitoring through the running service: what it scores is counted and flushed to the
registry database, /v1/monitoring/drift reads it back, a shifted feature raises an alert in
/v1/status and the metrics, and `tierwise report` writes a self-contained page."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.config import Settings
from app.main import create_app
from tests.conftest import MODELS_DIR, RunningServer
from tests.customers import book_customers

N = 600


@pytest.fixture(scope="module")
def customers() -> list[dict[str, Any]]:
    return book_customers(N, seed=11)


def _app(tmp: Path, **settings: Any) -> Any:
    return create_app(Settings(
        database_url=f"sqlite:///{tmp / 'registry.sqlite3'}", models_dir=MODELS_DIR,
        auth_enabled=False, compile_models=False, bootstrap_admin_key_file=tmp / "admin.key",
        monitoring_flush_seconds=3600, **settings))


def _ready(url: str) -> None:
    import time

    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline, "the service did not get ready"
        time.sleep(0.1)


def _shifted(customers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "features": {**c["features"], "age": min(c["features"]["age"] + 15, 100)}}
            for c in customers]


def test_scored_customers_are_counted_flushed_and_read_back(
        tmp_path: Path, serve: Callable[[Any], RunningServer],
        customers: list[dict[str, Any]]) -> None:
    app = _app(tmp_path)
    server = serve(app)
    _ready(server.url)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.post("/v1/score/batch", json={"items": customers}).status_code == 200
        for c in customers[:20]:  # single requests are counted too (buffered, binned later)
            assert http.post("/v1/score", json=c).status_code == 200
        drift = http.get("/v1/monitoring/drift").json()
        by_family = {e["family"]: e for e in drift["drift"]}
        assert set(by_family) == {"tier", "churn", "products"}
        for entry in by_family.values():
            assert entry["rows"] == N + 20 and entry["alias"] == "production"
            assert entry["reference"] and entry["drifted"] == []
        assert by_family["churn"]["score"]["psi"] < 0.1
        assert http.get("/v1/status").json()["alerts"] is None  # no report computed yet
        app.services.monitoring.refresh()
        assert http.get("/v1/status").json()["alerts"] == []

        assert http.post("/v1/score/batch",
                         json={"items": _shifted(customers)}).status_code == 200
        app.services.monitoring.refresh()
        status = http.get("/v1/status").json()
        flagged = {(a["family"], a["feature"]) for a in status["alerts"]}
        assert flagged == {("tier", "age"), ("churn", "age"), ("products", "age")}
        assert all(a["value"] > 0.25 and a["kind"] == "feature_drift"
                   for a in status["alerts"])
        metrics = http.get("/metrics").text
        assert 'tierwise_monitoring_alerts{kind="feature_drift"} 3.0' in metrics
        psi = re.search(r'tierwise_monitoring_feature_psi\{alias="production",family="churn",'
                        r'feature="age",version="1"\} ([0-9.]+)', metrics)
        assert psi is not None and float(psi.group(1)) > 0.25

        out = tmp_path / "report.html"
        result = CliRunner().invoke(cli, ["report", "--out", str(out), "--url", server.url])
        assert result.exit_code == 0, result.output
        page = out.read_text()
        assert page.count("<svg") >= 3 and "feature_drift" in page
        assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from outside

        bad = http.get("/v1/monitoring/drift", params={"since": "2026-12-05",
                                                        "until": "2026-12-01"})
        assert bad.status_code == 422
        assert bad.json()["error"]["details"][0]["field"] == "since"
        bad = http.get("/v1/monitoring/actions", params={"family": "nope"})
        assert bad.status_code == 422


def test_counts_survive_a_restart_and_add_up(tmp_path: Path,
                                             serve: Callable[[Any], RunningServer],
                                             customers: list[dict[str, Any]]) -> None:
    for expected in (100, 200):
        server = serve(_app(tmp_path))
        _ready(server.url)
        with httpx.Client(base_url=server.url, timeout=60) as http:
            assert http.post("/v1/score/batch",
                             json={"items": customers[:100]}).status_code == 200
            rows = {e["family"]: e["rows"] for e in http.get("/v1/monitoring/drift").json()[
                "drift"]}
        assert rows == {"tier": expected, "churn": expected, "products": expected}
        server.__exit__(None, None, None)


def test_bad_days_are_refused_naming_the_parameter(
        tmp_path: Path, serve: Callable[[Any], RunningServer]) -> None:
    server = serve(_app(tmp_path))
    _ready(server.url)
    for value in ("0", "20261201", "2026-13-01", "2026-02-30", "x", "", "2026-12-01T00:00"):
        for name in ("since", "until"):
            got = httpx.get(f"{server.url}/v1/monitoring/drift", params={name: value})
            assert got.status_code == 422, (name, value)
            assert name in got.json()["error"]["details"][0]["field"]
    for params in ({"until": "0001-01-01"}, {"since": "0001-01-01", "until": "0001-01-02"},
                   {"until": "9999-12-31"}):
        got = httpx.get(f"{server.url}/v1/monitoring/drift", params=params)
        assert got.status_code == 200, (params, got.text)
        assert got.json()["drift"] == []


def test_monitoring_needs_a_scorer_key(tmp_path: Path,
                                       serve: Callable[[Any], RunningServer]) -> None:
    app = create_app(Settings(
        database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}", models_dir=MODELS_DIR,
        auth_enabled=True, compile_models=False, bootstrap_admin_key_file=tmp_path / "admin.key",
        monitoring_flush_seconds=3600))
    server = serve(app)
    _ready(server.url)
    admin = {"X-API-Key": (tmp_path / "admin.key").read_text().strip()}
    made = httpx.post(f"{server.url}/v1/keys", headers=admin,
                      json={"principal": "crm dashboard", "kind": "service", "role": "scorer"})
    assert made.status_code == 201, made.text
    scorer = {"X-API-Key": made.json()["key"]}
    for part in ("drift", "calibration", "actions", "alerts"):
        url = f"{server.url}/v1/monitoring/{part}"
        assert httpx.get(url).status_code == 401
        assert httpx.get(url, headers={"X-API-Key": "tw_not_a_key"}).status_code == 401
        assert httpx.get(url, headers=scorer).status_code == 200


def test_an_unreachable_database_answers_503_and_scoring_goes_on(
        tmp_path: Path, serve: Callable[[Any], RunningServer],
        customers: list[dict[str, Any]]) -> None:
    from sqlalchemy.exc import OperationalError

    app = _app(tmp_path)
    server = serve(app)
    _ready(server.url)
    monitoring = app.services.monitoring
    working = monitoring._sessions

    def down() -> Any:
        raise OperationalError("SELECT 1", {}, ConnectionRefusedError("database down"))

    monitoring._sessions = down
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.post("/v1/score/batch", json={"items": customers[:50]}).status_code == 200
        got = http.get("/v1/monitoring/drift")
        assert got.status_code == 503
        assert got.json()["error"]["code"] == "registry_unavailable"
        monitoring._sessions = working  # back: the counts waited in memory
        rows = {e["family"]: e["rows"] for e in http.get("/v1/monitoring/drift").json()["drift"]}
        assert rows == {"tier": 50, "churn": 50, "products": 50}
