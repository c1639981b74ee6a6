"""Point-in-time history: a model's stages and aliases at any past instant, every model's holder
of a stage at that instant, and a version's timeline. Models are found by any name they ever
had, so a renamed model's history reads under its current name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.api.context import registry_of
from registrar.api.openapi_document import refusals
from registrar.api.queries import MinPosition
from registrar.api.read_model_wait import wait_for_read_model
from registrar.api.responses import JSON
from registrar.contracts.api_answers import AliasesAt, StageHolder, StagesAt, Timeline
from registrar.contracts.values import StageName
from registrar.domain.errors import NotFound
from registrar.projections.stage_history import (
    APPLIED,
    NAME,
    aliases_at,
    history_model,
    parse_instant,
    stage_holders_at,
    stages_at,
    version_timeline,
)
from registrar.registry import Registry

router = APIRouter(tags=["history"])

AsOf = Annotated[
    str | None,
    Query(description="RFC 3339 instant, e.g. 2026-03-03T14:00:00Z (default: now)"),
]
ModelName = Annotated[str, Path(description="The model's current name, or any former one")]


def instant(as_of: str | None) -> datetime:
    if as_of is None:
        return datetime.now(UTC)
    try:
        return parse_instant(as_of)
    except ValueError as exc:
        raise HTTPException(422, f"as_of: {exc}") from None


async def _prepared(
    request: Request, name: str, min_position: int | None, at: datetime | None = None
) -> tuple[Registry, str]:
    """The registry and the model `name` means (at `at`: the model that held the name then)."""
    registry = registry_of(request)
    stream_id = await registry.store.resolve_name(name, at)
    if stream_id is None:
        raise NotFound(f"no model was ever named {name!r}")
    await wait_for_read_model(registry, NAME, min_position, APPLIED)
    return registry, stream_id


async def _as_of(
    request: Request,
    name: str,
    as_of: str | None,
    min_position: int | None,
    read: Callable[[AsyncConnection, str, datetime], Awaitable[Any]],
) -> JSON:
    """`read` of the model that held `name` at `as_of`, at that instant."""
    at = instant(as_of)
    registry, stream_id = await _prepared(request, name, min_position, at)
    async with registry.engine.connect() as conn:
        return JSON(await read(conn, stream_id, at))


@router.get(
    "/v1/models/{name}/stages",
    response_model=StagesAt,
    summary='A model\'s versions in each stage at `as_of`: {"Production": ["3"], ...}',
    responses=refusals(404, 503),
)
async def model_stages(
    request: Request, name: ModelName, as_of: AsOf = None, min_position: MinPosition = None
) -> JSON:
    return await _as_of(request, name, as_of, min_position, stages_at)


@router.get(
    "/v1/models/{name}/aliases",
    response_model=AliasesAt,
    summary='A model\'s aliases at `as_of` and the version each named: {"champion": "3"}',
    responses=refusals(404, 503),
)
async def model_aliases(
    request: Request, name: ModelName, as_of: AsOf = None, min_position: MinPosition = None
) -> JSON:
    return await _as_of(request, name, as_of, min_position, aliases_at)


@router.get(
    "/v1/models/{name}/versions/{version}/timeline",
    response_model=Timeline,
    summary="A version's stages and aliases over time, each with its validity interval",
    responses=refusals(404, 503),
)
async def timeline(
    request: Request,
    name: ModelName,
    version: Annotated[int, Path(ge=1)],
    min_position: MinPosition = None,
) -> JSON:
    registry, stream_id = await _prepared(request, name, min_position)
    async with registry.engine.connect() as conn:
        entries = await version_timeline(conn, stream_id, version)
        model = await history_model(conn, stream_id)
    if entries is None or model is None:
        raise NotFound(f"model {name!r} has no version {version}")
    return JSON({"model": model["name"], "version": str(version), "timeline": entries})


@router.get(
    "/v1/stages/{stage}",
    response_model=list[StageHolder],
    summary="Every model's versions in `stage` at `as_of`, with the time each entered it",
    responses=refusals(503),
)
async def stage_holders(
    request: Request,
    stage: Annotated[StageName, Path(description="None, Staging, Production or Archived")],
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> JSON:
    at = instant(as_of)
    registry = registry_of(request)
    await wait_for_read_model(registry, NAME, min_position, APPLIED)
    async with registry.engine.connect() as conn:
        return JSON(await stage_holders_at(conn, stage, at))
