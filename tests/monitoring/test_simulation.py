"""Done means (issue 15): a simulation drives outcomes whose true acceptance differs by
version and action, over the service's own routes (scores with decision ids, POST
/v1/outcomes, GET /v1/monitoring/actions, `tierwise report`). The report names the better
products version with an interval that excludes the worse one, and measures the uplift
against the control group with an interval that holds the true uplift."""

from __future__ import annotations

import json
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from typer.testing import CliRunner

from app.bundles.io import build_bundle, read_dir, to_archive
from app.cli import cli
from app.config import Settings
from app.main import create_app
from app.monitoring.stats import wilson
from app.registry import service
from app.registry.auth_keys import SYSTEM
from app.training.bundling import config_bundle
from app.training.cli_io import write_bundle
from tests.conftest import MODELS_DIR, RunningServer
from tests.customers import book_customers

CUSTOMERS = 3000
CONTROL_SHARE = 0.3
# True chance that an offered product is accepted, by products version: the challenger (v2)
# is better for every action. Accepted offers convert with CONVERT; customers held out (the
# control group) buy the product on their own with BASELINE.
ACCEPT = {1: 0.10, 2: 0.22}
CONVERT = 0.8
BASELINE = 0.03


def _models(tmp: Path) -> Path:
    """The default bundles, the policy with a control group."""
    models = tmp / "models"
    shutil.copytree(MODELS_DIR, models)
    policy = json.loads((models / "policy" / "policy.json").read_text())
    policy["control_group"] = {"share": CONTROL_SHARE, "salt": "simulation"}
    shutil.rmtree(models / "policy")
    write_bundle(config_bundle(family="policy", document=policy, label="with control group",
                               created_at="2026-11-23T00:00:00+00:00"), models / "policy")
    return models


def _products_v2() -> bytes:
    """The same product models as a second version (another label, so another sha256)."""
    bundle = read_dir(MODELS_DIR / "products")
    fields = json.loads(bundle.manifest_bytes)
    fields.pop("files")
    fields["label"] = "challenger products (simulation)"
    return to_archive(build_bundle(fields, dict(bundle.files)))


def _ready(url: str) -> None:
    deadline = time.monotonic() + 60
    while httpx.get(f"{url}/readyz").status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_report_names_the_better_version_and_measures_uplift(
        tmp_path: Path, serve: Callable[[Any], RunningServer]) -> None:
    app = create_app(Settings(
        database_url=f"sqlite:///{tmp_path / 'registry.sqlite3'}", models_dir=_models(tmp_path),
        auth_enabled=False, compile_models=False, monitoring_flush_seconds=3600,
        bootstrap_admin_key_file=tmp_path / "admin.key", outcomes_max_per_request=5000))
    server = serve(app)
    _ready(server.url)
    rng = random.Random(15)
    customers = book_customers(CUSTOMERS, seed=23)
    today = time.strftime("%Y-%m-%d", time.gmtime())
    with httpx.Client(base_url=server.url, timeout=120) as http:
        pushed = http.post("/v1/models/products/versions", content=_products_v2(),
                           headers={"Content-Type": "application/gzip"})
        assert pushed.status_code == 201, pushed.text
        assert pushed.json()["version"] == 2
        # Approved by another principal than the (anonymous) publisher: four eyes.
        with app.services.runtime.sessionmaker() as session:
            service.approve(session=session, family="products", version=2, actor=SYSTEM)
            session.commit()
        decisions = []  # (decision id, products version, group)
        churn = []  # (a decision id of the customer, churn probability)
        for version, half in ((1, customers[::2]), (2, customers[1::2])):
            options = {"pin": {"products": "2"}} if version == 2 else {}
            body = http.post("/v1/score/batch", json={"items": half, "options": options})
            assert body.status_code == 200, body.text
            for result in body.json()["results"]:
                ids = [r["decision_id"] for r in result["recommendations"]
                       + result.get("held_out", [])]
                if ids:
                    churn.append((ids[0], result["churn"]["probability"]))
                for rec in result["recommendations"]:
                    if rec["kind"] == "product":
                        decisions.append((rec["decision_id"], rec["action_id"], version,
                                          "treatment"))
                for rec in result.get("held_out", []):
                    decisions.append((rec["decision_id"], rec["action_id"], version,
                                      "control"))
        groups = Counter(g for *_, g in decisions)
        assert groups["control"] > 300 and groups["treatment"] > 1000

        outcomes = []
        for decision_id, _, version, group in decisions:
            outcomes.append({"decision_id": decision_id, "outcome": "offered", "date": today})
            if group == "treatment":
                if rng.random() < ACCEPT[version]:
                    outcomes.append({"decision_id": decision_id, "outcome": "accepted",
                                     "date": today})
                    if rng.random() < CONVERT:
                        outcomes.append({"decision_id": decision_id, "outcome": "converted",
                                         "date": today})
                else:
                    outcomes.append({"decision_id": decision_id, "outcome": "declined",
                                     "date": today})
            elif rng.random() < BASELINE:
                outcomes.append({"decision_id": decision_id, "outcome": "converted",
                                 "date": today})
        # Every customer's first decision is recorded as offered (a repeat of a product
        # decision's is a duplicate, and harmless); customers leave as often as the (well
        # calibrated) churn model says.
        outcomes += [{"decision_id": d, "outcome": "offered", "date": today} for d, _ in churn]
        outcomes += [{"decision_id": d, "outcome": "churned", "date": today}
                     for d, p in churn if rng.random() < p]
        for start in range(0, len(outcomes), 5000):
            posted = http.post("/v1/outcomes", json={"outcomes": outcomes[start:start + 5000]})
            assert posted.status_code == 200, posted.text

        offered = {a for _, a, _, _ in decisions}  # product actions (retention: not drawn)
        actions = [a for a in http.get("/v1/monitoring/actions").json()["actions"]
                   if a["action_id"] in offered]
        # Every action offered often enough: v2 named better, its interval above v1's rate.
        busiest = max(actions, key=lambda a: a["treatment"]["n"])
        for action in [busiest, *actions]:
            v1, v2 = action["by_version"].get("products v1"), action["by_version"].get(
                "products v2")
            if v1 is None or v2 is None or min(v1["n"], v2["n"]) < 400:
                continue
            compared = action["versions_compared"]
            assert compared["better"] == "products v2", action["action_id"]
            assert v2["interval_95"][0] > v1["rate"]  # excludes the worse one
            assert v1["interval_95"][1] < v2["rate"]
            assert compared["interval_95"][0] > 0
        assert busiest["versions_compared"]["better"] == "products v2"
        # The intervals hold the true acceptance: each 95% interval misses it 1 time in 20,
        # so at least 80% of them must hold it (19 in 20 expected), and every 99.9% one.
        cells = [(ACCEPT[int(v.rsplit("v", 1)[1])], r) for a in actions
                 for v, r in a["by_version"].items() if r["n"] >= 100]
        held = [lo <= truth <= hi for truth, r in cells for lo, hi in [r["interval_95"]]]
        assert len(cells) >= 12 and sum(held) >= 0.8 * len(cells)
        for truth, r in cells:
            wide = wilson(r["accepted"], r["n"], z=3.2905)
            assert wide is not None and wide[0] <= truth <= wide[1]
        assert set(busiest["by_alias"]) == {"production", "pinned"}

        # Uplift of conversion against the control group, for the busiest action: the true
        # value is the treated mix of versions' conversion minus the baseline.
        uplift = busiest["uplift"]
        treated = [v for d, a, v, g in decisions
                   if a == busiest["action_id"] and g == "treatment"]
        true_rate = sum(ACCEPT[v] * CONVERT for v in treated) / len(treated)
        low, high = uplift["interval_95"]
        assert low <= true_rate - BASELINE <= high
        assert low > 0  # the offers do move customers
        assert uplift["control"]["n"] > 100

        calibrated = http.get("/v1/monitoring/calibration").json()["calibration"]
        table = calibrated["churn"]["churn v1"]
        assert table["n"] == len(churn) and table["ece"] < 0.02
        assert calibrated["products"]["products v2"]["n"] > 1000
        alerts = http.get("/v1/monitoring/alerts").json()["alerts"]
        assert [a for a in alerts if a["kind"] == "calibration"] == []

        out = tmp_path / "report.html"
        result = CliRunner().invoke(cli, ["report", "--out", str(out), "--url", server.url])
        assert result.exit_code == 0, result.output
        page = out.read_text()
        assert "products v2 accepts more than products v1" in page
        assert "Uplift against the control group" in page
