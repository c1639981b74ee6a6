"""The /v1 HTTP API's request and response bodies, as pydantic models: the server validates and
documents (/openapi.json) with them, and the Python client (registrar.client) parses with them.

Request bodies refuse unknown fields, as every contract does. Response bodies ignore them, so a
server that adds a field does not break a client built before it. The answers of the approval,
lineage, audit and history routes are in registrar.contracts.api_answers; every refusal is an
ErrorBody."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from registrar.contracts.training import TrainingRun
from registrar.contracts.values import (
    MAX_REFERENCES,
    DatasetInput,
    DatasetRef,
    Description,
    Digest,
    Metrics,
    ModelName,
    Params,
    ParentRef,
    ShortText,
    StageName,
    StorableText,
    Tags,
    TagValue,
    VersionNumber,
)


class Body(StorableText):
    """A request body: an unknown field is an error, named in the 422, and so is text that
    cannot be stored (NUL, unpaired surrogates) or too much of it."""

    model_config = ConfigDict(extra="forbid")


class Answer(BaseModel):
    """A response body: fields this version does not know are ignored."""

    model_config = ConfigDict(extra="ignore")


# Requests ----------------------------------------------------------------------------------------


class CreateModel(Body):
    name: ModelName
    description: Description = ""
    tags: Tags = Field(default_factory=dict)


class UpdateModel(Body):
    """Change a model's description, rename it, or both."""

    description: Description | None = None
    name: ModelName | None = Field(default=None, description="A new name for the model")


class TagValueBody(Body):
    value: TagValue


class CreateVersion(Body):
    source: str = Field(
        default="",
        max_length=4096,
        description="Where the artifact lives. Leave it out to keep the version's files in"
        " Registrar's artifact store: upload them, then seal (/artifacts)",
    )
    run_id: str = Field(default="", max_length=256)
    digest: Digest = ""
    size: int | None = Field(default=None, ge=0, description="Artifact size in bytes")
    metrics: Metrics = Field(default_factory=dict)
    params: Params = Field(default_factory=dict)
    datasets: list[DatasetInput] = Field(default_factory=list, max_length=MAX_REFERENCES)
    parents: list[ParentRef] = Field(default_factory=list, max_length=MAX_REFERENCES)
    tags: Tags = Field(default_factory=dict)
    description: Description = ""
    model_type: ShortText = Field(
        default="", description='What kind of model, e.g. "gradient-boosted trees"'
    )
    framework: ShortText = Field(default="", description='What built it, e.g. "scikit-learn 1.5"')


class UpdateVersion(Body):
    """Change a version's description, record metrics on it, or both."""

    description: Description | None = None
    metrics: Metrics | None = None


class StageBody(Body):
    stage: StageName
    archive_existing: bool = Field(
        default=False, description="Move the other versions in that stage to Archived"
    )


class AliasBody(Body):
    version: VersionNumber


# Responses ---------------------------------------------------------------------------------------

_POSITION = "Global position of a command's event"


class ModelOut(Answer):
    id: str
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int
    created_at: datetime
    updated_at: datetime = Field(description="When anything of the model last changed")
    changed_at: datetime | None = Field(
        default=None,
        description="When the model itself last changed (registered, described, renamed, deleted,"
        " a version registered, moved or deleted): MLflow's last_updated_timestamp (absent from"
        " older servers)",
    )
    deleted: bool
    risk_tier: str | None = Field(default=None, description="The newest risk assessment's tier")
    position: int | None = Field(default=None, description=_POSITION)


class SealedArtifacts(Answer):
    manifest_digest: str
    files: int
    bytes: int
    sealed_at: datetime


class VersionOut(Answer):
    model: str
    version: int
    source: str
    run_id: str
    digest: str
    size: int | None
    stage: str
    aliases: list[str]
    tags: dict[str, str]
    metrics: dict[str, float]
    params: dict[str, str]
    datasets: list[DatasetRef]
    parents: list[ParentRef]
    description: str
    model_type: str = Field(
        default="", description="What kind of model (absent from older servers)"
    )
    framework: str = Field(default="", description="What built it (absent from older servers)")
    model_card: dict[str, str] = Field(default_factory=dict, description="Filled-in card fields")
    artifacts: SealedArtifacts | None = Field(
        default=None, description="The version's files in Registrar's artifact store, once sealed"
    )
    created_at: datetime
    updated_at: datetime
    deleted: bool
    position: int | None = Field(default=None, description=_POSITION)


class ModelPage(Answer):
    models: list[ModelOut]
    next_page_token: str | None


class VersionPage(Answer):
    versions: list[VersionOut]
    next_page_token: str | None


class Deleted(Answer):
    deleted: bool
    position: int


class RunOut(TrainingRun):
    """A recorded training run: what its producer reported, and when Registrar recorded it."""

    model_config = ConfigDict(extra="ignore")

    recorded_at: datetime


class IngestOut(Answer):
    run: RunOut
    version: VersionOut | None
    position: int


class RunWithVersions(Answer):
    run: RunOut
    versions: list[VersionOut]


class Whoami(Answer):
    """The caller as access control sees it (admin, unauthenticated, when it is off)."""

    user: str
    role: str
    authenticated: bool
    token_id: str | None = None


# Errors ------------------------------------------------------------------------------------------


class FieldProblem(Answer):
    field: str = Field(
        description="Where, as a dotted location: body.name, body.tags.k, query.page_size,"
        " path.version; page_token for a bad page token"
    )
    problem: str


class ErrorDetail(Answer):
    code: str = Field(
        description="Stable, for machines: invalid, not_found, conflict, forbidden,"
        " unauthenticated, permission_denied, too_large, unavailable, ..."
    )
    message: str = Field(description="For people: what was refused, and why")
    fields: list[FieldProblem] = Field(
        default_factory=list,
        description="Each field that was wrong (422 only; absent when no one field was)",
    )


class ErrorBody(Answer):
    """Every refusal of the /v1 API (4xx, 503): `{"error": {"code", "message", "fields"?}}`."""

    error: ErrorDetail
