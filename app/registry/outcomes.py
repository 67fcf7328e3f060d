"""Outcomes in the registry database: record (idempotently), list, purge, and read back.

Every query on the outcomes and decision_secrets tables lives here. The request owns the
transaction: these functions only add, flush and query. Monitoring reads outcomes through
`outcome_records` (each row with its decision's payload: versions, alias, group, rank,
churn probability "p" and propensity "pp").
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.errors import FieldProblem, InvalidRequest, TierwiseError
from app.outcomes.decision_ids import DECIDING_FAMILIES, DecisionSigner
from app.registry.auth_keys import Principal
from app.registry.tables import Base, DecisionSecretRow, LedgerRow, OutcomeRow, utcnow

# What a recorded outcome means to the contact policy (app/decisions/contact_policy.py):
# a conversion is an acceptance; a churn is no contact event.
CONTACT_OUTCOME = {"offered": "offered", "declined": "declined", "accepted": "accepted",
                   "converted": "accepted"}


class OutcomesFull(TierwiseError):
    """The outcomes table holds TIERWISE_OUTCOMES_MAX_ROWS rows: nothing more is stored
    until retention frees room or the limit is raised."""

    status = 507
    code = "outcomes_full"


@dataclass(frozen=True, slots=True)
class OutcomeIn:
    """One outcome as posted: by decision id, or by customer, action and day."""

    outcome: str
    date: dt.date
    decision_id: str | None = None
    customer_id: str | None = None
    action_id: str | None = None


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """A recorded outcome with its decision's payload (None fields: recorded by customer)."""

    id: int
    customer_id: str
    action_id: str
    outcome: str
    occurred_on: dt.date
    recorded_at: dt.datetime
    decision_id: str | None
    decided_on: dt.date | None
    versions: dict[str, int] | None
    alias: str | None
    group: str | None
    rank: int | None
    churn_probability: float | None  # the payload's "p"
    propensity: float | None  # the payload's "pp"

    @classmethod
    def of(cls, row: OutcomeRow) -> OutcomeRecord:
        return cls(id=row.id, customer_id=row.customer_id, action_id=row.action_id,
                   outcome=row.outcome, occurred_on=row.occurred_on,
                   recorded_at=row.recorded_at, decision_id=row.decision_id,
                   decided_on=row.decided_on, versions=row.versions, alias=row.alias,
                   group=row.group, rank=row.rank, churn_probability=row.churn_probability,
                   propensity=row.propensity)


# --- the decision secret ------------------------------------------------------------------


def decision_signer(session: Session, *, secret: str | None) -> DecisionSigner:
    """The signer of this deployment: from `secret` (the setting) when given, else from the
    random secret stored in the registry, written now if there is none yet (at start-up,
    under the start-up lock, so every replica reads the same one)."""
    if secret:
        return DecisionSigner.from_text(secret)
    row = session.get(DecisionSecretRow, 1)
    if row is None:
        row = DecisionSecretRow(id=1, secret=DecisionSigner.new_secret(), created_at=utcnow())
        session.add(row)
        session.flush()
    return DecisionSigner.from_text(row.secret)


# --- recording ----------------------------------------------------------------------------


def record_outcomes(*, session: Session, items: Sequence[OutcomeIn], signer: DecisionSigner,
                    live_actions: Collection[str], principal: Principal, today: dt.date,
                    retention_days: int, max_rows: int) -> dict[str, int]:
    """Check every item, then store those not stored before; {"recorded", "duplicate"}.

    One refused item refuses the whole request (422 naming `outcomes[i].<field>`), so a
    caller can fix and resend it as is."""
    oldest = today - dt.timedelta(days=retention_days)
    rows: list[OutcomeRow] = []
    problems: list[FieldProblem] = []
    ledger_days: dict[dt.date, dict[str, int] | None] = {}
    now = utcnow()
    for i, item in enumerate(items):
        at = f"outcomes[{i}]"
        found = _check_item(item, at, signer, live_actions, today, oldest)
        if isinstance(found, list):
            problems += found
            continue
        row = found
        if row.decision_id is None:
            if item.date not in ledger_days:
                ledger_days[item.date] = production_versions_on(session, item.date)
            row.versions = ledger_days[item.date]
            row.alias = "production" if row.versions is not None else None
        row.recorded_at = now
        row.recorded_by_principal = principal.principal_id
        row.recorded_by_key = principal.key_id
        rows.append(row)
    if problems:
        raise InvalidRequest("some outcomes are invalid; nothing was recorded", problems)
    if rows:
        _purge_now_and_then(session, today, retention_days)
        _check_room(session, len(rows), max_rows)
    recorded = _insert_new(session, rows)
    return {"recorded": recorded, "duplicate": len(rows) - recorded}


def _check_item(item: OutcomeIn, at: str, signer: DecisionSigner, live_actions: Collection[str],
                today: dt.date, oldest: dt.date) -> OutcomeRow | list[FieldProblem]:
    """The row an item stores, or what is wrong with it."""
    problems = []
    if item.date > today:
        problems.append(FieldProblem(f"{at}.date", f"is in the future (today is "
                                                   f"{today.isoformat()}, UTC)"))
    elif item.date < oldest:
        problems.append(FieldProblem(f"{at}.date", f"is older than the outcome retention "
                                                   f"(kept from {oldest.isoformat()})"))
    if item.decision_id is not None:
        decision = signer.verify(item.decision_id)
        if decision is None:
            return [*problems, FieldProblem(f"{at}.decision_id", "unknown decision id (it "
                                            "does not verify with this deployment's key)")]
        if item.customer_id is not None and item.customer_id != decision.customer_id:
            problems.append(FieldProblem(f"{at}.customer_id",
                                         "is not the customer of the decision id"))
        if item.action_id is not None and item.action_id != decision.action_id:
            problems.append(FieldProblem(f"{at}.action_id", f"the decision id is about "
                                         f"{decision.action_id!r}, not {item.action_id!r}"))
        if item.date < decision.as_of:
            problems.append(FieldProblem(f"{at}.date", f"is before the decision's day "
                                                       f"{decision.as_of.isoformat()}"))
        if problems:
            return problems
        return OutcomeRow(
            decision_id=item.decision_id, decision_key=item.decision_id.rsplit(".", 1)[1],
            customer_id=decision.customer_id, action_id=decision.action_id,
            outcome=item.outcome, occurred_on=item.date, decided_on=decision.as_of,
            versions=decision.versions, alias=decision.alias, group=decision.group,
            rank=decision.rank, churn_probability=decision.churn_probability,
            propensity=decision.propensity)
    if item.customer_id is None:
        problems.append(FieldProblem(f"{at}.customer_id",
                                     "required when no decision_id is given"))
    if item.action_id is None:
        problems.append(FieldProblem(f"{at}.action_id", "required when no decision_id is given"))
    elif item.action_id not in live_actions:
        problems.append(FieldProblem(f"{at}.action_id", f"unknown action {item.action_id!r}: "
                                     "not an action of the live catalogue"))
    if problems:
        return problems
    assert item.customer_id is not None and item.action_id is not None
    return OutcomeRow(decision_id=None, decision_key="", customer_id=item.customer_id,
                      action_id=item.action_id, outcome=item.outcome, occurred_on=item.date)


def _insert_new(session: Session, rows: Sequence[OutcomeRow]) -> int:
    """Insert the rows not stored yet (the unique key decides; a repeat within `rows` too);
    how many were inserted. One statement, compiled once, sent as an executemany that the
    drivers batch into multi-row INSERTs (SQLAlchemy's insertmanyvalues)."""
    if not rows:
        return 0
    table = Base.metadata.tables["outcomes"]
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = [(c.key, c.columns[0].name) for c in OutcomeRow.__mapper__.column_attrs
               if c.key != "id"]
    values = [{name: getattr(row, key) for key, name in columns} for row in rows]
    stmt = insert(table).on_conflict_do_nothing(
        index_elements=["customer_id", "action_id", "outcome", "occurred_on", "decision_key"]
    ).returning(table.c.id)
    return len(session.connection().execute(stmt, values).all())


def _check_room(session: Session, adding: int, max_rows: int) -> None:
    """507 outcomes_full when `adding` rows could pass max_rows. The id span (max - min + 1)
    bounds the row count from above and reads two index ends; only near the limit are the
    rows counted."""
    low, high = session.execute(select(func.min(OutcomeRow.id), func.max(OutcomeRow.id))).one()
    if high is None or high - low + 1 + adding <= max_rows:
        return
    held = session.execute(select(func.count()).select_from(OutcomeRow)).scalar_one()
    if held + adding > max_rows:
        raise OutcomesFull(
            f"the outcomes table holds {held} of at most {max_rows} rows "
            "(TIERWISE_OUTCOMES_MAX_ROWS); nothing was recorded",
            [FieldProblem("outcomes", f"{adding} more would pass the limit")])


def production_versions_on(session: Session, day: dt.date) -> dict[str, int] | None:
    """The production version of each deciding family at the end of `day` (UTC), as the
    ledger's alias moves say; None when the ledger has none by then."""
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    moves = session.execute(
        select(LedgerRow.family, LedgerRow.version)
        .where(LedgerRow.action == "alias_move", LedgerRow.alias == "production",
               LedgerRow.at < end, LedgerRow.family.in_(DECIDING_FAMILIES))
        .order_by(LedgerRow.id)).all()
    versions = {family: version for family, version in moves
                if family is not None and version is not None}
    return versions or None


# --- reading ------------------------------------------------------------------------------


def list_outcomes(session: Session, *, customer_id: str | None = None,
                  action_id: str | None = None, since: dt.date | None = None,
                  limit: int = 1000) -> list[OutcomeRecord]:
    """Recorded outcomes, newest day first (then newest recorded first), at most `limit`."""
    query = select(OutcomeRow)
    if customer_id is not None:
        query = query.where(OutcomeRow.customer_id == customer_id)
    if action_id is not None:
        query = query.where(OutcomeRow.action_id == action_id)
    if since is not None:
        query = query.where(OutcomeRow.occurred_on >= since)
    query = query.order_by(OutcomeRow.occurred_on.desc(), OutcomeRow.id.desc()).limit(limit)
    return [OutcomeRecord.of(r) for r in session.execute(query).scalars()]


def outcome_records(session: Session, *, since: dt.date | None = None,
                    until: dt.date | None = None, action_ids: Collection[str] | None = None,
                    with_decision: bool = False) -> list[OutcomeRecord]:
    """Outcomes with their decisions' payloads, oldest first, for monitoring (acceptance,
    uplift, calibration): occurred between `since` and `until` (inclusive), of `action_ids`
    when given, only those recorded by decision id when `with_decision`."""
    query = select(OutcomeRow)
    if since is not None:
        query = query.where(OutcomeRow.occurred_on >= since)
    if until is not None:
        query = query.where(OutcomeRow.occurred_on <= until)
    if action_ids is not None:
        query = query.where(OutcomeRow.action_id.in_(list(action_ids)))
    if with_decision:
        query = query.where(OutcomeRow.decision_id.is_not(None))
    return [OutcomeRecord.of(r) for r in session.execute(query.order_by(OutcomeRow.id)).scalars()]


def contact_events(session: Session, *, customer_ids: Collection[str], since: dt.date,
                   limit: int) -> dict[str, list[tuple[str, dt.date, str]]]:
    """customer id → its recorded (action, day, contact outcome) from `since` on, newest
    first, at most `limit` per query (the contact policy's input; churned is left out)."""
    rows = session.execute(
        select(OutcomeRow.customer_id, OutcomeRow.action_id, OutcomeRow.occurred_on,
               OutcomeRow.outcome)
        .where(OutcomeRow.customer_id.in_(list(customer_ids)),
               OutcomeRow.occurred_on >= since,
               OutcomeRow.outcome.in_(list(CONTACT_OUTCOME)))
        .order_by(OutcomeRow.occurred_on.desc(), OutcomeRow.id.desc()).limit(limit)).all()
    out: dict[str, list[tuple[str, dt.date, str]]] = {}
    for customer, action, day, outcome in rows:
        out.setdefault(customer, []).append((action, day, CONTACT_OUTCOME[outcome]))
    return out


PURGE_INTERVAL_SECONDS = 3600.0
_purged_at: float | None = None  # monotonic time of this process's last purge
_purge_lock = threading.Lock()


def _purge_now_and_then(session: Session, today: dt.date, retention_days: int) -> None:
    """Purge expired outcomes at the first post of this process, then at most hourly."""
    global _purged_at
    with _purge_lock:
        now = time.monotonic()
        if _purged_at is not None and now - _purged_at < PURGE_INTERVAL_SECONDS:
            return
        _purged_at = now
    purge_expired(session, today=today, retention_days=retention_days)


def purge_expired(session: Session, *, today: dt.date, retention_days: int) -> int:
    """Delete outcomes that occurred more than `retention_days` ago; how many were."""
    oldest = today - dt.timedelta(days=retention_days)
    result = session.execute(delete(OutcomeRow).where(OutcomeRow.occurred_on < oldest))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
