"""Scoring with pinned versions (options.pin): resolve each pin, build that context once.

A pin is a version number or an alias of a family; the other families keep the versions in
production. Only approved versions decide: a pin must name a version the registry holds as
approved (repository.approved_among), else 409 not_approved naming options.pin.<family>.
Contexts built for pins are kept in a small LRU, so replaying the same versions costs
neither a database query (pins by number) nor a rebuild, and works while the database is
down; any other pin then answers 503 registry_unavailable.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping

from sqlalchemy.orm import Session, sessionmaker

from app.bundles.manifest import FAMILIES
from app.errors import FieldProblem, NotFound, RegistryUnavailable
from app.registry import repository, service
from app.registry.database import is_unavailable
from app.registry.outage import RegistryHealth
from app.registry.tables import ALIASES
from app.scoring.context import ScoringContext

VersionKey = tuple[tuple[str, int], ...]


def version_key(versions: Mapping[str, int]) -> VersionKey:
    """A hashable, order-free form of family → version."""
    return tuple(sorted(versions.items()))


def versions_of(ctx: ScoringContext) -> dict[str, int]:
    """family → version of a context."""
    return {f: ref.version for f, ref in ctx.versions.items()}


class PinnedContexts:
    """The contexts built for pinned requests, least recently used dropped first."""

    def __init__(self, *, sessions: sessionmaker[Session], size: int,
                 accelerate: Callable[[ScoringContext], None] | None,
                 health: RegistryHealth | None = None) -> None:
        self._sessions = sessions
        self._health = health or RegistryHealth()
        self._size = size
        self._accelerate = accelerate
        self._lock = threading.Lock()
        self._built: OrderedDict[VersionKey, ScoringContext] = OrderedDict()

    def __len__(self) -> int:
        return len(self._built)

    def _hit(self, key: VersionKey) -> ScoringContext | None:
        with self._lock:
            hit = self._built.get(key)
            if hit is not None:
                self._built.move_to_end(key)
            return hit

    def context(self, production: ScoringContext, pins: Mapping[str, str]) -> ScoringContext:
        """The context with `pins` applied over `production`'s versions; NotFound for a pin
        that names no version, NotApproved for an unapproved one, RegistryUnavailable when
        the database is needed and down."""
        wanted = versions_of(production)
        if all(str(p).strip().isdigit() for p in pins.values()) and set(pins) <= set(FAMILIES):
            # Production's versions, or the same versions again, cost no database query.
            key = version_key({**wanted, **{f: int(p) for f, p in pins.items()}})
            if key == version_key(wanted):
                return production
            hit = self._hit(key)
            if hit is not None:
                return hit
        try:
            built = self._build(production, pins, wanted)
        except Exception as exc:
            if not is_unavailable(exc):
                raise
            self._health.failed(exc, "pinned versions")
            raise RegistryUnavailable(
                "these pinned versions are not loaded here and the registry database cannot "
                "be reached; retry later, or score without options.pin",
                [FieldProblem("options.pin", "cannot be resolved now")]) from None
        self._health.ok()
        return built

    def _build(self, production: ScoringContext, pins: Mapping[str, str],
               wanted: dict[str, int]) -> ScoringContext:
        serving = versions_of(production)
        with self._sessions() as session:
            for family, pin in pins.items():
                wanted[family] = resolve_pin(session, family, str(pin).strip())
            # What production serves decides already; any other version must be approved.
            require_approved(session, {f: wanted[f] for f in pins
                                       if wanted[f] != serving.get(f)})
            key = version_key(wanted)
            if key == version_key(serving):
                return production
            with self._lock:
                if (hit := self._built.get(key)) is not None:
                    self._built.move_to_end(key)
                    return hit
                built = service.build_from(session, wanted)
                if self._accelerate is not None:
                    self._accelerate(built)
                self._built[key] = built
                while len(self._built) > self._size:
                    self._built.popitem(last=False)
                return built


def require_approved(session: Session, pinned: Mapping[str, int]) -> None:
    """NotApproved (409, not_approved) naming options.pin.<family> for each pinned version
    the registry does not hold as approved."""
    approved = repository.approved_among(session, set(pinned.items()))
    refused = {f: v for f, v in pinned.items() if (f, v) not in approved}
    if refused:
        raise service.NotApproved(
            "only approved versions may decide: "
            + ", ".join(f"{f} version {v}" for f, v in sorted(refused.items()))
            + " is not approved",
            [FieldProblem(f"options.pin.{f}", f"version {v} is not approved")
             for f, v in sorted(refused.items())])


def resolve_pin(session: Session, family: str, pin: str) -> int:
    """The version a pin names: a version number that exists or a set alias."""
    field = f"options.pin.{family}"
    if family not in FAMILIES:
        raise NotFound(f"no family {family!r}",
                       [FieldProblem(field, "one of " + ", ".join(FAMILIES))])
    if pin.isdigit():
        if repository.get_version(session, family, int(pin)) is None:
            raise NotFound(f"{family} has no version {pin}",
                           [FieldProblem(field, "unknown version")])
        return int(pin)
    if pin in ALIASES:
        row = repository.get_alias(session, family, pin)
        if row is None:
            raise NotFound(f"{family} has no {pin} alias", [FieldProblem(field, "alias not set")])
        return row.version
    raise NotFound(f"{pin!r} is neither a version number nor an alias",
                   [FieldProblem(field, "a version number or one of " + ", ".join(ALIASES))])
