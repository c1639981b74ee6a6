"""/v1/models/{name}/versions/{v}/evaluations: record an evaluation of a version (performance,
fairness from per-group counts, explainability, robustness, mitigation, or a custom kind), list
a version's evaluations newest first, read one. Read from the model's stream: strongly
consistent."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from registrar.api.context import handle, registry_of
from registrar.api.history_routes import AsOf, instant
from registrar.api.model_routes import NamePath
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON, with_position
from registrar.api.version_routes import VersionPath
from registrar.contracts.api_answers import EvaluationList, EvaluationOut
from registrar.contracts.commands import RecordEvaluation
from registrar.contracts.evaluations import EvaluationInput
from registrar.domain.errors import NotFound, VersionNotFound
from registrar.domain.state import ModelState, RecordedEvaluation, VersionState

router = APIRouter(tags=["evaluations"])

_EVALUATIONS = "/v1/models/{name}/versions/{version}/evaluations"


def evaluation_view(
    model: ModelState, version: VersionState, recorded: RecordedEvaluation
) -> dict[str, Any]:
    return {
        "model": model.name,
        "version": version.version,
        "recorded_at": recorded.recorded_at,
        **recorded.evaluation.model_dump(mode="json"),
    }


async def _version(
    request: Request, name: str, number: int, as_of: str | None = None
) -> tuple[ModelState, VersionState]:
    """The version now, or (`as_of`) as it stood then: its evaluations recorded by then."""
    registry = registry_of(request)
    if as_of is None:
        model = await registry.live_model(name)
    else:
        model = (await registry.model_as_of(name, instant(as_of)))[0]
    version = model.live_version(number)
    if version is None:
        raise VersionNotFound(f"model {name!r} has no version {number}", name, number)
    return model, version


@router.post(
    _EVALUATIONS,
    status_code=201,
    response_model=EvaluationOut,
    summary="Record an evaluation; a fairness one's rates and disparities are derived here",
    responses=refusals(404, 409),
)
async def record_evaluation(
    name: NamePath, version: VersionPath, body: EvaluationInput, request: Request
) -> JSON:
    outcome = await handle(request, RecordEvaluation(name=name, version=version, evaluation=body))
    made = next(
        e.payload["evaluation_id"] for e in outcome.events if e.type == "EvaluationRecorded"
    )
    state = outcome.state
    found = state.versions[version]
    recorded = next(r for r in found.evaluations if r.evaluation_id == made)
    return with_position(evaluation_view(state, found, recorded), outcome.position, 201)


@router.get(
    _EVALUATIONS,
    response_model=EvaluationList,
    summary="A version's evaluations, newest first",
    responses=refusals(404),
)
async def list_evaluations(
    name: NamePath, version: VersionPath, request: Request, as_of: AsOf = None
) -> JSON:
    model, found = await _version(request, name, version, as_of)
    views = [evaluation_view(model, found, r) for r in reversed(found.evaluations)]
    return JSON({"evaluations": views})


@router.get(
    _EVALUATIONS + "/{evaluation_id}",
    response_model=EvaluationOut,
    summary="One evaluation",
    responses=refusals(404),
)
async def get_evaluation(
    name: NamePath,
    version: VersionPath,
    evaluation_id: Annotated[str, Path(max_length=64)],
    request: Request,
) -> JSON:
    model, found = await _version(request, name, version)
    for recorded in found.evaluations:
        if recorded.evaluation_id == evaluation_id:
            return JSON(evaluation_view(model, found, recorded))
    raise NotFound(f"version {version} of model {name!r} has no evaluation {evaluation_id!r}")
