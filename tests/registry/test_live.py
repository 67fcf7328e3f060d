"""Load-then-swap in one replica: swaps, refused versions, pins and the challenger."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session, sessionmaker

from app.bundles.io import sha256_hex
from app.errors import NotFound, NotReady
from app.registry import repository, service
from app.registry.live import LiveScoring, customer_share
from app.registry.service import NotApproved
from tests.registry import bundles as b
from tests.registry.db import bypass_write_once
from tests.registry.test_service import APPROVER, PUBLISHER, promote, push


def _ship(sessions: sessionmaker[Session], bundle, alias: str = "production") -> int:  # type: ignore[no-untyped-def]
    with sessions() as s:
        v = push(s, bundle).version
        if alias == "production":
            service.approve(session=s, family=bundle.family, version=v, actor=APPROVER)
            promote(s, **{bundle.family: v})
        else:
            service.move_aliases(session=s, actor=PUBLISHER,
                                 moves=[service.AliasMove(bundle.family, alias, v)])
        s.commit()
    return v


def _approve(sessions: sessionmaker[Session], family: str, version: int) -> None:
    with sessions() as s:
        service.approve(session=s, family=family, version=version, actor=APPROVER)
        s.commit()


@pytest.fixture
def live(seeded: sessionmaker[Session]) -> LiveScoring:
    return LiveScoring(sessions=seeded)


def test_swap_on_alias_move_keeps_old_context_for_inflight(live: LiveScoring,
                                                           seeded: sessionmaker[Session]) -> None:
    events: list[tuple[str, str, int]] = []
    live.add_swap_listener(lambda *e: events.append(e))
    seen_by_listener: list[int] = []  # listeners run after the swap, on the new context
    live.add_swap_listener(lambda *e: seen_by_listener.append(
        live.current().versions["churn"].version))
    with pytest.raises(NotReady):
        live.current()
    assert live.refresh() and live.ready
    assert sorted(events) == sorted(("load", f, 1) for f in b.default_set())
    in_flight = live.current()
    _ship(seeded, b.churn_bundle(1))
    assert live.refresh()
    assert live.current().versions["churn"].version == 2
    assert in_flight.versions["churn"].version == 1  # the old context is untouched
    assert events[-1] == ("swap", "churn", 2) and seen_by_listener[-1] == 2
    assert not live.refresh()  # nothing moved: no rebuild
    status = live.status()
    assert status["in_sync"] and status["swaps"] == 2 and status["last_failure"] is None
    assert status["versions"]["churn"]["sha256"] == b.churn_bundle(1).sha256


def test_version_failing_verification_is_not_swapped_in(live: LiveScoring, connection: Connection,
                                                        seeded: sessionmaker[Session]) -> None:
    live.refresh()
    events: list[tuple[str, str, int]] = []
    live.add_swap_listener(lambda *e: events.append(e))
    with seeded() as s:
        row = push(s, b.churn_bundle(1))
        s.commit()
    # Tamper at rest, recorded hash included, and move the alias behind the API's back.
    bypass_write_once(connection, "artifacts")
    content = bytearray(b.archive(b.churn_bundle(1)))
    content[len(content) // 2] ^= 0xFF
    connection.execute(text("UPDATE artifacts SET content = :c, sha256 = :h WHERE version_id = :v"),
                       {"c": bytes(content), "h": sha256_hex(bytes(content)), "v": row.id})
    connection.execute(text("UPDATE aliases SET version = 2 WHERE family = 'churn' "
                            "AND alias = 'production'"))
    assert not live.refresh()
    assert live.current().versions["churn"].version == 1  # still serving the old one
    status = live.status()
    assert not status["in_sync"] and status["registry_production"]["churn"] == 2
    failure = status["last_failure"]
    assert failure["not_swapped_in"] == {"churn": 2}
    assert failure["error"]["code"] == "bundle_rejected"
    assert events == [("swap_failed", "churn", 2)]
    live.refresh()  # an immutable version that failed is not rebuilt on every poll
    assert live.status()["last_failure"]["at"] == failure["at"]
    connection.execute(text("UPDATE aliases SET version = 1 WHERE family = 'churn' "
                            "AND alias = 'production'"))
    live.refresh()
    assert live.status()["in_sync"]


def test_pins_by_number_and_alias(live: LiveScoring, seeded: sessionmaker[Session]) -> None:
    live.refresh()
    production = live.current()
    _ship(seeded, b.churn_bundle(1), alias="staging")
    for pin in ("2", "staging"):  # only approved versions decide, by number or by alias
        with pytest.raises(NotApproved) as refused:
            live.for_request(customer_id="c1", pins={"churn": pin})
        assert refused.value.status == 409 and refused.value.code == "not_approved"
        assert [d.field for d in refused.value.details] == ["options.pin.churn"]
    assert live.status()["pinned_contexts"] == 0
    _approve(seeded, "churn", 2)
    pinned, shadow = live.for_request(customer_id="c1", pins={"churn": "2"})
    assert shadow is None and pinned.versions["churn"].version == 2
    assert pinned.versions["tier"].version == 1
    assert live.for_request(customer_id="c1", pins={"churn": "staging"})[0] is pinned
    assert live.for_request(customer_id="c1", pins={"churn": "production"})[0] is production
    assert live.status()["pinned_contexts"] == 1
    for pins in ({"churn": "9"}, {"churn": "challenger"}, {"churn": "latest"}, {"fraud": "1"}):
        with pytest.raises(NotFound) as exc:
            live.for_request(customer_id="c1", pins=pins)
        assert exc.value.details[0].field == f"options.pin.{next(iter(pins))}"


def test_challenger_split_and_shadow(live: LiveScoring, seeded: sessionmaker[Session]) -> None:
    events: list[tuple[str, str, int]] = []
    live.add_swap_listener(lambda *e: events.append(e))
    _ship(seeded, b.churn_bundle(1), alias="challenger")
    live.refresh()
    assert live.for_request(customer_id="c1", pins={})[1] is None  # policy: challenger off
    _ship(seeded, b.policy_bundle("split", 0.3))
    live.refresh()
    live.refresh()
    # churn 2 is not approved: the challenger alias names it, but it does not decide.
    assert live.status()["challenger"]["versions"] is None
    assert all(live.for_request(customer_id=f"c{i}", pins={})[0].versions["churn"].version == 1
               for i in range(50))
    assert events.count(("challenger_unapproved", "churn", 2)) == 1  # counted once
    _approve(seeded, "churn", 2)
    live.refresh()
    assert live.status()["challenger"]["versions"]["churn"] == 2
    ids = [f"customer-{i}" for i in range(400)]
    answered = {i: live.for_request(customer_id=i, pins={})[0].versions["churn"].version
                for i in ids}
    assert all((answered[i] == 2) == (customer_share(i) < 0.3) for i in ids)
    assert 0.2 < sum(v == 2 for v in answered.values()) / len(ids) < 0.4
    _ship(seeded, b.policy_bundle("shadow"))
    live.refresh()
    ctx, shadow = live.for_request(customer_id="c1", pins={})
    assert ctx.versions["churn"].version == 1 and shadow is not None
    assert shadow.versions["churn"].version == 2 and shadow.versions["policy"].version == 3
    with seeded() as s:
        assert repository.alias_map(s)["churn"]["challenger"] == 2
