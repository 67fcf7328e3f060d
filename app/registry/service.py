"""Registry operations: publish, approve, move aliases, roll back. Callers own the transaction.

Every check runs before the first write, and every write goes through one session, so a
refused operation leaves every table as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.bundles.io import Bundle, read_archive
from app.bundles.manifest import FAMILIES, MODEL_FAMILIES
from app.config import Settings
from app.errors import (
    BreakingContract,
    BundleRejected,
    Conflict,
    FieldProblem,
    Forbidden,
    InvalidRequest,
    NotFound,
)
from app.features.family import FeatureContract, contract_changes, describe, model_fits
from app.registry import repository, store
from app.registry.auth_keys import Principal
from app.registry.builder import stored_family
from app.registry.notify import announce_moves
from app.registry.tables import ALIASES, ApprovalRow, LedgerRow, VersionRow, utcnow
from app.scoring.context import ScoringContext, VersionRef, assemble_context
from app.scoring.loader import Family, load_family
from app.scoring.verification import VerifyLimits, verify_archive


class FourEyes(Forbidden):
    code = "four_eyes"


class NotApproved(Conflict):
    code = "not_approved"


class AliasMoved(Conflict):
    code = "alias_moved"


@dataclass(frozen=True, slots=True)
class AliasMove:
    """Point `alias` of `family` at `version` (None clears a staging or challenger alias);
    with `expected_version`, only if the alias is at that version when the move runs.
    `allow_breaking`: a features version may break what callers send today."""

    family: str
    alias: str
    version: int | None
    expected_version: int | None = None
    allow_breaking: bool = False


def require_family(session: Session, family: str, *, lock: bool = False) -> None:
    """Raise NotFound unless `family` is one of the registry's families."""
    if repository.get_family(session, family, lock=lock) is None:
        raise NotFound(f"no family {family!r}",
                       [FieldProblem("family", "one of " + ", ".join(FAMILIES))])


def require_version(session: Session, family: str, version: int,
                    field: str = "version") -> VersionRow:
    """The version row, or NotFound naming `field`."""
    require_family(session, family)
    row = repository.get_version(session, family, version)
    if row is None:
        raise NotFound(f"{family} has no version {version}", [FieldProblem(field, "unknown")])
    return row


def build_from(session: Session, versions: Mapping[str, int],
               replacing: Mapping[str, Bundle] | None = None) -> ScoringContext:
    """Load `versions` from the store, swap in `replacing` bundles, and build one context
    (stored families already loaded from the same bytes are reused: builder.stored_family)."""
    replacing = dict(replacing or {})
    loaded: dict[str, Family] = {}
    refs: dict[str, VersionRef] = {}
    for family, version in versions.items():
        if family not in replacing:
            loaded[family], _, refs[family], _ = stored_family(session, family, version)
    for family, bundle in replacing.items():
        loaded[family] = load_family(bundle)
        refs[family] = VersionRef(family=family, version=versions.get(family, 0),
                                  sha256=bundle.sha256)
    try:
        return assemble_context(loaded, refs)
    except ValueError as exc:  # e.g. two models declare one feature differently
        raise BundleRejected("these versions do not fit together",
                             [FieldProblem("features", str(exc))]) from None


def _production(session: Session) -> dict[str, int]:
    return {f: a["production"] for f, a in repository.alias_map(session).items()
            if "production" in a}


def verify_limits(settings: Settings) -> VerifyLimits:
    """The limits of a pushed bundle's verification, from the TIERWISE_VERIFY_* settings."""
    return VerifyLimits(memory_mb=settings.verify_memory_mb,
                        cpu_seconds=settings.verify_cpu_seconds,
                        wall_seconds=settings.verify_wall_seconds,
                        open_files=settings.verify_open_files,
                        file_size_mb=settings.verify_file_size_mb,
                        max_bytes=settings.max_bundle_bytes,
                        require_network_isolation=settings.verify_require_network_isolation)


def publish(*, session: Session, family: str, archive: bytes, actor: Principal, max_bytes: int,
            check_with: Mapping[str, int] | None = None,
            verify: VerifyLimits | None = None) -> VersionRow:
    """Verify an uploaded bundle against production (or `check_with`); store it as a version.

    A model bundle naming its contract (manifest.contract) is verified with that features
    version; a features bundle (a contract) without `check_with` is verified on its own.

    With `verify` (every push over HTTP), the archive is first unpacked and verified in a
    child process under those limits, and this process reads it only once that passed;
    without (the operator's own models directory at seeding), it is verified here."""
    require_family(session, family)
    if verify is not None:
        verify_archive(archive, dataclasses.replace(verify, max_bytes=max_bytes))
    bundle = read_archive(archive, max_bytes=max_bytes)
    if bundle.family != family:
        raise BundleRejected(
            f"this is a {bundle.family} bundle, pushed to {family}",
            [FieldProblem("manifest.family", f"is {bundle.family}, the URL says {family}")],
        )
    if existing := repository.get_version_by_sha256(session, bundle.sha256):
        raise Conflict(
            f"this bundle is already {existing.family} version {existing.version}",
            [FieldProblem("sha256", f"same as {existing.family} version {existing.version}")],
        )
    check = dict(check_with or {})
    for other, number in check.items():
        require_version(session, other, number, field=f"check_with.{other}")
    production = _production(session)
    against_contract = False
    if family in MODEL_FAMILIES and "features" not in check \
            and (contract := _contract_version(session, bundle)) is not None:
        check["features"] = contract  # the contract it was trained against, not production's
        # Trained against a contract production does not serve (a new bank, a new contract
        # version): production's other models may not fit it, so the model is checked
        # against its contract alone; promote checks the whole set (model_fits).
        against_contract = not check_with and contract != production.get("features")
    base = {**production, **check}
    base.pop(family, None)
    # A contract alone is checked on its own: the models that will read it may be trained
    # against it and pushed after it (promote checks that they fit, model_fits).
    alone = family == "features" and not check
    if against_contract:
        _fits_contract(session, bundle, check["features"])
        checked_with = {"features": check["features"]}
    elif not alone and all(f in base for f in FAMILIES if f != family):
        build_from(session, base, {family: bundle})
        checked_with = base
    else:  # a registry still being filled: the bundle is checked on its own
        load_family(bundle)
        checked_with = {}
    require_family(session, family, lock=True)  # serialises numbering of concurrent pushes
    now = utcnow()
    with _concurrent_change("another push of this family or bundle won the race; retry"):
        row = repository.add_version(
            session,
            VersionRow(family=family,
                       version=repository.latest_version_number(session, family) + 1,
                       sha256=bundle.sha256, label=bundle.manifest.label,
                       manifest=json.loads(bundle.manifest_bytes), size_bytes=len(archive),
                       created_by_key=actor.key_id, created_by_name=actor.name,
                       created_by_principal=actor.principal_id, created_at=now),
            store.make_artifact(archive),
        )
    _ledger(session, actor, "push", family=family, version=row.version, at=now,
            detail={"sha256": row.sha256, "label": row.label, "size_bytes": row.size_bytes,
                    "checked_with": checked_with})
    return row


def _fits_contract(session: Session, bundle: Bundle, features_version: int) -> None:
    """Load and replay a model bundle, and check it reads only what that contract declares."""
    family = load_family(bundle)
    contract = load_family(store.load_bundles(session, {"features": features_version})["features"])
    assert isinstance(contract, FeatureContract)
    if problems := model_fits(contract, getattr(family, "features", ()),
                              where="manifest.features"):
        raise BundleRejected(
            f"the model does not fit contract {contract.name!r} (features version "
            f"{features_version}) it names", problems)


def _contract_version(session: Session, bundle: Bundle) -> int | None:
    """The features version a model bundle names in manifest.contract (None: it names none)."""
    ref = bundle.manifest.contract
    if ref is None:
        return None
    row = repository.get_version_by_sha256(session, ref.sha256)
    if row is None or row.family != "features":
        raise BundleRejected(
            f"the model was trained against contract {ref.name!r}, which the registry does "
            "not hold: push the contract first",
            [FieldProblem("manifest.contract.sha256",
                          f"no features version has sha256 {ref.sha256}; push the contract "
                          "first")])
    return row.version


def approve(*, session: Session, family: str, version: int, actor: Principal,
            note: str = "") -> ApprovalRow:
    """Record an approval; the principal who published a version may not approve it (four
    eyes, whichever of their keys they use)."""
    if not actor.may("approver"):
        raise Forbidden("approving needs the approver role", [FieldProblem("role", actor.role)])
    row = require_version(session, family, version)
    if row.created_by_principal == actor.principal_id:
        raise FourEyes(
            "a version may not be approved by the principal who published it",
            [FieldProblem("version", f"published by {_who(row)}")],
        )
    already = f"{family} version {version} is already approved by {actor.name}"
    if any(a.approver_principal == actor.principal_id
           for a in repository.list_approvals(session, family, version)):
        raise Conflict(already)
    now = utcnow()
    with _concurrent_change(already):
        approval = repository.add_approval(session, ApprovalRow(
            family=family, version=version, approver_key=actor.key_id,
            approver_name=actor.name, approver_principal=actor.principal_id, note=note,
            created_at=now))
    _ledger(session, actor, "approve", family=family, version=version, at=now,
            detail={"note": note} if note else {})
    return approval


def _who(row: VersionRow) -> str:
    return (f"{row.created_by_name} (principal {row.created_by_principal}, "
            f"key {row.created_by_key})")


@dataclass(frozen=True, slots=True)
class MovesDone:
    """What a call to move_aliases did: the moves made (one ledger entry each) and the moves
    that were no-ops because the alias already pointed there (not written, not recorded)."""

    entries: list[LedgerRow]
    unchanged: list[AliasMove]


def move_aliases(*, session: Session, moves: Sequence[AliasMove], actor: Principal,
                 note: str = "", reason: str = "promote") -> MovesDone:
    """Move one or several aliases atomically: all are checked before any moves.

    Compare-and-set: the aliases are read under the registry's alias lock (taken first), so
    each ledger entry's previous_version is the version this move replaced, and a concurrent
    move waits for this one instead of deciding on a stale read."""
    if not moves:
        raise InvalidRequest("no alias moves given", [FieldProblem("moves", "empty")])
    repository.lock_alias_moves(session)
    current = repository.alias_map(session)
    seen: set[tuple[str, str]] = set()
    changes: list[AliasMove] = []
    unchanged: list[AliasMove] = []
    for i, move in enumerate(moves):
        now_at = current.get(move.family, {}).get(move.alias)
        _check_move(session, i, move, actor, reason, seen, now_at)
        (unchanged if now_at == move.version else changes).append(move)
    contract_detail = {move: _check_contract(session, moves.index(move), move, current, reason)
                       for move in changes if move.family == "features"}
    _check_builds(session, current, changes)
    now, batch = utcnow(), uuid.uuid4().hex
    entries = []
    for move in changes:
        with _concurrent_change("another alias move won the race; retry"):
            if move.version is None:
                if row := repository.get_alias(session, move.family, move.alias, lock=True):
                    repository.delete_alias(session, row)
            else:
                repository.set_alias(session, family=move.family, alias=move.alias,
                                     version=move.version, at=now, key=actor.key_id,
                                     name=actor.name)
        detail = {"reason": reason, "batch": batch, **({"note": note} if note else {}),
                  **contract_detail.get(move, {})}
        entries.append(_ledger(session, actor, "alias_move", family=move.family,
                               version=move.version, alias=move.alias,
                               previous_version=current.get(move.family, {}).get(move.alias),
                               at=now, detail=detail))
    if changes:  # replicas listening hear it when this transaction commits
        announce_moves(session, (move.family for move in changes))
    return MovesDone(entries=entries, unchanged=unchanged)


def _contract(session: Session, version: int) -> FeatureContract:
    contract = load_family(store.load_bundles(session, {"features": version})["features"])
    assert isinstance(contract, FeatureContract)
    return contract


def _check_contract(session: Session, i: int, move: AliasMove,
                    current: Mapping[str, Mapping[str, int]], reason: str) -> dict[str, object]:
    """What a features move changes for callers (for the ledger); refuses a breaking change
    to production or challenger unless the move allows it (a rollback or seed is not
    refused: it returns to a contract that was live before)."""
    live = current.get("features", {}).get("production")
    if move.version is None or live is None or move.alias not in ("production", "challenger") \
            or live == move.version:
        return {}
    changes = contract_changes(_contract(session, live), _contract(session, move.version))
    if changes.is_breaking and not move.allow_breaking and reason == "promote":
        raise BreakingContract(
            f"features version {move.version} breaks what callers send under production "
            f"version {live}: requests valid today may be refused. Promote it with "
            "allow_breaking once callers are ready",
            [FieldProblem(f"moves[{i}].{p.field}", p.problem) for p in describe(changes)])
    return {"contract_changes": {"breaking": changes.breaking, "additive": changes.additive},
            "allow_breaking": move.allow_breaking}


def _check_builds(session: Session, current: Mapping[str, Mapping[str, int]],
                  changes: Sequence[AliasMove]) -> None:
    """The production set, and production+challenger, still build a scoring context."""
    production = {f: a["production"] for f, a in current.items() if "production" in a}
    challenger = {f: a["challenger"] for f, a in current.items() if "challenger" in a}
    for move in changes:
        target = production if move.alias == "production" else (
            challenger if move.alias == "challenger" else None)
        if target is not None and move.version is not None:
            target[move.family] = move.version
        elif target is not None:
            target.pop(move.family, None)
    touched = {m.alias for m in changes}
    if touched & {"production", "challenger"} and all(f in production for f in FAMILIES):
        if "production" in touched:
            build_from(session, production)
        if challenger:
            build_from(session, {**production, **challenger})


def _check_move(session: Session, i: int, move: AliasMove, actor: Principal, reason: str,
                seen: set[tuple[str, str]], now_at: int | None) -> None:
    where = f"moves[{i}]"
    if move.alias not in ALIASES:
        raise InvalidRequest(f"unknown alias {move.alias!r}",
                             [FieldProblem(f"{where}.alias", "one of " + ", ".join(ALIASES))])
    if (move.family, move.alias) in seen:
        raise InvalidRequest("an alias may move only once per call",
                             [FieldProblem(where, f"{move.family}/{move.alias} repeated")])
    seen.add((move.family, move.alias))
    if move.alias == "production":
        if not actor.may("approver"):
            raise Forbidden("moving production needs the approver role",
                            [FieldProblem(f"{where}.alias", f"role {actor.role}")])
    elif not (actor.may("publisher") or actor.may("approver")):
        raise Forbidden(f"moving {move.alias} needs the publisher or approver role",
                        [FieldProblem(f"{where}.alias", f"role {actor.role}")])
    row = None
    if move.version is None:
        require_family(session, move.family)
        if move.alias == "production":
            raise InvalidRequest("production cannot be cleared, only moved",
                                 [FieldProblem(f"{where}.version", "required for production")])
    else:
        row = require_version(session, move.family, move.version, field=f"{where}.version")
    if move.expected_version is not None and now_at != move.expected_version:
        raise AliasMoved(
            f"{move.family} {move.alias} is at {now_at}, not {move.expected_version}",
            [FieldProblem(f"{where}.expected_version", f"the alias is at {now_at}")])
    if row is None or now_at == move.version or move.alias != "production" \
            or reason != "promote":
        return  # a no-op, or no approval needed
    if not repository.list_approvals(session, move.family, row.version):
        raise NotApproved(
            f"{move.family} version {row.version} is not approved; production needs an approval",
            [FieldProblem(f"{where}.version", "not approved")],
        )
    if row.created_by_principal == actor.principal_id:
        raise FourEyes("the principal who published a version may not move it to production",
                       [FieldProblem(f"{where}.version", f"published by {_who(row)}")])


def production_lineage(moves: Sequence[LedgerRow]) -> list[int]:
    """The stack of production versions the ledger implies; a rollback pops its top."""
    stack: list[int] = []
    for move in moves:
        if move.version is None:
            continue
        if move.detail.get("reason") == "rollback" and len(stack) >= 2 \
                and stack[-2] == move.version:
            stack.pop()
        elif not stack or stack[-1] != move.version:
            stack.append(move.version)
    return stack


def rollback(*, session: Session, family: str, actor: Principal, note: str = "") -> LedgerRow:
    """Move production back to the version that was production before the current one
    (decided under the alias lock, so a promotion committed meanwhile is not undone)."""
    repository.lock_alias_moves(session)
    require_family(session, family)
    lineage = production_lineage(repository.alias_moves(session, family, "production"))
    current = repository.get_alias(session, family, "production")
    if current is None or len(lineage) < 2 or lineage[-1] != current.version:
        raise Conflict(f"{family} has no previous production version to roll back to",
                       [FieldProblem("family", f"production history: {lineage}")])
    done = move_aliases(session=session, actor=actor, note=note, reason="rollback", moves=[
        AliasMove(family, "production", lineage[-2], expected_version=current.version)])
    return done.entries[0]


@contextlib.contextmanager
def _concurrent_change(message: str) -> Iterator[None]:
    # Two requests passed the same checks at once; the database's constraints let only one
    # win. The loser gets a 409 (its transaction is rolled back by the request).
    try:
        yield
    except IntegrityError:
        raise Conflict(message) from None


def _ledger(session: Session, actor: Principal, action: str, **fields: object) -> LedgerRow:
    return repository.append_ledger(session, actor_key=actor.key_id, actor_name=actor.name,
                                    actor_role=actor.role, actor_principal=actor.principal_id,
                                    action=action, **fields)  # type: ignore[arg-type]
