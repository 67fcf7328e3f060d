"""The model registry over HTTP: publish, list, show, approve, move aliases, roll back, audit.

HTTP only: each route validates, makes one registry call, and returns. The request owns the
transaction: it commits when the route returns and rolls back on any error, so a refused
call leaves the registry exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints
from sqlalchemy.orm import Session

from app.api.auth import RequireApprover, RequireOperator, RequirePublisher, RequireViewer
from app.api.deps import RuntimeDep
from app.api.openapi import AUTH_ERRORS, JSON_BODY_ERRORS, errors, operation_id
from app.api.schemas import FamilyName, whole_number
from app.errors import FieldProblem, PayloadTooLarge, UnsupportedMediaType
from app.registry import importance, service, store, views

router = APIRouter(tags=["registry"], default_response_class=JSONResponse,
                   generate_unique_id_function=operation_id)

ARCHIVE_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream",
                 "application/x-tar")
MAX_VERSION = 2**31 - 1  # the registry's version column is a 32-bit integer
LedgerAction = Literal["push", "approve", "alias_move", "key_create", "key_revoke"]


def _session(runtime: RuntimeDep) -> Iterator[Session]:
    with runtime.sessionmaker() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# scope="function": commit before the response is sent, so a 2xx means it is stored.
SessionDep = Annotated[Session, Depends(_session, scope="function")]


def is_json(content_type: str | None) -> bool:
    """application/json or application/<anything>+json, parameters (charset) allowed."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json"))


async def _json_content(request: Request) -> None:
    """415 for a body sent as anything but JSON (before the key check, as /v1/score)."""
    content_type = request.headers.get("content-type")
    if await request.body() and not is_json(content_type):
        raise UnsupportedMediaType("send the request body as JSON", [FieldProblem(
            "Content-Type", f"is {content_type or 'missing'}; use application/json")])


JSON_ONLY = [Depends(_json_content)]


async def _bundle_body(request: Request, runtime: RuntimeDep) -> bytes:
    """The raw .tar.gz request body, refused (413) as soon as it passes the bundle limit."""
    limit = runtime.settings.max_bundle_bytes
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in ARCHIVE_TYPES:
        raise UnsupportedMediaType(
            "send the bundle as the raw request body (a .tar.gz)",
            [FieldProblem("Content-Type", f"is {media or 'missing'}; use application/gzip")],
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the bundle is larger than {limit} bytes",
                              [FieldProblem("body", f"{declared} bytes")])
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the bundle is larger than {limit} bytes",
                                  [FieldProblem("body", f"more than {limit} bytes")])
        chunks.append(chunk)
    return b"".join(chunks)


BundleBody = Annotated[bytes, Depends(_bundle_body)]
FamilyPath = Annotated[FamilyName, Path(description="The model or configuration family")]
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION)]
CheckWith = Annotated[str, StringConstraints(
    pattern=r"^(?:features|tier|churn|products|catalog|policy)=[1-9][0-9]{0,8}$")]


Version = Annotated[int, Field(ge=1, le=MAX_VERSION), BeforeValidator(whole_number)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


EXPECTED = ("Compare-and-set: move only if the alias is at this version now "
            "(409 alias_moved otherwise)")


ALLOW_BREAKING = ("features only: move to a contract that may refuse requests valid today "
                  "(a feature removed, a range narrowed, ...); 409 breaking_contract otherwise")


class ProductionMove(_Body):
    family: FamilyName
    alias: Literal["production"]
    version: Version = Field(description="An approved version")
    expected_version: Version | None = Field(default=None, description=EXPECTED)
    allow_breaking: bool = Field(default=False, description=ALLOW_BREAKING)


class OtherAliasMove(_Body):
    family: FamilyName
    alias: Literal["staging", "challenger"]
    version: Version | None = Field(description="null clears the alias")
    expected_version: Version | None = Field(default=None, description=EXPECTED)
    allow_breaking: bool = Field(default=False, description=ALLOW_BREAKING)


AliasMoveIn = Annotated[ProductionMove | OtherAliasMove, Field(discriminator="alias")]


class AliasMovesIn(_Body):
    moves: list[AliasMoveIn] = Field(
        min_length=1, max_length=15,
        description="Each family/alias pair at most once (422 otherwise)")
    note: str = Field(default="", max_length=1000)


class NoteIn(_Body):
    note: str = Field(default="", max_length=1000)


READ = errors(*AUTH_ERRORS, 404, 422, s404="Unknown family or version")
WRITE_JSON = errors(*AUTH_ERRORS, *JSON_BODY_ERRORS, 404, 409,
                    s404="Unknown family or version",
                    s409="Not approved, already approved by this principal, nothing to roll "
                         "back to, the alias is not at expected_version, a breaking contract "
                         "change without allow_breaking, or another change won the race")
_VERSION_LINK = {"parameters": {"family": "$response.body#/family",
                                 "version": "$response.body#/version"}}
PUBLISH: dict[int | str, dict[str, Any]] = {
    201: {"description": "Stored as the family's next version", "links": {
        name: {"operationId": name, **_VERSION_LINK}
        for name in ("show_version", "approve_version", "download_bundle")}},
    **errors(*AUTH_ERRORS, 404, 409, 413, 415, 422,
             s404="A check_with version does not exist", s409="This bundle is registered",
             s413="Bundle larger than the replica's bundle limit",
             s415="Body is not a gzip archive",
             s422="The bundle failed verification, or a parameter is invalid",
             s503="The registry is unavailable, or TIERWISE_VERIFY_REQUIRE_NETWORK_ISOLATION "
                  "is set and this host cannot isolate the verification child "
                  "(verification_isolation_unavailable)"),
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}
# The server takes the archive as either type; octet-stream first, because generators
# (openapi-python-client among them) produce an upload method for it and not for gzip.
BUNDLE_UPLOAD = {"application/octet-stream": _BINARY, "application/gzip": _BINARY}
BUNDLE_FILE = {"application/gzip": _BINARY, "application/octet-stream": _BINARY}


@router.get("/v1/models", response_model=views.RegistryView, responses=errors(*AUTH_ERRORS),
            summary="Every family with its versions and aliases")
def list_models(principal: RequireViewer, session: SessionDep) -> views.RegistryView:
    return views.overview(session=session)


@router.post("/v1/models/aliases", response_model=views.AliasMovesResult,
             responses=WRITE_JSON, dependencies=JSON_ONLY,
             summary="Move one or several aliases in one atomic call")
def move_aliases(body: AliasMovesIn, principal: RequireOperator,
                 session: SessionDep) -> views.AliasMovesResult:
    moves = [service.AliasMove(m.family, m.alias, m.version, m.expected_version,
                               m.allow_breaking) for m in body.moves]
    return views.moves_result(service.move_aliases(session=session, moves=moves,
                                                   actor=principal, note=body.note))


@router.get("/v1/models/{family}/versions", response_model=views.FamilyView,
            responses=READ, summary="A family's versions and aliases")
def list_versions(family: FamilyPath, principal: RequireViewer,
                  session: SessionDep) -> views.FamilyView:
    return views.family_versions(session=session, family=family)


@router.post("/v1/models/{family}/versions", status_code=201,
             response_model=views.VersionDetail, summary="Publish a bundle (.tar.gz body)",
             openapi_extra={"requestBody": {"required": True, "content": BUNDLE_UPLOAD,
                                            "description": "The bundle, a .tar.gz archive"}},
             responses=PUBLISH)
def publish_version(family: FamilyPath, principal: RequirePublisher, archive: BundleBody,
                    session: SessionDep, runtime: RuntimeDep,
                    check_with: Annotated[list[CheckWith], Query(
                        description="Verify against these versions of other families instead "
                                    "of production, e.g. products=3 (the last one given for a "
                                    "family counts)")] = [],  # noqa: B006
                    ) -> views.VersionDetail:
    row = service.publish(session=session, family=family, archive=archive, actor=principal,
                          max_bytes=runtime.settings.max_bundle_bytes,
                          check_with=_check_with(check_with),
                          verify=service.verify_limits(runtime.settings))
    return views.version_detail(row, {}, [])


def _check_with(values: list[str]) -> dict[str, int]:
    # The pattern has checked each value; a family named twice takes the last one.
    return {family: int(number) for family, _, number in (v.partition("=") for v in values)}


@router.get("/v1/models/{family}/versions/{version}", response_model=views.VersionDetail,
            responses=READ, summary="One version: manifest summary, metrics, approvals")
def show_version(family: FamilyPath, version: VersionPath, principal: RequireViewer,
                 session: SessionDep) -> views.VersionDetail:
    return views.show_version(session=session, family=family, version=version)


@router.get("/v1/models/{family}/versions/{version}/config",
            response_model=views.ConfigDocument,
            responses=errors(*AUTH_ERRORS, 404, 422,
                             s404="Unknown family or version, or a model family (only "
                                  "features, catalog and policy have a document)"),
            summary="A configuration version's document (the registry console's diff)")
def show_config(family: FamilyPath, version: VersionPath, principal: RequireViewer,
                session: SessionDep) -> views.ConfigDocument:
    return views.config_document(session=session, family=family, version=version)


@router.get("/v1/models/{family}/versions/{version}/importance",
            response_model=importance.FeatureImportance,
            responses=errors(*AUTH_ERRORS, 404, 422,
                             s404="Unknown family or version, or a configuration family"),
            summary="A model version's feature importance (splits per feature)")
def show_importance(family: FamilyPath, version: VersionPath, principal: RequireViewer,
                    session: SessionDep) -> importance.FeatureImportance:
    return importance.feature_importance(session=session, family=family, version=version)


@router.get("/v1/models/{family}/versions/{version}/bundle", response_class=Response,
            responses={200: {"description": "The bundle archive", "content": BUNDLE_FILE},
                       **READ},
            summary="Download the version's bundle archive")
def download_bundle(family: FamilyPath, version: VersionPath, principal: RequireOperator,
                    session: SessionDep) -> Response:
    row = service.require_version(session, family, version)
    return Response(store.archive_of(session, row), media_type=store.MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{family}-v{version}.tar.gz"',
        "X-Bundle-Sha256": row.sha256,
    })


@router.post("/v1/models/{family}/versions/{version}/approve",
             response_model=views.VersionDetail, responses=WRITE_JSON, dependencies=JSON_ONLY,
             summary="Approve a version (approver; not the principal who published it)")
def approve_version(family: FamilyPath, version: VersionPath, principal: RequireApprover,
                    session: SessionDep, body: NoteIn | None = None) -> views.VersionDetail:
    service.approve(session=session, family=family, version=version, actor=principal,
                    note=body.note if body else "")
    return views.show_version(session=session, family=family, version=version)


@router.post("/v1/models/{family}/rollback", response_model=views.LedgerEntry,
             responses=WRITE_JSON, dependencies=JSON_ONLY,
             summary="Production back to the previous production version")
def rollback(family: FamilyPath, principal: RequireApprover, session: SessionDep,
             body: NoteIn | None = None) -> views.LedgerEntry:
    entry = service.rollback(session=session, family=family, actor=principal,
                             note=body.note if body else "")
    return views.ledger_entry(entry)


@router.get("/v1/models/{family}/history", response_model=views.HistoryView,
            responses=READ, summary="Every alias move of a family, with who and when")
def history(family: FamilyPath, principal: RequireViewer,
            session: SessionDep) -> views.HistoryView:
    return views.history(session=session, family=family)


@router.get("/v1/ledger", response_model=views.LedgerPage,
            responses=errors(*AUTH_ERRORS, 422),
            summary="The append-only ledger (read only; there is no edit or delete)")
def ledger(principal: RequireApprover, session: SessionDep,
           after_id: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           family: FamilyName | None = None,
           action: LedgerAction | None = None,
           ) -> views.LedgerPage:
    return views.ledger_page(session=session, after_id=after_id, limit=limit, family=family,
                             action=action)
