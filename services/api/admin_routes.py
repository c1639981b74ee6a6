"""/v1/admin: bearer tokens and model ownership grants (admin only, like everything under
/v1/admin), and /v1/whoami, the caller as access control sees it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request
from pydantic import Field

from registrar.access.administration import AccessAdministration, Stored
from registrar.access.guard import AccessGuard
from registrar.access.principal import PRINCIPAL_SCOPE_KEY, Principal
from registrar.access.rules import MAX_LABEL_LENGTH
from registrar.api.context import command_meta, registry_of
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON, with_position
from registrar.contracts.api import Answer, Body, Whoami
from registrar.contracts.values import ModelName, Role

router = APIRouter(tags=["access"])

UserQuery = Annotated[str | None, Query(description="Only this user's")]


class CreateToken(Body):
    user: str = Field(description="Who the token is for (letters, digits, _ . @ + -)")
    role: Role
    label: str = Field(default="", max_length=MAX_LABEL_LENGTH, description="e.g. 'CI of repo x'")


class Grant(Body):
    user: str
    model: ModelName


class TokenOut(Body):
    token_id: UUID
    user: str
    role: Role
    label: str
    issued_at: datetime
    issued_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="The bearer token: shown this once, never stored")
    position: int


class OwnerOut(Body):
    model: str
    model_id: str
    user: str
    since: datetime
    granted_by: str


class AccessEventOut(Answer):
    """An access event's answer: the event's fields, who made it, when, and its position."""

    actor: str
    recorded_at: datetime
    position: int


class TokenRevokedOut(AccessEventOut):
    type: Literal["TokenRevoked"]
    token_id: UUID
    user: str
    reason: str


class OwnershipOut(AccessEventOut):
    type: Literal["OwnershipGranted", "OwnershipRevoked"]
    user: str
    model_id: str = Field(description="The model's stream id: ownership survives a rename")
    model_name: str


def _administration(request: Request) -> AccessAdministration:
    return AccessAdministration(registry_of(request).store)


def _answer(stored: Stored, status: int = 200) -> JSON:
    """An access event's answer: the event, who made it, when, and its position."""
    return with_position(
        {
            **stored.event.model_dump(mode="json"),
            "actor": stored.actor,
            "recorded_at": stored.recorded_at,
        },
        stored.position,
        status,
    )


def _guard(request: Request) -> AccessGuard | None:
    """Access control of this process, when authentication is on: a token issued or revoked
    here counts here at once; in other processes within milliseconds (NOTIFY)."""
    return getattr(request.app.state, "access_guard", None)


@router.post(
    "/v1/admin/tokens",
    status_code=201,
    response_model=IssuedTokenOut,
    summary="Issue a bearer token for a user with a role (the token is shown only here)",
    responses=refusals(409),
)
async def create_token(body: CreateToken, request: Request) -> JSON:
    administration = _administration(request)
    issued = await administration.issue_token(
        body.user, body.role, command_meta(request), body.label
    )
    guard = _guard(request)
    if guard is not None:
        event = issued.event
        guard.cache.accept(event.token_hash, Principal(event.user, event.role, event.token_id))
    answer = {
        **issued.event.model_dump(mode="json", exclude={"type", "token_hash"}),
        "issued_at": issued.stored.recorded_at,
        "issued_by": issued.stored.actor,
        "token": issued.token,
    }
    return with_position(answer, issued.stored.position, 201)


@router.get("/v1/admin/tokens", response_model=list[TokenOut], summary="List tokens (no secrets)")
async def list_tokens(
    request: Request,
    user: UserQuery = None,
    include_revoked: Annotated[bool, Query(description="Also the revoked ones")] = False,
) -> JSON:
    return JSON(await _administration(request).tokens(user, include_revoked))


@router.delete(
    "/v1/admin/tokens/{token_id}",
    response_model=TokenRevokedOut,
    summary="Revoke a token: refused from then on, in every API process within milliseconds",
    responses=refusals(404, 409),
)
async def revoke_token(
    token_id: Annotated[UUID, Path(description="The token's id (not the token)")],
    request: Request,
    reason: Annotated[str, Query(max_length=MAX_LABEL_LENGTH)] = "",
) -> JSON:
    stored = await _administration(request).revoke_token(token_id, command_meta(request), reason)
    guard = _guard(request)
    if guard is not None:
        guard.cache.forget(token_id)
    return _answer(stored)


@router.post(
    "/v1/admin/grants",
    status_code=201,
    response_model=OwnershipOut,
    summary="Make a user an owner of a model (owners may describe, tag, rename and delete it)",
    responses=refusals(404, 409),
)
async def grant(body: Grant, request: Request) -> JSON:
    stored = await _administration(request).grant_ownership(
        body.user, body.model, command_meta(request)
    )
    return _answer(stored, 201)


@router.get(
    "/v1/admin/grants",
    response_model=list[OwnerOut],
    summary="Owners of models: who registered each, and who was granted it",
)
async def list_grants(
    request: Request,
    user: UserQuery = None,
    model: Annotated[str | None, Query(description="Only this model's")] = None,
) -> JSON:
    return JSON(await _administration(request).owners(user, model))


@router.delete(
    "/v1/admin/grants/{model}/{user}",
    response_model=OwnershipOut,
    summary="Take a model's ownership from a user",
    responses=refusals(404, 409),
)
async def revoke_grant(
    model: Annotated[str, Path()], user: Annotated[str, Path()], request: Request
) -> JSON:
    stored = await _administration(request).revoke_ownership(user, model, command_meta(request))
    return _answer(stored)


@router.get(
    "/v1/whoami",
    response_model=Whoami,
    summary="The caller: user and role (admin when authentication is off)",
    responses=refusals(422),
)
async def whoami(request: Request) -> JSON:
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    meta = command_meta(request)
    answer: dict[str, Any] = {
        "user": meta.actor,
        "role": meta.role.value,
        "authenticated": principal is not None,
        "token_id": principal.token_id if principal is not None else None,
    }
    return JSON(answer)
