"""Browser tests of the web pages: Playwright for Python driving Debian's Chromium.

One browser for the session, one fresh context (empty sessionStorage) per test. Every
context routes every request through a guard that aborts and records any request whose host
is not 127.0.0.1, and each test fails at teardown if one was made: the pages must work on a
network cut off from everything but tierwise.

Chromium is Debian's (/usr/bin/chromium, `apt-get install chromium`; `make test` installs it
when CI=true). Without it, or without the playwright package, these tests skip loudly, and
fail under CI=true: they may not skip there.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.config import PROJECT_ROOT, Settings, get_settings
from app.main import create_app
from tests.conftest import MODELS_DIR, RunningServer

try:  # a missing package skips (or fails in CI) through the browser fixture
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover
    expect = None  # type: ignore[assignment]

CHROMIUM = os.environ.get("TIERWISE_CHROMIUM", "/usr/bin/chromium")


def browser_unavailable(reason: str) -> None:
    """Fail in CI (CI=true), skip loudly elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests may not skip)")
    pytest.skip(f"!!! SKIPPING the browser tests (CI=true makes this fail): {reason}")


def chromium_path(path: str) -> str:
    """`path` when Chromium is there and Playwright is installed; else skip or fail."""
    if expect is None:
        browser_unavailable("the playwright package is missing (pip install playwright)")
    if not Path(path).is_file():
        browser_unavailable(f"no Chromium at {path} (apt-get install -y chromium)")
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright, headless, for the whole session."""
    path = chromium_path(CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Service:
    """Two replicas on one registry database, with a key per role: the publisher `dana`, who
    also holds an approver key (`dana_approver`), and the approver `marc`."""

    urls: list[str]
    keys: dict[str, str]
    database_url: str
    url: str = field(init=False)

    def __post_init__(self) -> None:
        self.url = self.urls[0]

    def get(self, path: str, role: str = "admin", replica: int = 0) -> Any:
        r = httpx.get(self.urls[replica] + path, headers={"X-API-Key": self.keys[role]},
                      timeout=10)
        r.raise_for_status()
        return r.json()


def _settings(tmp: Path, **extra: Any) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp / 'registry.sqlite3'}", models_dir=MODELS_DIR,
                    auth_enabled=True, bootstrap_admin_key_file=tmp / "admin.key",
                    compile_models=False, poll_interval_seconds=0.3, log_level="ERROR", **extra)


def _ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(url + "/readyz").status_code != 200:
        assert time.monotonic() < deadline, f"{url} did not become ready"
        time.sleep(0.1)


def _role_keys(database_url: str) -> dict[str, str]:
    from typer.testing import CliRunner

    from app.cli import cli

    keys = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIERWISE_DATABASE_URL", database_url)
        get_settings.cache_clear()
        try:
            for name, role, who in (("scorer", "scorer", "crm"),
                                    ("publisher", "publisher", "dana"),
                                    ("approver", "approver", "marc"),
                                    ("dana_approver", "approver", "dana")):
                result = CliRunner().invoke(cli, ["keys", "create", "--role", role,
                                                  "--principal", who, "--as", "bootstrap admin"])
                assert result.exit_code == 0, result.output
                keys[name] = result.output.strip().splitlines()[-1]
        finally:
            get_settings.cache_clear()
    return keys


@pytest.fixture(scope="session")
def service(browser: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """tierwise on real HTTP: two replicas (threads of this process) on one SQLite file,
    seeded with the default models; the second answers only once the first has seeded.
    (After the browser: without one, the tests skip or fail before starting anything.)"""
    tmp = tmp_path_factory.mktemp("ui-service")
    settings = _settings(tmp)
    with RunningServer(create_app(settings)) as first:
        _ready(first.url)
        with RunningServer(create_app(_settings(tmp))) as second:
            _ready(second.url)
            keys = _role_keys(settings.database_url)
            keys["admin"] = (tmp / "admin.key").read_text().strip()
            yield Service([first.url, second.url], keys, settings.database_url)


def save_screenshot(name: str, png: bytes) -> None:
    """Check a screenshot; with TIERWISE_UI_SCREENSHOTS=docs (`make screenshots`) also write
    it to docs/<name>."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    if os.environ.get("TIERWISE_UI_SCREENSHOTS") == "docs":
        (PROJECT_ROOT / "docs" / name).write_bytes(png)


@dataclass
class Guarded:
    """A page whose context lets through requests to 127.0.0.1 only."""

    page: Any
    external: list[str]
    requests: list[Any]


@pytest.fixture
def open_page(browser: Any) -> Iterator[Callable[..., Guarded]]:
    """Open pages in fresh contexts (empty sessionStorage); `key` puts an API key in the
    context's sessionStorage first, as if the user had typed it on another page."""
    contexts: list[Any] = []
    external: list[str] = []

    def guard(route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            external.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    def open_(url: str, *, key: str | None = None, locale: str = "en-US") -> Guarded:
        context = browser.new_context(locale=locale, viewport={"width": 1100, "height": 900})
        contexts.append(context)
        context.route("**/*", guard)
        if key is not None:
            context.add_init_script(f"sessionStorage.setItem('tierwise.apiKey', {key!r});")
        page = context.new_page()
        requests: list[Any] = []
        page.on("request", lambda request: requests.append(request))
        page.goto(url)
        return Guarded(page, external, requests)

    yield open_
    for context in contexts:
        context.close()
    assert external == [], f"pages requested other hosts: {external}"
