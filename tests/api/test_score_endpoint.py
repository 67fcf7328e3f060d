"""The scoring endpoint in front of FastAPI, over real HTTP: its order of checks, hostile
requests, the request context around it, and the metrics of every kind of score."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.customers import book_customers
from tests.ops.scrape import scrape, value
from tests.registry import bundles as b

CUSTOMER = book_customers(1, seed=3)[0]


@pytest.fixture(scope="module")
def server(default_context: ScoringContext) -> Iterator[RunningServer]:
    app = create_app(Settings(auth_enabled=False, max_body_bytes=50_000),
                     live=StaticContexts(default_context))
    with RunningServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert resp.headers["x-request-id"]
    return dict(body["error"])


@pytest.mark.parametrize("path", ["/v1/score", "/v1/score/batch"])
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_methods_are_405_with_allow_post(client: httpx.Client, path: str,
                                               method: str) -> None:
    resp = client.request(method, path)
    assert resp.status_code == 405
    assert resp.headers["allow"] == "POST"
    if method != "HEAD":
        _error(resp, 405, "method_not_allowed")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/xml",
                                          "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", "json"])
def test_a_body_that_is_not_declared_json_is_415(client: httpx.Client,
                                                 content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    resp = client.post("/v1/score", content=json.dumps(CUSTOMER).encode(), headers=headers)
    err = _error(resp, 415, "unsupported_media_type")
    assert err["details"][0]["field"] == "Content-Type"


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON", "application/vnd.bank+json"])
def test_json_content_types_are_accepted(client: httpx.Client, content_type: str) -> None:
    resp = client.post("/v1/score", content=json.dumps(CUSTOMER).encode(),
                       headers={"content-type": content_type})
    assert resp.status_code == 200, resp.text
    assert resp.json()["customer_id"] == CUSTOMER["customer_id"]


@pytest.mark.parametrize("path", ["/v1/score/", "/v1/score/batch/", "/v1/models/",
                                  "/healthz/"])
def test_a_trailing_slash_is_a_404_never_a_redirect(client: httpx.Client, path: str) -> None:
    resp = client.request("POST" if "score" in path else "GET", path,
                          headers={"Host": "evil.example"}, json=CUSTOMER)
    assert "location" not in resp.headers
    _error(resp, 404, "not_found")


def test_hostile_bodies_are_4xx_in_the_error_shape(client: httpx.Client) -> None:
    json_type = {"content-type": "application/json"}
    # a lone surrogate (not Unicode text) in a feature name, in the customer id
    for raw in (b'{"customer_id": "c1", "features": {"\\ud800": 1}}',
                b'{"customer_id": "\\ud800", "features": {}}'):
        err = _error(client.post("/v1/score", content=raw, headers=json_type), 400,
                     "invalid_json")
        assert err["details"][0]["field"] == "body"
    # nested 10,000 deep
    raw = b'{"customer_id": "c1", "features": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    resp = client.post("/v1/score", content=raw, headers=json_type)
    assert resp.status_code in (400, 422), resp.text
    # not UTF-8, empty, a JSON array, a bare string
    for body, status in [(b"\xff\xfe{}", 400), (b"", 422), (b"[]", 422), (b'"x"', 422)]:
        resp = client.post("/v1/score", content=body, headers=json_type)
        assert resp.status_code == status, (body, resp.text)
    # batch items that are not objects are named
    err = _error(client.post("/v1/score/batch", json={"items": [CUSTOMER, 7, None]}), 422,
                 "invalid_request")
    assert [d["field"] for d in err["details"]] == ["items[1]", "items[2]"]


def test_request_ids_the_caller_sends_are_kept_only_when_safe(client: httpx.Client) -> None:
    kept = client.post("/v1/score", json=CUSTOMER, headers={"X-Request-ID": "core.42:a-b_c"})
    assert kept.headers["x-request-id"] == "core.42:a-b_c" == kept.json()["request_id"]
    for hostile in ["a b", "x" * 129, "é".encode(), "a\tb"]:
        resp = client.post("/v1/score", json=CUSTOMER, headers={"X-Request-ID": hostile})
        new = resp.headers["x-request-id"]
        assert new != hostile and len(new) == 32 and new == resp.json()["request_id"]


def test_every_kind_of_score_reaches_the_metrics(client: httpx.Client) -> None:
    """Single, pinned (scored in a worker thread) and batch scores are all counted."""
    before = scrape(client)
    pinned = {**CUSTOMER, "options": {"pin": {"churn": "1", "tier": "production"}}}
    assert client.post("/v1/score", json=pinned).status_code == 200
    assert client.post("/v1/score", json=CUSTOMER).status_code == 200
    assert client.post("/v1/score/batch", json={"items": [CUSTOMER] * 3}).status_code == 200
    after = scrape(client)
    for family in ("tier", "churn", "products", "catalog", "policy"):
        got = (value(after, "tierwise_scores_total", family=family, version="1")
               - value(before, "tierwise_scores_total", family=family, version="1"))
        assert got == 5, family


def test_not_ready_is_503(tmp_path: Path) -> None:
    class Loading:
        ready = False

        def for_request(self, **_: Any) -> Any:
            raise AssertionError("never asked while not ready")

    app = create_app(Settings(auth_enabled=False), live=Loading())
    with RunningServer(app) as running:
        resp = httpx.post(f"{running.url}/v1/score", json=CUSTOMER, timeout=30)
        _error(resp, 503, "not_ready")
        resp = httpx.post(f"{running.url}/v1/score/batch", json={"items": [CUSTOMER]},
                          timeout=30)
        _error(resp, 503, "not_ready")


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A replica on a real SQLite registry with auth on: (url, admin key)."""
    tmp = tmp_path_factory.mktemp("registry")
    settings = Settings(database_url=f"sqlite:///{tmp / 'registry.sqlite3'}",
                        models_dir=b.write_models_dir(tmp / "models"), auth_enabled=True,
                        bootstrap_admin_key_file=tmp / "admin.key", poll_interval_seconds=0.2,
                        compile_models=False)
    app = create_app(settings)
    with RunningServer(app) as running:
        deadline = time.monotonic() + 60
        while httpx.get(f"{running.url}/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the registry replica never got ready"
            time.sleep(0.05)
        yield running.url, (tmp / "admin.key").read_text().strip()


def test_the_key_is_checked_before_the_body_is_read(registry_server: tuple[str, str]) -> None:
    url, key = registry_server
    features = b.example_features(__import__("numpy").random.default_rng(2))
    body = {"customer_id": "c-auth", "features": features}
    missing = httpx.post(f"{url}/v1/score", content=b"{not json",
                         headers={"content-type": "application/json"})
    assert missing.status_code == 401 and missing.headers["www-authenticate"]
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = httpx.post(f"{url}/v1/score", json=body, headers={"X-API-Key": "tw_wrong"})
    assert wrong.status_code == 401
    for headers in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
        ok = httpx.post(f"{url}/v1/score", json=body, headers=headers)
        assert ok.status_code == 200, ok.text
        batch = httpx.post(f"{url}/v1/score/batch", json={"items": [body]}, headers=headers)
        assert batch.status_code == 200 and batch.json()["scored"] == 1
    bad_json = httpx.post(f"{url}/v1/score", content=b"{not json",
                          headers={"content-type": "application/json", "X-API-Key": key})
    assert bad_json.status_code == 400
