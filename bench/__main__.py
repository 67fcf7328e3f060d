"""`python -m bench [--quick]`: in-process cost per customer, HTTP, replica memory.

Prints a table and writes bench/results/latest.json. Bounded in time: about a minute and a
half, a third of that with --quick.
"""

from __future__ import annotations

import os

# One thread for LightGBM's OpenMP before it is imported: per-core figures for everyone.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def _machine() -> dict[str, Any]:
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh
                          if line.startswith("model name")), "")
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def _table(inproc: dict[str, Any]) -> str:
    head = (f"{'in-process, per customer':44} {'single µs':>10} {'/s/core':>9} {'×':>6} "
            f"{'batch µs':>10} {'/s/core':>9} {'×':>6}")
    lines = [head, "-" * len(head)]

    def f(v: Any, fmt: str) -> str:
        return format(v, fmt) if v is not None else "–"

    for r in inproc["results"].values():
        lines.append(
            f"{r['label'][:44]:44} {f(r['single_us_per_customer'], '10.1f')} "
            f"{f(r['single_customers_per_s_per_core'], '9,.0f')} "
            f"{f(r['single_speedup_vs_booster'], '6.2f')} "
            f"{f(r['batch_us_per_customer'], '10.2f')} "
            f"{f(r['batch_customers_per_s_per_core'], '9,.0f')} "
            f"{f(r['batch_speedup_vs_booster'], '6.2f')}"
        )
    trees = ", ".join(f"{k} {v}" for k, v in inproc["trees"].items())
    lines.append(f"trees: {inproc['total_trees']} ({trees}); batch of {inproc['batch_rows']:,} "
                 "rows; × = speed-up over the same work with Booster.predict")
    return "\n".join(lines)


def _verdict(inproc: dict[str, Any]) -> str:
    """The batch path's speed-up over plain LightGBM end to end, judged per kernel set."""
    got = inproc["batch_e2e_speedup"]
    parts = [f"{v:.2f}× with {isa} kernels" if v is not None else f"– with {isa} kernels"
             for isa, v in got["by_isa"].items()]
    missed = [isa for isa, ok in got["met"].items() if not ok]
    verdict = (f"NOT met with {', '.join(missed)} kernels" if missed
               else "met with " + (" and ".join(got["met"]) + " kernels"))
    cpu = "AVX-512" if "avx512" in got["by_isa"] else "no AVX-512"
    return (f"batch end to end vs Booster.predict ({cpu} on this CPU): {'; '.join(parts)}; "
            f"target ≥ {got['target']}×: {verdict}")


def main() -> None:
    from app.config import get_settings

    settings = get_settings()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter runs, smaller batch")
    parser.add_argument("--models", type=Path, default=settings.models_dir,
                        help="directory of the default bundles (models/)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "latest.json")
    parser.add_argument("--no-reasons", action="store_true",
                        help="skip the cost of reasons (SHAP attributions)")
    parser.add_argument("--no-rss", action="store_true", help="skip the replica memory probe")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP load test")
    parser.add_argument("--no-mlserver", action="store_true",
                        help="skip the MLServer comparison (installs MLServer on first use)")
    parser.add_argument("--book", action="store_true",
                        help="only the whole-book benchmark (tierwise score, Spark): "
                             "bench/book.py")
    parser.add_argument("--book-customers", type=int, default=1_000_000,
                        help="customers in the synthetic book of --book")
    parser.add_argument("--book-spark-rows", type=int, default=200_000,
                        help="rows Spark scores in --book (0: skip Spark)")
    args = parser.parse_args()
    if args.book:
        _book(args, settings)
        return

    from app.engine.compiled import fastest_evaluator
    from app.engine.walker import TreeWalkEvaluator
    from bench import inprocess

    started = time.time()
    ctx = inprocess.load_context(args.models)
    t0 = time.perf_counter()
    fast = fastest_evaluator(ctx.layout, cache_dir=settings.compile_cache_dir)
    build_s = time.perf_counter() - t0
    if not isinstance(fast, TreeWalkEvaluator):
        print("warning: the tree walker is unavailable here; measuring the fallback")
    report: dict[str, Any] = {
        "command": "python -m bench" + (" --quick" if args.quick else ""),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "machine": _machine(),
        "fast_evaluator_ready_s": round(build_s, 3),
        "fast_evaluator_kernels": fast.isa if isinstance(fast, TreeWalkEvaluator) else None,
    }
    variants = inprocess.kernel_variants(ctx, fast, cache_dir=settings.compile_cache_dir)
    inproc = inprocess.run(ctx, fast, quick=args.quick, variants=variants)
    report["in_process"] = inproc
    print(_table(inproc))
    print(_verdict(inproc))
    kernels = f", {fast.isa} kernels" if isinstance(fast, TreeWalkEvaluator) else ""
    print(f"fast evaluator ready in {build_s:.2f} s (arrays built, walker loaded, checked"
          f"{kernels})")
    if not args.no_reasons:
        from bench import reasons

        report["reasons"] = reasons.run(ctx, fast, quick=args.quick)
        print(reasons.table(report["reasons"]))
    if not args.no_rss:
        rss = inprocess.replica_rss(args.models, settings.compile_cache_dir)
        report["replica_rss_mb"] = rss
        if "error" in rss:
            print("replica memory: failed:", rss["error"])
        else:
            print(f"replica memory (one process, default context, no HTTP stack): "
                  f"{rss['context_fast']} MB resident ({rss['python']} MB bare Python, "
                  f"{rss['context_booster']} MB with the boosters loaded)")
    if not args.no_http:
        from bench import http

        x = inprocess.customer_rows(ctx, 256, seed=11)
        bodies = [{"customer_id": f"C{i:06d}",
                   "features": {k: v for k, v in ctx.schema.decode(r).items() if v is not None}}
                  for i, r in enumerate(x)]
        report["http"] = {}
        # As served (reasons on, the default since issue 13), then the same customers with
        # "explain": false, for callers who need the last microsecond.
        quiet = [{**b, "options": {"explain": False}} for b in bodies]
        for name, label, sent in (("as_served", "HTTP /v1/score, as served (reasons on)", bodies),
                                  ("reasons_off", 'HTTP /v1/score, "explain": false', quiet)):
            try:
                report["http"][name] = http.run(args.models, sent, quick=args.quick)
                print(http.table(report["http"][name], label))
            except RuntimeError as exc:
                report["http"][name] = {"error": str(exc)[-800:]}
                print(f"{label}: failed:", exc)
    if not args.no_http and not args.no_mlserver:
        from bench import mlserver

        try:
            x = inprocess.customer_rows(ctx, 512, seed=13)
            report["mlserver"] = mlserver.run(args.models, x, ctx.schema,
                                              ctx.churn.model.feature_names, quick=args.quick)
            print(mlserver.table(report["mlserver"]))
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            report["mlserver"] = {"error": str(exc)[-800:]}
            print("MLServer comparison: failed:", str(exc)[-400:])
    report["elapsed_s"] = round(time.time() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} in {report['elapsed_s']} s")


def _book(args: argparse.Namespace, settings: Any) -> None:
    from bench import book

    started = time.time()
    report = book.run(args.models, settings.compile_cache_dir, customers=args.book_customers,
                      spark_rows=args.book_spark_rows, quick=args.quick)
    report = {"command": "python -m bench --book", "machine": _machine(),
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)), **report,
              "elapsed_s": round(time.time() - started, 1)}
    print(book.table(report))
    out = args.out.with_name("book.json") if args.out.name == "latest.json" else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} in {report['elapsed_s']} s")


if __name__ == "__main__":
    main()
