"""The data plane: turns validated requests into scores on the right scoring context.

Routes (app/api/routes/scores.py) do HTTP only and call these two functions; the live
registry state is passed in, so this module knows nothing about FastAPI.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from pydantic import TypeAdapter, ValidationError

from app.api.schemas import BatchItem, ScoreContext, ScoreOptions
from app.decisions.arbitration import ContactEvent
from app.errors import FieldProblem, InvalidFeature, InvalidRequest
from app.observability.logging import note_request
from app.observability.metrics import count_scored
from app.scoring.context import ScoringContext
from app.scoring.pipeline import PARTS, CustomerInput, Options, score_rows

log = logging.getLogger("tierwise.scoring")
_BATCH_ITEM = TypeAdapter(BatchItem)


class LiveContexts(Protocol):
    """What the data plane needs from the live registry state."""

    def for_request(
        self, *, customer_id: str, pins: Mapping[str, str]
    ) -> tuple[ScoringContext, ScoringContext | None]: ...


# Suppressed actions are always listed so the metrics can count them; _observe() drops them
# from the responses that did not ask.
_DEFAULT_OPTIONS = Options(include_suppressed=True, suppressed_details=False)


def _options(options: ScoreOptions | None) -> tuple[Options, Mapping[str, str]]:
    if options is None:
        return _DEFAULT_OPTIONS, {}
    parts = frozenset(options.parts) if options.parts else frozenset(PARTS)
    return (
        Options(parts=parts, top_n=options.top_n, explain=options.explain,
                include_suppressed=True, suppressed_details=options.include_suppressed),
        {str(family): pin for family, pin in options.pin.items()},
    )


def _observe(models: Mapping[str, Any], results: Sequence[dict[str, Any]],
             options: ScoreOptions | None, *, defer: bool) -> None:
    """Count the outcomes for the metrics, then drop the suppressed lists nobody asked for."""
    count_scored(models, results, defer=defer)
    if options is None or not options.include_suppressed:
        for result in results:
            result.pop("suppressed", None)


def _history(
    context: ScoreContext | None, prefix: str
) -> tuple[str | None, tuple[ContactEvent, ...]]:
    if context is None:
        return None, ()
    as_of = context.as_of or dt.datetime.now(dt.UTC).date()
    events = []
    problems = []
    for i, e in enumerate(context.history):
        days = (as_of - e.date).days
        if days < 0:
            problems.append(FieldProblem(f"{prefix}context.history[{i}].date",
                                         f"is after the decision day {as_of.isoformat()}"))
            continue
        events.append(ContactEvent(action_id=e.action_id, days_ago=days, outcome=e.outcome))
    if problems:
        raise InvalidRequest("the contact history is inconsistent", problems)
    return context.channel, tuple(events)


def _encode(ctx: ScoringContext, features: Mapping[str, Any], out: np.ndarray,
            parts: frozenset[str], prefix: str) -> list[FieldProblem]:
    # Required-ness depends on the parts asked for (a churn-only call needs churn's features).
    return ctx.schema.encode_into(features, out, prefix=f"{prefix}features",
                                  required=ctx.required_for(parts))


def score_one(*, live: LiveContexts, customer_id: str, features: Mapping[str, Any],
              context: ScoreContext | None, options: ScoreOptions | None) -> dict[str, Any]:
    """Score one customer; raises InvalidFeature / InvalidRequest naming every bad field."""
    one = prepare_one(live=live, customer_id=customer_id, features=features, context=context,
                      options=options)
    return finish_one(one, score_rows(one.ctx, one.x, [one.customer], one.opts)[0])


class OneCustomer:
    """A validated single-customer request, ready for score_rows (see microbatch.py)."""

    __slots__ = ("ctx", "customer", "options", "opts", "shadow", "x")

    def __init__(self, ctx: ScoringContext, shadow: ScoringContext | None, x: np.ndarray,
                 customer: CustomerInput, opts: Options, options: ScoreOptions | None) -> None:
        self.ctx, self.shadow, self.x, self.customer = ctx, shadow, x, customer
        self.opts, self.options = opts, options


def prepare_one(*, live: LiveContexts, customer_id: str, features: Mapping[str, Any],
                context: ScoreContext | None, options: ScoreOptions | None) -> OneCustomer:
    """score_one up to the scoring: routing, validation, contact history."""
    opts, pins = _options(options)
    ctx, shadow = live.for_request(customer_id=customer_id, pins=pins)
    x = np.empty((1, len(ctx.schema)))
    problems = _encode(ctx, features, x[0], opts.parts, "")
    if problems:
        raise InvalidFeature("some features are invalid", problems)
    channel, history = _history(context, "")
    customer = CustomerInput(customer_id=customer_id, features=features, channel=channel,
                             history=history)
    return OneCustomer(ctx, shadow, x, customer, opts, options)


def finish_one(one: OneCustomer, result: dict[str, Any]) -> dict[str, Any]:
    """score_one after the scoring: challenger, versions, metrics, the log line's fields.
    Runs in the request's own context (the log line's fields are per request)."""
    ctx = one.ctx
    if one.shadow is not None:
        _shadow(one.shadow, [one.customer], one.opts, [result])
    result["models"] = ctx.models_served
    _observe(ctx.models_served, (result,), one.options, defer=True)
    note_request(models=ctx.models_served, customer_id=one.customer.customer_id)
    return result


def score_batch(*, live: LiveContexts, items: Sequence[Mapping[str, Any]],
                options: ScoreOptions | None) -> dict[str, Any]:
    """Score many customers; an invalid item gets its own error entry, results in input order.

    Each item is routed on its own customer id (a challenger split applies per customer);
    the items of each context are then scored together in one vectorised call.
    """
    opts, pins = _options(options)
    results: list[dict[str, Any]] = [{} for _ in items]
    groups: dict[int, _Group] = {}
    for i, raw in enumerate(items):
        prefix = f"items[{i}]."
        try:
            item = _BATCH_ITEM.validate_python(raw)
            ctx, shadow = live.for_request(customer_id=item.customer_id, pins=pins)
            group = groups.get(id(ctx))
            if group is None:
                group = groups[id(ctx)] = _Group(ctx, shadow, len(items))
            problems = _encode(ctx, item.features, group.x[len(group.rows)], opts.parts, prefix)
            if problems:
                raise InvalidFeature("some features are invalid", problems)
            channel, history = _history(item.context, prefix)
        except ValidationError as exc:
            results[i] = _item_error(i, raw, InvalidRequest(
                "the item does not follow the contract", validation_problems(exc, prefix)))
            continue
        except (InvalidFeature, InvalidRequest) as err:
            results[i] = _item_error(i, raw, err)
            continue
        group.rows.append(i)
        group.customers.append(CustomerInput(customer_id=item.customer_id,
                                             features=item.features, channel=channel,
                                             history=history))
    scored = 0
    models: dict[str, Any] = {}
    for group in groups.values():
        if not group.rows:
            continue
        out = score_rows(group.ctx, group.x[: len(group.rows)], group.customers, opts)
        for i, res in zip(group.rows, out, strict=True):
            res["index"] = i
            if len(groups) > 1:
                res["models"] = group.ctx.models_served
            results[i] = res
        if group.shadow is not None:
            _shadow(group.shadow, group.customers, opts, out)
        _observe(group.ctx.models_served, out, options, defer=False)
        scored += len(group.rows)
        models = models or group.ctx.models_served
    if not models:
        models = live.for_request(customer_id="", pins=pins)[0].models_served
    note_request(models=models, scored=scored, failed=len(items) - scored)
    return {"results": results, "models": models, "scored": scored,
            "failed": len(items) - scored}


class _Group:
    """The items of a batch answered by one context."""

    def __init__(self, ctx: ScoringContext, shadow: ScoringContext | None, capacity: int) -> None:
        self.ctx = ctx
        self.shadow = shadow
        self.x = np.empty((capacity, len(ctx.schema)))
        self.rows: list[int] = []
        self.customers: list[CustomerInput] = []


def _item_error(index: int, raw: Any, err: InvalidFeature | InvalidRequest) -> dict[str, Any]:
    cid = raw.get("customer_id") if isinstance(raw, Mapping) else None
    return {"index": index, "customer_id": cid if isinstance(cid, str) else None,
            "error": err.as_dict()}


def validation_problems(exc: ValidationError, prefix: str = "") -> list[FieldProblem]:
    """pydantic errors as field problems with dotted paths (items[3].features.age)."""
    problems = []
    for err in exc.errors(include_url=False):
        path = ""
        for part in err["loc"]:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        problems.append(FieldProblem(prefix + path if path else prefix.rstrip("."), err["msg"]))
    return problems


def _shadow(shadow: ScoringContext, customers: list[CustomerInput], opts: Options,
            served: list[dict[str, Any]]) -> None:
    """Score the challenger too and log how it differs; never affects the response."""
    try:
        x = np.empty((len(customers), len(shadow.schema)))
        for i, c in enumerate(customers):
            if shadow.schema.encode_into(c.features, x[i]):
                return
        shadow_results = score_rows(shadow, x, customers, opts)
    except Exception:  # a broken challenger must never fail a production request
        log.exception("shadow scoring failed")
        return
    for c, prod, chal in zip(customers, served, shadow_results, strict=True):
        log.info(
            "shadow",
            extra={
                "customer_id": c.customer_id,
                "challenger_versions": {f: v.version for f, v in shadow.versions.items()},
                "production_churn": prod.get("churn", {}).get("probability"),
                "challenger_churn": chal.get("churn", {}).get("probability"),
                "production_top": [r["action_id"] for r in prod.get("recommendations", [])],
                "challenger_top": [r["action_id"] for r in chal.get("recommendations", [])],
            },
        )
