"""What the data plane reads of a request: small protocols the API's pydantic classes
satisfy (checked by mypy where the API calls the data plane), so this package never
imports the API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol


class ContactIn(Protocol):
    """One past offer, decline or acceptance sent by the caller."""

    action_id: str
    date: dt.date
    outcome: Literal["offered", "declined", "accepted"]


class ContextIn(Protocol):
    """Where and when the customer is served, and their recent contacts."""

    channel: str | None
    as_of: dt.date | None
    history: Sequence[ContactIn]


class OptionsIn(Protocol):
    """What the caller asked for."""

    parts: Sequence[str] | None
    top_n: int | None
    explain: bool
    include_suppressed: bool
    pin: Mapping[Any, str]


class CustomerIn(Protocol):
    """One customer of a request: id, named features, contact context."""

    customer_id: str
    features: Mapping[str, Any]
    context: ContextIn | None


class ScoreIn(CustomerIn, Protocol):
    """A single-customer scoring request."""

    options: OptionsIn | None
