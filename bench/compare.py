"""`python -m bench.compare --before REF [--rounds N] [bench flags]`: this checkout against an
earlier commit, measured in the same session.

The two are run alternately (before, after, before, after, ...) with the same `python -m
bench` flags, so both see the same machine conditions; each figure is reported as the
median over the rounds, with its change (+ = worse, whichever way the figure points). The
earlier commit is checked out into a temporary git worktree and run with this virtualenv.
A shared two-core machine moves single runs by 10-30%: use several rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HIGHER_IS_BETTER = ("per_s", "speedup", "ratio")
LOWER_IS_BETTER = ("_us", "_ms", "cpu", "_mb")


def figures(result: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """(path, value) of every numeric figure of the in-process and HTTP tables."""

    def walk(node: Any, path: str) -> Iterator[tuple[str, float]]:
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, int | float) and not isinstance(node, bool):
            yield path, float(node)

    for section in ("in_process", "http", "replica_rss_mb", "mlserver"):
        for path, value in walk(result.get(section, {}), section):
            if path.startswith("mlserver.") and not path.startswith("mlserver.tierwise."):
                continue  # MLServer's own figures are the baseline, not ours
            if direction(path) != 0 and "trees." not in path and "seconds_per_level" not in path:
                yield path, value


def direction(path: str) -> int:
    """+1 when higher is better, -1 when lower is better, 0 for counts and settings."""
    name = path.rsplit(".", 1)[-1]
    if any(k in name for k in HIGHER_IS_BETTER):
        return 1
    if any(k in name for k in LOWER_IS_BETTER) or path.startswith("replica_rss_mb"):
        return -1
    return 0


def run_bench(checkout: Path, flags: list[str], out: Path) -> dict[str, Any]:
    """One `python -m bench` in `checkout` with this interpreter; its JSON result."""
    subprocess.run([sys.executable, "-m", "bench", *flags, "--out", str(out)], cwd=checkout,
                   check=True, timeout=1800)
    loaded: dict[str, Any] = json.loads(out.read_text())
    return loaded


def change(before: float, after: float, sign: int) -> float:
    """Relative change of `after` against `before`, positive when worse."""
    if before == 0:
        return 0.0
    return (before - after) / before if sign > 0 else (after - before) / before


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="git ref of the earlier code")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--limit", type=float, default=0.10, help="flag changes worse than this")
    args, flags = parser.parse_known_args()
    results: dict[str, list[dict[str, Any]]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="tierwise-compare-") as tmp:
        base = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(base), args.before],
                       cwd=ROOT, check=True, capture_output=True)
        mlserver = ROOT / "var" / "mlserver-venv"
        if mlserver.exists():  # one MLServer install serves both sides
            (base / "var").mkdir(exist_ok=True)
            (base / "var" / "mlserver-venv").symlink_to(mlserver)
        try:
            for i in range(args.rounds):
                for side, checkout in (("before", base), ("after", ROOT)):
                    print(f"round {i + 1}/{args.rounds}: {side}", file=sys.stderr, flush=True)
                    results[side].append(run_bench(checkout, flags, Path(tmp) / f"{side}.json"))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT,
                           check=False, capture_output=True)
    print(report(results, args.limit, args.before))


def report(results: dict[str, list[dict[str, Any]]], limit: float, ref: str) -> str:
    """The table: median before, median after, change (+ = worse), flagged past `limit`."""
    before = [dict(figures(r)) for r in results["before"]]
    after = [dict(figures(r)) for r in results["after"]]
    lines = [f"{'figure (median of ' + str(len(before)) + ' rounds)':64} {ref[:10]:>10} "
             f"{'now':>10} {'change':>8}"]
    worst = 0.0
    for path in before[0]:
        if not all(path in r for r in before + after):
            continue
        b = statistics.median(r[path] for r in before)
        a = statistics.median(r[path] for r in after)
        c = change(b, a, direction(path))
        worst = max(worst, c)
        flag = "  << worse than limit" if c > limit else ""
        lines.append(f"{path[:64]:64} {b:10.2f} {a:10.2f} {c:+8.1%}{flag}")
    lines.append(f"worst change: {worst:+.1%} (limit {limit:.0%}; + = worse)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
