"""Micro-batching: single-customer requests that are ready in the same turn of the event loop
are scored together, in one vectorised call per scoring context and options.

Under concurrent load one worker has several requests ready at once (eight connections each
waiting for its answer). Scored one by one, each request runs the trees and the per-customer
Python with caches cooled by the HTTP work around it; scored together, the trees of all of
them run in one native call and the Python in one warm loop. Each request's task validates
its customer (errors are its own), queues it and awaits; a callback scheduled with
`call_soon` (so it runs after every task already ready in that turn) scores what is queued
and hands every request its own result. The results are those of scoring each customer
alone: score_rows gives a row the same answer in a batch as on its own (tested). A request
alone in its turn pays one extra callback, a few microseconds. If a group's call fails,
its customers are scored one by one, so that one customer cannot fail another's request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from app.scoring.context import ScoringContext
from app.scoring.pipeline import CustomerInput, Options, score_rows


class OneCustomer:
    """A validated single-customer request, ready for score_rows."""

    __slots__ = ("ctx", "customer", "opts", "shadow", "show_suppressed", "x")

    def __init__(self, ctx: ScoringContext, shadow: ScoringContext | None, x: np.ndarray,
                 customer: CustomerInput, opts: Options, show_suppressed: bool) -> None:
        self.ctx, self.shadow, self.x, self.customer = ctx, shadow, x, customer
        self.opts, self.show_suppressed = opts, show_suppressed


class MicroBatcher:
    """Queues validated single-customer requests of one event loop and scores them in turns."""

    def __init__(self, max_batch: int = 64) -> None:
        self.max_batch = max_batch
        self._pending: list[tuple[OneCustomer, asyncio.Future[dict[str, Any]]]] = []
        self._scheduled = False
        self.requests = 0  # customers scored through the batcher
        self.calls = 0  # score_rows calls made for them

    async def score(self, one: OneCustomer) -> dict[str, Any]:
        """score_rows(one.ctx, one.x, [one.customer], one.opts)[0], maybe with others."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending.append((one, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        groups: dict[tuple[int, Any], list[tuple[OneCustomer, asyncio.Future[Any]]]] = {}
        for item in pending:
            if not item[1].done():  # a request cancelled meanwhile (client gone)
                groups.setdefault((id(item[0].ctx), item[0].opts), []).append(item)
        for items in groups.values():
            for start in range(0, len(items), self.max_batch):
                self._score(items[start:start + self.max_batch])

    def _score(self, items: list[tuple[OneCustomer, asyncio.Future[Any]]]) -> None:
        first = items[0][0]
        self.requests += len(items)
        self.calls += 1
        try:
            x = first.x if len(items) == 1 else np.concatenate([one.x for one, _ in items])
            results = score_rows(first.ctx, x, [one.customer for one, _ in items], first.opts)
        except Exception as exc:
            if len(items) == 1:
                if not items[0][1].done():
                    items[0][1].set_exception(exc)
                return
            self.requests -= len(items)  # counted again one by one
            for item in items:  # find the customer at fault; the others get their answers
                self._score([item])
            return
        for (_, future), result in zip(items, results, strict=True):
            if not future.done():
                future.set_result(result)
