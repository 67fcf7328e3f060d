"""Monitoring's cost on the scoring path, per customer: `python -m bench.monitoring`.

Measures, in this one process on the default models, interleaved (bench/inprocess.py:
least CPU time over short alternating slices): ScoredCounts.observe for one customer (the
binning amortised: every BIN_EVERY-th call bins the buffer) and for a batch of 1,000, next
to score_rows on the same batch of 1,000 (plain Booster.predict evaluation), for scale.
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
        "score_batch_1000": lambda: score_rows(ctx, x, people, Options()),
    }, budget=budget, rounds=rounds)
    us = {k: v * 1e6 for k, v in best.items()}
    return {
        "observe_one_us": round(us["observe_one"], 2),
        "observe_batch_us_per_customer": round(us["observe_batch_1000"] / 1000, 3),
        "score_batch_us_per_customer": round(us["score_batch_1000"] / 1000, 2),
        "bin_every": BIN_EVERY,
    }


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
