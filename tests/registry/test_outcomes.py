"""Outcomes in the registry database (SQLite and PostgreSQL): idempotent recording, the
checks that name the field, versions from the ledger, retention, the row limit, the secret."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidRequest
from app.outcomes.decision_ids import DecisionSigner
from app.registry import outcomes
from app.registry.auth_keys import Principal
from app.registry.outcomes import OutcomeIn, OutcomesFull
from app.registry.tables import DecisionSecretRow, OutcomeRow

SIGNER = DecisionSigner.from_text("registry outcomes test secret")
TODAY = dt.date(2026, 12, 3)
ACTIONS = frozenset({"money_market_fund", "equity_fund", "retention_rm_call"})
WHO = Principal(key_id="k1", name="crm", role="scorer", principal_id="p1")


def _token(customer: str = "C1", action: str = "equity_fund", day: dt.date = TODAY,
           group: str = "treatment") -> str:
    return SIGNER.make(customer_id=customer, action_id=action, as_of=day,
                       versions={"churn": 1, "products": 1, "catalog": 1, "policy": 1},
                       alias="production", group=group, rank=1, churn_probability=0.2,
                       propensity=0.3)


def _record(session: Session, items: list[OutcomeIn], **over: object) -> dict[str, int]:
    args = dict(session=session, items=items, signer=SIGNER, live_actions=ACTIONS,
                principal=WHO, today=TODAY, retention_days=365, max_rows=1000)
    return outcomes.record_outcomes(**{**args, **over})  # type: ignore[arg-type]


def _problems(exc: pytest.ExceptionInfo[InvalidRequest]) -> dict[str, str]:
    return {d.field: d.problem for d in exc.value.details}


def test_a_repeated_post_adds_nothing(seeded: sessionmaker[Session]) -> None:
    token = _token()
    items = [OutcomeIn(outcome="offered", date=TODAY, decision_id=token),
             OutcomeIn(outcome="accepted", date=TODAY, decision_id=token),
             OutcomeIn(outcome="declined", date=TODAY - dt.timedelta(days=2),
                       customer_id="C2", action_id="money_market_fund")]
    with seeded.begin() as session:
        assert _record(session, items) == {"recorded": 3, "duplicate": 0}
    with seeded.begin() as session:
        assert _record(session, items + items[:1]) == {"recorded": 0, "duplicate": 4}
        rows = outcomes.list_outcomes(session)
    assert len(rows) == 3
    by_decision = [r for r in rows if r.decision_id == token]
    assert {r.outcome for r in by_decision} == {"offered", "accepted"}
    r = by_decision[0]
    assert (r.customer_id, r.action_id, r.decided_on, r.alias, r.group, r.rank) == (
        "C1", "equity_fund", TODAY, "production", "treatment", 1)
    assert (r.churn_probability, r.propensity) == (0.2, 0.3)
    # By customer: the production versions of that day, from the ledger (the seed moved
    # every family to version 1 before "today").
    by_customer = next(r for r in rows if r.decision_id is None)
    assert by_customer.versions == {"churn": 1, "products": 1, "catalog": 1, "policy": 1}
    assert by_customer.alias == "production"


def test_a_repeat_within_one_post_is_stored_once(seeded: sessionmaker[Session]) -> None:
    item = OutcomeIn(outcome="accepted", date=TODAY, decision_id=_token("C8"))
    other = OutcomeIn(outcome="offered", date=TODAY, customer_id="C8", action_id="equity_fund")
    with seeded.begin() as session:
        assert _record(session, [item, other, item, other]) == {"recorded": 2, "duplicate": 2}
        assert len(outcomes.list_outcomes(session, customer_id="C8")) == 2


def test_before_any_production_the_versions_are_unknown(seeded: sessionmaker[Session]) -> None:
    with seeded.begin() as session:
        _record(session, [OutcomeIn(outcome="offered", date=dt.date(2001, 1, 1),
                                    customer_id="C9", action_id="equity_fund")],
                today=dt.date(2001, 1, 2))
        (r,) = outcomes.list_outcomes(session, customer_id="C9")
    assert r.versions is None and r.alias is None


@pytest.mark.parametrize(("item", "field", "says"), [
    (OutcomeIn(outcome="accepted", date=TODAY, decision_id="d1.forged.AAAAAAAAAAAAAAAAAAAAAA"),
     "outcomes[0].decision_id", "unknown decision id"),
    (OutcomeIn(outcome="accepted", date=TODAY,
               decision_id=DecisionSigner.from_text("another deployment's key").make(
                   customer_id="C1", action_id="equity_fund", as_of=TODAY, versions={},
                   alias="production", group="treatment", rank=1, churn_probability=None,
                   propensity=None)),
     "outcomes[0].decision_id", "unknown decision id"),
    (OutcomeIn(outcome="accepted", date=TODAY + dt.timedelta(days=1), decision_id=_token()),
     "outcomes[0].date", "future"),
    (OutcomeIn(outcome="accepted", date=TODAY - dt.timedelta(days=1), decision_id=_token()),
     "outcomes[0].date", "before the decision's day 2026-12-03"),
    (OutcomeIn(outcome="accepted", date=TODAY - dt.timedelta(days=400), customer_id="C1",
               action_id="equity_fund"), "outcomes[0].date", "older than the outcome retention"),
    (OutcomeIn(outcome="offered", date=TODAY, customer_id="C1", action_id="gold_card"),
     "outcomes[0].action_id", "unknown action 'gold_card'"),
    (OutcomeIn(outcome="offered", date=TODAY, customer_id="C1"),
     "outcomes[0].action_id", "required"),
    (OutcomeIn(outcome="offered", date=TODAY, action_id="equity_fund"),
     "outcomes[0].customer_id", "required"),
    (OutcomeIn(outcome="offered", date=TODAY, decision_id=_token(), customer_id="C2"),
     "outcomes[0].customer_id", "not the customer"),
    (OutcomeIn(outcome="offered", date=TODAY, decision_id=_token(), action_id="money_market_fund"),
     "outcomes[0].action_id", "about 'equity_fund'"),
])
def test_bad_outcomes_name_the_field_and_store_nothing(
        seeded: sessionmaker[Session], item: OutcomeIn, field: str, says: str) -> None:
    good = OutcomeIn(outcome="offered", date=TODAY, customer_id="C5", action_id="equity_fund")
    with seeded() as session:
        with pytest.raises(InvalidRequest) as exc:
            _record(session, [good, item, good])
        problems = _problems(exc)
        moved = {k.replace("outcomes[1]", "outcomes[0]"): v for k, v in problems.items()}
        assert field in moved and says in moved[field], problems
        assert exc.value.status == 422
        assert session.execute(select(func.count()).select_from(OutcomeRow)).scalar() == 0


def test_the_row_limit_refuses_the_whole_post(seeded: sessionmaker[Session]) -> None:
    items = [OutcomeIn(outcome="offered", date=TODAY, customer_id=f"C{i}",
                       action_id="equity_fund") for i in range(3)]
    with seeded.begin() as session:
        assert _record(session, items[:2], max_rows=3)["recorded"] == 2
    with seeded() as session:
        with pytest.raises(OutcomesFull) as exc:
            _record(session, items, max_rows=3)  # 2 held + 3 > 3
        assert exc.value.status == 507 and exc.value.code == "outcomes_full"
    with seeded.begin() as session:
        assert _record(session, items[2:], max_rows=3)["recorded"] == 1  # exactly full


def test_retention_purges_what_is_older(seeded: sessionmaker[Session]) -> None:
    with seeded.begin() as session:
        _record(session, [OutcomeIn(outcome="offered", date=TODAY - dt.timedelta(days=d),
                                    customer_id="C1", action_id="equity_fund")
                          for d in (0, 10, 30)], retention_days=60)
        assert outcomes.purge_expired(session, today=TODAY, retention_days=20) == 1
        # "more than N days ago": a 10-day-old outcome stays with 10 days, goes with 9
        assert outcomes.purge_expired(session, today=TODAY, retention_days=10) == 0
        assert outcomes.purge_expired(session, today=TODAY, retention_days=9) == 1
        days = [r.occurred_on for r in outcomes.list_outcomes(session)]
    assert days == [TODAY]


def test_a_post_purges_expired_outcomes(seeded: sessionmaker[Session],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The first post of a process (then at most hourly) deletes what retention let go."""
    old = OutcomeIn(outcome="offered", date=TODAY - dt.timedelta(days=30), customer_id="C1",
                    action_id="equity_fund")
    new = OutcomeIn(outcome="offered", date=TODAY, customer_id="C2", action_id="equity_fund")
    with seeded.begin() as session:
        _record(session, [old], retention_days=60)
        monkeypatch.setattr(outcomes, "_purged_at", None)  # as in a fresh process
        _record(session, [new], retention_days=20)
        assert [r.customer_id for r in outcomes.list_outcomes(session)] == ["C2"]
        _record(session, [old], retention_days=60)
        _record(session, [new], retention_days=20)  # within the hour: no purge again
        assert len(outcomes.list_outcomes(session)) == 2


def test_contact_events_for_the_contact_policy(seeded: sessionmaker[Session]) -> None:
    with seeded.begin() as session:
        _record(session, [
            OutcomeIn(outcome="declined", date=TODAY, customer_id="C1", action_id="equity_fund"),
            OutcomeIn(outcome="converted", date=TODAY, customer_id="C1",
                      action_id="money_market_fund"),
            OutcomeIn(outcome="churned", date=TODAY, customer_id="C1",
                      action_id="retention_rm_call"),
            OutcomeIn(outcome="offered", date=TODAY - dt.timedelta(days=50), customer_id="C1",
                      action_id="equity_fund"),
            OutcomeIn(outcome="offered", date=TODAY, customer_id="C2", action_id="equity_fund")])
        found = outcomes.contact_events(session, customer_ids=["C1", "C3"],
                                        since=TODAY - dt.timedelta(days=30), limit=100)
    assert sorted(found["C1"]) == [("equity_fund", TODAY, "declined"),
                                   ("money_market_fund", TODAY, "accepted")]
    assert "C3" not in found


def test_monitoring_reads_outcomes_with_their_payload(seeded: sessionmaker[Session]) -> None:
    with seeded.begin() as session:
        _record(session, [
            OutcomeIn(outcome="converted", date=TODAY, decision_id=_token("C1")),
            OutcomeIn(outcome="offered", date=TODAY, decision_id=_token("C2", group="control")),
            OutcomeIn(outcome="offered", date=TODAY, customer_id="C3", action_id="equity_fund")])
        every = outcomes.outcome_records(session, since=TODAY, until=TODAY)
        decided = outcomes.outcome_records(session, with_decision=True,
                                           action_ids=["equity_fund"])
    assert len(every) == 3 and [r.customer_id for r in decided] == ["C1", "C2"]
    assert [r.group for r in decided] == ["treatment", "control"]
    assert decided[0].propensity == 0.3 and decided[0].churn_probability == 0.2


def test_the_decision_secret_is_made_once(seeded: sessionmaker[Session]) -> None:
    with seeded.begin() as session:
        first = outcomes.decision_signer(session, secret=None)
    with seeded.begin() as session:
        again = outcomes.decision_signer(session, secret=None)
        assert session.execute(select(func.count()).select_from(DecisionSecretRow)).scalar() == 1
    token = first.make(customer_id="C1", action_id="a", as_of=TODAY, versions={}, alias="p",
                       group="treatment", rank=1, churn_probability=None, propensity=None)
    assert again.verify(token) is not None
    configured = outcomes.decision_signer(session, secret="set by the operator, long")
    assert configured.verify(token) is None


def test_recorded_history_reads_every_customer_and_not_while_down(
        seeded: sessionmaker[Session]) -> None:
    from app.registry.history import CHUNK, RecordedHistory
    from app.registry.outage import RegistryHealth

    customers = [f"H{i}" for i in range(CHUNK + 20)]  # two queries
    with seeded.begin() as session:
        _record(session, [OutcomeIn(outcome="declined", date=TODAY, customer_id=c,
                                    action_id="equity_fund") for c in customers])
    health = RegistryHealth()
    reader = RecordedHistory(sessions=seeded, health=health)
    found = reader.events(customers, TODAY - dt.timedelta(days=5))
    assert found is not None and set(found) == set(customers)
    assert found["H7"] == [("equity_fund", TODAY, "declined")]
    health.failed(ConnectionError("down"), "test")
    assert reader.events(customers, TODAY) is None  # at once, no query while down
