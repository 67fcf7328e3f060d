"""GET /v1/status: what this replica serves, what the registry says, and the last failure;
GET /v1/contract: the feature contract this replica validates requests against."""

from __future__ import annotations

import os
import socket
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.auth import RequireScorer
from app.api.deps import LiveDep, ServicesDep
from app.api.openapi import AUTH_ERRORS, errors, operation_id
from app.api.schemas import ErrorBody, VersionOut
from app.errors import NotReady
from app.features.family import FeatureContract
from app.scoring.isolation import network_isolation_available

router = APIRouter(tags=["operations"], default_response_class=JSONResponse,
                   generate_unique_id_function=operation_id)
_HOSTNAME = socket.gethostname()


class Replica(BaseModel):
    hostname: str
    pid: int


class Challenger(BaseModel):
    mode: str = Field(description="off, shadow or split")
    share: float = Field(description="Share of customers the challenger serves (split)")
    versions: dict[str, int] | None = Field(description="The challenger's versions, if live")


class Failure(BaseModel):
    at: str
    kind: str = Field(description="production or challenger")
    versions: dict[str, int] = Field(description="The versions that were to be loaded")
    not_swapped_in: dict[str, int] = Field(description="Those that did not go live")
    error: ErrorBody


class Status(BaseModel):
    replica: Replica
    ready: bool
    versions: dict[str, VersionOut] = Field(description="The versions serving production")
    source: str | None = Field(default=None,
                               description="static: fixed contexts, no registry behind them")
    in_sync: bool | None = Field(default=None, description="Serving what the registry says")
    evaluator: str | None = Field(
        default=None, description="How production's trees are evaluated: treewalk (the native "
        "walker) or lightgbm (plain Booster.predict)")
    isa: str | None = Field(
        default=None, description="The evaluator's vector kernels on this CPU: avx512, avx2 or "
        "walk (treewalk), none (lightgbm); as in the tierwise_evaluator_info metric")
    trees: dict[str, int] | None = Field(default=None, description="Trees per model")
    registry_production: dict[str, int] | None = Field(
        default=None, description="The registry's production alias per family")
    aliases: dict[str, dict[str, int]] | None = Field(
        default=None, description="Every alias per family: family → alias → version")
    challenger: Challenger | None = None
    last_swap_at: str | None = None
    last_refresh_at: str | None = None
    swaps: int | None = None
    last_failure: Failure | None = None
    pinned_contexts: int | None = Field(default=None,
                                        description="Contexts of pinned versions kept loaded")
    recent_contexts: int | None = Field(
        default=None, description="Contexts built recently and kept (TIERWISE_RECENT_CONTEXTS): "
        "moving an alias back to their versions needs no rebuild")
    last_build_seconds: float | None = Field(
        default=None, description="How long the last swap took, from the alias read to the "
        "new context serving (only the families that moved are loaded)")
    alias_notify: Literal["listening", "polling"] | None = Field(
        default=None, description="PostgreSQL: listening for alias moves (LISTEN/NOTIFY), or "
        "polling only while the listening connection is being re-established; null: polling "
        "only (SQLite, or TIERWISE_REGISTRY_NOTIFY=false)")
    registry: Literal["up", "degraded"] | None = Field(
        default=None, description="degraded while the registry database cannot be reached: "
        "scoring goes on from the live context, registry routes answer 503")
    registry_since: str | None = Field(default=None,
                                       description="When the registry went up or degraded")
    registry_error: str | None = Field(default=None,
                                       description="The last error of the current outage")
    registry_failed_attempts: int | None = Field(
        default=None, description="Database calls that failed in the current outage")
    verify_network_isolated: bool | None = Field(
        default=None, description="Pushed bundles are verified in a child process without "
        "network access (its own network namespace); false: this host cannot isolate it "
        "(see docs/registry.md), pushes verify with network access, or are refused with "
        "TIERWISE_VERIFY_REQUIRE_NETWORK_ISOLATION")
    alerts: list[dict[str, Any]] | None = Field(
        default=None, description="Monitoring alerts (docs/monitoring.md: PSI above "
        "TIERWISE_ALERT_PSI, churn calibration off its held-out ECE by more than "
        "TIERWISE_ALERT_CALIBRATION_MARGIN) from the last report this replica computed, every "
        "TIERWISE_MONITORING_FLUSH_SECONDS; null before the first or without monitoring")
    alerts_at: str | None = Field(default=None,
                                  description="When that report was computed")


@router.get("/v1/status", response_model=Status, responses=errors(*AUTH_ERRORS),
            summary="Versions live in this replica, last refresh, last failure")
async def status(principal: RequireScorer, live: LiveDep, services: ServicesDep) -> Any:
    if not hasattr(live, "status"):
        raise NotReady("this replica has no registry runtime")
    monitoring = services.monitoring
    latest = monitoring.latest if monitoring is not None else None
    return {"replica": {"hostname": _HOSTNAME, "pid": os.getpid()}, **live.status(),
            "verify_network_isolated": network_isolation_available().isolated,
            "alerts": latest["alerts"] if latest is not None else None,
            "alerts_at": monitoring.latest_at.isoformat()
            if latest is not None and monitoring.latest_at else None}


class ContractOut(BaseModel):
    version: int = Field(description="The features version live in this replica")
    sha256: str = Field(description="sha256 of that features bundle (model manifests name it)")
    contract: FeatureContract = Field(description="features.json: what callers send, what "
                                      "each feature means, and which feature plays each role")


@router.get("/v1/contract", response_model=ContractOut,
            responses=errors(*AUTH_ERRORS),
            summary="The live feature contract: what to send in `features`")
async def contract(principal: RequireScorer, live: LiveDep) -> Any:
    ctx = live.current()
    ref = ctx.versions["features"]
    return {"version": ref.version, "sha256": ref.sha256, "contract": ctx.contract}
