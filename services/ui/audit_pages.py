"""The audit timeline (/ui/audit): every event and refused attempt, filtered by model, actor,
event type and time range, paged, with its export as CSV or JSONL (the API's own export, through
the UI so a signed-in browser can download it) and the hash chains' verification status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from starlette.responses import Response

from registrar.api import audit_routes
from registrar.api.context import registry_of
from registrar.contracts.events import ACCESS_EVENT_TYPES, EVENT_TYPES
from registrar.projections.audit_trail import AuditFilter, audit_page, resolved
from registrar.store.chain_verification import Verification, verify_chains
from registrar.ui.rendering import UiRoute, page
from registrar.ui.time_travel import optional_instant

router = APIRouter(route_class=UiRoute, include_in_schema=False)

PAGE_SIZE = 50
KNOWN_TYPES = sorted({*EVENT_TYPES, *ACCESS_EVENT_TYPES, "PolicyApplied", "RunRecorded"})
"""Offered in the event-type field (any other type can be typed in)."""
Text = Annotated[str, Query(max_length=256)]


@dataclass(frozen=True, slots=True)
class ChainStatus:
    """The last verification of every stream's hash chain in this process, and when it ran."""

    report: Verification
    at: datetime


def _filter(model: str, actor: str, action: str, since: str, until: str) -> AuditFilter:
    try:
        return AuditFilter(
            model=model.strip() or None,
            actor=actor.strip() or None,
            actions=(action.strip(),) if action.strip() else (),
            since=optional_instant(since, "since"),
            until=optional_instant(until, "until"),
        )
    except ValueError as wrong:
        raise HTTPException(422, str(wrong)) from None


def _rfc3339(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


@router.get("/ui/audit")
async def audit(
    request: Request,
    model: Text = "",
    actor: Text = "",
    action: Text = "",
    since: Text = "",
    until: Text = "",
    page_token: Annotated[str | None, Query(max_length=2000)] = None,
    verify: bool = False,
) -> Response:
    registry = registry_of(request)
    chosen = _filter(model, actor, action, since, until)
    if verify:
        report = await verify_chains(registry.store)
        request.app.state.ui_chain_status = ChainStatus(report, datetime.now(UTC))
    async with registry.engine.connect() as conn:
        rows, token = await audit_page(
            conn, await resolved(chosen, registry.store), PAGE_SIZE, page_token
        )
    filters = {"model": model, "actor": actor, "action": action, "since": since, "until": until}
    context = {
        "section": "audit",
        "rows": rows,
        "filters": filters,
        "next_token": token,
        "first_page": page_token is None,
        "known_types": KNOWN_TYPES,
        "chains": getattr(request.app.state, "ui_chain_status", None),
    }
    return page(request, "audit.html", context)


@router.get("/ui/audit/export")
async def export(
    request: Request,
    export_format: Annotated[Literal["csv", "jsonl"], Query(alias="format")] = "csv",
    model: Text = "",
    actor: Text = "",
    action: Text = "",
    since: Text = "",
    until: Text = "",
) -> StreamingResponse:
    """Every matching row, streamed by the API's own export (GET /v1/audit/export)."""
    chosen = _filter(model, actor, action, since, until)
    return await audit_routes.audit_export(
        request,
        actor=chosen.actor,
        model=chosen.model,
        version=None,
        action=list(chosen.actions) or None,
        since=_rfc3339(chosen.since),
        until=_rfc3339(chosen.until),
        export_format=export_format,
        min_position=None,
    )
