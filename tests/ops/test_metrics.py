"""/metrics over real HTTP after real requests: counters and histograms with the right labels
and values (uvicorn on 127.0.0.1, the default models)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.bundles.manifest import FAMILIES
from app.config import Settings
from app.main import create_app
from app.observability.exposition import forget_dead_workers
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.customers import book_customers
from tests.ops.scrape import delta, scrape, series, value


@pytest.fixture(scope="module")
def client(default_context: ScoringContext) -> Iterator[httpx.Client]:
    app = create_app(Settings(auth_enabled=False), live=StaticContexts(default_context))
    with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_requests_scores_and_decisions_are_counted(client: httpx.Client,
                                                   default_context: ScoringContext) -> None:
    customers = book_customers(9, seed=21)
    before = scrape(client)
    singles: list[dict[str, Any]] = []
    for i, customer in enumerate(customers[:5]):
        body = {**customer, "options": {"include_suppressed": True}} if i < 2 else customer
        resp = client.post("/v1/score", json=body)
        assert resp.status_code == 200, resp.text
        assert ("suppressed" in resp.json()) == (i < 2)  # counted always, returned when asked
        singles.append(resp.json())
    bad = {**customers[5], "features": {**customers[5]["features"], "age": 150}}
    assert client.post("/v1/score", json=bad).status_code == 422
    batch = client.post("/v1/score/batch", json={"items": [*customers[6:], bad]})
    assert batch.status_code == 200 and batch.json()["scored"] == 3
    assert all("suppressed" not in r for r in batch.json()["results"])
    assert client.get("/v1/customers/C000123/history").status_code == 404
    assert client.get("/healthz").status_code == 200
    after = scrape(client)

    requests = "tierwise_http_requests_total"
    assert delta(before, after, requests, route="/v1/score", method="POST", status="200") == 5
    assert delta(before, after, requests, route="/v1/score", method="POST", status="422") == 1
    assert delta(before, after, requests, route="/v1/score/batch", method="POST",
                 status="200") == 1
    assert delta(before, after, requests, route="unmatched", method="GET", status="404") == 1
    assert delta(before, after, requests, route="/healthz", method="GET", status="200") == 1
    routes = {labels["route"] for labels in series(after, requests)}
    assert not any("C000123" in r for r in routes), routes  # templates, never raw paths

    hist = "tierwise_http_request_duration_seconds"
    assert delta(before, after, f"{hist}_count", route="/v1/score", method="POST") == 6
    assert delta(before, after, f"{hist}_sum", route="/v1/score", method="POST") > 0
    assert delta(before, after, f"{hist}_bucket", route="/v1/score", method="POST",
                 le="+Inf") == 6
    buckets = [labels["le"] for labels in series(after, f"{hist}_bucket")
               if labels["route"] == "/v1/score"]
    assert len(buckets) > 10 and "0.005" in buckets

    scored = [*singles, *batch.json()["results"][:3]]
    for family in FAMILIES:
        version = str(default_context.versions[family].version)
        assert delta(before, after, "tierwise_scores_total", family=family,
                     version=version) == len(scored)

    shown = Counter(r["action_id"] for s in scored for r in s["recommendations"])
    bands = Counter(s["churn"]["band"] for s in scored)
    for action, n in shown.items():
        assert delta(before, after, "tierwise_recommendations_total", action_id=action) == n
    for band, n in bands.items():
        assert delta(before, after, "tierwise_churn_band_total", band=band) == n
    # Every catalogue action is either shown or suppressed (with one reason) per customer,
    # returned or not; the two returned lists are counted exactly.
    suppressed = {labels: after[("tierwise_suppressed_total", labels)]
                  - before.get(("tierwise_suppressed_total", labels), 0.0)
                  for (name, labels) in after if name == "tierwise_suppressed_total"}
    for action in default_context.catalog.actions:
        hidden = sum(n for labels, n in suppressed.items()
                     if dict(labels)["action_id"] == action.id)
        assert shown[action.id] + hidden == len(scored), action.id
    returned = Counter((x["action_id"], x["reason_code"]) for s in singles[:2]
                       for x in s["suppressed"])
    for (action, reason), n in returned.items():
        assert suppressed[frozenset({("action_id", action), ("reason_code", reason)})] >= n

    for family in FAMILIES:
        ref = default_context.versions[family]
        assert value(after, "tierwise_model_info", family=family, version=str(ref.version),
                     sha256=ref.sha256) == 1


def test_metrics_is_prometheus_text_documented_as_public(client: httpx.Client) -> None:
    resp = client.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE tierwise_http_request_duration_seconds histogram" in resp.text
    assert "# TYPE tierwise_scores_total counter" in resp.text
    assert "_created" not in resp.text
    op = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert op["security"] == [] and "text/plain" in op["responses"]["200"]["content"]


def test_dead_workers_are_forgotten_and_live_ones_kept(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for pid in (dead.pid, os.getpid()):
        (tmp_path / f"gauge_livemax_{pid}.db").write_bytes(b"")
        (tmp_path / f"counter_{pid}.db").write_bytes(b"")
    forget_dead_workers(str(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        f"counter_{dead.pid}.db", f"counter_{os.getpid()}.db",  # counters keep counting
        f"gauge_livemax_{os.getpid()}.db"])


def test_every_request_is_labelled_with_its_route_template() -> None:
    from app.main import route_templates

    app = create_app(Settings(auth_enabled=False), live=object())
    templates = route_templates(app.api)
    for path, route in [("/v1/score", "/v1/score"),
                        ("/v1/score/batch", "/v1/score/batch"),
                        ("/v1/models/churn/versions", "/v1/models/{family}/versions"),
                        ("/v1/models/churn/versions/3/approve",
                         "/v1/models/{family}/versions/{version}/approve"),
                        ("/v1/models/churn/versions/3/", "unmatched"),
                        ("/metrics", "/metrics"), ("/docs", "/docs"),
                        ("/v1/nothing", "unmatched"), ("/v1/score/", "unmatched")]:
        assert templates.of(path) == route, path
    # every route FastAPI serves has its template
    for route in app.api.openapi()["paths"]:
        assert templates.of(route) == route
