"""Decision ids and the control group in HTTP responses (single and batch), with the
settings that govern them: TIERWISE_DECISION_SECRET signs them, TIERWISE_DECISION_IDS=false
leaves them out."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.decisions.policy import ControlGroup
from app.main import create_app
from app.outcomes.decision_ids import DecisionSigner
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.customers import book_customers

SECRET = "an operator's decision secret"


def _serve(ctx: ScoringContext, **settings: Any) -> RunningServer:
    return RunningServer(create_app(Settings(auth_enabled=False, **settings),
                                    live=StaticContexts(ctx)))


@pytest.fixture(scope="module")
def controlled(default_context: ScoringContext) -> ScoringContext:
    policy = default_context.policy.model_copy(
        update={"control_group": ControlGroup(share=0.5, salt="http")})
    return dataclasses.replace(default_context, policy=policy)


def test_responses_carry_ids_signed_with_the_setting(controlled: ScoringContext) -> None:
    signer = DecisionSigner.from_text(SECRET)
    items = book_customers(40, seed=5)
    with _serve(controlled, decision_secret=SECRET) as server:
        one = httpx.post(f"{server.url}/v1/score", json={**items[0], "context": {
            "as_of": "2026-11-02"}}).json()
        batch = httpx.post(f"{server.url}/v1/score/batch", json={"items": items}).json()
    recs = one["recommendations"] + one.get("held_out", [])
    assert recs and all(signer.verify(r["decision_id"]).as_of == dt.date(2026, 11, 2)  # type: ignore[union-attr]
                        for r in recs)
    results = batch["results"]
    assert {r["control"] for r in results} == {True, False}
    for r in results:
        for rec in r["recommendations"]:
            assert signer.verify(rec["decision_id"]).group == "treatment"  # type: ignore[union-attr]
        if r["control"]:
            assert all(rec["kind"] != "product" for rec in r["recommendations"])
            assert all(signer.verify(h["decision_id"]).group == "control"  # type: ignore[union-attr]
                       for h in r["held_out"])
        else:
            assert "held_out" not in r


def test_decision_ids_can_be_switched_off(default_context: ScoringContext) -> None:
    items = book_customers(20, seed=5)
    with _serve(default_context, decision_ids=False) as server:
        batch = httpx.post(f"{server.url}/v1/score/batch", json={"items": items}).json()
    recs = [rec for r in batch["results"] for rec in r["recommendations"]]
    assert recs and not any("decision_id" in rec for rec in recs)
    assert all(r["control"] is False for r in batch["results"])
