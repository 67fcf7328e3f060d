"""Every query monitoring makes: a replica's counts upserted whole, totals summed over
replicas and days, the training references and held-out figures of the versions counted."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.registry.tables import MonitoringCountRow, OutcomeRow, VersionRow, utcnow

# (day, family, version, alias, series, bin) -> count, as app/monitoring/aggregate.py folds
Folded = Mapping[tuple[str, str, int, str, str, str], int]
_BATCH = 500


def upsert_counts(session: Session, *, replica: str, counts: Folded) -> int:
    """Write this replica's cumulative counts (absolute values); returns the rows written."""
    if not counts:
        return 0
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" \
        else sqlite.insert
    now = utcnow()
    rows = [{"replica": replica, "day": dt.date.fromisoformat(day), "family": family,
             "version": version, "alias": alias, "series": series, "bin": name,
             "count": n, "updated_at": now}
            for (day, family, version, alias, series, name), n in counts.items()]
    for start in range(0, len(rows), _BATCH):
        stmt = insert(MonitoringCountRow).values(rows[start:start + _BATCH])
        stmt = stmt.on_conflict_do_update(
            index_elements=["replica", "day", "family", "version", "alias", "series", "bin"],
            set_={"count": stmt.excluded.count, "updated_at": stmt.excluded.updated_at})
        session.execute(stmt)
    return len(rows)


def totals(session: Session, *, since: dt.date, until: dt.date,
           family: str | None = None) -> dict[tuple[str, int, str, str, str], int]:
    """(family, version, alias, series, bin) -> count summed over replicas and the days
    since..until (inclusive)."""
    t = MonitoringCountRow
    q = (select(t.family, t.version, t.alias, t.series, t.bin, func.sum(t.count))
         .where(t.day >= since, t.day <= until)
         .group_by(t.family, t.version, t.alias, t.series, t.bin))
    if family is not None:
        q = q.where(t.family == family)
    return {(f, int(v), a, s, b): int(n) for f, v, a, s, b, n in session.execute(q)}


def manifests(session: Session, wanted: Iterable[tuple[str, int]]
              ) -> dict[tuple[str, int], dict[str, Any]]:
    """The manifests of the (family, version) pairs that exist."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for family, version in sorted(set(wanted)):
        row = session.execute(select(VersionRow.manifest).where(
            VersionRow.family == family, VersionRow.version == version)).scalar_one_or_none()
        if row is not None:
            out[(family, version)] = row
    return out


def delete_before(session: Session, *, day: dt.date) -> int:
    """Remove counts of days before `day` (retention); returns the rows removed."""
    result = session.execute(delete(MonitoringCountRow).where(MonitoringCountRow.day < day))
    return int(getattr(result, "rowcount", 0) or 0)


def outcome_records(session: Session, *, since: dt.date, until: dt.date
                    ) -> list[dict[str, Any]]:
    """Outcome rows that occurred since..until, as plain records for
    app/monitoring/decisions.py."""
    t = OutcomeRow
    q = select(t.decision_id, t.customer_id, t.action_id, t.outcome, t.occurred_on,
               t.decided_on, t.versions, t.alias, t.group, t.churn_probability,
               t.propensity).where(t.occurred_on >= since, t.occurred_on <= until)
    return [{"decision_id": r.decision_id, "customer_id": r.customer_id,
             "action_id": r.action_id, "outcome": r.outcome,
             "occurred_on": r.occurred_on.isoformat(),
             "decided_on": r.decided_on.isoformat() if r.decided_on else None,
             "versions": r.versions, "alias": r.alias, "group": r.group,
             "churn_probability": r.churn_probability, "propensity": r.propensity}
            for r in session.execute(q)]
