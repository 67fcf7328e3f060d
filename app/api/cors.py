"""CORS for the few paths a CRM page on another origin calls from the browser.

Starlette's CORSMiddleware, in front of the scoring endpoint (which answers /v1/score itself)
but only on CORS_PATHS: the registry and key routes stay same-origin. Off (not installed)
when TIERWISE_UI_CORS_ORIGINS is empty.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.middleware.cors import CORSMiddleware

from app.api.request_context import ASGIApp, Receive, Scope, Send

# The card's script and style sheet, the routes it calls, and the document it reads once to
# learn whether the server has /v1/outcomes.
CORS_PATHS = frozenset({"/v1/score", "/v1/outcomes", "/ui/tierwise-card.js",
                        "/ui/tierwise-card.css", "/openapi.json"})
ALLOWED_HEADERS = ("X-API-Key", "Authorization", "Content-Type", "X-Request-Id")


class CorsPaths:
    """CORS headers (and preflight answers) for CORS_PATHS from `origins`; others pass."""

    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(app, allow_origins=list(origins),
                                   allow_methods=["GET", "POST"],
                                   allow_headers=list(ALLOWED_HEADERS),
                                   expose_headers=["X-Request-Id"], max_age=600)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] in CORS_PATHS:
            await self.cors(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def with_cors(app: ASGIApp, origins: Sequence[str]) -> ASGIApp:
    """`app` with CORS on CORS_PATHS for `origins`; `app` itself when there are none."""
    return CorsPaths(app, origins=origins) if origins else app
