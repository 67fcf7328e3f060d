"""GET /v1/status: what this replica serves, what the registry says, and the last failure."""

from __future__ import annotations

import os
import socket
from typing import Any

from fastapi import APIRouter, Request

from app.api.auth import RequireScorer
from app.errors import NotReady

router = APIRouter(tags=["operations"])
_REPLICA = {"hostname": socket.gethostname(), "pid": os.getpid()}


@router.get("/v1/status", summary="Versions live in this replica, last refresh, last failure")
async def status(request: Request, principal: RequireScorer) -> dict[str, Any]:
    live = getattr(request.app.state, "live", None)
    if live is None or not hasattr(live, "status"):
        raise NotReady("this replica has no registry runtime")
    return {"replica": {**_REPLICA, "pid": os.getpid()}, **live.status()}
