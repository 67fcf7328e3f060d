"""POST /v1/score and /v1/score/batch are served by app/api/score_endpoint.py (plain ASGI in
front of FastAPI) and documented by app/api/openapi.py; no FastAPI route serves them."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1", tags=["scoring"])
