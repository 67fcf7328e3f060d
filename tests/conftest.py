"""Shared fixtures: the default bundles, a scoring context, a real uvicorn server, and the
native walker library compiled once per session."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from app.bundles.io import Bundle, read_dir
from app.bundles.manifest import FAMILIES
from app.config import PROJECT_ROOT
from app.scoring.context import ScoringContext, build_context
from tests.support.engine import build_library

MODELS_DIR = PROJECT_ROOT / "models"


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def default_bundles() -> dict[str, Bundle]:
    """The shipped default bundles from models/ (hash-checked)."""
    return {f: read_dir(MODELS_DIR / f) for f in FAMILIES}


@pytest.fixture(scope="session")
def default_context(default_bundles: dict[str, Bundle]) -> ScoringContext:
    """A scoring context on the default bundles, plain LightGBM evaluation."""
    return build_context(default_bundles, dict.fromkeys(FAMILIES, 1))


@pytest.fixture(scope="session")
def walker_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The walker compiled once for the session (with its record), for tests that need a
    warm compile cache rather than a compile: copy it with tests.support.engine.warm_cache.
    Tests about compiling or rebuilding compile for themselves."""
    return build_library(tmp_path_factory.mktemp("walker-library"))


class RunningServer:
    """A uvicorn server on 127.0.0.1 in a background thread; stops when the test ends."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", access_log=False,
                                loop="uvloop", http="httptools")  # as `tierwise serve`
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> RunningServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], RunningServer]]:
    """Start apps on real HTTP; every server started is stopped at teardown."""
    started: list[RunningServer] = []

    def start(app: Any) -> RunningServer:
        server = RunningServer(app).__enter__()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.__exit__(None, None, None)


def models_present() -> bool:
    return all((MODELS_DIR / f / "manifest.json").is_file() for f in FAMILIES)


def pytest_report_header(config: pytest.Config) -> str:
    return f"tierwise models dir: {MODELS_DIR} ({'present' if models_present() else 'MISSING'})"


