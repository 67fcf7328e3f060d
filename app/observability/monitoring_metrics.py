"""Monitoring gauges: drift, acceptance and alerts, set from the last monitoring report a
replica computed (app/registry/monitor.py; every TIERWISE_MONITORING_FLUSH_SECONDS)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import Gauge

FEATURE_PSI = Gauge(
    "tierwise_monitoring_feature_psi",
    "PSI of a feature scored in the monitoring window against the version's training "
    "reference, by family, version, alias and feature.",
    ("family", "version", "alias", "feature"), multiprocess_mode="livemax")
SCORE_PSI = Gauge(
    "tierwise_monitoring_score_psi",
    "PSI of the churn probability histogram in the monitoring window against the version's "
    "training reference.",
    ("family", "version", "alias"), multiprocess_mode="livemax")
ACCEPTANCE = Gauge(
    "tierwise_monitoring_acceptance",
    "Share of treatment decisions accepted or converted in the monitoring window, by action "
    "and alias (from recorded outcomes).",
    ("action_id", "alias"), multiprocess_mode="livemax")
ALERTS = Gauge(
    "tierwise_monitoring_alerts",
    "Monitoring alerts open now (thresholds TIERWISE_ALERT_*), by kind: feature_drift, "
    "score_drift, calibration.",
    ("kind",), multiprocess_mode="livemax")
ALERT_KINDS = ("feature_drift", "score_drift", "calibration")


def sync_monitoring(report: Mapping[str, Any]) -> None:
    """Set the gauges from a monitoring report (series not in it are removed)."""
    for gauge in (FEATURE_PSI, SCORE_PSI, ACCEPTANCE):
        gauge.clear()
    for entry in report.get("drift", ()):
        where = (entry["family"], str(entry["version"]), entry["alias"])
        for f in entry.get("features", ()):
            if f["psi"] is not None:
                FEATURE_PSI.labels(*where, f["feature"]).set(f["psi"])
        score = entry.get("score")
        if score and score["psi"] is not None:
            SCORE_PSI.labels(*where).set(score["psi"])
    for action in report.get("actions", ()):
        for alias, rate in action["by_alias"].items():
            if rate["rate"] is not None:
                ACCEPTANCE.labels(action["action_id"], alias).set(rate["rate"])
    kinds = [a["kind"] for a in report.get("alerts", ())]
    for kind in ALERT_KINDS:
        ALERTS.labels(kind).set(kinds.count(kind))
