"""The feature contract as a registry family: seeding, pushes checked against the contract a
model names, breaking contract changes refused at promote unless allowed (SQLite and
PostgreSQL)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from app.bundles.io import write_dir
from app.errors import BreakingContract, BundleRejected
from app.features.family import ContractFeature, FeatureContract
from app.registry import repository, service, store
from app.registry.auth_keys import SYSTEM, Principal
from app.registry.seed import seed_from_dir
from app.scoring.loader import load_family
from app.training.default_contract import contract_bundle
from tests.registry import bundles as b
from tests.registry.db import snapshot

PUBLISHER = Principal("pub1", "Pat Publisher", "publisher", "p-pat")
APPROVER = Principal("apr1", "Ada Approver", "approver", "p-ada")


def push(session: Session, bundle, **kw):  # type: ignore[no-untyped-def]
    return service.publish(session=session, family=bundle.family, archive=b.archive(bundle),
                           actor=PUBLISHER, max_bytes=1 << 24, **kw)


def approve(session: Session, family: str, version: int) -> None:
    service.approve(session=session, family=family, version=version, actor=APPROVER)


def promote(session: Session, *, allow_breaking: bool = False, **targets: int):  # type: ignore[no-untyped-def]
    return service.move_aliases(session=session, actor=APPROVER, moves=[
        service.AliasMove(f, "production", v, allow_breaking=allow_breaking)
        for f, v in targets.items()]).entries


def _production(session: Session) -> dict[str, int]:
    return {f: a["production"] for f, a in repository.alias_map(session).items()}


def narrowed() -> ContractFeature:
    """tenure_months with its range cut to 0..600 months (breaking)."""
    spec = next(f for f in b.FEATURES if f.name == "tenure_months")
    return ContractFeature(**{**spec.model_dump(), "maximum": 600})


def test_a_registry_seeded_before_gets_the_contract(sessions: sessionmaker[Session],
                                                    tmp_path: Path) -> None:
    old = {f: bundle for f, bundle in b.default_set().items() if f != "features"}
    with sessions() as s:  # what the seed did before contracts were a family
        versions = {f: service.publish(session=s, family=f, archive=b.archive(bundle),
                                       actor=SYSTEM, max_bytes=1 << 24).version
                    for f, bundle in old.items()}
        service.move_aliases(session=s, actor=SYSTEM, reason="seed", moves=[
            service.AliasMove(f, "production", v) for f, v in versions.items()])
        s.commit()
    models_dir = b.write_models_dir(tmp_path / "models")
    with sessions() as s:
        assert seed_from_dir(session=s, models_dir=models_dir, max_bytes=1 << 24) == \
            {"features": 1}
        s.commit()
    with sessions() as s:
        assert _production(s)["features"] == 1
        (move,) = repository.alias_moves(s, "features", "production")
        assert move.detail["reason"] == "seed" and move.actor_key == "system"
        assert seed_from_dir(session=s, models_dir=models_dir, max_bytes=1 << 24) == {}
        assert repository.latest_version_number(s, "features") == 1


@pytest.mark.parametrize("models_features", ["lacking", "absent"])
def test_production_models_that_do_not_fit_get_the_contract_they_read(
        sessions: sessionmaker[Session], tmp_path: Path, models_features: str) -> None:
    with sessions() as s:
        versions = {f: service.publish(session=s, family=f, archive=b.archive(bundle),
                                       actor=SYSTEM, max_bytes=1 << 24).version
                    for f, bundle in b.default_set().items() if f != "features"}
        service.move_aliases(session=s, actor=SYSTEM, reason="seed", moves=[
            service.AliasMove(f, "production", v) for f, v in versions.items()])
        s.commit()
    models_dir = b.write_models_dir(tmp_path / "models")
    if models_features == "lacking":  # a contract without a feature the models read
        lacking = b.small_contract(name="lacking").model_copy(
            update={"features": tuple(f for f in b.small_contract().features
                                      if f.name != "tenure_months")})
        write_dir(contract_bundle(lacking), models_dir / "features")
    else:
        shutil.rmtree(models_dir / "features")
    with sessions() as s:
        assert seed_from_dir(session=s, models_dir=models_dir, max_bytes=1 << 24) == \
            {"features": 1}
        contract = load_family(store.load_bundles(s, {"features": 1})["features"])
        assert isinstance(contract, FeatureContract)
        assert [f.name for f in contract.features] == [f.name for f in b.FEATURES]
        assert contract.roles.aum == "aum_total" and contract.roles.days_to_next_maturity is None
        assert _production(s)["features"] == 1


def test_a_model_is_checked_with_the_contract_it_names(seeded: sessionmaker[Session],
                                                       connection: Connection) -> None:
    v2 = b.features_bundle(b.APP_RATING, name="v2")
    churn = b.with_contract(b.rating_churn_bundle(), v2)
    before = snapshot(connection)
    with seeded() as s:
        with pytest.raises(BundleRejected) as err:  # the contract is not pushed yet
            push(s, churn)
        assert "push the contract first" in err.value.message
        assert [d.field for d in err.value.details] == ["manifest.contract.sha256"]
        with pytest.raises(BundleRejected) as err:  # no reference: production's contract
            push(s, b.rating_churn_bundle())
        assert [d.field for d in err.value.details] == ["churn.features.app_rating"]
        assert "promote a contract" in err.value.details[0].problem
    assert snapshot(connection) == before
    with seeded() as s:
        assert push(s, v2).version == 2  # additive: fits the production models
        row = push(s, churn)
        assert row.version == 2
        (entry,) = repository.list_ledger(s, action="push", family="churn")[1:]
        assert entry.detail["checked_with"]["features"] == 2
        # check_with names the contract explicitly: that one counts
        other = b.with_contract(b.rating_churn_bundle(8), v2)
        with pytest.raises(BundleRejected, match="do not fit"):
            push(s, other, check_with={"features": 1})


def test_a_model_needing_a_feature_the_live_contract_lacks_is_refused_at_promote(
        seeded: sessionmaker[Session], connection: Connection) -> None:
    v2 = b.features_bundle(b.APP_RATING, name="v2")
    with seeded() as s:
        push(s, v2)
        push(s, b.with_contract(b.rating_churn_bundle(), v2))
        approve(s, "features", 2)
        approve(s, "churn", 2)
        s.commit()
    before = snapshot(connection)
    with seeded() as s:
        with pytest.raises(BundleRejected) as err:
            promote(s, churn=2)
        (problem,) = err.value.details
        assert problem.field == "churn.features.app_rating"
        assert "does not declare it" in problem.problem and "promote a contract" in problem.problem
    assert snapshot(connection) == before
    with seeded() as s:
        entries = promote(s, features=2, churn=2)  # together, in one call
        assert [(e.family, e.version) for e in entries] == [("features", 2), ("churn", 2)]
        assert entries[0].detail["contract_changes"] == {
            "breaking": [], "additive": ["app_rating: new optional feature"]}
        assert entries[0].detail["allow_breaking"] is False
        s.commit()
    # back to a contract without the feature: the model no longer fits
    with seeded() as s, pytest.raises(BundleRejected, match="do not fit"):
        service.rollback(session=s, family="features", actor=APPROVER)


def test_a_contract_is_pushed_on_its_own_and_must_fit_the_models_at_promote(
        seeded: sessionmaker[Session], connection: Connection) -> None:
    lacking = b.small_contract(name="lacking").model_copy(update={"features": tuple(
        f for f in b.small_contract().features if f.name != "tenure_months")})
    with seeded() as s:  # models trained against it may follow it: not refused at push
        row = push(s, contract_bundle(lacking))
        (entry,) = repository.list_ledger(s, action="push", family="features")[1:]
        assert entry.detail["checked_with"] == {}
        approve(s, "features", row.version)
        s.commit()
    before = snapshot(connection)
    with seeded() as s, pytest.raises(BundleRejected) as err:
        promote(s, allow_breaking=True, features=row.version)
    assert {d.field for d in err.value.details} == \
        {f"{f}.features.tenure_months" for f in ("tier", "churn", "products")}
    assert snapshot(connection) == before


@pytest.mark.parametrize("change", ["narrowed", "removed"])
def test_a_breaking_contract_needs_allow_breaking(seeded: sessionmaker[Session],
                                                  connection: Connection, change: str) -> None:
    with seeded() as s:
        if change == "removed":  # v2 adds an optional feature, v3 removes it again
            push(s, b.features_bundle(b.APP_RATING, name="v2"))
            approve(s, "features", 2)
            promote(s, features=2)
            new = contract_bundle(b.small_contract(name="v3"), label="without app_rating")
        else:
            new = contract_bundle(b.small_contract(name="v3").model_copy(
                update={"features": tuple(
                    narrowed() if f.name == "tenure_months" else f
                    for f in b.small_contract().features)}), label="narrowed")
        version = push(s, new).version
        approve(s, "features", version)
        s.commit()
    before = snapshot(connection)
    with seeded() as s:
        with pytest.raises(BreakingContract) as err:
            promote(s, features=version)
        assert err.value.status == 409 and err.value.code == "breaking_contract"
        field = "app_rating" if change == "removed" else "tenure_months"
        assert [d.field for d in err.value.details] == [f"moves[0].features.{field}"]
        assert ("removed" if change == "removed" else "range narrowed") in \
            err.value.details[0].problem
    assert snapshot(connection) == before
    with seeded() as s:
        (entry,) = promote(s, allow_breaking=True, features=version)
        assert entry.detail["allow_breaking"] is True
        assert len(entry.detail["contract_changes"]["breaking"]) == 1
        assert _production(s)["features"] == version
        s.commit()
    with seeded() as s:  # a rollback to the contract live before is never refused as breaking
        service.rollback(session=s, family="features", actor=APPROVER)
        assert _production(s)["features"] == version - 1
