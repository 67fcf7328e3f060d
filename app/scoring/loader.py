"""Turn a hash-checked bundle into a usable family, replaying its reference rows first.

A bundle that does not reproduce its own expected outputs is refused: that catches a model
file swapped for another with a consistent manifest, a broken calibrator, or a feature
encoding that differs between training and serving.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from pydantic import ValidationError

from app.bundles.io import Bundle
from app.decisions.catalog import Catalog
from app.decisions.policy import Policy
from app.engine.model_text import ModelTextError
from app.engine.trees import TreeModel
from app.errors import BundleRejected, FieldProblem
from app.features.family import CONTRACT_FILE, FeatureContract
from app.features.schema import FeatureSchema
from app.scoring.families import ChurnFamily, ProductFamily, TierFamily, calibrate

# Reference outputs must match to this absolute tolerance.
REPLAY_TOLERANCE = 1e-9

Family = FeatureContract | TierFamily | ChurnFamily | ProductFamily | Catalog | Policy


def _reject(message: str, field: str, problem: str) -> BundleRejected:
    return BundleRejected(message, [FieldProblem(field, problem)])


def load_family(bundle: Bundle) -> Family:
    """The family object a bundle describes, verified; raises BundleRejected naming the check."""
    m = bundle.manifest
    if m.family == "features":
        return _config(bundle, CONTRACT_FILE, FeatureContract)
    if m.family == "catalog":
        return _config(bundle, "catalog.json", Catalog)
    if m.family == "policy":
        return _config(bundle, "policy.json", Policy)
    declared = {f.name for f in m.features}
    trees = {name: _tree(bundle, name, file, declared) for name, file in m.models.items()}
    for tree in trees.values():
        if unknown := [n for n in tree.feature_names if n not in declared]:
            raise _reject(  # the strict reader checked this already; LightGBM's names too
                f"model {tree.name} reads features the manifest does not declare",
                m.models[tree.name],
                "undeclared features: " + ", ".join(unknown[:5]),
            )
    family: Family
    if m.family == "tier":
        (tree,) = trees.values()
        if m.wealth is not None:
            if tree.objective != "regression":
                raise _reject("a wealth tier model must be a regression (on log1p wealth)",
                              m.models[tree.name], f"{tree.objective}, not regression")
        elif tree.objective != "multiclass" or tree.num_class != len(m.classes):
            raise _reject(
                "the tier model must be multiclass with one class per tier",
                m.models[tree.name],
                f"{tree.objective} with {tree.num_class} outputs for {len(m.classes)} classes",
            )
        family = TierFamily(model=tree, classes=m.classes, features=m.features,
                            wealth=m.wealth, reference=m.reference)
    elif m.family == "churn":
        (tree,) = trees.values()
        if tree.objective != "binary":
            raise _reject("the churn model must be binary", m.models[tree.name], tree.objective)
        family = ChurnFamily(
            model=tree, calibrator=m.calibrator, reason_codes=m.reason_codes, features=m.features,
            reference=m.reference)
    else:
        for tree in trees.values():
            if tree.objective != "binary":
                raise _reject("product models must be binary", m.models[tree.name], tree.objective)
        family = ProductFamily(models=trees, features=m.features, reference=m.reference)
    replay(bundle, family)
    return family


def _tree(bundle: Bundle, name: str, file: str, declared: set[str]) -> TreeModel:
    try:
        text = bundle.text(file)
    except UnicodeDecodeError as exc:
        raise _reject(f"{file} is not UTF-8 text", file, str(exc)[:300]) from None
    try:
        return TreeModel.from_text(name, text, declared)
    except ModelTextError as exc:
        raise _reject(f"{file} fails the LightGBM text check: {exc.check}", file,
                      exc.problem[:300]) from None
    except (ValueError, Exception) as exc:  # lightgbm raises LightGBMError
        raise _reject(
            f"{file} is not a readable LightGBM text model", file, str(exc)[:300]
        ) from None


def _config(bundle: Bundle, file: str,
            schema: type[Catalog] | type[Policy] | type[FeatureContract],
            ) -> Catalog | Policy | FeatureContract:
    try:
        return schema.model_validate(json.loads(bundle.files[file]))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _reject(f"{file} is not valid JSON", file, str(exc)) from None
    except ValidationError as exc:
        details = [
            FieldProblem(f"{file}:" + ".".join(str(p) for p in e["loc"]), e["msg"])
            for e in exc.errors()
        ]
        raise BundleRejected(f"{file} does not follow its schema", details) from None


def family_outputs(family: TierFamily | ChurnFamily | ProductFamily, x: np.ndarray,
                   schema: FeatureSchema) -> dict[str, np.ndarray]:
    """Reference outputs (plain Booster.predict) for rows laid out by `schema`."""
    if isinstance(family, TierFamily):
        cols = schema.columns(family.model.feature_names)
        raw = family.model.predict_raw(x[:, cols])
        if family.wealth is not None:  # tiers depend on the policy: replay the model only
            return {"mu": raw}
        return {"probabilities": family.model.link(raw)}
    if isinstance(family, ChurnFamily):
        cols = schema.columns(family.model.feature_names)
        raw = family.model.predict_raw(x[:, cols])
        p = calibrate(family.calibrator, raw, family.model.link(raw))
        return {"raw": raw, "probability": p}
    out = {}
    for name, tree in family.models.items():
        cols = schema.columns(tree.feature_names)
        out[name] = tree.link(tree.predict_raw(x[:, cols]))
    return out


def replay(bundle: Bundle, family: TierFamily | ChurnFamily | ProductFamily) -> None:
    """Score the manifest's reference rows and compare with their expected outputs."""
    schema = FeatureSchema(family.features)
    rows = bundle.manifest.reference_rows
    x = np.empty((len(rows), len(schema)))
    for i, ref in enumerate(rows):
        problems = schema.encode_into(ref.features, x[i], prefix=f"reference_rows[{i}].features")
        if problems:
            raise BundleRejected("a reference row does not fit the declared features", problems)
    got = family_outputs(family, x, schema)
    for i, ref in enumerate(rows):
        for key, expected in ref.expected.items():
            if key not in got:
                raise _reject("a reference row expects an unknown output",
                              f"reference_rows[{i}].expected.{key}", "no such output")
            actual = got[key][i]
            if not np.allclose(actual, np.asarray(expected, dtype=float),
                               rtol=0.0, atol=REPLAY_TOLERANCE):
                raise _reject(
                    "the bundle does not reproduce its reference outputs",
                    f"reference_rows[{i}].expected.{key}",
                    f"expected {_short(expected)}, the model gives {_short(actual)}",
                )


def reference_expected(family: TierFamily | ChurnFamily | ProductFamily,
                       x: np.ndarray, schema: FeatureSchema) -> list[dict[str, Any]]:
    """Expected outputs for reference rows, as training writes them into the manifest."""
    got = family_outputs(family, x, schema)
    return [
        {k: (v[i].tolist() if v.ndim > 1 else float(v[i])) for k, v in got.items()}
        for i in range(x.shape[0])
    ]


def _short(v: Any) -> str:
    arr = np.atleast_1d(np.asarray(v, dtype=float))
    return "[" + ", ".join(f"{a:.12g}" for a in arr[:4]) + (", …]" if arr.size > 4 else "]")
