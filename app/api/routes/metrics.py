"""GET /metrics: Prometheus text for scrapers (left out of the OpenAPI document)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.observability import exposition

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    # The refresh runs here, on the event loop thread, because that thread owns the tally of
    # single-customer scores; rendering may read many worker files, so it leaves the loop.
    exposition.refresh(getattr(request.app.state, "live", None))
    body = await run_in_threadpool(exposition.render)
    return Response(body, media_type=exposition.CONTENT_TYPE)
