"""First start: an empty registry is filled from models/ and those versions go to production.

A registry filled before the feature contract was a family gets the contract alone
(models/features as features version 1, moved to production) the next time it starts.
"""

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

    Only an empty registry is seeded; returns the versions seeded ({} when not empty, or
    {"features": 1} when only the contract was missing and has been added). The
    seed is recorded in the ledger like any push and alias move, by the "system" actor; it
    needs no approval because nothing was in production to protect.
    """
    models_dir = Path(models_dir)
    if repository.count_versions(session) > 0:
        return _seed_contract(session, models_dir, max_bytes)
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


def _seed_contract(session: Session, models_dir: Path, max_bytes: int) -> dict[str, int]:
    """Add models_dir/features as features version 1 and production, when the registry has
    versions but no contract (filled before the contract was a family); else nothing."""
    if repository.latest_version_number(session, "features") > 0:
        return {}
    source = models_dir / "features"
    if not (source / "manifest.json").is_file():
        raise RegistryStartupError(
            f"the registry has no feature contract and {source} has no bundle (expected "
            f"{source}/manifest.json). Rebuild the default bundles (`make models`), or push "
            "and promote a features version yourself with TIERWISE_SEED_REGISTRY=false.")
    try:
        archive = to_archive(read_dir(source))
        row = service.publish(session=session, family="features", archive=archive,
                              actor=SYSTEM, max_bytes=max(max_bytes, len(archive)))
        service.move_aliases(
            session=session, actor=SYSTEM, reason="seed",
            note=f"feature contract seeded from {source} (registry filled before contracts)",
            moves=[service.AliasMove("features", "production", row.version)])
    except TierwiseError as exc:
        details = "; ".join(f"{d.field}: {d.problem}" for d in exc.details[:5])
        raise RegistryStartupError(
            f"the feature contract in {source} cannot be seeded: {exc.message}"
            + (f" ({details})" if details else "")
            + ". Push a contract that declares every feature the production models read."
        ) from exc
    log.info("seeded the feature contract from %s: features version %d", source, row.version)
    return {"features": row.version}
