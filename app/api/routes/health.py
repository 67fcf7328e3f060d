"""Liveness and readiness probes for orchestrators (public: no API key)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from app.api.deps import ServicesDep
from app.api.openapi import PUBLIC, operation_id
from app.api.responses import JSONBytes

router = APIRouter(tags=["operations"], default_response_class=JSONResponse,
                   generate_unique_id_function=operation_id)


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool


@router.get("/healthz", response_model=Health, summary="The process is alive",
            openapi_extra=PUBLIC)
async def healthz() -> JSONBytes:
    return JSONBytes({"status": "ok"})


@router.get("/readyz", response_model=Readiness, summary="A verified scoring context is live",
            openapi_extra=PUBLIC,
            responses={503: {"model": Readiness,
                             "description": "Still loading, or no verified context"}})
async def readyz(services: ServicesDep) -> JSONBytes:
    ready = services.ready
    return JSONBytes({"ready": ready}, status_code=200 if ready else 503)
