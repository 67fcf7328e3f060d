"""Principals, no-op moves and expected_version as the registry API shows them."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from app.registry.auth_keys import create_key
from tests.registry import bundles as b
from tests.registry.app import registry_app
from tests.registry.db import snapshot


def test_alias_moves_over_http(migrated_engine: Engine, seeded: sessionmaker[Session],
                               connection: Connection) -> None:
    with seeded() as s:
        keys = {who: create_key(session=s, principal=who.split("-")[0], role=role)[1]
                for who, role in (("ada-pub", "publisher"), ("ada-apr", "approver"),
                                  ("bob-apr", "approver"))}
        s.commit()
    h = {who: {"X-API-Key": key} for who, key in keys.items()}
    client = TestClient(registry_app(engine=migrated_engine, sessions=seeded))
    r = client.post("/v1/models/churn/versions", content=b.archive(b.churn_bundle(1)),
                    headers={**h["ada-pub"], "Content-Type": "application/gzip"})
    assert r.status_code == 201 and r.json()["created_by"]["name"] == "ada"
    ada = r.json()["created_by"]["principal_id"]
    r = client.post("/v1/models/churn/versions/2/approve", json={}, headers=h["ada-apr"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "four_eyes"
    r = client.post("/v1/models/churn/versions/2/approve", json={}, headers=h["bob-apr"])
    assert r.status_code == 200 and r.json()["approved_by"][0]["approver"]["principal_id"] != ada
    move = {"family": "churn", "alias": "production", "version": 2}
    r = client.post("/v1/models/aliases", json={"moves": [move]}, headers=h["ada-apr"])
    assert r.status_code == 403 and r.json()["error"]["code"] == "four_eyes"
    before = snapshot(connection)
    r = client.post("/v1/models/aliases", json={"moves": [{**move, "expected_version": 3}]},
                    headers=h["bob-apr"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "alias_moved"
    assert r.json()["error"]["details"] == [{"field": "moves[0].expected_version",
                                             "problem": "the alias is at 1"}]
    assert snapshot(connection) == before
    r = client.post("/v1/models/aliases", json={"moves": [{**move, "expected_version": 1}]},
                    headers=h["bob-apr"])
    assert r.status_code == 200, r.text
    (entry,) = r.json()["moves"]
    assert (entry["previous_version"], entry["version"], entry["actor"]["name"]) == (1, 2, "bob")
    assert r.json()["unchanged"] == []
    before = snapshot(connection)
    r = client.post("/v1/models/aliases", json={"moves": [move]}, headers=h["bob-apr"])
    assert r.status_code == 200
    assert r.json() == {"moves": [], "unchanged": [{"family": "churn", "alias": "production",
                                                    "version": 2}]}
    assert snapshot(connection) == before
