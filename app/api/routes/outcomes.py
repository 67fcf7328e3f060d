"""Outcomes over HTTP (scorer role and up): record what happened after a decision, list them.

POST /v1/outcomes takes outcomes by decision id (the token every recommendation carries) or
by customer, action and day; a repeated post adds nothing (counted as duplicate). One bad
item refuses the whole post (422 naming outcomes[i].<field>), so it can be fixed and resent.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import RequireScorer
from app.api.deps import LiveDep, RuntimeDep
from app.api.openapi import AUTH_ERRORS, JSON_BODY_ERRORS, errors, operation_id
from app.api.routes.models import JSON_ONLY, SessionDep
from app.api.schemas import CustomerId, IsoDate
from app.errors import FieldProblem, InvalidRequest
from app.registry import outcomes
from app.registry.outcomes import OutcomeIn, OutcomeRecord

router = APIRouter(tags=["outcomes"], default_response_class=JSONResponse,
                   generate_unique_id_function=operation_id)

OutcomeName = Literal["offered", "accepted", "declined", "converted", "churned"]
ActionId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
HARD_MAX_ITEMS = 100_000  # TIERWISE_OUTCOMES_MAX_PER_REQUEST's own upper bound


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OutcomeItem(_In):
    """One outcome: by decision_id, or by customer_id + action_id (with the day)."""

    decision_id: str | None = Field(
        default=None, min_length=1, max_length=1024,
        description="The recommendation's decision_id (its customer and action are read from "
        "it; customer_id and action_id, if sent too, must match).")
    customer_id: CustomerId | None = None
    action_id: ActionId | None = Field(
        default=None, description="An action of the live catalogue (without decision_id).")
    outcome: OutcomeName = Field(
        description="offered, accepted, declined, converted (bought; for a retention action: "
        "stayed) or churned (the customer left)")
    date: IsoDate = Field(description="The day it happened (UTC): not in the future, not "
                                      "before the decision's day.")


class OutcomesIn(_In):
    outcomes: list[OutcomeItem] = Field(
        min_length=1, max_length=HARD_MAX_ITEMS,
        description="At most TIERWISE_OUTCOMES_MAX_PER_REQUEST (default 1000).")

    # By customer only: a decision id is made by the deployment that scored (its key), so no
    # fixed example of one is valid anywhere; docs/outcomes.md shows the round trip.
    model_config = ConfigDict(json_schema_extra={"examples": [{"outcomes": [
        {"customer_id": "C000123", "action_id": "credit_card", "outcome": "offered",
         "date": "2026-11-01"},
        {"customer_id": "C000123", "action_id": "credit_card", "outcome": "accepted",
         "date": "2026-11-02"}]}]})


class OutcomesRecorded(BaseModel):
    recorded: int = Field(description="Outcomes stored by this post")
    duplicate: int = Field(description="Outcomes stored before (the post changed nothing)")


class OutcomeOut(BaseModel):
    customer_id: str
    action_id: str
    outcome: str
    date: dt.date = Field(description="The day it happened")
    recorded_at: dt.datetime
    decision_id: str | None
    decided_on: dt.date | None = Field(description="The decision's day (by decision id)")
    versions: dict[str, int] | None = Field(
        description="The versions that decided: from the decision id, or (by customer) the "
        "production versions of that day in the registry's ledger")
    alias: str | None
    group: Literal["treatment", "control"] | None = Field(
        description="The decision's group (control: a held-out product offer)")


class OutcomeList(BaseModel):
    outcomes: list[OutcomeOut] = Field(description="Newest day first")


def _view(r: OutcomeRecord) -> OutcomeOut:
    return OutcomeOut(customer_id=r.customer_id, action_id=r.action_id, outcome=r.outcome,
                      date=r.occurred_on, recorded_at=r.recorded_at, decision_id=r.decision_id,
                      decided_on=r.decided_on, versions=r.versions, alias=r.alias,
                      group=r.group)  # type: ignore[arg-type]


@router.post("/v1/outcomes", response_model=OutcomesRecorded, dependencies=JSON_ONLY,
             responses=errors(*AUTH_ERRORS, *JSON_BODY_ERRORS, 507),
             summary="Record outcomes of decisions (idempotent)")
def record(body: OutcomesIn, principal: RequireScorer, session: SessionDep,
           runtime: RuntimeDep, live: LiveDep) -> OutcomesRecorded:
    settings = runtime.settings
    limit = settings.outcomes_max_per_request
    if len(body.outcomes) > limit:
        raise InvalidRequest("too many outcomes in one request", [FieldProblem(
            "outcomes", f"{len(body.outcomes)} items; at most {limit} "
                        "(TIERWISE_OUTCOMES_MAX_PER_REQUEST)")])
    items = [OutcomeIn(outcome=o.outcome, date=o.date, decision_id=o.decision_id,
                       customer_id=o.customer_id, action_id=o.action_id)
             for o in body.outcomes]
    counts = outcomes.record_outcomes(
        session=session, items=items, signer=runtime.signer,
        live_actions=live.current().prepared_catalog.action_ids, principal=principal,
        today=dt.datetime.now(dt.UTC).date(), retention_days=settings.outcomes_retention_days,
        max_rows=settings.outcomes_max_rows)
    return OutcomesRecorded(**counts)


@router.get("/v1/outcomes", response_model=OutcomeList, responses=errors(*AUTH_ERRORS, 422),
            summary="Recorded outcomes, by customer, action and day")
def list_recorded(principal: RequireScorer, session: SessionDep,
                  customer_id: Annotated[str | None, Query(min_length=1, max_length=128)] = None,
                  action_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
                  since: Annotated[IsoDate | None, Query(
                      description="Outcomes that happened on this day or later (YYYY-MM-DD)")
                  ] = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> OutcomeList:
    found = outcomes.list_outcomes(session, customer_id=customer_id, action_id=action_id,
                                   since=since, limit=limit)
    return OutcomeList(outcomes=[_view(r) for r in found])
