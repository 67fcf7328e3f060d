"""The same HTTP load against MLServer (Seldon) with its LightGBM runtime, serving the churn model.

MLServer lives in its own virtualenv (var/mlserver-venv, created by the bench on first use
with pinned versions), so its dependencies never touch the service's. It serves the default
bundle's churn.txt over the V2 inference protocol, in one process (parallel_workers 0: the
inference runs in the server process, as ours does with one worker). The requests carry the
same customers' churn features; ours asks /v1/score for the churn part only (model,
calibration, band), so both do one churn model per request.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench import http

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / "var" / "mlserver-venv"
PACKAGES = ("mlserver==1.7.1", "mlserver-lightgbm==1.7.1")


def ensure_venv(timeout: float = 900.0) -> Path:
    """The MLServer executable, installing it into its own virtualenv when missing."""
    exe = VENV / "bin" / "mlserver"
    if exe.is_file():
        return exe
    VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=120)
    done = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *PACKAGES],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0 or not exe.is_file():
        raise RuntimeError(f"installing {' '.join(PACKAGES)} failed: {done.stderr[-800:]}")
    return exe


class MLServer(http.ServerProcess):
    """`mlserver start` on free ports with the churn model."""

    ready_path = "/v2/models/churn/ready"
    name = "MLServer"

    def __init__(self, exe: Path, model_file: Path) -> None:
        super().__init__("tierwise-mlserver-")
        d = self.dir
        shutil.copy(model_file, d / "churn.txt")
        (d / "settings.json").write_text(json.dumps({
            "http_port": self.port, "grpc_port": http.free_port(),
            "metrics_port": http.free_port(), "parallel_workers": 0, "debug": False,
        }))
        (d / "model-settings.json").write_text(json.dumps({
            "name": "churn", "implementation": "mlserver_lightgbm.LightGBMModel",
            "parameters": {"uri": "./churn.txt", "version": "v1"},
        }))
        self.start([str(exe), "start", str(d)], cwd=d, env={**os.environ, "OMP_NUM_THREADS": "1"})


def run(models_dir: Path, x: np.ndarray, schema: Any, churn_features: Sequence[str], *,
        quick: bool, levels: Sequence[int] = (1, 8, 64)) -> dict[str, Any]:
    """MLServer against tierwise (churn part only, as served) on the same customers."""
    from app.bundles import read_dir

    seconds = 2.0 if quick else 4.0
    exe = ensure_venv()
    bundle = read_dir(models_dir / "churn")
    model_file = models_dir / "churn" / bundle.manifest.models["churn"]
    cols = schema.columns(churn_features)
    rows = x[~np.isnan(x[:, cols]).any(axis=1)]  # JSON has no NaN: complete customers only
    if not len(rows):
        raise RuntimeError("no customer without missing churn features")
    v2 = [{"inputs": [{"name": "input-0", "shape": [1, len(cols)], "datatype": "FP64",
                       "data": r[cols].tolist()}]} for r in rows]
    ours = [{"customer_id": f"C{i:06d}",
             "features": {k: v for k, v in schema.decode(r).items() if v is not None},
             "options": {"parts": ["churn"], "explain": False}} for i, r in enumerate(rows)]
    result: dict[str, Any] = {"packages": list(PACKAGES), "customers": len(rows),
                              "seconds_per_level": seconds}
    with MLServer(exe, model_file) as server:
        server.wait_ready()
        reqs = http.requests_for(v2, "/v2/models/churn/infer", "-")
        result["mlserver"] = http.levels_of(server, reqs, levels, seconds)
    with http.Server(models_dir) as server:
        server.wait_ready()
        reqs = http.requests_for(ours, "/v1/score", server.key())
        result["tierwise"] = http.levels_of(server, reqs, levels, seconds)
    result["ratio_req_per_s"] = {
        c: round(result["tierwise"][c]["req_per_s"] / result["mlserver"][c]["req_per_s"], 2)
        for c in result["mlserver"] if result["mlserver"][c]["req_per_s"]
    }
    return result


def table(res: dict[str, Any]) -> str:
    head = (f"{'churn model over HTTP':26} {'conc.':>6} {'MLServer r/s':>13} {'p99 ms':>8} "
            f"{'tierwise r/s':>13} {'p99 ms':>8} {'ratio':>6}")
    lines = [head, "-" * len(head)]
    for c, m in res["mlserver"].items():
        t = res["tierwise"][c]
        lines.append(f"{'':26} {c:>6} {m['req_per_s']:13,.0f} {m['p99_ms']:8.2f} "
                     f"{t['req_per_s']:13,.0f} {t['p99_ms']:8.2f} "
                     f"{res['ratio_req_per_s'].get(c, 0):6.2f}")
    errors = sum(sum(v["errors"].values()) for side in ("mlserver", "tierwise")
                 for v in res[side].values())
    lines.append(f"{res['customers']} customers without missing churn features; "
                 f"{' '.join(res['packages'])}; errors: {errors}")
    return "\n".join(lines)
