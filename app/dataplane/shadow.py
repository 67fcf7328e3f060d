"""Shadow scoring: the challenger scores the same customers, its differences are logged, and
the response never depends on it."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from app.scoring.context import ScoringContext
from app.scoring.pipeline import CustomerInput, Options, score_rows

log = logging.getLogger("tierwise.scoring")


def shadow_score(shadow: ScoringContext, customers: list[CustomerInput], opts: Options,
                 served: list[dict[str, Any]]) -> None:
    """Score the challenger too and log how it differs; never affects the response."""
    try:
        x = np.empty((len(customers), len(shadow.schema)))
        for i, c in enumerate(customers):
            if shadow.schema.encode_into(c.features, x[i]):
                return
        # No decision ids: nobody is offered what the shadow decides; no reasons: they are
        # never logged, not worth their cost here.
        shadow_results = score_rows(shadow, x, customers,
                                    dataclasses.replace(opts, decision_ids=False, explain=False))
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
