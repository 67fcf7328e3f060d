"""The live feature contract over HTTP: a contract v2 with a new optional feature and a churn
model reading it, pushed and promoted together, are scored with that feature; GET
/v1/contract and the served OpenAPI document follow the live contract; a breaking contract
needs allow_breaking (SQLite and PostgreSQL)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.main import create_app
from app.registry.auth_keys import create_key
from app.training.default_contract import contract_bundle
from tests.conftest import RunningServer
from tests.registry import bundles as b
from tests.registry.db import drop_pg_database, fresh_database

GZIP = {"Content-Type": "application/gzip"}


@pytest.fixture(params=["sqlite", "postgresql"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, dict]]:
    """(URL, keys by role) of the whole service on a registry seeded with the test set."""
    url = fresh_database(request.param, tmp_path)
    settings = Settings(database_url=url, models_dir=b.write_models_dir(tmp_path / "models"),
                        auth_enabled=True, bootstrap_admin_key_file=tmp_path / "admin.key",
                        compile_models=False, poll_interval_seconds=0.2, log_level="ERROR")
    app = create_app(settings)
    try:
        with RunningServer(app) as running:
            deadline = time.monotonic() + 60
            while httpx.get(running.url + "/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the service did not become ready"
                time.sleep(0.1)
            assert app.services.runtime is not None
            with app.services.runtime.sessionmaker() as s:
                keys = {role: create_key(session=s, principal=f"{role} person", role=role)[1]
                        for role in ("publisher", "approver", "scorer")}
                s.commit()
            yield running.url, {r: {"X-API-Key": k} for r, k in keys.items()}
    finally:
        if request.param == "postgresql":
            drop_pg_database(url)


def _wait_for(url: str, keys: dict, family: str, version: int) -> None:
    deadline = time.monotonic() + 30
    while True:
        status = httpx.get(f"{url}/v1/status", headers=keys["scorer"]).json()
        if status["versions"].get(family, {}).get("version") == version:
            return
        assert time.monotonic() < deadline, status
        time.sleep(0.1)


def _push_approve(url: str, keys: dict, bundle: Any) -> int:
    r = httpx.post(f"{url}/v1/models/{bundle.family}/versions", content=b.archive(bundle),
                   headers={**keys["publisher"], **GZIP})
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    r = httpx.post(f"{url}/v1/models/{bundle.family}/versions/{version}/approve", json={},
                   headers=keys["approver"])
    assert r.status_code == 200, r.text
    return int(version)


def _score(url: str, keys: dict, **extra: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/score", headers=keys["scorer"], json={
        "customer_id": "c1", "features": {**b.example_features(), **extra},
        "options": {"parts": ["churn"]}})


def test_a_new_contract_and_a_model_reading_it_go_live_together(
        service: tuple[str, dict]) -> None:
    url, keys = service
    live = httpx.get(f"{url}/v1/contract", headers=keys["scorer"]).json()
    assert (live["version"], live["contract"]["name"]) == (1, "test")
    assert [f["name"] for f in live["contract"]["features"]] == [f.name for f in b.FEATURES]
    doc = httpx.get(f"{url}/openapi.json").json()
    assert set(doc["components"]["schemas"]["CustomerFeatures"]["properties"]) == \
        set(b.FEATURE_NAMES)  # the live contract's, not the default one
    r = _score(url, keys, app_rating=1.0)
    assert r.status_code == 422 and r.json()["error"]["details"] == [
        {"field": "features.app_rating", "problem": "is not a known feature"}]

    v2 = b.features_bundle(b.APP_RATING, name="v2")
    churn = b.with_contract(b.rating_churn_bundle(), v2)
    r = httpx.post(f"{url}/v1/models/churn/versions", content=b.archive(churn),
                   headers={**keys["publisher"], **GZIP})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == \
        "manifest.contract.sha256"
    features_version = _push_approve(url, keys, v2)
    churn_version = _push_approve(url, keys, churn)
    r = httpx.post(f"{url}/v1/models/aliases", headers=keys["approver"], json={"moves": [
        {"family": "churn", "alias": "production", "version": churn_version}]})
    assert r.status_code == 422 and "app_rating" in r.text  # the live contract lacks it
    r = httpx.post(f"{url}/v1/models/aliases", headers=keys["approver"], json={"moves": [
        {"family": "features", "alias": "production", "version": features_version},
        {"family": "churn", "alias": "production", "version": churn_version}]})
    assert r.status_code == 200, r.text
    assert r.json()["moves"][0]["detail"]["contract_changes"]["additive"] == [
        "app_rating: new optional feature"]
    _wait_for(url, keys, "churn", churn_version)

    low, high = _score(url, keys, app_rating=0.5), _score(url, keys, app_rating=4.5)
    assert low.status_code == high.status_code == 200, low.text
    assert low.json()["models"]["features"]["version"] == features_version
    assert low.json()["churn"]["probability"] != high.json()["churn"]["probability"]
    assert _score(url, keys).status_code == 200  # optional: may be left out
    pinned = httpx.post(f"{url}/v1/score", headers=keys["scorer"], json={
        "customer_id": "c1", "features": b.example_features(),
        "options": {"parts": ["churn"], "pin": {"features": "1", "churn": "1"}}})
    assert pinned.status_code == 200, pinned.text  # replay under the old contract
    assert pinned.json()["models"]["features"]["version"] == 1
    live = httpx.get(f"{url}/v1/contract", headers=keys["scorer"]).json()
    assert (live["version"], live["sha256"]) == (features_version, v2.sha256)
    assert live["contract"]["features"][-1]["name"] == "app_rating"
    props = httpx.get(f"{url}/openapi.json").json()["components"]["schemas"][
        "CustomerFeatures"]["properties"]
    assert props["app_rating"]["anyOf"][0] == {"type": "number", "minimum": 0.0, "maximum": 5.0}


def test_a_breaking_contract_is_refused_unless_allowed(service: tuple[str, dict]) -> None:
    url, keys = service
    contract = b.small_contract(name="narrow")
    narrowed = contract.model_copy(update={"features": tuple(
        f.model_copy(update={"maximum": 600.0}) if f.name == "tenure_months" else f
        for f in contract.features)})
    version = _push_approve(url, keys, contract_bundle(narrowed, label="narrowed tenure"))
    move = {"family": "features", "alias": "production", "version": version}
    before = httpx.get(f"{url}/v1/models/features/versions", headers=keys["approver"]).json()
    r = httpx.post(f"{url}/v1/models/aliases", headers=keys["approver"], json={"moves": [move]})
    assert r.status_code == 409 and r.json()["error"]["code"] == "breaking_contract"
    assert r.json()["error"]["details"][0]["field"] == "moves[0].features.tenure_months"
    after = httpx.get(f"{url}/v1/models/features/versions", headers=keys["approver"]).json()
    assert after == before
    r = httpx.post(f"{url}/v1/models/aliases", headers=keys["approver"],
                   json={"moves": [{**move, "allow_breaking": True}]})
    assert r.status_code == 200, r.text
    detail = r.json()["moves"][0]["detail"]
    assert detail["allow_breaking"] is True
    assert detail["contract_changes"]["breaking"][0].startswith("tenure_months: range narrowed")
    _wait_for(url, keys, "features", version)
    r = _score(url, keys, tenure_months=700)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == \
        "features.tenure_months"


def test_a_default_server_serves_openapi_yaml_and_the_default_contract(
        default_context: Any) -> None:
    """With the default contract live, /openapi.json is openapi.yaml exactly; /v1/contract
    is models/features."""
    import yaml

    from app.config import PROJECT_ROOT
    from app.scoring.static import StaticContexts
    from app.training.default_contract import default_contract_bundle

    app = create_app(Settings(auth_enabled=False), live=StaticContexts(default_context))
    with RunningServer(app) as running:
        served = httpx.get(running.url + "/openapi.json").json()
        live = httpx.get(running.url + "/v1/contract").json()
    on_disk = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert served == on_disk
    bundle = default_contract_bundle()
    assert (live["version"], live["sha256"]) == (1, bundle.sha256)
    assert live["contract"] == bundle.json("features.json")
