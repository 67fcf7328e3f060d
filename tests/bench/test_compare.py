"""bench.compare: which figures it reads, which way each points, and what it flags."""

from __future__ import annotations

from typing import Any

from bench.compare import change, direction, figures, report


def _result(us: float, req_s: float, p99: float) -> dict[str, Any]:
    return {"in_process": {"results": {"fast": {"label": "treewalk",
                                                "single_us_per_customer": us}},
                           "trees": {"tier": 600}, "total_trees": 2100},
            "http": {"as_served": {"seconds_per_level": 4.0,
                                   "levels": {"8": {"requests": 1000, "req_per_s": req_s,
                                                    "p99_ms": p99}}}},
            "mlserver": {"customers": 57, "mlserver": {"8": {"req_per_s": 1500.0}},
                         "tierwise": {"8": {"req_per_s": req_s}}}}


def test_figures_and_their_direction() -> None:
    got = dict(figures(_result(20.0, 5000.0, 2.5)))
    assert got == {"in_process.results.fast.single_us_per_customer": 20.0,
                   "http.as_served.levels.8.req_per_s": 5000.0,
                   "http.as_served.levels.8.p99_ms": 2.5,
                   "mlserver.tierwise.8.req_per_s": 5000.0}  # not counts, settings, MLServer
    assert direction("http.as_served.levels.8.req_per_s") == 1
    assert direction("in_process.results.fast.single_us_per_customer") == -1
    assert change(100.0, 80.0, 1) == 0.2  # fewer requests per second: 20% worse
    assert change(100.0, 80.0, -1) == -0.2  # fewer microseconds: 20% better


def test_report_takes_medians_and_flags_what_is_worse_than_the_limit() -> None:
    before = [_result(20.0, 5000.0, 2.0), _result(22.0, 5200.0, 2.2), _result(99.0, 1.0, 9.0)]
    after = [_result(21.0, 4000.0, 2.1), _result(21.0, 4100.0, 2.1), _result(21.0, 4200.0, 2.1)]
    text = report({"before": before, "after": after}, 0.10, "abc")
    lines = {line.split()[0]: line for line in text.splitlines()[1:-1]}
    assert "<< worse" in lines["http.as_served.levels.8.req_per_s"]  # 5000 -> 4100: -18%
    assert "<< worse" not in lines["in_process.results.fast.single_us_per_customer"]
    assert "<< worse" not in lines["http.as_served.levels.8.p99_ms"]  # 2.2 -> 2.1
    assert text.splitlines()[-1].startswith("worst change: +18.0%")
