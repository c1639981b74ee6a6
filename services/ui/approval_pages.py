"""The approvals inbox (/ui/approvals): pending transition requests, each with what its policy
needs (approvals so far, every gate with the value it reads now, the scope), the ones the
signed-in user may decide first, with Approve and Reject; and recently decided requests with
their evidence. The buttons follow the permission table and the policy's approver role, but the
decision goes through the API's own approve / reject handlers (the same command handler, decider
and access control), which refuse whatever the buttons would not have offered."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import ValidationError
from starlette.responses import Response

from registrar.access.permissions import requirement, verdict
from registrar.access.principal import Principal
from registrar.api import approval_routes
from registrar.api.context import registry_of
from registrar.domain.approvals import policy_for, standing
from registrar.domain.errors import DomainError, ModelNotFound
from registrar.domain.policies import PolicySet
from registrar.domain.state import ModelState
from registrar.domain.transition_requests import TransitionRequest
from registrar.projections.approvals import wait_until_applied
from registrar.projections.registry_overview import decided_requests, pending_moves
from registrar.registry import Registry
from registrar.ui.forms import checked_form
from registrar.ui.rendering import UiRoute, page, segment, status_of, viewer_principal

router = APIRouter(route_class=UiRoute, include_in_schema=False)

RequestId = Annotated[str, Path(min_length=1, max_length=64)]
DECIDED_SHOWN = 25


def _target(request: TransitionRequest) -> str:
    return request.stage.value if request.stage is not None else f"@{request.alias}"


def _permissions(
    principal: Principal, request: TransitionRequest, model: ModelState, policies: PolicySet
) -> tuple[bool, bool, str]:
    """(may approve, may reject, why not) for `principal`: the permission table's verdict on the
    form's path, then the policy's approver role and its rule on self-approval. A hint for the
    buttons only: the decider decides."""
    path = f"/ui/approvals/{request.request_id}/approve"
    need = requirement("POST", path)
    if need is not None:
        allowed = verdict(principal.user, principal.role, need)
        if not allowed.allowed:
            return False, False, allowed.reason
    now = standing(request, model, policies)
    if not principal.role.includes(now.approver_role):
        return (
            False,
            False,
            f"deciding needs the {now.approver_role.value} role; you hold {principal.role.value}",
        )
    if principal.user == request.requested_by:
        rule = policy_for(policies, model, request.stage, request.alias, bool(request.rollback))
        self_approval = rule is not None and rule.rule.allow_self_approval
        why = "you requested it: the policy needs approvals from other people"
        return self_approval, False, "" if self_approval else why
    if any(a.by == principal.user for a in request.approvals):
        return False, True, "you have approved it already"
    return True, True, ""


def request_card(
    model: ModelState, request: TransitionRequest, policies: PolicySet, principal: Principal
) -> dict[str, Any]:
    """A request as the inbox shows it: the API's view of it (approval_routes.request_view),
    what the policy needs, and what the signed-in user may do."""
    view = approval_routes.request_view(model, request, policies)
    card: dict[str, Any] = {**view, "target": _target(request), "request": request}
    if request.state == "pending":
        now = standing(request, model, policies)
        may_approve, may_reject, why_not = _permissions(principal, request, model, policies)
        card.update(
            required=now.required,
            approver_role=now.approver_role.value,
            scope=now.scope,
            counted=len(now.counted),
            may_approve=may_approve,
            may_reject=may_reject,
            why_not=why_not,
        )
    else:
        allowed = request.authorization
        card.update(
            required=allowed.approvals_required if allowed else None,
            approver_role=allowed.approver_role.value if allowed else None,
            scope=allowed.scope if allowed else None,
            counted=len(allowed.approvals) if allowed else len(request.approvals),
            evidence=allowed,
        )
    return card


async def _models(registry: Registry, names: set[str]) -> dict[str, ModelState]:
    found = {}
    for name in sorted(names):
        try:
            found[name] = await registry.live_model(name)
        except ModelNotFound:  # renamed or deleted since: its requests went with it
            continue
    return found


async def inbox(
    request: Request, decided: str | None = None, problem: str = "", status: int = 200
) -> Response:
    registry = registry_of(request)
    await wait_until_applied(
        registry.engine, dict(registry.unconfirmed_writes), registry.query_wait_seconds
    )
    async with registry.engine.connect() as conn:
        pending_rows = await pending_moves(conn)
        decided_rows = await decided_requests(conn, DECIDED_SHOWN)
    models = await _models(registry, {r["model"] for r in [*pending_rows, *decided_rows]})
    policies = await registry.commands.policies.current()
    principal = viewer_principal(request)

    def cards(rows: list[dict[str, Any]], state: str | None) -> list[dict[str, Any]]:
        made = []
        for row in rows:
            model = models.get(row["model"])
            found = model.requests.get(row["request_id"]) if model is not None else None
            if model is None or found is None or (state and found.state != state):
                continue  # the projection is behind the stream: the next look shows it
            made.append(request_card(model, found, policies, principal))
        return made

    pending = cards(pending_rows, "pending")
    notice = None
    if decided:
        notice = next(
            (c for c in [*pending, *cards(decided_rows, None)] if c["request_id"] == decided),
            None,
        )
    context = {
        "section": "approvals",
        "yours": [c for c in pending if c["may_approve"] or c["may_reject"]],
        "others": [c for c in pending if not (c["may_approve"] or c["may_reject"])],
        "decided": cards(decided_rows, None),
        "notice": notice,
        "problem": problem,
    }
    return page(request, "approvals.html", context, status)


@router.get("/ui/approvals")
async def approvals(
    request: Request, decided: Annotated[str | None, Query(max_length=64)] = None
) -> Response:
    return await inbox(request, decided)


async def _decide(request: Request, request_id: str, decide: Any) -> Response:
    fields = await checked_form(request)
    try:
        body = approval_routes.CommentBody(comment=fields.get("comment", "").strip())
    except ValidationError as invalid:
        raise HTTPException(422, f"comment: {invalid.errors()[0]['msg']}") from None
    try:
        await decide(request_id, request, body)
    except DomainError as refused:
        return await inbox(request, problem=refused.message, status=status_of(refused))
    shown = segment(request_id)
    return RedirectResponse(f"/ui/approvals?decided={shown}#request-{shown}", status_code=303)


@router.post("/ui/approvals/{request_id}/approve")
async def approve(request: Request, request_id: RequestId) -> Response:
    return await _decide(request, request_id, approval_routes.approve)


@router.post("/ui/approvals/{request_id}/reject")
async def reject(request: Request, request_id: RequestId) -> Response:
    return await _decide(request, request_id, approval_routes.reject)
