"""The OpenAPI document the app serves (and openapi.yaml mirrors, checked by a test).

FastAPI documents its own routes. The two scoring routes are answered by the plain-ASGI
endpoint in front of FastAPI (app/api/score_endpoint.py), so their path items are written
here from the same pydantic models that endpoint validates with; they replace whatever
FastAPI would generate for those paths. Every error of every operation has the one shape,
ErrorResponse.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from app import __version__
from app.api.schemas import (
    FEATURES_SCHEMA,
    BatchItem,
    BatchRequest,
    BatchResponse,
    ErrorResponse,
    ScoreRequest,
    ScoreResponse,
    features_json_schema,
)

DESCRIPTION = """Scores retail-bank customers in milliseconds: the booked and likely true
(wallet) tier, a calibrated churn probability with reasons, and next-best-product
recommendations that respect eligibility, suitability and contact policy. Every response
names the model versions that decided it and carries a request id.

Send the API key as `X-API-Key: <key>` or `Authorization: Bearer <key>`. `/healthz`,
`/readyz` and `/metrics` need no key.

Errors always have the shape
`{"error": {"code": "...", "message": "...", "details": [{"field": "...", "problem": "..."}]}}`.
"""

REF = "#/components/schemas/{model}"
SECURITY_SCHEMES = {
    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "Bearer": {"type": "http", "scheme": "bearer",
               "description": "The same API key, or an OIDC access token (a JWT) when the "
                              "replica is configured for one (TIERWISE_OIDC_ISSUER)."},
}
# Either header will do: two alternatives, not both at once.
SECURITY: list[dict[str, list[str]]] = [{"ApiKey": []}, {"Bearer": []}]
PUBLIC: dict[str, Any] = {"security": []}

ERROR_TEXT = {
    400: "The body is not valid JSON",
    401: "Missing or unknown API key, or an invalid bearer token",
    403: "The key's role may not do this",
    404: "Unknown family, version or alias",
    405: "Method not allowed (the Allow header lists the allowed ones)",
    409: "Conflicts with the registry's state",
    413: "Body too large",
    415: "Content-Type is not the one this operation takes",
    422: "The request does not follow the contract; every problem is listed with its field",
    503: "Not ready: no verified scoring context yet, or the registry is unavailable",
    507: "The outcomes table is full (TIERWISE_OUTCOMES_MAX_ROWS)",
}
# What every operation behind an API key may answer (a replica whose key registry is down
# answers 503, as does one that has no scoring context yet).
AUTH_ERRORS = (401, 403, 503)
JSON_BODY_ERRORS = (400, 413, 415, 422)


def operation_id(route: APIRoute) -> str:
    """operationId = the route function's name (generated clients name their methods so)."""
    return route.name


def errors(*statuses: int, **texts: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` documenting each status with ErrorResponse (texts: s404="...")."""
    return {s: {"model": ErrorResponse,
                "description": texts.get(f"s{s}", ERROR_TEXT[s])} for s in sorted(statuses)}


def _error_objects(statuses: tuple[int, ...], **texts: str) -> dict[str, Any]:
    ref = {"$ref": REF.format(model="ErrorResponse")}
    return {str(s): {"description": texts.get(f"s{s}", ERROR_TEXT[s]),
                     "content": {"application/json": {"schema": ref}}}
            for s in sorted(statuses)}


def _score_operation(op_id: str, summary: str, description: str, request: type,
                     response: type, **texts: str) -> dict[str, Any]:
    statuses = (*AUTH_ERRORS, *JSON_BODY_ERRORS, 404, 405, 409)
    return {
        "tags": ["scoring"],
        "summary": summary,
        "description": description,
        "operationId": op_id,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model=request.__name__)}}}},
        "responses": {
            "200": {"description": "Scored", "content": {"application/json": {
                "schema": {"$ref": REF.format(model=response.__name__)}}}},
            **_error_objects(statuses, **texts),
        },
    }


def score_paths() -> dict[str, dict[str, Any]]:
    """The path items of POST /v1/score and POST /v1/score/batch."""
    pin = "A pinned version or alias does not exist"
    unapproved = "A pinned version is not approved (not_approved names options.pin.<family>)"
    return {
        "/v1/score": {"post": _score_operation(
            "score", "Score one customer: tier, churn and next-best actions",
            "Validates the whole request first: every bad field is listed in one 422.",
            ScoreRequest, ScoreResponse, s404=pin, s409=unapproved)},
        "/v1/score/batch": {"post": _score_operation(
            "score_batch", "Score many customers; invalid items get their own error entry",
            "Results come back in input order. An item that breaks the contract or has "
            "invalid features gets an `error` entry instead of scores; the batch still "
            "answers 200. More items than the replica's batch limit is a 413.",
            BatchRequest, BatchResponse, s404=pin, s409=unapproved,
            s413="Body too large, or more items than the batch limit")},
    }


def score_schemas() -> dict[str, Any]:
    """Component schemas of the scoring routes (and of the error shape)."""
    requests: list[type[BaseModel]] = [ScoreRequest, BatchRequest, BatchItem]
    responses: list[type[BaseModel]] = [ScoreResponse, BatchResponse, ErrorResponse]
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        *((m, "validation") for m in requests), *((m, "serialization") for m in responses)]
    _, top = models_json_schema(models, ref_template=REF)
    defs: dict[str, Any] = top.get("$defs", {})
    # One named features schema for both requests: generated clients get one class for it.
    for name in ("ScoreRequest", "BatchItem"):
        defs[name]["properties"]["features"] = {"$ref": REF.format(model="CustomerFeatures")}
    return {**defs, "CustomerFeatures": FEATURES_SCHEMA}


def _referenced(doc: dict[str, Any]) -> set[str]:
    """Names of the component schemas reachable from the paths."""
    schemas = doc.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    todo: list[Any] = [doc.get("paths", {})]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                name = ref.rsplit("/", 1)[1]
                if name not in seen:
                    seen.add(name)
                    todo.append(schemas.get(name))
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return seen


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document, built once and cached on the app."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title="tierwise", version=__version__, description=DESCRIPTION,
                      routes=app.routes)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(score_schemas())
    # The scoring routes first, whether or not FastAPI still has routes for them.
    doc["paths"] = {**score_paths(), **{
        path: item for path, item in doc.get("paths", {}).items() if path not in score_paths()}}
    keep = _referenced(doc)
    components["schemas"] = {name: schemas[name] for name in sorted(keep)}
    components["securitySchemes"] = SECURITY_SCHEMES
    doc["security"] = SECURITY
    app.openapi_schema = doc
    return doc


class LiveDocument:
    """The document as served: build_openapi's, with the CustomerFeatures schema of the
    contract live in this replica (one copy per contract sha256, rebuilt when it changes).
    Before a context is live, or without one (the `openapi` command), the default one."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._lock = threading.Lock()
        self._sha256: str | None = None
        self._doc: dict[str, Any] | None = None

    def served(self, live: Any) -> dict[str, Any]:
        base = build_openapi(self._app)
        ctx = _live_context(live)
        if ctx is None:
            return base
        sha256 = ctx.versions["features"].sha256
        with self._lock:
            if self._sha256 != sha256 or self._doc is None:
                doc = copy.deepcopy(base)
                doc["components"]["schemas"]["CustomerFeatures"] = features_json_schema(
                    ctx.contract.specs())
                self._sha256, self._doc = sha256, doc
            return self._doc


def _live_context(live: Any) -> Any:
    if live is None or not getattr(live, "ready", False) or not hasattr(live, "current"):
        return None
    ctx = live.current()
    return ctx if hasattr(ctx, "contract") and "features" in ctx.versions else None


def openapi_yaml(app: FastAPI) -> str:
    """The document as the YAML we keep at the repository root."""
    return yaml.safe_dump(build_openapi(app), sort_keys=False, allow_unicode=True, width=100)
