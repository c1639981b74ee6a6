"""MLflow's answers as pydantic models, for /openapi.json only: each endpoint's success body (the
shapes mlflow/protos defines, as entities.py builds them) and MLflow's error body."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class MlflowAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MlflowErrorBody(MlflowAnswer):
    """Every refusal on MLflow's paths, with the HTTP status the MLflow client expects."""

    error_code: str = Field(
        description="INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST,"
        " RESOURCE_CONFLICT, PERMISSION_DENIED, UNAUTHENTICATED, TEMPORARILY_UNAVAILABLE,"
        " RESOURCE_LIMIT_EXCEEDED or ENDPOINT_NOT_FOUND"
    )
    message: str


class MlflowTag(MlflowAnswer):
    key: str
    value: str


class MlflowAlias(MlflowAnswer):
    alias: str
    version: str


class MlflowModelVersion(MlflowAnswer):
    name: str
    version: str
    creation_timestamp: int = Field(description="Milliseconds since the epoch")
    last_updated_timestamp: int
    current_stage: str
    description: str
    source: str
    run_id: str
    run_link: str
    status: str = Field(description="Always READY: versions are registered synchronously")
    tags: list[MlflowTag]
    aliases: list[str]


class MlflowRegisteredModel(MlflowAnswer):
    name: str
    creation_timestamp: int
    last_updated_timestamp: int
    description: str
    latest_versions: list[MlflowModelVersion] = Field(description="The latest in each stage")
    tags: list[MlflowTag]
    aliases: list[MlflowAlias]


class RegisteredModelAnswer(MlflowAnswer):
    registered_model: MlflowRegisteredModel


class RegisteredModelsPage(MlflowAnswer):
    registered_models: list[MlflowRegisteredModel]
    next_page_token: str | None = Field(default=None, description="Absent on the last page")


class ModelVersionAnswer(MlflowAnswer):
    model_version: MlflowModelVersion


class ModelVersions(MlflowAnswer):
    model_versions: list[MlflowModelVersion]


class ModelVersionsPage(ModelVersions):
    next_page_token: str | None = Field(default=None, description="Absent on the last page")


class DownloadUri(MlflowAnswer):
    artifact_uri: str


class Done(MlflowAnswer):
    """`{}`: MLflow's answer to a change that returns nothing."""


class MlflowMetric(MlflowAnswer):
    key: str
    value: float
    timestamp: int
    step: int


class MlflowRunInfo(MlflowAnswer):
    run_id: str
    run_uuid: str
    run_name: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int | None = None
    end_time: int
    artifact_uri: str
    lifecycle_stage: str


class MlflowRunData(MlflowAnswer):
    metrics: list[MlflowMetric]
    params: list[MlflowTag]
    tags: list[MlflowTag]


class MlflowDataset(MlflowAnswer):
    name: str
    digest: str
    source_type: str
    source: str


class MlflowDatasetInput(MlflowAnswer):
    dataset: MlflowDataset
    tags: list[MlflowTag]


class MlflowRunInputs(MlflowAnswer):
    dataset_inputs: list[MlflowDatasetInput]


class MlflowRun(MlflowAnswer):
    info: MlflowRunInfo
    data: MlflowRunData
    inputs: MlflowRunInputs


class RunAnswer(MlflowAnswer):
    run: MlflowRun


class MlflowFile(MlflowAnswer):
    path: str
    is_dir: bool


class ArtifactListing(MlflowAnswer):
    files: list[MlflowFile]


class LoggedModelsPage(MlflowAnswer):
    models: list[dict[str, object]] = Field(description="Always empty: no logged models here")


_READ = (400, 404)
_WRITE = (400, 404, 409)
_SEARCH = (400, 503)

ANSWERS: dict[tuple[str, str], tuple[type[MlflowAnswer], tuple[int, ...]]] = {
    ("POST", "registered-models/create"): (RegisteredModelAnswer, (400,)),
    ("GET", "registered-models/get"): (RegisteredModelAnswer, _READ),
    ("POST", "registered-models/rename"): (RegisteredModelAnswer, _READ),  # taken: 400
    ("PATCH", "registered-models/update"): (RegisteredModelAnswer, _WRITE),
    ("DELETE", "registered-models/delete"): (Done, _WRITE),
    ("GET", "registered-models/search"): (RegisteredModelsPage, _SEARCH),
    ("POST", "registered-models/get-latest-versions"): (ModelVersions, _READ),
    ("GET", "registered-models/get-latest-versions"): (ModelVersions, _READ),
    ("POST", "registered-models/set-tag"): (Done, _WRITE),
    ("DELETE", "registered-models/delete-tag"): (Done, _WRITE),
    ("POST", "registered-models/alias"): (Done, _WRITE),
    ("DELETE", "registered-models/alias"): (Done, _WRITE),
    ("GET", "registered-models/alias"): (ModelVersionAnswer, _READ),
    ("POST", "model-versions/create"): (ModelVersionAnswer, _WRITE),
    ("GET", "model-versions/get"): (ModelVersionAnswer, _READ),
    ("PATCH", "model-versions/update"): (ModelVersionAnswer, _WRITE),
    ("DELETE", "model-versions/delete"): (Done, _WRITE),
    ("GET", "model-versions/search"): (ModelVersionsPage, _SEARCH),
    ("POST", "model-versions/transition-stage"): (ModelVersionAnswer, _WRITE),
    ("GET", "model-versions/get-download-uri"): (DownloadUri, _READ),
    ("POST", "model-versions/set-tag"): (Done, _WRITE),
    ("DELETE", "model-versions/delete-tag"): (Done, _WRITE),
    ("GET", "runs/get"): (RunAnswer, _READ),
    ("POST", "logged-models/search"): (LoggedModelsPage, (400,)),
    ("GET", "artifacts"): (ArtifactListing, _READ),
}
"""Each endpoint (method, path under its service) → its success body and the refusals, besides
401 and 403, it can answer with (their body is MlflowErrorBody: services/api/openapi_document)."""
