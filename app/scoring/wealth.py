"""Tier from predicted wallet wealth, read against the live policy's thresholds.

The tier model predicts mu = E[log1p(W)] for W the customer's wealth across all banks; the
manifest's residual quantiles give the distribution of log1p(W) - mu (a piecewise-linear
CDF F through the quantiles, its end segments continued down to 0 and up to 1). Wealth is
at least what this bank holds, so the distribution is conditioned on W >= floor, floor =
the booked AUM (0 when it is missing: wealth is never negative). With S(w) = P(W >= w):

    P(tier k) = [S(max(t_k, floor)) - S(max(t_{k+1}, floor))] / S(floor)

for the policy thresholds t_k (t_0 = 0, t_K = inf): exactly 0 below the booked tier. The
predicted wealth is the conditional median, never below the floor. When the floor lies
beyond the distribution's support (S(floor) = 0), the customer is worth the floor: the
booked tier with probability 1.

`one` (a request of one customer, plain floats and bisect) and `many` (numpy, any number)
do the same IEEE operations in the same order, and both take log1p/expm1 from numpy, so a
customer gets the same answer alone and in a batch, bit for bit.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.bundles.manifest import WealthModel


def knots(model: WealthModel) -> tuple[list[float], list[float]]:
    """(residuals, cumulative probabilities) of the CDF from 0 to 1: the manifest's points,
    with the end segments continued to probability 0 and 1 when they stop short of them."""
    q, p = list(model.residual_quantiles), list(model.probabilities)
    if p[0] > 0.0:
        q.insert(0, q[0] - p[0] * (q[1] - q[0]) / (p[1] - p[0]))
        p.insert(0, 0.0)
    if p[-1] < 1.0:
        q.append(q[-1] + (1.0 - p[-1]) * (q[-1] - q[-2]) / (p[-1] - p[-2]))
        p.append(1.0)
    return q, p


@dataclass(frozen=True, slots=True)
class WealthTiers:
    """A wealth model's residual CDF and one policy's thresholds, ready for scoring."""

    q: tuple[float, ...]  # residual knots, strictly increasing
    p: tuple[float, ...]  # F at the knots: 0 ... 1
    slope: tuple[float, ...]  # per segment: dF/dq
    islope: tuple[float, ...]  # per segment: dq/dF
    thresholds: tuple[float, ...]  # policy min_aum per tier, ascending, from 0
    log_thresholds: tuple[float, ...]  # log1p of thresholds[1:]
    arrays: dict[str, np.ndarray]

    @classmethod
    def of(cls, model: WealthModel, thresholds: Sequence[float]) -> WealthTiers:
        q, p = knots(model)
        slope = [(p[j + 1] - p[j]) / (q[j + 1] - q[j]) for j in range(len(q) - 1)]
        islope = [(q[j + 1] - q[j]) / (p[j + 1] - p[j]) for j in range(len(q) - 1)]
        t = tuple(float(v) for v in thresholds)
        log_t = np.log1p(np.array(t[1:], dtype=np.float64))
        arrays = {"q": np.array(q), "p": np.array(p), "slope": np.array(slope),
                  "islope": np.array(islope), "thresholds": np.array(t), "log_t": log_t}
        return cls(tuple(q), tuple(p), tuple(slope), tuple(islope), t,
                   tuple(log_t.tolist()), arrays)

    # ---------------------------------------------------------------- one customer

    def _cdf(self, z: float) -> float:
        q = self.q
        if z <= q[0]:
            return 0.0
        if z >= q[-1]:
            return 1.0
        j = bisect_right(q, z) - 1
        return self.slope[j] * (z - q[j]) + self.p[j]

    def one(self, mu: float, aum: float) -> tuple[list[float], float]:
        """(probability per policy tier, conditional median wealth) of one customer."""
        floor = aum if aum > 0.0 else 0.0  # NaN too
        lf = float(np.log1p(floor))
        f_floor = self._cdf(lf - mu)
        denom = 1.0 - f_floor
        if not denom > 0.0:
            probs = [0.0] * len(self.thresholds)
            probs[bisect_right(self.thresholds, floor) - 1] = 1.0
            return probs, floor
        bounds = [f_floor]
        for u in self.log_thresholds:
            bounds.append(self._cdf((u if u > lf else lf) - mu))
        bounds.append(1.0)
        probs = []
        for k in range(len(bounds) - 1):
            d = bounds[k + 1] - bounds[k]
            probs.append((d if d > 0.0 else 0.0) / denom)
        target = 0.5 * (1.0 + f_floor)
        p, q = self.p, self.q
        j = bisect_right(p, target) - 1
        z = q[-1] if j >= len(p) - 1 else self.islope[j] * (target - p[j]) + q[j]
        w = float(np.expm1(mu + z))
        return probs, (w if w > floor else floor)

    # ---------------------------------------------------------------- many customers

    def _cdf_many(self, z: np.ndarray) -> np.ndarray:
        a = self.arrays
        q = a["q"]
        j = np.clip(np.searchsorted(q, z, side="right") - 1, 0, len(q) - 2)
        f = a["slope"][j] * (z - q[j]) + a["p"][j]
        return np.where(z <= q[0], 0.0, np.where(z >= q[-1], 1.0, f))

    def many(self, mu: np.ndarray, aum: np.ndarray) -> tuple[list[list[float]], list[float]]:
        """`one` for every row: probabilities per policy tier and conditional median wealth."""
        a = self.arrays
        n = len(mu)
        with np.errstate(invalid="ignore"):
            floor = np.where(aum > 0.0, aum, 0.0)
        lf = np.log1p(floor)
        f_floor = self._cdf_many(lf - mu)
        denom = 1.0 - f_floor
        log_t = a["log_t"][None, :]
        upper = self._cdf_many(np.where(log_t > lf[:, None], log_t, lf[:, None]) - mu[:, None])
        bounds = np.column_stack([f_floor, upper.reshape(n, -1), np.ones(n)])
        d = bounds[:, 1:] - bounds[:, :-1]
        ok = denom > 0.0
        safe = np.where(ok, denom, 1.0)
        probs = np.where(d > 0.0, d, 0.0) / safe[:, None]
        target = 0.5 * (1.0 + f_floor)
        p, q = a["p"], a["q"]
        j = np.searchsorted(p, target, side="right") - 1
        jc = np.clip(j, 0, len(p) - 2)
        z = np.where(j >= len(p) - 1, q[-1], a["islope"][jc] * (target - p[jc]) + q[jc])
        w = np.expm1(mu + z)
        wealth = np.where(w > floor, w, floor)
        if not ok.all():  # beyond the support: worth the floor, in the booked tier
            bad = np.flatnonzero(~ok)
            probs[bad] = 0.0
            probs[bad, np.searchsorted(a["thresholds"], floor[bad], side="right") - 1] = 1.0
            wealth[bad] = floor[bad]
        return probs.tolist(), wealth.tolist()
