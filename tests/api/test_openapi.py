"""openapi.yaml at the root is exactly what the app serves, and documents the contract."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.api.openapi import build_openapi
from app.api.routes import health, metrics, models
from app.api.routes import status as status_routes
from app.config import PROJECT_ROOT, Settings
from app.features.contract import DEFAULT_FEATURES
from app.main import create_app
from app.registry.tables import LEDGER_ACTIONS

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}
PUBLIC = {("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics")}


def _served() -> dict[str, Any]:
    # The document does not depend on loaded models, so no lifespan is needed.
    app = create_app(Settings(auth_enabled=False), live=object())
    return TestClient(app).get("/openapi.json").json()


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in doc["paths"].items()
            for method, op in item.items()]


def test_openapi_yaml_is_identical_to_the_served_document() -> None:
    on_disk = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert on_disk == _served(), "openapi.yaml is stale: run `make openapi`"


def test_every_default_feature_is_documented() -> None:
    doc = _served()
    features = doc["components"]["schemas"]["CustomerFeatures"]
    for name in ("ScoreRequest", "BatchItem"):
        ref = doc["components"]["schemas"][name]["properties"]["features"]
        assert ref == {"$ref": "#/components/schemas/CustomerFeatures"}
    props = features["properties"]
    assert set(props) == {s.name for s in DEFAULT_FEATURES}
    assert features["additionalProperties"] is False  # unknown names are a 422
    for spec in DEFAULT_FEATURES:
        entry = props[spec.name]
        assert entry["description"], spec.name
        assert "example" in entry, spec.name
        # nullable: anyOf [the value's schema, null], as pydantic writes Optional
        value = entry["anyOf"][0] if spec.nullable else entry
        assert (entry["anyOf"][1] == {"type": "null"}) if spec.nullable else "anyOf" not in entry
        if spec.minimum is not None:
            assert value["minimum"] == spec.minimum
        if spec.kind == "category":
            assert value["enum"] == list(spec.categories)


def test_every_success_has_its_real_model() -> None:
    doc = _served()
    for method, path, op in _operations(doc):
        successes = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert len(successes) == 1, (method, path)
        ((_, response),) = successes.items()
        content = response["content"]
        if "application/json" in content:
            schema = content["application/json"]["schema"]
            assert set(schema) == {"$ref"}, (method, path, schema)  # never {type: string}
        else:
            assert path in ("/metrics", "/v1/models/{family}/versions/{version}/bundle")


def test_every_error_is_documented_in_the_one_shape() -> None:
    doc = _served()
    for method, path, op in _operations(doc):
        errors = {int(s): r for s, r in op["responses"].items() if not s.startswith("2")}
        if path == "/readyz":
            assert set(errors) == {503}  # {"ready": false}
            continue
        if (method, path) in PUBLIC:
            assert errors == {}, (method, path)
            continue
        assert {401, 403, 503} <= set(errors), (method, path)
        for code, response in errors.items():
            assert response["content"]["application/json"]["schema"] == ERROR_REF, (
                method, path, code)
        if "requestBody" in op and "application/json" in op["requestBody"]["content"]:
            assert {400, 413, 415, 422} <= set(errors), (method, path)
        if op.get("parameters"):
            assert 422 in errors, (method, path)


def test_both_key_headers_and_public_probes() -> None:
    doc = _served()
    schemes = doc["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    assert doc["security"] == [{"ApiKey": []}, {"Bearer": []}]  # either one
    for method, path, op in _operations(doc):
        assert op.get("security") == ([] if (method, path) in PUBLIC else None), (method, path)


def test_score_routes_are_documented_from_the_models() -> None:
    doc = _served()
    for path, request, response in (("/v1/score", "ScoreRequest", "ScoreResponse"),
                                    ("/v1/score/batch", "BatchRequest", "BatchResponse")):
        op = doc["paths"][path]["post"]
        assert op["tags"] == ["scoring"]
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{request}"}
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok == {"$ref": f"#/components/schemas/{response}"}
        assert set(op["responses"]) == {"200", "400", "401", "403", "404", "405", "409", "413",
                                        "415", "422", "503"}
    assert doc["components"]["schemas"]["ScoreRequest"]["examples"]
    assert doc["components"]["schemas"]["ScoreResponse"]["examples"]


def test_score_paths_do_not_depend_on_fastapi_routes() -> None:
    # The scoring endpoint is not a FastAPI route: the document describes it all the same.
    api = FastAPI()
    for router in (health.router, metrics.router, models.router, status_routes.router):
        api.include_router(router)
    doc = build_openapi(api)
    assert doc["paths"]["/v1/score"] == _served()["paths"]["/v1/score"]
    assert doc["paths"]["/v1/score/batch"] == _served()["paths"]["/v1/score/batch"]


def test_nullable_fields_and_enums_are_nullable() -> None:
    schemas = _served()["components"]["schemas"]
    risk = schemas["RecommendationOut"]["properties"]["risk_level"]
    assert {"type": "null"} in risk["anyOf"]
    assert {"type": "null"} in schemas["CustomerFeatures"]["properties"]["risk_profile"]["anyOf"]
    assert {"type": "null"} in schemas["LedgerPage"]["properties"]["next_after_id"]["anyOf"]


def test_the_upload_is_described_for_generators() -> None:
    op = _served()["paths"]["/v1/models/{family}/versions"]["post"]
    content = op["requestBody"]["content"]
    assert op["requestBody"]["required"] is True
    binary = {"schema": {"type": "string", "format": "binary"}}
    assert content == {"application/octet-stream": binary, "application/gzip": binary}
    assert set(op["responses"]) >= {"201", "409", "413", "415", "422"}


def test_ledger_actions_match_the_registry() -> None:
    doc = _served()
    params = {p["name"]: p for p in doc["paths"]["/v1/ledger"]["get"]["parameters"]}
    assert params["action"]["schema"]["anyOf"][0]["enum"] == list(LEDGER_ACTIONS)
