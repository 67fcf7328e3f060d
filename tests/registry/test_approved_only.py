"""Only approved versions decide: options.pin over HTTP, on SQLite and PostgreSQL.

A version pushed (and even put on staging) by a publisher is not approved: a scorer pinning
it, by number or by alias, gets 409 not_approved naming options.pin.<family>, in a single
score and in a batch, and nothing is scored with it. Once an approver signs it off, the same
pin answers with that version. Catalogue versions are held to the same rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.main import create_app
from app.registry import repository, service
from app.registry.live import LiveScoring
from app.training.bundling import config_bundle
from tests.registry import bundles as b
from tests.registry.test_service import APPROVER, PUBLISHER, push


def _customer(**pins: str) -> dict[str, Any]:
    body: dict[str, Any] = {"customer_id": "c1",
                            "features": b.example_features(np.random.default_rng(1))}
    if pins:
        body["options"] = {"pin": pins}
    return body


@pytest.fixture
def client(seeded: sessionmaker[Session]) -> Any:
    live = LiveScoring(sessions=seeded)
    assert live.refresh()
    with TestClient(create_app(Settings(auth_enabled=False), live=live)) as c:
        yield c


def _relabelled_catalog() -> Any:
    """The test catalogue with every fund relabelled R1 (what a hostile push would do)."""
    actions = [{**a, "risk_level": "R1"} if "risk_level" in a else a
               for a in b.CATALOG["actions"]]
    return config_bundle(family="catalog", document={"actions": actions},
                         label="catalogue relabelled R1")


def _stage(sessions: sessionmaker[Session], bundle: Any) -> int:
    with sessions() as s:
        version = push(s, bundle).version
        service.move_aliases(session=s, actor=PUBLISHER,
                             moves=[service.AliasMove(bundle.family, "staging", version)])
        s.commit()
    return version


def _not_approved(response: Any, family: str) -> None:
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["code"] == "not_approved"
    assert [d["field"] for d in error["details"]] == [f"options.pin.{family}"]


@pytest.mark.parametrize("family", ["churn", "catalog", "policy"])
def test_a_pin_names_only_approved_versions(client: Any, seeded: sessionmaker[Session],
                                            family: str) -> None:
    bundle = {"churn": b.churn_bundle(1), "catalog": _relabelled_catalog(),
              "policy": b.policy_bundle("shadow")}[family]
    version = _stage(seeded, bundle)
    for pin in (str(version), "staging"):
        _not_approved(client.post("/v1/score", json=_customer(**{family: pin})), family)
        batch = {"items": [_customer()], "options": {"pin": {family: pin}}}
        _not_approved(client.post("/v1/score/batch", json=batch), family)
    # Production (seeded, so recorded as production by the ledger) may always be pinned.
    r = client.post("/v1/score", json=_customer(**{family: "1"}))
    assert r.status_code == 200 and r.json()["models"][family]["version"] == 1
    with seeded() as s:
        service.approve(session=s, family=family, version=version, actor=APPROVER)
        s.commit()
    for pin in (str(version), "staging"):
        r = client.post("/v1/score", json=_customer(**{family: pin}))
        assert r.status_code == 200, r.text
        assert r.json()["models"][family]["version"] == version


def test_approved_among_reads_approvals_and_production_moves(
        seeded: sessionmaker[Session]) -> None:
    version = _stage(seeded, b.churn_bundle(1))
    with seeded() as s:
        wanted = {("churn", 1), ("churn", version), ("tier", 1), ("tier", 99)}
        assert repository.approved_among(s, wanted) == {("churn", 1), ("tier", 1)}
        service.approve(session=s, family="churn", version=version, actor=APPROVER)
        assert repository.approved_among(s, wanted) == {("churn", 1), ("churn", version),
                                                        ("tier", 1)}
        assert repository.approved_among(s, set()) == set()
