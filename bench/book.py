"""`python -m bench --book`: whole-book scoring against the in-process batch figure.

1. A synthetic book (`tierwise synth`, default 1,000,000 customers) on disk, as Parquet.
2. `tierwise score` on it in a child process: customers/s per core (rows / the child's CPU
   seconds, start-up included, and the scoring loop alone from its --report) and the child's
   peak RSS (os.wait4: this child only).
3. The in-process batch figure of the same run and machine: features → validated matrix →
   models → arbitration on 10,000 customers in this process (bench/inprocess.py's end to end
   path), least CPU time of several slices.
4. Spark: the same rows (a slice of the book) scored by score_dataframe on local[1] and
   local[2], wall time of a write to Parquet and CPU time of the whole process tree (JVM,
   Python workers), each in a fresh child (a JVM of its own), the better of two runs after
   a warm-up run; skipped without pyspark.
   On a machine with 2 cores, local[1] already keeps more than one busy (the JVM reads,
   converts and writes while the Python worker scores), so local[2] cannot double it there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

SPARK_SCRIPT = r"""
import json, os, sys, time
from pyspark.sql import SparkSession

def tree_cpu():
    # CPU seconds of this process and every live descendant (JVM, Python daemon and
    # workers), their reaped children included.
    procs = {}
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as fh:
                    f = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            procs[int(pid)] = (int(f[1]), sum(int(v) for v in f[11:15]), "(java" in
                               open(f"/proc/{pid}/stat").read(64))
    mine, todo = set(), [os.getpid()]
    while todo:
        p = todo.pop()
        mine.add(p)
        todo += [c for c, (parent, _, _) in procs.items() if parent == p and c not in mine]
    tick = os.sysconf("SC_CLK_TCK")
    jvm = sum(procs[p][1] for p in mine if p in procs and procs[p][2]) / tick
    return sum(procs[p][1] for p in mine if p in procs) / tick, jvm

master, data, models, out = sys.argv[1:5]
spark = (SparkSession.builder.master(master).appName("tierwise-bench")
         .config("spark.ui.enabled", "false").config("spark.driver.memory", "2g")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
from app.book.spark import score_dataframe
df = spark.read.parquet(data)
n = df.count()
parts = 2 * int(master[6:-1])
df = df.repartition(parts).cache()
df.count()
# The first run warms every Python worker (each builds its context once, then reuses it)
# and the JVM's JIT; the figure is the better of the next two.
score_dataframe(df, models).write.mode("overwrite").parquet(out)
best = None
for _ in range(2):
    t0, (c0, j0) = time.perf_counter(), tree_cpu()
    score_dataframe(df, models).write.mode("overwrite").parquet(out)
    c1, j1 = tree_cpu()
    run = (time.perf_counter() - t0, c1 - c0, j1 - j0)
    best = run if best is None or run[0] < best[0] else best
print(json.dumps({"rows": n, "seconds": best[0], "cpu_s": best[1], "jvm_cpu_s": best[2]}))
spark.stop()
"""


def _child(cmd: list[str], env: dict[str, str]) -> tuple[int, Any, float]:
    """Run `cmd`; (exit code, its rusage, wall seconds)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}… exited {proc.returncode}: {err[-800:]}")
    return proc.returncode, usage, wall


def in_process_batch(models: Path, cache_dir: Path, quick: bool) -> dict[str, Any]:
    """The end-to-end batch path in this process (bench/inprocess.py), µs and /s per core."""
    from app.engine.compiled import fastest_evaluator
    from app.engine.evaluate import BoosterEvaluator
    from bench import inprocess

    ctx = inprocess.load_context(models)
    fast = fastest_evaluator(ctx.layout, cache_dir=cache_dir)
    x = inprocess.customer_rows(ctx, 2_000 if quick else 10_000)
    paths = inprocess._end_to_end(ctx, x, booster=BoosterEvaluator(ctx.layout), fast=fast)
    # The same work as the file command: no decision ids (a book's columns hold none, see
    # BookOptions.scoring); the API's batch path makes one per recommendation on top.
    batch = paths["e2e_no_ids"][1] if "e2e_no_ids" in paths else paths["e2e_fast"][1]
    best = inprocess.interleaved({"batch": batch}, budget=1.0 if quick else 4.0, rounds=4)
    us = best["batch"] * 1e6 / x.shape[0]
    return {"evaluator": fast.name, "isa": str(getattr(fast, "isa", "none")),
            "decision_ids": "e2e_no_ids" not in paths,
            "batch_rows": x.shape[0], "us_per_customer": round(us, 2),
            "customers_per_s_per_core": round(1e6 / us)}


def file_command(data: Path, models: Path, work: Path) -> dict[str, Any]:
    """`tierwise score` in a child: rate per core, loop-only rate, peak RSS."""
    out, report = work / "scored.parquet", work / "report.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "app.cli", "score", "--data", str(data), "--out", str(out),
           "--bundles", str(models), "--no-progress", "--report", str(report)]
    _, usage, wall = _child(cmd, env)
    got = json.loads(report.read_text(encoding="utf-8"))
    cpu = usage.ru_utime + usage.ru_stime
    rows = got["rows"]
    return {"rows": rows, "evaluator": got["evaluator"], "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2),
            "customers_per_s_per_core": round(rows / cpu),
            "loop_cpu_s": got["cpu_seconds"],
            "loop_customers_per_s_per_core": round(rows / got["cpu_seconds"]),
            # VmHWM of the child (ru_maxrss of a child also counts this process at the fork)
            "peak_rss_mb": got.get("peak_rss_mb"),
            "ru_maxrss_mb": round(usage.ru_maxrss / 1024, 1),
            "output_mb": round(out.stat().st_size / 2**20, 1)}


def spark(data: Path, models: Path, work: Path, rows: int) -> dict[str, Any]:
    """score_dataframe on local[1] and local[2], the same rows, fresh JVM each."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return {"skipped": "pyspark is not installed (pip install 'tierwise[spark]')"}
    import pyarrow.parquet as pq

    sample = work / "spark_book.parquet"
    table = pq.read_table(data).slice(0, rows)
    pq.write_table(table, sample)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYSPARK_PYTHON": sys.executable,
           "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    out: dict[str, Any] = {"rows": table.num_rows}
    for master in ("local[1]", "local[2]"):
        done = subprocess.run([sys.executable, "-c", SPARK_SCRIPT, master, str(sample),
                               str(models), str(work / f"spark_{master[6]}")], env=env,
                              cwd=ROOT, capture_output=True, text=True, timeout=1800,
                              check=False)
        if done.returncode != 0:
            out[master] = {"error": done.stderr[-800:]}
            continue
        got = json.loads(done.stdout.strip().splitlines()[-1])
        out[master] = {"seconds": round(got["seconds"], 2),
                       "customers_per_s": round(got["rows"] / got["seconds"]),
                       "cpu_s": round(got["cpu_s"], 2),
                       "jvm_cpu_s": round(got["jvm_cpu_s"], 2),
                       "customers_per_s_per_core": round(got["rows"] / got["cpu_s"])}
    one, two = out.get("local[1]", {}), out.get("local[2]", {})
    if "seconds" in one and "seconds" in two:
        out["speedup_2_over_1"] = round(one["seconds"] / two["seconds"], 2)
    return out


def run(models: Path, cache_dir: Path, *, customers: int, spark_rows: int,
        quick: bool = False, keep: Path | None = None) -> dict[str, Any]:
    """Every measurement of the book benchmark; a JSON-able dict."""
    with tempfile.TemporaryDirectory(prefix="tierwise-book-") as tmp:
        work = keep or Path(tmp)
        data = work / "book.parquet"
        t0 = time.perf_counter()
        # In a child: this process stays small (a child forked from a big parent inherits
        # its memory in ru_maxrss).
        subprocess.run([sys.executable, "-m", "app.cli", "synth", "--customers",
                        str(customers), "--out", str(data), "--no-progress"], cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": os.pathsep.join(
                           [str(ROOT), os.environ.get("PYTHONPATH", "")])},
                       check=True, capture_output=True, timeout=1800)
        report: dict[str, Any] = {"customers": customers,
                                  "synth_s": round(time.perf_counter() - t0, 1)}
        report["file"] = file_command(data, models, work)
        report["in_process"] = in_process_batch(models, cache_dir, quick)
        report["file"]["share_of_in_process"] = round(
            report["file"]["customers_per_s_per_core"]
            / report["in_process"]["customers_per_s_per_core"], 3)
        report["file"]["loop_share_of_in_process"] = round(
            report["file"]["loop_customers_per_s_per_core"]
            / report["in_process"]["customers_per_s_per_core"], 3)
        report["spark"] = spark(data, models, work, spark_rows) if spark_rows else {
            "skipped": "--book-spark-rows 0"}
    return report


def table(report: dict[str, Any]) -> str:
    f, p, s = report["file"], report["in_process"], report["spark"]
    lines = [
        f"whole book: {report['customers']:,} synthetic customers",
        f"  tierwise score ({f['evaluator']}): {f['wall_s']} s wall, {f['cpu_s']} s CPU → "
        f"{f['customers_per_s_per_core']:,}/s per core ({f['share_of_in_process']:.0%} of "
        f"in-process batch; scoring loop alone {f['loop_customers_per_s_per_core']:,}/s, "
        f"{f['loop_share_of_in_process']:.0%}), peak RSS {f['peak_rss_mb']} MB",
        f"  in-process batch ({p['evaluator']}, {p.get('isa', '?')} kernels, "
        + ("with decision ids, " if p.get("decision_ids")
           else "no decision ids, as the file command, ")
        + f"{p['batch_rows']:,} rows): "
        f"{p['us_per_customer']} µs/customer → {p['customers_per_s_per_core']:,}/s per core",
    ]
    if "skipped" in s:
        lines.append(f"  Spark: skipped ({s['skipped']})")
    else:
        for m in ("local[1]", "local[2]"):
            r = s.get(m, {})
            lines.append(f"  Spark {m}, {s['rows']:,} rows: " + (
                f"{r['seconds']} s, {r['customers_per_s']:,}/s; {r['cpu_s']} s CPU (JVM "
                f"{r['jvm_cpu_s']} s, the rest Python) → {r['customers_per_s_per_core']:,}/s "
                "per core"
                if "seconds" in r
                else f"failed: {str(r.get('error', ''))[-300:]}"))
        if "speedup_2_over_1" in s:
            lines.append(f"  Spark local[2] / local[1]: {s['speedup_2_over_1']}×")
    return "\n".join(lines)
