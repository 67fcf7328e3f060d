"""`tierwise serve` as operators run it, in a subprocess on 127.0.0.1: a clear one-line
refusal on bad settings; metrics summed over two workers; SIGTERM under load loses no
accepted request."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.config import PROJECT_ROOT
from tests.conftest import free_port
from tests.ops.scrape import parse, value
from tests.registry import bundles as b

TIERWISE = str(Path(sys.executable).with_name("tierwise"))
pytestmark = pytest.mark.slow


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TIERWISE_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    return {**env, "TIERWISE_DATABASE_URL": f"sqlite:///{tmp / 'registry.sqlite3'}",
            "TIERWISE_BOOTSTRAP_ADMIN_KEY_FILE": str(tmp / "admin.key"),
            "TIERWISE_AUTH_ENABLED": "false", "TIERWISE_COMPILE_MODELS": "false",
            "PYTHONWARNINGS": "ignore", **extra}


@pytest.mark.parametrize(("setting", "expected"), [
    ({"TIERWISE_POLL_INTERVAL_SECONDS": "-1"},
     "tierwise: invalid settings: TIERWISE_POLL_INTERVAL_SECONDS: Input should be greater than 0"),
    ({"TIERWISE_DATABASE_URL": "postgresql+psycopg://tw:secret@127.0.0.1:9/registry"},
     "tierwise: cannot start: cannot reach the registry database"),
    ({"TIERWISE_MODELS_DIR": "{tmp}/no-models"},
     "tierwise: cannot start: the registry is empty and {tmp}/no-models has no bundle for "
     "features, tier"),
])
def test_bad_settings_stop_the_start_with_one_readable_line(
        tmp_path: Path, setting: dict[str, str], expected: str) -> None:
    env = _env(tmp_path, **{k: v.format(tmp=tmp_path) for k, v in setting.items()})
    started = time.monotonic()
    done = subprocess.run([TIERWISE, "serve", "--port", str(free_port())], env=env,
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert time.monotonic() - started < 30
    assert "Traceback" not in done.stderr + done.stdout
    plain = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert plain == [plain[-1]] and plain[-1].startswith(expected.format(tmp=tmp_path)), \
        done.stderr
    assert "secret" not in done.stderr


@dataclass
class Outcome:
    request_id: str
    status: int | None  # None: no HTTP answer at all
    error: str
    ended: float


async def _load(url: str, *, n: int, concurrency: int, sigterm_after: int | None = None,
                process: subprocess.Popen[bytes] | None = None,
                sigterm_at: list[float] | None = None, keepalive: bool = True,
                prefix: str = "load") -> list[Outcome]:
    """n scoring requests (every fifth a 40-customer batch) from `concurrency` tasks; SIGTERM
    once `sigterm_after` have completed."""
    rng = np.random.default_rng(3)
    bodies = [b.example_features(rng) for _ in range(64)]
    outcomes: list[Outcome] = []
    queue = iter(range(n))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in queue:
            rid = f"{prefix}-{i}"
            if i % 5 == 4:
                path, body = "/v1/score/batch", {"items": [
                    {"customer_id": f"c{i}-{k}", "features": bodies[(i + k) % 64]}
                    for k in range(40)]}
            else:
                path, body = "/v1/score", {"customer_id": f"c{i}", "features": bodies[i % 64]}
            try:
                resp = await client.post(url + path, json=body, headers={"X-Request-ID": rid})
                outcomes.append(Outcome(rid, resp.status_code, "", time.monotonic()))
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(rid, None, type(exc).__name__, time.monotonic()))
            if sigterm_at is not None and not sigterm_at and len(outcomes) >= (sigterm_after or 0):
                sigterm_at.append(time.monotonic())
                assert process is not None
                process.send_signal(signal.SIGTERM)

    limits = httpx.Limits(max_keepalive_connections=None if keepalive else 0)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return outcomes


def _log_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()
            if line.startswith("{")]


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_sum_over_workers_and_sigterm_loses_no_accepted_request(
        tmp_path: Path, workers: int) -> None:
    """Requests on a connection the server is closing may fail without an answer; those
    never reached the app (it logs every request it accepts), so retrying them is safe."""
    port, log_path = free_port(), tmp_path / "serve.log"
    env = _env(tmp_path, TIERWISE_MODELS_DIR=str(b.write_models_dir(tmp_path / "models")),
               TIERWISE_LOG_LEVEL="INFO", TIERWISE_GRACEFUL_TIMEOUT_SECONDS="20",
               TIERWISE_POLL_INTERVAL_SECONDS="5")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [TIERWISE, "serve", "--host", "127.0.0.1", "--port", str(port),
             "--workers", str(workers)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while len({r["pid"] for r in _log_records(log_path)
                   if r["message"].startswith("registry load")}) < workers:
            assert process.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        # A worker may load its first context before uvicorn binds the port: wait for it.
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                break
            except OSError:
                assert process.poll() is None, log_path.read_text()[-3000:]
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)

        # Warm-up, on fresh connections until every worker has answered: a scrape answered
        # by any worker must then count the requests of all.
        for round_ in range(20):
            warm = asyncio.run(_load(url, n=20, concurrency=4, keepalive=False,
                                     prefix=f"warm{round_}"))
            assert Counter(o.status for o in warm) == {200: 20}
            warm_lines = [r for r in _log_records(log_path) if r["logger"] == "tierwise.requests"]
            if len({r["pid"] for r in warm_lines}) == workers:
                break
        else:
            pytest.fail("the warm-up never reached the second worker")
        time.sleep(1.3)  # each worker adds its scoring tally to the shared files every second
        samples = parse(httpx.get(f"{url}/metrics", timeout=10).text)
        singles = [r for r in warm_lines if r["route"] == "/v1/score"]
        batches = [r for r in warm_lines if r["route"] == "/v1/score/batch"]
        assert value(samples, "tierwise_http_requests_total", route="/v1/score",
                     method="POST", status="200") == len(singles)
        assert value(samples, "tierwise_http_requests_total", route="/v1/score/batch",
                     method="POST", status="200") == len(batches)
        assert value(samples, "tierwise_scores_total", family="churn", version="1") == \
            len(singles) + sum(r["scored"] for r in batches)
        assert value(samples, "tierwise_model_info", family="churn", version="1",
                     sha256=b.churn_bundle().sha256) == 1

        sigterm_at: list[float] = []
        # Enough requests to outlast the shutdown however fast the server answers them (after
        # the stop they fail at once, so the extra ones cost nothing).
        outcomes = asyncio.run(_load(url, n=2000, concurrency=8, sigterm_after=60,
                                     process=process, sigterm_at=sigterm_at))
        # One worker: uvicorn re-raises the SIGTERM once it has shut down gracefully.
        assert process.wait(40) in (0, -signal.SIGTERM)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    records = _log_records(log_path)
    logged = {r["request_id"]: r["status"] for r in records
              if r["logger"] == "tierwise.requests" and r["request_id"].startswith("load-")}
    answered = [o for o in outcomes if o.status is not None]
    unanswered = [o for o in outcomes if o.status is None]
    assert all(o.status == 200 for o in answered), Counter(o.status for o in answered)
    # Every request a worker accepted (and so logged) was answered in full...
    assert all(logged[o.request_id] == 200 for o in answered)
    assert not [o for o in unanswered if o.request_id in logged], "an accepted request was lost"
    assert set(logged) == {o.request_id for o in answered}
    # ...including requests in flight when SIGTERM arrived, and the rest were refused.
    assert [o for o in answered if o.ended > sigterm_at[0]], "nothing was in flight at SIGTERM"
    assert unanswered, "the load ended before the server stopped"
    assert not [r for r in records if "graceful shutdown exceeded" in r["message"]]
    assert len([r for r in records
                if r["message"] == "Application shutdown complete."]) == workers
    assert not [r for r in records if r["level"] == "ERROR"], \
        [r for r in records if r["level"] == "ERROR"]
