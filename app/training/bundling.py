"""Assemble model bundles from trained boosters: files, hashes and replayable reference rows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np

from app.bundles.io import Bundle, build_bundle
from app.bundles.manifest import Calibrator, ReasonCode, WealthModel
from app.engine.trees import TreeModel
from app.features.schema import FeatureSchema
from app.features.spec import FeatureSpec
from app.monitoring.reference import build_reference
from app.scoring.families import ChurnFamily, ProductFamily, TierFamily
from app.scoring.loader import family_outputs, load_family, reference_expected

N_REFERENCE_ROWS = 8


def _model_text(booster: lgb.Booster) -> str:
    # Text is the only format we ship; LightGBM reloads it exactly.
    return booster.model_to_string(num_iteration=-1)


def model_bundle(
    *,
    family: str,
    boosters: Mapping[str, lgb.Booster],
    features: Sequence[FeatureSpec],
    reference_x: np.ndarray,
    training_x: np.ndarray | None = None,
    classes: Sequence[str] = (),
    wealth: WealthModel | None = None,
    calibrator: Calibrator | None = None,
    reason_codes: Mapping[str, ReasonCode] | None = None,
    metrics: Mapping[str, Any] | None = None,
    training_data: Mapping[str, Any] | None = None,
    label: str = "",
    created_by: str = "tierwise train",
    created_at: str | None = None,
) -> Bundle:
    """A verified tier/churn/products bundle; `reference_x` rows (replayed) and `training_x`
    rows (histogrammed into manifest.reference for monitoring) are laid out like `features`."""
    schema = FeatureSchema(features)
    texts = {name: _model_text(b) for name, b in boosters.items()}
    files = {f"{name}.txt": text.encode() for name, text in texts.items()}
    trees = {name: TreeModel.from_text(name, text) for name, text in texts.items()}
    fam: TierFamily | ChurnFamily | ProductFamily
    if family == "tier":
        fam = TierFamily(model=next(iter(trees.values())), classes=tuple(classes),
                         features=tuple(features), wealth=wealth)
    elif family == "churn":
        fam = ChurnFamily(model=next(iter(trees.values())), calibrator=calibrator,
                          reason_codes=dict(reason_codes or {}), features=tuple(features))
    else:
        fam = ProductFamily(models=trees, features=tuple(features))
    # Round-trip through named values so the replay reads exactly what a caller would send.
    ref_rows = [_clean(schema.decode(row)) for row in reference_x[:N_REFERENCE_ROWS]]
    ref_x = schema.matrix(ref_rows)
    expected = reference_expected(fam, ref_x, schema)
    reference = None
    if training_x is not None:
        scores = (family_outputs(fam, training_x, schema)["probability"]
                  if isinstance(fam, ChurnFamily) else None)
        reference = build_reference(training_x, features, scores)
    manifest: dict[str, Any] = {
        "family": family,
        "label": label,
        "created_at": created_at or _now(),
        "created_by": created_by,
        "features": [f.model_dump(mode="json") for f in features],
        "models": {name: f"{name}.txt" for name in boosters},
        "classes": list(classes),
        **({"wealth": wealth.model_dump(mode="json")} if wealth is not None else {}),
        "calibrator": calibrator.model_dump(mode="json") if calibrator else None,
        "reason_codes": {k: v.model_dump(mode="json") for k, v in (reason_codes or {}).items()},
        "metrics": dict(metrics or {}),
        "training_data": dict(training_data or {}),
        "reference_rows": [
            {"features": row, "expected": exp}
            for row, exp in zip(ref_rows, expected, strict=True)
        ],
    }
    if reference is not None:
        manifest["reference"] = reference.model_dump(mode="json", exclude_none=True)
    bundle = build_bundle(manifest, files)
    load_family(bundle)  # a bundle we write must pass the same checks as one we receive
    return bundle


def config_bundle(*, family: str, document: Mapping[str, Any], label: str = "",
                  created_by: str = "tierwise", created_at: str | None = None) -> Bundle:
    """A catalog or policy bundle around one JSON document (validated on build)."""
    import json

    name = f"{family}.json"
    data = (json.dumps(document, indent=1, sort_keys=True) + "\n").encode()
    bundle = build_bundle(
        {"family": family, "label": label, "created_by": created_by,
         "created_at": created_at or _now()},
        {name: data},
    )
    load_family(bundle)
    return bundle


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _now() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
