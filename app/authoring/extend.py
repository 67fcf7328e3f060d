"""`tierwise contract extend`: a contract plus the features a new model or table reads, added
as optional features, so every request valid under the contract today stays valid.

BASE is a contract (YAML source, features bundle directory or .tar.gz). Each `--with` source
is a model bundle (directory or .tar.gz: the features its manifest declares, with their
reason texts), a features bundle (its contract's features), or a data table (.csv/.parquet:
drafted as `tierwise contract init` drafts it). A feature BASE already declares is kept as
BASE declares it, provided the source's feature reads the same from requests: a model's
encoding must fit (`encoding_fits`); a table's values must be valid values of BASE's
declaration (kind, range, categories). Otherwise it is an error naming the feature and both
declarations: the source needs a different name, or BASE a new (breaking) version. A feature
BASE does not declare is appended, `nullable: true`, with a comment saying where it came from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from app.authoring.build import MAX_ARCHIVE_BYTES, read_document
from app.authoring.draft import draft_contract, read_any_table
from app.authoring.emit import contract_yaml
from app.bundles.io import Bundle, read_archive, read_dir
from app.bundles.manifest import MODEL_FAMILIES
from app.features.family import (
    ContractChanges,
    ContractFeature,
    FeatureContract,
    ReasonText,
    contract_changes,
    encoding_fits,
)
from app.features.spec import FeatureSpec
from app.training.custom import feature_name

_NUMERIC = ("number", "integer")


class ExtendError(ValueError):
    """A source cannot be added to the contract (names the source, feature and reason)."""


@dataclass(frozen=True)
class Found:
    """One feature as a `--with` source declares it."""

    spec: ContractFeature
    source: str
    from_table: bool = False
    # a table's numeric values, lowest and highest (its categories are the values it holds)
    observed: tuple[float, float] | None = None
    whole: bool = True  # a table's numbers are all whole
    note: str = ""


@dataclass
class Extension:
    """The extended contract, what was kept and added, and its changes against BASE."""

    base: FeatureContract
    contract: FeatureContract
    base_source: str
    sources: list[str]
    kept: dict[str, list[str]] = field(default_factory=dict)  # BASE feature → sources with it
    added: dict[str, str] = field(default_factory=dict)  # new feature → its first source
    notes: dict[str, str] = field(default_factory=dict)
    changes: ContractChanges = field(default_factory=ContractChanges)

    def yaml(self) -> str:
        header = [
            f"Contract {self.base.name!r} from {self.base_source}, extended by `tierwise "
            "contract extend` with " + ", ".join(self.sources) + ".",
            "BASE's features are as BASE declares them (comments of a YAML BASE are not "
            "carried over);",
            f"the {len(self.added)} new features are optional (nullable), so requests valid "
            "under BASE stay valid.",
            "Review the new features' descriptions, units and ranges, then `tierwise bundle "
            "build features THIS.yaml --out DIR`.",
            "Guide: docs/authoring.md (\"Extending a contract\").",
        ]
        return contract_yaml(self.contract, header=header, feature_notes=self.notes)


def describe_spec(spec: FeatureSpec) -> str:
    """A feature's declaration in a few words: `integer 18..120, required`."""
    if spec.kind == "category":
        what = "category [" + ", ".join(spec.categories) + "]"
    elif spec.kind in _NUMERIC and (spec.minimum is not None or spec.maximum is not None):
        lo = "" if spec.minimum is None else f"{spec.minimum:g}"
        hi = "" if spec.maximum is None else f"{spec.maximum:g}"
        what = f"{spec.kind} {lo}..{hi}"
    else:
        what = spec.kind
    return what + (", optional" if spec.nullable else ", required")


def misfit(found: Found, declared: FeatureSpec) -> str | None:
    """Why `found` cannot be read as `declared`, or None when it can."""
    if not found.from_table:
        return encoding_fits(found.spec, declared)
    kind = found.spec.kind
    flags = kind == "integer" and declared.kind == "boolean" and found.observed is not None \
        and found.observed[0] >= 0 and found.observed[1] <= 1  # 0/1 is read as false/true
    if not (flags or kind == declared.kind or (kind in _NUMERIC and declared.kind in _NUMERIC)):
        return f"the table holds {kind} values, the contract declares {declared.kind}"
    if kind == "category":
        extra = [v for v in found.spec.categories if v not in declared.categories]
        if extra:
            return "the table holds " + ", ".join(repr(v) for v in extra[:5]) + \
                (f" and {len(extra) - 5} more" if len(extra) > 5 else "") + \
                ", not categories of the contract's"
    if found.observed is not None and not flags:
        lo, hi = found.observed
        if (declared.minimum is not None and lo < declared.minimum) or \
                (declared.maximum is not None and hi > declared.maximum):
            return f"the table holds {lo:g} to {hi:g}, outside the contract's range"
        if declared.kind == "integer" and not found.whole:
            return "the table holds numbers that are not whole, the contract declares integer"
    if found.spec.nullable and not declared.nullable:
        return "the table has missing values, the contract requires a value (fill them, " \
            "or drop those rows)"
    return None


def _bundle(path: Path) -> Bundle:
    if path.is_dir():
        return read_dir(path)
    return read_archive(path.read_bytes(), max_bytes=MAX_ARCHIVE_BYTES)


def bundle_features(path: Path) -> list[Found]:
    """The features a model bundle reads (with its reason texts), or a features bundle's."""
    bundle = _bundle(path)
    source = f"{bundle.family} bundle {path.name}"
    if bundle.family == "features":
        contract: FeatureContract = read_document(bundle, "features")
        return [Found(f, source) for f in contract.features]
    if bundle.family not in MODEL_FAMILIES:
        raise ExtendError(f"{path}: a {bundle.family} bundle declares no features; give model "
                          "bundles (tier, churn, products), a features bundle or data tables")
    codes = bundle.manifest.reason_codes
    return [Found(ContractFeature(**spec.model_dump(),
                                  reason=ReasonText(**codes[spec.name].model_dump())
                                  if spec.name in codes else None), source)
            for spec in bundle.manifest.features]


def table_features(path: Path, *, id_column: str | None = None,
                   categorical: Sequence[str] = (), delimiter: str | None = None,
                   exclude: Sequence[str] = ()) -> list[Found]:
    """The features a table's columns draft to (as `contract init` drafts them), each with
    the values the table holds."""
    draft = draft_contract(path, id_column=id_column, categorical=categorical,
                           delimiter=delimiter, exclude=exclude)
    table = read_any_table(path, delimiter=delimiter, categorical=categorical)
    column_of = {feature_name(c): c for c in table.column_names
                 if c != id_column and c not in exclude}
    out = []
    for f in draft.contract.features:
        column = table.column(column_of[f.name])
        observed, whole = None, True
        if f.kind in _NUMERIC:
            values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
            present = values[~np.isnan(values)]
            observed = (float(present.min()), float(present.max()))
            whole = bool((np.mod(present, 1.0) == 0).all())
        where = f" (column {column_of[f.name]!r})"
        out.append(Found(f, path.name + where, from_table=True, observed=observed,
                         whole=whole, note=draft.notes.get(f.name, "").removesuffix(where)))
    return out


def source_features(path: Path, **table_options: object) -> list[Found]:
    """The features of one `--with` source: a bundle directory or .tar.gz, or a table."""
    path = Path(path)
    if not path.exists():
        raise ExtendError(f"--with {path} does not exist")
    if path.is_dir() or path.name.endswith((".tar.gz", ".tgz")):
        return bundle_features(path)
    return table_features(path, **table_options)  # type: ignore[arg-type]


def extend(base: FeatureContract, found: Sequence[Found], *, base_source: str,
           sources: Sequence[str]) -> Extension:
    """BASE with every feature of `found` it does not declare appended as optional."""
    ext = Extension(base=base, contract=base, base_source=base_source, sources=list(sources))
    added: dict[str, Found] = {}
    for item in found:
        name = item.spec.name
        declared, where = base.feature(name), f"contract {base.name!r} ({base_source})"
        if declared is None and name in added:
            declared, where = added[name].spec, added[name].source
        if declared is not None:
            if problem := misfit(item, declared):
                raise ExtendError(
                    f"feature {name!r}: {item.source} declares it {describe_spec(item.spec)}; "
                    f"{where} declares it {describe_spec(declared)}: {problem}. Give it "
                    "another name in the source, or change the contract in a new version")
            if name in added:
                continue
            if item.source not in ext.kept.setdefault(name, []):
                ext.kept[name].append(item.source)
            continue
        spec = item.spec.model_copy(update={"nullable": True})
        added[name] = Found(spec, item.source, item.from_table, item.observed, item.whole,
                            item.note)
        ext.added[name] = item.source
        ext.notes[name] = (f"added from {item.source}: optional, so callers of "
                           f"{base.name!r} today are unaffected"
                           + (f"\n{item.note}" if item.note else ""))
    for name, sources_with in ext.kept.items():
        ext.notes[name] = f"kept as {base.name!r} declares it; also in " + \
            ", ".join(sources_with)
    ext.contract = FeatureContract(
        **{**base.model_dump(exclude={"features"}),
           "features": (*base.features, *(f.spec for f in added.values()))})
    ext.changes = contract_changes(base, ext.contract)
    if ext.changes.is_breaking:  # pragma: no cover - only optional features are appended
        raise RuntimeError("extending a contract changed it in a breaking way: "
                           + "; ".join(ext.changes.breaking))
    return ext
