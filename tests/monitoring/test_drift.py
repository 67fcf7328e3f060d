"""Drift against the default bundles' training references: a batch with one feature shifted
is flagged (PSI > 0.25) on that feature only; an unshifted batch is not flagged at all."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from app.bundles.io import Bundle, build_bundle
from app.bundles.manifest import FAMILIES
from app.monitoring.aggregate import ScoredCounts
from app.monitoring.drift import drift_report
from app.scoring.context import ScoringContext, build_context, families_of
from app.scoring.pipeline import CustomerInput, Options, score_rows
from app.training.dataset import encode_book
from app.training.synth import generate_book

ALERT = 0.25
SHIFTED = "age"


@pytest.fixture(scope="module")
def batch(default_context: ScoringContext) -> np.ndarray:
    """4,000 fresh customers from the generator (another seed than training's)."""
    book = generate_book(4000, 7, progress=False)
    return encode_book(book, default_context.schema.specs)


def _report(ctx: ScoringContext, x: np.ndarray, *, bin_every: int = 512) -> list[dict]:
    counts = ScoredCounts(today=lambda: dt.date(2026, 12, 1), bin_every=bin_every)
    customers = [CustomerInput(customer_id=str(i), features={}) for i in range(x.shape[0])]
    results = score_rows(ctx, x, customers, Options(parts=frozenset({"churn"})))
    for start in range(0, x.shape[0], 1000):  # several batches, like several requests
        counts.observe(ctx, "production", x[start:start + 1000],
                       results[start:start + 1000])
    folded = counts.fold()
    summed: dict = {}
    for (_, family, version, alias, series, name), n in folded.items():
        k = (family, version, alias, series, name)
        summed[k] = summed.get(k, 0) + n
    refs = {(f, ctx.versions[f].version): getattr(fam, "reference", None)
            for f, fam in families_of(ctx).items()}
    return drift_report(summed, refs, psi_alert=ALERT)


def test_default_bundles_carry_a_training_reference(default_context: ScoringContext) -> None:
    for family in ("tier", "churn", "products"):
        ref = getattr(default_context, family).reference
        assert ref is not None and ref.rows > 50_000
        assert set(ref.features) == {s.name for s in getattr(default_context, family).features}
    churn = default_context.churn.reference
    assert churn is not None and churn.score is not None and sum(churn.score.counts) == churn.rows


def test_an_unshifted_batch_is_not_flagged(default_context: ScoringContext,
                                           batch: np.ndarray) -> None:
    report = _report(default_context, batch)
    assert {(e["family"], e["alias"]) for e in report} == {
        ("tier", "production"), ("churn", "production"), ("products", "production")}
    for entry in report:
        assert entry["rows"] == batch.shape[0]
        assert entry["drifted"] == []
        assert max(f["psi"] for f in entry["features"]) < 0.1
    churn = next(e for e in report if e["family"] == "churn")
    assert churn["score"]["psi"] < 0.1


def test_a_batch_with_one_feature_shifted_is_flagged_on_that_feature(
        default_context: ScoringContext, batch: np.ndarray) -> None:
    shifted = batch.copy()
    col = default_context.schema.index[SHIFTED]
    shifted[:, col] = np.minimum(shifted[:, col] + 15, 100)
    for entry in _report(default_context, shifted):
        assert entry["drifted"] == [SHIFTED], entry["family"]
        top = entry["features"][0]
        assert top["feature"] == SHIFTED and top["psi"] > ALERT
        assert all(f["psi"] < 0.1 for f in entry["features"][1:])


def test_single_rows_buffered_count_the_same_as_one_batch(default_context: ScoringContext,
                                                           batch: np.ndarray) -> None:
    x = batch[:700]
    whole = ScoredCounts(today=lambda: dt.date(2026, 12, 1))
    whole.observe(default_context, "production", x, [{} for _ in range(700)])
    rows = ScoredCounts(today=lambda: dt.date(2026, 12, 1), bin_every=64)
    for i in range(700):
        rows.observe(default_context, "production", x[i:i + 1], [{}])
    assert whole.fold() == rows.fold()


def test_bundles_without_a_reference_say_so_and_never_fail(
        default_bundles: dict[str, Bundle], batch: np.ndarray) -> None:
    bundles = dict(default_bundles)
    fields = json.loads(bundles["churn"].manifest_bytes)
    fields.pop("files")
    fields.pop("reference")
    bundles["churn"] = build_bundle(fields, dict(bundles["churn"].files))
    ctx = build_context(bundles, dict.fromkeys(FAMILIES, 1))
    assert ctx.churn.reference is None
    report = {e["family"]: e for e in _report(ctx, batch[:600])}
    assert report["churn"]["reference"] is False and report["churn"]["rows"] == 600
    assert report["churn"]["features"] == [] and "no reference" in report["churn"]["note"]
    assert report["tier"]["reference"] is True and report["tier"]["drifted"] == []


def test_threads_and_folds_lose_no_customer(default_context: ScoringContext,
                                            batch: np.ndarray) -> None:
    import threading

    counts = ScoredCounts(today=lambda: dt.date(2026, 12, 1), bin_every=64)
    x = batch[:50]
    folds: list[dict] = []

    def score(n: int) -> None:
        for i in range(n):
            counts.observe(default_context, "production", x[i % 50:i % 50 + 1], [{}])
            if i % 100 == 0:
                counts.observe(default_context, "production", x, [{}] * 50)

    def fold() -> None:
        for _ in range(20):
            folds.append(counts.fold())

    threads = [threading.Thread(target=score, args=(1000,)) for _ in range(4)]
    threads.append(threading.Thread(target=fold))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = counts.fold()
    per_thread = 1000 + 10 * 50
    for family in ("tier", "churn", "products"):
        assert total[("2026-12-01", family, 1, "production", "rows", "all")] == 4 * per_thread
        age = sum(n for (_, f, _, _, series, _), n in total.items()
                  if f == family and series == "feature:age")
        assert age == 4 * per_thread
