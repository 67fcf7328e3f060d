"""The service as operators run it, in a subprocess on 127.0.0.1 with tiny test models:
`tierwise serve` (1 or N workers) or plain `uvicorn app.main:create_app --factory`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.config import PROJECT_ROOT
from tests.conftest import free_port
from tests.registry import bundles as b

BIN = Path(sys.executable).parent


@dataclass
class Service:
    """A running service: where it listens and where its output goes."""

    host: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float = 10.0) -> socket.socket:
        """A raw TCP connection to the service (`timeout` on every socket call)."""
        return socket.create_connection((self.host, self.port), timeout=timeout)

    def output(self) -> str:
        """Everything the process and its workers wrote, stdout and stderr."""
        return self.log.read_text(errors="replace")

    def records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        return [json.loads(line) for line in self.output().splitlines()
                if line.startswith("{")]


def service_env(tmp: Path, **settings: str) -> dict[str, str]:
    """The environment of a service on a fresh SQLite registry seeded with test models."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TIERWISE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    models = tmp / "models"
    if not models.is_dir():
        b.write_models_dir(models)
    return {**env, "TIERWISE_DATABASE_URL": f"sqlite:///{tmp / 'registry.sqlite3'}",
            "TIERWISE_BOOTSTRAP_ADMIN_KEY_FILE": str(tmp / "admin.key"),
            "TIERWISE_MODELS_DIR": str(models), "TIERWISE_AUTH_ENABLED": "false",
            "TIERWISE_COMPILE_MODELS": "false", "TIERWISE_LOG_LEVEL": "INFO",
            "PYTHONWARNINGS": "ignore", **settings}


def command(kind: str, port: int, workers: int) -> list[str]:
    """The command line of one way to run the service."""
    if kind == "tierwise":
        return [str(BIN / "tierwise"), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--workers", str(workers)]
    return [str(BIN / "uvicorn"), "app.main:create_app", "--factory", "--host", "127.0.0.1",
            "--port", str(port), "--workers", str(workers)]


@contextmanager
def running(tmp: Path, *, kind: str = "tierwise", workers: int = 1,
            **settings: str) -> Iterator[Service]:
    """Start the service; yield it once every worker has loaded its first context."""
    port, log_path = free_port(), tmp / f"{kind}-{workers}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command(kind, port, workers), cwd=PROJECT_ROOT,
                                   env=service_env(tmp, **settings), stdout=log,
                                   stderr=subprocess.STDOUT)
    service = Service("127.0.0.1", port, log_path, process)
    try:
        deadline = time.monotonic() + 90
        while len({r["pid"] for r in service.records()
                   if r["message"].startswith("registry load")}) < workers:
            assert process.poll() is None, service.output()[-3000:]
            assert time.monotonic() < deadline, service.output()[-3000:]
            time.sleep(0.1)
        # A worker may load its first context during the lifespan startup, before uvicorn
        # binds the port (plain uvicorn does): wait until the port takes connections too.
        while True:
            try:
                service.connect(timeout=1.0).close()
                break
            except OSError:
                assert process.poll() is None, service.output()[-3000:]
                assert time.monotonic() < deadline, service.output()[-3000:]
                time.sleep(0.1)
        yield service
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
