"""In-process cost per customer: plain Booster.predict against the tree walker, and end to end.

Everything runs in this one process on the same rows, one thread (OMP_NUM_THREADS=1, so the
baseline's OpenMP threads neither help nor spin), and costs are CPU time of the process, so
"customers/s per core" is 1 / (CPU seconds per customer) even on a busy machine.
"""

from __future__ import annotations

import gc
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app.bundles.manifest import FAMILIES
from app.engine.evaluate import BoosterEvaluator, Evaluator, RawScores
from app.scoring.context import ScoringContext


def load_context(models_dir: Path) -> ScoringContext:
    """The default models as the service loads them (hash checks, reference replay)."""
    from app.bundles import read_dir
    from app.scoring.context import build_context

    missing = [f for f in FAMILIES if not (models_dir / f / "manifest.json").is_file()]
    if missing:
        raise SystemExit(f"{models_dir} lacks bundles for {', '.join(missing)}: run `make models`")
    bundles = {f: read_dir(models_dir / f) for f in FAMILIES}
    return build_context(bundles, dict.fromkeys(FAMILIES, 1))


def customer_rows(ctx: ScoringContext, n: int, seed: int = 7) -> np.ndarray:
    """Rows of valid synthetic customers, laid out by the context's schema."""
    from app.training.dataset import encode_book
    from app.training.synth import generate_book

    return encode_book(generate_book(n, seed), ctx.schema.specs)


def interleaved(fns: dict[str, Callable[[], Any]], *, budget: float,
                rounds: int) -> dict[str, float]:
    """Least CPU seconds per call of each function, measured in `rounds` short slices taken
    in turn (a, b, c, a, b, c, ...), about budget/rounds seconds per function and round.

    On a shared machine the speed of the CPU moves over seconds; measuring the paths one
    after the other would let one path catch a slow spell and another a fast one, and the
    difference between two of them (the cost that is not tree evaluation) is what matters.
    """
    calls = {}
    for name, fn in fns.items():
        fn()  # warm caches and lazy paths
        t0 = time.process_time()
        fn()
        once = max(time.process_time() - t0, 1e-7)
        calls[name] = max(1, int(budget / rounds / once))
    best = dict.fromkeys(fns, float("inf"))
    gc.collect()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, fn in fns.items():
                n = calls[name]
                t0 = time.process_time()
                for _ in range(n):
                    fn()
                best[name] = min(best[name], (time.process_time() - t0) / n)
    finally:
        gc.enable()
    return best


@dataclass
class Row:
    name: str
    single_us: float | None
    batch_us: float | None  # per customer

    def as_dict(self, base: Row | None) -> dict[str, Any]:
        def ratio(mine: float | None, theirs: float | None) -> float | None:
            return round(theirs / mine, 2) if mine and theirs else None

        return {
            "single_us_per_customer": _r(self.single_us),
            "single_customers_per_s_per_core": _per_s(self.single_us),
            "batch_us_per_customer": _r(self.batch_us),
            "batch_customers_per_s_per_core": _per_s(self.batch_us),
            "single_speedup_vs_booster": ratio(self.single_us, base.single_us) if base else None,
            "batch_speedup_vs_booster": ratio(self.batch_us, base.batch_us) if base else None,
        }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _per_s(us: float | None) -> float | None:
    return None if not us else round(1e6 / us)


# The batch path's target against plain LightGBM, end to end (customers/s per core, same run),
# on CPUs with AVX-512 and without (issue 14): judged for every kernel set measured.
BATCH_E2E_TARGET = 4.5


def kernel_variants(ctx: ScoringContext, fast: Evaluator, *,
                    cache_dir: Path | None) -> dict[str, Evaluator]:
    """The walker again with the AVX2 kernels when `fast` runs AVX-512 ones: the figures of a
    CPU without AVX-512, measured in the same run ({} when there is nothing else to run)."""
    from app.engine.compiled import check_against_booster
    from app.engine.walker import TreeWalkEvaluator

    if not isinstance(fast, TreeWalkEvaluator) or fast.isa != "avx512":
        return {}
    other = TreeWalkEvaluator(ctx.layout, cache_dir=cache_dir)
    if other.use_isa("avx2") != "avx2":
        return {}
    diff = check_against_booster(other, ctx.layout)
    if not diff <= 1e-9:
        raise RuntimeError(f"the walker's AVX2 kernels differ from LightGBM by {diff}")
    return {"avx2": other}


def run(ctx: ScoringContext, fast: Evaluator, *, quick: bool,
        variants: dict[str, Evaluator] | None = None) -> dict[str, Any]:
    """Measure Booster.predict, the fast evaluator and the end-to-end path (and each of
    `variants`, the walker with other kernels: name → evaluator); a JSON-able dict."""
    variants = variants or {}
    isa = str(getattr(fast, "isa", "none"))
    batch_n = 2_000 if quick else 10_000
    budget = 0.6 if quick else 2.0
    x = customer_rows(ctx, batch_n)
    # Single rows cycle through different customers: one row asked again and again would let
    # the branch predictor learn its paths and flatter every tree walker.
    singles = [np.ascontiguousarray(x[i:i + 1]) for i in range(min(batch_n, 4096))]
    booster = BoosterEvaluator(ctx.layout)
    parts = {"tier": True, "churn": True, "products": True}
    labels = {"booster": "Booster.predict, one call per model",
              "fast": f"{fast.name} ({isa}), all models in one call",
              "e2e_booster": "end to end with Booster.predict",
              "e2e_fast": f"end to end with {fast.name} ({isa})",
              "e2e_replay": "end to end, trees replayed",
              "e2e_no_ids": f"end to end with {fast.name} ({isa}), no decision ids"}
    for name in variants:
        labels[f"fast_{name}"] = f"{fast.name} ({name}), all models in one call"
        labels[f"e2e_fast_{name}"] = f"end to end with {fast.name} ({name})"
    single: dict[str, Callable[[], Any]] = {}
    batch: dict[str, Callable[[], Any]] = {}
    evaluators = [("booster", booster), ("fast", fast),
                  *((f"fast_{name}", ev) for name, ev in variants.items())]
    for key, ev in evaluators:

        def one(ev: Evaluator = ev, nxt: Callable[[], np.ndarray] = itertools.cycle(
                singles).__next__) -> Any:
            return ev.raw(nxt(), **parts)

        def many(ev: Evaluator = ev) -> Any:
            return ev.raw(x, **parts)

        single[key], batch[key] = one, many
    e2e = _end_to_end(ctx, x, booster=booster, fast=fast, variants=variants)
    for key, (one_customer, whole_batch) in e2e.items():
        single[key], batch[key] = one_customer, whole_batch
    previous = ctx.evaluator
    try:
        # Every path measured in turn, slice after slice (see interleaved).
        single_s = interleaved(single, budget=budget, rounds=8)
        batch_s = interleaved(batch, budget=budget * 2, rounds=4)
    finally:
        ctx.use_evaluator(previous)
    rows: dict[str, Row] = {
        key: Row(labels[key], single_s[key] * 1e6, batch_s[key] * 1e6 / batch_n)
        for key in single
    }
    if "e2e_replay" in rows:
        # The end-to-end path with the trees' outputs replayed is everything that is not tree
        # evaluation; what the walker adds to it is its cost in that company (its arrays
        # partly evicted by the Python work around it, so more than when measured alone).
        f, r = rows.pop("e2e_fast"), rows.pop("e2e_replay")
        rows["e2e_fast"] = f
        rows["e2e_overhead"] = Row("…not tree evaluation (trees replayed)",
                                   r.single_us, r.batch_us)
        rows["e2e_trees"] = Row(f"…{fast.name} ({isa}) inside it (the rest)",
                                (f.single_us or 0) - (r.single_us or 0),
                                (f.batch_us or 0) - (r.batch_us or 0))
        for name in variants:
            v = rows.pop(f"e2e_fast_{name}")
            rows[f"e2e_fast_{name}"] = v
            rows[f"e2e_trees_{name}"] = Row(f"…{fast.name} ({name}) inside it (the rest)",
                                            (v.single_us or 0) - (r.single_us or 0),
                                            (v.batch_us or 0) - (r.batch_us or 0))
    if "e2e_no_ids" in rows:
        # What the decision ids (one signed token per recommendation) add per customer.
        f, n = rows["e2e_fast"], rows.pop("e2e_no_ids")
        rows["e2e_no_ids"] = n
        rows["e2e_decision_ids"] = Row("…decision ids inside it (the difference)",
                                       (f.single_us or 0) - (n.single_us or 0),
                                       (f.batch_us or 0) - (n.batch_us or 0))
    base = rows["booster"]
    results = {}
    no_ratio = ("booster", "e2e_booster", "e2e_overhead", "e2e_trees", "e2e_decision_ids",
                *(f"e2e_trees_{name}" for name in variants))
    for key, row in rows.items():
        ref = rows.get("e2e_booster") if key.startswith("e2e") else base
        results[key] = {"label": row.name, **row.as_dict(None if key in no_ratio else ref)}
    by_isa = {isa: results["e2e_fast"]["batch_speedup_vs_booster"],
              **{name: results[f"e2e_fast_{name}"]["batch_speedup_vs_booster"]
                 for name in variants}}
    return {
        "batch_rows": batch_n,
        "trees": {m.name: m.num_trees for m in ctx.layout.all_models()},
        "total_trees": sum(m.num_trees for m in ctx.layout.all_models()),
        "fast_evaluator": fast.name,
        "kernels": isa,
        "results": results,
        # The batch path end to end against Booster.predict end to end, per kernel set.
        "batch_e2e_speedup": {
            "target": BATCH_E2E_TARGET,
            "by_isa": by_isa,
            "met": {k: v is not None and v >= BATCH_E2E_TARGET for k, v in by_isa.items()},
        },
    }


def _end_to_end(ctx: ScoringContext, x: np.ndarray, *, booster: Evaluator, fast: Evaluator,
                variants: dict[str, Evaluator] | None = None,
                ) -> dict[str, tuple[Callable[[], Any], Callable[[], Any]]]:
    """Named features → validated row → models → calibration → arbitration, reasons off:
    (one customer, the whole batch) callables for each evaluator."""
    try:
        from app.scoring.pipeline import CustomerInput, Options, score_rows
    except ImportError:
        return {}
    schema = ctx.schema
    features = [schema.decode(r) for r in x]
    features = [{k: v for k, v in f.items() if v is not None} for f in features]
    customers = [CustomerInput(customer_id=f"c{i}", features=f) for i, f in enumerate(features)]
    options = Options(explain=False)  # reasons off: bench/reasons.py measures them
    parts = {"tier": True, "churn": True, "products": True}
    firsts = customers[:4096]
    replay = _Replay([fast.raw(schema.row(c.features)[None, :], **parts) for c in firsts],
                     fast.raw(schema.matrix([c.features for c in customers]), **parts))
    try:  # the same path without decision ids, to measure what they cost
        no_ids = Options(explain=False, decision_ids=False)  # type: ignore[call-arg]
    except TypeError:
        no_ids = None
    paths: list[tuple[str, Evaluator, Any]] = [("e2e_booster", booster, options),
                                               ("e2e_fast", fast, options),
                                               ("e2e_replay", replay, options)]
    if no_ids is not None:
        paths.append(("e2e_no_ids", fast, no_ids))
    paths += [(f"e2e_fast_{name}", ev, options) for name, ev in (variants or {}).items()]
    out: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for key, ev, opts in paths:
        nxt = itertools.cycle(range(len(firsts))).__next__

        def single(ev: Evaluator = ev, nxt: Callable[[], int] = nxt, opts: Any = opts) -> Any:
            ctx.evaluator = ev  # the paths take turns on one context
            i = replay.single = nxt()
            customer = firsts[i]
            row = schema.row(customer.features)
            return score_rows(ctx, row[None, :], [customer], opts)

        def batch(ev: Evaluator = ev, opts: Any = opts) -> Any:
            ctx.evaluator = ev
            m = schema.matrix([c.features for c in customers])
            return score_rows(ctx, m, customers, opts)

        out[key] = (single, batch)
    return out


class _Replay:
    """An evaluator answering with outputs the fast evaluator gave before for the same rows:
    the end-to-end path through it costs everything but the tree evaluation."""

    name = "trees replayed"

    def __init__(self, singles: list[RawScores], whole: RawScores) -> None:
        self.singles, self.whole, self.single = singles, whole, 0

    def raw(self, x: np.ndarray, *, tier: bool, churn: bool, products: bool) -> RawScores:
        return self.singles[self.single] if x.shape[0] == 1 else self.whole


RSS_SCRIPT = r"""
import json, os, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path

def rss():
    f = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
    return int(f["VmRSS"].split()[0]) * 1024, int(f["VmHWM"].split()[0]) * 1024

out = {"python": rss()[0]}
from bench.inprocess import load_context, customer_rows
ctx = load_context(Path(sys.argv[1]))
x = customer_rows(ctx, 1)
ctx.evaluator.raw(x, tier=True, churn=True, products=True)
out["context_booster"] = rss()[0]
from app.engine.compiled import fastest_evaluator
ctx.use_evaluator(fastest_evaluator(ctx.layout, cache_dir=Path(sys.argv[2])))
ctx.evaluator.raw(x, tier=True, churn=True, products=True)
out["context_fast"], out["peak"] = rss()
out["evaluator"] = ctx.evaluator.name
print(json.dumps(out))
"""


def replica_rss(models_dir: Path, cache_dir: Path) -> dict[str, Any]:
    """Resident memory of a fresh process holding the default context (no HTTP stack)."""
    import json
    import subprocess
    import sys

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", RSS_SCRIPT, str(models_dir), str(cache_dir)],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parent.parent, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip()[-500:]}
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return {k: (round(v / 2**20, 1) if isinstance(v, int) else v) for k, v in got.items()}
