"""Monitoring's cost on the scoring path, per customer: `python -m bench.monitoring`.

Measures, in this one process on the default models, interleaved (bench/inprocess.py:
least CPU time over short alternating slices): ScoredCounts.observe for one customer (the
binning amortised: every BIN_EVERY-th call bins the buffer) and for a batch of 1,000, next
to score_rows on the same batch of 1,000 (plain Booster.predict evaluation), for scale;
and the report's outcome part per outcome row (grouping into decisions, acceptance, uplift,
calibration).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")


def run(*, budget: float, rounds: int) -> dict[str, Any]:
    """The figures, in microseconds per customer."""
    from app.config import PROJECT_ROOT
    from app.monitoring.aggregate import BIN_EVERY, ScoredCounts
    from bench.inprocess import customer_rows, interleaved, load_context

    ctx = load_context(PROJECT_ROOT / "models")
    x = customer_rows(ctx, 1000)
    counts = ScoredCounts()
    results = [{"churn": {"probability": 0.1}}] * 1000
    rows = itertools.cycle(range(1000))

    def observe_one() -> None:
        i = next(rows)
        counts.observe(ctx, "production", x[i:i + 1], results[i:i + 1])

    def observe_batch() -> None:
        counts.observe(ctx, "production", x, results)

    from app.scoring.pipeline import CustomerInput, Options, score_rows

    people = [CustomerInput(customer_id=f"C{i}", features=ctx.schema.decode(x[i]))
              for i in range(1000)]

    best = interleaved({
        "observe_one": observe_one,
        "observe_batch_1000": observe_batch,
        "score_batch_1000": lambda: score_rows(ctx, x, people, Options(explain=False)),
    }, budget=budget, rounds=rounds)
    us = {k: v * 1e6 for k, v in best.items()}
    report_us = _report_cost()
    return {
        "observe_one_us": round(us["observe_one"], 2),
        "observe_batch_us_per_customer": round(us["observe_batch_1000"] / 1000, 3),
        "score_batch_us_per_customer": round(us["score_batch_1000"] / 1000, 2),
        "bin_every": BIN_EVERY,
        "report_us_per_outcome_row": round(report_us, 2),
    }


def _report_cost(n: int = 50_000) -> float:
    """CPU microseconds per outcome row to group rows into decisions and compute acceptance,
    uplift and calibration (the report's outcome part; reading the rows is not counted)."""
    import time

    from app.monitoring.decisions import decisions_of
    from app.monitoring.evaluation import acceptance, calibration

    rows = []
    for i in range(n):
        row = {"decision_id": None, "customer_id": f"C{i}", "action_id": f"a{i % 10}",
               "outcome": "offered", "occurred_on": "2026-12-01",
               "decided_on": "2026-12-01", "versions": {"products": 1 + i % 2, "churn": 1},
               "alias": "production", "group": "control" if i % 5 == 0 else "treatment",
               "churn_probability": 0.1, "propensity": 0.2}
        rows += [row, {**row, "outcome": "accepted" if i % 3 else "declined"}]
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        decisions = decisions_of(rows)
        acceptance(decisions)
        calibration(decisions)
        best = min(best, time.process_time() - t0)
    return best / len(rows) * 1e6


def main(argv: list[str] | None = None) -> int:
    """Print the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=8.0, help="CPU seconds per path")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args(argv)
    print(json.dumps(run(budget=args.budget, rounds=args.rounds), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
