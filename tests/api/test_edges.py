"""Hostile numbers and text over real HTTP, on SQLite and PostgreSQL: integers past what the
database's columns hold (2^31 for a version, 2^63 for a ledger id) and lone surrogates
("\\ud800", not Unicode text) anywhere a client sends text are a 4xx in the error shape,
never a 500; the registry is unchanged; the API document states each bound."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.config import Settings
from app.main import create_app
from tests.conftest import RunningServer
from tests.registry import bundles as b
from tests.registry.db import drop_pg_database, fresh_database

INT32 = 2**31 - 1  # the largest version the registry's 32-bit columns hold
INT64 = 2**63 - 1  # the largest ledger id (64-bit)
TOO_BIG = [2**31, 2**32, 2**63, 2**64, 10**30]
HUGE = "9" * 5000  # past Python's int parsing limit (4300 digits)
JSON = {"Content-Type": "application/json"}
SURROGATES = ["\\ud800", "\\udfff", "a\\udc00b"]  # JSON escapes of lone surrogates


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[httpx.Client]:
    """The whole service on real HTTP, auth on, seeded with the test models: a client with
    the bootstrap admin key."""
    tmp = tmp_path_factory.mktemp(f"edges-{request.param}")
    url = fresh_database(request.param, tmp)
    settings = Settings(database_url=url, models_dir=b.write_models_dir(tmp / "models"),
                        auth_enabled=True, bootstrap_admin_key_file=tmp / "admin.key",
                        compile_models=False, poll_interval_seconds=0.5, log_level="ERROR")
    try:
        with RunningServer(create_app(settings)) as running:
            deadline = time.monotonic() + 60
            while httpx.get(running.url + "/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the service did not become ready"
                time.sleep(0.1)
            key = Path(settings.bootstrap_admin_key_file).read_text().strip()
            with httpx.Client(base_url=running.url, headers={"X-API-Key": key},
                              timeout=30) as client:
                yield client
    finally:
        if request.param == "postgresql":
            drop_pg_database(url)


def refused(response: httpx.Response, status: int) -> dict[str, Any]:
    """The error body of a refusal with `status`, in the one error shape."""
    assert response.status_code == status, (response.request.url, response.text)
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"} and error["message"]
    assert all(set(d) == {"field", "problem"} for d in error["details"])
    return dict(error)


def ledger(client: httpx.Client) -> list[Any]:
    return list(client.get("/v1/ledger", params={"limit": 1000}).json()["entries"])


def customer(**options: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": "c1", "features": b.example_features()}
    if options:
        body["options"] = options
    return body


# --- integers ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/models/churn/versions/{v}",
                                  "/v1/models/churn/versions/{v}/bundle"])
def test_version_path_parameters(service: httpx.Client, path: str) -> None:
    assert refused(service.get(path.format(v=INT32)), 404)["code"] == "not_found"
    for number in [*TOO_BIG, HUGE, -1, 0]:
        error = refused(service.get(path.format(v=number)), 422)
        assert error["details"][0]["field"] == "version"


def test_approving_an_out_of_range_version(service: httpx.Client) -> None:
    before = ledger(service)
    assert refused(service.post(f"/v1/models/churn/versions/{INT32}/approve", json={}),
                   404)["code"] == "not_found"
    for number in [*TOO_BIG, HUGE]:
        refused(service.post(f"/v1/models/churn/versions/{number}/approve", json={}), 422)
    assert ledger(service) == before


def test_ledger_paging_parameters(service: httpx.Client) -> None:
    for after_id in (2**31, INT64):  # past a 32-bit id, and the largest 64-bit one
        page = service.get("/v1/ledger", params={"after_id": after_id})
        assert page.status_code == 200 and page.json()["entries"] == []
    for after_id in (2**63, 2**64, 10**30, HUGE, -1):
        error = refused(service.get("/v1/ledger", params={"after_id": after_id}), 422)
        assert error["details"][0]["field"] == "after_id"
    for limit in (1001, 2**31, 2**63, HUGE, 0):
        error = refused(service.get("/v1/ledger", params={"limit": limit}), 422)
        assert error["details"][0]["field"] == "limit"


@pytest.mark.parametrize("field", ["version", "expected_version"])
def test_alias_move_numbers(service: httpx.Client, field: str) -> None:
    before = ledger(service)
    for alias in ("staging", "production"):
        for number in TOO_BIG:
            move = {"family": "churn", "alias": alias, "version": 1, field: number}
            error = refused(service.post("/v1/models/aliases", json={"moves": [move]}), 422)
            assert error["details"][0]["field"] == f"moves[0].{alias}.{field}"
        # 5,000 digits: Python's JSON parser refuses to make an int of them (400)
        raw = (f'{{"moves": [{{"family": "churn", "alias": "{alias}", "version": 1, '
               f'"{field}": {HUGE}}}]}}')
        refused(service.post("/v1/models/aliases", content=raw, headers=JSON), 400)
    # The largest version a column holds is an honest "no such version" / "not there now".
    move = {"family": "churn", "alias": "staging", "version": 1, field: INT32}
    status = 404 if field == "version" else 409
    refused(service.post("/v1/models/aliases", json={"moves": [move]}), status)
    assert ledger(service) == before


def test_check_with_numbers(service: httpx.Client) -> None:
    before = ledger(service)
    upload = {"content": b.archive(b.churn_bundle(seed=11)),
              "headers": {"Content-Type": "application/gzip"}}
    for number in (2**31, 2**63, 10**30, HUGE):
        error = refused(service.post("/v1/models/churn/versions",
                                     params={"check_with": f"tier={number}"}, **upload), 422)
        assert error["details"][0]["field"] == "check_with[0]"
    error = refused(service.post("/v1/models/churn/versions",
                                 params={"check_with": "tier=999999999"}, **upload), 404)
    assert error["code"] == "not_found"
    assert ledger(service) == before


def test_pinned_versions(service: httpx.Client) -> None:
    for pin in (str(INT32), str(2**31), str(2**63), str(10**30), HUGE):
        error = refused(service.post("/v1/score", json=customer(pin={"churn": pin})), 422)
        assert error["details"][0]["field"] == "options.pin.churn"
    refused(service.post("/v1/score", json=customer(pin={"churn": 2**63})), 422)
    assert refused(service.post("/v1/score", json=customer(pin={"churn": "999999999"})),
                   404)["code"] == "not_found"
    batch = {"items": [customer()], "options": {"pin": {"tier": str(2**63)}}}
    refused(service.post("/v1/score/batch", json=batch), 422)


# --- lone surrogates ------------------------------------------------------------------------


FEATURES = '{"age": 40, "aum_total": 1000.0, "tenure_months": 10, "risk_profile": "C3"}'


@pytest.mark.parametrize("text", SURROGATES)
def test_surrogates_in_a_single_score_body(service: httpx.Client, text: str) -> None:
    """Not Unicode text, so not JSON text: the one customer's body is refused (400)."""
    for raw in (f'{{"customer_id": "{text}", "features": {FEATURES}}}',
                f'{{"customer_id": "c1", "features": {{"{text}": 1}}}}',
                f'{{"customer_id": "c1", "features": {FEATURES}, '
                f'"options": {{"pin": {{"{text}": "1"}}}}}}',
                f'{{"customer_id": "c1", "features": {FEATURES}, '
                f'"context": {{"channel": "{text}"}}}}'):
        error = refused(service.post("/v1/score", content=raw.encode(), headers=JSON), 400)
        assert error["code"] == "invalid_json" and error["details"][0]["field"] == "body"


@pytest.mark.parametrize("text", SURROGATES)
def test_surrogates_in_batch_items_refuse_those_items_only(service: httpx.Client,
                                                           text: str) -> None:
    good = f'{{"customer_id": "ok", "features": {FEATURES}}}'
    category = FEATURES.replace('"C3"', f'"{text}"')  # a value the error message echoes
    items = [
        good,
        f'{{"customer_id": "{text}", "features": {FEATURES}}}',
        f'{{"customer_id": "c2", "features": {{"{text}": 1, {FEATURES[1:]}}}',
        f'{{"customer_id": "c3", "features": {category}}}',
        f'{{"customer_id": "c4", "features": {FEATURES}, "context": {{"history": '
        f'[{{"action_id": "{text}", "date": "2026-01-01", "outcome": "offered"}}]}}}}',
        f'{{"customer_id": "c5", "features": {FEATURES}, "{text}": 1}}',
        good,
    ]
    response = service.post("/v1/score/batch", headers=JSON,
                            content=f'{{"items": [{", ".join(items)}]}}'.encode())
    assert response.status_code == 200, response.text
    body = orjson.loads(response.content)  # strict: no lone surrogate in the answer
    results = body["results"]
    assert (body["scored"], body["failed"]) == (2, 5)
    assert [r.get("error") is None for r in results] == [True, *[False] * 5, True]
    assert [r["customer_id"] for r in results] == ["ok", None, "c2", "c3", "c4", "c5", "ok"]
    fields = [r["error"]["details"][0]["field"] for r in results[1:6]]
    assert fields[0] == "items[1].customer_id"
    shown = json.loads(f'"{text}"').encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert fields[1] == f"items[2].features.{shown}"  # an unknown name, U+FFFD in the answer
    assert fields[2] == "items[3].features.risk_profile"
    assert fields[3].startswith("items[4].context.history[0].action_id")
    assert "\ufffd" in results[3]["error"]["details"][0]["problem"]  # the value, replaced


def test_surrogates_in_a_batch_envelope_or_with_other_faults(service: httpx.Client) -> None:
    good = f'{{"customer_id": "ok", "features": {FEATURES}}}'
    pin = f'{{"items": [{good}], "options": {{"pin": {{"\\ud800": "1"}}}}}}'
    error = refused(service.post("/v1/score/batch", content=pin.encode(), headers=JSON), 422)
    assert error["details"][0]["field"].startswith("options.pin")
    for raw in (f'{{"items": [{good}, {{"customer_id": "\\ud800", "x": NaN}}]}}',  # NaN
                f'{{"items": [{good}, {{"customer_id": "\\ud800"}}]',  # unclosed
                b'{"items": [{"customer_id": "\xed\xa0\x80"}]}'.decode("latin-1")):
        refused(service.post("/v1/score/batch", content=raw.encode("latin-1"), headers=JSON),
                400)


@pytest.mark.parametrize("text", SURROGATES)
def test_surrogates_in_registry_bodies(service: httpx.Client, text: str) -> None:
    before = ledger(service)
    moves = [
        f'{{"moves": [{{"family": "{text}", "alias": "staging", "version": 1}}]}}',
        f'{{"moves": [{{"family": "churn", "alias": "{text}", "version": 1}}]}}',
        f'{{"moves": [{{"family": "churn", "alias": "staging", "version": 1}}], '
        f'"note": "{text}"}}',
        f'{{"moves": [{{"family": "churn", "alias": "staging", "version": 1, "{text}": 1}}]}}',
    ]
    for raw in moves:
        refused(service.post("/v1/models/aliases", content=raw.encode(), headers=JSON), 422)
    for path in ("/v1/models/churn/versions/1/approve", "/v1/models/churn/rollback"):
        for raw in (f'{{"note": "{text}"}}', f'{{"{text}": "x"}}'):
            refused(service.post(path, content=raw.encode(), headers=JSON), 422)
    assert ledger(service) == before


@pytest.mark.parametrize("encoded", ["%ED%A0%80", "%ED%BF%BF", "%FF", "%C0%80", "a%00b"])
def test_surrogates_and_bad_bytes_in_paths_and_query_strings(service: httpx.Client,
                                                              encoded: str) -> None:
    """A surrogate's UTF-8 form, bytes that are not UTF-8, a NUL: 422 naming the parameter."""
    before = ledger(service)
    upload = {"content": b.archive(b.churn_bundle(seed=12)),
              "headers": {"Content-Type": "application/gzip"}}
    for method, url, field in (
            ("GET", f"/v1/ledger?family={encoded}", "family"),
            ("GET", f"/v1/ledger?action={encoded}", "action"),
            ("GET", f"/v1/ledger?after_id={encoded}", "after_id"),
            ("GET", f"/v1/models/{encoded}/versions", "family"),
            ("GET", f"/v1/models/churn/versions/{encoded}", "version"),
            ("GET", f"/v1/models/{encoded}/history", "family"),
            ("POST", f"/v1/models/churn/versions?check_with=tier%3D{encoded}", "check_with[0]"),
            ("POST", f"/v1/models/churn/versions?check_with={encoded}%3D1", "check_with[0]")):
        response = service.request(method, url, **(upload if method == "POST" else {}))
        assert refused(response, 422)["details"][0]["field"] == field, url
    assert ledger(service) == before


def test_surrogate_bytes_in_headers(service: httpx.Client) -> None:
    bad = b"\xed\xa0\x80\xff"
    url = str(service.base_url).rstrip("/") + "/v1/models"
    key = httpx.get(url, headers={"X-API-Key": bad})
    assert refused(key, 401)["code"] == "unauthorized"
    bearer = httpx.get(url, headers={"Authorization": b"Bearer " + bad})
    assert refused(bearer, 401)["code"] == "unauthorized"
    kept = service.get("/v1/models", headers={"X-Request-ID": bad})
    assert kept.status_code == 200 and len(kept.headers["x-request-id"]) == 32


# --- the API document states the bounds -----------------------------------------------------


def test_the_document_states_each_bound(service: httpx.Client) -> None:
    doc = service.get("/openapi.json").json()
    params = {(path, method, p["name"]): p["schema"]
              for path, item in doc["paths"].items() for method, op in item.items()
              for p in op.get("parameters", [])}
    for path in ("/v1/models/{family}/versions/{version}",
                 "/v1/models/{family}/versions/{version}/bundle"):
        assert params[(path, "get", "version")]["maximum"] == INT32
    assert params[("/v1/models/{family}/versions/{version}/approve", "post", "version")][
        "maximum"] == INT32
    assert params[("/v1/ledger", "get", "after_id")]["maximum"] == INT64
    assert params[("/v1/ledger", "get", "limit")]["maximum"] == 1000
    check_with = params[("/v1/models/{family}/versions", "post", "check_with")]["items"]
    assert check_with["pattern"].endswith("=[1-9][0-9]{0,8}$")  # at most 999,999,999
    schemas = doc["components"]["schemas"]
    for model in ("ProductionMove", "OtherAliasMove"):
        for field in ("version", "expected_version"):
            prop = schemas[model]["properties"][field]
            bounds = [s for s in prop.get("anyOf", [prop]) if s.get("type") == "integer"]
            assert bounds[0]["maximum"] == INT32, (model, field)
    pin = schemas["ScoreOptions"]["properties"]["pin"]["additionalProperties"]
    assert pin["pattern"].startswith("^(?:[1-9][0-9]{0,8}|")
