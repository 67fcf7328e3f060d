"""Scored rows (file command, Spark) back in the API's result shape, to compare answers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from app.book.output import column_word


def as_api(row: Mapping[str, Any], classes: Sequence[str]) -> dict[str, Any]:
    """A nested scored row (--nested --explain) as the API's result for that customer."""
    return {
        "customer_id": row["customer_id"],
        "tier": {"booked": row["tier_booked"], "predicted": row["tier_predicted"],
                 "predicted_wealth": row["tier_predicted_wealth"],
                 "probabilities": {c: row[f"tier_p_{column_word(c)}"] for c in classes},
                 "upgrade_candidate": row["tier_upgrade_candidate"]},
        "churn": {"probability": row["churn_probability"], "band": row["churn_band"],
                  "reasons": row["churn_reasons"]},
        # `explanation` (with explain) is null for actions that are not products, where
        # the API leaves it out
        "recommendations": [{k: v for k, v in r.items() if k != "explanation" or v is not None}
                            for r in row["recommendations"]],
    }


def api_results(body: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """customer id → result of a POST /v1/score/batch answer (index and models left out)."""
    out = {}
    for r in body["results"]:
        assert "error" not in r, r
        # A book holds neither decision ids nor, with no control group in the policy (as in
        # these tests), the control flag: every customer is out of it.
        assert r["control"] is False and "held_out" not in r
        out[r["customer_id"]] = {k: v for k, v in r.items()
                                 if k not in ("index", "models", "control")}
        for rec in out[r["customer_id"]].get("recommendations", ()):
            rec.pop("decision_id")
    return out


def features_of(record: Mapping[str, Any], integers: Sequence[str],
                names: Sequence[str]) -> dict[str, Any]:
    """What a JSON client sends for a book row: the features it has, nulls left out, whole
    numbers of integer features as JSON integers (the synthetic book stores them as floats;
    a client sending 17.0 would read "17.0 days" in a recommendation's reason text)."""
    out = {}
    for n in names:
        v = record.get(n)
        if v is not None:
            out[n] = int(v) if n in integers and isinstance(v, float) else v
    return out
