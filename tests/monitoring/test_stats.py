"""The statistics against published values and hand-computed cases."""

from __future__ import annotations

import math

import pytest

from app.monitoring.alerts import Thresholds, alerts_of
from app.monitoring.decisions import decisions_of, payload_of
from app.monitoring.evaluation import acceptance, calibration, calibration_table
from app.monitoring.stats import PSI_EPSILON, ece, newcombe, psi, wilson


def test_psi_by_hand_and_with_empty_bins() -> None:
    assert psi([50, 50], [50, 50]) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert psi([100, 100], [70, 30]) == pytest.approx(expected)
    # An empty bin on one side counts as PSI_EPSILON, so the value stays finite.
    value = psi([100, 0], [50, 50])
    assert value is not None and math.isfinite(value)
    assert value == pytest.approx((0.5 - 1.0) * math.log(0.5) + (0.5 - PSI_EPSILON)
                                  * math.log(0.5 / PSI_EPSILON))
    assert psi([0, 0], [1, 2]) is None and psi([1, 2], [0, 0]) is None
    with pytest.raises(ValueError, match="same bins"):
        psi([1, 2], [1, 2, 3])


def test_wilson_and_newcombe_match_newcombe_1998() -> None:
    # Newcombe (1998), Statistics in Medicine 17:873, table II and its example: 56/70 - 48/80.
    low, high = wilson(81, 263)  # type: ignore[misc]
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    d, (low, high) = newcombe(56, 70, 48, 80)  # type: ignore[misc]
    assert round(d, 4) == 0.2
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    assert wilson(0, 0) is None and newcombe(1, 2, 0, 0) is None
    low, high = wilson(0, 10)  # type: ignore[misc]
    assert low == 0.0 and 0 < high < 0.31


def test_ece_and_calibration_bands() -> None:
    assert ece([(10, 5.0, 5), (10, 2.0, 4)]) == pytest.approx(2 / 20)
    table = calibration_table([(0.05, False)] * 90 + [(0.05, True)] * 10 + [(0.95, True)] * 5)
    assert [b["n"] for b in table["bands"]] == [100, 5]
    assert table["bands"][0]["observed"] == pytest.approx(0.1)
    assert table["ece"] == pytest.approx((abs(5.0 - 10) + abs(4.75 - 5)) / 105)


def _row(customer: str, action: str, outcome: str, **extra: object) -> dict[str, object]:
    return {"customer_id": customer, "action_id": action, "outcome": outcome,
            "occurred_on": "2026-12-01", **extra}


def test_acceptance_counts_decisions_not_outcome_rows() -> None:
    rows = [_row("a", "card", "offered", versions={"products": 1}),
            _row("a", "card", "accepted", versions={"products": 1}),
            _row("a", "card", "converted", versions={"products": 1}),
            _row("b", "card", "offered", versions={"products": 1}),
            _row("c", "card", "offered", versions={"products": 1}, group="control"),
            _row("c", "card", "converted", versions={"products": 1}, group="control")]
    (card,) = acceptance(decisions_of(rows))
    assert card["treatment"]["n"] == 2 and card["treatment"]["accepted"] == 1
    assert card["by_version"]["products v1"]["rate"] == 0.5
    assert card["uplift"]["treatment"]["rate"] == 0.5 and card["uplift"]["control"]["rate"] == 1
    assert card["versions_compared"] is None  # one version only


def test_hostile_decision_ids_are_read_as_none() -> None:
    for bad in ("", "d1.", "d1.!!!.x", "d1.bm90IGpzb24.x", "d2.e30.x", "d1.WzFd.x", None):
        assert payload_of(bad) is None
    # A record whose decision id does not decode falls back on its own columns.
    (d,) = decisions_of([{"decision_id": "d1.???.x", "customer_id": "a", "action_id": "card",
                          "outcome": "offered", "occurred_on": "2026-12-01"}])
    assert d.customer_id == "a" and d.versions == {}


def test_calibration_alert_needs_the_margin_and_the_count() -> None:
    # 600 customers predicted 0.1 of whom 30% churned: ECE 0.2 against a held-out 0.002.
    rows = [_row(str(i), "retain", "offered", versions={"churn": 3}, churn_probability=0.1)
            for i in range(600)]
    rows += [_row(str(i), "retain", "churned") for i in range(180)]
    cal = calibration(decisions_of(rows))
    assert cal["churn"]["churn v3"]["ece"] == pytest.approx(0.2)
    alerts = alerts_of([], cal, {3: 0.002}, Thresholds(calibration_margin=0.02))
    assert alerts == [{"kind": "calibration", "family": "churn", "version": 3, "value": 0.2,
                       "held_out": 0.002, "threshold": 0.022}]
    assert alerts_of([], cal, {3: 0.002}, Thresholds(calibration_margin=0.25)) == []
    assert alerts_of([], cal, {3: 0.002}, Thresholds(calibration_min_count=601)) == []
    assert alerts_of([], cal, {}, Thresholds()) == []  # no held-out figure: no alert


def test_decision_ids_made_by_scoring_read_back(default_context) -> None:  # type: ignore[no-untyped-def]
    from app.scoring.pipeline import CustomerInput, Options, score_rows
    from tests.customers import book_customers

    people = book_customers(20, seed=3)
    x = default_context.schema.matrix([p["features"] for p in people])
    results = score_rows(default_context, x, [CustomerInput(customer_id=p["customer_id"],
                                                            features=p["features"])
                                              for p in people], Options())
    recs = [(r["customer_id"], rec) for r in results for rec in r["recommendations"]]
    assert recs
    for customer, rec in recs:
        payload = payload_of(rec["decision_id"])
        assert payload is not None
        assert payload["c"] == customer and payload["a"] == rec["action_id"]
        assert payload["v"]["products"] == 1 and payload["al"] == "production"
        assert payload["pp"] == round(rec["propensity"], 4)


def test_no_churned_outcome_at_all_means_no_churn_calibration() -> None:
    rows = [_row(str(i), "retain", "offered", versions={"churn": 3}, churn_probability=0.1)
            for i in range(600)]
    cal = calibration(decisions_of(rows))
    assert cal["churn"] == {} and "no outcome 'churned'" in cal["churn_note"]
    assert alerts_of([], cal, {3: 0.002}, Thresholds()) == []
