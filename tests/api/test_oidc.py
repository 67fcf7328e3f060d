"""OIDC bearer tokens: a JWT of the configured issuer, signed by a key of its JWKS, is a
principal (`oidc:<sub>`) with the highest mapped role; anything else is 401 invalid_token
naming what failed (never the token), no mapped role 403, and four eyes sees the person."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.api.oidc import JwksSource
from app.config import Settings
from app.errors import NotReady
from app.main import create_app
from app.observability.logging import configure_logging
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from tests.api.test_models_api import (
    backend,
    connection,
    keys,
    migrated_engine,
    models_dir,
    seeded,
    sessions,
    upload,
)
from tests.conftest import RunningServer
from tests.customers import book_customers
from tests.registry import bundles as b
from tests.registry.app import registry_app

__all__ = ["backend", "connection", "keys", "migrated_engine", "models_dir", "seeded",
           "sessions"]

ISSUER = "https://idp.example.test/realms/bank"
AUDIENCE = "tierwise"
ROLE_MAP = {"tw-scorers": "scorer", "tw-publishers": "publisher",
            "tw-approvers": "approver", "tw-admins": "admin"}
CUSTOMER = book_customers(1, seed=3)[0]
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) \
        else jwt.algorithms.ECAlgorithm
    data: dict[str, Any] = json.loads(algorithm.to_jwk(key.public_key()))
    return {**data, "kid": kid, "use": "sig"}


def jwks_document() -> dict[str, Any]:
    # An HS256 ("oct") key in the set must never verify anything.
    oct_key = {"kty": "oct", "kid": "shared", "k": base64.urlsafe_b64encode(b"s" * 32).decode()}
    return {"keys": [_jwk(RSA_KEY, "rsa-1"), _jwk(EC_KEY, "ec-1"), oct_key]}


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    out = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice-123", "iat": now, "nbf": now,
           "exp": now + 300, "preferred_username": "alice", "roles": ["tw-scorers"]}
    out.update(overrides)
    return {k: v for k, v in out.items() if v is not None}


def token(key: Any = RSA_KEY, kid: str | None = "rsa-1", alg: str = "RS256",
          **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], secret: bytes | None) -> str:
    """A token PyJWT would refuse to make: alg none, or HS256 keyed with public material."""
    signing = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims()).encode())
    sig = b"" if secret is None else hmac.new(secret, signing.encode(), hashlib.sha256).digest()
    return signing + "." + _b64(sig)


def bearer(t: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {t}"}


def oidc_settings(jwks: str | Path, **extra: Any) -> dict[str, Any]:
    return {"auth_enabled": True, "oidc_issuer": ISSUER, "oidc_audience": AUDIENCE,
            "oidc_jwks": str(jwks), "oidc_role_map": ROLE_MAP, "compile_models": False,
            **extra}


@pytest.fixture(scope="module")
def jwks_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("oidc") / "jwks.json"
    path.write_text(json.dumps(jwks_document()))
    return path


@pytest.fixture(scope="module")
def scoring(jwks_file: Path, default_context: ScoringContext) -> Iterator[TestClient]:
    app = create_app(Settings(**oidc_settings(jwks_file)), live=StaticContexts(default_context))
    with TestClient(app) as client:
        yield client


def _score(client: TestClient | httpx.Client, t: str) -> httpx.Response:
    return client.post("/v1/score", content=json.dumps(CUSTOMER).encode(),
                       headers={**bearer(t), "Content-Type": "application/json"})


def _refused(resp: httpx.Response, status: int, code: str, field: str, t: str) -> None:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert [d["field"] for d in body["error"]["details"]] == [field], body
    assert not _leaks(t, resp.text)  # never echoed


def _leaks(t: str, text: str) -> bool:
    """Whether `text` holds the token or a piece of its payload or signature."""
    return any(part[:16] in text for part in t.split(".")[1:] if len(part) >= 16)


def test_a_valid_token_scores_rs256_and_es256(scoring: TestClient) -> None:
    for t in (token(), token(key=EC_KEY, kid="ec-1", alg="ES256")):
        resp = _score(scoring, t)
        assert resp.status_code == 200, resp.text
        assert resp.json()["customer_id"] == CUSTOMER["customer_id"]


BAD_TOKENS = {
    "expired": (lambda: token(exp=int(time.time()) - 120, nbf=int(time.time()) - 900,
                              iat=int(time.time()) - 900), "token.exp"),
    "not yet valid": (lambda: token(nbf=int(time.time()) + 600), "token.nbf"),
    "wrong audience": (lambda: token(aud="another-service"), "token.aud"),
    "wrong issuer": (lambda: token(iss="https://evil.example.test"), "token.iss"),
    "no exp": (lambda: token(exp=None), "token.exp"),
    "bad signature": (lambda: token(key=OTHER_KEY), "token.signature"),
    "unknown kid": (lambda: token(kid="rsa-9"), "token.header.kid"),
    "no kid": (lambda: token(kid=None), "token.header.kid"),
    "alg none": (lambda: forged({"alg": "none", "kid": "rsa-1"}, None), "token.header.alg"),
    "HS256 with the public key": (lambda: forged(
        {"alg": "HS256", "kid": "rsa-1"}, RSA_KEY.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
        "token.header.alg"),
    "HS256 with the oct key": (lambda: forged({"alg": "HS256", "kid": "shared"}, b"s" * 32),
                               "token.header.alg"),
    "ES256 header on the RSA key": (lambda: forged({"alg": "ES256", "kid": "rsa-1"}, b"x"),
                                    "token.header.alg"),
    "garbage": (lambda: "eyJhbGciOi.not-base64!.x", "Authorization"),
    "lone surrogate sub": (lambda: token(sub="\ud800"), "token.sub"),
}


@pytest.mark.parametrize("case", sorted(BAD_TOKENS))
def test_an_invalid_token_is_401_naming_what_failed(scoring: TestClient, case: str) -> None:
    make, field = BAD_TOKENS[case]
    t = make()
    _refused(_score(scoring, t), 401, "invalid_token", field, t)


def test_small_clock_skew_is_allowed(scoring: TestClient) -> None:
    now = int(time.time())
    assert _score(scoring, token(nbf=now + 10, iat=now + 10)).status_code == 200
    assert _score(scoring, token(exp=now - 10)).status_code == 200


def test_roles_come_from_the_mapped_claim(scoring: TestClient) -> None:
    t = token(roles=["staff", "vpn-users"])
    _refused(_score(scoring, t), 403, "forbidden", "token.roles", t)
    t = token(roles=None)
    _refused(_score(scoring, t), 403, "forbidden", "token.roles", t)
    # A single string counts as one value; the highest mapped role wins.
    assert _score(scoring, token(roles="tw-scorers")).status_code == 200
    status = scoring.get("/v1/status", headers=bearer(token(roles=["staff", "tw-admins"])))
    assert status.status_code == 200


def test_a_nested_role_claim(jwks_file: Path, default_context: ScoringContext) -> None:
    settings = Settings(**oidc_settings(jwks_file, oidc_role_claim="realm_access.roles"))
    with TestClient(create_app(settings, live=StaticContexts(default_context))) as client:
        assert _score(client, token(roles=None, realm_access={"roles": ["tw-scorers"]})
                      ).status_code == 200
        assert _score(client, token()).status_code == 403  # top-level `roles` is not read


def test_settings_need_audience_and_jwks_and_known_roles(jwks_file: Path) -> None:
    with pytest.raises(ValidationError, match="TIERWISE_OIDC_AUDIENCE"):
        Settings(oidc_issuer=ISSUER, oidc_jwks=str(jwks_file))
    with pytest.raises(ValidationError, match="TIERWISE_OIDC_JWKS"):
        Settings(oidc_issuer=ISSUER, oidc_audience=AUDIENCE)
    with pytest.raises(ValidationError, match="oidc_role_map"):
        Settings(**oidc_settings(jwks_file, oidc_role_map={"x": "root"}))
    assert Settings().oidc_issuer is None  # off by default


def test_without_oidc_a_jwt_is_just_a_wrong_key(default_context: ScoringContext) -> None:
    app = create_app(Settings(auth_enabled=True, compile_models=False),
                     live=StaticContexts(default_context))
    with TestClient(app) as client:
        resp = _score(client, token())
        assert resp.status_code in (401, 503)  # no registry here: the key cannot be checked
        assert resp.json()["error"]["code"] != "invalid_token"


def test_an_unreadable_jwks_is_503_naming_the_setting(tmp_path: Path,
                                                      default_context: ScoringContext) -> None:
    for content in (None, "{not json", json.dumps({"keys": [{"kty": "oct", "kid": "a",
                                                              "k": "c2VjcmV0"}]})):
        path = tmp_path / "jwks.json"
        if content is not None:
            path.write_text(content)
        app = create_app(Settings(**oidc_settings(path)), live=StaticContexts(default_context))
        with TestClient(app) as client:
            resp = _score(client, token())
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["details"][0]["field"] == "TIERWISE_OIDC_JWKS"


def test_jwks_is_kept_for_its_ttl_and_reread_for_an_unknown_kid(tmp_path: Path) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [_jwk(RSA_KEY, "rsa-1")]}))
    now = [0.0]
    source = JwksSource(str(path), ttl=300, clock=lambda: now[0])
    source.refresh()
    assert source.get("rsa-1") is not None and not source.stale("rsa-1")
    path.write_text(json.dumps({"keys": [_jwk(OTHER_KEY, "rsa-2")]}))  # rotation
    assert not source.stale("rsa-2")  # an unknown kid rereads at most every 30 s
    now[0] = 31
    assert source.stale("rsa-2")
    source.refresh("rsa-2")
    assert source.get("rsa-2") is not None and source.get("rsa-1") is None
    path.write_text("broken")
    now[0] = 400
    source.refresh()  # a failed read keeps the keys read before
    assert source.get("rsa-2") is not None
    empty = JwksSource(str(tmp_path / "missing.json"), ttl=300)
    with pytest.raises(NotReady):
        empty.refresh()


class _JwksHandler(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        body = json.dumps(jwks_document()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def jwks_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _JwksHandler.hits = 0
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/certs"
    finally:
        server.shutdown()
        server.server_close()


def test_over_real_http_with_a_jwks_url_and_no_token_in_the_logs(
        jwks_url: str, default_context: ScoringContext) -> None:
    app = create_app(Settings(**oidc_settings(jwks_url, log_level="DEBUG")),
                     live=StaticContexts(default_context))
    buffer = io.StringIO()
    configure_logging("DEBUG", stream=buffer)
    good, bad = token(), token(aud="elsewhere")
    try:
        with RunningServer(app) as server, \
                httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(3):
                assert _score(client, good).status_code == 200
            _refused(_score(client, bad), 401, "invalid_token", "token.aud", bad)
            assert _score(client, token(kid="rsa-9")).status_code == 401
    finally:
        configure_logging("INFO")
    assert _JwksHandler.hits == 1  # fetched once, kept for the TTL (an unknown kid: < 30 s)
    logs = buffer.getvalue()
    assert '"status":200' in logs and '"status":401' in logs  # the request lines were written
    for t in (good, bad):
        assert not _leaks(t, logs)


@pytest.fixture
def registry(migrated_engine: Engine, seeded: sessionmaker[Session],
             jwks_file: Path) -> Iterator[TestClient]:
    app = registry_app(engine=migrated_engine, sessions=seeded, max_bundle_bytes=100_000,
                       **oidc_settings(jwks_file))
    with TestClient(app) as client:
        yield client


def test_four_eyes_compares_the_token_subject(registry: TestClient,
                                              keys: dict[str, str]) -> None:
    pusher = token(sub="alice-123", roles=["tw-publishers"])
    r = registry.post("/v1/models/churn/versions", content=b.archive(b.churn_bundle(1)),
                      headers={**bearer(pusher), "Content-Type": "application/gzip"})
    assert r.status_code == 201, r.text
    assert r.json()["created_by"]["principal_id"] == "oidc:alice-123"
    assert r.json()["created_by"]["name"] == "alice"
    version = r.json()["version"]
    approve = f"/v1/models/churn/versions/{version}/approve"
    # The same person with another token (an approver role now) may not approve.
    same = token(sub="alice-123", roles=["tw-approvers"], preferred_username="alice.a")
    r = registry.post(approve, headers=bearer(same))
    assert r.status_code == 403 and r.json()["error"]["code"] == "four_eyes"
    # A publisher token may not approve at all; another person may.
    r = registry.post(approve, headers=bearer(token(sub="carol", roles=["tw-publishers"],
                                                    preferred_username="carol")))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert "the OIDC token of carol maps to role publisher" in r.text
    r = registry.post(approve, headers=bearer(token(sub="bob-456", roles=["tw-approvers"],
                                                    preferred_username="bob")))
    assert r.status_code == 200, r.text
    assert r.json()["approved_by"][0]["approver"]["principal_id"] == "oidc:bob-456"
    # API keys still work beside tokens, and the ledger names the token principals.
    entries = registry.get("/v1/ledger", headers={"X-API-Key": keys["admin"]}).json()["entries"]
    actors = {(e["action"], e["actor"]["principal_id"], e["actor"]["key_id"])
              for e in entries if e["family"] == "churn"}
    assert ("push", "oidc:alice-123", "oidc") in actors
    assert ("approve", "oidc:bob-456", "oidc") in actors
    assert upload(registry, keys["scorer"], "churn", b"x").status_code == 403


def test_a_long_subject_still_fits_the_registry(registry: TestClient) -> None:
    sub = "user/" + "x" * 200
    r = registry.post("/v1/models/churn/versions", content=b.archive(b.churn_bundle(1)),
                      headers={**bearer(token(sub=sub, roles=["tw-publishers"],
                                              preferred_username=None)),
                               "Content-Type": "application/gzip"})
    assert r.status_code == 201, r.text
    created = r.json()["created_by"]
    assert created["principal_id"].startswith("oidc:#") and len(created["principal_id"]) <= 64
    assert created["name"] == sub[:200]
