"""The model registry over HTTP: publish, list, show, approve, move aliases, roll back, audit.

HTTP only: each route validates, makes one registry call, and returns. The request owns the
transaction: it commits when the route returns and rolls back on any error, so a refused
call leaves the registry exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from app.api.auth import (
    RequireApprover,
    RequireOperator,
    RequirePublisher,
    RequireViewer,
)
from app.errors import FieldProblem, InvalidRequest, PayloadTooLarge, TierwiseError
from app.registry import service, store, views
from app.registry.tables import LEDGER_ACTIONS

router = APIRouter(tags=["registry"])

ARCHIVE_TYPES = ("application/gzip", "application/x-gzip", "application/octet-stream",
                 "application/x-tar")


class UnsupportedMediaType(TierwiseError):
    status = 415
    code = "unsupported_media_type"


def _session(request: Request) -> Iterator[Session]:
    with request.app.state.runtime.sessionmaker() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


# scope="function": commit before the response is sent, so a 2xx means it is stored.
SessionDep = Annotated[Session, Depends(_session, scope="function")]


async def _bundle_body(request: Request) -> bytes:
    """The raw .tar.gz request body, refused (413) as soon as it passes the bundle limit."""
    limit = request.app.state.runtime.settings.max_bundle_bytes
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
FamilyPath = Annotated[str, Path(description="tier, churn, products, catalog or policy")]
VersionPath = Annotated[int, Path(ge=1)]


class AliasMoveIn(BaseModel):
    family: str
    alias: Literal["production", "staging", "challenger"]
    version: int | None = Field(ge=1, description="null clears a staging or challenger alias")


class AliasMovesIn(BaseModel):
    moves: list[AliasMoveIn] = Field(min_length=1, max_length=15)
    note: str = Field(default="", max_length=1000)


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=1000)


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "Missing or unknown API key"},
    403: {"description": "The key's role may not do this (or four eyes)"},
    404: {"description": "Unknown family or version"},
}


def _check_with(values: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i, item in enumerate(values):
        family, sep, number = item.partition("=")
        if not sep or not number.isdigit():
            raise InvalidRequest("check_with takes family=version",
                                 [FieldProblem(f"check_with[{i}]", f"{item!r} is not family=N")])
        out[family.strip()] = int(number)
    return out


@router.get("/v1/models", response_model=views.RegistryView, responses=_ERRORS,
            summary="Every family with its versions and aliases")
def list_models(principal: RequireViewer, session: SessionDep) -> views.RegistryView:
    return views.overview(session=session)


@router.post("/v1/models/aliases", response_model=views.AliasMovesResult, responses=_ERRORS,
             summary="Move one or several aliases in one atomic call")
def move_aliases(body: AliasMovesIn, principal: RequireOperator,
                 session: SessionDep) -> views.AliasMovesResult:
    moves = [service.AliasMove(m.family, m.alias, m.version) for m in body.moves]
    entries = service.move_aliases(session=session, moves=moves, actor=principal, note=body.note)
    return views.AliasMovesResult(moves=[views.ledger_entry(e) for e in entries])


@router.get("/v1/models/{family}/versions", response_model=views.FamilyView,
            responses=_ERRORS, summary="A family's versions and aliases")
def list_versions(family: FamilyPath, principal: RequireViewer,
                  session: SessionDep) -> views.FamilyView:
    return views.family_versions(session=session, family=family)


@router.post("/v1/models/{family}/versions", status_code=201,
             response_model=views.VersionDetail, summary="Publish a bundle (.tar.gz body)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/gzip": {"schema": {"type": "string", "format": "binary"}}}}},
             responses={**_ERRORS, 409: {"description": "This bundle is already registered"},
                        413: {"description": "Bundle too large"},
                        415: {"description": "Body is not application/gzip"},
                        422: {"description": "The bundle failed verification"}})
def publish_version(family: FamilyPath, principal: RequirePublisher, archive: BundleBody,
                    session: SessionDep, request: Request,
                    check_with: Annotated[list[str], Query(
                        description="Verify against these versions of other families instead "
                                    "of production, e.g. products=3")] = [],  # noqa: B006
                    ) -> views.VersionDetail:
    row = service.publish(session=session, family=family, archive=archive, actor=principal,
                          max_bytes=request.app.state.runtime.settings.max_bundle_bytes,
                          check_with=_check_with(check_with))
    return views.version_detail(row, {}, [])


@router.get("/v1/models/{family}/versions/{version}", response_model=views.VersionDetail,
            responses=_ERRORS, summary="One version: manifest summary, metrics, approvals")
def show_version(family: FamilyPath, version: VersionPath, principal: RequireViewer,
                 session: SessionDep) -> views.VersionDetail:
    return views.show_version(session=session, family=family, version=version)


@router.get("/v1/models/{family}/versions/{version}/bundle", response_class=Response,
            responses={**_ERRORS, 200: {"content": {"application/gzip": {}}}},
            summary="Download the version's bundle archive")
def download_bundle(family: FamilyPath, version: VersionPath, principal: RequireOperator,
                    session: SessionDep) -> Response:
    row = service.require_version(session, family, version)
    return Response(store.archive_of(session, row), media_type=store.MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{family}-v{version}.tar.gz"',
        "X-Bundle-Sha256": row.sha256,
    })


@router.post("/v1/models/{family}/versions/{version}/approve",
             response_model=views.VersionDetail, responses=_ERRORS,
             summary="Approve a version (approver; not the key that published it)")
def approve_version(family: FamilyPath, version: VersionPath, principal: RequireApprover,
                    session: SessionDep, body: NoteIn | None = None) -> views.VersionDetail:
    service.approve(session=session, family=family, version=version, actor=principal,
                    note=body.note if body else "")
    return views.show_version(session=session, family=family, version=version)


@router.post("/v1/models/{family}/rollback", response_model=views.LedgerEntry,
             responses=_ERRORS, summary="Production back to the previous production version")
def rollback(family: FamilyPath, principal: RequireApprover, session: SessionDep,
             body: NoteIn | None = None) -> views.LedgerEntry:
    entry = service.rollback(session=session, family=family, actor=principal,
                             note=body.note if body else "")
    return views.ledger_entry(entry)


@router.get("/v1/models/{family}/history", response_model=views.HistoryView,
            responses=_ERRORS, summary="Every alias move of a family, with who and when")
def history(family: FamilyPath, principal: RequireViewer,
            session: SessionDep) -> views.HistoryView:
    return views.history(session=session, family=family)


@router.get("/v1/ledger", response_model=views.LedgerPage, responses=_ERRORS,
            summary="The append-only ledger (read only; there is no edit or delete)")
def ledger(principal: RequireApprover, session: SessionDep,
           after_id: Annotated[int, Query(ge=0)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           family: str | None = None,
           action: Annotated[str | None, Query(description=", ".join(LEDGER_ACTIONS))] = None,
           ) -> views.LedgerPage:
    return views.ledger_page(session=session, after_id=after_id, limit=limit, family=family,
                             action=action)
