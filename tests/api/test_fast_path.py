"""POST /v1/score answered in front of the stack (app/api/fastpath.py) behaves exactly as the
stack does: the same status, headers, body, log lines and metrics for every request variant,
against the stack with its lean route (the fast path off) and FastAPI's own documented
route (the lean route removed as well). Real HTTP: uvicorn on 127.0.0.1."""

from __future__ import annotations

import io
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from app.api.fastpath import TierwiseAPI, _FastScore, new_request_id
from app.api.routes.scores import _LeanRoute
from app.config import Settings
from app.errors import NotReady
from app.main import create_app
from app.observability.logging import configure_logging
from app.registry.auth_keys import Principal
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.customers import book_customers

SCORER = "tw_k1_scorer-secret"
VIEWER = "tw_k2_viewer-secret"  # a role that may not score: 403
UNKNOWN = "tw_k3_unknown"  # not cached: looked up in the thread pool, refused
KEYS = {SCORER: Principal("k1", "scoring key", "scorer"),
        VIEWER: Principal("k2", "viewing key", "viewer")}


class Keys:
    """A key cache: the known keys are cached, others go to authenticate()."""

    def cached(self, key: str) -> tuple[bool, Principal | None]:
        return (True, KEYS[key]) if key in KEYS else (False, None)

    def authenticate(self, key: str) -> Principal | None:
        return KEYS.get(key)


class Tricky(StaticContexts):
    """Serves the context, except for two customer ids: not ready, and an unexpected error."""

    def for_request(self, *, customer_id: str, pins: Mapping[str, str]
                    ) -> tuple[ScoringContext, ScoringContext | None]:
        if customer_id == "boom":
            raise RuntimeError("an unexpected failure")
        if customer_id == "not-ready":
            raise NotReady("no verified scoring context is live yet; see /v1/status")
        return super().for_request(customer_id=customer_id, pins=pins)


def _app(ctx: ScoringContext, *, fast: bool, lean: bool) -> TierwiseAPI:
    app = create_app(Settings(auth_enabled=True, log_level="INFO", max_body_bytes=20_000),
                     live=Tricky(ctx))
    app.fast_score_enabled = fast
    if not lean:  # FastAPI's own route: no lean route in the router, no direct dispatch
        app.router.routes = [r for r in app.router.routes if not isinstance(r, _LeanRoute)]
        del app.state.direct_routes
    return app


class Served:
    def __init__(self, name: str, app: TierwiseAPI, server: RunningServer) -> None:
        self.name = name
        self.app = app
        self.client = httpx.Client(base_url=server.url, timeout=30)
        app.state.runtime = SimpleNamespace(keys=Keys(), settings=app.state.settings)


@pytest.fixture(scope="module")
def ways(default_context: ScoringContext) -> Iterator[tuple[list[Served], io.StringIO]]:
    apps = {"fast path": _app(default_context, fast=True, lean=True),
            "stack, lean route": _app(default_context, fast=False, lean=True),
            "stack, FastAPI route": _app(default_context, fast=False, lean=False)}
    buffer = io.StringIO()
    configure_logging("INFO", stream=buffer)
    servers = [RunningServer(app).__enter__() for app in apps.values()]
    served = [Served(name, app, server)
              for (name, app), server in zip(apps.items(), servers, strict=True)]
    fast = served[0].app._fast
    assert fast is not None and served[1].app._fast is None and served[2].app._fast is None
    answer = fast._answer

    async def counted(*args: Any) -> None:
        served[0].answered += 1  # type: ignore[attr-defined]
        await answer(*args)

    fast._answer = counted  # type: ignore[method-assign]
    served[0].answered = 0  # type: ignore[attr-defined]
    try:
        yield served, buffer
    finally:
        for s in served:
            s.client.close()
        for server in servers:
            server.__exit__(None, None, None)
        configure_logging("INFO")


def _http_counts() -> dict[tuple[str, ...], float]:
    out = {}
    for metric in REGISTRY.collect():
        if metric.name in ("tierwise_http_requests", "tierwise_http_request_duration_seconds"):
            for sample in metric.samples:
                if sample.name.endswith(("_total", "_count")):
                    out[(sample.name, *sorted(sample.labels.items()))] = sample.value
    return out  # type: ignore[return-value]


_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_VOLATILE = ("timestamp", "duration_ms", "pid")


def _call(way: Served, buffer: io.StringIO, kwargs: dict[str, Any],
          sent_id: str | None) -> dict[str, Any]:
    """One request: what the caller saw, the log lines it left and the metrics it moved."""
    mark = len(buffer.getvalue())
    before = _http_counts()
    resp = way.client.request("POST", "/v1/score", **_sendable(kwargs))
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while time.monotonic() < deadline:  # the line is written by the server's thread
        lines = [x for x in map(json.loads, buffer.getvalue()[mark:].splitlines())
                 if x["logger"].startswith(("tierwise", "uvicorn"))]  # not the client's
        if any(x["logger"] == "tierwise.requests" for x in lines) and (
                resp.status_code != 500 or any(x["logger"] == "uvicorn.error" for x in lines)):
            break
        time.sleep(0.01)
    after = _http_counts()
    headers = {k: v for k, v in resp.headers.items() if k != "date"}
    rid = headers.pop("x-request-id", None)
    if rid is not None and sent_id is None:
        assert _HEX32.match(rid), rid
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    if isinstance(body, dict) and "request_id" in body:
        assert body["request_id"] == rid
        body["request_id"] = "<id>"
    logged = []
    for line in lines:
        line = {k: v for k, v in line.items() if k not in _VOLATILE}
        if line.get("request_id") is not None:
            assert line["request_id"] in (rid, sent_id) or (
                rid is None and _HEX32.match(line["request_id"])), line
            line["request_id"] = "<id>"
        if "exception" in line:  # the traceback's frames differ with the path taken
            line["exception"] = line["exception"].strip().splitlines()[-1]
        logged.append(line)
    moved = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after
             if after.get(k, 0.0) != before.get(k, 0.0)}
    return {"status": resp.status_code, "headers": headers, "request_id": rid is not None,
            "body": body, "log": logged, "metrics": moved}


def _sendable(kwargs: dict[str, Any]) -> dict[str, Any]:
    """httpx arguments; chunks become a generator (a chunked body, no Content-Length)."""
    if "chunks" not in kwargs:
        return kwargs
    chunks = list(kwargs["chunks"])
    return {**{k: v for k, v in kwargs.items() if k != "chunks"},
            "content": (c for c in chunks)}


def _variants() -> list[tuple[str, dict[str, Any], Callable[[Served], Any] | None]]:
    customers = book_customers(3, seed=31)
    c0 = customers[0]
    key = {"x-api-key": SCORER}
    js = {"content-type": "application/json"}

    def raw(body: Any, **headers: str) -> dict[str, Any]:
        return {"content": body if isinstance(body, bytes) else json.dumps(body).encode(),
                "headers": {**key, **js, **headers}}

    def chunked(body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        return {"chunks": [data[:100], data[100:]], "headers": {**key, **js}}

    nan = json.dumps(c0).replace(str(c0["features"]["age"]), "NaN", 1).encode()

    def no_registry(way: Served) -> None:
        way.app.state.runtime = None

    out: list[tuple[str, dict[str, Any], Callable[[Served], Any] | None]] = [
        ("scored", {"json": c0, "headers": key}, None),
        ("caller's request id",
         {"json": customers[1], "headers": {**key, "X-Request-ID": "a.b:c-1"}}, None),
        ("invalid request id replaced", {"json": c0, "headers": {**key, "X-Request-ID": "a b"}},
         None),
        ("options", {"json": {**c0, "options": {"parts": ["churn", "recommendations"], "top_n": 2,
                                                "explain": True, "include_suppressed": True}},
                     "headers": key}, None),
        ("context", {"json": {**customers[2], "context": {
            "channel": "mobile", "as_of": "2026-03-01", "history": [
                {"action_id": "sip_fund", "date": "2026-02-01", "outcome": "offered"}]}},
            "headers": key}, None),
        ("bearer token", {"json": c0, "headers": {"Authorization": f"Bearer {SCORER}"}}, None),
        ("empty X-API-Key, bearer token", {"json": c0, "headers": {
            "X-API-Key": "", "Authorization": f"bearer  {SCORER}"}}, None),
        ("two X-API-Keys: the first counts", {"json": c0, "headers": [
            ("x-api-key", VIEWER), ("x-api-key", SCORER)]}, None),
        ("no key", {"json": c0}, None),
        ("unknown key", {"json": c0, "headers": {"x-api-key": UNKNOWN}}, None),
        ("bad JSON and no key: 400 first", {"content": b"{nope", "headers": js}, None),
        ("role may not score", {"json": c0, "headers": {"x-api-key": VIEWER}}, None),
        ("no key registry", {"json": c0, "headers": key}, no_registry),
        ("not ready", {"json": {**c0, "customer_id": "not-ready"}, "headers": key}, None),
        ("unexpected error", {"json": {**c0, "customer_id": "boom"}, "headers": key}, None),
        ("bad JSON", raw(b"{not json"), None),
        ("NaN", raw(nan), None),
        ("not UTF-8", raw(b'{"customer_id": "\xff\xfe"}'), None),
        ("deeply nested", raw(b"[" * 5000 + b"]" * 5000), None),
        ("empty body", raw(b""), None),
        ("a JSON list", raw([c0]), None),
        ("a JSON string", raw("customer"), None),
        ("text/plain", raw(c0, **{"content-type": "text/plain"}), None),
        ("no content type", {"content": json.dumps(c0).encode(), "headers": key}, None),
        ("+json content type", raw(c0, **{"content-type": "application/vnd.tw+json; q=1"}),
         None),
        ("extra field", {"json": {**c0, "extra": 1}, "headers": key}, None),
        ("empty customer id", {"json": {**c0, "customer_id": ""}, "headers": key}, None),
        ("top_n 0", {"json": {**c0, "options": {"top_n": 0}}, "headers": key}, None),
        ("history after the decision day", {"json": {**c0, "context": {
            "as_of": "2026-01-01", "history": [
                {"action_id": "sip_fund", "date": "2026-02-01", "outcome": "offered"}]}},
            "headers": key}, None),
        ("bad feature", {"json": {**c0, "features": {**c0["features"], "age": 150}},
                         "headers": key}, None),
        ("missing feature", {"json": {**c0, "features": {
            k: v for k, v in c0["features"].items() if k != "age"}}, "headers": key}, None),
        ("unknown pin", {"json": {**c0, "options": {"pin": {"churn": "99"}}}, "headers": key},
         None),
        ("pin to the live version", {"json": {**c0, "options": {"pin": {"churn": "1"}}},
                                     "headers": key}, None),
        ("declared length over the limit", raw({**c0, "pad": "x" * 30_000}), None),
        ("over the limit, no key", {"content": json.dumps({"pad": "x" * 30_000}).encode()},
         None),
        ("chunked", chunked(c0), None),
        ("chunked, over the limit", chunked({**c0, "pad": "y" * 30_000}), None),
        ("query string", {"json": c0, "headers": key, "params": {"x": "1"}}, None),
    ]
    return out


def test_the_fast_path_is_taken_only_where_it_applies(default_context: ScoringContext) -> None:
    app = create_app(Settings(auth_enabled=False), live=StaticContexts(default_context))
    app.build_middleware_stack()
    assert isinstance(app._fast, _FastScore)
    app.fast_score_enabled = False
    app.build_middleware_stack()
    assert app._fast is None
    other = create_app(Settings(auth_enabled=False), live=StaticContexts(default_context))
    other.add_middleware(RequestLogger)
    other.build_middleware_stack()
    assert other._fast is None, "another middleware: the stack answers"
    debug = create_app(Settings(auth_enabled=False), live=StaticContexts(default_context))
    debug.debug = True
    debug.build_middleware_stack()
    assert debug._fast is None


class RequestLogger:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def test_new_request_ids_are_uuid4_hex() -> None:
    import uuid

    ids = {new_request_id() for _ in range(1000)}
    assert len(ids) == 1000
    for rid in ids:
        assert _HEX32.match(rid) and uuid.UUID(hex=rid).version == 4
        assert uuid.UUID(hex=rid).hex == rid


def test_every_variant_is_answered_as_the_stack_answers(
        ways: tuple[list[Served], io.StringIO]) -> None:
    served, buffer = ways
    statuses = set()
    for name, kwargs, setup in _variants():
        seen = []
        for way in served:
            runtime = way.app.state.runtime
            if setup is not None:
                setup(way)
            answered = getattr(way, "answered", 0)
            try:
                sent = kwargs.get("headers")
                sent_id = (dict(sent).get("X-Request-ID") if sent is not None else None)
                if sent_id is not None and not re.match(r"^[A-Za-z0-9._:-]{1,128}$", sent_id):
                    sent_id = None
                seen.append((way.name, _call(way, buffer, kwargs, sent_id)))
                if way is served[0]:  # declared lengths are answered in front of the stack
                    assert way.answered == answered + ("chunks" not in kwargs), name
            finally:
                way.app.state.runtime = runtime
        first_name, first = seen[0]
        assert first["log"], name
        for other_name, other in seen[1:]:
            assert other == first, f"{name}: {first_name} and {other_name} differ"
        if first["status"] == 200:
            assert first["body"]["customer_id"], name
        statuses.add(first["status"])
    assert statuses == {200, 400, 401, 403, 404, 413, 422, 500, 503}, "a kind of answer untested"
