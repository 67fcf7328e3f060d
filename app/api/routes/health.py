"""Liveness and readiness probes for orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request

from app.api.responses import JSONBytes

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
async def healthz() -> JSONBytes:
    return JSONBytes({"status": "ok"})


@router.get("/readyz", summary="A verified scoring context is live",
            responses={503: {"description": "Still loading, or no verified context"}})
async def readyz(request: Request) -> JSONBytes:
    live = getattr(request.app.state, "live", None)
    ready = bool(live is not None and live.ready)
    return JSONBytes({"ready": ready}, status_code=200 if ready else 503)
