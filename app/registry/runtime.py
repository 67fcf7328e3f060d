"""A replica's registry runtime: database, migrations, first-start seeding, keys, live scoring."""

from __future__ import annotations

import gc
import logging
import os
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.outcomes.decision_ids import DecisionSigner, process_signer
from app.registry import database, repository
from app.registry.auth_keys import SYSTEM, KeyCache, create_key
from app.registry.live import AliasPoller, LiveScoring
from app.registry.notify import AliasListener
from app.registry.outage import RegistryHealth
from app.registry.outcomes import decision_signer
from app.registry.seed import RegistryStartupError, seed_from_dir
from app.scoring.context import ScoringContext

log = logging.getLogger("tierwise.registry")

__all__ = ["RegistryRuntime", "RegistryStartupError", "open_runtime"]


@dataclass
class RegistryRuntime:
    """Everything a replica holds for the registry; close() stops the poller and the engine."""

    settings: Settings
    engine: Engine
    sessionmaker: sessionmaker[Session]
    live: LiveScoring
    keys: KeyCache
    # decision ids: the setting's secret, else the stored one (open_runtime reads it)
    signer: DecisionSigner = field(default_factory=process_signer)
    poller: AliasPoller | None = field(default=None)
    listener: AliasListener | None = field(default=None)

    @property
    def ready(self) -> bool:
        """True once a verified scoring context is live."""
        return self.live.ready

    def wait_ready(self, timeout: float = 60.0) -> bool:
        """Block until the first context is live (or `timeout` passes); True when ready."""
        deadline = time.monotonic() + timeout
        while not self.live.ready and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.live.ready

    def start_polling(self) -> None:
        """Watch the aliases from a background thread; its first refresh loads the first
        context at once. open_runtime() calls it unless told not to (to add listeners first).
        On PostgreSQL (and TIERWISE_REGISTRY_NOTIFY on), a listener wakes the poller as soon
        as an alias move commits."""
        if self.poller is None:
            self.poller = AliasPoller(self.live, interval=self.settings.poll_interval_seconds)
            self.poller.start()
            if self.settings.registry_notify and self.engine.dialect.name == "postgresql":
                self.listener = AliasListener(self.settings.database_url, self.poller.wake)
                self.live.listener = self.listener
                self.listener.start()

    def close(self) -> None:
        """Stop listening and polling and release the database."""
        if self.listener is not None:
            self.listener.stop()
        if self.poller is not None:
            self.poller.stop()
        self.engine.dispose()


def open_runtime(settings: Settings, *, start_poller: bool = True) -> RegistryRuntime:
    """Connect, migrate, seed and start watching the registry; the first context loads in the
    background (`runtime.ready`, or `wait_ready()`). Raises RegistryStartupError on a
    database that cannot be reached or default models that cannot be seeded."""
    engine = database.make_engine(settings.database_url)
    try:
        database.check_reachable(engine)
    except Exception as exc:
        engine.dispose()
        raise RegistryStartupError(
            f"cannot reach the registry database {database.safe_url(settings.database_url)}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    sessions = database.make_sessionmaker(engine)
    try:
        with database.startup_lock(engine):
            signer = _prepare(engine, sessions, settings)
    except BaseException:
        engine.dispose()
        raise
    health = RegistryHealth(log_interval=settings.registry_log_interval_seconds)
    live = LiveScoring(sessions=sessions, accelerate=_accelerator(settings),
                       warm=_attributions(settings), recent_contexts=settings.recent_contexts,
                       health=health)
    live.add_swap_listener(_freeze_long_lived)
    keys = KeyCache(sessions, grace=settings.key_grace_seconds, health=health)
    runtime = RegistryRuntime(settings=settings, engine=engine, sessionmaker=sessions, live=live,
                              keys=keys, signer=signer)
    if start_poller:
        runtime.start_polling()
    return runtime


def _freeze_long_lived(event: str, family: str, version: int) -> None:
    """Once a context is live, move every object alive into the garbage collector's permanent
    generation (gc.freeze). The models' hundreds of thousands of objects are then no longer
    traversed by full collections, which under load otherwise pause serving for 100-150 ms
    about once a second (measured at concurrency 64). A context swapped out later is still
    freed by reference counting (only ~120 small objects of one form cycles), so freezing
    keeps nothing alive that matters."""
    if not event.endswith("_failed"):
        gc.freeze()


def _accelerator(settings: Settings) -> Callable[[ScoringContext], None] | None:
    """Native tree evaluation for every context built, when the settings allow it."""
    if not settings.compile_models:
        return None
    from app.engine.compiled import fastest_evaluator

    def accelerate(ctx: ScoringContext) -> None:
        # Verified against Booster.predict inside; falls back to it, never raises for that.
        ctx.use_evaluator(fastest_evaluator(ctx.layout, cache_dir=settings.compile_cache_dir))

    return accelerate


def _attributions(settings: Settings) -> Callable[[ScoringContext], None] | None:
    """The reasons' attributions (checked against pred_contrib, ~1.5 s for the default
    models), prepared once a context serves, off the swap's path (LiveScoring's warm-up
    thread); a request asking for reasons before that builds them itself (Explainer.of)."""
    if not settings.compile_models:
        return None
    from app.scoring.explain import Explainer

    def warm(ctx: ScoringContext) -> None:
        Explainer.of(ctx, cache_dir=settings.compile_cache_dir)

    return warm


def _prepare(engine: Engine, sessions: sessionmaker[Session],
             settings: Settings) -> DecisionSigner:
    if settings.auto_migrate:
        database.upgrade(engine)
    elif database.current_revision(engine) != database.head_revision():
        raise RegistryStartupError(
            "the registry database is not at the current schema; run `tierwise db upgrade` "
            "or set TIERWISE_AUTO_MIGRATE=true"
        )
    plain = None
    with sessions.begin() as session:
        if settings.seed_registry:
            seed_from_dir(session=session, models_dir=settings.models_dir,
                          max_bytes=settings.max_bundle_bytes)
        if settings.auth_enabled and repository.count_active_keys(session, "admin") == 0:
            # First start with auth on: nobody could call anything, so make one admin key,
            # for the principal "bootstrap admin", created by the actor `system`.
            _row, plain = create_key(session=session, principal="bootstrap admin",
                                     role="admin", actor=SYSTEM)
        signer = decision_signer(session, secret=settings.decision_secret)
    if plain is not None:  # written only once the key is committed
        _write_admin_key(plain, settings.bootstrap_admin_key_file)
    else:
        _protect_admin_key(Path(settings.bootstrap_admin_key_file))
    return signer


def _write_admin_key(plain: str, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        os.fchmod(fd, 0o600)  # os.open's mode applies only to a file it creates
        f.write(plain + "\n")
    print(f"tierwise: admin key written to {path}", file=sys.stderr, flush=True)
    log.warning("created the bootstrap admin key; admin key written to %s", path)


def _protect_admin_key(path: Path) -> None:
    """An admin key file that others may read or write (from an older version, a copy, a
    umask) is made 0600 at start; start is refused when that cannot be done."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        path.chmod(0o600)
    except OSError as exc:
        raise RegistryStartupError(
            f"the admin key file {path} has mode {mode:04o} (others may read it) and cannot "
            f"be made 0600: {exc.strerror or exc}; fix its permissions or remove it") from exc
    log.warning("the admin key file %s had mode %04o; made it 0600", path, mode)
