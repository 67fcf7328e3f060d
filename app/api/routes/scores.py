"""POST /v1/score and /v1/score/batch: HTTP only; the data plane does the work."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from app import dataplane
from app.api.auth import RequireScorer
from app.api.responses import JSONBytes
from app.api.schemas import BatchRequest, BatchResponse, ErrorResponse, ScoreRequest, ScoreResponse
from app.errors import FieldProblem, PayloadTooLarge

router = APIRouter(prefix="/v1", tags=["scoring"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in (
        (400, "Malformed JSON"),
        (401, "Missing or unknown API key"),
        (403, "The key's role may not score"),
        (404, "A pinned version or alias does not exist"),
        (413, "Body or batch too large"),
        (422, "Invalid request or features; every problem is listed with its field"),
        (503, "No verified scoring context is live yet"),
    )
}


@router.post("/score", response_model=ScoreResponse, responses=_ERRORS,
             summary="Score one customer: tier, churn and next-best actions")
async def score(body: ScoreRequest, request: Request, principal: RequireScorer) -> JSONBytes:
    # One customer costs tens of microseconds of CPU: less than a thread-pool hop, so it
    # runs inline; batches go to the thread pool below.
    kwargs = {"live": request.app.state.live, "customer_id": body.customer_id,
              "features": body.features, "context": body.context, "options": body.options}
    if body.options is not None and body.options.pin:
        # A pin may load an older version from the registry: never on the event loop.
        result = await run_in_threadpool(lambda: dataplane.score_one(**kwargs))
    else:
        result = dataplane.score_one(**kwargs)
    result["request_id"] = request.state.request_id
    return JSONBytes(result)


@router.post("/score/batch", response_model=BatchResponse, responses=_ERRORS,
             summary="Score many customers; invalid items get their own error entry")
async def score_batch(body: BatchRequest, request: Request,
                      principal: RequireScorer) -> JSONBytes:
    limit = request.app.state.settings.max_batch_items
    if len(body.items) > limit:
        raise PayloadTooLarge(
            f"a batch may hold at most {limit} customers",
            [FieldProblem("items", f"{len(body.items)} items, the limit is {limit}")],
        )
    result = await run_in_threadpool(
        dataplane.score_batch, live=request.app.state.live, items=body.items,
        options=body.options,
    )
    result["request_id"] = request.state.request_id
    return JSONBytes(result)
