"""create_app(): the lifespan loads the registry, mounts routers, installs one error handler."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from app import __version__
from app.api.deps import Services
from app.api.fastpath import TierwiseAPI
from app.api.handlers import install_error_handlers
from app.api.middleware import RequestContextMiddleware
from app.api.openapi import build_openapi
from app.api.responses import JSONBytes
from app.api.routes import health, metrics, models, scores, status
from app.config import Settings, get_settings
from app.dataplane.microbatch import MicroBatcher
from app.observability.exposition import metrics_kept_current
from app.observability.logging import configure_logging
from app.observability.metrics import count_registry_event
from app.registry.runtime import RegistryRuntime, open_runtime

log = logging.getLogger("tierwise")


def _open_live(settings: Settings) -> tuple[RegistryRuntime, Any]:
    """Open the registry (migrate, seed, first load in the background) and its live state."""
    runtime = open_runtime(settings, start_poller=False)
    runtime.live.add_swap_listener(count_registry_event)  # before the first load: counted too
    runtime.start_polling()
    return runtime, runtime.live


def create_app(settings: Settings | None = None, *, live: Any = None) -> TierwiseAPI:
    """The ASGI application. `live` injects fixed scoring contexts (tests). POST /v1/score
    is answered in front of the middleware stack (app/api/fastpath.py)."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = None
        if live is not None:
            app.state.live = live
        else:
            runtime, app.state.live = _open_live(settings)
        app.state.runtime = runtime
        services.runtime, services.live = runtime, app.state.live
        try:
            async with metrics_kept_current(lambda: app.state.live):
                yield
        finally:
            if runtime is not None:
                runtime.close()

    app = TierwiseAPI(
        title="tierwise",
        version=__version__,
        lifespan=lifespan,
        default_response_class=JSONBytes,
    )
    services = Services(settings)
    app.state.services = services
    app.state.settings = settings  # auth and routes read the app's own settings
    app.state.microbatcher = MicroBatcher() if settings.microbatch else None
    app.openapi = lambda: build_openapi(app)  # type: ignore[method-assign]
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(scores.router)
    app.include_router(models.router)
    app.include_router(status.router)
    scores.install_lean_score(app)
    return app
