"""HTTP: req/s and p50/p99 latency against `tierwise serve` on 127.0.0.1, one customer a request.

The server runs in its own process (one worker, a throw-away SQLite registry seeded from the
default models); the load comes from a small asyncio HTTP/1.1 keep-alive client in this
process (an asyncio Protocol on uvloop: far cheaper per request than an HTTP library or
asyncio streams, as the client shares the machine), `concurrency` connections each sending
its next request as soon as the previous answer is in; a request's latency runs from its
write to the last byte of its answer read. Bounded in time: a fixed number of seconds per
concurrency level. The server's own CPU time per request comes from /proc, so its req/s per
core is known even when the load generator shares the machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its children that have been waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(v) for v in fields[11:13]) / ticks


def _rss_mb(pid: int) -> float | None:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


class ServerProcess:
    """A server in its own process writing to a log file; waits for a ready URL; a context
    manager that terminates it and removes its temporary directory."""

    ready_path = "/readyz"
    name = "the server"

    def __init__(self, prefix: str) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix=prefix)
        self.dir = Path(self.tmp.name)
        self.port = free_port()
        self.log = open(self.dir / "server.log", "w+b")  # noqa: SIM115 - closed in __exit__
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, argv: Sequence[str], *, cwd: Path, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(list(argv), cwd=cwd, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def wait_ready(self, timeout: float = 180.0) -> None:
        assert self.proc is not None
        probe = (f"GET {self.ready_path} HTTP/1.1\r\nHost: x\r\n"
                 "Connection: close\r\n\r\n").encode()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}): {self.tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(probe)
                    if s.recv(64).startswith(b"HTTP/1.1 200"):
                        return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} was not ready in {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")[-800:]

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.tmp.cleanup()


class Server(ServerProcess):
    """`tierwise serve` on a free port with a private registry."""

    name = "tierwise serve"

    def __init__(self, models_dir: Path, *, workers: int = 1) -> None:
        super().__init__("tierwise-bench-")
        self.key_file = self.dir / "admin.key"
        env = {
            **os.environ,
            "OMP_NUM_THREADS": "1",
            "TIERWISE_DATABASE_URL": f"sqlite:///{self.dir}/registry.sqlite3",
            "TIERWISE_BOOTSTRAP_ADMIN_KEY_FILE": str(self.key_file),
            "TIERWISE_MODELS_DIR": str(models_dir),
            "TIERWISE_LOG_LEVEL": "WARNING",
        }
        self.start([sys.executable, "-m", "app.cli", "serve", "--port", str(self.port),
                    "--workers", str(workers)], cwd=ROOT, env=env)

    def key(self) -> str:
        return self.key_file.read_text().strip()


def requests_for(bodies: Sequence[dict[str, Any]], path: str, key: str) -> list[bytes]:
    out = []
    for body in bodies:
        data = json.dumps(body, separators=(",", ":")).encode()
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n")
        out.append(head.encode() + data)
    return out


class _Connection(asyncio.Protocol):
    """One keep-alive connection of the closed loop: writes a request, reads the whole
    answer (head, then Content-Length bytes of body), records the time from the write to the
    last byte read, and writes the next request at once, until `stop_at`. A Protocol, not
    streams: the load generator shares the machine with the server, so it must stay cheap."""

    def __init__(self, reqs: list[bytes], start: int, stop_at: float, lat: list[float],
                 status: dict[int, int], done: asyncio.Future[None]) -> None:
        self.reqs = reqs
        self.i = start
        self.stop_at = stop_at
        self.lat = lat
        self.status = status
        self.done = done
        self.buf = bytearray()
        self.need = -1  # bytes of the whole answer, once its head is in
        self.code = 0
        self.t0 = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no subclass
        self._next()

    def _next(self) -> None:
        assert self.transport is not None
        if time.perf_counter() >= self.stop_at:
            self.transport.close()
            return
        self.need = -1
        req = self.reqs[self.i % len(self.reqs)]
        self.i += 1
        self.t0 = time.perf_counter()
        self.transport.write(req)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end])
            self.code = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            self.need = end + 4 + length
        if len(buf) < self.need:
            return
        self.lat.append(time.perf_counter() - self.t0)
        self.status[self.code] = self.status.get(self.code, 0) + 1
        del buf[:self.need]
        self._next()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if exc is not None:
                self.done.set_exception(exc)
            else:
                self.done.set_result(None)


async def _load(port: int, reqs: list[bytes], concurrency: int, seconds: float
                ) -> tuple[list[float], dict[int, int], float]:
    loop = asyncio.get_running_loop()
    lat: list[float] = []
    status: dict[int, int] = {}
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    done = [loop.create_future() for _ in range(concurrency)]
    for k in range(concurrency):
        await loop.create_connection(
            lambda k=k: _Connection(reqs, k * 7, stop_at, lat, status, done[k]),  # type: ignore[misc]
            "127.0.0.1", port)
    await asyncio.wait_for(asyncio.gather(*done), seconds + 30)  # bounded, whatever happens
    return lat, status, time.perf_counter() - t0


def _run(coro: Any) -> Any:
    """Run the load on uvloop when it is installed (it is, with tierwise): a cheaper client."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


def levels_of(server: ServerProcess, reqs: list[bytes], levels: Sequence[int],
              seconds: float) -> dict[str, Any]:
    """Warm up, then load the server at each concurrency level for `seconds`: the figures."""
    _run(_load(server.port, reqs, 4, 1.0))  # first requests, caches
    out: dict[str, Any] = {}
    for c in levels:
        cpu0 = _cpu_seconds(server.pid)
        lat, status, wall = _run(_load(server.port, reqs, c, seconds))
        cpu = _cpu_seconds(server.pid) - cpu0
        ms = np.asarray(lat) * 1e3
        out[str(c)] = {
            "requests": len(lat),
            "ok": status.get(200, 0),
            "errors": {str(k): v for k, v in status.items() if k != 200},
            "req_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 3) if len(ms) else None,
            "p99_ms": round(float(np.percentile(ms, 99)), 3) if len(ms) else None,
            "server_cpu_us_per_request": round(cpu / max(len(lat), 1) * 1e6, 1),
            "server_req_per_s_per_core": round(len(lat) / cpu, 1) if cpu else None,
        }
    return out


def run(models_dir: Path, bodies: Sequence[dict[str, Any]], *, quick: bool,
        levels: Sequence[int] = (1, 8, 64)) -> dict[str, Any]:
    """Start the server, load it at each concurrency level, return the figures."""
    seconds = 2.0 if quick else 4.0
    with Server(models_dir) as server:
        server.wait_ready()
        reqs = requests_for(bodies, "/v1/score", server.key())
        out: dict[str, Any] = {"seconds_per_level": seconds, "workers": 1,
                               "levels": levels_of(server, reqs, levels, seconds)}
        out["server_rss_mb"] = _rss_mb(server.pid)
    return out


def table(http: dict[str, Any], label: str) -> str:
    head = (f"{label:26} {'conc.':>6} {'req/s':>8} {'p50 ms':>8} "
            f"{'p99 ms':>8} {'srv CPU µs/req':>15} {'req/s/core':>11} {'errors':>7}")
    lines = [head, "-" * len(head)]
    for c, r in http["levels"].items():
        lines.append(f"{'':26} {c:>6} {r['req_per_s']:8,.0f} {r['p50_ms']:8.2f} "
                     f"{r['p99_ms']:8.2f} {r['server_cpu_us_per_request']:15.0f} "
                     f"{r['server_req_per_s_per_core'] or 0:11,.0f} "
                     f"{sum(r['errors'].values()):7d}")
    lines.append(f"server resident memory after the run: {http['server_rss_mb']} MB")
    return "\n".join(lines)
