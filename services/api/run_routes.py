"""/v1/training-runs and /v1/runs: ingest a TrainingCompleted over HTTP (the same as on the
`training.completed` topic), and read a recorded run with the versions registered from it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from registrar.access.principal import Principal
from registrar.api.context import command_meta, registry_of
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON, with_position
from registrar.bus.training_ingest import ingest, load_run
from registrar.contracts.api import IngestOut, RunWithVersions
from registrar.contracts.training import TrainingCompleted
from registrar.domain.errors import NotFound
from registrar.domain.runs import RunState
from registrar.projections.current_state import version_view

router = APIRouter(tags=["runs"])

RunIdPath = Annotated[str, Path(description="The training run's id, as its producer gave it")]


def run_view(state: RunState) -> dict[str, Any]:
    """The JSON shape of a recorded run."""
    return {**state.run.model_dump(mode="json"), "recorded_at": state.recorded_at}


@router.post(
    "/v1/training-runs",
    status_code=201,
    response_model=IngestOut,
    responses={
        200: {"model": IngestOut, "description": "The run was recorded before: nothing changed"},
        **refusals(409),
    },
    summary="Record a finished training run, and register its version if it names a model",
)
async def post_training_run(body: TrainingCompleted, request: Request) -> JSON:
    meta = command_meta(request)
    outcome = await ingest(registry_of(request), body, Principal(meta.actor, meta.role))
    version = None
    if outcome.model is not None and outcome.version is not None:
        version = version_view(outcome.model, outcome.model.versions[outcome.version])
    answer = {"run": run_view(outcome.run), "version": version}
    return with_position(answer, outcome.position, 201 if outcome.changed else 200)


@router.get(
    "/v1/runs/{run_id}",
    response_model=RunWithVersions,
    summary="Get a recorded run and the versions of its model registered from it",
    responses=refusals(404),
)
async def get_run(run_id: RunIdPath, request: Request) -> JSON:
    registry = registry_of(request)
    state = await load_run(registry, run_id)
    if state is None:
        raise NotFound(
            f"no training run {run_id!r} has been recorded; runs are recorded from"
            " TrainingCompleted messages (POST /v1/training-runs or topic training.completed)"
        )
    versions = []
    if state.run.model_name is not None:
        loaded = await registry.commands.load(state.run.model_name)
        if loaded is not None and loaded.state is not None:
            model = loaded.state
            versions = [
                version_view(model, version)
                for number, version in sorted(model.versions.items())
                if version.run_id == run_id
            ]
    return JSON({"run": run_view(state), "versions": versions})
