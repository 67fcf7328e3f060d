"""A registry-only application for HTTP tests, wired to the test transaction."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api.handlers import install_error_handlers
from app.api.routes import models, status
from app.config import Settings
from app.registry.auth_keys import KeyCache
from app.registry.live import LiveScoring
from app.registry.runtime import RegistryRuntime


def registry_app(*, engine: Engine, sessions: sessionmaker[Session], **settings: object) -> FastAPI:
    """The registry routers and the one error handler, on the given sessions (auth on)."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(models.router)
    app.include_router(status.router)
    live = LiveScoring(sessions=sessions)
    app.state.runtime = RegistryRuntime(
        settings=Settings(**{"auth_enabled": True, **settings}),  # type: ignore[arg-type]
        engine=engine, sessionmaker=sessions, live=live, keys=KeyCache(sessions))
    app.state.live = live
    return app
