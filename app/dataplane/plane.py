"""The data plane: validated requests in, scores out, on the right scoring context.

As in MLServer, the HTTP layer (app/api) only reads and validates the request, then calls
one method here; the data plane's collaborators are given to its constructor: the live
scoring contexts, the micro-batcher and the tally the metrics are counted in. It knows
nothing about HTTP or the API's pydantic classes: it reads requests through the small
protocols of app/dataplane/requests.py, which those classes satisfy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from app.dataplane.microbatch import MicroBatcher, OneCustomer
from app.dataplane.requests import ContextIn, CustomerIn, OptionsIn, ScoreIn
from app.dataplane.shadow import shadow_score
from app.decisions.arbitration import ContactEvent
from app.errors import FieldProblem, InvalidFeature, InvalidRequest
from app.monitoring.aggregate import ScoredCounts
from app.observability.logging import note_request
from app.observability.metrics import ScoreTally, count_contact_history
from app.outcomes.decision_ids import DecisionSigner
from app.scoring.context import ScoringContext
from app.scoring.pipeline import PARTS, CustomerInput, Options, score_rows


class LiveContexts(Protocol):
    """What the data plane needs from the live registry state."""

    @property
    def ready(self) -> bool: ...

    def for_request(
        self, *, customer_id: str, pins: Mapping[str, str]
    ) -> tuple[ScoringContext, ScoringContext | None]: ...


class RecordedContacts(Protocol):
    """Recorded contacts, read when a request sends no history (app/registry/history.py)."""

    def events(self, customer_ids: Collection[str], since: dt.date
               ) -> dict[str, list[tuple[str, dt.date, str]]] | None: ...


class RefusedItem:
    """A batch item the API's validation refused: its error, and its customer id if any."""

    __slots__ = ("customer_id", "error")

    def __init__(self, customer_id: Any, error: InvalidRequest) -> None:
        self.customer_id = customer_id if isinstance(customer_id, str) else None
        self.error = error


# Suppressed actions are always listed so the metrics can count them; the responses that
# did not ask for them drop them after counting.
_DEFAULT_OPTIONS = Options(include_suppressed=True, suppressed_details=False)


def _options(options: OptionsIn | None, base: Options = _DEFAULT_OPTIONS
             ) -> tuple[Options, dict[str, str]]:
    """The pipeline's options of a request; `base` holds the defaults and the data plane's
    decision-id settings."""
    if options is None:
        return base, {}
    parts = frozenset(options.parts) if options.parts else frozenset(PARTS)
    return (
        Options(parts=parts, top_n=options.top_n, explain=options.explain,
                include_suppressed=True, suppressed_details=options.include_suppressed,
                decision_ids=base.decision_ids, signer=base.signer),
        {str(family): pin for family, pin in options.pin.items()},
    )


def _alias(live: LiveContexts, ctx: ScoringContext, pins: Mapping[str, str]) -> str:
    """The alias a decision id names: the pinned alias when every pin names the same one,
    "pinned" for other pins, else production or challenger (split routing)."""
    if pins:
        named = set(pins.values())
        if named == {"production"}:
            return "production"
        return named.pop() if len(named) == 1 and not next(iter(named)).isdigit() else "pinned"
    alias_of = getattr(live, "alias_of", None)  # a registry's LiveScoring; static: production
    return "production" if alias_of is None else str(alias_of(ctx))


def _history(context: ContextIn | None, prefix: str,
             known: frozenset[str]) -> tuple[str | None, tuple[ContactEvent, ...]]:
    """The channel and contact events; every action id must be in the live catalogue
    (`known`): a typo would otherwise quietly lift a contact limit."""
    if context is None:
        return None, ()
    as_of = context.as_of or dt.datetime.now(dt.UTC).date()
    events = []
    problems = []
    for i, e in enumerate(context.history):
        if e.action_id not in known:
            problems.append(FieldProblem(f"{prefix}context.history[{i}].action_id",
                                         f"{e.action_id!r} is not an action of the live "
                                         "catalogue"))
            continue
        days = (as_of - e.date).days
        if days < 0:
            problems.append(FieldProblem(f"{prefix}context.history[{i}].date",
                                         f"is after the decision day {as_of.isoformat()}"))
            continue
        events.append(ContactEvent(action_id=e.action_id, days_ago=days, outcome=e.outcome))
    if problems:
        raise InvalidRequest("the contact history is inconsistent", problems)
    return context.channel, tuple(events)


def contact_window_days(ctx: ScoringContext) -> int:
    """The longest span the live catalogue's contact policy looks back over."""
    prepared = ctx.prepared_catalog
    days = [a.contact.accepted_block_days for a in prepared.actions]
    if prepared.contact_cap is not None:
        days.append(prepared.contact_cap.window_days)
    return max(days, default=0)


def _as_of(context: ContextIn | None) -> dt.date | None:
    return None if context is None else context.as_of


def _encode(ctx: ScoringContext, features: Mapping[str, Any], out: np.ndarray,
            parts: frozenset[str], prefix: str) -> list[FieldProblem]:
    # Required-ness depends on the parts asked for (a churn-only call needs churn's features).
    return ctx.schema.encode_into(features, out, prefix=f"{prefix}features",
                                  required=ctx.required_for(parts))


class DataPlane:
    """Scores single customers and batches on the live contexts; counts what it served."""

    def __init__(self, *, live: LiveContexts, batcher: MicroBatcher | None,
                 tally: ScoreTally, signer: DecisionSigner | None = None,
                 decision_ids: bool = True, history: RecordedContacts | None = None,
                 monitor: ScoredCounts | None = None) -> None:
        self.live = live
        self.batcher = batcher
        self.tally = tally
        self.monitor = monitor  # counts what is scored, for monitoring (no raw features)
        # When set, a customer sent without a contact history gets its recorded one.
        self.history = history
        # Every recommendation gets a decision id made with the replicas' shared key.
        self._base = dataclasses.replace(_DEFAULT_OPTIONS, signer=signer,
                                         decision_ids=decision_ids)

    def _options(self, options: OptionsIn | None) -> tuple[Options, dict[str, str]]:
        return _options(options, self._base)

    def _with_alias(self, opts: Options, ctx: ScoringContext, pins: Mapping[str, str]
                    ) -> Options:
        alias = _alias(self.live, ctx, pins)
        return opts if alias == opts.alias else dataclasses.replace(opts, alias=alias)

    @property
    def ready(self) -> bool:
        """A verified scoring context is live."""
        return bool(self.live.ready)

    async def score(self, request: ScoreIn) -> dict[str, Any]:
        """The response body of one customer (without the request id)."""
        if (request.options is not None and request.options.pin) or (
                self.history is not None
                and not (request.context is not None and request.context.history)):
            # A pin may load an older version from the registry, a recorded history is a
            # query: never on the event loop.
            one, result = await asyncio.to_thread(self._prepare_and_score, request)
        else:
            # One customer costs tens of microseconds: less than a thread hop, so it runs
            # inline, with the others ready in the same loop turn (app/dataplane/microbatch.py).
            one = self.prepare(request)
            if self.batcher is not None:
                result = await self.batcher.score(one)
            else:
                result = self._score_alone(one)
        return self.finish(one, result)

    def score_now(self, request: ScoreIn) -> dict[str, Any]:
        """score() without the event loop: prepare, score alone, finish (CLI, tests)."""
        one = self.prepare(request)
        return self.finish(one, self._score_alone(one))

    def _prepare_and_score(self, request: ScoreIn) -> tuple[OneCustomer, dict[str, Any]]:
        one = self.prepare(request)
        return one, self._score_alone(one)

    @staticmethod
    def _score_alone(one: OneCustomer) -> dict[str, Any]:
        return score_rows(one.ctx, one.x, [one.customer], one.opts)[0]

    def prepare(self, request: ScoreIn) -> OneCustomer:
        """Route to a context, validate the features, read the contact history."""
        opts, pins = self._options(request.options)
        ctx, shadow = self.live.for_request(customer_id=request.customer_id, pins=pins)
        opts = self._with_alias(opts, ctx, pins)
        x = np.empty((1, len(ctx.schema)))
        problems = _encode(ctx, request.features, x[0], opts.parts, "")
        if problems:
            raise InvalidFeature("some features are invalid", problems)
        channel, history = _history(request.context, "", ctx.prepared_catalog.action_ids)
        customer = CustomerInput(customer_id=request.customer_id, features=request.features,
                                 channel=channel, history=history,
                                 as_of=_as_of(request.context))
        if self.history is not None and not history:
            customer = self._recorded([customer], ctx)[0]
        options = request.options
        return OneCustomer(ctx, shadow, x, customer, opts,
                           bool(options is not None and options.include_suppressed))

    def finish(self, one: OneCustomer, result: dict[str, Any]) -> dict[str, Any]:
        """After scoring: challenger shadow, versions, metrics, the log line's fields."""
        ctx = one.ctx
        if one.shadow is not None:
            shadow_score(one.shadow, [one.customer], one.opts, [result])
        result["models"] = ctx.models_served
        self._observe(ctx, one.x, (result,), one.show_suppressed, one.opts.alias)
        note_request(models=ctx.models_served, customer_id=one.customer.customer_id)
        return result

    def _observe(self, ctx: ScoringContext, x: np.ndarray, results: Sequence[dict[str, Any]],
                 show_suppressed: bool, alias: str) -> None:
        """Count the outcomes (and, for monitoring, the rows), then drop the suppressed lists
        nobody asked for."""
        self.tally.add(ctx.models_served, results)
        if self.monitor is not None:
            self.monitor.observe(ctx, alias, x, results)
        if not show_suppressed:
            for result in results:
                result.pop("suppressed", None)

    async def score_batch(self, items: Sequence[CustomerIn | RefusedItem],
                          options: OptionsIn | None) -> dict[str, Any]:
        """Score many customers in a worker thread (see score_batch_now)."""
        return await asyncio.to_thread(self.score_batch_now, items, options)

    def score_batch_now(self, items: Sequence[CustomerIn | RefusedItem],
                        options: OptionsIn | None) -> dict[str, Any]:
        """Score many customers; an item that is an error (refused by the API's validation)
        or fails here gets its own error entry; results in input order.

        Each item is routed on its own customer id (a challenger split applies per customer);
        the items of each context are then scored together in one vectorised call.
        """
        opts, pins = self._options(options)
        results: list[dict[str, Any]] = [{} for _ in items]
        groups: dict[int, _Group] = {}
        for i, item in enumerate(items):
            try:
                if isinstance(item, RefusedItem):
                    raise item.error
                group = self._add_to_group(groups, item, i, opts, pins, len(items))
            except (InvalidFeature, InvalidRequest) as err:
                cid = getattr(item, "customer_id", None)
                results[i] = {"index": i, "customer_id": cid if isinstance(cid, str) else None,
                              "error": err.as_dict()}
                continue
            group.rows.append(i)
        if self.history is not None:
            for group in groups.values():
                group.customers = self._recorded(group.customers, group.ctx)
        scored = 0
        models: dict[str, Any] = {}
        show = bool(options is not None and options.include_suppressed)
        for group in groups.values():
            if not group.rows:
                continue
            group_opts = self._with_alias(opts, group.ctx, pins)
            out = score_rows(group.ctx, group.x[: len(group.rows)], group.customers,
                             group_opts)
            for i, res in zip(group.rows, out, strict=True):
                res["index"] = i
                if len(groups) > 1:
                    res["models"] = group.ctx.models_served
                results[i] = res
            if group.shadow is not None:
                shadow_score(group.shadow, group.customers, opts, out)
            self._observe(group.ctx, group.x[: len(group.rows)], out, show, group_opts.alias)
            scored += len(group.rows)
            models = models or group.ctx.models_served
        if not models:
            models = self.live.for_request(customer_id="", pins=pins)[0].models_served
        failed = len(items) - scored
        note_request(models=models, scored=scored, failed=failed)
        return {"results": results, "models": models, "scored": scored, "failed": failed}

    def _recorded(self, customers: list[CustomerInput], ctx: ScoringContext
                  ) -> list[CustomerInput]:
        """Customers sent without a history get their recorded contacts (one query), or
        none while the database is unreachable; each says which (contact_history)."""
        assert self.history is not None
        wanted = [c for c in customers if not c.history]
        if not wanted:
            return customers
        today = dt.datetime.now(dt.UTC).date()
        days = {c.customer_id: c.as_of or today for c in wanted}
        since = min(days.values()) - dt.timedelta(days=contact_window_days(ctx))
        found = self.history.events(list(days), since)
        count_contact_history("unavailable" if found is None else "recorded", len(wanted))
        out = []
        for c in customers:
            if c.history:
                out.append(c)
                continue
            if found is None:
                out.append(dataclasses.replace(c, history_source="unavailable"))
                continue
            as_of = c.as_of or today
            events = tuple(ContactEvent(action_id=a, days_ago=(as_of - d).days,
                                        outcome=o)  # type: ignore[arg-type]
                           for a, d, o in found.get(c.customer_id, ()) if d <= as_of)
            out.append(dataclasses.replace(c, history=events, history_source="recorded"))
        return out

    def _add_to_group(self, groups: dict[int, _Group], item: CustomerIn, i: int, opts: Options,
                      pins: Mapping[str, str], capacity: int) -> _Group:
        prefix = f"items[{i}]."
        ctx, shadow = self.live.for_request(customer_id=item.customer_id, pins=pins)
        group = groups.get(id(ctx))
        if group is None:
            group = groups[id(ctx)] = _Group(ctx, shadow, capacity)
        problems = _encode(ctx, item.features, group.x[len(group.rows)], opts.parts, prefix)
        if problems:
            raise InvalidFeature("some features are invalid", problems)
        channel, history = _history(item.context, prefix, ctx.prepared_catalog.action_ids)
        group.customers.append(CustomerInput(customer_id=item.customer_id,
                                             features=item.features, channel=channel,
                                             history=history, as_of=_as_of(item.context)))
        return group


class _Group:
    """The items of a batch answered by one context."""

    def __init__(self, ctx: ScoringContext, shadow: ScoringContext | None, capacity: int) -> None:
        self.ctx = ctx
        self.shadow = shadow
        self.x = np.empty((capacity, len(ctx.schema)))
        self.rows: list[int] = []
        self.customers: list[CustomerInput] = []
