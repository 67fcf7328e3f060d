"""Running the service under uvicorn with the settings that make it fast."""

from __future__ import annotations

import uvicorn

from app.config import get_settings


def run_server(*, host: str, port: int, workers: int) -> None:
    """Serve create_app() with uvloop/httptools; several workers share the port."""
    settings = get_settings()
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=30,
    )
