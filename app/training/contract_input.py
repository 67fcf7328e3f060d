"""`--contract C`: read a feature contract and encode a training table's columns as its features.

C is a contract YAML source, a `features` bundle directory, or its .tar.gz. A model trained
against it records `contract: {name, sha256}` (sha256 of the features bundle). For a YAML
source the bundle is built here without a creation time (so the sha256 depends only on the
contract), which differs from the one `tierwise bundle build features` stamps: pass the
features bundle that is pushed to the registry instead (a warning says so).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from app.bundles.io import Bundle, build_bundle, read_archive, read_dir
from app.errors import BundleRejected
from app.features.family import CONTRACT_FILE, ContractRef, FeatureContract
from app.features.spec import FeatureSpec
from app.sources.sources import load_contract as load_contract_source
from app.training.dataset import TrainingDataError, encode_column
from app.training.table import Warn, bool_values, feature_name, number_values, text_values

MAX_ARCHIVE_BYTES = 64 * 1024 * 1024


def _from_yaml(path: Path) -> FeatureContract:
    """A contract YAML source; SourceError (a ValueError) names the line of each problem."""
    return load_contract_source(path)


def contract_bundle(contract: FeatureContract) -> Bundle:
    """The features bundle of a contract, built deterministically (no creation time)."""
    return build_bundle({"family": "features", "label": f"contract {contract.name}",
                         "created_by": "tierwise"}, {CONTRACT_FILE: contract.to_json()})


def load_contract(path: Path | str,
                  warn: Warn | None = None) -> tuple[FeatureContract, ContractRef]:
    """The contract at `path` (YAML, bundle dir or .tar.gz) and its ContractRef."""
    path = Path(path)
    try:
        if path.is_dir():
            bundle = read_dir(path)
        elif path.name.endswith((".tar.gz", ".tgz")):
            bundle = read_archive(path.read_bytes(), max_bytes=MAX_ARCHIVE_BYTES)
        elif path.suffix.lower() in (".yaml", ".yml"):
            contract = _from_yaml(path)
            bundle = contract_bundle(contract)
            if warn is not None:
                warn(f"the model records contract {contract.name!r} as the features bundle "
                     f"built here from {path.name} (sha256 {bundle.sha256[:12]}…), which the "
                     "registry knows only if that exact bundle is pushed; pass the features "
                     "bundle you push (directory or .tar.gz) to --contract instead")
            return contract, ContractRef(name=contract.name, sha256=bundle.sha256)
        elif not path.exists():
            raise TrainingDataError(f"--contract {path} does not exist")
        else:
            raise TrainingDataError(f"--contract {path.name}: give a contract .yaml, a features "
                                    "bundle directory or its .tar.gz")
    except BundleRejected as exc:
        detail = "; ".join(f"{d.field}: {d.problem}" for d in exc.details[:3])
        raise TrainingDataError(f"--contract {path.name}: {exc.message} {detail}".strip()) from None
    if bundle.family != "features" or CONTRACT_FILE not in bundle.files:
        raise TrainingDataError(f"--contract {path.name} is a {bundle.family} bundle, not a "
                                "features bundle")
    contract = FeatureContract.model_validate_json(bundle.files[CONTRACT_FILE])
    return contract, ContractRef(name=contract.name, sha256=bundle.sha256)


def contract_features(
    table: pa.Table,
    contract: FeatureContract,
    *,
    exclude: Sequence[str],
    source: str,
    warn: Warn,
) -> tuple[list[FeatureSpec], np.ndarray, list[str]]:
    """The contract features present in the table (contract order), their encoded matrix, and
    the columns they come from. Columns in `exclude` are skipped; other columns the contract
    does not declare are ignored with a warning."""
    by_name: dict[str, str] = {}
    unknown = []
    for column in table.column_names:
        if column in exclude:
            continue
        name = feature_name(column)
        if name in by_name:
            raise TrainingDataError(
                f"columns {by_name[name]!r} and {column!r} both become feature {name!r}")
        if contract.feature(name) is None:
            unknown.append(column)
            continue
        by_name[name] = column
    if unknown:
        warn(f"{len(unknown)} column(s) of {source} are not features of contract "
             f"{contract.name!r} and are ignored: {', '.join(unknown[:10])}")
    specs = [f.spec() for f in contract.features if f.name in by_name]
    if not specs:
        raise TrainingDataError(
            f"no column of {source} is a feature of contract {contract.name!r} (its features: "
            f"{', '.join(f.name for f in contract.features[:10])})")
    x = np.empty((table.num_rows, len(specs)))
    for i, spec in enumerate(specs):
        column = by_name[spec.name]
        x[:, i] = encode_column(spec, _values(spec, table.column(column), column))
    return specs, x, [by_name[s.name] for s in specs]


def _values(spec: FeatureSpec, column: pa.ChunkedArray, source: str) -> np.ndarray[Any, Any]:
    if spec.kind == "category":
        return text_values(column)
    if spec.kind == "boolean":
        return bool_values(column, source)
    try:
        return number_values(column, source)
    except TrainingDataError:
        raise TrainingDataError(f"column {source!r} must hold numbers: feature {spec.name!r} "
                                f"of the contract is {spec.kind}") from None


def attach_contract(bundle: Bundle, contract: ContractRef | None) -> Bundle:
    """`bundle` with `contract` recorded in its manifest (unchanged when None)."""
    if contract is None:
        return bundle
    fields = bundle.manifest.model_dump(mode="json", exclude_none=True)
    fields.pop("files", None)
    fields["contract"] = contract.model_dump(mode="json")
    return build_bundle(fields, dict(bundle.files))
