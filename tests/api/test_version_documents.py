"""GET /v1/models/{family}/versions/{version}/config and .../importance: a configuration
version's document (the registry console's diff) and a model version's split counts (its
feature importance plot)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import lightgbm as lgb

from tests.api.live_service import running_service
from tests.conftest import MODELS_DIR


def test_a_configuration_version_has_its_document(tmp_path: Path) -> None:
    with running_service(tmp_path) as (url, key):
        auth = {"X-API-Key": key}
        for family, name in (("policy", "policy.json"), ("catalog", "catalog.json")):
            r = httpx.get(f"{url}/v1/models/{family}/versions/1/config", headers=auth)
            assert r.status_code == 200, r.text
            assert r.json() == {"family": family, "version": 1, "file": name, "document":
                                json.loads((MODELS_DIR / family / name).read_text())}
        model = httpx.get(f"{url}/v1/models/churn/versions/1/config", headers=auth)
        assert model.status_code == 404
        assert model.json()["error"]["details"][0]["field"] == "family"
        missing = httpx.get(f"{url}/v1/models/policy/versions/99/config", headers=auth)
        assert missing.status_code == 404
        for bad in ("0", "x", "2147483648"):
            r = httpx.get(f"{url}/v1/models/policy/versions/{bad}/config", headers=auth)
            assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] \
                .endswith("version")
        assert httpx.get(f"{url}/v1/models/nope/versions/1/config",
                         headers=auth).status_code == 422
        assert httpx.get(f"{url}/v1/models/policy/versions/1/config").status_code == 401


def test_a_model_version_has_its_split_counts(tmp_path: Path) -> None:
    with running_service(tmp_path) as (url, key):
        auth = {"X-API-Key": key}
        r = httpx.get(f"{url}/v1/models/products/versions/1/importance", headers=auth)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["kind"] == "split_count"
        manifest = json.loads((MODELS_DIR / "products" / "manifest.json").read_text())
        assert set(body["models"]) == set(manifest["models"])
        for name, file in manifest["models"].items():
            booster = lgb.Booster(model_file=str(MODELS_DIR / "products" / file))
            expected = {f: int(n) for f, n in zip(booster.feature_name(),
                        booster.feature_importance("split"), strict=True) if n > 0}
            assert body["models"][name] == expected  # LightGBM's own split importance
            counts = list(body["models"][name].values())
            assert counts == sorted(counts, reverse=True)
        config = httpx.get(f"{url}/v1/models/policy/versions/1/importance", headers=auth)
        assert config.status_code == 404
        assert config.json()["error"]["details"][0]["field"] == "family"
        assert httpx.get(f"{url}/v1/models/churn/versions/9/importance",
                         headers=auth).status_code == 404
        assert httpx.get(f"{url}/v1/models/churn/versions/1/importance").status_code == 401
