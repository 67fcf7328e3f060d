"""Micro-batching: requests ready at the same moment are scored together, and every request
gets exactly the answer it gets alone; one customer's failure stays its own."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.schemas import ScoreRequest
from app.bundles.io import Bundle
from app.bundles.manifest import FAMILIES
from app.config import Settings
from app.dataplane.microbatch import MicroBatcher
from app.dataplane.plane import DataPlane
from app.engine.compiled import fastest_evaluator
from app.main import create_app
from app.observability.metrics import ScoreTally
from app.scoring import pipeline
from app.scoring.context import ScoringContext, build_context
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.customers import book_customers
from tests.support.engine import warm_cache

CUSTOMERS = book_customers(48, seed=23)


@pytest.fixture(scope="module")
def walker_context(default_bundles: dict[str, Bundle], walker_library: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> ScoringContext:
    ctx = build_context(default_bundles, dict.fromkeys(FAMILIES, 1))
    cache = warm_cache(walker_library, tmp_path_factory.mktemp("cc")).parent
    ctx.use_evaluator(fastest_evaluator(ctx.layout, cache_dir=cache))
    assert ctx.evaluator.name == "treewalk"
    return ctx


def _request(i: int, rng: random.Random) -> dict[str, Any]:
    """A varied request: channel, history, options (parts, top N, suppressed, explain)."""
    c = CUSTOMERS[i % len(CUSTOMERS)]
    body: dict[str, Any] = {"customer_id": c["customer_id"], "features": c["features"]}
    if rng.random() < 0.4:
        body["context"] = {"channel": rng.choice(("branch", "mobile", "call_centre", "rm")),
                           "as_of": "2026-11-01",
                           "history": [{"action_id": "sip_fund", "date": "2026-10-20",
                                        "outcome": rng.choice(("offered", "declined"))}]
                           if rng.random() < 0.5 else []}
    if rng.random() < 0.5:
        body["options"] = rng.choice((
            {"top_n": rng.randint(1, 5)}, {"include_suppressed": True}, {"explain": True},
            {"parts": ["churn"]}, {"parts": ["tier", "recommendations"]}))
    return body


def _parsed(body: dict[str, Any]) -> ScoreRequest:
    return ScoreRequest.model_validate_json(json.dumps(body))


def _plane(ctx: ScoringContext, batcher: MicroBatcher | None) -> DataPlane:
    return DataPlane(live=StaticContexts(ctx), batcher=batcher, tally=ScoreTally())


def _alone(ctx: ScoringContext, body: dict[str, Any]) -> dict[str, Any]:
    return _plane(ctx, None).score_now(_parsed(body))


def test_together_equals_alone(walker_context: ScoringContext) -> None:
    rng = random.Random(5)
    bodies = [_request(i, rng) for i in range(120)]
    batcher = MicroBatcher(max_batch=32)
    plane = _plane(walker_context, batcher)

    async def together() -> list[dict[str, Any]]:
        return await asyncio.gather(*(plane.score(_parsed(b)) for b in bodies))

    got = asyncio.run(together())
    assert got == [_alone(walker_context, b) for b in bodies]
    assert batcher.requests == len(bodies)
    assert batcher.calls < len(bodies) / 4, "requests ready together were scored together"


def test_one_failure_fails_only_its_request(walker_context: ScoringContext,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.score_rows
    bad = CUSTOMERS[3]["customer_id"]

    def flaky(ctx: ScoringContext, x: Any, customers: Any, options: Any) -> Any:
        if any(c.customer_id == bad for c in customers):
            raise RuntimeError("boom")
        return real(ctx, x, customers, options)

    monkeypatch.setattr("app.dataplane.microbatch.score_rows", flaky)
    batcher = MicroBatcher()
    plane = _plane(walker_context, batcher)

    async def run() -> list[Any]:
        async def one(c: dict[str, Any]) -> Any:
            return await batcher.score(plane.prepare(_parsed(c)))

        return await asyncio.gather(*(one(c) for c in CUSTOMERS[:8]), return_exceptions=True)

    got = asyncio.run(run())
    assert isinstance(got[3], RuntimeError)
    assert all(isinstance(r, dict) and r["customer_id"] == c["customer_id"]
               for i, (r, c) in enumerate(zip(got, CUSTOMERS[:8], strict=True)) if i != 3)


@pytest.fixture(scope="module")
def server(walker_context: ScoringContext) -> Iterator[RunningServer]:
    app = create_app(Settings(auth_enabled=False), live=StaticContexts(walker_context))
    with RunningServer(app) as running:
        yield running


def test_concurrent_http_requests_get_their_own_answers(server: RunningServer,
                                                        walker_context: ScoringContext) -> None:
    rng = random.Random(9)
    bodies = [_request(i, rng) for i in range(96)]
    batcher = server.server.config.app.services.data_plane.batcher
    assert isinstance(batcher, MicroBatcher)
    before = (batcher.requests, batcher.calls)

    async def send() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/v1/score", json=b) for b in bodies))

    responses = asyncio.run(send())
    for body, resp in zip(bodies, responses, strict=True):
        assert resp.status_code == 200, resp.text
        got = resp.json()
        assert got.pop("request_id") == resp.headers["x-request-id"]
        assert got == _alone(walker_context, body)
    requests, calls = batcher.requests - before[0], batcher.calls - before[1]
    assert requests == len(bodies) and calls < requests, (requests, calls)


def test_microbatch_can_be_switched_off(walker_context: ScoringContext) -> None:
    app = create_app(Settings(auth_enabled=False, microbatch=False),
                     live=StaticContexts(walker_context))
    with RunningServer(app) as running:
        assert app.services.data_plane is not None
        assert app.services.data_plane.batcher is None
        resp = httpx.post(f"{running.url}/v1/score", json=CUSTOMERS[0], timeout=30)
        assert resp.status_code == 200, resp.text
        got = resp.json()
        got.pop("request_id")
        assert got == _alone(walker_context, CUSTOMERS[0])
