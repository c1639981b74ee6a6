"""/v1/models/{name}/versions and /v1/versions: register, read, describe, tag, record metrics,
move between stages and delete versions; list and search them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from registrar.api.context import handle, registry_of
from registrar.api.model_routes import NamePath
from registrar.api.openapi_document import refusals
from registrar.api.queries import (
    MinPosition,
    PageSize,
    PageToken,
    TagFilters,
    parse_tag_filters,
    wait_for_projection,
)
from registrar.api.responses import JSON, with_position
from registrar.commands.command_handler import Outcome
from registrar.contracts.api import (
    CreateVersion,
    Deleted,
    StageBody,
    TagValueBody,
    UpdateVersion,
    VersionOut,
    VersionPage,
)
from registrar.contracts.commands import (
    DeleteVersion,
    DeleteVersionTag,
    RecordMetrics,
    RegisterVersion,
    SetVersionTag,
    TransitionStage,
    UpdateModelCard,
    UpdateVersionDescription,
)
from registrar.contracts.model_card import ModelCardPatch
from registrar.contracts.values import StageName
from registrar.domain.errors import VersionNotFound
from registrar.projections.current_state import list_versions, version_view
from registrar.registry import Registry

router = APIRouter(tags=["versions"])

VersionPath = Annotated[int, Path(ge=1, le=2**31 - 1, description="The version number")]


def _version_answer(outcome: Outcome, number: int, status: int = 200) -> JSON:
    state = outcome.state
    return with_position(version_view(state, state.versions[number]), outcome.position, status)


@router.post(
    "/v1/models/{name}/versions",
    status_code=201,
    response_model=VersionOut,
    summary="Register a new version (numbers are gapless and never reused)",
    responses=refusals(404, 409),
)
async def register_version(name: NamePath, body: CreateVersion, request: Request) -> JSON:
    command = RegisterVersion(name=name, **dict(body))
    outcome = await handle(request, command)
    number = int(outcome.events[-1].payload["version"]) if outcome.events else 0
    return _version_answer(outcome, number, 201)


@router.get(
    "/v1/models/{name}/versions/{version}",
    response_model=VersionOut,
    summary="Get a version (strongly consistent)",
    responses=refusals(404),
)
async def get_version(name: NamePath, version: VersionPath, request: Request) -> JSON:
    registry = registry_of(request)
    state = await registry.live_model(name)
    found = state.versions.get(version)
    if found is None:
        raise VersionNotFound(f"model {name!r} has no version {version}", name, version)
    if found.deleted:
        raise VersionNotFound(f"version {version} of model {name!r} was deleted", name, version)
    return JSON(version_view(state, found))


@router.patch(
    "/v1/models/{name}/versions/{version}",
    response_model=VersionOut,
    summary="Update the description and/or record metrics",
    responses=refusals(404, 409),
)
async def update_version(
    name: NamePath, version: VersionPath, body: UpdateVersion, request: Request
) -> JSON:
    outcome = None
    if body.description is not None:
        command = UpdateVersionDescription(name=name, version=version, description=body.description)
        outcome = await handle(request, command)
    if body.metrics:
        record = RecordMetrics(name=name, version=version, metrics=body.metrics)
        outcome = await handle(request, record, part=1)
    if outcome is None:
        return await get_version(name, version, request)
    return _version_answer(outcome, version)


@router.patch(
    "/v1/models/{name}/versions/{version}/card",
    response_model=VersionOut,
    summary='Set model-card fields (those left out stay; "" clears one)',
    responses=refusals(404, 409),
)
async def update_model_card(
    name: NamePath, version: VersionPath, body: ModelCardPatch, request: Request
) -> JSON:
    command = UpdateModelCard(name=name, version=version, card=body)
    return _version_answer(await handle(request, command), version)


@router.delete(
    "/v1/models/{name}/versions/{version}",
    response_model=Deleted,
    summary="Delete a version (its number is never reused; its aliases are released)",
    responses=refusals(404, 409),
)
async def delete_version(name: NamePath, version: VersionPath, request: Request) -> JSON:
    outcome = await handle(request, DeleteVersion(name=name, version=version))
    return with_position({"deleted": True}, outcome.position)


@router.put(
    "/v1/models/{name}/versions/{version}/tags/{key}",
    response_model=VersionOut,
    responses=refusals(404, 409),
)
async def set_version_tag(
    name: NamePath,
    version: VersionPath,
    key: str,
    body: TagValueBody,
    request: Request,
) -> JSON:
    command = SetVersionTag(name=name, version=version, key=key, value=body.value)
    return _version_answer(await handle(request, command), version)


@router.delete(
    "/v1/models/{name}/versions/{version}/tags/{key}",
    response_model=VersionOut,
    responses=refusals(404, 409),
)
async def delete_version_tag(
    name: NamePath, version: VersionPath, key: str, request: Request
) -> JSON:
    command = DeleteVersionTag(name=name, version=version, key=key)
    return _version_answer(await handle(request, command), version)


@router.post(
    "/v1/models/{name}/versions/{version}/stage",
    response_model=VersionOut,
    summary="Move a version to a stage, optionally archiving the stage's other versions",
    responses=refusals(404, 409),
)
async def transition_stage(
    name: NamePath, version: VersionPath, body: StageBody, request: Request
) -> JSON:
    command = TransitionStage(
        name=name,
        version=version,
        stage=body.stage,
        archive_existing=body.archive_existing,
    )
    return _version_answer(await handle(request, command), version)


async def _search(
    registry: Registry,
    *,
    model: str | None,
    stage: StageName | None,
    alias: str | None,
    run_id: str | None,
    tag: list[str] | None,
    include_deleted: bool,
    page_size: int,
    page_token: str | None,
    min_position: int | None,
) -> JSON:
    tags = parse_tag_filters(tag)
    await wait_for_projection(registry, min_position)
    async with registry.engine.connect() as conn:
        versions, token = await list_versions(
            conn,
            model=model,
            stage=stage.value if stage is not None else None,
            alias=alias,
            run_id=run_id,
            tags=tags,
            include_deleted=include_deleted,
            page_size=page_size,
            page_token=page_token,
        )
    return JSON({"versions": versions, "next_page_token": token})


@router.get(
    "/v1/models/{name}/versions",
    response_model=VersionPage,
    summary="List a model's versions",
    responses=refusals(404, 503),
)
async def list_model_versions(
    name: NamePath,
    request: Request,
    stage: StageName | None = None,
    alias: str | None = None,
    run_id: str | None = None,
    tag: TagFilters = None,
    include_deleted: bool = False,
    page_size: PageSize = 100,
    page_token: PageToken = None,
    min_position: MinPosition = None,
) -> JSON:
    registry = registry_of(request)
    await registry.live_model(name)  # 404 for an unknown, renamed or deleted model
    return await _search(
        registry,
        model=name,
        stage=stage,
        alias=alias,
        run_id=run_id,
        tag=tag,
        include_deleted=include_deleted,
        page_size=page_size,
        page_token=page_token,
        min_position=min_position,
    )


@router.get(
    "/v1/versions",
    response_model=VersionPage,
    summary="Search versions across models",
    responses=refusals(503),
)
async def search_versions(
    request: Request,
    model: Annotated[str | None, Query(description="Only this model's versions")] = None,
    stage: StageName | None = None,
    alias: str | None = None,
    run_id: str | None = None,
    tag: TagFilters = None,
    include_deleted: bool = False,
    page_size: PageSize = 100,
    page_token: PageToken = None,
    min_position: MinPosition = None,
) -> JSON:
    registry = registry_of(request)
    return await _search(
        registry,
        model=model,
        stage=stage,
        alias=alias,
        run_id=run_id,
        tag=tag,
        include_deleted=include_deleted,
        page_size=page_size,
        page_token=page_token,
        min_position=min_position,
    )
