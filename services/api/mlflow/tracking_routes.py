"""The tracking calls `mlflow.register_model("runs:/<run_id>/model", name)` makes, answered from
the runs Registrar recorded (TrainingCompleted): runs/get, the artifact listing of the run's model,
and a logged-model search that finds none (Registrar records no logged models)."""

from __future__ import annotations

import posixpath

from fastapi import Request

from registrar.api.context import registry_of
from registrar.api.mlflow import entities
from registrar.api.mlflow.errors import not_found
from registrar.api.mlflow.fields import Fields
from registrar.api.responses import JSON
from registrar.bus.training_ingest import load_run
from registrar.domain.runs import RunState


async def _recorded_run(request: Request, run_id: str) -> RunState:
    state = await load_run(registry_of(request), run_id)
    if state is None:
        raise not_found(
            f"Run '{run_id}' not found: Registrar knows the runs it recorded from"
            " TrainingCompleted messages (POST /v1/training-runs or topic training.completed)"
        )
    return state


async def get_run(request: Request) -> JSON:
    fields = await Fields.of(request)
    run_id = fields.text("run_id") or fields.required("run_uuid")
    return JSON({"run": entities.run(await _recorded_run(request, run_id))})


async def list_artifacts(request: Request) -> JSON:
    """The files directly under `path`, which must lie in a recorded run's artifact root
    (`registrar-runs/<run_id>`): the run's model at `model`, nothing else."""
    path = posixpath.normpath((await Fields.of(request)).text("path") or ".").strip("/")
    root, _, rest = path.partition("/")
    run_id, _, inside = rest.partition("/")
    if root != entities.RUN_ARTIFACTS or not run_id:
        raise not_found(
            f"no artifacts at {path!r}: Registrar lists only its recorded runs' artifacts,"
            f" under {entities.RUN_ARTIFACTS}/<run_id>"
        )
    state = await _recorded_run(request, run_id)
    files = [
        f"{entities.MODEL_ARTIFACT_PATH}/{file}" for file in entities.model_artifact_files(state)
    ]
    prefix = f"{inside}/" if inside else ""
    children: dict[str, bool] = {}
    for file in files:
        if file.startswith(prefix):
            head, _, tail = file[len(prefix) :].partition("/")
            children[head] = children.get(head, False) or bool(tail)
    listed = [{"path": name, "is_dir": is_dir} for name, is_dir in sorted(children.items())]
    return JSON({"files": listed})


async def search_logged_models(request: Request) -> JSON:
    await Fields.of(request)  # a malformed body is still refused
    return JSON({"models": []})


ENDPOINTS = [
    ("GET", "runs/get", get_run),
    ("POST", "logged-models/search", search_logged_models),
]
ARTIFACT_ENDPOINTS = [("GET", "artifacts", list_artifacts)]
