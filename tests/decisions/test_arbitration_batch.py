"""The batch arbitration (array operations over customers × actions) decides exactly as the
per-customer arbitration: same recommendations, priorities, reasons and suppression codes,
on the default catalogue and on random catalogues, channels, top N and odd customers."""

from __future__ import annotations

import copy
import random
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.decisions.arbitration import ContactEvent, prepare
from app.decisions.catalog import CHANNELS, Catalog
from app.scoring import pipeline
from app.scoring.context import ScoringContext
from app.scoring.pipeline import CustomerInput, Options, score_rows
from tests.customers import book_customers
from tests.decisions.test_arbitration_properties import catalogs

N = 160  # above BATCH_ARBITRATION_MIN, so score_rows takes the batch path


def _odd_customers(n: int, seed: int, required: frozenset[str]) -> list[dict[str, Any]]:
    """Book customers, some with the values the rules turn on changed or missing."""
    rng = random.Random(seed)
    out = []
    for item in book_customers(n, seed):
        original = item["features"]
        f = dict(original)
        roll = rng.random()
        if roll < 0.1:
            f["risk_profile"] = None
        elif roll < 0.2:
            f["risk_assessment_age_days"] = rng.choice((None, 0, 364, 365, 366, 2000))
        elif roll < 0.3:
            f["age"] = rng.choice((18, 64, 65, 66, 90))
        elif roll < 0.4:
            f["aum_total"] = rng.choice((None, 0.0, 10_000.0, 1_000_000.0))
        elif roll < 0.5:
            for flag in ("has_credit_card", "has_sip", "payroll_customer", "vip_card"):
                f[flag] = rng.choice((True, False, None))
        for k in required:  # only what a valid request may leave out
            if f.get(k) is None:
                f[k] = original[k]
        out.append({k: v for k, v in f.items() if v is not None or rng.random() < 0.5})
    return out


def _both(ctx: ScoringContext, customers: list[CustomerInput], options: Options,
          monkeypatch: pytest.MonkeyPatch) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    x = np.array([ctx.schema.row(c.features) for c in customers])
    batch = score_rows(ctx, x, customers, options)
    with monkeypatch.context() as m:
        m.setattr(pipeline, "BATCH_ARBITRATION_MIN", 10**9)  # per customer, same rows
        one_by_one = score_rows(ctx, x, customers, options)
    return batch, one_by_one


def _inputs(features: list[dict[str, Any]], rng: random.Random,
            with_history: bool) -> list[CustomerInput]:
    out = []
    for i, f in enumerate(features):
        channel = rng.choice((None, *CHANNELS, "kiosk"))
        history: tuple[ContactEvent, ...] = ()
        if with_history and i % 7 == 0:
            history = (ContactEvent(action_id="sip_fund", days_ago=3, outcome="declined"),)
        out.append(CustomerInput(customer_id=f"c{i}", features=f, channel=channel,
                                 history=history))
    return out


@pytest.mark.parametrize("top_n", [None, 0, 1, 3, 50])
@pytest.mark.parametrize("suppressed", [False, True])
def test_batch_equals_per_customer_on_the_default_catalog(
        default_context: ScoringContext, monkeypatch: pytest.MonkeyPatch, top_n: int | None,
        suppressed: bool) -> None:
    rng = random.Random(top_n or 0)
    features = _odd_customers(N, 11, default_context.schema.required)
    customers = _inputs(features, rng, with_history=True)
    options = Options(top_n=top_n, include_suppressed=suppressed, suppressed_details=False)
    batch, one_by_one = _both(default_context, customers, options, monkeypatch)
    assert batch == one_by_one
    shown = sum(len(r["recommendations"]) for r in batch)
    assert top_n == 0 or shown > 0, "the comparison must cover recommendations"
    if suppressed:
        codes = {s["reason_code"] for r in batch for s in r["suppressed"]}
        assert len(codes) >= 3, codes


def test_batch_takes_the_batch_path(default_context: ScoringContext,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison above compares two different paths."""
    calls: list[int] = []
    real = pipeline.arbitrate_batch

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["x"].shape[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "arbitrate_batch", spy)
    features = _odd_customers(N, 3, default_context.schema.required)
    customers = _inputs(features, random.Random(3), with_history=False)
    x = np.array([default_context.schema.row(c.features) for c in customers])
    score_rows(default_context, x, customers, Options())
    assert calls == [N]
    score_rows(default_context, x, customers, Options(include_suppressed=True))
    assert calls == [N], "readable details go through the per-customer path"


@settings(max_examples=40, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(catalog=catalogs(), seed=st.integers(0, 10**6), top_n=st.integers(0, 6))
def test_batch_equals_per_customer_on_random_catalogs(
        default_context: ScoringContext, monkeypatch: pytest.MonkeyPatch, catalog: Catalog,
        seed: int, top_n: int) -> None:
    ctx = copy.copy(default_context)
    ctx.catalog = catalog
    ctx.prepared_catalog = prepare(catalog)
    rng = random.Random(seed)
    customers = _inputs(_odd_customers(40, seed % 97, ctx.schema.required), rng, with_history=False)
    options = Options(top_n=top_n, include_suppressed=True, suppressed_details=False)
    batch, one_by_one = _both(ctx, customers, options, monkeypatch)
    assert batch == one_by_one
