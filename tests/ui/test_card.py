"""The customer card in a real browser: it renders a scored customer, and a decline removes
the action on the next score, through the session history, and is recorded by POST
/v1/outcomes with the recommendation's decision id (or at an outcome-url)."""

from __future__ import annotations

import json
from typing import Any

from tests.ui.conftest import Guarded, Service, expect

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
    assert g.page.context.cookies() == []
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




def _decline_first(g: Guarded) -> tuple[str, Any]:
    """Decline the first action with the keyboard; the card scores again at once."""
    card = _card(g)
    first = card.locator("li.action").first
    declined = first.get_attribute("data-action")
    with g.page.expect_response(lambda r: r.url.endswith("/v1/score")) as answer:
        first.locator("button.decline").focus()
        g.page.keyboard.press("Enter")
    card.locator(f'li.action[data-action="{declined}"]').wait_for(state="detached")
    return declined, answer.value


def test_a_decline_removes_the_action_on_the_next_score(service: Service,
                                                        open_page: Any) -> None:
    """The decline travels in context.history (the session's), and, the server having
    POST /v1/outcomes and its answers decision ids, is recorded there by its decision id."""
    g = open_page(service.url + "/ui/", key=service.keys["scorer"])
    declined, response = _decline_first(g)
    card = g.page.locator("tierwise-card")
    assert declined not in _actions(card)
    # Keyboard focus stays in the card, on the next action's first button.
    assert card.evaluate("c => c.shadowRoot.activeElement.className") == "accept"
    sent = json.loads(response.request.post_data)
    today = g.page.evaluate("new Date().toISOString().slice(0, 10)")
    assert sent["context"]["channel"] == "rm"  # the demo's channel attribute
    assert sent["context"]["history"] == [
        {"action_id": declined, "date": today, "outcome": "declined"}]
    # The caller's callback: the tierwise-outcome event, listed by the demo page.
    assert g.page.locator("#events li").all_inner_texts() == [
        f"{today} DEMO-0001 {declined}: declined"]
    # The screen reader hears it.
    assert "Declined:" in card.locator("[aria-live]").get_attribute("data-message")
    posted = [r for r in g.requests if r.url.endswith("/v1/outcomes")]
    assert len(posted) == 1
    (item,) = json.loads(posted[0].post_data)["outcomes"]
    assert (item["outcome"], item["date"]) == ("declined", today)
    assert item["decision_id"].startswith("d1.")
    recorded = service.get(f"/v1/outcomes?customer_id=DEMO-0001&action_id={declined}",
                           role="scorer")["outcomes"]
    assert [(o["outcome"], o["decision_id"]) for o in recorded] == [
        ("declined", item["decision_id"])]
    # And the server agrees: the same history suppresses the action for its cool-off.
    sample = json.loads(g.page.evaluate("fetch('/ui/sample-customer.json').then(r => r.text())"))
    again = _score(service, sample, sent["context"]["history"])
    assert declined not in [r["action_id"] for r in again["recommendations"]]


def test_with_an_outcomes_route_a_decline_is_posted_there(service: Service,
                                                           open_page: Any) -> None:
    """Where the server documents POST /v1/outcomes and recommendations carry decision ids
    (stood in for here by rewriting the answers in the browser), the card posts there."""
    g = open_page("about:blank", key=service.keys["scorer"])
    posted: list[Any] = []

    def openapi(route: Any) -> None:
        doc = route.fetch().json()
        doc["paths"]["/v1/outcomes"] = {"post": {"operationId": "record_outcomes"}}
        route.fulfill(json=doc)

    def score(route: Any) -> None:
        body = route.fetch().json()
        for rec in body["recommendations"]:
            rec["decision_id"] = "dec-" + rec["action_id"]
        route.fulfill(json=body)

    def outcomes(route: Any) -> None:
        posted.append((route.request.headers.get("x-api-key"),
                       json.loads(route.request.post_data)))
        route.fulfill(json={"recorded": 1})

    g.page.route("**/openapi.json", openapi)
    g.page.route("**/v1/score", score)
    g.page.route("**/v1/outcomes", outcomes)
    g.page.goto(service.url + "/ui/")
    declined, _ = _decline_first(g)
    today = g.page.evaluate("new Date().toISOString().slice(0, 10)")
    assert posted == [(service.keys["scorer"], {"outcomes": [
        {"decision_id": f"dec-{declined}", "outcome": "declined", "date": today}]})]
    card = g.page.locator("tierwise-card")
    assert declined not in _actions(card)
    # outcome-url sends them elsewhere; top-n asks for fewer actions.
    elsewhere: list[Any] = []
    g.page.route("**/crm/outcomes", lambda route: (
        elsewhere.append(json.loads(route.request.post_data)), route.fulfill(json={})))
    card.evaluate("c => c.setAttribute('outcome-url', '/crm/outcomes')")
    accepted = card.locator("li.action").first.get_attribute("data-action")
    card.locator("li.action button.accept").first.click()
    card.locator(f'li.action[data-action="{accepted}"]').wait_for(state="detached")
    assert elsewhere == [{"outcomes": [
        {"decision_id": f"dec-{accepted}", "outcome": "accepted", "date": today}]}]
    assert len(posted) == 1
    with g.page.expect_response("**/v1/score") as answer:
        card.evaluate("c => c.setAttribute('top-n', '1')")
    assert json.loads(answer.value.request.post_data)["options"]["top_n"] == 1
    expect(card.locator("li.action")).to_have_count(1)


def test_the_card_speaks_chinese(service: Service, open_page: Any) -> None:
    g = open_page("about:blank", key=service.keys["scorer"], locale="zh-CN")
    g.page.add_init_script("document.addEventListener('tierwise-scored', "
                           "(e) => { window.scored = e.detail.customer_id; });")
    g.page.goto(service.url + "/ui/")
    card = _card(g)  # no lang attribute: navigator.language decides
    assert g.page.evaluate("window.scored") == "DEMO-0001"  # the tierwise-scored event
    assert card.locator("h3").first.inner_text() == "流失风险（90天）"
    assert card.locator("button.decline").first.inner_text() == "拒绝"
    g.page.get_by_role("button", name="English").click()
    assert card.locator("button.decline").first.inner_text() == "Decline"
