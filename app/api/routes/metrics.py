"""GET /metrics: Prometheus text for scrapers (public, like the probes)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from starlette.responses import Response

from app.api.deps import ServicesDep
from app.api.openapi import PUBLIC, operation_id
from app.observability import exposition

router = APIRouter(tags=["operations"], generate_unique_id_function=operation_id)
_MEDIA_TYPE = exposition.CONTENT_TYPE.split(";", 1)[0]


@router.get("/metrics", response_class=Response, summary="Prometheus metrics of this worker",
            openapi_extra=PUBLIC,
            responses={200: {"description": "Prometheus text exposition format",
                             "content": {_MEDIA_TYPE: {"schema": {"type": "string"}}}}})
async def metrics(services: ServicesDep) -> Response:
    # Scores tallied since the last flush are added first, so a scrape sees every score
    # answered before it; rendering may read many worker files, so it leaves the loop.
    plane = services.data_plane
    exposition.refresh(services.live, plane.tally if plane is not None else None)
    body = await run_in_threadpool(exposition.render)
    return Response(body, media_type=exposition.CONTENT_TYPE)
