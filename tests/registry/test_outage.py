"""A database outage seen by one replica: verified keys within the grace, 503 for the rest,
revocations on reconnect, rate-limited log lines, the tierwise_registry_up gauge.

The database is made unreachable by a session factory that raises what SQLAlchemy raises
for a refused connection (OperationalError); everything else is the real registry.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.errors import RegistryUnavailable
from app.registry import service
from app.registry.auth_keys import KeyCache, create_key, revoke_key
from app.registry.live import LiveScoring
from app.registry.outage import RegistryHealth
from tests.registry import bundles as b
from tests.registry.app import registry_app
from tests.registry.test_service import APPROVER, push


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Switch:
    """A session factory whose database can be switched off."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.down = False

    def __call__(self) -> AbstractContextManager[Session]:
        if self.down:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))
        return self.sessions()


def _gauge() -> float | None:
    return REGISTRY.get_sample_value("tierwise_registry_up")


def test_verified_keys_outlive_an_outage_for_the_grace_only(
        seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        row, good = create_key(session=s, principal="ann", role="scorer")
        _other, unseen = create_key(session=s, principal="bob", role="scorer")
        s.commit()
    clock, switch = Clock(), Switch(seeded)
    health = RegistryHealth(clock=clock)
    keys = KeyCache(switch, ttl=5, grace=60, health=health, clock=clock)  # type: ignore[arg-type]
    assert keys.authenticate(good) is not None and health.up and _gauge() == 1
    assert keys.authenticate("tw_nope_bad") is None
    switch.down = True
    clock.now += 30  # past the cache lifetime, inside the grace
    assert keys.authenticate(good) is not None  # tried the database, fell back
    assert not health.up and _gauge() == 0
    assert keys.cached(good)[0]  # from now on without a database attempt
    assert keys.authenticate("tw_nope_bad") is None  # known bad stays bad
    with pytest.raises(RegistryUnavailable) as unknown:  # may be valid: 503, not 401
        keys.authenticate(unseen)
    assert unknown.value.status == 503 and unknown.value.code == "registry_unavailable"
    with seeded() as s:  # revoked while this replica cannot see it
        revoke_key(session=s, key_id=row.id)
        s.commit()
    assert keys.authenticate(good) is not None
    clock.now += 31  # past the grace: no longer trusted
    with pytest.raises(RegistryUnavailable):
        keys.authenticate(good)
    switch.down = False  # reconnect: the first lookup sees the revocation
    assert keys.authenticate(good) is None and health.up and _gauge() == 1
    assert keys.authenticate(unseen) is not None


def test_outage_log_lines_are_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    health = RegistryHealth(log_interval=30, clock=clock)
    error = OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused\nmore"))
    with caplog.at_level(logging.INFO, logger="tierwise.registry"):
        for _ in range(1000):  # a busy replica: many failed calls a second
            health.failed(error, "alias poll")
            clock.now += 0.01
        clock.now += 30
        health.failed(error, "key lookup")
        health.ok()
        health.ok()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3, lines
    assert "unreachable" in lines[0] and "connection refused" in lines[0]
    assert "1000 failed attempts" in lines[1] and "still unreachable" in lines[1]
    assert "reachable again" in lines[2] and "1001 failed attempts" in lines[2]
    assert all("\n" not in line for line in lines)


def test_status_and_registry_routes_during_an_outage(migrated_engine: Engine,
                                                     seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        key = create_key(session=s, principal="ann", role="approver")[1]
        s.commit()
    app = registry_app(engine=migrated_engine, sessions=seeded)
    runtime = app.state.services.runtime
    live: LiveScoring = runtime.live
    assert live.refresh()
    client = TestClient(app)
    headers = {"X-API-Key": key}
    assert client.get("/v1/status", headers=headers).json()["registry"] == "up"
    switch = Switch(seeded)
    switch.down = True
    runtime.sessionmaker = live._sessions = switch  # every database call of this replica
    assert not live.refresh()
    body: dict[str, Any] = client.get("/v1/status", headers=headers).json()
    assert body["registry"] == "degraded" and body["ready"]
    assert "connection refused" in body["registry_error"]
    assert body["last_failure"] is None  # an outage is not a refused version
    for r in (client.get("/v1/models", headers=headers),
              client.post("/v1/models/churn/versions/1/approve", json={}, headers=headers)):
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "registry_unavailable"
        assert set(r.json()["error"]) == {"code", "message", "details"}
    switch.down = False
    assert not live.refresh()  # reachable again, nothing moved
    assert client.get("/v1/status", headers=headers).json()["registry"] == "up"


def test_pins_built_before_an_outage_still_answer(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        version = push(s, b.churn_bundle(3)).version
        service.approve(session=s, family="churn", version=version, actor=APPROVER)
        s.commit()
    switch = Switch(seeded)
    live = LiveScoring(sessions=switch)  # type: ignore[arg-type]
    assert live.refresh()
    built = live.for_request(customer_id="c1", pins={"churn": str(version)})[0]
    switch.down = True
    assert live.for_request(customer_id="c1", pins={"churn": str(version)})[0] is built
    production = live.current()
    assert live.for_request(customer_id="c1", pins={"tier": "1", "churn": "1"})[0] is production
    for pins in ({"churn": "staging"}, {"churn": "production"}, {"tier": "2"}):
        with pytest.raises(RegistryUnavailable) as refused:
            live.for_request(customer_id="c1", pins=pins)
        assert refused.value.details[0].field == "options.pin"
    assert not live.health.up
