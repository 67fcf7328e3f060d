"""Alerts: documented thresholds (settings TIERWISE_ALERT_*) read against the drift and
calibration reports. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Thresholds:
    """When monitoring raises an alert (docs/monitoring.md)."""

    psi: float = 0.25
    psi_min_rows: int = 500
    calibration_margin: float = 0.02
    calibration_min_count: int = 500

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def alerts_of(drift: Sequence[Mapping[str, Any]], calibration: Mapping[str, Any],
              held_out_ece: Mapping[int, float], t: Thresholds) -> list[dict[str, Any]]:
    """One alert per drifted feature or score (PSI above t.psi, with enough rows) and per
    churn version whose observed ECE exceeds its held-out ECE by more than the margin."""
    out: list[dict[str, Any]] = []
    for entry in drift:
        if not entry.get("reference") or entry["rows"] < t.psi_min_rows:
            continue
        where = {"family": entry["family"], "version": entry["version"],
                 "alias": entry["alias"]}
        for f in entry["features"]:
            if f["psi"] is not None and f["psi"] > t.psi:
                out.append({"kind": "feature_drift", **where, "feature": f["feature"],
                            "value": round(f["psi"], 4), "threshold": t.psi})
        score = entry.get("score")
        if score and score["psi"] is not None and score["psi"] > t.psi:
            out.append({"kind": "score_drift", **where, "value": round(score["psi"], 4),
                        "threshold": t.psi})
    for label, table in dict(calibration.get("churn") or {}).items():
        version = int(label.rsplit("v", 1)[1])
        observed, baseline = table.get("ece"), held_out_ece.get(version)
        if observed is None or baseline is None or table["n"] < t.calibration_min_count:
            continue
        if observed > baseline + t.calibration_margin:
            out.append({"kind": "calibration", "family": "churn", "version": version,
                        "value": round(observed, 4), "held_out": baseline,
                        "threshold": round(baseline + t.calibration_margin, 6)})
    return out
