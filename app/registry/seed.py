"""First start: an empty registry is filled from models/ and those versions go to production.

A registry filled before the feature contract was a family gets the contract alone
(models/features, or the contract its production models read when they do not fit that
one, as features version 1, moved to production) the next time it starts.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session

from app.bundles.io import Bundle, build_bundle, read_dir, to_archive
from app.bundles.manifest import FAMILIES, MODEL_FAMILIES
from app.errors import BundleRejected, TierwiseError
from app.features.family import CONTRACT_FILE, ReasonText, contract_of_models
from app.registry import repository, service, store
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
    """Add a features version 1 and move production to it, when the registry has versions
    but no contract (filled before the contract was a family); else nothing.

    models_dir/features when the production models fit it; otherwise (or when it is absent)
    the contract derived from what the production models read, so requests valid before the
    upgrade stay valid."""
    if repository.latest_version_number(session, "features") > 0:
        return {}
    source = models_dir / "features"
    try:
        archive, origin = None, str(source)
        if (source / "manifest.json").is_file():
            bundle = read_dir(source)
            archive = to_archive(bundle) if _fits_production(session, bundle) else None
        if archive is None:
            archive, origin = _derived_contract(session), "the production models"
        row = service.publish(session=session, family="features", archive=archive,
                              actor=SYSTEM, max_bytes=max(max_bytes, len(archive)))
        service.move_aliases(
            session=session, actor=SYSTEM, reason="seed",
            note=f"feature contract seeded from {origin} (registry filled before contracts)",
            moves=[service.AliasMove("features", "production", row.version)])
    except (TierwiseError, ValueError) as exc:  # ValueError: no valid contract derivable
        message = exc.message if isinstance(exc, TierwiseError) else str(exc)[:500]
        problems = exc.details if isinstance(exc, TierwiseError) else []
        details = "; ".join(f"{d.field}: {d.problem}" for d in problems[:5])
        raise RegistryStartupError(
            f"the registry has no feature contract and none can be seeded: {message}"
            + (f" ({details})" if details else "")
            + ". Push and promote a contract that declares every feature the production "
            "models read (TIERWISE_SEED_REGISTRY=false to start without seeding)."
        ) from exc
    log.info("seeded the feature contract from %s: features version %d", origin, row.version)
    return {"features": row.version}


def _fits_production(session: Session, contract: Bundle) -> bool:
    """Whether the production versions build a context with this contract (True when not
    every other family is in production: nothing to fit yet)."""
    production = {f: a["production"] for f, a in repository.alias_map(session).items()
                  if "production" in a and f != "features"}
    if not all(f in production for f in FAMILIES if f != "features"):
        return True
    try:
        service.build_from(session, production, {"features": contract})
    except BundleRejected as exc:
        log.warning("the production models do not fit the contract in models/features (%s: "
                    "%s); seeding the contract they read instead", exc.message,
                    "; ".join(f"{d.field}: {d.problem}" for d in exc.details[:3]))
        return False
    return True


def _derived_contract(session: Session) -> bytes:
    """The archive of a features bundle declaring what the production models read."""
    production = {f: a["production"] for f, a in repository.alias_map(session).items()
                  if "production" in a and f in MODEL_FAMILIES}
    bundles = store.load_bundles(session, production)
    reasons = {name: ReasonText(**code.model_dump())
               for b in bundles.values() for name, code in b.manifest.reason_codes.items()}
    contract = contract_of_models([b.manifest.features for b in bundles.values()],
                                  reasons=reasons)
    return to_archive(build_bundle(
        {"family": "features", "label": "derived from the production models",
         "created_by": "tierwise seed"}, {CONTRACT_FILE: contract.to_json()}))
