"""Tier from predicted wallet wealth: the live policy's thresholds decide the tier (no
retraining), wealth is never below the booked AUM, single rows and batches agree, and
hostile wealth manifests are refused naming the field."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from app.bundles.io import Bundle, build_bundle, parse_bundle
from app.bundles.manifest import WealthModel
from app.errors import BundleRejected
from app.scoring.context import ScoringContext, build_context
from app.scoring.families import TierFamily
from app.scoring.loader import load_family
from app.scoring.pipeline import CustomerInput, Options, score_rows
from app.scoring.wealth import WealthTiers, knots
from app.training.bundling import config_bundle
from app.training.default_config import default_policy
from tests.customers import book_customers
from tests.support.wealth import wealth_tier_bundle

TIER_ONLY = Options(parts=frozenset({"tier"}))
EVERYTHING = Options(parts=frozenset({"tier", "churn", "recommendations"}))


def _policy(hnw: float, private: float) -> Bundle:
    doc: dict[str, Any] = default_policy().model_dump(mode="json")
    mins = {"hnw": hnw, "private": private}
    doc["tiers"] = [{**t, "min_aum": mins.get(t["tier"], t["min_aum"])} for t in doc["tiers"]]
    return config_bundle(family="policy", document=doc, label=f"hnw at {hnw:g}",
                         created_at="2026-01-01T00:00:00+00:00")


def _context(default_bundles: dict[str, Bundle], policy: Bundle | None = None) -> ScoringContext:
    bundles = {**default_bundles, "tier": wealth_tier_bundle()}
    if policy is not None:
        bundles["policy"] = policy
    return build_context(bundles, dict.fromkeys(bundles, 1))


@pytest.fixture(scope="module")
def ctx(default_bundles: dict[str, Bundle]) -> ScoringContext:
    return _context(default_bundles)


@pytest.fixture(scope="module")
def customers() -> list[CustomerInput]:
    items = book_customers(600, seed=41)
    rng = np.random.default_rng(42)
    out = []
    for i, item in enumerate(items):
        f = dict(item["features"])
        r = rng.random()
        if r < 0.05:
            f["aum_total"] = float(rng.choice([0.0, 5e8, 2e9]))  # nothing, or far beyond
        elif r < 0.15:
            f["aum_total"] = float(rng.choice([1e5, 1e6, 6e6, 999_999.99]))  # at thresholds
        out.append(CustomerInput(customer_id=f"c{i}", features=f))
    return out


def _score(ctx: ScoringContext, customers: list[CustomerInput],
           options: Options = TIER_ONLY) -> list[dict[str, Any]]:
    return score_rows(ctx, ctx.schema.matrix([c.features for c in customers]), customers,
                      options)


def test_the_context_reads_tiers_from_wealth(ctx: ScoringContext) -> None:
    assert isinstance(ctx.tier, TierFamily) and ctx.tier.wealth is not None
    assert ctx.tier.classes == () and ctx.tier.model.objective == "regression"
    assert ctx.constants.wealth is not None
    assert ctx.constants.classes == ctx.policy.tier_names


def test_never_below_booked_and_probabilities_sum_to_one(
        ctx: ScoringContext, customers: list[CustomerInput]) -> None:
    rank = ctx.tier_rank
    for cust, r in zip(customers, _score(ctx, customers), strict=True):
        t = r["tier"]
        aum = cust.features["aum_total"]
        assert t["predicted_wealth"] >= aum
        assert math.isfinite(t["predicted_wealth"])
        assert rank[t["predicted"]] >= rank[t["booked"]]
        probs = t["probabilities"]
        assert list(probs) == list(ctx.policy.tier_names)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-9)
        assert all(0.0 <= p <= 1.0 for p in probs.values())
        for name, p in probs.items():
            if rank[name] < rank[t["booked"]]:
                assert p == 0.0, (name, aum)
        assert t["upgrade_candidate"] == (rank[t["predicted"]] > rank[t["booked"]])
        if aum >= 5e8:  # far beyond the wealth the model expects: worth what is booked
            assert t["predicted"] == t["booked"] == "private"


def test_single_rows_equal_the_batch(ctx: ScoringContext,
                                     customers: list[CustomerInput]) -> None:
    for options in (TIER_ONLY, EVERYTHING):
        batch = _score(ctx, customers[:120], options)
        alone = [_score(ctx, [c], options)[0] for c in customers[:120]]
        assert alone == batch
        assert json.dumps(alone) == json.dumps(batch)  # signed zeros too


def test_new_thresholds_change_predicted_tiers_without_retraining(
        default_bundles: dict[str, Bundle], ctx: ScoringContext,
        customers: list[CustomerInput]) -> None:
    strict = _context(default_bundles, _policy(hnw=6e6, private=3e7))
    assert strict.versions["tier"].sha256 == ctx.versions["tier"].sha256
    before, after = _score(ctx, customers), _score(strict, customers)
    moved = 0
    for b, a in zip(before, after, strict=True):
        # The wealth is the model's, whatever the policy says.
        assert a["tier"]["predicted_wealth"] == b["tier"]["predicted_wealth"]
        if b["tier"]["predicted"] == "hnw" and a["tier"]["predicted"] != "hnw":
            moved += 1
            assert a["tier"]["predicted"] == "affluent"
    hnw_before = sum(r["tier"]["predicted"] == "hnw" for r in before)
    hnw_after = sum(r["tier"]["predicted"] == "hnw" for r in after)
    assert moved > 0 and hnw_after < hnw_before
    for cust, r in zip(customers, after, strict=True):
        aum = cust.features["aum_total"]
        booked = [t.tier for t in strict.policy.tiers if aum >= t.min_aum][-1]
        assert r["tier"]["booked"] == booked
        assert strict.tier_rank[r["tier"]["predicted"]] >= strict.tier_rank[booked]
        if r["tier"]["predicted"] == "hnw":
            assert r["tier"]["probabilities"]["hnw"] > 0


def test_legacy_multiclass_tier_still_serves(default_bundles: dict[str, Bundle]) -> None:
    from tests.registry.bundles import tier_bundle

    bundles = {**default_bundles, "tier": tier_bundle()}  # classes = the policy's tiers
    legacy = build_context(bundles, dict.fromkeys(bundles, 1))
    assert legacy.tier.wealth is None and legacy.constants.wealth is None
    items = book_customers(20, seed=43)
    customers = [CustomerInput(customer_id=i["customer_id"], features=i["features"])
                 for i in items]
    batch = _score(legacy, customers)
    assert batch == [_score(legacy, [c])[0] for c in customers]
    for r in batch:
        assert r["tier"]["predicted_wealth"] is None
        assert sum(r["tier"]["probabilities"].values()) == pytest.approx(1.0)


# ------------------------------------------------------------------ the distribution itself


def test_knots_continue_the_end_segments_to_zero_and_one() -> None:
    q, p = knots(WealthModel(residual_quantiles=(-1.0, 0.0, 1.0), probabilities=(0.1, 0.5, 0.9)))
    assert p == [0.0, 0.1, 0.5, 0.9, 1.0]
    assert q == pytest.approx([-1.25, -1.0, 0.0, 1.0, 1.25])
    q, p = knots(WealthModel(residual_quantiles=(-2.0, 3.0), probabilities=(0.0, 1.0)))
    assert (q, p) == ([-2.0, 3.0], [0.0, 1.0])


def test_one_and_many_agree_on_the_edges() -> None:
    model = WealthModel(residual_quantiles=(-1.0, -0.2, 0.0, 0.3, 1.5),
                        probabilities=(0.01, 0.2, 0.5, 0.8, 0.99))
    tiers = WealthTiers.of(model, [0.0, 1e5, 1e6, 6e6])
    rng = np.random.default_rng(3)
    mu = np.concatenate([rng.normal(12, 2, 400), [0.0, 13.8, 13.815510557964274, 30.0, -3.0]])
    aum = np.concatenate([np.exp(rng.normal(11, 2.5, 400)), [math.nan, 1e6, 0.0, 1e5, 5.0]])
    aum[rng.random(len(aum)) < 0.1] = math.nan
    probs, wealth = tiers.many(mu, aum)
    for i in range(len(mu)):
        p1, w1 = tiers.one(float(mu[i]), float(aum[i]))
        assert p1 == probs[i] and w1 == wealth[i], i
        assert sum(p1) == pytest.approx(1.0, abs=1e-12)
        floor = aum[i] if aum[i] > 0 else 0.0
        assert w1 >= floor
        booked = int(np.searchsorted([0.0, 1e5, 1e6, 6e6], floor, side="right")) - 1
        assert all(p == 0.0 for p in p1[:booked])
    # Far above the support: all mass on the booked tier, wealth = AUM.
    assert tiers.one(10.0, 1e9) == ([0.0, 0.0, 0.0, 1.0], 1e9)
    assert tiers.one(10.0, 2e5) == ([0.0, 1.0, 0.0, 0.0], 2e5)


# ------------------------------------------------------------------ hostile manifests


def _with_wealth(wealth: Any, **extra: Any) -> tuple[bytes, dict[str, bytes]]:
    good = wealth_tier_bundle()
    fields = json.loads(good.manifest_bytes)
    fields["wealth"] = wealth
    fields.update(extra)
    return (json.dumps(fields, indent=1, sort_keys=True) + "\n").encode(), dict(good.files)


GOOD = {"transform": "log1p", "residual_quantiles": [-1.0, 0.0, 1.0],
        "probabilities": [0.1, 0.5, 0.9]}


@pytest.mark.parametrize(("wealth", "field", "words"), [
    ({**GOOD, "residual_quantiles": [-1.0, 1.0, 0.5]}, "manifest.wealth.residual_quantiles",
     "increase"),
    ({**GOOD, "residual_quantiles": [-1.0, 0.0, 0.0]}, "manifest.wealth.residual_quantiles",
     "increase"),
    ({**GOOD, "residual_quantiles": [-1.0, float("nan"), 1.0]},
     "manifest.wealth.residual_quantiles", "finite"),
    ({**GOOD, "residual_quantiles": [-1.0, 0.0, float("inf")]},
     "manifest.wealth.residual_quantiles", "finite"),
    ({**GOOD, "probabilities": [0.5, 0.1, 0.9]}, "manifest.wealth.probabilities", "increase"),
    ({**GOOD, "probabilities": [-0.1, 0.5, 0.9]}, "manifest.wealth.probabilities", "[0, 1]"),
    ({**GOOD, "probabilities": [0.1, 0.5, 1.5]}, "manifest.wealth.probabilities", "[0, 1]"),
    ({**GOOD, "probabilities": [0.1, 0.9]}, "manifest.wealth", "one quantile per probability"),
    ({**GOOD, "residual_quantiles": [0.0]}, "manifest.wealth.residual_quantiles", "at least 2"),
    ({**GOOD, "transform": "log"}, "manifest.wealth.transform", "log1p"),
    ({**GOOD, "extra": 1}, "manifest.wealth.extra", "not permitted"),
    ("lots", "manifest.wealth", ""),
])
def test_hostile_wealth_manifests_are_refused(wealth: Any, field: str, words: str) -> None:
    manifest, files = _with_wealth(wealth)
    with pytest.raises(BundleRejected) as info:
        parse_bundle(manifest, files)
    fields = [d.field for d in info.value.details]
    assert field in fields, info.value.details
    problem = info.value.details[fields.index(field)].problem
    assert words in problem, problem


def test_wealth_with_classes_or_outside_tier_is_refused() -> None:
    manifest, files = _with_wealth(GOOD, classes=["mass", "affluent"])
    with pytest.raises(BundleRejected) as info:
        parse_bundle(manifest, files)
    assert "wealth belongs to a tier bundle without classes" in str(info.value.details)


def test_a_wealth_manifest_on_a_multiclass_model_is_refused() -> None:
    from tests.registry.bundles import tier_bundle

    legacy = tier_bundle()
    fields = json.loads(legacy.manifest_bytes)
    fields.pop("files")
    fields["classes"] = []
    fields["wealth"] = GOOD
    bundle = build_bundle(fields, dict(legacy.files))
    with pytest.raises(BundleRejected) as info:
        load_family(bundle)
    assert "regression" in info.value.message
    assert info.value.details[0].field == "tier.txt"


def test_a_tampered_model_fails_the_replay_of_mu() -> None:
    good = wealth_tier_bundle()
    fields = json.loads(good.manifest_bytes)
    fields.pop("files")
    row = fields["reference_rows"][0]
    assert set(row["expected"]) == {"mu"}
    row["expected"]["mu"] += 1e-6
    with pytest.raises(BundleRejected) as info:
        load_family(build_bundle(fields, dict(good.files)))
    assert info.value.details[0].field == "reference_rows[0].expected.mu"
