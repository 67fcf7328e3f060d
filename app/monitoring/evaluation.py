"""Acceptance, uplift and calibration from decisions (app/monitoring/decisions.py).

- acceptance of an action = treatment decisions accepted or converted / treatment decisions
  recorded, per version of `family` and per alias, with Wilson 95% intervals; when two
  versions differ, the better one is named only if Newcombe's interval of the difference
  excludes 0;
- uplift = conversion rate (treatment) - conversion rate (control: held-out decisions),
  with Newcombe's hybrid score interval;
- calibration = predicted vs observed per band of the predicted probability (product
  propensity "pp" against conversion; churn probability "p" against outcome "churned").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from app.monitoring.decisions import CHURNED, Decision
from app.monitoring.stats import ece, newcombe, wilson

CALIBRATION_BANDS = 10


def _rate(successes: int, n: int) -> dict[str, Any]:
    interval = wilson(successes, n)
    return {"n": n, "accepted": successes, "rate": successes / n if n else None,
            "interval_95": list(interval) if interval else None}


def _by(decisions: Iterable[Decision], key: Callable[[Decision], str | None]
        ) -> dict[str, list[Decision]]:
    out: dict[str, list[Decision]] = defaultdict(list)
    for d in decisions:
        k = key(d)
        if k is not None:
            out[k].append(d)
    return dict(sorted(out.items()))


def compare(groups: dict[str, list[Decision]]) -> dict[str, Any] | None:
    """The best group against the runner-up on acceptance: named better only when the 95%
    interval of the difference excludes 0."""
    rated = [(sum(d.accepted for d in ds) / len(ds), name, ds)
             for name, ds in groups.items() if ds]
    if len(rated) < 2:
        return None
    rated.sort(key=lambda r: (-r[0], r[1]))
    (_, best, b), (_, second, s) = rated[0], rated[1]
    diff = newcombe(sum(d.accepted for d in b), len(b), sum(d.accepted for d in s), len(s))
    assert diff is not None
    d, (lo, hi) = diff
    return {"better": best if lo > 0 else None, "against": second, "difference": d,
            "interval_95": [lo, hi],
            "conclusion": (f"{best} accepts more than {second}" if lo > 0
                           else f"no difference shown between {best} and {second}")}


def acceptance(decisions: Sequence[Decision], *, family: str = "products"
               ) -> list[dict[str, Any]]:
    """Per action: acceptance overall, per version of `family` and per alias; the version
    comparison; uplift against the control group."""
    out = []
    for action, ds in _by(decisions, lambda d: d.action_id).items():
        treated = [d for d in ds if d.group != "control"]
        control = [d for d in ds if d.group == "control"]
        versions = _by(treated, lambda d: (f"{family} v{d.versions[family]}"
                                           if family in d.versions else None))
        aliases = _by(treated, lambda d: d.alias)
        out.append({
            "action_id": action,
            "treatment": _rate(sum(d.accepted for d in treated), len(treated)),
            "by_version": {v: _rate(sum(d.accepted for d in g), len(g))
                           for v, g in versions.items()},
            "by_alias": {a: _rate(sum(d.accepted for d in g), len(g))
                         for a, g in aliases.items()},
            "versions_compared": compare(versions),
            "aliases_compared": compare(aliases),
            "uplift": uplift(treated, control),
        })
    return out


def uplift(treated: Sequence[Decision], control: Sequence[Decision]) -> dict[str, Any] | None:
    """Conversion rate of treated minus control decisions, with its 95% interval."""
    st, sc = sum(d.converted for d in treated), sum(d.converted for d in control)
    diff = newcombe(st, len(treated), sc, len(control))
    if diff is None:
        return None
    d, (lo, hi) = diff
    return {"treatment": {"n": len(treated), "converted": st, "rate": st / len(treated)},
            "control": {"n": len(control), "converted": sc, "rate": sc / len(control)},
            "uplift": d, "interval_95": [lo, hi]}


def calibration_table(pairs: Sequence[tuple[float, bool]],
                      bands: int = CALIBRATION_BANDS) -> dict[str, Any]:
    """Predicted vs observed per band of width 1/bands: n, mean predicted, observed rate
    with its Wilson interval; and the expected calibration error over all bands."""
    acc: list[list[float]] = [[0, 0.0, 0] for _ in range(bands)]
    for p, y in pairs:
        b = min(int(p * bands), bands - 1) if p == p else None
        if b is None or b < 0:
            continue
        acc[b][0] += 1
        acc[b][1] += p
        acc[b][2] += y
    rows = []
    for i, (n, sp, pos) in enumerate(acc):
        if n:
            interval = wilson(int(pos), int(n))
            rows.append({"band": [i / bands, (i + 1) / bands], "n": int(n),
                         "predicted": sp / n, "observed": pos / n,
                         "interval_95": list(interval) if interval else None})
    return {"n": int(sum(a[0] for a in acc)), "bands": rows,
            "ece": ece([(int(n), sp, int(pos)) for n, sp, pos in acc])}


def calibration(decisions: Sequence[Decision]) -> dict[str, Any]:
    """Churn calibration per churn version (each customer and decision day once, observed =
    an outcome 'churned' recorded for the customer; none while no 'churned' is recorded at
    all), and product calibration per products
    version (treatment decisions with a propensity, observed = converted)."""
    # A customer churned when any outcome 'churned' is recorded for them (by decision id
    # or by customer), whichever decision it names.
    churned = {d.customer_id for d in decisions if CHURNED in d.outcomes}
    churn: dict[str, dict[tuple[str, str], list[Any]]] = defaultdict(dict)
    # No 'churned' recorded at all: the bank does not report churn (yet), and observed
    # churn is unknown, not zero.
    for d in decisions if churned else ():
        if d.churn_probability is None or "churn" not in d.versions:
            continue
        version = f"churn v{d.versions['churn']}"
        churn[version].setdefault((d.customer_id, d.day),
                                  [d.churn_probability, d.customer_id in churned])
    products: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for d in decisions:
        if d.propensity is None or d.group == "control" or "products" not in d.versions:
            continue
        products[f"products v{d.versions['products']}"].append((d.propensity, d.converted))
    return {
        "churn": {v: calibration_table([(p, y) for p, y in seen.values()])
                  for v, seen in sorted(churn.items())},
        "churn_note": None if churned else "no outcome 'churned' recorded in the window: "
                                           "churn calibration needs them",
        "products": {v: calibration_table(pairs) for v, pairs in sorted(products.items())},
    }
