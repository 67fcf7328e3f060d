"""API keys over HTTP (admin role): create a key for a principal, list keys, revoke one.

The calling admin is the acting principal: it is recorded on the key (`created_by`) and in
the ledger (key_create, key_revoke), as `tierwise keys ... --as NAME` does from the command
line. A new key is shown once, in the response that creates it; only its sha256 is stored.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import RequireAdmin
from app.api.openapi import AUTH_ERRORS, JSON_BODY_ERRORS, errors, operation_id
from app.api.routes.models import JSON_ONLY, SessionDep
from app.errors import Conflict, FieldProblem, NotFound
from app.registry import repository
from app.registry.auth_keys import create_key, revoke_key
from app.registry.tables import ApiKeyRow, PrincipalRow

router = APIRouter(tags=["keys"], default_response_class=JSONResponse,
                   generate_unique_id_function=operation_id)

Role = Literal["scorer", "publisher", "approver", "admin"]
KeyIdPath = Annotated[str, Path(pattern=r"^[0-9a-f]{1,32}$", description="The key's public id")]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    principal: str = Field(min_length=1, max_length=200,
                           description="The person or service account that owns the key "
                                       "(created when new); four eyes compares principals")
    kind: Literal["person", "service"] | None = Field(
        default=None, description="For a new principal (default person); for an existing "
        "one it must match (409 otherwise)")
    role: Role


class PrincipalOut(BaseModel):
    id: str
    name: str
    kind: str


class KeyOut(BaseModel):
    id: str = Field(description="The key's public id (the part after tw_)")
    role: str
    principal: PrincipalOut
    created_at: dt.datetime
    created_by: str = Field(description="The principal who created the key")
    revoked_at: dt.datetime | None
    active: bool


class NewKeyOut(KeyOut):
    key: str = Field(description="The key itself: shown only in this response, never again")


class KeyList(BaseModel):
    keys: list[KeyOut] = Field(description="Every key, oldest first; never the keys themselves")


def _view(row: ApiKeyRow, owner: PrincipalRow) -> KeyOut:
    return KeyOut(id=row.id, role=row.role,
                  principal=PrincipalOut(id=owner.id, name=owner.name, kind=owner.kind),
                  created_at=row.created_at, created_by=row.created_by,
                  revoked_at=row.revoked_at, active=row.revoked_at is None)


@router.post("/v1/keys", status_code=201, response_model=NewKeyOut, dependencies=JSON_ONLY,
             responses=errors(*AUTH_ERRORS, *JSON_BODY_ERRORS, 409,
                              s409="The principal exists with another kind"),
             summary="Create an API key for a principal (shown once)")
def create(body: KeyIn, principal: RequireAdmin, session: SessionDep) -> NewKeyOut:
    row, plain = create_key(session=session, role=body.role, principal=body.principal,
                            kind=body.kind, actor=principal)
    owner = repository.get_principal(session, row.principal_id)
    assert owner is not None
    return NewKeyOut(**_view(row, owner).model_dump(), key=plain)


@router.get("/v1/keys", response_model=KeyList, responses=errors(*AUTH_ERRORS),
            summary="Every API key with its principal and state (never the key itself)")
def list_keys(principal: RequireAdmin, session: SessionDep) -> KeyList:
    owners = {p.id: p for p in repository.list_principals(session)}
    return KeyList(keys=[_view(row, owners[row.principal_id])
                         for row in repository.list_api_keys(session)])


@router.post("/v1/keys/{key_id}/revoke", response_model=KeyOut,
             responses=errors(*AUTH_ERRORS, 404, 409, 422, s404="No such key",
                              s409="The last active admin key"),
             summary="Revoke a key (replicas refuse it within seconds)")
def revoke(key_id: KeyIdPath, principal: RequireAdmin, session: SessionDep) -> KeyOut:
    row = repository.get_api_key(session, key_id)
    if row is None:
        raise NotFound(f"no API key {key_id}", [FieldProblem("key_id", "unknown")])
    if row.role == "admin" and row.revoked_at is None \
            and repository.count_active_keys(session, "admin") <= 1:
        raise Conflict("this is the last active admin key; create another admin key first",
                       [FieldProblem("key_id", "the only active admin key")])
    row = revoke_key(session=session, key_id=key_id, actor=principal)
    owner = repository.get_principal(session, row.principal_id)
    assert owner is not None
    return _view(row, owner)
