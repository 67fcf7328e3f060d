"""Feature importance of a model version, from its trees: how often each feature splits.

LightGBM's "split" importance, counted here from the trees the strict model-text parser
accepts (app/engine/model_text.py) rather than read from the free-text summary LightGBM
appends to the file. Manifests do not record importance; the registry console plots this.
"""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.bundles.manifest import MODEL_FAMILIES
from app.engine.model_text import check_model
from app.errors import FieldProblem, NotFound
from app.registry import store
from app.registry.service import require_version


class FeatureImportance(BaseModel):
    family: str
    version: int
    kind: str = Field(description="split_count: splits on each feature, over every tree")
    models: dict[str, dict[str, int]] = Field(
        description="Per model of the bundle: feature -> splits, most used first; features "
                    "that never split are left out")


def split_counts(text: str) -> dict[str, int]:
    """Splits per feature name in one LightGBM model text, most used first."""
    model = check_model(text)
    counts = Counter(model.feature_names[f] for tree in model.trees for f in tree.split_feature)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def feature_importance(*, session: Session, family: str, version: int) -> FeatureImportance:
    """Split counts of every model of a version (404 for a configuration family)."""
    row = require_version(session, family, version)
    if family not in MODEL_FAMILIES:
        raise NotFound(f"{family} is a configuration family: it has no trees",
                       [FieldProblem("family", "one of " + ", ".join(MODEL_FAMILIES))])
    bundle = store.load_bundle(session, row)
    return FeatureImportance(family=family, version=version, kind="split_count", models={
        name: split_counts(bundle.text(file))
        for name, file in sorted(bundle.manifest.models.items())})
