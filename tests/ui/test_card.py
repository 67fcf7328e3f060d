"""The customer card in a real browser: it renders a scored customer, and a decline removes
the action on the next score, through the session history when the server has no outcomes
route and through POST /v1/outcomes when it has one."""

from __future__ import annotations

import json
from typing import Any

from tests.ui.conftest import Guarded, Service

SCREENSHOTS: dict[str, bytes] = {}


def _card(g: Guarded) -> Any:
    card = g.page.locator("tierwise-card")
    card.locator("ol.actions li.action").first.wait_for()
    return card


def _actions(card: Any) -> list[str]:
    return [a.get_attribute("data-action") for a in card.locator("li.action").all()]


def test_the_card_renders_a_scored_customer(service: Service, open_page: Any) -> None:
    g = open_page(service.url + "/ui/")
    # No key yet: the card asks for one, and keeps it for the browser session only.
    g.page.get_by_label("API key (kept for this browser session only)").fill(service.keys["scorer"])
    g.page.get_by_role("button", name="Use key").click()
    card = _card(g)
    sample = json.loads(g.page.evaluate("fetch('/ui/sample-customer.json').then(r => r.text())"))
    expected = _score(service, sample)
    assert card.locator(".booked").inner_text() == _tier_name(expected["tier"]["booked"])
    assert card.locator(".predicted").inner_text() == _tier_name(expected["tier"]["predicted"])
    gauge = card.locator("svg.gauge")
    percent = f"{round(expected['churn']['probability'] * 100)}%"
    assert gauge.locator("text").text_content() == percent
    assert expected["churn"]["band"] in gauge.get_attribute("aria-label")
    assert card.locator(".churn ul.reasons li").all_inner_texts() == [
        r["text"] for r in expected["churn"]["reasons"]]
    assert _actions(card) == [r["action_id"] for r in expected["recommendations"]]
    first = card.locator("li.action").first
    rec = expected["recommendations"][0]
    assert rec["category"] in first.locator("dd").all_inner_texts()
    assert first.locator(".priority").inner_text().endswith(f"{rec['priority']:.3f}")
    # The key went into sessionStorage, nowhere else: not localStorage, not a URL.
    key = service.keys["scorer"]
    assert g.page.evaluate("sessionStorage.getItem('tierwise.apiKey')") == key
    assert g.page.evaluate("localStorage.length") == 0
    assert all(key not in r.url for r in g.requests)
    SCREENSHOTS["card"] = g.page.screenshot(full_page=True)


def _tier_name(code: str) -> str:
    return {"mass": "Mass", "affluent": "Affluent", "hnw": "High net worth",
            "private": "Private"}[code]


def _score(service: Service, sample: dict[str, Any], history: list[Any] | None = None
           ) -> dict[str, Any]:
    import httpx
    body = {**sample, "context": {"channel": "rm", "history": history or []},
            "options": {"explain": True}}
    r = httpx.post(service.url + "/v1/score", json=body,
                   headers={"X-API-Key": service.keys["scorer"]}, timeout=10)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


