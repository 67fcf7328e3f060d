"""The JSON log lines of a real run: one line per request with its fields, and no feature
value anywhere, shadow-scoring lines included."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.observability.logging import configure_logging
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.customers import book_customers

# Values no log field has a reason to hold: if one shows up, a feature leaked.
DISTINCT = {"age": 73, "aum_total": 987654.321, "monthly_salary": 45678.912,
            "card_spend_90d": 31415.9265, "occupation_class": None}
DISTINCT_TEXT = ("987654", "45678.9", "31415.9")


class ShadowEverything(StaticContexts):
    """Scores the challenger in shadow on every request (it is the same context here)."""

    def for_request(self, *, customer_id: str, pins: Mapping[str, str]
                    ) -> tuple[ScoringContext, ScoringContext | None]:
        return self.ctx, self.ctx


@pytest.fixture
def run(default_context: ScoringContext) -> Iterator[tuple[httpx.Client, io.StringIO]]:
    app = create_app(Settings(auth_enabled=False, log_level="INFO"),
                     live=ShadowEverything(default_context))
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)  # the handler create_app installed, on a buffer
    try:
        with RunningServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as c:
            yield c, buffer
    finally:
        configure_logging("INFO")


def _customers() -> list[dict[str, Any]]:
    customers = book_customers(4, seed=5)
    for c in customers:
        c["features"].update({k: v for k, v in DISTINCT.items() if v is not None})
        c["features"]["occupation_class"] = "salaried"  # the same for all (may be missing)
    return customers


def _numbers(value: Any) -> Iterator[float]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)


def test_request_lines_have_their_fields_and_no_feature_values(
        run: tuple[httpx.Client, io.StringIO]) -> None:
    client, buffer = run
    customers = _customers()
    single = client.post("/v1/score", json=customers[0], headers={"X-Request-ID": "rq-logs-1"})
    assert single.status_code == 200, single.text
    assert single.headers["x-request-id"] == "rq-logs-1"
    other = client.post("/v1/score", json=customers[1])
    generated = other.headers["x-request-id"]
    assert len(generated) == 32 and other.json()["request_id"] == generated
    batch = client.post("/v1/score/batch", json={"items": customers[2:]})
    assert batch.status_code == 200
    bad = client.post("/v1/score", json={**customers[3], "features": {
        **customers[3]["features"], "tenure_months": -5}})
    assert bad.status_code == 422
    client.get("/healthz")

    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    assert lines, "no log lines captured"
    requests = [r for r in lines if r["logger"] == "tierwise.requests"]
    by_route = {(r["route"], r["status"]): r for r in requests}
    for r in requests:
        assert {"timestamp", "level", "request_id", "method", "route", "status",
                "duration_ms"} <= set(r), r
        assert r["timestamp"].endswith("Z") and r["duration_ms"] > 0
    first = next(r for r in requests if r["request_id"] == "rq-logs-1")
    assert first["level"] == "INFO" and first["method"] == "POST"
    assert first["route"] == "/v1/score" and first["status"] == 200
    assert first["customer_id"] == customers[0]["customer_id"]
    assert first["models"] == {f: m["version"] for f, m in single.json()["models"].items()}
    assert any(r["request_id"] == generated for r in requests)
    assert by_route[("/v1/score/batch", 200)]["scored"] == 2
    assert "models" not in by_route[("/v1/score", 422)]
    assert ("/healthz", 200) not in by_route  # probes log at DEBUG only

    shadow = [r for r in lines if r["message"] == "shadow"]
    assert sorted(r["customer_id"] for r in shadow) == sorted(c["customer_id"] for c in customers)
    assert all(r["challenger_versions"] and "production_churn" in r for r in shadow)

    text = buffer.getvalue()
    for needle in DISTINCT_TEXT:
        assert needle not in text, f"a feature value ({needle}) reached the logs"
    for record in lines:
        assert "features" not in record
        assert 73 not in list(_numbers(record)), record
        for name in customers[0]["features"]:
            assert name not in record, f"feature {name} logged: {record}"
