"""Artifact storage: bundle archives kept in the database, checked again every time they load.

The database is the default (and for now only) backend, so a replica needs nothing but the
database URL. A stored archive is re-verified on every load (archive sha256, every file hash,
the manifest's identity): bytes that rot or are tampered with at rest are refused, not served.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.orm import Session

from app.bundles.io import Bundle, read_archive, sha256_hex
from app.errors import BundleRejected, FieldProblem, NotFound, TierwiseError
from app.registry import repository
from app.registry.tables import ArtifactRow, VersionRow

MEDIA_TYPE = "application/gzip"
# Stored archives passed the upload limit when pushed; reading them back must not depend on
# today's limit, only on staying sane.
_STORED_MAX_BYTES = 1 << 30


def make_artifact(archive: bytes) -> ArtifactRow:
    """The artifact row for an archive (linked to its version when the version is inserted)."""
    return ArtifactRow(media_type=MEDIA_TYPE, sha256=sha256_hex(archive), content=archive)


def archive_of(session: Session, row: VersionRow) -> bytes:
    """The stored .tar.gz of a version, checked against its recorded sha256."""
    artifact = repository.get_artifact(session, row.id)
    where = f"{row.family}.v{row.version}"
    if artifact is None:
        raise BundleRejected(f"{where} has no stored artifact", [FieldProblem(where, "missing")])
    if sha256_hex(artifact.content) != artifact.sha256:
        raise BundleRejected(
            f"the stored artifact of {where} does not match its sha256",
            [FieldProblem(where, "artifact bytes changed since the push")],
        )
    return artifact.content


def load_bundle(session: Session, row: VersionRow) -> Bundle:
    """A version's bundle from the database, every hash verified (not yet replayed)."""
    return bundle_of(row, archive_of(session, row))


def bundle_of(row: VersionRow, archive: bytes) -> Bundle:
    """The bundle in a version's stored archive (from archive_of), every hash verified and
    checked to be the version the registry records (not yet replayed)."""
    where = f"{row.family}.v{row.version}"
    try:
        bundle = read_archive(archive, max_bytes=_STORED_MAX_BYTES)
    except BundleRejected as exc:
        raise BundleRejected(f"{where}: {exc.message}", exc.details) from None
    if bundle.sha256 != row.sha256 or bundle.family != row.family:
        raise BundleRejected(
            f"the stored bundle of {where} is not the version that was pushed",
            [FieldProblem(where, f"manifest sha256 {bundle.sha256}, registry says {row.sha256}")],
        )
    return bundle


def load_bundles(session: Session, versions: Mapping[str, int]) -> dict[str, Bundle]:
    """One verified bundle per family, for the given version numbers."""
    out: dict[str, Bundle] = {}
    for family, number in versions.items():
        row = repository.get_version(session, family, number)
        if row is None:
            raise NotFound(f"{family} has no version {number}",
                           [FieldProblem(f"{family}.version", "unknown")])
        out[family] = load_bundle(session, row)
    return out


def describe_failure(exc: Exception) -> dict[str, object]:
    """A JSON-able summary of why a load or build failed (for /v1/status and logs)."""
    if isinstance(exc, TierwiseError):
        return exc.as_dict()
    return {"code": type(exc).__name__, "message": str(exc)[:500], "details": []}
