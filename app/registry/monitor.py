"""Monitoring on the registry database: a replica's flusher (its counts written every
TIERWISE_MONITORING_FLUSH_SECONDS and at shutdown) and the report every reader shares
(/v1/monitoring, the gauges, /v1/status alerts, `tierwise report`)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy.orm import Session

from app.bundles.reference import Reference
from app.config import Settings
from app.monitoring.aggregate import ScoredCounts
from app.monitoring.alerts import Thresholds, alerts_of
from app.monitoring.decisions import decisions_of
from app.monitoring.drift import drift_report
from app.monitoring.evaluation import acceptance, calibration
from app.registry import monitoring as queries
from app.registry.database import is_unavailable

log = logging.getLogger("tierwise.monitoring")
Sessions = Callable[[], AbstractContextManager[Session]]


def thresholds_of(settings: Settings) -> Thresholds:
    """The alert thresholds the settings give (TIERWISE_ALERT_*)."""
    return Thresholds(psi=settings.alert_psi, psi_min_rows=settings.alert_psi_min_rows,
                      calibration_margin=settings.alert_calibration_margin,
                      calibration_min_count=settings.alert_calibration_min_count)


def replica_id() -> str:
    """This process's name in monitoring_counts: host, pid and a random suffix (a restarted
    process starts new rows; its earlier rows keep their counts)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class ReplicaMonitoring:
    """A replica's monitoring: a daemon thread that writes its cumulative counts every
    `interval` seconds and, every `report_interval` seconds, re-reads the report over the
    default window (alerts for /v1/status, the gauges; it reads the window's outcome rows,
    so it is the costlier part). A failed flush (database down) is retried at the next one:
    the counts wait in memory."""

    def __init__(self, counts: ScoredCounts, sessions: Sessions, *, interval: float,
                 retention_days: int, window_days: int, thresholds: Thresholds,
                 replica: str | None = None, report_interval: float | None = None,
                 on_report: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.counts = counts
        self.replica = replica or replica_id()
        self.window_days = window_days
        self.thresholds = thresholds
        self.latest: dict[str, Any] | None = None  # the last report the thread computed
        self.latest_at: dt.datetime | None = None
        self._sessions = sessions
        self._interval = interval
        self._report_interval = interval if report_interval is None else report_interval
        self._retention = retention_days
        self._on_report = on_report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tierwise-monitoring",
                                        daemon=True)
        self._lock = threading.Lock()

    def start(self) -> None:
        """Flush in the background from now on."""
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the thread, then flush one last time."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        try:
            self.flush()
        except Exception as exc:
            _log_failure(exc, "the last monitoring flush failed; its counts are lost")

    def flush(self) -> int:
        """Write today's (and any unwritten earlier day's) counts; returns rows written."""
        with self._lock:
            folded = self.counts.fold()
            today = dt.datetime.now(dt.UTC).date()
            with self._sessions() as session:
                n = queries.upsert_counts(session, replica=self.replica, counts=folded)
                queries.delete_before(session, day=today - dt.timedelta(days=self._retention))
                session.commit()
            self.counts.forget_before(today)
            return n

    def window(self, since: dt.date | None, until: dt.date | None) -> tuple[dt.date, dt.date]:
        """The days a report covers: the default window ends today (UTC)."""
        until = until or dt.datetime.now(dt.UTC).date()
        first = dt.date.fromordinal(max(1, until.toordinal() - (self.window_days - 1)))
        return since or first, until

    def report(self, *, since: dt.date | None = None, until: dt.date | None = None,
               family: str = "products") -> dict[str, Any]:
        """Flush this replica's counts, then the report over since..until from the database
        (every replica's counts, every recorded outcome)."""
        self.flush()
        since, until = self.window(since, until)
        with self._sessions() as session:
            rows = queries.outcome_records(session, since=since, until=until)
            return build_report(session, since=since, until=until,
                                thresholds=self.thresholds, outcome_rows=rows, family=family)

    def refresh(self) -> dict[str, Any]:
        """Recompute the default window's report and publish it (alerts, gauges)."""
        report = self.report()
        self.latest, self.latest_at = report, dt.datetime.now(dt.UTC)
        if self._on_report is not None:
            self._on_report(report)
        return report

    def _run(self) -> None:
        next_report = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + self._report_interval
                    self.refresh()
                else:
                    self.flush()
            except Exception as exc:  # the database may be down: the counts wait in memory
                _log_failure(exc, f"monitoring flush failed; counts kept in memory, retrying "
                                  f"in {self._interval:.0f} s")


def _log_failure(exc: BaseException, message: str) -> None:
    # An outage is expected and already reported by the registry's health: one line, no
    # traceback; anything else is a bug worth its traceback.
    if is_unavailable(exc):
        log.warning("%s: registry database unreachable", message)
    else:
        log.error(message, exc_info=exc)


def references_of(manifests: Mapping[tuple[str, int], Mapping[str, Any]]
                  ) -> dict[tuple[str, int], Reference | None]:
    """The training reference of each manifest (None when it has none, or a bad one)."""
    out: dict[tuple[str, int], Reference | None] = {}
    for key, manifest in manifests.items():
        raw = manifest.get("reference")
        try:
            out[key] = Reference.model_validate(raw) if raw else None
        except ValueError:
            out[key] = None
    return out


def held_out_ece(manifests: Mapping[tuple[str, int], Mapping[str, Any]]) -> dict[int, float]:
    """Churn version -> the held-out ECE its bundle measured (calibrated probabilities)."""
    out = {}
    for (family, version), manifest in manifests.items():
        value = (manifest.get("metrics", {}).get("calibrated") or {}).get("ece")
        if family == "churn" and isinstance(value, int | float):
            out[version] = float(value)
    return out


def build_report(session: Session, *, since: dt.date, until: dt.date, thresholds: Thresholds,
                 outcome_rows: Iterable[Mapping[str, Any]] = (),
                 family: str = "products") -> dict[str, Any]:
    """Drift, calibration, acceptance and alerts over since..until (inclusive)."""
    counts = queries.totals(session, since=since, until=until)
    churn_versions = set()
    decisions = decisions_of(outcome_rows)
    for d in decisions:
        if "churn" in d.versions:
            churn_versions.add(("churn", d.versions["churn"]))
    manifests = queries.manifests(session, {(f, v) for f, v, *_ in counts} | churn_versions)
    drift = drift_report(counts, references_of(manifests), psi_alert=thresholds.psi)
    cal = calibration(decisions)
    actions = acceptance(decisions, family=family)
    return {
        "window": {"since": since.isoformat(), "until": until.isoformat()},
        "drift": drift,
        "calibration": cal,
        "actions": actions,
        "alerts": alerts_of(drift, cal, held_out_ece(manifests), thresholds),
        "thresholds": thresholds.as_dict(),
    }
