"""GET /v1/monitoring/...: drift against the training references, calibration, acceptance
and uplift per action, and the alerts; read from the registry database (every replica's
counts, every recorded outcome) after this replica flushes its own counts."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.api.auth import RequireScorer
from app.api.deps import ServicesDep
from app.api.openapi import AUTH_ERRORS, errors, operation_id
from app.api.schemas import IsoDate
from app.errors import FieldProblem, InvalidRequest, NotReady
from app.registry.monitor import ReplicaMonitoring

router = APIRouter(tags=["monitoring"], default_response_class=JSONResponse,
                   generate_unique_id_function=operation_id)
MAX_WINDOW_DAYS = 3660

Since = Annotated[IsoDate | None, Query(
    description="First day (UTC, YYYY-MM-DD) counted; default: TIERWISE_MONITORING_WINDOW_DAYS "
    "before `until`")]
Until = Annotated[IsoDate | None, Query(description="Last day counted; default: today (UTC)")]
VersionFamily = Annotated[str, Query(
    pattern=r"^(?:tier|churn|products|catalog|policy)$",
    description="Whose version acceptance is compared by (a decision names each family's)")]


class Window(BaseModel):
    since: str
    until: str


class DriftOut(BaseModel):
    window: Window
    thresholds: dict[str, float | int]
    drift: list[dict[str, Any]] = Field(
        description="Per family, version and alias that scored in the window: rows scored, "
        "PSI per feature (largest first, with the reference's and the window's bin counts), "
        "the score's PSI, and the features above the PSI threshold; `reference: false` for "
        "bundles without a training reference (no PSI)")


class CalibrationOut(BaseModel):
    window: Window
    calibration: dict[str, Any] = Field(
        description="churn: per churn version, predicted probability vs observed share of "
        "customers with an outcome 'churned', per band of 0.1, with Wilson 95% intervals and "
        "the ECE; products: per products version, propensity vs conversion")


class ActionsOut(BaseModel):
    window: Window
    actions: list[dict[str, Any]] = Field(
        description="Per action: acceptance (accepted or converted / treatment decisions "
        "recorded) overall, per version and per alias with Wilson 95% intervals; the versions "
        "and aliases compared (Newcombe 95% interval of the difference; `better` only when it "
        "excludes 0); uplift of conversion against the control group (Newcombe)")


class AlertsOut(BaseModel):
    window: Window
    thresholds: dict[str, float | int]
    alerts: list[dict[str, Any]]


def _monitoring(services: ServicesDep) -> ReplicaMonitoring:
    monitoring = getattr(services, "monitoring", None)
    if monitoring is None:
        raise NotReady("this replica has no monitoring (no registry, or "
                       "TIERWISE_MONITORING=false)")
    return monitoring


def _report(services: ServicesDep, since: dt.date | None, until: dt.date | None,
            family: str = "products") -> dict[str, Any]:
    monitoring = _monitoring(services)
    first, last = monitoring.window(since, until)
    if first > last:
        raise InvalidRequest("the window is empty",
                             [FieldProblem("since", f"is after until ({last.isoformat()})")])
    if (last - first).days >= MAX_WINDOW_DAYS:
        raise InvalidRequest("the window is too long",
                             [FieldProblem("since", f"is more than {MAX_WINDOW_DAYS} days "
                                                    "before until")])
    return monitoring.report(since=first, until=last, family=family)


@router.get("/v1/monitoring/drift", response_model=DriftOut, responses=errors(*AUTH_ERRORS, 422),
            summary="PSI per feature and of the score against each version's training data")
def drift(principal: RequireScorer, services: ServicesDep, since: Since = None,
          until: Until = None) -> Any:
    return _report(services, since, until)


@router.get("/v1/monitoring/calibration", response_model=CalibrationOut,
            responses=errors(*AUTH_ERRORS, 422),
            summary="Predicted vs observed per band, from recorded outcomes")
def calibration(principal: RequireScorer, services: ServicesDep, since: Since = None,
                until: Until = None) -> Any:
    return _report(services, since, until)


@router.get("/v1/monitoring/actions", response_model=ActionsOut,
            responses=errors(*AUTH_ERRORS, 422),
            summary="Acceptance and uplift per action, per version and alias, with intervals")
def actions(principal: RequireScorer, services: ServicesDep, since: Since = None,
            until: Until = None, family: VersionFamily = "products") -> Any:
    return _report(services, since, until, family)


@router.get("/v1/monitoring/alerts", response_model=AlertsOut,
            responses=errors(*AUTH_ERRORS, 422),
            summary="Monitoring alerts over the window (thresholds TIERWISE_ALERT_*)")
def alerts(principal: RequireScorer, services: ServicesDep, since: Since = None,
           until: Until = None) -> Any:
    return _report(services, since, until)
