"""YAML sources built into verified bundles, and contracts read back from any form."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from app.bundles.io import Bundle, build_bundle, read_archive, read_dir
from app.bundles.manifest import CONFIG_FILES
from app.decisions.catalog import Catalog
from app.errors import BundleRejected, PayloadTooLarge
from app.features.family import FeatureContract
from app.scoring.loader import load_family
from app.sources.sources import MODELS, catalog_against_contract, load_source, validate
from app.sources.yaml_source import SourceError, read_yaml

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024
CREATED_BY = "tierwise bundle build"


def document_bytes(kind: str, obj: BaseModel) -> bytes:
    """The bundle file of a validated source: features.json, catalog.json or policy.json."""
    if isinstance(obj, FeatureContract):
        return obj.to_json()
    return (json.dumps(obj.model_dump(mode="json"), indent=1, sort_keys=True) + "\n").encode()


def read_document(bundle: Bundle, kind: str) -> Any:
    """The validated document of a features, catalog or policy bundle."""
    if bundle.family != kind:
        raise BundleRejected(f"this is a {bundle.family} bundle, not a {kind} bundle", [])
    name = CONFIG_FILES[kind]
    try:
        return MODELS[kind].model_validate_json(bundle.files[name])
    except ValidationError as exc:
        raise BundleRejected(f"{name} does not validate: {exc.errors()[0]['msg']}", []) from None


def source_bundle(kind: str, obj: BaseModel, *, label: str = "",
                  created_at: str | None = None, created_by: str = CREATED_BY) -> Bundle:
    """A bundle of one validated source document, checked to read back as the same object."""
    bundle = build_bundle(
        {"family": kind, "label": label, "created_by": created_by,
         "created_at": created_at or _now()},
        {CONFIG_FILES[kind]: document_bytes(kind, obj)},
    )
    # the service's own loader, and the same object back
    if load_family(bundle) != obj or read_document(bundle, kind) != obj:  # pragma: no cover
        raise RuntimeError(f"the {kind} bundle does not read back as its source")
    return bundle


def build_from_source(kind: str, source: Path, *, label: str = "",
                      created_at: str | None = None,
                      contract: FeatureContract | None = None) -> Bundle:
    """Validate SOURCE.yaml (SourceError naming lines) and build its bundle; a catalogue is
    also checked against `contract` when given (the features its rules name)."""
    src = read_yaml(source)
    obj = validate(src, kind)
    if contract is not None and isinstance(obj, Catalog) and \
            (problems := catalog_against_contract(src, obj, contract)):
        raise SourceError(problems)
    return source_bundle(kind, obj, label=label or f"{kind} from {Path(source).name}",
                         created_at=created_at)


def verify_written(out: Path, kind: str, bundle: Bundle) -> None:
    """The directory just written reads back (hashes checked) as the same document."""
    back = read_dir(out)
    if back.sha256 != bundle.sha256 or read_document(back, kind) != read_document(bundle, kind):
        raise RuntimeError(f"{out} does not read back as the bundle just written")


def read_contract(path: Path) -> FeatureContract:
    """A contract from a YAML source, a features bundle directory or its .tar.gz."""
    path = Path(path)
    if path.is_dir():
        contract: FeatureContract = read_document(read_dir(path), "features")
        return contract
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.name.endswith((".tar.gz", ".tgz")):
        data = path.read_bytes()
        contract = read_document(read_archive(data, max_bytes=MAX_ARCHIVE_BYTES), "features")
        return contract
    contract = load_source(path, "features")
    return contract


def contract_error(exc: Exception) -> str:
    """A one-paragraph message for a contract that cannot be read."""
    if isinstance(exc, BundleRejected | PayloadTooLarge):
        details = "; ".join(f"{d.field}: {d.problem}" for d in exc.details)
        return exc.message + (f" ({details})" if details else "")
    return str(exc)  # a SourceError lists one FILE:LINE: problem per line


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
