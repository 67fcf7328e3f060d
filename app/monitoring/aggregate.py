"""What a replica scored, counted per (family, version, alias) against each bundle's training
reference: per-feature bin counts, the score histogram, the number of customers. No raw
feature is kept: rows wait in a small buffer (references to the request's own arrays) until
BIN_EVERY of them are there, then the whole buffer is binned with numpy in one pass.

Cost on the scoring path: one dict look-up, the calling thread's own (uncontended) lock, one
list append and the churn probability read from each result; binning is amortised over
BIN_EVERY rows (`python -m bench.monitoring`; docs/monitoring.md gives the figures). Pure: no
SQL, no settings.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.bundles.reference import FeatureHistogram, Reference
from app.monitoring.reference import SCORE_EDGES

BIN_EVERY = 512
MODEL_FAMILIES = ("tier", "churn", "products")
# A scoring context (app/scoring/context.py), read duck-typed so this package sits beside
# scoring: its `versions`, `schema.index` and each model family's `reference`.
ScoringContext = Any
MISSING = "missing"
# (day, family, version, alias, series, bin) -> customers
CountKey = tuple[str, str, int, str, str, str]


def feature_series(name: str) -> str:
    """The series name of a feature's bin counts."""
    return f"feature:{name}"


SCORE_SERIES = "score"
ROWS_SERIES = "rows"


def bin_names(hist: FeatureHistogram) -> list[str]:
    """The stored bin names of a reference feature, in count order, missing last: the bin's
    position ("0", "1", ...; a category's position in the reference, whose order the
    manifest fixes), so any category name fits the table's column."""
    n = len(hist.categories) if hist.categories is not None else len(hist.edges or ()) + 1
    return [*(str(i) for i in range(n)), MISSING]


@dataclass(frozen=True, slots=True)
class _Binning:
    """How one column is binned: numeric edges, or a count of category codes."""

    column: int
    edges: np.ndarray | None
    bins: int  # not counting the missing bin, which comes last
    # categories: the contract's code -> the reference's bin (bins: not in the reference)
    lookup: np.ndarray | None = None

    def counts(self, xt: np.ndarray) -> np.ndarray:
        """Bin counts (missing last) of column `column` of the column-major rows `xt`."""
        col = xt[self.column]
        nan = np.isnan(col)
        if self.edges is not None:
            idx = np.searchsorted(self.edges, col, side="right")
        else:
            assert self.lookup is not None
            code = np.where(nan, 0, col).astype(np.int64)
            idx = self.lookup[np.clip(code, 0, len(self.lookup) - 1)]
        idx = np.where(nan, self.bins, idx)
        return np.bincount(idx, minlength=self.bins + 1)


@dataclass(slots=True)
class _Plan:
    """A context's binnings (one per distinct column and edges) and what they count for."""

    binnings: list[_Binning]
    # family, version, series, binning index, bin names
    series: list[tuple[str, int, str, int, list[str]]]
    families: list[tuple[str, int, bool]]  # family, version, has a score reference

    @classmethod
    def of(cls, ctx: ScoringContext) -> _Plan:
        binnings: list[_Binning] = []
        seen: dict[tuple[Any, ...], int] = {}
        series: list[tuple[str, int, str, int, list[str]]] = []
        families = []
        for family in MODEL_FAMILIES:
            version = ctx.versions[family].version
            ref: Reference | None = getattr(ctx, family).reference
            families.append((family, version, ref is not None and ref.score is not None))
            if ref is None:
                continue
            for name, hist in ref.features.items():
                column = ctx.schema.index.get(name)
                if column is None:
                    continue
                if hist.categories is not None:
                    names = list(hist.categories)
                    spec = ctx.schema.specs[column]
                    codes = spec.categories if spec.kind == "category" else ("false", "true")
                    # A category the reference does not know counts as missing.
                    lookup = tuple(names.index(c) if c in names else len(names) for c in codes)
                    key: tuple[Any, ...] = (column, "categories", tuple(names), lookup)
                    binning = _Binning(column, None, len(names),
                                       np.asarray(lookup, dtype=np.int64))
                else:
                    edges = tuple(hist.edges or ())
                    key = (column, edges)
                    binning = _Binning(column, np.asarray(edges, dtype=np.float64),
                                       len(edges) + 1)
                if key not in seen:
                    seen[key] = len(binnings)
                    binnings.append(binning)
                series.append((family, version, feature_series(name), seen[key],
                               bin_names(hist)))
        return cls(binnings, series, families)


@dataclass(slots=True)
class _Accumulator:
    plan: _Plan
    alias: str
    rows: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    pending: int = 0
    counted: int = 0
    bins: list[np.ndarray] = field(default_factory=list)
    score_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(SCORE_EDGES) + 1, dtype=np.int64))
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: bool = False  # folded: its counts are in the totals, a new one takes over

    def __post_init__(self) -> None:
        self.bins = [np.zeros(b.bins + 1, dtype=np.int64) for b in self.plan.binnings]

    def bin_pending(self) -> None:
        """Bin the buffered rows and scores into the counts, and empty the buffer."""
        if self.rows:
            x = self.rows[0] if len(self.rows) == 1 else np.concatenate(self.rows)
            # Column-major once: every binning then reads one contiguous column (twice as
            # fast as strided columns of the row-major request matrix).
            xt = np.ascontiguousarray(x.T)
            for counts, binning in zip(self.bins, self.plan.binnings, strict=True):
                counts += binning.counts(xt)
            self.counted += x.shape[0]
        if self.scores:
            s = np.asarray(self.scores, dtype=np.float64)
            s = s[~np.isnan(s)]
            self.score_counts += np.bincount(
                np.searchsorted(SCORE_EDGES, s, side="right"), minlength=len(SCORE_EDGES) + 1)
        self.rows, self.scores, self.pending = [], [], 0


class ScoredCounts:
    """A replica's cumulative counts per day since it started; `fold()` turns the buffers
    into (day, family, version, alias, series, bin) -> count, which flush writes whole."""

    def __init__(self, *, today: Callable[[], dt.date] | None = None,
                 bin_every: int = BIN_EVERY) -> None:
        self._lock = threading.Lock()
        self._accs: dict[tuple[int, str, int], tuple[ScoringContext, _Accumulator]] = {}
        self._totals: dict[CountKey, int] = {}
        self._today = today or (lambda: dt.datetime.now(dt.UTC).date())
        self._bin_every = bin_every

    def observe(self, ctx: ScoringContext, alias: str, x: np.ndarray,
                results: Sequence[dict[str, Any]]) -> None:
        """Count rows `x` (laid out by ctx.schema) and their results, scored on `ctx`.

        Each thread fills its own accumulator (the event loop's single customers, each
        batch worker's), so binning a batch never makes the event loop wait; only fold()
        takes an accumulator from its thread, briefly, once per flush."""
        key = (id(ctx), alias, threading.get_ident())
        while True:
            entry = self._accs.get(key)
            if entry is None or entry[0] is not ctx:
                with self._lock:
                    entry = self._accs[key] = (ctx, _Accumulator(_Plan.of(ctx), alias))
            acc = entry[1]
            with acc.lock:
                if acc.closed:  # folded since we looked it up: take a fresh one
                    continue
                acc.rows.append(x)
                scores = acc.scores
                for r in results:
                    churn = r.get("churn")
                    if churn is not None and churn["probability"] is not None:
                        scores.append(churn["probability"])
                acc.pending += x.shape[0]
                if acc.pending >= self._bin_every:
                    acc.bin_pending()
                return

    def fold(self) -> dict[CountKey, int]:
        """Add everything counted so far to the day's totals and return a copy of them."""
        day = self._today().isoformat()
        with self._lock:
            accs = [acc for _, acc in self._accs.values()]
            self._accs = {}  # contexts are let go; the next request rebuilds a plan
        folded = []
        for acc in accs:
            with acc.lock:
                acc.bin_pending()
                acc.closed = True
            folded.append(acc)
        with self._lock:
            for acc in folded:
                self._fold_one(day, acc)
            return dict(self._totals)

    def forget_before(self, day: dt.date) -> None:
        """Drop totals of days before `day` (they are flushed; only today grows)."""
        first = day.isoformat()
        with self._lock:
            self._totals = {k: v for k, v in self._totals.items() if k[0] >= first}

    def _fold_one(self, day: str, acc: _Accumulator) -> None:
        totals, alias, plan = self._totals, acc.alias, acc.plan

        def add(family: str, version: int, series: str, name: str, n: int) -> None:
            if n:
                k = (day, family, version, alias, series, name)
                totals[k] = totals.get(k, 0) + n

        for family, version, has_score in plan.families:
            add(family, version, ROWS_SERIES, "all", acc.counted)
            if has_score and family == "churn":
                for i, n in enumerate(acc.score_counts.tolist()):
                    add(family, version, SCORE_SERIES, str(i), n)
        for family, version, series, b, names in plan.series:
            for name, n in zip(names, acc.bins[b].tolist(), strict=True):
                add(family, version, series, name, n)
