"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import ORJSONResponse

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> ORJSONResponse:
    return ORJSONResponse({"status": "ok"})


@router.get("/readyz", summary="A verified scoring context is live",
            responses={503: {"description": "Still loading, or no verified context"}})
async def readyz(request: Request) -> ORJSONResponse:
    live = getattr(request.app.state, "live", None)
    ready = bool(live is not None and live.ready)
    return ORJSONResponse({"ready": ready}, status_code=200 if ready else 503)
