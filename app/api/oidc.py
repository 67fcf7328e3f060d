"""OIDC bearer tokens: JWTs of one configured issuer, verified against its JWKS.

Off unless TIERWISE_OIDC_ISSUER is set. A token is accepted where an API key is
(`Authorization: Bearer <jwt>`): signed RS256 or ES256 (never `none` or HS*) by the JWKS key
its `kid` names, with `exp`, `nbf`, `iss` and `aud` checked. The principal is the subject
(`oidc:<sub>`), so four eyes treats every token of one person as that person; its role is
the highest one TIERWISE_OIDC_ROLE_MAP gives to the values of the role claim. The token
itself is never logged nor echoed in an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt

from app.config import Settings
from app.errors import FieldProblem, Forbidden, NotReady, Unauthorized
from app.registry.auth_keys import Principal, key_id_of

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
KEY_ID = "oidc"  # Principal.key_id of every token caller (ledger rows say "oidc")
RANK = {"scorer": 0, "publisher": 1, "approver": 2, "admin": 3}
MAX_JWKS_BYTES = 1024 * 1024
UNKNOWN_KID_REFRESH_SECONDS = 30.0
MAX_PRINCIPAL_ID = 64  # the registry's principal columns


class InvalidToken(Unauthorized):
    """A bearer token that is not a valid token of the configured issuer."""

    code = "invalid_token"


def looks_like_jwt(token: str) -> bool:
    """A compact JWS (three dot-separated parts), not an API key."""
    return token.count(".") == 2 and key_id_of(token) is None


def _bad(field: str, problem: str) -> InvalidToken:
    return InvalidToken("the bearer token is not valid", [FieldProblem(field, problem)])


class JwksSource:
    """The issuer's signing keys (RS256/ES256 JWKs by kid) from a file or an http(s) URL,
    read again after `ttl` seconds, or sooner (at most every 30 s) for an unknown kid."""

    def __init__(self, location: str, *, ttl: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.location = location
        self._ttl = ttl
        self._clock = clock
        self._keys: dict[str, jwt.PyJWK] = {}
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def stale(self, kid: str | None = None) -> bool:
        """Whether a read is due (never read, older than ttl, or `kid` unknown)."""
        if self._read_at is None:
            return True
        age = self._clock() - self._read_at
        return age > self._ttl or (
            kid is not None and kid not in self._keys and age > UNKNOWN_KID_REFRESH_SECONDS)

    def get(self, kid: str) -> jwt.PyJWK | None:
        return self._keys.get(kid)

    def refresh(self, kid: str | None = None) -> None:
        """Read the JWKS again when due (blocking: call it off the event loop). A failed
        read keeps the keys read before; with none, NotReady (503) names the problem."""
        with self._lock:
            if not self.stale(kid):
                return
            try:
                keys = _parse_jwks(self._read())
            except ValueError as exc:
                self._read_at = self._clock()  # retried after ttl / 30 s, not every request
                log.warning("cannot read the OIDC JWKS %s: %s", self.location, exc)
                if not self._keys:
                    raise NotReady("the OIDC signing keys cannot be read",
                                   [FieldProblem("TIERWISE_OIDC_JWKS", str(exc))]) from None
                return
            self._keys, self._read_at = keys, self._clock()

    def _read(self) -> bytes:
        if self.location.startswith(("http://", "https://")):
            try:
                with httpx.Client(timeout=5.0, follow_redirects=False) as client, \
                        client.stream("GET", self.location) as response:
                    if response.status_code != 200:
                        raise ValueError(f"{self.location} answered {response.status_code}")
                    body = b""
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise ValueError(f"larger than {MAX_JWKS_BYTES} bytes")
                    return body
            except httpx.HTTPError as exc:
                raise ValueError(f"{self.location}: {type(exc).__name__}") from None
        path = Path(self.location)
        try:
            if path.stat().st_size > MAX_JWKS_BYTES:
                raise ValueError(f"{path} is larger than {MAX_JWKS_BYTES} bytes")
            return path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{path}: {exc.strerror or type(exc).__name__}") from None


def _parse_jwks(raw: bytes) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document, by kid; ValueError naming the problem."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        raise ValueError("not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError('not a JWKS: expected {"keys": [...]}')
    keys: dict[str, jwt.PyJWK] = {}
    for i, data in enumerate(doc["keys"]):
        if not isinstance(data, dict) or data.get("use", "sig") != "sig":
            continue
        kid = data.get("kid")
        if not isinstance(kid, str) or not kid:
            continue
        try:
            key = jwt.PyJWK(data)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            log.warning("OIDC JWKS key %d (kid %r) skipped: %s", i, kid[:64], exc)
            continue
        if key.algorithm_name in ALGORITHMS:  # an `oct` (HS*) or other key never verifies
            keys[kid] = key
    if not keys:
        raise ValueError("no RS256 or ES256 signing key with a kid")
    return keys


class OidcVerifier:
    """Checks bearer JWTs against one issuer's settings and keys."""

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        assert settings.oidc_issuer and settings.oidc_audience and settings.oidc_jwks
        self.issuer = settings.oidc_issuer
        self.audience = settings.oidc_audience
        self.role_claim = settings.oidc_role_claim
        self.role_map = dict(settings.oidc_role_map)
        self.leeway = settings.oidc_leeway_seconds
        self.jwks = JwksSource(settings.oidc_jwks, ttl=settings.oidc_jwks_ttl_seconds,
                               clock=clock)

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        """The verifier when OIDC is configured, else None."""
        return cls(settings) if settings.oidc_issuer else None

    def header(self, token: str) -> tuple[str, str]:
        """(alg, kid) of a token's header, checked before any key is looked at."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise _bad("Authorization", "not a well-formed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALGORITHMS:
            shown = alg[:20] if isinstance(alg, str) else type(alg).__name__
            raise _bad("token.header.alg", f"{shown!r} is not allowed: RS256 or ES256 only")
        if not isinstance(kid, str) or not kid:
            raise _bad("token.header.kid", "missing: the token must name its signing key")
        return alg, kid

    def verify(self, token: str, alg: str, kid: str) -> Principal:
        """The principal a token stands for (keys must have been refreshed for `kid`)."""
        key = self.jwks.get(kid)
        if key is None:
            raise _bad("token.header.kid", "no key of the issuer's JWKS has this kid")
        if key.algorithm_name != alg:
            raise _bad("token.header.alg", f"the key {kid[:64]!r} signs {key.algorithm_name}")
        try:
            claims = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.audience, issuer=self.issuer,
                leeway=self.leeway, options={"require": ["exp", "iss", "aud", "sub"]})
        except jwt.PyJWTError as exc:
            raise _claim_error(exc) from None
        return self.principal(claims)

    def principal(self, claims: dict[str, Any]) -> Principal:
        """Who the verified `claims` name, with the highest mapped role (else 403)."""
        sub = claims.get("sub")
        if not _printable(sub, 255):
            raise _bad("token.sub", "must be a printable string of 1 to 255 characters")
        assert isinstance(sub, str)
        principal_id = "oidc:" + sub
        if len(principal_id) > MAX_PRINCIPAL_ID:
            principal_id = "oidc:#" + hashlib.sha256(sub.encode()).hexdigest()[:57]
        name = next((c for c in (claims.get("preferred_username"), claims.get("name"))
                     if _printable(c, 200)), sub[:200])
        values = _claim_values(claims, self.role_claim)
        roles = [self.role_map[v] for v in values if v in self.role_map]
        if not roles:
            shown = ", ".join(repr(v[:40]) for v in values[:5]) or "none"
            raise Forbidden("the token maps to no tierwise role",
                            [FieldProblem(f"token.{self.role_claim[:64]}",
                                          f"values {shown}: none is in TIERWISE_OIDC_ROLE_MAP")])
        return Principal(key_id=KEY_ID, name=str(name), role=max(roles, key=RANK.__getitem__),
                         principal_id=principal_id, kind="person")


def _claim_error(exc: jwt.PyJWTError) -> InvalidToken:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return _bad("token.exp", "the token has expired")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return _bad("token.nbf", "the token is not valid yet")
    if isinstance(exc, jwt.InvalidIssuedAtError):
        return _bad("token.iat", "issued in the future")
    if isinstance(exc, jwt.InvalidAudienceError):
        return _bad("token.aud", "the token is not for this service's audience")
    if isinstance(exc, jwt.InvalidIssuerError):
        return _bad("token.iss", "the token is not from the configured issuer")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return _bad(f"token.{exc.claim}", "missing")
    if isinstance(exc, jwt.InvalidSignatureError):
        return _bad("token.signature", "the signature does not verify")
    return _bad("Authorization", "not a well-formed JWT")


def _printable(value: object, limit: int) -> bool:
    # isprintable() is False for control characters and lone surrogates alike.
    return isinstance(value, str) and 0 < len(value) <= limit and value.isprintable()


def _claim_values(claims: dict[str, Any], path: str) -> list[str]:
    """The string values of a (dotted) claim: a string is one value, a list its strings."""
    node: Any = claims
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [v for v in node if isinstance(v, str)]
    return []
