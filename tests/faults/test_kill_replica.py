"""kill -9 of one replica under load: the other replica answers every request it gets, and of
the killed one's requests only those it held at the kill fail; the rest are refused at
connect (never accepted, safe to retry). Two `tierwise serve` processes on 127.0.0.1,
bounded load, everything stopped at the end."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.ops.serving import running
from tests.registry import bundles as b

pytestmark = pytest.mark.slow
CONCURRENCY = 8
REQUESTS = 1200
KILL_AFTER = 300


@dataclass
class Outcome:
    url: str
    status: int | None
    error: str
    started: float
    ended: float


async def _load(urls: list[str], kill: Callable[[], None],
                killed_at: list[float]) -> list[Outcome]:
    rng = np.random.default_rng(3)
    bodies = [b.example_features(rng) for _ in range(32)]
    outcomes: list[Outcome] = []
    queue = iter(range(REQUESTS))

    async def worker(client: httpx.AsyncClient) -> None:
        for i in queue:
            url = urls[i % len(urls)]
            started = time.monotonic()
            try:
                resp = await client.post(url + "/v1/score", json={
                    "customer_id": f"c{i}", "features": bodies[i % 32]})
                outcomes.append(Outcome(url, resp.status_code, "", started, time.monotonic()))
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(url, None, type(exc).__name__, started,
                                        time.monotonic()))
            if not killed_at and len(outcomes) >= KILL_AFTER:
                killed_at.append(time.monotonic())
                kill()

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    return outcomes


def test_kill_minus_nine_loses_only_what_the_killed_replica_held(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with running(tmp_path / "a") as victim, running(tmp_path / "b") as survivor:
        urls = [f"http://{victim.host}:{victim.port}", f"http://{survivor.host}:{survivor.port}"]
        killed_at: list[float] = []
        outcomes = asyncio.run(_load(
            urls, lambda: os.kill(victim.process.pid, signal.SIGKILL), killed_at))
        assert victim.process.wait(10) == -signal.SIGKILL
        assert survivor.process.poll() is None
    assert killed_at, "the load ended before the kill"
    kill = killed_at[0]
    to_survivor = [o for o in outcomes if o.url == urls[1]]
    to_victim = [o for o in outcomes if o.url == urls[0]]
    # The surviving replica answered everything, before and after the kill.
    assert to_survivor and all(o.status == 200 for o in to_survivor), \
        [o for o in to_survivor if o.status != 200][:3]
    assert [o for o in to_survivor if o.started > kill], "no load after the kill"
    # The killed one answered 200 or nothing (never a 5xx); what failed was either held by
    # it at the kill (at most one request per client) or refused at connect afterwards.
    assert all(o.status in (200, None) for o in to_victim)
    failed = [o for o in to_victim if o.status is None]
    held = [o for o in failed if o.started <= kill]
    assert len(held) <= CONCURRENCY, held
    assert all(o.error in ("ConnectError", "RemoteProtocolError", "ReadError")
               for o in failed), {o.error for o in failed}
    assert [o for o in failed if o.started > kill and o.error == "ConnectError"], \
        "requests after the kill were not refused at connect"
    print(f"\nkill -9 under load: survivor {len(to_survivor)} answered, victim "
          f"{sum(o.status == 200 for o in to_victim)} answered, {len(held)} held and lost, "
          f"{len(failed) - len(held)} refused after the kill")
