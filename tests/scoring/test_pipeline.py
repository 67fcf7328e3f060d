"""The pipeline's own readings of the policy: booked tier from AUM, churn band from the
calibrated probability, the same for one row and for a batch."""

from __future__ import annotations

import numpy as np

from app.scoring.context import ScoringContext
from app.scoring.pipeline import CustomerInput, Options, score_rows
from tests.customers import book_customers

# AUM at and just below each default threshold: a threshold belongs to the tier it starts.
AUMS = {0.0: "mass", 99_999.99: "mass", 100_000.0: "affluent", 999_999.0: "affluent",
        1_000_000.0: "hnw", 6_000_000.0: "private", 1e10: "private"}


def test_booked_tier_and_band_at_the_thresholds(default_context: ScoringContext) -> None:
    ctx = default_context
    base = book_customers(len(AUMS), seed=3)
    customers = [CustomerInput(customer_id=f"c{i}", features={**b["features"], "aum_total": aum})
                 for i, (b, aum) in enumerate(zip(base, AUMS, strict=True))]
    x = ctx.schema.matrix([c.features for c in customers])
    options = Options(parts=frozenset({"tier", "churn"}))
    batch = score_rows(ctx, x, customers, options)
    alone = [score_rows(ctx, x[i:i + 1], [c], options)[0] for i, c in enumerate(customers)]
    assert alone == batch
    assert [r["tier"]["booked"] for r in batch] == list(AUMS.values())
    bands = [(b.min_probability, b.band) for b in ctx.policy.churn_bands]
    for r in batch:
        p = r["churn"]["probability"]
        assert np.isfinite(p)
        assert r["churn"]["band"] == [band for low, band in bands if p >= low][-1]
