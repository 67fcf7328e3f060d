"""openapi.yaml at the root is exactly what the app serves, and documents the contract."""

from __future__ import annotations

import yaml
from fastapi.testclient import TestClient

from app.config import PROJECT_ROOT, Settings
from app.features.contract import DEFAULT_FEATURES
from app.main import create_app


def _served() -> dict:
    # The document does not depend on loaded models, so no lifespan is needed.
    app = create_app(Settings(auth_enabled=False), live=object())
    return TestClient(app).get("/openapi.json").json()


def test_openapi_yaml_is_identical_to_the_served_document() -> None:
    on_disk = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert on_disk == _served(), "openapi.yaml is stale: run `make openapi`"


def test_every_default_feature_is_documented() -> None:
    doc = _served()
    features = doc["components"]["schemas"]["ScoreRequest"]["properties"]["features"]
    props = features["properties"]
    for spec in DEFAULT_FEATURES:
        entry = props[spec.name]
        assert entry["description"], spec.name
        assert "example" in entry, spec.name
        if spec.minimum is not None:
            assert entry["minimum"] == spec.minimum
        if spec.kind == "category":
            assert entry["enum"] == list(spec.categories)


def test_score_routes_document_examples_and_errors() -> None:
    doc = _served()
    op = doc["paths"]["/v1/score"]["post"]
    assert {"200", "400", "401", "413", "422"} <= set(op["responses"])
    assert doc["components"]["schemas"]["ScoreRequest"]["examples"]
    assert "BatchItem" in doc["components"]["schemas"]
