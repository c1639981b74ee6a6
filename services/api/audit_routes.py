"""/v1/audit: the audit trail — every event and refused attempt, filtered and paged by position —
and its export as JSONL or CSV, streamed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse

from registrar.api.context import registry_of
from registrar.api.openapi_document import refusals
from registrar.api.queries import MinPosition, PageSize, PageToken
from registrar.api.read_model_wait import wait_for_read_model
from registrar.api.responses import JSON
from registrar.contracts.api_answers import AuditPage
from registrar.projections.audit_trail import (
    APPLIED,
    EXPORT_FORMATS,
    NAME,
    AuditFilter,
    audit_page,
    exported,
    resolved,
)
from registrar.projections.stage_history import parse_instant
from registrar.registry import Registry

router = APIRouter(tags=["audit"])

Actor = Annotated[str | None, Query(description="Only this actor's events and refusals")]
Model = Annotated[
    str | None,
    Query(description="Only this model's events: found under its current and former names"),
]
Version = Annotated[int | None, Query(ge=1, description="Only events about this version")]
Action = Annotated[
    list[str] | None,
    Query(description="Only these event types (e.g. StageChanged, AccessRefused); repeat for more"),
]
Since = Annotated[str | None, Query(description="RFC 3339: events recorded at or after it")]
Until = Annotated[str | None, Query(description="RFC 3339: events recorded before it")]
ExportFormat = Literal["jsonl", "csv"]
EXPORTED: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            EXPORT_FORMATS[kind].split(";")[0]: {"schema": {"type": "string"}}
            for kind in ("jsonl", "csv")
        },
    }
}
"""The export's answer in /openapi.json: text, not one JSON document."""


def audit_filter(
    actor: str | None,
    model: str | None,
    version: int | None,
    action: list[str] | None,
    since: str | None,
    until: str | None,
) -> AuditFilter:
    """The filter of a request, or 422 saying which parameter is wrong."""
    times = {}
    for name, value in (("since", since), ("until", until)):
        if value is not None:
            try:
                times[name] = parse_instant(value)
            except ValueError as exc:
                raise HTTPException(422, f"{name}: {exc}") from None
    try:
        return AuditFilter(
            actor=actor,
            model=model,
            version=version,
            actions=tuple(action or ()),
            since=times.get("since"),
            until=times.get("until"),
        )
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def _export(
    registry: Registry, chosen: AuditFilter, export_format: ExportFormat
) -> StreamingResponse:
    return StreamingResponse(
        exported(registry.engine, chosen, export_format),
        media_type=EXPORT_FORMATS[export_format],
        headers={"Content-Disposition": f'attachment; filename="audit.{export_format}"'},
    )


@router.get(
    "/v1/audit",
    response_model=AuditPage,
    summary="The audit trail: one row per event and refused attempt, in position order",
    response_description="One page; with format=jsonl or csv, every matching row as text",
    responses={**EXPORTED, **refusals(503)},
)
async def audit(
    request: Request,
    actor: Actor = None,
    model: Model = None,
    version: Version = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
    export_format: Annotated[
        Literal["json", "jsonl", "csv"],
        Query(alias="format", description="json: one page; jsonl or csv: every row, streamed"),
    ] = "json",
    page_size: PageSize = 100,
    page_token: PageToken = None,
    min_position: MinPosition = None,
) -> Response:
    registry = registry_of(request)
    chosen = audit_filter(actor, model, version, action, since, until)
    await wait_for_read_model(registry, NAME, min_position, APPLIED)
    chosen = await resolved(chosen, registry.store)
    if export_format != "json":
        return _export(registry, chosen, export_format)
    async with registry.engine.connect() as conn:
        rows, token = await audit_page(conn, chosen, page_size, page_token)
    return JSON({"events": rows, "next_page_token": token})


@router.get(
    "/v1/audit/export",
    response_class=StreamingResponse,  # not JSON: no application/json answer documented
    response_description="Every matching row, streamed: JSONL (an AuditRow a line) or CSV",
    summary="Every matching audit row as JSONL (default) or CSV, streamed",
    responses={**EXPORTED, **refusals(503)},
)
async def audit_export(
    request: Request,
    actor: Actor = None,
    model: Model = None,
    version: Version = None,
    action: Action = None,
    since: Since = None,
    until: Until = None,
    export_format: Annotated[ExportFormat, Query(alias="format")] = "jsonl",
    min_position: MinPosition = None,
) -> StreamingResponse:
    registry = registry_of(request)
    chosen = audit_filter(actor, model, version, action, since, until)
    await wait_for_read_model(registry, NAME, min_position, APPLIED)
    return _export(registry, await resolved(chosen, registry.store), export_format)
