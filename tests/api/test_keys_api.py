"""The admin key API: create (shown once, acting principal recorded), list without secrets,
revoke; four eyes still compares principals for keys made over HTTP (SQLite and PostgreSQL)."""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient

from tests.api.test_models_api import (
    backend,
    client,
    connection,
    error,
    h,
    keys,
    migrated_engine,
    models_dir,
    seeded,
    sessions,
    upload,
)
from tests.registry import bundles as b

__all__ = ["backend", "client", "connection", "keys", "migrated_engine", "models_dir",
           "seeded", "sessions"]


def _create(client: TestClient, admin: str, **body: object) -> httpx.Response:
    return client.post("/v1/keys", json=body, headers=h(admin))


def test_an_admin_creates_a_key_shown_once_and_recorded_as_theirs(
        client: TestClient, keys: dict[str, str]) -> None:
    r = _create(client, keys["admin"], principal="Dana Analyst", role="scorer")
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["key"].startswith(f"tw_{made['id']}_") and made["active"]
    assert made["role"] == "scorer" and made["revoked_at"] is None
    assert made["principal"]["name"] == "Dana Analyst" and made["principal"]["kind"] == "person"
    assert made["created_by"] == "admin"  # the acting principal, not `system`
    assert client.get("/v1/status", headers=h(made["key"])).status_code == 200  # it works
    ledger = client.get("/v1/ledger", params={"action": "key_create"},
                        headers=h(keys["admin"])).json()["entries"]
    entry = ledger[-1]
    assert entry["detail"]["key_id"] == made["id"] and entry["detail"]["role"] == "scorer"
    assert entry["actor"]["name"] == "admin" and entry["actor"]["key_id"] == \
        keys["admin"].split("_")[1]

    listed = client.get("/v1/keys", headers=h(keys["admin"]))
    assert listed.status_code == 200
    assert made["key"] not in listed.text and "key_hash" not in listed.text
    rows = {k["id"]: k for k in listed.json()["keys"]}
    assert "key" not in rows[made["id"]]
    assert rows[made["id"]]["principal"]["name"] == "Dana Analyst"
    assert all("key" not in k for k in rows.values())


def test_only_admins_manage_keys(client: TestClient, keys: dict[str, str]) -> None:
    for role in ("scorer", "publisher", "approver"):
        assert _create(client, keys[role], principal="x", role="admin").status_code == 403
        assert client.get("/v1/keys", headers=h(keys[role])).status_code == 403
        r = client.post(f"/v1/keys/{keys['scorer'].split('_')[1]}/revoke", headers=h(keys[role]))
        assert r.status_code == 403 and error(r)["code"] == "forbidden"
    r = client.get("/v1/keys")
    assert r.status_code == 401 and error(r)["code"] == "unauthorized"


def test_revoke(client: TestClient, keys: dict[str, str]) -> None:
    made = _create(client, keys["admin"], principal="Temp Contractor", role="publisher").json()
    r = client.post(f"/v1/keys/{made['id']}/revoke", headers=h(keys["admin"]))
    assert r.status_code == 200 and not r.json()["active"] and r.json()["revoked_at"]
    client.app.state.services.runtime.keys.clear()  # type: ignore[attr-defined]  # ttl
    assert client.get("/v1/status", headers=h(made["key"])).status_code == 401
    again = client.post(f"/v1/keys/{made['id']}/revoke", headers=h(keys["admin"]))
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]
    r = client.post("/v1/keys/0123456789ab/revoke", headers=h(keys["admin"]))
    assert r.status_code == 404 and error(r)["details"][0]["field"] == "key_id"
    for bad in ("NOT-HEX", "%F0%9F%98%80", "a" * 33):
        r = client.post(f"/v1/keys/{bad}/revoke", headers=h(keys["admin"]))
        assert r.status_code == 422, (bad, r.text)
    # The last active admin key cannot be revoked: nobody could create keys any more.
    admin_id = keys["admin"].split("_")[1]
    r = client.post(f"/v1/keys/{admin_id}/revoke", headers=h(keys["admin"]))
    assert r.status_code == 409 and error(r)["code"] == "conflict"
    second = _create(client, keys["admin"], principal="Second Admin", role="admin").json()
    r = client.post(f"/v1/keys/{admin_id}/revoke", headers=h(second["key"]))
    assert r.status_code == 200 and not r.json()["active"]


def test_bad_requests_name_the_field(client: TestClient, keys: dict[str, str]) -> None:
    admin = keys["admin"]
    cases = [({"principal": "p", "role": "root"}, "role"),
             ({"principal": "", "role": "scorer"}, "principal"),
             ({"principal": "p" * 201, "role": "scorer"}, "principal"),
             ({"principal": "p", "role": "scorer", "kind": "robot"}, "kind"),
             ({"principal": "p", "role": "scorer", "secret": "x"}, "secret"),
             ({"role": "scorer"}, "principal")]
    for body, field in cases:
        r = _create(client, admin, **body)
        assert r.status_code == 422, (body, r.text)
        assert any(field in d["field"] for d in error(r)["details"]), (body, r.text)
    r = _create(client, admin, principal="system", role="admin")  # reserved actor name
    assert r.status_code == 422 and error(r)["details"][0]["field"] == "principal"
    assert _create(client, admin, principal="Ops Bot", kind="service",
                   role="scorer").status_code == 201
    r = _create(client, admin, principal="Ops Bot", kind="person", role="publisher")
    assert r.status_code == 409 and error(r)["details"][0]["field"] == "kind"
    r = client.post("/v1/keys", content=b"principal=p&role=scorer",
                    headers={**h(admin), "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


def test_four_eyes_compares_principals_of_keys_made_over_http(
        client: TestClient, keys: dict[str, str]) -> None:
    admin = keys["admin"]
    publisher = _create(client, admin, principal="Erin", role="publisher").json()["key"]
    erin_approver = _create(client, admin, principal="Erin", role="approver").json()["key"]
    r = upload(client, publisher, "churn", b.archive(b.churn_bundle(1)))
    assert r.status_code == 201, r.text
    version = r.json()["version"]
    r = client.post(f"/v1/models/churn/versions/{version}/approve", headers=h(erin_approver))
    assert r.status_code == 403 and error(r)["code"] == "four_eyes"
    r = client.post(f"/v1/models/churn/versions/{version}/approve", headers=h(keys["approver"]))
    assert r.status_code == 200, r.text
