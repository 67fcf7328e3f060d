"""The cost of reasons: a full score with churn reasons and product reasons for every
recommended product, against the same score without, and against LightGBM's pred_contrib.

Measured in one run, in turns (bench.inprocess.interleaved), CPU time of this process; each
path with reasons in turns with the same score without them (pred_contrib in turns of its own):
- "score": score_rows with reasons off (explain false);
- "score + reasons (treeshap)": score_rows as served, reasons on (the default): native SHAP
  values of the churn model for every row and of each recommended product's model for the
  rows recommending it, with the reasons picked from them (top churn contributions, product
  features that raised it, as sentences);
- "score + reasons (pred_contrib)": the same through Booster.predict(pred_contrib=True)
  (a smaller batch: it costs milliseconds per customer);
- the attributions alone: churn, and one product model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from app.engine.attributions import BoosterAttributions
from app.engine.evaluate import Evaluator
from app.scoring.context import ScoringContext
from bench.inprocess import customer_rows, interleaved


def run(ctx: ScoringContext, fast: Evaluator, *, quick: bool) -> dict[str, Any]:
    """Every path with `fast` as the context's evaluator (as served); a JSON-able dict."""
    previous = ctx.evaluator
    ctx.use_evaluator(fast)
    try:
        return _run(ctx, quick=quick)
    finally:
        ctx.use_evaluator(previous)


def _run(ctx: ScoringContext, *, quick: bool) -> dict[str, Any]:
    from app.scoring.explain import Explainer
    from app.scoring.pipeline import CustomerInput, Options, score_rows
    from app.scoring.reasons import top_reasons

    explainer = Explainer.of(ctx)
    reference = Explainer.__new__(Explainer)
    reference.__dict__.update(explainer.__dict__)
    reference.churn = BoosterAttributions(ctx.churn.model, ctx.layout.columns(ctx.churn.model))
    reference.products = {m.name: BoosterAttributions(m, ctx.layout.columns(m))
                          for m in ctx.layout.products}
    batch_n = 1_000 if quick else 4_000
    slow_n = 50 if quick else 200
    budget = 0.5 if quick else 1.5
    x = customer_rows(ctx, batch_n, seed=17)
    schema = ctx.schema
    feats = [{k: v for k, v in schema.decode(r).items() if v is not None} for r in x]
    customers = [CustomerInput(customer_id=f"c{i}", features=f) for i, f in enumerate(feats)]
    off = Options(explain=False)
    on = Options()  # reasons on: the default
    churn_names, codes = ctx.churn.model.feature_names, ctx.churn.reason_codes

    def score(m: np.ndarray, cs: list[CustomerInput]) -> list[dict[str, Any]]:
        return score_rows(ctx, m, cs, off)

    def with_reasons(ex: Explainer, m: np.ndarray, cs: list[CustomerInput]) -> Any:
        if ex is explainer:  # as served
            return score_rows(ctx, m, cs, on)
        results = score_rows(ctx, m, cs, off)
        phi = ex.churn_contributions(m)
        for out, row, c in zip(results, phi, cs, strict=True):
            out["churn"]["reasons"] = top_reasons(row, churn_names, c.features, codes)
        ex.product_reasons(m, results, [c.features for c in cs])
        return results

    def matrix(cs: list[CustomerInput]) -> np.ndarray:
        return schema.matrix([c.features for c in cs])

    singles = customers[:1024]
    nxt = {k: itertools.cycle(singles).__next__ for k in ("off", "native", "lgb")}

    def one(kind: str) -> Callable[[], Any]:
        def f() -> Any:
            c = nxt[kind]()
            m = schema.row(c.features)[None, :]
            if kind == "off":
                return score(m, [c])
            return with_reasons(explainer if kind == "native" else reference, m, [c])
        return f

    # In turns with the score without reasons, as the batches below: pred_contrib in its own
    # turns (its milliseconds a call would leave the caches cold for whatever runs next).
    single = interleaved({k: one(k) for k in ("off", "native")}, budget=budget, rounds=6)
    single_lgb = interleaved({k: one(k) for k in ("off", "lgb")}, budget=budget, rounds=2)
    slow = customers[:slow_n]
    batch = interleaved({
        "off": lambda: score(matrix(customers), customers),
        "native": lambda: with_reasons(explainer, matrix(customers), customers),
    }, budget=budget * 2, rounds=4)
    batch_small = interleaved({
        "off": lambda: score(matrix(slow), slow),
        "lgb": lambda: with_reasons(reference, matrix(slow), slow),
    }, budget=budget, rounds=2)
    product = ctx.layout.products[0]
    alone = interleaved({
        "churn_single": lambda: explainer.churn_contributions(x[:1]),
        "churn_batch": lambda: explainer.churn_contributions(x),
        "product_single": lambda: explainer.products[product.name].contributions(x[:1]),
        "product_batch": lambda: explainer.products[product.name].contributions(x),
    }, budget=budget, rounds=4)
    us = 1e6
    res: dict[str, Any] = {
        "attributions": explainer.name,
        "evaluator": ctx.evaluator.name,
        "batch_rows": batch_n,
        "pred_contrib_batch_rows": slow_n,
        "single_us": {"score": single["off"] * us, "score_reasons_treeshap": single["native"] * us,
                      "score_reasons_pred_contrib": single_lgb["lgb"] * us,
                      "score_same_turns_as_pred_contrib": single_lgb["off"] * us},
        "batch_us_per_customer": {
            "score": batch["off"] * us / batch_n,
            "score_reasons_treeshap": batch["native"] * us / batch_n,
            "score_reasons_pred_contrib": batch_small["lgb"] * us / slow_n,
            "score_same_batch_as_pred_contrib": batch_small["off"] * us / slow_n},
        "attributions_alone_us": {
            "churn_single": alone["churn_single"] * us,
            "churn_batch_per_row": alone["churn_batch"] * us / batch_n,
            f"{product.name}_single": alone["product_single"] * us,
            f"{product.name}_batch_per_row": alone["product_batch"] * us / batch_n},
    }
    res["ratio_single"] = res["single_us"]["score_reasons_treeshap"] / res["single_us"]["score"]
    b = res["batch_us_per_customer"]
    res["ratio_batch"] = b["score_reasons_treeshap"] / b["score"]
    res["ratio_single_pred_contrib"] = (res["single_us"]["score_reasons_pred_contrib"]
                                        / res["single_us"]["score_same_turns_as_pred_contrib"])
    res["ratio_batch_pred_contrib"] = (b["score_reasons_pred_contrib"]
                                       / b["score_same_batch_as_pred_contrib"])
    return _rounded(res)


def _rounded(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _rounded(u) for k, u in v.items()}
    return round(v, 2) if isinstance(v, float) else v


def table(r: dict[str, Any]) -> str:
    s, b = r["single_us"], r["batch_us_per_customer"]
    a = r["attributions_alone_us"]
    lines = [
        f"{'reasons (churn + every recommended product)':44} {'single µs':>10} {'×':>6} "
        f"{'batch µs':>10} {'×':>6}",
        f"{'score, reasons off (' + r['evaluator'] + ')':44} {s['score']:10.1f} {1:6.2f} "
        f"{b['score']:10.2f} {1:6.2f}",
        f"{'score + reasons, ' + r['attributions']:44} {s['score_reasons_treeshap']:10.1f} "
        f"{r['ratio_single']:6.2f} {b['score_reasons_treeshap']:10.2f} {r['ratio_batch']:6.2f}",
        f"{'score + reasons, pred_contrib':44} {s['score_reasons_pred_contrib']:10.1f} "
        f"{r['ratio_single_pred_contrib']:6.2f} {b['score_reasons_pred_contrib']:10.2f} "
        f"{r['ratio_batch_pred_contrib']:6.2f}",
        "attributions alone: " + ", ".join(f"{k} {v:.1f} µs" for k, v in a.items()),
        f"batch of {r['batch_rows']:,} ({r['pred_contrib_batch_rows']} for pred_contrib); "
        "× = cost over the score without reasons",
    ]
    return "\n".join(lines)
