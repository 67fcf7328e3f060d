"""A fixed set of bundles served without a registry (tests, and `models/` before seeding)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.errors import FieldProblem, NotFound
from app.scoring.context import ScoringContext


class StaticContexts:
    """Serves one context; pins other than its own versions are refused."""

    def __init__(self, ctx: ScoringContext) -> None:
        self.ctx = ctx
        self.ready = True

    def current(self) -> ScoringContext:
        return self.ctx

    def for_request(
        self, *, customer_id: str, pins: Mapping[str, str]
    ) -> tuple[ScoringContext, ScoringContext | None]:
        for family, wanted in pins.items():
            if wanted not in ("production", str(self.ctx.versions[family].version)):
                raise NotFound(f"no version {wanted} of {family} is available",
                               [FieldProblem(f"options.pin.{family}", "unknown version or alias")])
        return self.ctx, None

    def status(self) -> dict[str, Any]:
        return {"ready": True, "versions": self.ctx.models_served, "source": "static"}
