"""Registrar's models, versions and runs in MLflow's JSON shapes (mlflow/protos: RegisteredModel,
ModelVersion, Run). Built from the view dicts of projections.current_state, whether read from a
stream or from the projection, so both give the same answer."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from registrar.contracts.values import Stage
from registrar.domain.runs import RunState
from registrar.domain.state import ModelState
from registrar.projections.current_state import version_view

RUN_ARTIFACTS = "registrar-runs"
"""Where a recorded run's artifacts appear: mlflow-artifacts:/registrar-runs/<run_id>."""
MODEL_ARTIFACT_PATH = "model"
"""The artifact path of a run's model, as in `runs:/<run_id>/model`."""

_STAGE_ORDER = {stage.value: i for i, stage in enumerate(Stage)}


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _pairs(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in values.items()]


def model_version(view: Mapping[str, Any]) -> dict[str, Any]:
    """A ModelVersion from a version view. Always READY: Registrar registers synchronously, and a
    missing status would make the client poll for five minutes."""
    return {
        "name": view["model"],
        "version": str(view["version"]),
        "creation_timestamp": millis(view["created_at"]),
        "last_updated_timestamp": millis(view["updated_at"]),
        "current_stage": view["stage"],
        "description": view["description"],
        "source": view["source"],
        "run_id": view["run_id"],
        "run_link": "",
        "status": "READY",
        "tags": _pairs(view["tags"]),
        "aliases": list(view["aliases"]),
    }


def registered_model(
    view: Mapping[str, Any], latest_versions: Iterable[Mapping[str, Any]]
) -> dict[str, Any]:
    """A RegisteredModel from a model view and its latest version in each stage."""
    latest = sorted(latest_versions, key=lambda v: _STAGE_ORDER.get(v["stage"], len(Stage)))
    return {
        "name": view["name"],
        "creation_timestamp": millis(view["created_at"]),
        # The model itself, not its tags, aliases or versions' details: as MLflow's server.
        "last_updated_timestamp": millis(view["changed_at"]),
        "description": view["description"],
        "latest_versions": [model_version(v) for v in latest],
        "tags": _pairs(view["tags"]),
        "aliases": [
            {"alias": alias, "version": str(number)}
            for alias, number in sorted(view["aliases"].items())
        ],
    }


def latest_per_stage(state: ModelState) -> list[dict[str, Any]]:
    """The views of `state`'s highest live version in each stage."""
    latest: dict[Stage, int] = {}
    for number, version in state.versions.items():
        if not version.deleted and number > latest.get(version.stage, 0):
            latest[version.stage] = number
    return [version_view(state, state.versions[number]) for number in latest.values()]


def run_artifact_uri(run_id: str) -> str:
    return f"mlflow-artifacts:/{RUN_ARTIFACTS}/{run_id}"


def run(state: RunState) -> dict[str, Any]:
    """A Run from a recorded training run. Its artifact root lists one MLflow model, at
    `model`, which stands for the run's recorded artifact."""
    recorded = state.run
    finished = millis(recorded.finished_at)
    tags = {
        "mlflow.runName": recorded.run_id,
        "registrar.experiment": recorded.experiment,
        "registrar.producer": recorded.producer,
        "registrar.framework": recorded.framework,
        "registrar.artifact_uri": recorded.artifact.uri,
        "mlflow.source.name": recorded.code.repository if recorded.code else "",
        "mlflow.source.git.commit": recorded.code.commit if recorded.code else "",
    }
    info: dict[str, Any] = {
        "run_id": recorded.run_id,
        "run_uuid": recorded.run_id,
        "run_name": recorded.run_id,
        "experiment_id": "0",
        "user_id": recorded.producer,
        "status": "FINISHED",
        "end_time": finished,
        "artifact_uri": run_artifact_uri(recorded.run_id),
        "lifecycle_stage": "active",
    }
    if recorded.started_at is not None:
        info["start_time"] = millis(recorded.started_at)
    datasets = [
        {
            "dataset": {
                "name": dataset.name,
                "digest": dataset.digest or dataset.version,
                "source_type": "registrar",
                "source": dataset.uri,
            },
            "tags": [],
        }
        for dataset in recorded.datasets
    ]
    return {
        "info": info,
        "data": {
            "metrics": [
                {"key": key, "value": value, "timestamp": finished, "step": 0}
                for key, value in recorded.metrics.items()
            ],
            "params": _pairs(recorded.params),
            "tags": _pairs({key: value for key, value in tags.items() if value}),
        },
        "inputs": {"dataset_inputs": datasets},
    }


def model_artifact_files(state: RunState) -> list[str]:
    """The files of a run's model artifact: those its TrainingCompleted listed, and MLmodel (the
    artifact is a model, which is what MLflow looks for before registering it)."""
    return sorted({"MLmodel", *state.run.artifact.files})
