"""Decision ids and the control group in what score_rows returns (single rows, the batch
arbitration and the per-customer one alike)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pytest

from app.decisions.policy import ControlGroup
from app.outcomes.decision_ids import DecisionSigner
from app.scoring.context import ScoringContext
from app.scoring.pipeline import CustomerInput, Options, score_rows
from tests.customers import book_customers

SIGNER = DecisionSigner.from_text("scoring decisions test secret")
DAY = dt.date(2026, 11, 30)


def _score(ctx: ScoringContext, n: int, **options: Any) -> list[dict[str, Any]]:
    items = book_customers(n, seed=3)
    x = np.empty((n, len(ctx.schema)))
    for i, item in enumerate(items):
        assert not ctx.schema.encode_into(item["features"], x[i])
    customers = [CustomerInput(customer_id=it["customer_id"], features=it["features"],
                               as_of=DAY) for it in items]
    return score_rows(ctx, x, customers, Options(signer=SIGNER, **options))


def _with_control(ctx: ScoringContext, share: float, salt: str = "q1") -> ScoringContext:
    policy = ctx.policy.model_copy(update={"control_group": ControlGroup(share=share,
                                                                          salt=salt)})
    return dataclasses.replace(ctx, policy=policy)


@pytest.mark.parametrize("n", [1, 40])  # one row; the batch arbitration (>= 16 rows)
def test_every_recommendation_has_a_decision_id_naming_it(default_context: ScoringContext,
                                                          n: int) -> None:
    results = _score(default_context, n)
    seen = 0
    for r in results:
        assert r["control"] is False and "held_out" not in r
        for rank, rec in enumerate(r["recommendations"], start=1):
            d = SIGNER.verify(rec["decision_id"])
            assert d is not None
            assert (d.customer_id, d.action_id, d.as_of, d.rank, d.group, d.alias) == (
                r["customer_id"], rec["action_id"], DAY, rank, "treatment", "production")
            assert d.versions == {f: 1 for f in ("churn", "products", "catalog", "policy")}
            assert d.churn_probability == round(r["churn"]["probability"], 4)
            assert d.propensity == round(rec["propensity"], 4)
            seen += 1
    assert seen >= n


def test_the_batch_and_one_by_one_give_the_same_ids(default_context: ScoringContext) -> None:
    batch = _score(default_context, 20)
    items = book_customers(20, seed=3)
    for i, item in enumerate(items):
        x = np.empty((1, len(default_context.schema)))
        default_context.schema.encode_into(item["features"], x[0])
        one = score_rows(default_context, x, [CustomerInput(
            customer_id=item["customer_id"], features=item["features"], as_of=DAY)],
            Options(signer=SIGNER))[0]
        assert [r["decision_id"] for r in one["recommendations"]] == [
            r["decision_id"] for r in batch[i]["recommendations"]]


def test_decision_ids_can_be_turned_off(default_context: ScoringContext) -> None:
    for r in _score(default_context, 20, decision_ids=False):
        assert all("decision_id" not in rec for rec in r["recommendations"])


def test_the_alias_is_named(default_context: ScoringContext) -> None:
    r = _score(default_context, 1, alias="challenger")[0]
    assert SIGNER.verify(r["recommendations"][0]["decision_id"]).alias == "challenger"  # type: ignore[union-attr]


def test_control_customers_get_no_product_offers(default_context: ScoringContext) -> None:
    plain = _score(default_context, 300)
    ctx = _with_control(default_context, 0.3)
    held = _score(ctx, 300)
    control = [r for r in held if r["control"]]
    assert 0.2 < len(control) / len(held) < 0.4  # the share, by hash
    products = 0
    for before, after in zip(plain, held, strict=True):
        if not after["control"]:
            assert after["recommendations"] == before["recommendations"]
            continue
        kinds = [rec["kind"] for rec in after["recommendations"]]
        assert "product" not in kinds
        # What they would have got: the product offers, same ids' content but group control.
        assert [h["action_id"] for h in after["held_out"]] == [
            r["action_id"] for r in before["recommendations"] if r["kind"] == "product"]
        for h in after["held_out"]:
            d = SIGNER.verify(h["decision_id"])
            assert d is not None and d.group == "control" and d.action_id == h["action_id"]
            products += 1
        for rec in after["recommendations"]:
            assert SIGNER.verify(rec["decision_id"]).group == "treatment"  # type: ignore[union-attr]
    assert products > 0


def test_control_membership_is_a_stable_hash() -> None:
    group = ControlGroup(share=0.25, salt="2026q4")
    ids = [f"C{i:06d}" for i in range(4000)]
    members = [group.holds_out(c) for c in ids]
    assert members == [ControlGroup(share=0.25, salt="2026q4").holds_out(c) for c in ids]
    assert 0.22 < sum(members) / len(ids) < 0.28
    other = [ControlGroup(share=0.25, salt="2027q1").holds_out(c) for c in ids]
    assert other != members  # a new salt draws a new group
    assert not any(ControlGroup(share=0.0, salt="x").holds_out(c) for c in ids)
    # sha256(salt + id): first 8 bytes / 2^64 < share (the documented rule)
    import hashlib
    for c in ids[:50]:
        h = int.from_bytes(hashlib.sha256(("2026q4" + c).encode()).digest()[:8], "big")
        assert group.holds_out(c) == (h / 2**64 < 0.25)


def test_the_share_is_bounded() -> None:
    from pydantic import ValidationError
    with pytest.raises(ValidationError):
        ControlGroup(share=0.6)


def test_a_book_says_control_only_when_the_policy_has_a_group(
        default_context: ScoringContext) -> None:
    from app.book.options import BookOptions
    from app.book.output import OutputLayout

    options = BookOptions(nested=True)
    assert "control" not in OutputLayout(default_context, options).schema.names
    ctx = _with_control(default_context, 0.3)
    layout = OutputLayout(ctx, options)
    items = book_customers(50, seed=3)
    x = np.empty((50, len(ctx.schema)))
    for i, item in enumerate(items):
        ctx.schema.encode_into(item["features"], x[i])
    results = score_rows(ctx, x, [CustomerInput(customer_id=it["customer_id"],
                                                features=it["features"]) for it in items],
                         options.scoring(ctx))
    batch = layout.batch(results)
    assert batch.column("control").to_pylist() == [r["control"] for r in results]
    assert any(r["control"] for r in results)
    assert all("decision_id" not in rec for r in results for rec in r["recommendations"])
