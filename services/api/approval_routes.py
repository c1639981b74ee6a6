"""/v1 transition requests, approvals and promotion policies: request a move or a rollback,
approve / reject / cancel it, read a request (from its model's stream: strongly consistent), list
requests (from the approvals projection), and read or apply the promotion policy (admins only)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import Field, model_validator
from sqlalchemy import text

from registrar.api.context import command_meta, handle, registry_of
from registrar.api.model_routes import NamePath
from registrar.api.openapi_document import refusals
from registrar.api.queries import MinPosition, PageSize, PageToken, model_event_at
from registrar.api.responses import JSON, with_position
from registrar.api.version_routes import VersionPath
from registrar.commands.command_handler import Outcome
from registrar.commands.promotion_policies import PolicyStream
from registrar.contracts.api import Body
from registrar.contracts.api_answers import PolicyOut, RequestPage, TransitionRequestOut
from registrar.contracts.commands import (
    ApproveTransition,
    CancelTransition,
    Comment,
    RejectTransition,
    RequestRollback,
    RequestTransition,
)
from registrar.contracts.events import TransitionRequested
from registrar.contracts.policies import PolicyDocument
from registrar.contracts.values import AliasName, StageName, VersionNumber
from registrar.domain.approvals import latest_request, standing
from registrar.domain.errors import NotFound
from registrar.domain.policies import PolicySet
from registrar.domain.state import ModelState
from registrar.domain.transition_requests import TransitionRequest, request_fields
from registrar.projections.approvals import list_requests, wait_until_applied
from registrar.registry import Registry

router = APIRouter(tags=["approvals"])

RequestIdPath = Annotated[str, Path(min_length=1, max_length=64, description="A request's id")]


class TransitionRequestBody(Body):
    stage: StageName | None = None
    alias: AliasName | None = None
    comment: Comment = ""
    archive_existing: bool = Field(
        default=False, description="When it applies, move the stage's other versions to Archived"
    )

    @model_validator(mode="after")
    def _one_target(self) -> TransitionRequestBody:
        if (self.stage is None) == (self.alias is None):
            raise ValueError("name exactly one target: stage or alias")
        return self


class RollbackBody(Body):
    stage: StageName | None = None
    alias: AliasName | None = None
    reason: Annotated[str, Field(min_length=1, max_length=10_000)] = Field(
        description="Why: recorded on the request, the move, the audit trail and the promotion"
    )
    to_version: VersionNumber | None = Field(
        default=None, description="An earlier holder to go back to (default: the previous one)"
    )

    @model_validator(mode="after")
    def _one_target_and_a_reason(self) -> RollbackBody:
        if (self.stage is None) == (self.alias is None):
            raise ValueError("name exactly one target to roll back: stage or alias")
        if not self.reason.strip():
            raise ValueError("say why in `reason`: a rollback is recorded with its reason")
        return self


class CommentBody(Body):
    comment: Comment = ""


_NO_COMMENT = CommentBody()


def request_view(
    model: ModelState, request: TransitionRequest, policies: PolicySet
) -> dict[str, Any]:
    """A request as JSON: pending, with what it still needs under the policy in force; applied,
    with what allowed it (the gates as they were then, under the policy version then)."""
    now = standing(request, model, policies) if request.state == "pending" else None
    allowed = request.authorization
    if allowed is not None:
        gates, policy_version = [c.model_dump() for c in allowed.gates], allowed.policy_version
    else:
        gates = [c.model_dump() for c in now.checks] if now is not None else []
        policy_version = policies.version
    return {
        **request_fields(request),
        "model": model.name,
        "missing": now.missing if now is not None else [],
        "gates": gates,
        "policy_version": policy_version,
        "stale_reasons": list(request.stale_reasons),
        "rollback": request.rollback.model_dump() if request.rollback is not None else None,
    }


async def _answer(
    registry: Registry, outcome: Outcome, request: TransitionRequest, status: int = 200
) -> JSON:
    policies = await registry.commands.policies.current()
    view = request_view(outcome.state, request, policies)
    return with_position(view, outcome.position, status)


@router.post(
    "/v1/models/{name}/versions/{version}/transition-requests",
    status_code=201,
    response_model=TransitionRequestOut,
    summary="Request a move to a stage or of an alias: applied at once if nothing is missing",
    responses=refusals(404, 409),
)
async def request_transition(
    name: NamePath,
    version: VersionPath,
    body: TransitionRequestBody,
    request: Request,
) -> JSON:
    command = RequestTransition(name=name, version=version, **dict(body))
    outcome = await handle(request, command)
    created = [e for e in outcome.events if e.type == TransitionRequested.__name__]
    if created:
        found = outcome.state.requests[str(created[0].payload["request_id"])]
    else:  # one was pending for this move already: it was looked at again
        found = latest_request(outcome.state, version, body.stage, body.alias)  # type: ignore[assignment]
        assert found is not None
    return await _answer(registry_of(request), outcome, found, 201 if created else 200)


@router.post(
    "/v1/models/{name}/rollback",
    status_code=201,
    response_model=TransitionRequestOut,
    summary="Roll a stage or alias back to its previous holder (or an earlier one named), as one"
    " governed transition: applied at once if nothing is missing",
    responses=refusals(404, 409),
)
async def request_rollback(name: NamePath, body: RollbackBody, request: Request) -> JSON:
    outcome = await handle(request, RequestRollback(name=name, **dict(body)))
    created = [e for e in outcome.events if e.type == TransitionRequested.__name__]
    if created:
        found = outcome.state.requests[str(created[0].payload["request_id"])]
    else:  # the same rollback was pending already: it was looked at again
        pending = [r for r in outcome.state.requests.values() if r.rollback is not None]
        found = next(r for r in reversed(pending) if (r.stage, r.alias) == (body.stage, body.alias))
    return await _answer(registry_of(request), outcome, found, 201 if created else 200)


_STREAM_OF_REQUEST = text(
    "SELECT stream_id FROM events"
    " WHERE type = 'TransitionRequested' AND (payload ->> 'request_id') = :request_id LIMIT 1"
)


async def _model_of_request(registry: Registry, request_id: str) -> ModelState:
    """The model (as of now) whose stream holds the request, read from the store itself."""
    async with registry.engine.connect() as conn:
        stream_id = (await conn.execute(_STREAM_OF_REQUEST, {"request_id": request_id})).scalar()
    loaded = await registry.commands.load_stream(stream_id) if stream_id is not None else None
    if loaded is None or loaded.state is None or request_id not in loaded.state.requests:
        raise NotFound(f"no transition request {request_id!r}")
    return loaded.state


@router.get(
    "/v1/transition-requests/{request_id}",
    response_model=TransitionRequestOut,
    summary="A request (strongly consistent)",
    responses=refusals(404),
)
async def get_request(request_id: RequestIdPath, request: Request) -> JSON:
    registry = registry_of(request)
    model = await _model_of_request(registry, request_id)
    policies = await registry.commands.policies.current()
    return JSON(request_view(model, model.requests[request_id], policies))


async def _decide(request: Request, request_id: str, body: CommentBody, kind: type) -> JSON:
    registry = registry_of(request)
    model = await _model_of_request(registry, request_id)
    outcome = await handle(request, kind(name=model.name, request_id=request_id, **dict(body)))
    return await _answer(registry, outcome, outcome.state.requests[request_id])


@router.post(
    "/v1/transition-requests/{request_id}/approve",
    response_model=TransitionRequestOut,
    summary="Approve: the last approval needed applies the move (if the gates pass)",
    responses=refusals(404, 409),
)
async def approve(
    request_id: RequestIdPath, request: Request, body: CommentBody = _NO_COMMENT
) -> JSON:
    return await _decide(request, request_id, body, ApproveTransition)


@router.post(
    "/v1/transition-requests/{request_id}/reject",
    response_model=TransitionRequestOut,
    summary="Reject (closes it)",
    responses=refusals(404, 409),
)
async def reject(
    request_id: RequestIdPath, request: Request, body: CommentBody = _NO_COMMENT
) -> JSON:
    return await _decide(request, request_id, body, RejectTransition)


@router.post(
    "/v1/transition-requests/{request_id}/cancel",
    response_model=TransitionRequestOut,
    summary="Cancel (the requester)",
    responses=refusals(404, 409),
)
async def cancel(
    request_id: RequestIdPath, request: Request, body: CommentBody = _NO_COMMENT
) -> JSON:
    return await _decide(request, request_id, body, CancelTransition)


@router.get(
    "/v1/approvals",
    response_model=RequestPage,
    summary="Transition requests, oldest first, e.g. ?state=pending",
    responses=refusals(503),
)
async def list_approvals(
    request: Request,
    state: Annotated[str | None, Query(pattern="^(pending|applied|rejected|cancelled)$")] = None,
    model: Annotated[str | None, Query(description="Only this model's requests")] = None,
    page_size: PageSize = 100,
    page_token: PageToken = None,
    min_position: MinPosition = None,
) -> JSON:
    registry = registry_of(request)
    wanted = dict(registry.unconfirmed_writes)
    written = None if min_position is None else await model_event_at(registry, min_position)
    if written is not None:
        wanted[written[0]] = max(written[1], wanted.get(written[0], 0))
    if not await wait_until_applied(registry.engine, wanted, registry.query_wait_seconds):
        raise HTTPException(503, "the approvals projection has not caught up yet; retry shortly")
    async with registry.engine.connect() as conn:
        requests, token = await list_requests(
            conn, state=state, model=model, page_size=page_size, page_token=page_token
        )
    return JSON({"requests": requests, "next_page_token": token})


def _policy_view(stream: PolicyStream) -> dict[str, Any]:
    return {
        "version": stream.policies.version,
        **stream.policies.document().model_dump(mode="json"),
    }


@router.get(
    "/v1/policies",
    response_model=PolicyOut,
    summary="The promotion policy in force (version 0: none)",
)
async def get_policies(request: Request) -> JSON:
    return JSON(_policy_view(await registry_of(request).commands.policies.load()))


@router.put(
    "/v1/policies",
    response_model=PolicyOut,
    summary="Apply a promotion policy (admins only); it replaces the one in force",
    responses=refusals(409),
)
async def put_policies(body: PolicyDocument, request: Request) -> JSON:
    meta = command_meta(request)
    stream, changed = await registry_of(request).commands.policies.apply(
        body, actor=meta.actor, role=meta.role, command_id=meta.command_id
    )
    return with_position({**_policy_view(stream), "changed": changed}, stream.position)
