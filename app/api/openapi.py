"""The OpenAPI document the app serves (and openapi.yaml mirrors, checked by a test)."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app import __version__
from app.api.schemas import BatchItem

DESCRIPTION = """Scores retail-bank customers in milliseconds: the booked and likely true
(wallet) tier, a calibrated churn probability with reasons, and next-best-product
recommendations that respect eligibility, suitability and contact policy. Every response
names the model versions that decided it and carries a request id.

Errors always have the shape
`{"error": {"code": "...", "message": "...", "details": [{"field": "...", "problem": "..."}]}}`.
"""


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """The document, built once and cached on the app."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title="tierwise", version=__version__, description=DESCRIPTION,
                      routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    item = BatchItem.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in item.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas["BatchItem"] = item
    doc.setdefault("components", {})["securitySchemes"] = {
        "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    }
    doc["security"] = [{"ApiKey": []}]
    app.openapi_schema = doc
    return doc


def openapi_yaml(app: FastAPI) -> str:
    """The document as the YAML we keep at the repository root."""
    return yaml.safe_dump(build_openapi(app), sort_keys=False, allow_unicode=True, width=100)
