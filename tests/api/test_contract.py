"""The wire contract on points schemathesis cannot judge alone: strict types outside
`features` (no coercion to booleans, integers or versions), 415 for a body that is not JSON,
405 with every allowed method, no redirect for a trailing slash, public probes."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api.schemas import BatchItem, ScoreRequest
from app.config import Settings
from app.features.contract import default_example
from app.main import create_app
from app.registry.auth_keys import create_key
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
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
REQUEST: dict[str, Any] = {
    "customer_id": "C1",
    "features": default_example(),
    "context": {"channel": "mobile", "as_of": "2026-11-30",
                "history": [{"action_id": "credit_card", "date": "2026-11-01",
                             "outcome": "declined"}]},
    "options": {"top_n": 3, "explain": False, "include_suppressed": True},
}


@pytest.fixture(scope="module")
def scoring(default_context: ScoringContext) -> Iterator[TestClient]:
    """The whole app, auth off, on the default models."""
    app = create_app(Settings(auth_enabled=False), live=StaticContexts(default_context))
    with TestClient(app) as client:
        yield client


def _with(path: str, value: Any) -> dict[str, Any]:
    body = copy.deepcopy(REQUEST)
    *parents, last = path.split(".")
    node = body
    for part in parents:
        node = node[part]
    node[last] = value
    return body


def _error(resp: Any, status: int) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    return dict(body["error"])


LOOSE = [  # (field, value): each was once coerced; each is now a 422 naming the field
    ("options.top_n", "3"), ("options.top_n", True), ("options.top_n", 3.5),
    ("options.explain", "yes"), ("options.explain", 0), ("options.explain", "true"),
    ("options.include_suppressed", 1), ("options.parts", "tier"),
    ("options.pin", {"churn": 1}), ("options.pin", {"churn": True}),
    ("options.pin", {"churn": "v1"}),
    ("customer_id", 123), ("context.as_of", 20261130), ("context.as_of", "20261130"),
    ("context.as_of", "2026-02-30"), ("context.channel", 1),
]


@pytest.mark.parametrize(("field", "value"), LOOSE)
def test_no_coercion_outside_features(scoring: TestClient, field: str, value: Any) -> None:
    err = _error(scoring.post("/v1/score", json=_with(field, value)), 422)
    assert err["code"] == "invalid_request"
    assert any(d["field"].startswith(field) for d in err["details"]), err
    batch = {"items": [{k: v for k, v in _with(field, value).items() if k != "options"}],
             "options": _with(field, value)["options"]}
    resp = scoring.post("/v1/score/batch", json=batch)
    if field.startswith("options."):  # the envelope is refused whole
        assert _error(resp, 422)["code"] == "invalid_request"
    else:  # an item is refused on its own, in the results
        assert resp.status_code == 200, resp.text
        assert resp.json()["results"][0]["error"]["code"] == "invalid_request"


def test_strict_values_that_are_right_are_accepted(scoring: TestClient) -> None:
    # 3.0 is the JSON integer 3; dates are ISO strings
    resp = scoring.post("/v1/score", json=_with("options.top_n", 3.0))
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["recommendations"]) <= 3


def test_features_keep_their_own_validator(scoring: TestClient) -> None:
    body = _with("features", {**default_example(), "has_credit_card": "yes", "age": "42"})
    err = _error(scoring.post("/v1/score", json=body), 422)
    assert err["code"] == "invalid_feature"
    assert {d["field"] for d in err["details"]} == {"features.has_credit_card", "features.age"}


@pytest.mark.parametrize("date", ["2026-11-01", "20261101", 20261101, "2026-13-01", None])
def test_dates_read_the_same_in_json_and_python(date: Any) -> None:
    # The scoring endpoint validates requests from JSON bytes and batch items from parsed
    # objects: both must take and refuse the same dates.
    item = {"customer_id": "C1", "features": {},
            "context": {"history": [{"action_id": "a", "date": date, "outcome": "offered"}]}}
    outcomes = []
    for validate in (lambda: TypeAdapter(BatchItem).validate_python(item),
                     lambda: BatchItem.model_validate_json(json.dumps(item)),
                     lambda: ScoreRequest.model_validate_json(json.dumps(item))):
        try:
            validate()
            outcomes.append(True)
        except ValidationError:
            outcomes.append(False)
    assert outcomes == [date == "2026-11-01"] * 3


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml"])
def test_a_body_that_is_not_json_is_415(scoring: TestClient, content_type: str) -> None:
    for path in ("/v1/score", "/v1/score/batch"):
        resp = scoring.post(path, content=json.dumps(REQUEST),
                            headers={"Content-Type": content_type})
        assert _error(resp, 415)["code"] == "unsupported_media_type"


def test_trailing_slashes_are_404_never_redirects(scoring: TestClient) -> None:
    for method, path in (("POST", "/v1/score/"), ("POST", "/v1/score/batch/"),
                         ("GET", "/v1/models/"), ("GET", "/healthz/"), ("GET", "/v1/status/")):
        resp = scoring.request(method, path, json=REQUEST, follow_redirects=False,
                               headers={"Host": "evil.example"})
        assert _error(resp, 404)["code"] == "not_found", (method, path)
        assert "location" not in resp.headers


def test_405_lists_every_method_of_the_path(scoring: TestClient) -> None:
    for method, path, allowed in (("DELETE", "/v1/models/tier/versions", "GET, HEAD, POST"),
                                  ("PUT", "/v1/models/aliases", "POST"),
                                  ("POST", "/healthz", "GET, HEAD"),
                                  ("GET", "/v1/score", "POST")):
        resp = scoring.request(method, path)
        assert _error(resp, 405)["code"] == "method_not_allowed"
        assert resp.headers["allow"] == allowed, (method, path)


def test_status_of_fixed_contexts_follows_its_model(scoring: TestClient) -> None:
    body = scoring.get("/v1/status").json()
    assert body["ready"] is True and body["source"] == "static"
    assert set(body["versions"]) == {"features", "tier", "churn", "products", "catalog", "policy"}
    assert isinstance(body["replica"]["pid"], int)


def test_probes_need_no_key(default_context: ScoringContext) -> None:
    app = create_app(Settings(auth_enabled=True), live=StaticContexts(default_context))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"ready": True}
        assert client.get("/metrics").status_code == 200
        assert _error(client.get("/v1/status"), 401)["code"] == "unauthorized"


# --- the registry ----------------------------------------------------------------------


@pytest.fixture
def registry(migrated_engine: Engine, seeded: sessionmaker[Session]
             ) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with seeded() as s:
        headers = {"X-API-Key": create_key(session=s, name="admin", role="admin")[1]}
        s.commit()
    with TestClient(registry_app(engine=migrated_engine, sessions=seeded)) as client:
        yield client, headers


@pytest.mark.parametrize("version", [True, "2", "1", 1.5, 0, 2**31])
def test_an_alias_version_is_an_integer_and_nothing_else(
        registry: tuple[TestClient, dict[str, str]], connection: Connection,
        version: Any) -> None:
    client, headers = registry
    before = snapshot(connection)
    move = {"family": "churn", "alias": "staging", "version": version}
    err = _error(client.post("/v1/models/aliases", json={"moves": [move]}, headers=headers), 422)
    assert err["details"][0]["field"].startswith("moves[0]"), err
    assert snapshot(connection) == before  # `"version": true` no longer moves to version 1


def test_production_needs_a_version(registry: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = registry
    move = {"family": "churn", "alias": "production", "version": None}
    assert _error(client.post("/v1/models/aliases", json={"moves": [move]}, headers=headers),
                  422)["code"] == "invalid_request"
    staging = {"family": "churn", "alias": "staging", "version": 1.0}  # JSON's integer 1
    resp = client.post("/v1/models/aliases", json={"moves": [staging]}, headers=headers)
    assert resp.status_code == 200 and resp.json()["moves"][0]["version"] == 1


@pytest.mark.parametrize(("path", "params"), [
    ("/v1/ledger", {"limit": "ten"}), ("/v1/ledger", {"limit": "2.5"}),
    ("/v1/ledger", {"action": "delete"}), ("/v1/ledger", {"family": "nope"}),
    ("/v1/models/nope/versions", {}), ("/v1/models/churn/versions/true", {}),
])
def test_parameters_are_checked(registry: tuple[TestClient, dict[str, str]], path: str,
                                params: dict[str, str]) -> None:
    client, headers = registry
    assert _error(client.get(path, params=params, headers=headers), 422)["code"] == \
        "invalid_request"


def test_registry_json_routes_refuse_other_bodies(
        registry: tuple[TestClient, dict[str, str]], connection: Connection) -> None:
    client, headers = registry
    before = snapshot(connection)
    moves = json.dumps({"moves": [{"family": "churn", "alias": "staging", "version": 1}]})
    for path, body in (("/v1/models/aliases", moves),
                       ("/v1/models/churn/versions/1/approve", '{"note": "ok"}'),
                       ("/v1/models/churn/rollback", '{"note": "back"}')):
        resp = client.post(path, content=body,
                           headers={**headers, "Content-Type": "text/plain"})
        assert _error(resp, 415)["code"] == "unsupported_media_type", path
    assert snapshot(connection) == before
    # No body at all is fine where the body is optional (here: nothing to roll back to).
    assert _error(client.post("/v1/models/churn/rollback", headers=headers), 409)
