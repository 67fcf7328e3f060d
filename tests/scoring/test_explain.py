"""Reasons from the native attributions: churn reasons as pred_contrib gives them, and for
every recommended product the features that raised its propensity, single rows and batches."""

from __future__ import annotations

import numpy as np

from app.engine.attributions import BoosterAttributions
from app.features.family import OfferText
from app.scoring.context import ScoringContext
from app.scoring.explain import SORT_IN_NUMPY, Explainer, largest, offer_sentence
from app.scoring.pipeline import CustomerInput, Options, score_rows
from app.scoring.reasons import top_order, top_reasons
from tests.customers import book_customers


def _customers(n: int) -> list[CustomerInput]:
    return [CustomerInput(customer_id=f"c{i}", features=b["features"])
            for i, b in enumerate(book_customers(n, seed=5))]


def test_churn_reasons_equal_those_of_pred_contrib(default_context: ScoringContext) -> None:
    ctx = default_context
    customers = _customers(40)
    x = ctx.schema.matrix([c.features for c in customers])
    got = score_rows(ctx, x, customers, Options(explain=True))
    ref = BoosterAttributions(ctx.churn.model, ctx.layout.columns(ctx.churn.model))
    phi = ref.contributions(x)
    for out, row, c in zip(got, phi, customers, strict=True):
        want = top_reasons(row, ctx.churn.model.feature_names, c.features, ctx.churn.reason_codes)
        assert [r["code"] for r in out["churn"]["reasons"]] == [r["code"] for r in want]
        assert np.allclose([r["contribution"] for r in out["churn"]["reasons"]],
                           [r["contribution"] for r in want], atol=1e-6)


def test_every_recommended_product_says_why(default_context: ScoringContext) -> None:
    ctx = default_context
    explainer = Explainer.of(ctx)
    assert explainer.name == "treeshap"
    customers = _customers(30)  # a batch: the batch arbitration and the 8-lane kernel
    x = ctx.schema.matrix([c.features for c in customers])
    batch = score_rows(ctx, x, customers, Options(explain=True))
    alone = [score_rows(ctx, x[i:i + 1], [c], Options(explain=True))[0]
             for i, c in enumerate(customers)]
    products = 0
    for b, a in zip(batch, alone, strict=True):
        for rec_b, rec_a in zip(b["recommendations"], a["recommendations"], strict=True):
            assert rec_b["action_id"] == rec_a["action_id"]
            if rec_b["kind"] != "product":
                continue
            products += 1
            why = rec_b["explanation"]
            assert 1 <= len(why) <= 3
            assert [r["code"] for r in why] == [r["code"] for r in rec_a["explanation"]]
            contributions = [r["contribution"] for r in why]
            assert all(c > 0 for c in contributions) and contributions == sorted(
                contributions, reverse=True)
            assert all(r["text"] in rec_b["reasons"] for r in why)
    assert products >= 30
    # Reasons are on unless turned off.
    assert Options().explain
    default = score_rows(ctx, x[:1], customers[:1], Options())[0]
    assert default == alone[0]
    # Reasons off: no explanation, no extra work.
    off = score_rows(ctx, x[:1], customers[:1], Options(explain=False))[0]
    assert all("explanation" not in r for r in off["recommendations"])
    assert off["churn"]["reasons"] == []


def test_product_reasons_are_the_contract_sentences_for_the_customer(
        default_context: ScoringContext) -> None:
    """Each product reason is the feature contract's offer text for the customer's value,
    with the feature's stable reason code."""
    ctx = default_context
    explainer = Explainer.of(ctx)
    assert len(explainer.offers) == len(ctx.schema.names)  # the default contract has them all
    customers = _customers(40)
    x = ctx.schema.matrix([c.features for c in customers])
    got = score_rows(ctx, x, customers, Options())
    sentences = 0
    for out, c in zip(got, customers, strict=True):
        for rec in out["recommendations"]:
            for r in rec.get("explanation") or ():
                code = explainer.codes[r["feature"]]
                assert r["code"] == code.code
                assert r["text"] == offer_sentence(explainer.offers[r["feature"]],
                                                   c.features.get(r["feature"]), code.format)
                assert "{" not in r["text"] and r["text"] in rec["reasons"]
                sentences += 1
    assert sentences >= 40
    # Hostile: a customer with only the required features (every other one missing) still
    # gets sentences, never a KeyError.
    required = {k: v for k, v in customers[0].features.items() if k in ctx.schema.required}
    bare = [CustomerInput(customer_id="bare", features=required)]
    out = score_rows(ctx, ctx.schema.matrix([required]), bare, Options())[0]
    for rec in out["recommendations"]:
        assert all("{" not in r["text"] for r in rec.get("explanation") or ())


def test_offer_sentences_by_kind_of_value() -> None:
    offer = OfferText(text="mortgage of {value} here", negative="owed {value}",
                      zero="no mortgage here", missing="mortgage not known")
    assert offer_sentence(offer, 3_000_000, "money") == "mortgage of CNY 3,000,000 here"
    assert offer_sentence(offer, -5, "money") == "owed CNY -5"
    assert offer_sentence(offer, 0, "money") == "no mortgage here"
    assert offer_sentence(offer, 0.0, "money") == "no mortgage here"
    assert offer_sentence(offer, None, "money") == "mortgage not known"
    assert offer_sentence(offer, float("nan"), "money") == "mortgage not known"
    flag = OfferText(text="investment plan running", zero="no investment plan yet")
    assert offer_sentence(flag, True, "text") == "investment plan running"
    assert offer_sentence(flag, False, "text") == "no investment plan yet"
    assert offer_sentence(flag, None, "text") == "no investment plan yet"  # missing: zero's
    bare = OfferText(text="risk profile {value}")
    assert offer_sentence(bare, "C3", "text") == "risk profile C3"
    assert offer_sentence(bare, None, "text") == "risk profile missing"
    trend = OfferText(text="balance up {value}", negative="balance down {value}")
    assert offer_sentence(trend, -0.45, "percent") == "balance down 45%"
    assert offer_sentence(trend, 0.0, "percent") == "balance up 0%"  # no zero text: text


def test_few_rows_and_many_rows_pick_the_same_features() -> None:
    """The top features of a row are the same whether sorted in Python (a few rows) or in
    numpy (many), ties (equal contributions, zeros, -0.0) by position either way."""
    rng = np.random.default_rng(3)
    phi = rng.choice([-1.0, -0.0, 0.0, 0.5, 0.5, 2.0], size=(3 * SORT_IN_NUMPY, 9))
    many = largest(phi, phi.tolist(), 3)
    few = [largest(phi[i:i + 1], phi[i:i + 1].tolist(), 3)[0] for i in range(len(phi))]
    assert many == few
    assert all(len(o) == 3 for o in few)
    # The churn reasons' order (by |contribution|) too.
    many_abs = top_order(phi, 3)
    few_abs = [top_order(phi[i:i + 1], 3) for i in range(len(phi))]
    assert many_abs[0] == [f[0][0] for f in few_abs]
    assert many_abs[1] == [f[1][0] for f in few_abs]
