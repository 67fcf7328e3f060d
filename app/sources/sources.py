"""The three YAML sources (features, catalog, policy) validated into their models, every
pydantic error reported at the line of the field it is about."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ValidationError

from app.decisions.catalog import Catalog
from app.decisions.policy import Policy
from app.features.family import FeatureContract
from app.sources.yaml_source import Located, Path_, SourceError, SourceProblem, read_yaml

SourceKind = Literal["features", "catalog", "policy"]
SOURCE_KINDS: tuple[SourceKind, ...] = ("features", "catalog", "policy")
MODELS: dict[str, type[BaseModel]] = {
    "features": FeatureContract, "catalog": Catalog, "policy": Policy}

_LEADING_PATH = re.compile(r"^([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)[ :]")
_UNIQUE_KEYS = {"feature names must be unique": ("features", "name"),
                "action ids must be unique": ("actions", "id")}
_YAML_BOOLS = "unquoted yes/no/on/off/true/false are read as true or false by YAML; quote it"


def _hint(err: Any) -> str:
    value = err.get("input")
    if err["type"] == "string_type" and isinstance(value, bool):
        return f" ({_YAML_BOOLS})"
    if err["type"] == "string_type" and type(value).__name__ in ("date", "datetime"):
        return " (YAML reads an unquoted date as a date; quote it)"
    return ""


def _duplicates(src: Located, list_key: str, item_key: str) -> list[Path_]:
    items = src.data.get(list_key) if isinstance(src.data, dict) else None
    seen: set[Any] = set()
    out: list[Path_] = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        value = item.get(item_key) if isinstance(item, dict) else None
        if value in seen:
            out.append((list_key, i, item_key))
        seen.add(value)
    return out


def _where(src: Located, loc: Path_, message: str) -> list[Path_]:
    """Where a model-level error points: its location, or the field its message names."""
    if loc:
        return [loc]
    for prefix, (list_key, item_key) in _UNIQUE_KEYS.items():
        if message.startswith(prefix):
            return _duplicates(src, list_key, item_key) or [(list_key,)]
    if m := _LEADING_PATH.match(message):
        named: Path_ = tuple(m.group(1).split("."))
        if named in src.lines:
            return [named]
    return [()]


def _model_at(model: type[BaseModel], loc: Path_) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at `loc` (None when it is not one)."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a tuple: the item type is found below
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    """The BaseModel inside X | None, tuple[X, ...], dict[str, X] (or None)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _inner_model(arg)) is not None:
            return found
    return None


def _unknown_field(model: type[BaseModel], loc: Path_) -> str:
    owner = _model_at(model, loc[:-1])
    if owner is None or not isinstance(loc[-1], str):
        return "unknown field"
    allowed = list(owner.model_fields)
    close = difflib.get_close_matches(loc[-1], allowed, n=1)
    return ("unknown field" + (f" (did you mean {close[0]}?)" if close else "")
            + "; allowed here: " + ", ".join(allowed))


def problems_of(src: Located, exc: ValidationError,
                model: type[BaseModel] | None = None) -> list[SourceProblem]:
    """pydantic errors as problems at the lines of the YAML source."""
    problems = []
    errors = exc.errors(include_url=False)
    for err in errors:
        loc = tuple(err["loc"])
        if err["type"] == "too_short" and any(
                len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors):
            continue  # pydantic counts the items that failed as absent: noise beside them
        message = err["msg"].removeprefix("Value error, ") + _hint(err)
        if err["type"] == "extra_forbidden" and model is not None and loc:
            message = _unknown_field(model, loc)
        for loc in _where(src, tuple(err["loc"]), message):
            problems.append(src.problem(loc, message))
    return sorted(problems, key=lambda p: p.line)


def validate(src: Located, kind: str) -> Any:
    """The document validated into the model of `kind` (SourceError listing every problem)."""
    model = MODELS[kind]
    try:
        return model.model_validate(src.data)
    except ValidationError as exc:
        raise SourceError(problems_of(src, exc, model)) from None


def load_source(path: Path | str, kind: str) -> Any:
    """A FeatureContract, Catalog or Policy from its YAML source (SourceError on any problem)."""
    if kind not in MODELS:
        raise ValueError(f"unknown source kind {kind!r}; use one of {', '.join(SOURCE_KINDS)}")
    return validate(read_yaml(path), kind)


def load_contract(path: Path | str) -> FeatureContract:
    contract: FeatureContract = load_source(path, "features")
    return contract


def catalog_against_contract(src: Located, catalog: Catalog,
                             contract: FeatureContract) -> list[SourceProblem]:
    """Features a catalogue names (conditions, held and required flags) that the contract
    does not declare, or declares with a kind the rule cannot read — at their lines."""
    problems: list[SourceProblem] = []

    def need(loc: Path_, name: str, kinds: tuple[str, ...] | None, what: str) -> None:
        feature = contract.feature(name)
        if feature is None:
            problems.append(src.problem(loc, f"contract {contract.name!r} does not declare "
                                        f"feature {name!r}"))
        elif kinds is not None and feature.kind not in kinds:
            problems.append(src.problem(loc, f"{what} must be a {' or '.join(kinds)} feature; "
                                        f"{name!r} is {feature.kind}"))

    for i, action in enumerate(catalog.actions):
        rule: Path_ = ("actions", i, "eligibility")
        if action.eligibility.held_flag is not None:
            need((*rule, "held_flag"), action.eligibility.held_flag, ("boolean",), "held_flag")
        for j, flag in enumerate(action.eligibility.requires_flags):
            need((*rule, "requires_flags", j), flag, ("boolean",), "a required flag")
        for j, condition in enumerate(action.eligibility.conditions):
            need((*rule, "conditions", j, "feature"), condition.feature, None, "")
    return sorted(problems, key=lambda p: p.line)
