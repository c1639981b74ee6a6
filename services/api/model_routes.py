"""/v1/models: register, read, update, rename, tag and delete models; their aliases; the list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from registrar.api.context import handle, registry_of
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
    AliasBody,
    CreateModel,
    Deleted,
    ModelOut,
    ModelPage,
    TagValueBody,
    UpdateModel,
    VersionOut,
)
from registrar.contracts.commands import (
    DeleteAlias,
    DeleteModel,
    DeleteModelTag,
    RegisterModel,
    RenameModel,
    SetAlias,
    SetModelTag,
    UpdateModelDescription,
)
from registrar.domain.errors import NotFound
from registrar.projections.current_state import list_models, model_view, version_view

router = APIRouter(prefix="/v1/models", tags=["models"])

NamePath = Annotated[str, Path(description="The model's current name")]
AliasPath = Annotated[str, Path(description="An alias such as champion")]


def _model_answer(outcome: Outcome, status: int = 200) -> JSON:
    return with_position(model_view(outcome.state), outcome.position, status)


@router.post(
    "",
    status_code=201,
    response_model=ModelOut,
    summary="Register a model",
    responses=refusals(409),
)
async def register_model(body: CreateModel, request: Request) -> JSON:
    command = RegisterModel(name=body.name, description=body.description, tags=body.tags)
    return _model_answer(await handle(request, command), 201)


@router.get("", response_model=ModelPage, summary="List and search models", responses=refusals(503))
async def search_models(
    request: Request,
    name: Annotated[str | None, Query(description="Name glob: * and ? are wildcards")] = None,
    tag: TagFilters = None,
    include_deleted: bool = False,
    page_size: PageSize = 100,
    page_token: PageToken = None,
    min_position: MinPosition = None,
) -> JSON:
    registry = registry_of(request)
    tags = parse_tag_filters(tag)
    await wait_for_projection(registry, min_position)
    async with registry.engine.connect() as conn:
        models, token = await list_models(
            conn,
            name=name,
            tags=tags,
            include_deleted=include_deleted,
            page_size=page_size,
            page_token=page_token,
        )
    return JSON({"models": models, "next_page_token": token})


@router.get(
    "/{name}",
    response_model=ModelOut,
    summary="Get a model (strongly consistent)",
    responses=refusals(404),
)
async def get_model(name: NamePath, request: Request) -> JSON:
    registry = registry_of(request)
    return JSON(model_view(await registry.live_model(name)))


@router.patch(
    "/{name}",
    response_model=ModelOut,
    summary="Update the description and/or rename",
    responses=refusals(404, 409),
)
async def update_model(name: NamePath, body: UpdateModel, request: Request) -> JSON:
    registry = registry_of(request)
    outcome = None
    if body.description is not None:
        command = UpdateModelDescription(name=name, description=body.description)
        outcome = await handle(request, command)
    if body.name is not None:
        outcome = await handle(request, RenameModel(name=name, new_name=body.name), part=1)
    if outcome is None:
        return JSON(model_view(await registry.live_model(name)))
    return _model_answer(outcome)


@router.delete(
    "/{name}",
    response_model=Deleted,
    summary="Delete a model (its name is released: a new model may take it)",
    responses=refusals(404, 409),
)
async def delete_model(name: NamePath, request: Request) -> JSON:
    outcome = await handle(request, DeleteModel(name=name))
    return with_position({"deleted": True}, outcome.position)


@router.put(
    "/{name}/tags/{key}",
    response_model=ModelOut,
    summary="Set a model tag",
    responses=refusals(404, 409),
)
async def set_model_tag(name: NamePath, key: str, body: TagValueBody, request: Request) -> JSON:
    command = SetModelTag(name=name, key=key, value=body.value)
    return _model_answer(await handle(request, command))


@router.delete(
    "/{name}/tags/{key}",
    response_model=ModelOut,
    summary="Delete a model tag",
    responses=refusals(404, 409),
)
async def delete_model_tag(name: NamePath, key: str, request: Request) -> JSON:
    return _model_answer(await handle(request, DeleteModelTag(name=name, key=key)))


@router.get(
    "/{name}/aliases/{alias}",
    response_model=VersionOut,
    summary="The version an alias names",
    responses=refusals(404),
)
async def get_alias(name: NamePath, alias: AliasPath, request: Request) -> JSON:
    registry = registry_of(request)
    state = await registry.live_model(name)
    number = state.latest_live_version() if alias == "latest" else state.aliases.get(alias)
    version = state.live_version(number) if number else None
    if version is None:
        raise NotFound(f"model {name!r} has no alias {alias!r}")
    return JSON(version_view(state, version))


@router.put(
    "/{name}/aliases/{alias}",
    response_model=VersionOut,
    summary="Point an alias at a version",
    responses=refusals(404, 409),
)
async def set_alias(name: NamePath, alias: AliasPath, body: AliasBody, request: Request) -> JSON:
    command = SetAlias(name=name, alias=alias, version=body.version)
    outcome = await handle(request, command)
    version = outcome.state.versions[body.version]
    return with_position(version_view(outcome.state, version), outcome.position)


@router.delete(
    "/{name}/aliases/{alias}",
    response_model=Deleted,
    summary="Remove an alias",
    responses=refusals(404, 409),
)
async def delete_alias(name: NamePath, alias: AliasPath, request: Request) -> JSON:
    outcome = await handle(request, DeleteAlias(name=name, alias=alias))
    return with_position({"deleted": True}, outcome.position)
