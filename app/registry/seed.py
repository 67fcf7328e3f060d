"""First start: an empty registry is filled from models/ and those versions go to production."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session

from app.bundles.io import read_dir, to_archive
from app.bundles.manifest import FAMILIES
from app.errors import TierwiseError
from app.registry import repository, service
from app.registry.auth_keys import SYSTEM

log = logging.getLogger("tierwise.registry")


class RegistryStartupError(RuntimeError):
    """The registry cannot start: unreachable database, missing or invalid default models."""


def seed_from_dir(*, session: Session, models_dir: Path, max_bytes: int) -> dict[str, int]:
    """Publish models_dir/<family> as version 1 of each family and mark it production.

    Only an empty registry is seeded; returns the versions seeded ({} when not empty). The
    seed is recorded in the ledger like any push and alias move, by the "system" actor; it
    needs no approval because nothing was in production to protect.
    """
    if repository.count_versions(session) > 0:
        return {}
    models_dir = Path(models_dir)
    missing = [f for f in FAMILIES if not (models_dir / f / "manifest.json").is_file()]
    if missing:
        raise RegistryStartupError(
            f"the registry is empty and {models_dir} has no bundle for "
            + ", ".join(missing)
            + f" (expected {models_dir}/<family>/manifest.json). Train the default models "
            "(`make models`) or point TIERWISE_MODELS_DIR at bundles, or set "
            "TIERWISE_SEED_REGISTRY=false and push versions yourself."
        )
    try:
        archives = {f: to_archive(read_dir(models_dir / f)) for f in FAMILIES}
        versions = {
            f: service.publish(session=session, family=f, archive=archives[f], actor=SYSTEM,
                               max_bytes=max(max_bytes, len(archives[f]))).version
            for f in FAMILIES
        }
        service.move_aliases(
            session=session, actor=SYSTEM, reason="seed", note=f"seeded from {models_dir}",
            moves=[service.AliasMove(f, "production", v) for f, v in versions.items()],
        )
    except TierwiseError as exc:
        details = "; ".join(f"{d.field}: {d.problem}" for d in exc.details[:5])
        raise RegistryStartupError(
            f"the default models in {models_dir} cannot be seeded: {exc.message}"
            + (f" ({details})" if details else "")
        ) from exc
    log.info("seeded the registry from %s: %s", models_dir, versions)
    return versions
