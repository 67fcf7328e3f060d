"""The web pages (/ui/...) and the API documentation (/docs, /redoc) from local files.

Pages and assets are static files of app/ui/, sent with the security headers of
app/ui/security.py; they hold no key and no data. Their scripts call the /v1 API with the key
the user types once per browser session. TIERWISE_UI_ENABLED=false answers 404 under /ui/
(the documentation stays).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, JSONResponse, Response

from app.api.deps import ServicesDep, SettingsDep
from app.config import Settings
from app.errors import FieldProblem, NotFound, NotReady
from app.ui import assets, security

VENDOR = "/ui/vendor"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def _enabled(settings: SettingsDep) -> None:
    if not settings.ui_enabled:
        raise NotFound("the web pages are switched off (TIERWISE_UI_ENABLED=false)",
                       [FieldProblem("path", "not served on this replica")])


router = APIRouter(include_in_schema=False, dependencies=[Depends(_enabled)])
docs_router = APIRouter(include_in_schema=False)
_STATIC = assets.static_assets()
PAGES = {"/ui": "demo", "/ui/": "demo", "/ui/card": "card", "/ui/registry": "registry"}


def _html(name: str, settings: Settings) -> HTMLResponse:
    return HTMLResponse(assets.page(name),
                        headers=security.page_headers(settings.ui_frame_ancestors))


def _page_route(path: str, name: str) -> None:
    async def show(settings: SettingsDep) -> HTMLResponse:
        return _html(name, settings)

    router.add_api_route(path, show, methods=["GET"], name=f"ui_{name}")


for _path, _name in PAGES.items():
    _page_route(_path, _name)


@router.get("/ui/registry/{family}/{version}")
async def ui_version(settings: SettingsDep, family: Annotated[str, Path(max_length=64)],
                     version: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> HTMLResponse:
    return _html("version", settings)


@router.get("/ui/sample-customer.json")
async def ui_sample(services: ServicesDep) -> JSONResponse:
    """A made-up customer for the demo: each feature of the live contract at its example."""
    live = services.live
    if live is None or not live.ready:
        raise NotReady("no verified scoring context is live yet; see /v1/status")
    specs = live.current().contract.specs()
    body: dict[str, Any] = {"customer_id": "DEMO-0001",
                            "features": {s.name: s.example for s in specs}}
    return JSONResponse(body, headers=security.page_headers(
        services.settings.ui_frame_ancestors))


@router.get("/ui/{name}")
async def ui_asset(name: Annotated[str, Path(max_length=64)],
                   settings: SettingsDep) -> Response:
    path = _STATIC.get(name)
    if path is None:
        raise NotFound(f"no such page or file: /ui/{name}",
                       [FieldProblem("path", "not one of the files under /ui/")])
    return Response(path.read_bytes(), media_type=assets.MEDIA_TYPES[path.suffix],
                    headers={**security.page_headers(settings.ui_frame_ancestors),
                             "Cache-Control": "no-cache"})


# --- Swagger UI and ReDoc, from the package's files ---------------------------------------

_DOCS_DIR = assets.docs_asset_dir()
# Swagger UI would send the document to an online validator and show its badge: off.
SWAGGER_PARAMETERS = {"validatorUrl": None}


@docs_router.get(VENDOR + "/{name}")
async def docs_asset(name: Annotated[str, Path(max_length=64)]) -> Response:
    if name not in assets.DOCS_ASSETS:
        raise NotFound(f"no such file: {VENDOR}/{name}",
                       [FieldProblem("path", "not a documentation asset")])
    path = _DOCS_DIR / name
    return Response(assets.docs_asset(path), media_type=assets.MEDIA_TYPES[path.suffix],
                    headers={"Cache-Control": "public, max-age=86400"})


def _docs(html: HTMLResponse, settings: Settings) -> HTMLResponse:
    page = bytes(html.body).decode()
    html.headers.update(security.docs_headers(settings.ui_frame_ancestors,
                                              security.script_hashes(page)))
    return html


@docs_router.get("/docs")
async def swagger_ui(settings: SettingsDep) -> HTMLResponse:
    return _docs(get_swagger_ui_html(
        openapi_url="/openapi.json", title="tierwise - Swagger UI",
        swagger_js_url=f"{VENDOR}/swagger-ui-bundle.js",
        swagger_css_url=f"{VENDOR}/swagger-ui.css",
        swagger_favicon_url=f"{VENDOR}/favicon.png", oauth2_redirect_url=OAUTH2_REDIRECT,
        swagger_ui_parameters=SWAGGER_PARAMETERS),
        settings)


@docs_router.get(OAUTH2_REDIRECT)
async def swagger_ui_redirect(settings: SettingsDep) -> HTMLResponse:
    return _docs(get_swagger_ui_oauth2_redirect_html(), settings)


@docs_router.get("/redoc")
async def redoc(settings: SettingsDep) -> HTMLResponse:
    return _docs(get_redoc_html(
        openapi_url="/openapi.json", title="tierwise - ReDoc",
        redoc_js_url=f"{VENDOR}/redoc.standalone.js", redoc_favicon_url=f"{VENDOR}/favicon.png",
        with_google_fonts=False), settings)
