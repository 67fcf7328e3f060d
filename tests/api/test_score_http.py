"""The scoring API over real HTTP: uvicorn on 127.0.0.1, httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.bundles.io import Bundle
from app.bundles.manifest import FAMILIES
from app.config import Settings, get_settings
from app.engine.compiled import fastest_evaluator
from app.main import create_app
from app.scoring.context import ScoringContext, build_context
from app.scoring.families import calibrate
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer
from tests.customers import book_customers
from tests.support.engine import warm_cache

pytestmark = pytest.mark.usefixtures("no_auth")


@pytest.fixture(scope="module")
def no_auth() -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("TIERWISE_AUTH_ENABLED", "false")
    get_settings.cache_clear()
    yield
    mp.undo()
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def served_context(default_bundles: dict[str, Bundle], walker_library: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> ScoringContext:
    """The context as replicas serve it: on the native tree walker (checked below against
    the bundles' own Booster.predict outputs)."""
    ctx = build_context(default_bundles, dict.fromkeys(FAMILIES, 1))
    cache = warm_cache(walker_library, tmp_path_factory.mktemp("cc")).parent
    ctx.use_evaluator(fastest_evaluator(ctx.layout, cache_dir=cache))
    return ctx


def test_the_api_is_served_on_the_native_evaluator(served_context: ScoringContext) -> None:
    assert served_context.evaluator.name == "treewalk"


@pytest.fixture(scope="module")
def server(served_context: ScoringContext, no_auth: None) -> Iterator[RunningServer]:
    settings = Settings(auth_enabled=False, max_body_bytes=2_000_000, max_batch_items=500)
    app = create_app(settings, live=StaticContexts(served_context))
    with RunningServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def customers() -> list[dict[str, Any]]:
    return book_customers(40, seed=11)


def _error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    return body["error"]


def _fields(err: dict[str, Any]) -> dict[str, str]:
    return {d["field"]: d["problem"] for d in err["details"]}


def test_single_score_has_every_part(client: httpx.Client, customers: list[dict[str, Any]],
                                     default_context: ScoringContext) -> None:
    resp = client.post("/v1/score", json=customers[0])
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["customer_id"] == customers[0]["customer_id"]
    assert body["request_id"] == resp.headers["x-request-id"]
    tier = body["tier"]
    assert set(tier["probabilities"]) == set(default_context.policy.tier_names)
    assert abs(sum(tier["probabilities"].values()) - 1) < 1e-9
    assert tier["upgrade_candidate"] == (
        default_context.tier_rank[tier["predicted"]] > default_context.tier_rank[tier["booked"]]
    )
    assert 0 <= body["churn"]["probability"] <= 1
    assert body["churn"]["band"] in {b.band for b in default_context.policy.churn_bands}
    assert 1 <= len(body["churn"]["reasons"]) <= 3  # reasons are on by default
    assert len(body["recommendations"]) <= default_context.policy.default_top_n
    for rec in body["recommendations"]:
        assert rec["priority"] == pytest.approx(
            rec["propensity"] * rec["context_weight"] * rec["value"] * rec["lever"], rel=1e-12)
        assert rec["reasons"]
        if rec["kind"] == "product":
            assert rec["explanation"]
            assert all(r["text"] in rec["reasons"] for r in rec["explanation"])
    # "explain": false turns them off.
    off = client.post("/v1/score", json={**customers[0], "options": {"explain": False}}).json()
    assert off["churn"]["reasons"] == []
    assert all(r.get("explanation") is None for r in off["recommendations"])
    assert off["churn"]["probability"] == body["churn"]["probability"]
    assert set(body["models"]) == {"features", "tier", "churn", "products", "catalog", "policy"}
    assert "suppressed" not in body


def test_request_id_is_taken_from_the_caller(client: httpx.Client,
                                             customers: list[dict[str, Any]]) -> None:
    resp = client.post("/v1/score", json=customers[1], headers={"X-Request-ID": "core-42.a"})
    assert resp.headers["x-request-id"] == "core-42.a"
    assert resp.json()["request_id"] == "core-42.a"


def test_partial_request_returns_only_the_parts_asked(client: httpx.Client,
                                                      customers: list[dict[str, Any]]) -> None:
    body = client.post("/v1/score", json={**customers[2], "options": {"parts": ["churn"]}}).json()
    assert "churn" in body and "tier" not in body and "recommendations" not in body
    body = client.post("/v1/score", json={**customers[2], "options": {"parts": ["tier"]}}).json()
    assert "tier" in body and "churn" not in body and "recommendations" not in body


def test_explain_gives_readable_reasons(client: httpx.Client,
                                        customers: list[dict[str, Any]]) -> None:
    body = client.post("/v1/score", json={**customers[3], "options": {"explain": True}}).json()
    reasons = body["churn"]["reasons"]
    assert 1 <= len(reasons) <= 3
    for r in reasons:
        assert r["direction"] in {"raises_risk", "lowers_risk"}
        assert (r["contribution"] > 0) == (r["direction"] == "raises_risk")
        assert r["text"] and "{" not in r["text"]
    contributions = [abs(r["contribution"]) for r in reasons]
    assert contributions == sorted(contributions, reverse=True)


def test_every_action_is_recommended_or_suppressed_with_a_reason(
        client: httpx.Client, customers: list[dict[str, Any]],
        default_context: ScoringContext) -> None:
    body = client.post("/v1/score", json={
        **customers[4],
        "context": {"channel": "branch", "as_of": "2026-11-23", "history": [
            {"action_id": "credit_card", "date": "2026-11-20", "outcome": "declined"}]},
        "options": {"include_suppressed": True, "top_n": 2},
    }).json()
    recs = [r["action_id"] for r in body["recommendations"]]
    suppressed = {s["action_id"]: s["reason_code"] for s in body["suppressed"]}
    assert len(recs) <= 2
    assert sorted(recs + list(suppressed)) == sorted(a.id for a in default_context.catalog.actions)
    assert all(suppressed.values())
    assert "credit_card" not in recs


def test_batch_keeps_order_isolates_bad_items_and_equals_single(
        client: httpx.Client, customers: list[dict[str, Any]]) -> None:
    items = [dict(c) for c in customers[:10]]
    items[3] = {**items[3], "features": {**items[3]["features"], "age": 7}}
    items[6] = {"customer_id": "broken", "features": "not an object"}
    options = {"explain": True, "include_suppressed": True}
    resp = client.post("/v1/score/batch", json={"items": items, "options": options})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["scored"] == 8 and body["failed"] == 2
    results = body["results"]
    assert [r["index"] for r in results] == list(range(10))
    assert results[3]["error"]["code"] == "invalid_feature"
    assert _fields(results[3]["error"]) == {"items[3].features.age": "must be at least 18 "
                                            "(allowed 18 to 120 years)"}
    assert results[6]["error"]["code"] == "invalid_request"
    assert results[6]["customer_id"] == "broken"
    for i in (0, 1, 2, 4, 5, 7, 8, 9):
        single = client.post("/v1/score", json={**items[i], "options": options}).json()
        batch = results[i]
        assert batch["customer_id"] == items[i]["customer_id"]
        for part in ("tier", "churn", "recommendations", "suppressed"):
            assert batch[part] == single[part]


def test_api_equals_the_bundles_own_lightgbm_outputs(
        client: httpx.Client, customers: list[dict[str, Any]],
        default_context: ScoringContext) -> None:
    ctx = default_context
    items = customers[:25]
    body = client.post("/v1/score/batch", json={
        "items": items, "options": {"include_suppressed": True, "top_n": 50}}).json()
    x = np.vstack([ctx.schema.row(c["features"]) for c in items])
    tier_model = ctx.tier.model
    tier_p = tier_model.booster.predict(x[:, ctx.schema.columns(tier_model.feature_names)])
    wealth = None
    if ctx.constants.wealth is not None:  # tiers from wealth under the live thresholds
        aum = x[:, ctx.constants.aum_col]
        tier_p, wealth = ctx.constants.wealth.many(tier_p, aum)
        assert np.all(np.asarray(wealth) >= np.nan_to_num(aum))
    churn_model = ctx.churn.model
    raw = churn_model.booster.predict(x[:, ctx.schema.columns(churn_model.feature_names)],
                                      raw_score=True)
    churn_p = calibrate(ctx.churn.calibrator, raw, churn_model.booster.predict(
        x[:, ctx.schema.columns(churn_model.feature_names)]))
    for i, result in enumerate(body["results"]):
        got = [result["tier"]["probabilities"][c] for c in ctx.constants.classes]
        np.testing.assert_allclose(got, tier_p[i], rtol=0, atol=1e-9)
        if wealth is not None:
            assert result["tier"]["predicted_wealth"] == pytest.approx(wealth[i], rel=1e-12)
        else:
            assert result["tier"]["predicted_wealth"] is None
        assert abs(result["churn"]["probability"] - churn_p[i]) <= 1e-9
        kept_out = [s["action_id"] for s in result["suppressed"]
                    if s["reason_code"] in ("assessment_missing", "assessment_expired")]
        for rec in result["recommendations"]:
            action = next(a for a in ctx.catalog.actions if a.id == rec["action_id"])
            if action.kind == "service":  # the P of a product the assessment keeps out
                models = [ctx.products.models[a.propensity_model] for a in ctx.catalog.actions
                          if a.id in kept_out and a.propensity_model]
                expected = min((m.booster.predict(x[i:i + 1, ctx.schema.columns(
                    m.feature_names)])[0] for m in models),
                    key=lambda p: abs(p - rec["propensity"]))
            elif action.propensity_model:
                model = ctx.products.models[action.propensity_model]
                expected = model.booster.predict(x[i:i + 1, ctx.schema.columns(
                    model.feature_names)])[0]
            else:
                expected = churn_p[i]
            assert abs(rec["propensity"] - expected) <= 1e-9


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        ({"agee": 40}, "features.agee", "is not a known feature"),
        ({"age": "forty"}, "features.age", "must be an integer"),
        ({"age": 40.5}, "features.age", "must be an integer"),
        ({"age": 150}, "features.age", "must be at most 120 (allowed 18 to 120 years)"),
        ({"payroll_customer": 1}, "features.payroll_customer", "must be true or false"),
        ({"risk_profile": "C9"}, "features.risk_profile", "'C9' is not one of C1, C2, C3, C4, C5"),
        ({"aum_total": None}, "features.aum_total", "is required and may not be null"),
        ({"aum_total": -5}, "features.aum_total",
         "must be at least 0 (allowed 0 to 10000000000 CNY)"),
    ],
)
def test_bad_features_are_named(client: httpx.Client, customers: list[dict[str, Any]],
                                change: dict[str, Any], field: str, problem: str) -> None:
    item = {**customers[0], "features": {**customers[0]["features"], **change}}
    err = _error(client.post("/v1/score", json=item), 422, "invalid_feature")
    assert _fields(err) == {field: problem}


def test_missing_required_feature(client: httpx.Client, customers: list[dict[str, Any]]) -> None:
    features = dict(customers[0]["features"])
    del features["age"]
    err = _error(client.post("/v1/score", json={"customer_id": "c", "features": features}),
                 422, "invalid_feature")
    assert _fields(err) == {"features.age": "is required"}


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_rejected(client: httpx.Client, customers: list[dict[str, Any]],
                                       token: str) -> None:
    import json

    features = dict(customers[0]["features"])
    features["balance_trend_90d"] = 0.123456789
    raw = json.dumps({"customer_id": "c", "features": features}).replace("0.123456789", token)
    resp = client.post("/v1/score", content=raw, headers={"content-type": "application/json"})
    assert resp.status_code in (400, 422)
    assert resp.json()["error"]["details"]
    if resp.status_code == 422:
        assert "features.balance_trend_90d" in _fields(resp.json()["error"])


@pytest.mark.parametrize("field", ["age", "loans_other_banks", "monthly_salary"])
def test_a_huge_integer_is_a_field_error_not_a_crash(
        client: httpx.Client, customers: list[dict[str, Any]], field: str) -> None:
    # 10**400 does not fit a float: it used to raise OverflowError (a 500) in the check.
    import json

    features = {**customers[0]["features"], field: 987654321987}
    raw = json.dumps({"customer_id": "c", "features": features}).replace(
        "987654321987", "1" + "0" * 400)
    resp = client.post("/v1/score", content=raw, headers={"content-type": "application/json"})
    err = _error(resp, 422, "invalid_feature")
    assert f"features.{field}" in _fields(err)


def test_envelope_errors(client: httpx.Client, customers: list[dict[str, Any]]) -> None:
    _error(client.post("/v1/score", content=b"{not json",
                       headers={"content-type": "application/json"}), 400, "invalid_json")
    err = _error(client.post("/v1/score", json={**customers[0], "extra": 1}), 422,
                 "invalid_request")
    assert "extra" in _fields(err)
    err = _error(client.post("/v1/score", json={**customers[0], "customer_id": ""}), 422,
                 "invalid_request")
    assert "customer_id" in _fields(err)
    err = _error(client.post("/v1/score", json={**customers[0], "options": {"top_n": 0}}), 422,
                 "invalid_request")
    assert "options.top_n" in _fields(err)
    err = _error(client.post("/v1/score", json={
        **customers[0], "context": {"as_of": "2026-01-01", "history": [
            {"action_id": "sip_fund", "date": "2026-02-01", "outcome": "offered"}]}}),
        422, "invalid_request")
    assert "context.history[0].date" in _fields(err)
    pinned = {**customers[0], "options": {"pin": {"churn": "99"}}}
    err = _error(client.post("/v1/score", json=pinned), 404, "not_found")
    assert "options.pin.churn" in _fields(err)
    _error(client.get("/v1/nothing-here"), 404, "not_found")
    _error(client.get("/v1/score"), 405, "method_not_allowed")


def test_size_limits(client: httpx.Client, customers: list[dict[str, Any]]) -> None:
    big = {"items": [customers[0]] * 501}
    err = _error(client.post("/v1/score/batch", json=big), 413, "payload_too_large")
    assert "items" in _fields(err)
    huge = b'{"customer_id": "c", "features": {"pad": "' + b"x" * 2_100_000 + b'"}}'
    _error(client.post("/v1/score", content=huge, headers={"content-type": "application/json"}),
           413, "payload_too_large")

    def chunks() -> Iterator[bytes]:
        yield b'{"customer_id": "c", "features": {"pad": "'
        for _ in range(30):
            yield b"y" * 100_000
        yield b'"}}'

    _error(client.post("/v1/score", content=chunks(),
                       headers={"content-type": "application/json"}), 413, "payload_too_large")
