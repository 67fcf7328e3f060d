"""API keys on the wire: `X-API-Key: <key>` or `Authorization: Bearer <key>`, checked by role.
With TIERWISE_OIDC_ISSUER set, a Bearer OIDC token (a JWT) is accepted too (app/api/oidc.py).

Roles: scorer < publisher, approver < admin (publisher and approver may also score; admin
may do everything). Lookups are cached a few seconds per key, so the scoring path costs one
dictionary lookup and a sha256, and at most one database query per key per few seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import Services, services_of
from app.api.oidc import KEY_ID as OIDC_KEY_ID
from app.api.oidc import looks_like_jwt
from app.errors import FieldProblem, Forbidden, NotReady, Unauthorized
from app.registry.auth_keys import ANONYMOUS, Principal

__all__ = [
    "Principal",
    "RequireAdmin",
    "RequireApprover",
    "RequireOperator",
    "RequirePublisher",
    "RequireScorer",
    "RequireViewer",
    "key_from_headers",
    "principal_for",
    "require_scorer",
]


def presented_key(request: Request) -> str | None:
    """The key a caller sent, from X-API-Key or a Bearer token."""
    return key_from_headers(request.headers.get("x-api-key"),
                            request.headers.get("authorization"))


def key_from_headers(x_api_key: str | None, authorization: str | None) -> str | None:
    """presented_key() from the first X-API-Key and Authorization header values."""
    if x_api_key:
        return x_api_key.strip()
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


async def current_principal(request: Request) -> Principal:
    """Who is calling (an anonymous admin when auth is disabled)."""
    return await principal_for(services_of(request.app), presented_key(request))


async def principal_for(services: Services, key: str | None) -> Principal:
    """The principal for the presented `key` (None: none sent)."""
    runtime = services.runtime
    if not services.settings.auth_enabled:
        return ANONYMOUS
    if not key:
        raise Unauthorized("an API key is required",
                           [FieldProblem("X-API-Key", "send the key in X-API-Key or as a "
                                                      "Bearer token")])
    if services.oidc is not None and looks_like_jwt(key):
        return await _token_principal(services, key)
    if runtime is None:
        raise NotReady("the key registry is not available")
    found, principal = runtime.keys.cached(key)
    if not found:  # a database query: keep it off the event loop
        principal = await asyncio.to_thread(runtime.keys.authenticate, key)
    if principal is None:
        raise Unauthorized("the API key is not valid",
                           [FieldProblem("X-API-Key", "unknown, wrong or revoked key")])
    return principal


async def _token_principal(services: Services, token: str) -> Principal:
    """The principal of an OIDC bearer token (no database: the JWKS is the only I/O)."""
    verifier = services.oidc
    assert verifier is not None
    alg, kid = verifier.header(token)
    if verifier.jwks.stale(kid):  # a file read or an HTTP fetch: keep it off the event loop
        await asyncio.to_thread(verifier.jwks.refresh, kid)
    return verifier.verify(token, alg, kid)


def _require(*capabilities: str) -> Callable[[Request], Awaitable[Principal]]:
    # One dependency level, not two (a Depends(current_principal) inside): FastAPI's
    # dependency resolution costs tens of microseconds a level on every scoring request.
    async def check(request: Request) -> Principal:
        return allowed(await current_principal(request), capabilities)

    check.__name__ = "require_" + "_or_".join(capabilities)
    return check


def allowed(principal: Principal, capabilities: tuple[str, ...]) -> Principal:
    """`principal` when its role has one of `capabilities`; else 403."""
    if not any(principal.may(c) for c in capabilities):
        held = (f"the OIDC token of {principal.name} maps to role {principal.role}"
                if principal.key_id == OIDC_KEY_ID
                else f"the key {principal.key_id} has role {principal.role}")
        raise Forbidden(f"this needs the {' or '.join(capabilities)} role",
                        [FieldProblem("role", held)])
    return principal


SCORER = ("scorer",)
require_scorer = _require(*SCORER)
RequireScorer = Annotated[Principal, Depends(require_scorer)]
RequirePublisher = Annotated[Principal, Depends(_require("publisher"))]
RequireApprover = Annotated[Principal, Depends(_require("approver"))]
RequireAdmin = Annotated[Principal, Depends(_require("admin"))]
# Anyone with a valid key may read the registry; moving aliases needs publisher or approver
# (the service then checks production moves against the approver role).
RequireViewer = RequireScorer
RequireOperator = Annotated[Principal, Depends(_require("publisher", "approver"))]
