"""Load-then-swap: each replica serves one immutable scoring context and replaces it whole.

A poller reads the alias table (one tiny query), at once when PostgreSQL notifies an alias
move (app/registry/notify.py) and every poll interval anyway. When production (or the
challenger) moved, the new context is built (app/registry/builder.py: only the families
that changed are loaded from the store and verified — hashes, reference replay — then the
families are checked to fit together) and only then swapped in, as one reference
assignment: requests in flight keep the context they started with. A version that fails is
never swapped in; the old context keeps serving and the failure is reported by status().
Work that can wait (the reasons' attributions) runs after the swap, off the swap's path.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from app.engine.compiled import evaluator_info
from app.errors import NotReady, TierwiseError
from app.registry import repository, store
from app.registry.builder import Built, ContextBuilder
from app.registry.database import is_unavailable
from app.registry.outage import RegistryHealth
from app.registry.pins import PinnedContexts, VersionKey, version_key, versions_of
from app.registry.poller import AliasPoller
from app.registry.tables import utcnow
from app.scoring.context import ScoringContext

log = logging.getLogger("tierwise.registry.live")

__all__ = ["AliasPoller", "LiveScoring", "SwapListener", "customer_share"]

SwapListener = Callable[[str, str, int], None]


class Listening(Protocol):
    """What status() reads of the alias-move listener (app/registry/notify.py)."""

    @property
    def listening(self) -> bool: ...


def customer_share(customer_id: str) -> float:
    """Where a customer falls in [0, 1): first 8 bytes of sha256(customer_id) / 2**64."""
    return int.from_bytes(hashlib.sha256(customer_id.encode()).digest()[:8], "big") / 2**64


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() if t else None


@dataclass(frozen=True, slots=True)
class _Live:
    """What a replica serves: production, plus the challenger when the policy uses one."""

    production: Built
    challenger: Built | None


class LiveScoring:
    """The scoring contexts live in this replica, and how a request picks one."""

    def __init__(self, *, sessions: sessionmaker[Session], pin_cache_size: int = 4,
                 accelerate: Callable[[ScoringContext], None] | None = None,
                 warm: Callable[[ScoringContext], None] | None = None,
                 recent_contexts: int = 4,
                 health: RegistryHealth | None = None) -> None:
        self._sessions = sessions
        self.health = health or RegistryHealth()
        # Runs on every context built here, before it can serve (e.g. the native evaluator).
        self._accelerate = accelerate
        # Runs on a context once it serves, in a thread of its own (e.g. attributions).
        self._warm = warm
        self.builder = ContextBuilder(recent=recent_contexts, accelerate=accelerate)
        self._last_build_seconds: float | None = None
        self.listener: Listening | None = None  # set by the runtime on PostgreSQL
        self._live: _Live | None = None
        self._aliases: dict[str, dict[str, int]] = {}
        self._build_lock = threading.Lock()
        self._pinned = PinnedContexts(sessions=sessions, size=pin_cache_size,
                                      accelerate=accelerate, health=self.health)
        self._unapproved: set[tuple[str, int]] = set()  # challenger versions refused
        self._listeners: list[SwapListener] = []
        self._refused: set[tuple[str, VersionKey]] = set()
        self._last_failure: dict[str, Any] | None = None
        self._last_swap_at: dt.datetime | None = None
        self._last_refresh_at: dt.datetime | None = None
        self._swaps = 0

    # --- the request path ------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True once a verified context is live."""
        return self._live is not None

    def current(self) -> ScoringContext:
        """The production context (raises NotReady before the first one is loaded)."""
        live = self._live
        if live is None:
            raise NotReady("no verified scoring context is live yet; see /v1/status")
        return live.production.context

    def for_request(self, *, customer_id: str, pins: Mapping[str, str]
                    ) -> tuple[ScoringContext, ScoringContext | None]:
        """(context that answers, shadow context to score as well, or None)."""
        live = self._live
        if live is None:
            raise NotReady("no verified scoring context is live yet; see /v1/status")
        production = live.production.context
        if pins:
            return self._pinned.context(production, pins), None
        if live.challenger is None:
            return production, None
        challenger = live.challenger.context
        setting = production.policy.challenger
        if setting.mode == "split":
            if customer_share(customer_id) < setting.share:
                return challenger, None
            return production, None
        if setting.mode == "shadow":
            return production, challenger
        return production, None

    def alias_of(self, ctx: ScoringContext) -> str:
        """The alias a context answered for: "challenger" for the challenger's context,
        else "production" (pinned contexts are named by the data plane)."""
        live = self._live
        if live is not None and live.challenger is not None and ctx is live.challenger.context:
            return "challenger"
        return "production"

    # --- refresh and swap ------------------------------------------------------------

    def add_swap_listener(self, callback: SwapListener) -> None:
        """Call `callback(event, family, version)` on load, swap, swap_failed and challenger_*."""
        self._listeners.append(callback)

    def refresh(self) -> bool:
        """Poll the aliases; build, verify and swap what changed. True when something swapped."""
        with self._build_lock:
            try:
                with self._sessions() as session:
                    aliases = repository.alias_map(session)
                    challengers = {(f, a["challenger"]) for f, a in aliases.items()
                                   if "challenger" in a}
                    approved = repository.approved_among(session, challengers)
            except Exception as exc:  # database down: keep serving what we have
                if is_unavailable(exc):
                    self.health.failed(exc, "alias poll")
                else:
                    self._fail("database", {}, exc)
                return False
            self.health.ok()
            self._aliases, self._last_refresh_at = aliases, utcnow()
            live = self._live
            production = live.production if live else None
            target = {f: a["production"] for f, a in aliases.items() if "production" in a}
            announce: list[tuple[str, ScoringContext | None, ScoringContext]] = []
            started = time.perf_counter()
            if production is None or versions_of(production.context) != target:
                built = self._try_build("production", target, production)
                if built is not None:
                    announce.append(("load" if production is None else "swap",
                                     production.context if production else None,
                                     built.context))
                    production = built
            if production is None:
                return False
            challenger = live.challenger if live and live.production is production else None
            chal_target = self._challenger_target(production.context, aliases, approved)
            if chal_target is None:
                challenger = None
            elif challenger is None or versions_of(challenger.context) != chal_target:
                challenger = self._try_build("challenger", chal_target, production)
                if challenger is not None:
                    announce.append(("challenger_swap",
                                     live.challenger.context if live and live.challenger
                                     else None, challenger.context))
            if live and live.production is production and live.challenger is challenger:
                return False
            self._live = _Live(production, challenger)  # the swap: one reference
            if live is None or live.production is not production:
                self._last_swap_at = utcnow()
                self._last_build_seconds = round(time.perf_counter() - started, 4)
                self._swaps += 1
            for event, old, new in announce:  # after the swap: listeners see the new context
                self._announce(event, old, new)
            self._warm_up([c for c in (production, challenger) if c is not None])
            return True

    def _warm_up(self, contexts: list[Built]) -> None:
        """What can wait until a new context serves, in a thread of its own so the swap never
        waits for it: the context's native evaluator (Booster.predict answers meanwhile,
        with the same raw scores), then the attributions for reasons (a request needing
        them first builds them itself)."""
        warm, builder = self._warm, self.builder
        if warm is None and all(c.evaluator_ready for c in contexts):
            return

        def run() -> None:
            for built in contexts:
                try:
                    builder.finish(built)
                    if warm is not None:
                        warm(built.context)
                except Exception:  # the evaluator falls back inside; reasons build lazily
                    log.exception("preparing a live context failed")

        threading.Thread(target=run, name="tierwise-context-warm-up", daemon=True).start()

    def _challenger_target(self, production: ScoringContext,
                           aliases: Mapping[str, Mapping[str, int]],
                           approved: set[tuple[str, int]]) -> dict[str, int] | None:
        """Production's versions with the challenger aliases over them; only approved
        versions decide, so a challenger alias on an unapproved version is left out (logged
        and counted once as challenger_unapproved)."""
        if production.policy.challenger.mode == "off":
            return None
        base = versions_of(production)
        target = dict(base)
        for family, named in aliases.items():
            version = named.get("challenger")
            if version is None or version == base.get(family):
                continue
            if (family, version) in approved:
                target[family] = version
            elif (family, version) not in self._unapproved:
                self._unapproved.add((family, version))
                log.warning("challenger %s version %d is not approved: not loaded (only "
                            "approved versions decide or shadow)", family, version)
                self._notify("challenger_unapproved", family, version)
        return None if target == base else target

    def _try_build(self, kind: str, target: dict[str, int],
                   base: Built | None) -> Built | None:
        key = (kind, version_key(target))
        if key in self._refused:
            return None  # refused before: an immutable version will not verify next time either
        try:
            with self._sessions() as session:
                # The first context gets its evaluator before it serves (ready means full
                # speed); later ones swap in at once and get it right after (_warm_up).
                return self.builder.build(session, target, base,
                                          defer=self._live is not None)
        except Exception as exc:
            if is_unavailable(exc):  # not the version's fault: try again at the next poll
                self.health.failed(exc, f"loading {kind}")
                return None
            if isinstance(exc, TierwiseError):
                self._refused.add(key)
            self._fail(kind, target, exc, base.context if base else None)
            return None

    def _fail(self, kind: str, target: dict[str, int], exc: Exception,
              old: ScoringContext | None = None) -> None:
        live_versions = versions_of(old) if old else {}
        rejected = {f: v for f, v in target.items() if live_versions.get(f) != v}
        self._last_failure = {"at": utcnow().isoformat(), "kind": kind, "versions": target,
                              "not_swapped_in": rejected, "error": store.describe_failure(exc)}
        log.error("registry refresh failed (%s, %s): %s", kind, rejected or target, exc,
                  exc_info=not isinstance(exc, TierwiseError))
        event = "challenger_failed" if kind == "challenger" else "swap_failed"
        for family, version in rejected.items():
            self._notify(event, family, version)

    def _announce(self, event: str, old: ScoringContext | None, new: ScoringContext) -> None:
        before = versions_of(old) if old else {}
        changed = {f: v for f, v in versions_of(new).items() if before.get(f) != v}
        log.info("registry %s: %s", event, changed)
        for family, version in changed.items():
            self._notify(event, family, version)

    def _notify(self, event: str, family: str, version: int) -> None:
        for callback in list(self._listeners):
            try:
                callback(event, family, version)
            except Exception:  # a metrics hook must never break a swap
                log.exception("swap listener failed")

    # --- reporting -------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What this replica serves, what the registry says, and the last failure."""
        live = self._live
        registry = {f: a["production"] for f, a in self._aliases.items() if "production" in a}
        production = live.production.context if live else None
        setting = production.policy.challenger if production else None
        return {
            "ready": live is not None,
            "in_sync": bool(production and versions_of(production) == registry),
            "versions": production.models_served if production else {},
            "evaluator": evaluator_info(production.evaluator)[0] if production else None,
            "isa": evaluator_info(production.evaluator)[1] if production else None,
            "trees": production.num_trees if production else {},
            "registry_production": registry,
            "aliases": self._aliases,
            "challenger": {
                "mode": setting.mode if setting else "off",
                "share": setting.share if setting else 0.0,
                "versions": versions_of(live.challenger.context)
                if live and live.challenger else None,
            },
            "last_swap_at": _iso(self._last_swap_at),
            "last_refresh_at": _iso(self._last_refresh_at),
            "swaps": self._swaps,
            "last_build_seconds": self._last_build_seconds,
            "recent_contexts": self.builder.recent,
            "last_failure": self._last_failure,
            "pinned_contexts": len(self._pinned),
            "alias_notify": None if self.listener is None
            else ("listening" if self.listener.listening else "polling"),
            **self.health.status(),
        }
