"""Step 3 of arbitration: contact fatigue, from the contacts the caller reports.

"Within N days" means days_ago < N (today is day 0), so a 90-day cool-off allows the action
again on day 90. Checks, in this order:

1. an "accepted" event within max(window_days, decline_cooloff_days) → `accepted_recently`.
   Why suppress: held flags are refreshed in the nightly feature load, so a product taken
   today still looks "not held"; and a retention action just delivered (a call, an offer)
   must not be repeated at once. After that period the held flag (or a new churn score)
   decides again, so e.g. a stopped SIP can be offered anew.
2. a "declined" event within decline_cooloff_days → `declined_recently`.
3. at least max_offers "offered" events within window_days → `contact_limit_reached`
   (max_offers 0 therefore means "never proactively"). Only "offered" events count, as
   specified; a declined or accepted offer is governed by rules 1 and 2.
4. the catalogue's `contact_cap`: at least max_offers "offered" events of any action (ids
   the catalogue does not know included) within its window_days → `contact_cap`, for every
   action that passed 1-3: nothing more is offered to a customer contacted that often.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from app.decisions.catalog import Action, ContactCap

ACCEPTED_RECENTLY = "accepted_recently"
DECLINED_RECENTLY = "declined_recently"
CONTACT_LIMIT_REACHED = "contact_limit_reached"
CONTACT_CAP = "contact_cap"

REASON_CODES: tuple[str, ...] = (ACCEPTED_RECENTLY, DECLINED_RECENTLY, CONTACT_LIMIT_REACHED,
                                 CONTACT_CAP)

Outcome = Literal["offered", "declined", "accepted"]
_OUTCOMES = frozenset(("offered", "declined", "accepted"))


@dataclass(frozen=True, slots=True)
class ContactEvent:
    """One past contact about an action, as the caller reports it."""

    action_id: str
    days_ago: int  # >= 0, today is 0
    outcome: Outcome

    def __post_init__(self) -> None:
        # Validated here, once, so the hot path can trust events.
        if self.days_ago < 0:
            raise ValueError(f"days_ago must be >= 0, got {self.days_ago}")
        if self.outcome not in _OUTCOMES:
            raise ValueError(f"unknown contact outcome {self.outcome!r}")


@dataclass(frozen=True, slots=True)
class ContactRule:
    """An action's contact policy in plain Python types, built once per catalogue."""

    max_offers: int = 2
    window_days: int = 30
    decline_cooloff_days: int = 90

    @property
    def accepted_block_days(self) -> int:
        """How long an acceptance suppresses the action (see the module docstring)."""
        return max(self.window_days, self.decline_cooloff_days)

    @classmethod
    def from_action(cls, action: Action) -> ContactRule:
        """Flatten the pydantic contact policy of `action`."""
        c = action.contact_policy
        return cls(c.max_offers, c.window_days, c.decline_cooloff_days)


def _tally(rule: ContactRule, events: Sequence[ContactEvent]) -> tuple[int | None, int | None,
                                                                         int]:
    """(days since the latest acceptance, since the latest decline, offers in the window)."""
    accepted = declined = None
    offers = 0
    window = rule.window_days
    for e in events:
        d = e.days_ago
        if e.outcome == "offered":
            if d < window:
                offers += 1
        elif e.outcome == "declined":
            if declined is None or d < declined:
                declined = d
        elif accepted is None or d < accepted:
            accepted = d
    return accepted, declined, offers


def contact_failure(rule: ContactRule, events: Sequence[ContactEvent]) -> str | None:
    """The code of the contact rule this action's past events break, or None. `events` are
    its own only. The definition of contact policy (see eligibility)."""
    accepted, declined, offers = _tally(rule, events)
    if accepted is not None and accepted < rule.accepted_block_days:
        return ACCEPTED_RECENTLY
    if declined is not None and declined < rule.decline_cooloff_days:
        return DECLINED_RECENTLY
    if offers >= rule.max_offers:
        return CONTACT_LIMIT_REACHED
    return None


def describe_contact(code: str, rule: ContactRule, events: Sequence[ContactEvent]) -> str:
    """The readable detail of a failure `contact_failure` returned."""
    accepted, declined, offers = _tally(rule, events)
    if code == ACCEPTED_RECENTLY:
        return f"accepted {accepted} days ago"
    if code == DECLINED_RECENTLY:
        return f"declined {declined} days ago (cool-off {rule.decline_cooloff_days} days)"
    if rule.max_offers == 0:
        return "contact policy allows no offers (max_offers 0)"
    return f"{offers} offers in the last {rule.window_days} days (limit {rule.max_offers})"


def offers_within(events: Sequence[ContactEvent], window_days: int) -> int:
    """"offered" events of any action fewer than window_days ago."""
    return sum(1 for e in events if e.outcome == "offered" and e.days_ago < window_days)


def cap_reached(cap: ContactCap | None, events: Sequence[ContactEvent]) -> bool:
    """Whether the catalogue's contact cap stops every further offer (rule 4)."""
    return cap is not None and offers_within(events, cap.window_days) >= cap.max_offers


def describe_cap(cap: ContactCap, events: Sequence[ContactEvent]) -> str:
    """The readable detail of `contact_cap`."""
    return (f"{offers_within(events, cap.window_days)} offers of any action in the last "
            f"{cap.window_days} days (cap {cap.max_offers})")
