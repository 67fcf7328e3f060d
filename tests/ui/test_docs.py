"""docs/ui.md and the README's section say what the code does: paths, headers, settings,
attributes, events, CORS paths, storage, the plots' sources and the screenshots. (What the
pages do in a browser is tested by the other modules of tests/ui.)"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.api.cors import CORS_PATHS
from app.config import PROJECT_ROOT, Settings
from app.main import create_app
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from app.ui import assets
from tests.conftest import RunningServer

DOC = (PROJECT_ROOT / "docs" / "ui.md").read_text(encoding="utf-8")
README = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
CARD_JS = (assets.STATIC_DIR / "tierwise-card.js").read_text(encoding="utf-8")


def _table(heading: str) -> list[list[str]]:
    """The rows of the first table whose header row starts with `heading`."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {heading} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


@pytest.fixture
def url(default_context: ScoringContext, serve: Callable[[Any], RunningServer]) -> str:
    return serve(create_app(Settings(auth_enabled=False),
                            live=StaticContexts(default_context))).url


def test_every_path_in_the_table_is_served(url: str) -> None:
    paths = [p for row in _table("path") for p in re.findall(r"`([^`]+)`", row[0])]
    assert len(paths) == 7
    for path in paths:
        path = path.replace("{family}/{version}", "churn/1").replace("…", "C1")
        assert httpx.get(url + path).status_code == 200, path


def test_the_documented_headers_are_the_served_ones(url: str) -> None:
    block = re.search(r"Every `/ui/` response carries\n\n```\n(.*?)\n```", DOC, re.S)
    assert block
    headers = httpx.get(url + "/ui/").headers
    for line in block.group(1).splitlines():
        name, value = line.split(": ", 1)
        assert headers[name] == value, name


def test_the_settings_and_their_defaults() -> None:
    defaults = Settings()
    assert defaults.ui_enabled is True
    assert defaults.ui_frame_ancestors == [] and defaults.ui_cors_origins == []
    for name in re.findall(r"TIERWISE_UI_[A-Z_]+", DOC + README):
        assert name.removeprefix("TIERWISE_").lower() in Settings.model_fields, name


def test_the_cors_paths() -> None:
    paragraph = DOC[DOC.index("(CORS on "):DOC.index("the registry routes are never")]
    assert set(re.findall(r"`(/[^`]+)`", paragraph)) == CORS_PATHS


def test_the_attributes_properties_and_events_exist() -> None:
    rows = _table("attribute / property")
    attributes = [re.search(r"`([^`]+)`", r[0])[1] for r in rows  # type: ignore[index]
                  if "(property)" not in r[0]]
    properties = [re.search(r"`([^`]+)`", r[0])[1] for r in rows  # type: ignore[index]
                  if "(property)" in r[0]]
    for name in attributes:
        assert f'getAttribute("{name}")' in CARD_JS, name
    for name in properties:
        assert re.search(rf"(get|set) {name}\(|this\.{name} = ", CARD_JS), name
    for event in ("tierwise-scored", "tierwise-outcome"):
        assert f'new CustomEvent("{event}"' in CARD_JS
    for message in ("tierwise-ready", "tierwise-features", "tierwise-outcome"):
        assert message in DOC
        assert f'"{message}"' in (assets.STATIC_DIR / "card-page.js").read_text()


def test_the_key_lives_in_session_storage_only() -> None:
    scripts = {p.name: p.read_text() for p in assets.STATIC_DIR.glob("*.js")}
    assert "`sessionStorage`" in DOC and "`tierwise.apiKey`" in DOC
    for name, text in scripts.items():
        assert "localStorage" not in text and "document.cookie" not in text, name
    assert '"tierwise.apiKey"' in scripts["tierwise-card.js"]
    assert '"tierwise.apiKey"' in scripts["console.js"]


def test_the_plot_sources() -> None:
    version_js = (assets.STATIC_DIR / "version.js").read_text()
    for row in _table("plot"):
        source = row[1]
        for path in re.findall(r"`metrics\.([a-z_.]+)`", source):
            assert f"m.{path}" in version_js, path
        for route in re.findall(r"`GET (/v1/[^`]+)`", source):
            assert route.rsplit("/", 1)[1] in version_js and route in _openapi_paths(), route
    assert "/importance" in DOC and "/config" in DOC


def _openapi_paths() -> set[str]:
    import yaml
    doc = yaml.safe_load((PROJECT_ROOT / "openapi.yaml").read_text())
    return set(doc["paths"])


def test_screenshots_and_the_package() -> None:
    for name in ("ui-card.png", "ui-registry.png"):
        assert (PROJECT_ROOT / "docs" / name).read_bytes()[:4] == b"\x89PNG"
        assert f"({name})" in DOC
    assert "(docs/ui-card.png)" in README and "(docs/ui.md)" in README
    lock = (PROJECT_ROOT / "requirements" / "runtime.lock").read_text()
    assert "`fastapi-offline`" in DOC and "\nfastapi-offline==" in lock
