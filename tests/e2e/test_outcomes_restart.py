"""Outcomes over real HTTP, through a replica restart (plain uvicorn, as operators run it),
on an SQLite file and on PostgreSQL: decision ids made before the restart still verify,
recorded outcomes are still there, a repeated post adds nothing, and bad outcomes get a 422
naming the field. In CI (CI=true) the PostgreSQL case may not skip."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ops.serving import running
from tests.registry import bundles as b
from tests.registry.db import create_pg_database, drop_pg_database

pytestmark = pytest.mark.slow


def _customers(n: int) -> list[dict[str, Any]]:
    import numpy as np
    rng = np.random.default_rng(11)
    return [{"customer_id": f"R{i:04d}", "features": b.example_features(rng)} for i in range(n)]


def _decisions(url: str, headers: dict[str, str]) -> list[tuple[str, str, str]]:
    """(customer, action, decision id) of every recommendation for a few customers."""
    body = {"items": _customers(30)}
    r = httpx.post(f"{url}/v1/score/batch", json=body, headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    out = [(res["customer_id"], rec["action_id"], rec["decision_id"])
           for res in r.json()["results"] for rec in res["recommendations"]]
    assert len(out) >= 10
    return out


def _post(url: str, headers: dict[str, str], items: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(f"{url}/v1/outcomes", json={"outcomes": items}, headers=headers,
                      timeout=60)


def _restart_keeps_outcomes(tmp: Path, headers: dict[str, str], **settings: str) -> None:
    today = dt.datetime.now(dt.UTC).date().isoformat()
    with running(tmp, kind="uvicorn", **settings) as service:
        decisions = _decisions(service.url, headers)
        items = [{"decision_id": d, "outcome": "offered", "date": today}
                 for _c, _a, d in decisions[:5]]
        items.append({"customer_id": "R9999", "action_id": "equity_fund",
                      "outcome": "declined", "date": today})
        r = _post(service.url, headers, items)
        assert r.status_code == 200, r.text
        assert r.json() == {"recorded": 6, "duplicate": 0}
    with running(tmp, kind="uvicorn", **settings) as service:
        r = httpx.get(f"{service.url}/v1/outcomes", params={"limit": 100}, headers=headers)
        assert r.status_code == 200, r.text
        stored = r.json()["outcomes"]
        assert len(stored) == 6
        assert {o["decision_id"] for o in stored} == {d for _c, _a, d in decisions[:5]} | {None}
        # The same post again: nothing new; a decision id made before the restart verifies.
        assert _post(service.url, headers, items).json() == {"recorded": 0, "duplicate": 6}
        customer, action, token = decisions[6]
        r = _post(service.url, headers, [{"decision_id": token, "outcome": "converted",
                                          "date": today}])
        assert r.json() == {"recorded": 1, "duplicate": 0}
        r = httpx.get(f"{service.url}/v1/outcomes", headers=headers,
                      params={"customer_id": customer, "action_id": action})
        assert [(o["outcome"], o["group"], o["alias"]) for o in r.json()["outcomes"]] == [
            ("converted", "treatment", "production")]
        _bad_outcomes_name_the_field(service.url, headers, token, today)
        limit = int(settings.get("TIERWISE_OUTCOMES_MAX_PER_REQUEST", "1000"))
        r = _post(service.url, headers, [items[-1]] * (limit + 1))
        assert r.status_code == 422, r.text
        assert r.json()["error"]["details"][0]["field"] == "outcomes"


def _bad_outcomes_name_the_field(url: str, headers: dict[str, str], token: str,
                                 today: str) -> None:
    tomorrow = (dt.date.fromisoformat(today) + dt.timedelta(days=1)).isoformat()
    cases = [
        ({"decision_id": token[:-3] + "AAA", "outcome": "accepted", "date": today},
         "outcomes[1].decision_id", "unknown decision id"),
        ({"decision_id": token, "outcome": "accepted", "date": tomorrow},
         "outcomes[1].date", "future"),
        ({"customer_id": "R1", "action_id": "platinum_card", "outcome": "offered",
          "date": today}, "outcomes[1].action_id", "unknown action"),
        ({"customer_id": "R1", "action_id": "equity_fund", "outcome": "bought",
          "date": today}, "outcomes[1].outcome", ""),
        ({"customer_id": "R1", "action_id": "equity_fund", "outcome": "offered",
          "date": "2026-02-30"}, "outcomes[1].date", ""),
    ]
    good = {"customer_id": "R2", "action_id": "equity_fund", "outcome": "offered",
            "date": today}
    for item, field, says in cases:
        r = _post(url, headers, [good, item])
        assert r.status_code == 422, r.text
        details = {d["field"]: d["problem"] for d in r.json()["error"]["details"]}
        assert field in details and says in details[field], details
    r = httpx.get(f"{url}/v1/outcomes", params={"customer_id": "R2"}, headers=headers)
    assert r.json()["outcomes"] == []  # every refused post stored nothing


def test_outcomes_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    # With keys on: a scorer key records and reads outcomes; no key is a 401.
    with running(tmp_path, kind="uvicorn", TIERWISE_AUTH_ENABLED="true") as service:
        admin = {"X-API-Key": (tmp_path / "admin.key").read_text().strip()}
        r = httpx.post(f"{service.url}/v1/keys", json={"principal": "crm", "role": "scorer",
                                                       "kind": "service"}, headers=admin)
        assert r.status_code == 201, r.text
        scorer = {"X-API-Key": r.json()["key"]}
        assert httpx.get(f"{service.url}/v1/outcomes").status_code == 401
    _restart_keeps_outcomes(tmp_path, scorer, TIERWISE_AUTH_ENABLED="true",
                            TIERWISE_OUTCOMES_MAX_PER_REQUEST="8")


def test_outcomes_survive_a_restart_on_postgresql(tmp_path: Path) -> None:
    url = create_pg_database("tierwise_outcomes")
    try:
        _restart_keeps_outcomes(tmp_path, {}, TIERWISE_DATABASE_URL=url)
    finally:
        drop_pg_database(url)


def test_the_contact_policy_reads_recorded_outcomes_and_outlives_the_database(
        tmp_path: Path) -> None:
    """TIERWISE_CONTACT_HISTORY_FROM_OUTCOMES: a declined offer recorded by POST /v1/outcomes
    suppresses the action for a request that sends no history; with the database gone,
    scoring goes on without it and says so."""
    url = create_pg_database("tierwise_history")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    try:
        with running(tmp_path, kind="uvicorn", TIERWISE_DATABASE_URL=url,
                     TIERWISE_CONTACT_HISTORY_FROM_OUTCOMES="true") as service:
            customer = next(c for c in _customers(30) if _score(service.url, c)[
                "recommendations"])
            first = _score(service.url, customer)
            assert first["contact_history"] == "recorded"
            top = first["recommendations"][0]["action_id"]
            r = _post(service.url, {}, [{"customer_id": customer["customer_id"],
                                         "action_id": top, "outcome": "declined",
                                         "date": today}])
            assert r.json() == {"recorded": 1, "duplicate": 0}
            again = _score(service.url, customer)
            assert top not in [rec["action_id"] for rec in again["recommendations"]]
            assert {s["action_id"]: s["reason_code"] for s in again["suppressed"]}[top] == \
                "declined_recently"
            # A caller's own history wins (here: none of that decline).
            sent = _score(service.url, {**customer, "context": {"history": [
                {"action_id": top, "outcome": "offered", "date": today}]}})
            assert "contact_history" not in sent
            assert top in [rec["action_id"] for rec in sent["recommendations"]]
            drop_pg_database(url)  # the registry database is gone
            down = _score(service.url, customer)
            assert down["contact_history"] == "unavailable"
            assert top in [rec["action_id"] for rec in down["recommendations"]]
            metrics = httpx.get(f"{service.url}/metrics").text
            assert 'tierwise_contact_history_total{source="unavailable"}' in metrics
            # Outcomes themselves need the database: 503, as the other registry routes.
            for r in (httpx.get(f"{service.url}/v1/outcomes"),
                      _post(service.url, {}, [{"customer_id": "R1", "action_id": top,
                                               "outcome": "offered", "date": today}])):
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "registry_unavailable"
    finally:
        drop_pg_database(url)


def _score(url: str, customer: dict[str, Any]) -> dict[str, Any]:
    body = {**customer, "options": {"include_suppressed": True}}
    r = httpx.post(f"{url}/v1/score", json=body, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]
