"""A registry-only application for HTTP tests, wired to the test transaction."""

from __future__ import annotations

from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api.deps import Services
from app.api.handlers import install_error_handlers
from app.api.routes import keys, models, status
from app.config import Settings
from app.registry.auth_keys import KeyCache
from app.registry.live import LiveScoring
from app.registry.runtime import RegistryRuntime


def registry_app(*, engine: Engine, sessions: sessionmaker[Session], **settings: object) -> FastAPI:
    """The registry routers and the one error handler, on the given sessions (auth on)."""
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(models.router)
    app.include_router(keys.router)
    app.include_router(status.router)
    live = LiveScoring(sessions=sessions)
    config = Settings(**{"auth_enabled": True, **settings})  # type: ignore[arg-type]
    runtime = RegistryRuntime(settings=config, engine=engine, sessionmaker=sessions, live=live,
                              keys=KeyCache(sessions, health=live.health))
    app.state.services = Services(config, runtime=runtime, live=live)
    return app
