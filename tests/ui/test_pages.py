"""Every page with the network cut off (only 127.0.0.1 reachable, checked by the page
fixture), without a console error (a CSP refusal would show there); the card embedded by a
CRM page on another origin, by script tag and by iframe; and the screenshots in docs/.

Screenshots: each run takes them; `make screenshots` (TIERWISE_UI_SCREENSHOTS=docs) also
writes them to docs/ui-card.png and docs/ui-registry.png.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.config import Settings
from app.main import create_app
from app.scoring.context import ScoringContext
from app.scoring.static import StaticContexts
from tests.conftest import RunningServer, free_port
from tests.ui.conftest import Guarded, Service, expect, save_screenshot


def _watch_console(g: Guarded) -> list[str]:
    errors: list[str] = []
    g.page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    g.page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


@pytest.mark.parametrize(("path", "ready"), [
    ("/ui/", "tierwise-card li.action"),
    ("/ui/card?sample=1&lang=zh", "tierwise-card li.action"),
    ("/ui/registry", 'section[data-family="churn"] tr[data-version="1"]'),
    ("/ui/registry/churn/1", "#plots svg"),
    ("/docs", ".swagger-ui .info .title"),
    ("/redoc", "h1"),
])
def test_every_page_works_with_the_network_cut_off(service: Service, open_page: Any,
                                                   path: str, ready: str) -> None:
    g = open_page("about:blank", key=service.keys["approver"])
    errors = _watch_console(g)
    g.page.goto(service.url + path)
    g.page.locator(ready).first.wait_for()
    if path in ("/docs", "/redoc"):
        expect(g.page.locator(ready).first).to_contain_text("tierwise")
    assert errors == []
    hosts = {r.url.split("/")[2] for r in g.requests if r.url.startswith("http")}
    assert hosts == {service.url.split("/")[2]}


def test_screenshots(service: Service, open_page: Any) -> None:
    """The card's; the console's is taken in test_registry_console, after a promotion."""
    g = open_page(service.url + "/ui/", key=service.keys["scorer"])
    g.page.locator("tierwise-card li.action").first.wait_for()
    save_screenshot("ui-card.png", g.page.locator("tierwise-card").screenshot())


# --- embedded in a CRM page on another origin -----------------------------------------------

HOST_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8">
<script type="module" src="{tw}/ui/tierwise-card.js"></script></head><body>
<tierwise-card id="card" customer="C9"></tierwise-card>
<iframe id="framed" src="{tw}/ui/card?customer=C9" width="600" height="900"></iframe>
<iframe id="refused" src="{other}/ui/card?sample=1" width="300" height="200"></iframe>
<ol id="outcomes"></ol>
<script type="module">
const features = {features};
const card = document.getElementById("card");
card.apiKey = "crm-key";
card.onoutcome = (d) => document.title = "callback " + d.action_id;
card.features = features;
const frame = document.getElementById("framed");
// Listening only three seconds late (a slow CRM page): the frame's first "tierwise-ready" is lost,
// and the card must still get its features (the frame says it again until answered).
setTimeout(() => window.addEventListener("message", (e) => {{
  if (e.origin !== "{tw}") return;
  if (e.data.type === "tierwise-ready") frame.contentWindow.postMessage(
      {{type: "tierwise-features", customer_id: "C9", features}}, "{tw}");
  if (e.data.type === "tierwise-outcome") {{
    const li = document.createElement("li");
    li.textContent = e.data.detail.action_id + " " + e.data.detail.outcome;
    document.getElementById("outcomes").append(li);
  }}
}}), 3000);
</script></body></html>"""


@pytest.fixture
def crm_page(default_context: ScoringContext, service: Service) -> Iterator[str]:
    """A CRM page on its own origin, and a tierwise replica that allows it."""
    port = free_port()
    crm = f"http://127.0.0.1:{port}"
    app = create_app(Settings(auth_enabled=False, ui_frame_ancestors=[crm],
                              ui_cors_origins=[crm]), live=StaticContexts(default_context))
    with RunningServer(app) as tierwise:
        sample = json.dumps(_sample(default_context))
        html = HOST_PAGE.format(tw=tierwise.url, other=service.url, features=sample).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(html)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield crm
        finally:
            server.shutdown()
            server.server_close()


def _sample(ctx: ScoringContext) -> dict[str, Any]:
    return {s.name: s.example for s in ctx.contract.specs()}


def test_a_crm_page_on_another_origin_embeds_the_card(crm_page: str, open_page: Any) -> None:
    g = open_page(crm_page + "/")
    card = g.page.locator("#card")
    card.locator("li.action").first.wait_for()
    first = card.locator("li.action").first.get_attribute("data-action")
    card.locator("li.action button.decline").first.click()
    expect(g.page).to_have_title(f"callback {first}")
    # The iframe: it asks its parent for the features, and reports outcomes back to it.
    frame = g.page.frame_locator("#framed")
    frame.get_by_label("API key (kept for this browser session only)").fill("crm-key")
    frame.get_by_role("button", name="Use key").click()
    frame.locator("tierwise-card li.action").first.wait_for()
    framed_first = frame.locator("tierwise-card li.action").first.get_attribute("data-action")
    frame.locator("tierwise-card li.action button.accept").first.click()
    expect(g.page.locator("#outcomes li")).to_have_text([f"{framed_first} accepted"])
    # A replica that does not list this origin refuses to be framed by it.
    # (Chromium shows its error page in the frame instead.)
    refused = g.page.locator("#refused").element_handle().content_frame()
    deadline = time.monotonic() + 10
    while refused.url != "chrome-error://chromewebdata/":
        assert time.monotonic() < deadline, refused.url
        time.sleep(0.05)
