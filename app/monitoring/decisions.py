"""Outcome rows grouped into decisions: what monitoring's acceptance, uplift and
calibration count. Pure: plain records in (as the outcomes table or a test gives them).

A decision is one recommendation (or held-out offer) to one customer, identified by its
decision id, or by customer + action + day when the outcome was posted without one. Its
payload (app/outcomes/decision_ids.py) carries the versions and alias that decided, the
group (treatment or control), the churn probability "p" and the action's propensity "pp".
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ACCEPTED = frozenset({"accepted", "converted"})
CONVERTED = "converted"
CHURNED = "churned"


@dataclass(slots=True)
class Decision:
    """One decision and every outcome recorded for it."""

    key: str
    customer_id: str
    action_id: str
    day: str
    group: str = "treatment"
    alias: str | None = None
    versions: dict[str, int] = field(default_factory=dict)
    churn_probability: float | None = None
    propensity: float | None = None
    outcomes: set[str] = field(default_factory=set)

    @property
    def accepted(self) -> bool:
        return bool(self.outcomes & ACCEPTED)

    @property
    def converted(self) -> bool:
        return CONVERTED in self.outcomes


def payload_of(decision_id: str | None) -> dict[str, Any] | None:
    """The JSON payload of a decision id `d1.<payload>.<mac>` (not verified: outcome rows
    were verified when written); None when it is not one."""
    if not decision_id or not decision_id.startswith("d1."):
        return None
    parts = decision_id.split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        payload = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def _versions(value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        return {}
    out = {}
    for family, v in value.items():
        if isinstance(v, Mapping):
            v = v.get("version")
        if isinstance(v, int) and not isinstance(v, bool):
            out[str(family)] = v
    return out


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def decisions_of(rows: Iterable[Mapping[str, Any]]) -> list[Decision]:
    """Group outcome records into decisions. Each record has `outcome` and either a
    `decision_id` or `customer_id`, `action_id` and `date`/`occurred_on`; optional
    `decided_on`, `versions`, `alias`, `group`, `churn_probability`, `propensity` (the
    outcomes table's columns) fill in what the payload does not give."""
    found: dict[str, Decision] = {}
    for row in rows:
        payload = payload_of(row.get("decision_id")) or {}
        customer = str(payload.get("c", row.get("customer_id") or ""))
        action = str(payload.get("a", row.get("action_id") or ""))
        day = str(payload.get("d") or row.get("decided_on") or row.get("occurred_on")
                  or row.get("date") or "")
        key = row.get("decision_id") or f"{customer}|{action}|{day}"
        d = found.get(key)
        if d is None:
            d = found[key] = Decision(
                key=key, customer_id=customer, action_id=action, day=day,
                group=str(payload.get("g") or row.get("group") or "treatment"),
                alias=payload.get("al") or row.get("alias"),
                versions=_versions(payload.get("v") or row.get("versions")),
                churn_probability=_number(payload.get("p", row.get("churn_probability"))),
                propensity=_number(payload.get("pp", row.get("propensity"))))
        d.outcomes.add(str(row["outcome"]))
    return list(found.values())
