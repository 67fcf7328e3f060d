"""The pages' security headers, CORS, the switch, and the documentation from local files,
over real HTTP (no browser): every fact docs/ui.md states about them."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.main import create_app
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from app.ui import assets
from tests.conftest import RunningServer

CRM = "https://crm.bank.example"
PAGES = ("/ui", "/ui/", "/ui/card", "/ui/registry", "/ui/registry/churn/1")
ASSETS = ("/ui/tierwise-card.js", "/ui/tierwise-card.css", "/ui/registry.js", "/ui/ui.css")


@pytest.fixture
def start(default_context: ScoringContext, serve: Callable[[Any], RunningServer]
          ) -> Callable[..., str]:
    def start_(**settings: Any) -> str:
        app = create_app(Settings(auth_enabled=False, **settings),
                         live=StaticContexts(default_context))
        return serve(app).url
    return start_


def test_pages_carry_a_strict_csp_and_same_origin_framing(start: Callable[..., str]) -> None:
    url = start()
    for path in (*PAGES, *ASSETS, "/ui/sample-customer.json"):
        r = httpx.get(url + path)
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert csp.startswith("default-src 'self'; "), path
        assert "frame-ancestors 'self'" in csp and "unsafe" not in csp
        assert "script-src" not in csp  # default-src 'self': no inline script, no other host
        assert r.headers["x-frame-options"] == "SAMEORIGIN"
        assert r.headers["x-content-type-options"] == "nosniff"
    # The pages run no inline script and name no other host.
    for path in PAGES:
        html = httpx.get(url + path).text
        assert re.search(r"<script(?![^>]*\bsrc=)", html) is None, path
        assert "//" not in re.sub(r"<!--.*?-->", "", html, flags=re.DOTALL), path


def test_configured_ancestors_replace_x_frame_options(start: Callable[..., str]) -> None:
    url = start(ui_frame_ancestors=[CRM, "https://crm2.bank.example:8443"])
    r = httpx.get(url + "/ui/card")
    assert r.headers["content-security-policy"].endswith(
        f"frame-ancestors 'self' {CRM} https://crm2.bank.example:8443")
    assert "x-frame-options" not in r.headers


@pytest.mark.parametrize("origin", ["*", "https://crm.bank.example/", "'unsafe-inline'",
                                    "https://crm.bank.example; script-src *",
                                    "https://crm.bank.example\r\nX-Evil: 1", "javascript:x",
                                    "crm.bank.example", "https://a b"])
def test_an_origin_that_is_not_one_is_refused(origin: str) -> None:
    for name in ("ui_frame_ancestors", "ui_cors_origins"):
        with pytest.raises(ValidationError, match=name):
            Settings(**{name: [origin]})


def test_cors_only_for_configured_origins_and_the_card_routes(start: Callable[..., str]
                                                              ) -> None:
    preflight = {"Origin": CRM, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "x-api-key,content-type"}
    off = start()
    assert "access-control-allow-origin" not in httpx.options(off + "/v1/score",
                                                              headers=preflight).headers
    url = start(ui_cors_origins=[CRM])
    r = httpx.options(url + "/v1/score", headers=preflight)
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == CRM
    assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in r.headers
    other = httpx.options(url + "/v1/score", headers={**preflight, "Origin": "https://evil.example"})
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    for path in ("/ui/tierwise-card.js", "/ui/tierwise-card.css", "/openapi.json"):
        got = httpx.get(url + path, headers={"Origin": CRM})
        assert got.headers["access-control-allow-origin"] == CRM, path
    # The registry is never called cross-origin.
    assert "access-control-allow-origin" not in httpx.get(
        url + "/v1/models", headers={"Origin": CRM}).headers
    scored = httpx.post(url + "/v1/score", headers={"Origin": CRM}, json={
        "customer_id": "C1", "features": {}})
    assert scored.headers["access-control-allow-origin"] == CRM  # on errors too


def test_the_switch_turns_the_pages_off_but_not_the_docs(start: Callable[..., str]) -> None:
    url = start(ui_enabled=False)
    for path in (*PAGES, *ASSETS):
        r = httpx.get(url + path)
        assert r.status_code == 404, path
        assert r.json()["error"]["code"] == "not_found"
    assert httpx.get(url + "/docs").status_code == 200
    assert httpx.get(url + "/redoc").status_code == 200


def test_unknown_files_are_404_and_paths_do_not_escape(start: Callable[..., str]) -> None:
    url = start()
    for path in ("/ui/nope.js", "/ui/..%2Fconfig.py", "/ui/vendor/..%2F__init__.py",
                 "/ui/vendor/core.py", "/ui/registry/churn/0", "/ui/" + "a" * 65):
        r = httpx.get(url + path)
        assert r.status_code in (404, 422), path
        assert "error" in r.json()


def _sha256(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
def test_the_docs_come_from_local_files(start: Callable[..., str], path: str) -> None:
    url = start()
    r = httpx.get(url + path)
    assert r.status_code == 200
    html = r.text
    # Every URL the page names is on this server.
    for ref in re.findall(r'(?:src|href|url|spec-url)\s*[=:]\s*["\']([^"\']+)', html):
        assert ref.startswith("/") and not ref.startswith("//"), ref
    assert "http://" not in html and "https://" not in html
    csp = r.headers["content-security-policy"]
    for script in re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL):
        assert _sha256(script) in csp  # the inline start script, and only it
    for ref in re.findall(r'src="(/ui/vendor/[^"]+)"', html):
        asset = httpx.get(url + ref)
        assert asset.status_code == 200 and len(asset.content) > 100_000


def test_the_vendored_bundles_are_the_packaged_ones() -> None:
    for name in assets.DOCS_ASSETS:
        assert (assets.docs_asset_dir() / name).is_file(), name


def test_the_served_bundles_name_no_image_or_style_on_another_host(
        start: Callable[..., str]) -> None:
    url = start()
    for name in ("redoc.standalone.js", "swagger-ui-bundle.js", "swagger-ui.css"):
        body = httpx.get(f"{url}/ui/vendor/{name}").text
        found = re.findall(r"https?://[^\"'\s)]+\.(?:svg|png|gif|jpe?g|css|woff2?)\b", body)
        assert found == [], (name, found)
    assert "validatorUrl\": null" in httpx.get(url + "/docs").text
