"""`tierwise contract init`: a first contract YAML drafted from the bank's own table.

Each column becomes a feature: its kind (integer, number, boolean, category), a range with a
margin around what the table holds (non-negative columns stay >= 0), its categories, whether
it may be missing; a comment above it says how much of the table is missing and what was
observed. Roles are guessed from column names (age, aum/balance/assets, risk profile,
assessment age, maturity) or left null with a TODO. Descriptions are placeholders to write.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from app.authoring.emit import contract_yaml
from app.features.family import ContractFeature, FeatureContract, Roles
from app.training.custom import MAX_CATEGORIES, feature_name

_DELIMITERS = ",;\t|"
_SNIFF_BYTES = 64 * 1024


class DraftError(ValueError):
    """The table cannot be drafted into a contract (names the column and the reason)."""


def read_any_table(path: Path, *, delimiter: str | None = None,
                   categorical: Sequence[str] = ()) -> pa.Table:
    """A CSV (delimiter given or sniffed) or Parquet file as an Arrow table."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return pq.read_table(path)
    if suffix not in (".csv", ".txt", ".tsv"):
        raise DraftError(f"{path.name}: use a .csv or .parquet file")
    if delimiter is None:
        with path.open("r", encoding="utf-8", errors="replace", newline="") as fh:
            sample = fh.read(_SNIFF_BYTES)
        try:
            delimiter = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
        except csv.Error:
            delimiter = "\t" if suffix == ".tsv" else ","
    if len(delimiter) != 1:
        raise DraftError(f"the delimiter must be one character, not {delimiter!r}")
    try:
        return pacsv.read_csv(
            path, parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(
                strings_can_be_null=True, column_types={c: pa.string() for c in categorical}))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DraftError(f"{path.name} cannot be read as CSV: {exc}") from None


def _round_out(x: float, up: bool) -> float:
    """`x` rounded away from the data to two significant digits."""
    if x == 0:
        return 0.0
    step = 10 ** (math.floor(math.log10(abs(x))) - 1)
    return float((math.ceil if up else math.floor)(x / step) * step)


def _fmt(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() or abs(x) >= 1e4 else f"{x:,.6g}"


# role → (name patterns tried in order, kinds it needs)
_ROLE_PATTERNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "aum": ((r"^aum(_|$)", r"(^|_)aum($|_)", r"(^|_)(total_)?assets?($|_)", r"^balance$",
             r"(^|_)balance($|_)", r"(^|_)wealth($|_)"), ("number", "integer")),
    "age": ((r"^age$", r"^(customer_|client_)?age(_years?)?$"), ("number", "integer")),
    "risk_profile": ((r"risk_(profile|type|class|level)", r"^risk$"), ("category",)),
    "risk_assessment_age_days": ((r"(risk_)?assessment.*(age|days)",
                                  r"days_since.*assessment"), ("number", "integer")),
    "days_to_next_maturity": ((r"maturity",), ("number", "integer")),
}


def guess_roles(features: Sequence[ContractFeature]) -> dict[str, str | None]:
    """role → the feature whose name fits it (None when none does)."""
    roles: dict[str, str | None] = {}
    taken: set[str] = set()
    for role, (patterns, kinds) in _ROLE_PATTERNS.items():
        roles[role] = None
        for pattern in patterns:
            hit = next((f for f in features if f.name not in taken and f.kind in kinds
                        and re.search(pattern, f.name) and _role_ok(role, f)), None)
            if hit is not None:
                roles[role] = hit.name
                taken.add(hit.name)
                break
    return roles


def _role_ok(role: str, feature: ContractFeature) -> bool:
    if role == "risk_profile":
        return all(re.fullmatch(r"C[1-5]", c) for c in feature.categories)
    return True


@dataclass
class _Column:
    spec: dict[str, Any]
    note: str
    high: float | None = None


@dataclass
class Draft:
    """A drafted contract and the comments that go with it."""

    contract: FeatureContract
    notes: dict[str, str] = field(default_factory=dict)
    role_notes: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    source: str = ""

    def yaml(self) -> str:
        header = [f"Feature contract drafted by `tierwise contract init` from {self.source}.",
                  "Review every feature: write descriptions and units, check kinds, ranges,",
                  "nullability and roles, then `tierwise bundle build features THIS.yaml "
                  "--out DIR`.",
                  "JSON Schema: docs/schemas/features.schema.json; guide: docs/authoring.md."]
        header += [f"left out: column {c!r}: {why}" for c, why in self.skipped.items()]
        return contract_yaml(self.contract, header=header, feature_notes=self.notes,
                             role_notes=self.role_notes)


def _numeric(name: str, column: pa.ChunkedArray, source: str, rows: int) -> _Column | None:
    values = column.cast(pa.float64()).to_numpy(zero_copy_only=False)
    present = values[~np.isnan(values)]
    if len(present) == 0:
        return None
    if not np.isfinite(present).all():
        raise DraftError(f"column {source!r} has infinite values")
    lo, hi = float(present.min()), float(present.max())
    integer = pa.types.is_integer(column.type)
    missing = rows - len(present)
    spec: dict[str, Any] = {"kind": "integer" if integer else "number",
                            "nullable": missing > 0}
    if integer and set(np.unique(present)) <= {0.0, 1.0}:
        spec.update(minimum=0, maximum=1)
        observed = "a 0/1 flag"
    else:
        span = max(hi - lo, abs(hi), abs(lo), 1.0)
        spec["minimum"] = 0 if lo >= 0 else _round_out(lo - span, up=False)
        spec["maximum"] = _round_out(hi + span, up=True)
        observed = f"observed {_fmt(lo)} to {_fmt(hi)}"
    median = float(np.median(present))
    spec["example"] = round(median) if integer else round(median, 4)
    return _Column(spec, f"{observed}; {_missing(missing, rows)}", hi)


def _categorical(column: pa.ChunkedArray, source: str, rows: int) -> _Column:
    text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
    counts = Counter(v for v in text.to_pylist() if v is not None)
    if len(counts) > MAX_CATEGORIES:
        raise DraftError(f"column {source!r} has {len(counts)} distinct values, too many for a "
                         "category (an identifier? pass it as --id-column)")
    missing = rows - sum(counts.values())
    spec = {"kind": "category", "categories": sorted(counts), "nullable": missing > 0,
            "example": counts.most_common(1)[0][0]}
    return _Column(spec, f"{len(counts)} categories; {_missing(missing, rows)}")


def _boolean(column: pa.ChunkedArray, rows: int) -> _Column:
    counts = Counter(v for v in column.to_pylist() if v is not None)
    missing = rows - sum(counts.values())
    spec = {"kind": "boolean", "nullable": missing > 0, "example": counts.most_common(1)[0][0]}
    return _Column(spec, f"true in {counts[True]} rows; {_missing(missing, rows)}")


def _missing(missing: int, rows: int) -> str:
    share = 100.0 * missing / rows if rows else 0.0
    return f"missing in {share:.1f}% of {rows} rows"


def _column(name: str, column: pa.ChunkedArray, *, categorical: bool, source: str,
            rows: int) -> _Column | str:
    """The drafted feature of one column, or why it was left out."""
    t = column.type
    if column.null_count == len(column) or pa.types.is_null(t):
        return "no values"
    if categorical or pa.types.is_string(t) or pa.types.is_large_string(t) or \
            pa.types.is_dictionary(t):
        return _categorical(column, source, rows)
    if pa.types.is_boolean(t):
        return _boolean(column, rows)
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return _numeric(name, column, source, rows) or "no values"
    return f"type {t} is not a number, text or true/false (convert dates to numbers such " \
        "as days since)"


def draft_contract(path: Path, *, id_column: str | None = None,
                   categorical: Sequence[str] = (), delimiter: str | None = None,
                   name: str | None = None, exclude: Sequence[str] = ()) -> Draft:
    """A contract drafted from the columns of a table, with its comments (columns in
    `exclude`, such as labels, are not features)."""
    path = Path(path)
    if not path.is_file():
        raise DraftError(f"{path} is not a file")
    table = read_any_table(path, delimiter=delimiter, categorical=categorical)
    columns = table.column_names
    for wanted, what in [(id_column, "id column"),
                         *((c, "categorical column") for c in categorical),
                         *((c, "excluded column") for c in exclude)]:
        if wanted is not None and wanted not in columns:
            raise DraftError(f"{what} {wanted!r} is not a column of {path.name} "
                             f"(columns: {', '.join(columns[:20])})")
    rows = table.num_rows
    features: list[ContractFeature] = []
    names: dict[str, str] = {}
    notes: dict[str, str] = {}
    skipped: dict[str, str] = {}
    highs: dict[str, float | None] = {}
    for column in columns:
        if column == id_column or column in exclude:
            continue
        fname = feature_name(column)
        if fname in names:
            raise DraftError(f"columns {names[fname]!r} and {column!r} both become feature "
                             f"{fname!r}; rename one")
        names[fname] = column
        got = _column(fname, table.column(column), categorical=column in categorical,
                      source=column, rows=rows)
        if isinstance(got, str):
            skipped[column] = got
            continue
        renamed = f" (column {column!r})" if fname != column else ""
        features.append(ContractFeature(
            name=fname, description=f"TODO: describe column {column!r}.", **got.spec))
        notes[fname] = got.note + renamed
        highs[fname] = got.high
    if not features:
        raise DraftError(f"{path.name} has no columns that can be features")
    roles = guess_roles(features)
    for i, f in enumerate(features):  # people are not older than 120, whatever the margin
        high = highs.get(f.name)
        if f.name == roles["age"] and high is not None and high <= 120 < (f.maximum or 0):
            features[i] = ContractFeature(**{**f.model_dump(), "maximum": 120.0})
    role_notes = {role: "guessed from the name: check it" if fname else
                  "TODO: the feature that plays this role, or leave null"
                  for role, fname in roles.items()}
    contract = FeatureContract(
        name=name or _contract_name(path.stem),
        description=f"TODO: whose contract this is (drafted from {path.name}).",
        roles=Roles(**roles), features=tuple(features))
    return Draft(contract, notes, role_notes, skipped, path.name)


def _contract_name(stem: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_-]+", "_", stem.lower()).strip("_-")
    return cleaned[:64] if re.match(r"^[a-z]", cleaned) else "draft"

