"""/v1/deployments: a deployer reports a version's status in an environment (recorded on the
model's stream, once per report id); what runs where, a model's and a version's deployments, and
drift against the stage or alias each environment follows, at any instant, from the deployments
read model (drift also reads the stage history's)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from registrar.api.context import command_meta, registry_of
from registrar.api.history_routes import AsOf, instant
from registrar.api.history_routes import ModelName as AnyName
from registrar.api.openapi_document import refusals
from registrar.api.queries import MinPosition
from registrar.api.read_model_wait import wait_for_read_model
from registrar.api.responses import JSON
from registrar.commands.deployment_reports import record_report, report_answer
from registrar.contracts.deployments import (
    DeploymentList,
    DeploymentReport,
    DriftReport,
    EnvironmentName,
    ReportOut,
)
from registrar.domain.errors import NotFound, VersionNotFound
from registrar.projections import stage_history
from registrar.projections.deployments import APPLIED, NAME, deployments_at, drift
from registrar.registry import Registry

router = APIRouter(tags=["deployments"])

Environment = Annotated[
    EnvironmentName | None, Query(description="Only this environment (default: every one)")
]
Model = Annotated[
    str | None,
    Query(min_length=1, max_length=256, description="Only this model (its name then or now)"),
]


async def _stream_of(registry: Registry, name: str, at: datetime) -> str:
    stream_id = await registry.store.resolve_name(name, at)
    if stream_id is None:
        raise NotFound(f"no model was ever named {name!r}")
    return stream_id


@router.post(
    "/v1/deployments",
    status_code=201,
    response_model=ReportOut,
    summary="Report a version's status in an environment (once per report_id)",
    responses={
        **refusals(403, 404, 409),
        200: {"model": ReportOut, "description": "It repeated the status known: nothing new"},
    },
)
async def report_deployment(body: DeploymentReport, request: Request) -> JSON:
    meta = command_meta(request)
    outcome = await record_report(
        registry_of(request).commands, body, meta.actor, meta.role, meta.correlation_id
    )
    answer = report_answer(outcome, body)
    status = 201 if answer["recorded"] else 200
    headers = {"X-Registrar-Position": str(outcome.position)}
    return JSON(answer, status_code=status, headers=headers)


@router.get(
    "/v1/deployments",
    response_model=DeploymentList,
    summary="What runs where at `as_of`: each version's status in each environment",
    responses=refusals(404, 503),
)
async def deployments(
    request: Request,
    environment: Environment = None,
    model: Model = None,
    include_retired: Annotated[bool, Query(description="Also versions retired there")] = False,
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> JSON:
    return await _deployments(request, model, environment, include_retired, as_of, min_position)


@router.get(
    "/v1/deployments/drift",
    response_model=DriftReport,
    summary="Environments not serving the version their stage or alias names, and for how long",
    responses=refusals(404, 503),
)
async def deployment_drift(
    request: Request,
    environment: Environment = None,
    model: Model = None,
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> JSON:
    at = instant(as_of)
    registry = registry_of(request)
    environments = (await registry.commands.policies.as_of(at)).source.environments
    if environment is not None and environment not in environments:
        declared = ", ".join(sorted(environments)) or "none"
        raise NotFound(
            f"no environment {environment!r} was declared in the governance document then"
            f" (declared: {declared})"
        )
    stream_id = await _stream_of(registry, model, at) if model is not None else None
    await wait_for_read_model(registry, NAME, min_position, APPLIED)
    await wait_for_read_model(registry, stage_history.NAME, min_position, stage_history.APPLIED)
    async with registry.engine.connect() as conn:
        found = await drift(conn, environments, at, environment=environment, stream_id=stream_id)
    return JSON({"as_of": at, "drift": found})


@router.get(
    "/v1/models/{name}/deployments",
    response_model=DeploymentList,
    summary="A model's versions in each environment at `as_of`",
    responses=refusals(404, 503),
)
async def model_deployments(
    request: Request,
    name: AnyName,
    environment: Environment = None,
    include_retired: Annotated[bool, Query(description="Also versions retired there")] = False,
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> JSON:
    return await _deployments(request, name, environment, include_retired, as_of, min_position)


async def _deployments(
    request: Request,
    model: str | None,
    environment: str | None,
    include_retired: bool,
    as_of: str | None,
    min_position: int | None,
) -> JSON:
    """What ran where at `as_of`: every model's deployments, or `model`'s."""
    at = instant(as_of)
    registry = registry_of(request)
    stream_id = await _stream_of(registry, model, at) if model is not None else None
    await wait_for_read_model(registry, NAME, min_position, APPLIED)
    async with registry.engine.connect() as conn:
        found = await deployments_at(
            conn, at, environment=environment, stream_id=stream_id, retired=include_retired
        )
    return JSON({"as_of": at, "deployments": found})


@router.get(
    "/v1/models/{name}/versions/{version}/deployments",
    response_model=DeploymentList,
    summary="A version's status in every environment it was reported in, at `as_of`",
    responses=refusals(404, 503),
)
async def version_deployments(
    request: Request,
    name: AnyName,
    version: Annotated[int, Path(ge=1)],
    as_of: AsOf = None,
    min_position: MinPosition = None,
) -> JSON:
    at = instant(as_of)
    registry = registry_of(request)
    stream_id = await _stream_of(registry, name, at)
    loaded = await registry.commands.load_stream(stream_id)
    if loaded.state is None or version not in loaded.state.versions:
        raise VersionNotFound(f"model {name!r} has no version {version}", name, version)
    await wait_for_read_model(registry, NAME, min_position, APPLIED)
    async with registry.engine.connect() as conn:
        found = await deployments_at(conn, at, stream_id=stream_id, version=version, retired=True)
    return JSON({"as_of": at, "deployments": found})
