"""The registry console in a real browser: an approver approves and promotes a version after
a confirmation, four eyes refuse the publisher's own approval (the registry's answer is
shown), the second replica serves the promoted version, and a rollback puts the previous one
back. The version page draws its plots from the manifest and compares with production."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from app.bundles.io import build_bundle, read_dir, to_archive
from tests.conftest import MODELS_DIR
from tests.ui.conftest import Guarded, Service, expect, save_screenshot

LABEL = "churn 90d, same trees, published from the console test"
# Labels are the publisher's free text: the pages must show it as text, never as markup.
HOSTILE_LABEL = ("stricter band <img src=x onerror=\"document.title=1\">"
                 "<script>alert(1)</script>'\"")



@pytest.fixture(scope="module")
def published(service: Service) -> int:
    """A second churn version, published by dana: the default churn bundle relabelled."""
    bundle = read_dir(MODELS_DIR / "churn")
    fields = json.loads(bundle.manifest_bytes)
    fields["label"] = LABEL
    archive = to_archive(build_bundle({k: v for k, v in fields.items() if k != "files"},
                                      bundle.files))
    r = httpx.post(service.url + "/v1/models/churn/versions", content=archive, timeout=120,
                   headers={"X-API-Key": service.keys["publisher"],
                            "Content-Type": "application/gzip"})
    assert r.status_code == 201, r.text
    version: int = r.json()["version"]
    return version


def _confirm(g: Guarded, button: Any, *, note: str = "", ok: bool = True) -> str:
    button.click()
    dialog = g.page.locator("dialog#confirm")
    dialog.wait_for(state="visible")
    text = dialog.locator("#confirm-text").inner_text()
    if note:
        dialog.locator("#confirm-note").fill(note)
    dialog.locator("#confirm-ok" if ok else "#confirm-cancel").click()
    dialog.wait_for(state="hidden")
    return text


def _row(g: Guarded, family: str, version: int) -> Any:
    return g.page.locator(f'section[data-family="{family}"] tr[data-version="{version}"]')


def _production(service: Service, replica: int) -> int:
    version: int = service.get("/v1/status", replica=replica)["versions"]["churn"]["version"]
    return version


def _wait_for(check: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_approve_and_promote_in_the_console(service: Service, published: int,
                                            open_page: Any) -> None:
    # The publisher, with her approver key, may not approve her own version: four eyes.
    dana = open_page(service.url + "/ui/registry", key=service.keys["dana_approver"])
    _confirm(dana, _row(dana, "churn", published).locator("button.approve"))
    expect(dana.page.locator("#message .error")).to_contain_text(
        "four_eyes: a version may not be approved by the principal who published it")
    assert service.get(f"/v1/models/churn/versions/{published}")["approvals"] == 0

    # Another approver types the key once, approves, then promotes.
    g = open_page(service.url + "/ui/registry")
    g.page.get_by_label("API key (kept for this browser session only)").fill(
        service.keys["approver"])
    g.page.get_by_role("button", name="Use key").click()
    row = _row(g, "churn", published)
    # Cancelling the dialog does nothing.
    _confirm(g, row.locator("button.approve"), ok=False)
    assert service.get(f"/v1/models/churn/versions/{published}")["approvals"] == 0
    text = _confirm(g, row.locator("button.approve"), note="reviewed the calibration")
    assert "published by dana" in text
    expect(g.page.locator("#message .ok")).to_have_text(f"Approved churn v{published}.")
    expect(row.locator("td.num")).to_have_text("1")
    # Approved now, but still not by dana's hand into production.
    _confirm(dana, _row(dana, "churn", published).locator("button.promote"))
    expect(dana.page.locator("#message .error")).to_contain_text(
        "four_eyes: the principal who published a version may not move it to production")
    with g.page.expect_request("**/v1/models/aliases") as move:
        text = _confirm(g, row.locator("button.promote"), note="go live")
    assert f"from v1 to v{published}" in text
    assert json.loads(move.value.post_data) == {"note": "go live", "moves": [
        {"family": "churn", "alias": "production", "version": published,
         "expected_version": 1}]}  # compare-and-set from what the page showed
    expect(g.page.locator("#message .ok")).to_have_text(
        f"churn production is now v{published}.")
    expect(row.locator(".alias.production")).to_have_count(1)

    # The second replica, which the console never called, serves the new version.
    _wait_for(lambda: _production(service, 1) == published, 10, "replica 2 on the new version")
    score = httpx.post(service.urls[1] + "/v1/score", timeout=10,
                       headers={"X-API-Key": service.keys["scorer"]},
                       json=json.loads(g.page.evaluate(
                           "fetch('/ui/sample-customer.json').then(r => r.text())")))
    assert score.json()["models"]["churn"]["version"] == published

    # The ledger lists the approval and the move, newest first, with their notes.
    ledger = g.page.locator("#ledger tbody tr")
    expect(ledger.nth(0).locator("td").nth(2)).to_have_text("alias_move")
    assert ledger.nth(0).locator("td").nth(2).inner_text() == "alias_move"
    assert ledger.nth(0).locator("td").nth(7).inner_text() == "go live"
    assert ledger.nth(1).locator("td").nth(2).inner_text() == "approve"
    assert "marc" in ledger.nth(1).inner_text()
    save_screenshot("ui-registry.png", g.page.screenshot(full_page=True))

    # Rolling back, confirmed, puts version 1 back on both replicas.
    _confirm(g, g.page.locator('section[data-family="churn"] button.rollback'))
    expect(g.page.locator("#message .ok")).to_have_text("churn production rolled back.")
    _wait_for(lambda: _production(service, 1) == 1 and _production(service, 0) == 1, 10,
              "both replicas back on version 1")


def _publish_policy(service: Service, change: dict[str, Any]) -> int:
    """A policy version from the default one with `change` applied, published by dana."""
    bundle = read_dir(MODELS_DIR / "policy")
    fields = json.loads(bundle.manifest_bytes)
    fields["label"] = HOSTILE_LABEL
    document = {**json.loads(bundle.files["policy.json"]), **change}
    archive = to_archive(build_bundle({k: v for k, v in fields.items() if k != "files"},
                                      {"policy.json": json.dumps(document).encode()}))
    r = httpx.post(service.url + "/v1/models/policy/versions", content=archive, timeout=60,
                   headers={"X-API-Key": service.keys["publisher"],
                            "Content-Type": "application/gzip"})
    assert r.status_code == 201, r.text
    version: int = r.json()["version"]
    return version


def test_a_version_page_plots_its_metrics(service: Service, published: int,
                                          open_page: Any) -> None:
    manifest = service.get(f"/v1/models/churn/versions/{published}")
    bins = manifest["metrics"]["reliability"]
    g = open_page(f"{service.url}/ui/registry/churn/{published}", key=service.keys["approver"])
    expect(g.page.locator("h1")).to_have_text(f"churn v{published}")
    plots = g.page.locator("#plots figure")
    calibration = plots.filter(has_text="Calibration curve").locator("svg")
    expect(calibration.locator("circle")).to_have_count(sum(b["rows"] > 0 for b in bins))
    histogram = plots.filter(has_text="Score histogram").locator("svg rect")
    expect(histogram).to_have_count(len(bins))
    tallest = max(range(len(bins)), key=lambda i: bins[i]["rows"])
    heights = [float(h.get_attribute("height")) for h in histogram.all()]
    assert max(range(len(heights)), key=heights.__getitem__) == tallest
    reference = plots.filter(has_text="Reference metrics").locator("svg")
    auc = manifest["metrics"]["calibrated"]["auc"]
    assert f"auc {auc}" in reference.get_attribute("aria-label")
    # Importance: counted from the trees by the registry (manifests do not hold it).
    counts = service.get(f"/v1/models/churn/versions/{published}/importance")
    top = list(counts["models"]["churn"].items())[:15]
    importance = plots.filter(has_text="Feature importance").locator("svg")
    expect(importance.locator("rect")).to_have_count(15)
    assert importance.get_attribute("aria-label") == "splits: " + "; ".join(
        f"{name} {n}" for name, n in top)
    # Production (v1) has the same trees and metrics.
    expect(g.page.locator("#diff")).to_contain_text("No metric differs.")


def test_the_diff_shows_a_policy_change(service: Service, open_page: Any) -> None:
    default = json.loads(read_dir(MODELS_DIR / "policy").files["policy.json"])
    bands = [dict(b) for b in default["churn_bands"]]
    bands[-1]["min_probability"] = 0.3
    version = _publish_policy(service, {"churn_bands": bands})
    g = open_page(f"{service.url}/ui/registry/policy/{version}", key=service.keys["approver"])
    rows = g.page.locator("#diff-config tbody tr")
    expect(rows).to_have_count(1)
    assert rows.first.locator("td").all_inner_texts() == [
        "churn_bands[high].min_probability", "0.35", "0.3"]
    expect(g.page.locator("#diff-files")).to_contain_text("policy.json")
    expect(g.page.locator("#plots")).to_contain_text("records no metrics")
    expect(g.page.locator("#plots")).to_contain_text("a configuration family has no trees")
    expect(g.page.locator("#summary td").first).to_have_text(HOSTILE_LABEL)
    g.page.goto(service.url + "/ui/registry")
    label = g.page.locator(f'section[data-family="policy"] tr[data-version="{version}"] td')
    expect(label.nth(1)).to_have_text(HOSTILE_LABEL)
    assert g.page.locator("img, main script").count() == 0
    assert g.page.title() == "tierwise – registry console"


@pytest.mark.parametrize(("family", "caption", "bars"), [
    ("products", "Reference metrics: AUC per product", 10),
    ("tier", "Reference metrics: F1 per tier", 4),
])
def test_model_families_plot_their_reference_metrics(service: Service, open_page: Any,
                                                     family: str, caption: str,
                                                     bars: int) -> None:
    g = open_page(f"{service.url}/ui/registry/{family}/1", key=service.keys["approver"])
    figure = g.page.locator("#plots figure").filter(has_text=caption)
    expect(figure.locator("svg rect")).to_have_count(bars)
    expect(g.page.locator("#plots figure").filter(has_text="Feature importance")
           .locator("svg rect")).to_have_count(15)
    expect(g.page.locator("#plots")).to_contain_text("Not in this version's manifest")
    expect(g.page.locator("#diff")).to_contain_text("This version is the one in production.")


def test_forget_key_removes_it(service: Service, open_page: Any) -> None:
    g = open_page(service.url + "/ui/registry")
    g.page.get_by_label("API key (kept for this browser session only)").fill(
        service.keys["approver"])
    g.page.get_by_role("button", name="Use key").click()
    g.page.locator('section[data-family="churn"]').wait_for()
    g.page.get_by_role("button", name="Forget key").click()
    expect(g.page.get_by_label("API key (kept for this browser session only)")).to_be_visible()
    assert g.page.evaluate("sessionStorage.getItem('tierwise.apiKey')") is None
    assert g.page.context.cookies() == []
