"""Publishing, approval, aliases, rollback and the ledger, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.orm import Session, sessionmaker

from app.errors import BundleRejected, Conflict, Forbidden, NotFound, PayloadTooLarge
from app.registry import repository, service
from app.registry.auth_keys import Principal
from app.registry.seed import seed_from_dir
from app.registry.tables import LedgerRow
from tests.registry import bundles as b
from tests.registry.db import snapshot

PUBLISHER = Principal("pub1", "Pat Publisher", "publisher", "p-pat")
APPROVER = Principal("apr1", "Ada Approver", "approver", "p-ada")
ADMIN = Principal("adm1", "Ann Admin", "admin", "p-ann")


def push(session: Session, bundle, actor: Principal = PUBLISHER, **kw):  # type: ignore[no-untyped-def]
    return service.publish(session=session, family=bundle.family, archive=b.archive(bundle),
                           actor=actor, max_bytes=1 << 24, **kw)


def promote(session: Session, actor: Principal = APPROVER, **targets: int) -> list[LedgerRow]:
    return service.move_aliases(session=session, actor=actor, moves=[
        service.AliasMove(f, "production", v) for f, v in targets.items()]).entries


def test_seed_publishes_version_1_and_records_it(seeded: sessionmaker[Session],
                                                 models_dir) -> None:  # type: ignore[no-untyped-def]
    with seeded() as s:
        assert repository.alias_map(s) == {f: {"production": 1} for f in b.default_set()}
        entries = repository.list_ledger(s)
        assert [e.action for e in entries] == ["push"] * 6 + ["alias_move"] * 6
        assert {(e.actor_key, e.actor_principal) for e in entries} == {("system", "system")}
        assert all(e.detail["reason"] == "seed" for e in entries if e.action == "alias_move")
        assert seed_from_dir(session=s, models_dir=models_dir, max_bytes=1 << 24) == {}


def test_push_numbers_versions_and_records_who_and_when(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        row = push(s, b.churn_bundle(1))
        assert (row.family, row.version, row.created_by_key, row.created_by_principal) == \
            ("churn", 2, "pub1", "p-pat")
        assert row.sha256 == b.churn_bundle(1).sha256
        (entry,) = repository.list_ledger(s, action="push", family="churn")[1:]
        assert (entry.actor_key, entry.actor_name, entry.actor_principal, entry.version) == \
            ("pub1", "Pat Publisher", "p-pat", 2)
        assert entry.at is not None and entry.detail["checked_with"]["catalog"] == 1
        with pytest.raises(Conflict) as dup:
            push(s, b.churn_bundle(1))
        assert "version 2" in dup.value.message


def test_incompatible_version_is_refused_up_front(seeded: sessionmaker[Session],
                                                  connection: Connection) -> None:
    before = snapshot(connection)
    with seeded() as s, pytest.raises(BundleRejected) as exc:
        push(s, b.catalog_bundle("bond_fund"))  # names a product model nobody has
    assert any("bond_fund" in d.problem for d in exc.value.details)
    assert snapshot(connection) == before
    with seeded() as s:  # ...but fine together with a products version that has it
        products = push(s, b.products_bundle(0, (*b.PRODUCT_MODELS, "bond_fund")))
        catalog = push(s, b.catalog_bundle("bond_fund"), check_with={"products": 2})
        assert (products.version, catalog.version) == (2, 2)


def test_wrong_family_oversized_and_unknown_family(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        with pytest.raises(BundleRejected):
            service.publish(session=s, family="tier", archive=b.archive(b.churn_bundle(2)),
                            actor=PUBLISHER, max_bytes=1 << 24)
        with pytest.raises(PayloadTooLarge):
            service.publish(session=s, family="churn", archive=b.archive(b.churn_bundle(2)),
                            actor=PUBLISHER, max_bytes=100)
        with pytest.raises(NotFound):
            service.publish(session=s, family="fraud", archive=b"", actor=PUBLISHER,
                            max_bytes=100)


def test_four_eyes_and_approval_before_production(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        push(s, b.churn_bundle(1), actor=ADMIN)
        with pytest.raises(service.NotApproved):
            promote(s, churn=2)
        with pytest.raises(service.FourEyes):
            service.approve(session=s, family="churn", version=2, actor=ADMIN)
        with pytest.raises(Forbidden):
            service.approve(session=s, family="churn", version=2, actor=PUBLISHER)
        service.approve(session=s, family="churn", version=2, actor=APPROVER, note="ok")
        with pytest.raises(Conflict):
            service.approve(session=s, family="churn", version=2, actor=APPROVER)
        with pytest.raises(Forbidden):
            promote(s, actor=PUBLISHER, churn=2)
        with pytest.raises(service.FourEyes):  # approved by Ada, but Ann published it
            promote(s, actor=ADMIN, churn=2)
        (move,) = promote(s, churn=2)
        assert (move.previous_version, move.version, move.actor_key, move.actor_principal) == \
            (1, 2, "apr1", "p-ada")
        assert repository.get_alias(s, "churn", "production").version == 2


def test_staging_and_challenger_need_no_approval(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        push(s, b.churn_bundle(1))
        service.move_aliases(session=s, actor=PUBLISHER, moves=[
            service.AliasMove("churn", "staging", 2), service.AliasMove("churn", "challenger", 2)])
        assert repository.alias_map(s)["churn"] == {"production": 1, "staging": 2,
                                                    "challenger": 2}
        service.move_aliases(session=s, actor=PUBLISHER,
                             moves=[service.AliasMove("churn", "challenger", None)])
        assert "challenger" not in repository.alias_map(s)["churn"]
        entries = len(repository.alias_moves(s, "churn"))
        done = service.move_aliases(session=s, actor=PUBLISHER, moves=[  # clearing an unset one
            service.AliasMove("churn", "challenger", None)])
        assert (done.entries, done.unchanged) == ([], [service.AliasMove("churn", "challenger",
                                                                         None)])
        assert len(repository.alias_moves(s, "churn")) == entries


def test_multi_alias_move_is_atomic(seeded: sessionmaker[Session],
                                    connection: Connection) -> None:
    with seeded() as s:
        push(s, b.products_bundle(0, (*b.PRODUCT_MODELS, "bond_fund")))
        push(s, b.catalog_bundle("bond_fund"), check_with={"products": 2})
        push(s, b.churn_bundle(1))
        for family in ("products", "catalog"):
            service.approve(session=s, family=family, version=2, actor=APPROVER)
        s.commit()
    before = snapshot(connection)
    for bad in ({"catalog": 2},  # does not fit products 1
                {"products": 2, "tier": 9},  # unknown version
                {"products": 2, "catalog": 2, "churn": 2},  # churn 2 was never approved
                {"products": 2, "fraud": 1}):  # unknown family
        with seeded() as s, pytest.raises((BundleRejected, NotFound, Conflict)):
            promote(s, **bad)
        assert snapshot(connection) == before, bad
    with seeded() as s:
        moves = promote(s, products=2, catalog=2)
        assert len({m.detail["batch"] for m in moves}) == 1
        assert repository.alias_map(s)["catalog"]["production"] == 2


def test_rollback_walks_back_the_production_history(seeded: sessionmaker[Session]) -> None:
    with seeded() as s:
        for seed in (1, 2):
            v = push(s, b.churn_bundle(seed)).version
            service.approve(session=s, family="churn", version=v, actor=APPROVER)
            promote(s, churn=v)
        production = lambda: repository.get_alias(s, "churn", "production").version  # noqa: E731
        assert production() == 3
        with pytest.raises(Forbidden):
            service.rollback(session=s, family="churn", actor=PUBLISHER)
        entry = service.rollback(session=s, family="churn", actor=APPROVER, note="drift")
        assert (entry.previous_version, entry.version, entry.detail["reason"]) == (3, 2, "rollback")
        service.rollback(session=s, family="churn", actor=ADMIN)
        assert production() == 1
        with pytest.raises(Conflict):
            service.rollback(session=s, family="churn", actor=APPROVER)
        assert [m.version for m in repository.alias_moves(s, "churn", "production")] == \
            [1, 2, 3, 2, 1]


def test_ledger_and_versions_refuse_update_and_delete(seeded: sessionmaker[Session],
                                                      connection: Connection) -> None:
    for sql in ("UPDATE ledger SET actor_name = 'someone else'", "DELETE FROM ledger",
                "UPDATE model_versions SET created_by_name = 'x'", "DELETE FROM model_versions",
                "UPDATE artifacts SET sha256 = 'x'"):
        savepoint = connection.begin_nested()
        with pytest.raises(Exception, match="tierwise: "):
            connection.execute(text(sql))
        savepoint.rollback()


def test_a_move_to_the_current_version_is_a_no_op(seeded: sessionmaker[Session],
                                                  connection: Connection) -> None:
    with seeded() as s:
        push(s, b.churn_bundle(1))
        service.approve(session=s, family="churn", version=2, actor=APPROVER)
        s.commit()
    before = snapshot(connection)
    with seeded() as s:  # production 1 was seeded, never approved: a no-op needs no approval
        done = service.move_aliases(session=s, actor=APPROVER, moves=[
            service.AliasMove("churn", "production", 1),
            service.AliasMove("tier", "production", 1)])
        assert done.entries == [] and [m.family for m in done.unchanged] == ["churn", "tier"]
        s.commit()
    assert snapshot(connection) == before  # nothing written: no ledger row, no alias update
    with seeded() as s:  # in a batch, only the real move is written and recorded
        done = service.move_aliases(session=s, actor=APPROVER, moves=[
            service.AliasMove("churn", "production", 2),
            service.AliasMove("tier", "production", 1)])
        assert [(e.family, e.previous_version, e.version) for e in done.entries] == \
            [("churn", 1, 2)]
        assert done.unchanged == [service.AliasMove("tier", "production", 1)]
        assert [m.version for m in repository.alias_moves(s, "tier")] == [1]


def test_expected_version_makes_a_move_compare_and_set(seeded: sessionmaker[Session],
                                                       connection: Connection) -> None:
    with seeded() as s:
        push(s, b.churn_bundle(1))
        s.commit()
    before = snapshot(connection)
    with seeded() as s, pytest.raises(service.AliasMoved) as exc:
        service.move_aliases(session=s, actor=PUBLISHER, moves=[
            service.AliasMove("churn", "staging", 2, expected_version=1)])
    assert exc.value.status == 409 and exc.value.details[0].field == "moves[0].expected_version"
    assert snapshot(connection) == before
    with seeded() as s:
        (entry,) = service.move_aliases(session=s, actor=APPROVER, moves=[
            service.AliasMove("churn", "challenger", 2),
            service.AliasMove("tier", "production", 1, expected_version=1)]).entries
        assert (entry.alias, entry.previous_version, entry.version) == ("challenger", None, 2)
