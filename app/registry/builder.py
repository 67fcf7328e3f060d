"""Building a replica's scoring contexts: only what changed is loaded; recent contexts are kept.

A context is one version per family. Building the context for a new set of versions reuses,
for every family whose version did not change, the family object the context it replaces
already holds (loaded and replayed when that one was built). A family that changed is read
from the store and its stored archive hashed again: a family loaded earlier from exactly
those bytes (same version, manifest sha256 and archive sha256) is reused from a small
process-wide cache (service.build_from uses it too: the checks of a push or a promotion);
otherwise the archive is unpacked, every hash checked, and the family loaded and replayed
(app/scoring/loader.py). The last few contexts built are kept whole, evaluator included, so
moving an alias back costs one archive read and hash per family that moved, not a rebuild;
a context whose models and contract did not change keeps the evaluator already checked.

Bytes changed at rest are never taken for the version loaded before: the archive is hashed
on every build, so a tampered version misses both caches, is loaded again and refused.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from app.bundles.io import sha256_hex
from app.bundles.manifest import FAMILIES
from app.errors import BundleRejected, FieldProblem, NotFound
from app.registry import repository, store
from app.scoring.context import ScoringContext, VersionRef, assemble_context, families_of
from app.scoring.loader import Family, load_family

__all__ = ["Built", "ContextBuilder", "Identity", "forget_loaded_families", "stored_family"]

# (family, version, manifest sha256, stored archive sha256), one per family, sorted.
Identity = tuple[tuple[str, int, str, str], ...]
_FamilyKey = tuple[str, int, str]  # (family, version, manifest sha256)
# What an evaluator is built from: the models and the contract that lays out their columns.
_MODEL_PARTS = ("features", "tier", "churn", "products")
K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True, eq=False)
class Built:
    """A context, the sha256 of each stored archive its families were loaded from, and
    whether its evaluator is final (accelerated, or taken over from a context with the same
    models) or still plain Booster.predict until finish()."""

    context: ScoringContext
    archives: Mapping[str, str]
    evaluator_ready: bool = True

    @property
    def identity(self) -> Identity:
        return tuple(sorted((f, ref.version, ref.sha256, self.archives[f])
                            for f, ref in self.context.versions.items()))


@dataclass(frozen=True, slots=True)
class _Loaded:
    archive_sha256: str
    family: Family


class _Lru(Generic[K, V]):
    """A small least-recently-used map, safe to share between threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        with self._lock:
            hit = self._items.get(key)
            if hit is not None:
                self._items.move_to_end(key)
            return hit

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def put(self, key: K, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class ContextBuilder:
    """Builds contexts from the store, reusing loaded families and recent contexts.

    `accelerate` runs on every context built here with models no earlier context had (e.g.
    the native evaluator): before it is returned, or with `defer` at finish(), once it
    serves — until then it evaluates with Booster.predict, the reference the faster
    evaluator must match anyway. A context taken from the recent ones keeps its evaluator."""

    def __init__(self, *, recent: int = 4,
                 accelerate: Callable[[ScoringContext], None] | None = None) -> None:
        self._accelerate = accelerate
        self._contexts: _Lru[Identity, Built] = _Lru(recent)
        self.loads = 0  # families loaded (and replayed) from their archive: what a swap cost
        self.reused = 0  # recent contexts served again without a build
        self._finishing = threading.Lock()

    @property
    def recent(self) -> int:
        """How many built contexts are kept now."""
        return len(self._contexts)

    def build(self, session: Session, target: Mapping[str, int],
              base: Built | None = None, *, defer: bool = False) -> Built:
        """The verified context for `target` (family → version), reusing `base`'s families
        where the version is the same. Raises BundleRejected / NotFound like a full load."""
        kept = base.context.versions if base is not None else {}
        held = families_of(base.context) if base is not None else {}
        loaded: dict[str, Family] = {}
        archives: dict[str, str] = {}
        refs: dict[str, VersionRef] = {}
        for family, version in target.items():
            if base is not None and family in kept and kept[family].version == version:
                loaded[family], refs[family] = held[family], kept[family]
                archives[family] = base.archives[family]
                continue
            loaded[family], archives[family], refs[family], fresh = stored_family(
                session, family, version)
            self.loads += fresh
        identity = tuple(sorted((f, r.version, r.sha256, archives[f]) for f, r in refs.items()))
        if (hit := self._contexts.get(identity)) is not None:
            self.reused += 1
            return hit
        try:
            context = assemble_context(loaded, refs)
        except ValueError as exc:  # e.g. two models declare one feature differently
            raise BundleRejected("these versions do not fit together",
                                 [FieldProblem("features", str(exc))]) from None
        built = Built(context=context, archives=archives)
        if base is not None and all(loaded[f] is held.get(f) for f in _MODEL_PARTS):
            # The same models over the same contract: the checked evaluator applies as it is
            # (a policy or catalogue change costs no evaluator build).
            context.use_evaluator(base.context.evaluator)
            built.evaluator_ready = base.evaluator_ready
        elif self._accelerate is not None:
            built.evaluator_ready = False
            if not defer:
                self.finish(built)
        self._contexts.put(identity, built)
        return built

    def finish(self, built: Built) -> None:
        """Give a context built with `defer` its final evaluator (no-op when it has it)."""
        with self._finishing:
            if built.evaluator_ready or self._accelerate is None:
                return
            self._accelerate(built.context)
            built.evaluator_ready = True


# Families loaded from stored archives, process-wide: the key names the version and its
# manifest sha256, the entry the sha256 of the archive bytes it was loaded from, so a hit
# is exactly what a fresh load of those bytes would give, whatever database they came from.
_LOADED: _Lru[_FamilyKey, _Loaded] = _Lru(4 * len(FAMILIES))


def forget_loaded_families() -> None:
    """Empty the process-wide cache of loaded families (the next build loads every family)."""
    _LOADED.clear()


def stored_family(session: Session, family: str, version: int
                  ) -> tuple[Family, str, VersionRef, bool]:
    """(family object, archive sha256, its VersionRef, whether it was loaded now) for a
    stored version: the archive is read and hashed every time; a family loaded earlier from
    the same bytes is reused, anything else is unpacked, hash-checked and replayed."""
    row = repository.get_version(session, family, version)
    if row is None:
        raise NotFound(f"{family} has no version {version}",
                       [FieldProblem(f"{family}.version", "unknown")])
    archive = store.archive_of(session, row)
    archive_sha = sha256_hex(archive)
    ref = VersionRef(family=family, version=version, sha256=row.sha256)
    key = (family, version, row.sha256)
    hit = _LOADED.get(key)
    if hit is not None and hit.archive_sha256 == archive_sha:
        return hit.family, archive_sha, ref, False
    loaded = load_family(store.bundle_of(row, archive))
    _LOADED.put(key, _Loaded(archive_sha, loaded))
    return loaded, archive_sha, ref, True
