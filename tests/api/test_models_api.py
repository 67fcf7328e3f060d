"""The registry over real HTTP semantics: auth, publish, refusals, approvals, aliases, ledger."""

from __future__ import annotations

import gzip
import io
import json
import pickle
import tarfile
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from app.bundles.io import Bundle, sha256_hex, to_archive
from app.registry.auth_keys import create_key, revoke_key
from tests.registry import bundles as b
from tests.registry.app import registry_app
from tests.registry.db import (
    backend,
    connection,
    migrated_engine,
    models_dir,
    seeded,
    sessions,
    snapshot,
)

__all__ = ["backend", "connection", "migrated_engine", "models_dir", "seeded", "sessions"]
LIMIT = 100_000


@pytest.fixture
def keys(seeded: sessionmaker[Session]) -> dict[str, str]:
    """One key per role, plus a second approver."""
    out = {}
    with seeded() as s:
        for name, role in (("scorer", "scorer"), ("publisher", "publisher"),
                           ("approver", "approver"), ("approver2", "approver"),
                           ("admin", "admin")):
            out[name] = create_key(session=s, name=name, role=role)[1]
        s.commit()
    return out


@pytest.fixture
def client(migrated_engine: Engine, seeded: sessionmaker[Session]) -> Iterator[TestClient]:
    app = registry_app(engine=migrated_engine, sessions=seeded, max_bundle_bytes=LIMIT)
    with TestClient(app) as c:
        yield c


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def upload(client: TestClient, key: str, family: str, body: bytes,
           content_type: str = "application/gzip", **params: str):  # type: ignore[no-untyped-def]
    return client.post(f"/v1/models/{family}/versions", content=body, params=params,
                       headers={**h(key), "Content-Type": content_type})


def error(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()["error"]
    assert body["code"] and body["message"]
    return body


def test_keys_and_roles(client: TestClient, keys: dict[str, str],
                        seeded: sessionmaker[Session]) -> None:
    r = client.get("/v1/models")
    assert r.status_code == 401 and error(r)["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "ApiKey"
    for bad in ("nonsense", keys["scorer"][:-2] + "xx", "tw_000000000000_x"):
        assert client.get("/v1/models", headers=h(bad)).status_code == 401
    assert client.get("/v1/models", headers=h(keys["scorer"])).status_code == 200
    assert client.get("/v1/models", headers={
        "Authorization": f"Bearer {keys['scorer']}"}).status_code == 200
    r = upload(client, keys["scorer"], "churn", b.archive(b.churn_bundle(1)))
    assert r.status_code == 403 and error(r)["code"] == "forbidden"
    assert client.get("/v1/ledger", headers=h(keys["publisher"])).status_code == 403
    assert client.get("/v1/ledger", headers=h(keys["approver"])).status_code == 200
    client.app.state.services.runtime.live.refresh()  # no poller here: load the context
    r = client.get("/v1/status", headers=h(keys["scorer"]))
    assert r.status_code == 200
    # Which evaluator serves, its kernels, and how this replica follows the aliases.
    assert (r.json()["evaluator"], r.json()["isa"]) == ("lightgbm", "none")
    assert r.json()["alias_notify"] is None and r.json()["recent_contexts"] == 1
    with seeded() as s:
        revoke_key(session=s, key_id=keys["scorer"].split("_")[1])
        s.commit()
    client.app.state.services.runtime.keys.clear()  # replicas forget cached keys in seconds
    assert client.get("/v1/models", headers=h(keys["scorer"])).status_code == 401


def test_publish_approve_promote_rollback(client: TestClient, keys: dict[str, str]) -> None:
    archive = b.archive(b.churn_bundle(1))
    r = upload(client, keys["admin"], "churn", archive)
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["created_by"]["name"]) == (2, "admin")
    r = upload(client, keys["publisher"], "churn", archive)
    assert r.status_code == 409 and "version 2" in error(r)["message"]
    r = client.post("/v1/models/churn/versions/2/approve", headers=h(keys["admin"]))
    assert r.status_code == 403 and error(r)["code"] == "four_eyes"
    move = {"moves": [{"family": "churn", "alias": "production", "version": 2}]}
    r = client.post("/v1/models/aliases", json=move, headers=h(keys["approver"]))
    assert r.status_code == 409 and error(r)["code"] == "not_approved"
    r = client.post("/v1/models/churn/versions/2/approve", json={"note": "validated"},
                    headers=h(keys["approver"]))
    assert r.status_code == 200 and r.json()["approved_by"][0]["note"] == "validated"
    assert client.post("/v1/models/aliases", json=move,
                       headers=h(keys["publisher"])).status_code == 403
    staging = {"moves": [{"family": "churn", "alias": "staging", "version": 2}]}
    assert client.post("/v1/models/aliases", json=staging,
                       headers=h(keys["publisher"])).status_code == 200
    r = client.post("/v1/models/aliases", json=move, headers=h(keys["approver2"]))
    assert r.status_code == 200 and r.json()["moves"][0]["previous_version"] == 1
    family = client.get("/v1/models/churn/versions", headers=h(keys["scorer"])).json()
    assert family["aliases"] == {"production": 2, "staging": 2}
    detail = client.get("/v1/models/churn/versions/2", headers=h(keys["scorer"])).json()
    assert sorted(detail["manifest"]["features"]) == sorted(b.FEATURE_NAMES)
    assert detail["metrics"]["auc"] == pytest.approx(0.51) and detail["approvals"] == 1
    r = client.get("/v1/models/churn/versions/2/bundle", headers=h(keys["approver"]))
    assert r.content == archive and r.headers["x-bundle-sha256"] == detail["sha256"]
    r = client.post("/v1/models/churn/rollback", headers=h(keys["approver"]))
    assert (r.json()["previous_version"], r.json()["version"]) == (2, 1)
    moves = client.get("/v1/models/churn/history", headers=h(keys["scorer"])).json()["moves"]
    assert [(m["alias"], m["version"], m["detail"]["reason"], m["actor"]["name"]) for m in moves] \
        == [("production", 1, "seed", "system"), ("staging", 2, "promote", "publisher"),
            ("production", 2, "promote", "approver2"), ("production", 1, "rollback", "approver")]
    entries, after = [], 0
    while after is not None:
        page = client.get("/v1/ledger", params={"after_id": after, "limit": 4},
                          headers=h(keys["admin"])).json()
        entries += page["entries"]
        after = page["next_after_id"]
    churn = [(e["action"], e["actor"]["name"]) for e in entries if e["family"] == "churn"]
    assert ("push", "admin") in churn and ("approve", "approver") in churn
    assert all(e["at"] and e["actor"]["key_id"] for e in entries)
    for method in ("PUT", "PATCH", "DELETE"):  # the ledger is read-only over the API
        assert client.request(method, "/v1/ledger", headers=h(keys["admin"])).status_code == 405
    assert client.delete("/v1/models/churn/versions/2",
                         headers=h(keys["admin"])).status_code == 405


def _raw_archive(manifest_bytes: bytes, files: dict[str, bytes]) -> bytes:
    return to_archive(Bundle(manifest=None, manifest_bytes=manifest_bytes, files=files))  # type: ignore[arg-type]


def _refused(kind: str) -> tuple[str, bytes, str, int]:
    """(family, body, content type, expected status) of an upload that must be refused."""
    churn = b.churn_bundle(3)
    files = dict(churn.files)
    if kind == "tampered":
        data = bytearray(files["churn.txt"])
        data[len(data) // 2] ^= 0x01
        return "churn", _raw_archive(churn.manifest_bytes, {**files, "churn.txt": bytes(data)}), \
            "application/gzip", 422
    if kind == "incomplete":
        files.pop("churn.txt")
        return "churn", _raw_archive(churn.manifest_bytes, files), "application/gzip", 422
    if kind == "pickled":  # a pickle posing as the model text, manifest hashes made to match
        blob = pickle.dumps({"booster": "anything"}, protocol=4)
        manifest = json.loads(churn.manifest_bytes)
        manifest["files"]["churn.txt"] = sha256_hex(blob)
        return "churn", _raw_archive(json.dumps(manifest).encode(), {**files, "churn.txt": blob}), \
            "application/gzip", 422
    if kind == "pkl_file":
        return "churn", _raw_archive(churn.manifest_bytes, {**files, "model.pkl": b"x"}), \
            "application/octet-stream", 422
    if kind == "oversized":
        return "churn", b"\x1f\x8b" + bytes(LIMIT), "application/gzip", 413
    if kind == "oversized_unpacked":  # a small gzip that unpacks past the limit
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            info = tarfile.TarInfo("churn.txt")
            info.size = 4 * LIMIT
            tar.addfile(info, io.BytesIO(bytes(info.size)))
        return "churn", buf.getvalue(), "application/gzip", 413
    if kind == "not_a_bundle":
        return "churn", gzip.compress(b"hello"), "application/gzip", 422
    if kind == "wrong_content_type":
        return "churn", b.archive(churn), "application/json", 415
    if kind == "wrong_family":
        return "tier", b.archive(churn), "application/gzip", 422
    if kind == "does_not_fit":
        return "catalog", b.archive(b.catalog_bundle("bond_fund")), "application/gzip", 422
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["tampered", "incomplete", "pickled", "pkl_file", "oversized",
                                  "oversized_unpacked", "not_a_bundle", "wrong_content_type",
                                  "wrong_family", "does_not_fit"])
def test_refused_upload_leaves_registry_unchanged(kind: str, client: TestClient,
                                                  keys: dict[str, str],
                                                  connection: Connection) -> None:
    family, body, content_type, status = _refused(kind)
    before = snapshot(connection)
    r = upload(client, keys["publisher"], family, body, content_type)
    assert r.status_code == status, r.text
    err = error(r)
    assert err["details"] or status == 413, err  # 422s name the file or field at fault
    if kind in ("pickled", "pkl_file"):
        assert "pickle" in err["message"]
    assert snapshot(connection) == before


def test_multi_family_promotion_is_atomic(client: TestClient, keys: dict[str, str],
                                          connection: Connection) -> None:
    pub, apr = h(keys["publisher"]), h(keys["approver"])
    products = b.products_bundle(0, (*b.PRODUCT_MODELS, "bond_fund"))
    assert upload(client, keys["publisher"], "products", b.archive(products)).status_code == 201
    r = upload(client, keys["publisher"], "catalog", b.archive(b.catalog_bundle("bond_fund")),
               check_with="products=2")
    assert r.status_code == 201, r.text
    for family in ("products", "catalog"):
        assert client.post(f"/v1/models/{family}/versions/2/approve",
                           headers=apr).status_code == 200
    before = snapshot(connection)
    alone = [{"family": "catalog", "alias": "production", "version": 2}]
    r = client.post("/v1/models/aliases", json={"moves": alone}, headers=apr)
    assert r.status_code == 422 and "bond_fund" in json.dumps(error(r)["details"])
    both = [*alone, {"family": "products", "alias": "production", "version": 2}]
    r = client.post("/v1/models/aliases", headers=apr, json={
        "moves": [*both, {"family": "tier", "alias": "production", "version": 7}]})
    assert r.status_code == 404 and error(r)["details"][0]["field"] == "moves[2].version"
    assert snapshot(connection) == before
    assert client.post("/v1/models/aliases", json={"moves": both}, headers=pub).status_code == 403
    r = client.post("/v1/models/aliases", json={"moves": both, "note": "bond fund launch"},
                    headers=apr)
    assert r.status_code == 200
    aliases = {f["name"]: f["aliases"] for f in
               client.get("/v1/models", headers=apr).json()["families"]}
    assert aliases["catalog"]["production"] == aliases["products"]["production"] == 2
