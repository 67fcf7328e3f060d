"""GET /v1/models/{family}/versions/{version}/config: a configuration version's document,
as the registry console's diff reads it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

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
