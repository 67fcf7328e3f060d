"""create_app(): the service as uvicorn runs it.

    RequestContext (request id, size limit, metrics, log line: every request)
      -> ScoreEndpoint (POST /v1/score and /v1/score/batch, plain ASGI)
        -> FastAPI (everything else: registry, status, health, metrics, documentation)

The lifespan (FastAPI's) opens the registry and builds the data plane; every collaborator
is held by one Services object that routes receive as typed dependencies (app/api/deps.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app import __version__
from app.api.cors import with_cors
from app.api.deps import Services
from app.api.handlers import install_error_handlers
from app.api.openapi import LiveDocument
from app.api.request_context import ASGIApp, Receive, RequestContext, RouteTemplates, Scope, Send
from app.api.responses import JSONBytes
from app.api.routes import (
    health,
    keys,
    metrics,
    models,
    monitoring,
    outcomes,
    scores,
    status,
    ui,
)
from app.api.score_endpoint import BATCH_PATH, SCORE_PATH, ScoreEndpoint
from app.config import Settings, get_settings
from app.dataplane.microbatch import MicroBatcher
from app.dataplane.plane import DataPlane
from app.monitoring.aggregate import ScoredCounts
from app.observability.exposition import metrics_kept_current
from app.observability.logging import configure_logging
from app.observability.metrics import ScoreTally, count_registry_event
from app.observability.monitoring_metrics import sync_monitoring
from app.outcomes.decision_ids import DecisionSigner
from app.registry.history import recorded_history
from app.registry.monitor import ReplicaMonitoring, thresholds_of
from app.registry.runtime import RegistryRuntime, open_runtime
from app.scoring.isolation import log_network_isolation

log = logging.getLogger("tierwise")
ROUTERS = (health.router, metrics.router, scores.router, models.router, keys.router,
           outcomes.router, status.router, monitoring.router, ui.router, ui.docs_router)
DOC_PATHS = ("/openapi.json",)  # /docs and /redoc are ui.docs_router's, from local files


class TierwiseApp:
    """The composed ASGI application; `api` is the FastAPI part, `services` its collaborators."""

    def __init__(self, api: FastAPI, services: Services, asgi: ASGIApp) -> None:
        self.api = api
        self.services = services
        self.asgi = asgi

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.asgi(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document served at /openapi.json."""
        return self.api.openapi()


def _open_live(settings: Settings) -> RegistryRuntime:
    """Open the registry (migrate, seed, first load in the background)."""
    runtime = open_runtime(settings, start_poller=False)
    runtime.live.add_swap_listener(count_registry_event)  # before the first load: counted too
    runtime.start_polling()
    log_network_isolation()  # probed once: are pushed bundles verified without network?
    return runtime


def _open_monitoring(settings: Settings, runtime: RegistryRuntime) -> ReplicaMonitoring:
    """This replica's counts of what it scores, flushed to the registry database."""
    monitoring = ReplicaMonitoring(
        ScoredCounts(), runtime.sessionmaker, interval=settings.monitoring_flush_seconds,
        report_interval=settings.monitoring_report_seconds,
        retention_days=settings.monitoring_retention_days,
        window_days=settings.monitoring_window_days,
        thresholds=thresholds_of(settings),
        on_report=sync_monitoring)
    monitoring.start()
    return monitoring


def route_templates(api: FastAPI) -> RouteTemplates:
    """Every path template the application serves (metric labels and log lines)."""
    paths = [SCORE_PATH, BATCH_PATH, *DOC_PATHS]
    for router in ROUTERS:
        paths.extend(route.path for route in router.routes if hasattr(route, "path"))
    return RouteTemplates(paths)


def create_app(settings: Settings | None = None, *, live: Any = None) -> TierwiseApp:
    """The ASGI application. `live` injects fixed scoring contexts (tests)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    services = Services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = None
        if live is not None:
            services.live = live
        else:
            runtime = _open_live(settings)
            services.runtime, services.live = runtime, runtime.live
        tally = ScoreTally()
        signer = (runtime.signer if runtime is not None
                  else DecisionSigner.from_text(settings.decision_secret)
                  if settings.decision_secret else None)
        if runtime is not None and settings.monitoring:
            services.monitoring = _open_monitoring(settings, runtime)
        services.data_plane = DataPlane(
            live=services.live, tally=tally,
            batcher=MicroBatcher() if settings.microbatch else None,
            signer=signer, decision_ids=settings.decision_ids,
            history=recorded_history(runtime) if runtime is not None
            and settings.contact_history_from_outcomes else None,
            monitor=services.monitoring.counts if services.monitoring is not None else None)
        try:
            async with metrics_kept_current(lambda: services.live, tally):
                yield
        finally:
            if services.monitoring is not None:
                services.monitoring.stop()  # the last counts reach the database
            if runtime is not None:
                runtime.close()

    # docs_url/redoc_url None: app/api/routes/ui.py serves both from local files, not a CDN.
    api = FastAPI(title="tierwise", version=__version__, lifespan=lifespan,
                  default_response_class=JSONBytes, redirect_slashes=False,
                  docs_url=None, redoc_url=None)
    api.state.services = services  # read by app/api/deps.py only
    document = LiveDocument(api)  # the live contract's features in /openapi.json, /docs
    api.openapi = lambda: document.served(services.live)  # type: ignore[method-assign]
    install_error_handlers(api)
    for router in ROUTERS:
        api.include_router(router)
    scoring = ScoreEndpoint(api, services=services)
    asgi = RequestContext(with_cors(scoring, settings.ui_cors_origins),
                          max_body_bytes=settings.max_body_bytes,
                          max_header_bytes=settings.max_header_bytes,
                          body_timeout=settings.body_timeout_seconds, routes=route_templates(api))
    return TierwiseApp(api, services, asgi)
