"""Writing YAML sources for people to read and edit: a contract with a comment per feature,
a catalogue or policy as plain block YAML."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from app.features.family import ContractFeature, FeatureContract, Roles

_PLAIN = re.compile(r"^[a-z][a-z0-9_]*$")
_ROLE_ORDER = tuple(Roles.model_fields)


def scalar(value: Any) -> str:
    """One YAML scalar that reads back as exactly `value` (strings quoted unless plain names)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written to a source")
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        text = repr(value)
        if "e" in text:  # YAML 1.1 reads a float only with a dot in the mantissa: 1.0e-05
            mantissa, exponent = text.split("e")
            text = (mantissa if "." in mantissa else mantissa + ".0") + "e" + exponent
        return text
    text = str(value)
    if _PLAIN.match(text) and yaml.safe_load(text) == text:
        return text
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _comment(note: str, indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in note.splitlines()] if note else []


def _feature(feature: ContractFeature, note: str) -> list[str]:
    out = _comment(note, "  ")
    out.append(f"  - name: {scalar(feature.name)}")
    out.append(f"    kind: {feature.kind}")
    if feature.unit:
        out.append(f"    unit: {scalar(feature.unit)}")
    if feature.minimum is not None:
        out.append(f"    minimum: {scalar(feature.minimum)}")
    if feature.maximum is not None:
        out.append(f"    maximum: {scalar(feature.maximum)}")
    if feature.categories:
        out.append("    categories: [" + ", ".join(json.dumps(c, ensure_ascii=False)
                                                   for c in feature.categories) + "]")
    out.append(f"    nullable: {scalar(feature.nullable)}")
    out.append(f"    description: {scalar(feature.description)}")
    if feature.example is not None:
        out.append(f"    example: {scalar(feature.example)}")
    if feature.reason is not None:
        r = feature.reason
        out += ["    reason:", f"      code: {scalar(r.code)}", f"      up: {scalar(r.up)}",
                f"      down: {scalar(r.down)}", f"      format: {r.format}"]
        if r.offer is not None:
            out.append("      offer:")
            out += [f"        {k}: {scalar(v)}" for k, v in r.offer.model_dump().items()
                    if v is not None]
    return out


def contract_yaml(contract: FeatureContract, *, header: Sequence[str] = (),
                  feature_notes: Mapping[str, str] | None = None,
                  role_notes: Mapping[str, str] | None = None) -> str:
    """The contract as a YAML source: every role written out, a comment above each feature."""
    feature_notes = feature_notes or {}
    role_notes = role_notes or {}
    lines = [f"# {h}".rstrip() for h in header]
    lines += [f"name: {scalar(contract.name)}",
              f"description: {scalar(contract.description)}",
              f"currency: {scalar(contract.currency)}",
              "roles:"]
    roles = contract.roles.model_dump()
    for role in _ROLE_ORDER:
        note = role_notes.get(role, "")
        lines.append(f"  {role}: {scalar(roles[role])}" + (f"  # {note}" if note else ""))
    lines.append("features:")
    for feature in contract.features:
        lines += _feature(feature, feature_notes.get(feature.name, ""))
    return "\n".join(lines) + "\n"


def document_yaml(document: Mapping[str, Any], *, header: Sequence[str] = ()) -> str:
    """A catalogue or policy document as block YAML, keys in the document's order."""
    body = yaml.safe_dump(dict(document), sort_keys=False, allow_unicode=True, width=96,
                          default_flow_style=False)
    return "".join(f"# {h}".rstrip() + "\n" for h in header) + body
