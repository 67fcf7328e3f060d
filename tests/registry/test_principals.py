"""Principals own keys; four eyes compares principals, not keys (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Conflict, Forbidden, InvalidRequest
from app.registry import repository, service
from app.registry.auth_keys import (
    SYSTEM,
    Principal,
    acting_principal,
    check_key,
    create_key,
    revoke_key,
)
from tests.registry import bundles as b
from tests.registry.test_service import promote, push


def key_for(session: Session, principal: str, role: str, **kw: object) -> Principal:
    """A real key of `principal`, as authentication resolves it."""
    _row, plain = create_key(session=session, principal=principal, role=role, **kw)  # type: ignore[arg-type]
    found = check_key(session, plain)
    assert found is not None
    return found


def test_two_keys_of_one_person_cannot_publish_and_approve_or_promote(
        seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        ada_pub = key_for(s, "ada", "publisher")
        ada_apr = key_for(s, "ada", "approver")
        ada_admin = key_for(s, "ada", "admin")
        assert ada_pub.principal_id == ada_apr.principal_id == ada_admin.principal_id
        assert len({ada_pub.key_id, ada_apr.key_id, ada_admin.key_id}) == 3
        push(s, b.churn_bundle(1), actor=ada_pub)
        for key in (ada_apr, ada_admin):
            with pytest.raises(service.FourEyes) as exc:
                service.approve(session=s, family="churn", version=2, actor=key)
            assert "ada" in exc.value.details[0].problem
        bob = key_for(s, "bob", "approver")
        service.approve(session=s, family="churn", version=2, actor=bob)
        for key in (ada_apr, ada_admin):  # approved by Bob, but Ada published it
            with pytest.raises(service.FourEyes):
                promote(s, actor=key, churn=2)
        assert repository.get_alias(s, "churn", "production").version == 1
        (move,) = promote(s, actor=bob, churn=2)
        assert (move.actor_principal, move.actor_key) == (bob.principal_id, bob.key_id)


def test_keys_of_two_people_can_and_the_records_name_both(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        pat = key_for(s, "pat", "publisher", kind="service")
        ada = key_for(s, "ada", "approver")
        version = push(s, b.churn_bundle(1), actor=pat)
        assert (version.created_by_principal, version.created_by_key,
                version.created_by_name) == (pat.principal_id, pat.key_id, "pat")
        approval = service.approve(session=s, family="churn", version=2, actor=ada)
        assert (approval.approver_principal, approval.approver_key) == (ada.principal_id,
                                                                       ada.key_id)
        promote(s, actor=ada, churn=2)
        entries = [(e.action, e.actor_name, e.actor_principal, e.actor_key)
                   for e in repository.list_ledger(s, family="churn") if e.actor_key != "system"]
        assert entries == [("push", "pat", pat.principal_id, pat.key_id),
                           ("approve", "ada", ada.principal_id, ada.key_id),
                           ("alias_move", "ada", ada.principal_id, ada.key_id)]


def test_one_approval_per_person(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        push(s, b.churn_bundle(1))
        first, second = key_for(s, "bob", "approver"), key_for(s, "bob", "admin")
        service.approve(session=s, family="churn", version=2, actor=first)
        with pytest.raises(Conflict, match="already approved by bob"):
            service.approve(session=s, family="churn", version=2, actor=second)
        assert len(repository.list_approvals(s, "churn", 2)) == 1


def test_the_former_name_option_means_the_person(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        one, _ = create_key(session=s, name="ci bot", role="publisher")
        two, _ = create_key(session=s, principal="ci bot", name="ci bot", role="approver")
        assert one.principal_id == two.principal_id and one.name == "ci bot"
        with pytest.raises(InvalidRequest):
            create_key(session=s, principal="ci bot", name="someone else", role="scorer")


def test_principal_rules_and_the_creation_record(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        root = key_for(s, "root", "admin")
        for bad in ({"principal": "system"}, {"principal": "anonymous"}, {"principal": "  "},
                    {"principal": "x" * 201}, {"principal": "eve", "kind": "robot"},
                    {"principal": "eve", "role": "emperor"}):
            with pytest.raises(InvalidRequest):
                create_key(session=s, **{"role": "scorer", **bad})  # type: ignore[arg-type]
        create_key(session=s, principal="svc", kind="service", role="scorer", actor=root)
        with pytest.raises(Conflict, match="is a service"):
            create_key(session=s, principal="svc", kind="person", role="scorer")
        row, _ = create_key(session=s, principal="svc", role="publisher", actor=root)
        assert row.created_by == "root"
        created = repository.list_ledger(s, action="key_create")
        assert [(e.actor_principal, e.detail["principal_created"]) for e in created[-2:]] == \
            [(root.principal_id, True), (root.principal_id, False)]
        assert created[-1].detail["principal"] == row.principal_id
        assert repository.get_principal(s, row.principal_id).created_by == "root"
        revoke_key(session=s, key_id=row.id, actor=root)
        (revoked,) = repository.list_ledger(s, action="key_revoke")
        assert (revoked.actor_principal, revoked.detail["principal"]) == (root.principal_id,
                                                                          row.principal_id)


def test_only_a_principal_with_an_active_admin_key_may_act(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        key_for(s, "pat", "publisher")
        root_row, _ = create_key(session=s, principal="root", role="admin", actor=SYSTEM)
        assert acting_principal(s, "root").principal_id == root_row.principal_id
        for name in ("pat", "nobody"):
            with pytest.raises(Forbidden):
                acting_principal(s, name)
        revoke_key(session=s, key_id=root_row.id)
        with pytest.raises(Forbidden):
            acting_principal(s, "root")


def test_a_rollback_may_return_to_a_version_of_the_one_rolling_back(
        seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        ada_pub, ada_apr = key_for(s, "ada", "publisher"), key_for(s, "ada", "approver")
        bob = key_for(s, "bob", "approver")
        for seed in (1, 2):  # Ada publishes 2 and 3, Bob approves and promotes both
            version = push(s, b.churn_bundle(seed), actor=ada_pub).version
            service.approve(session=s, family="churn", version=version, actor=bob)
            promote(s, actor=bob, churn=version)
        entry = service.rollback(session=s, family="churn", actor=ada_apr)
        assert (entry.previous_version, entry.version, entry.actor_principal) == \
            (3, 2, ada_apr.principal_id)
