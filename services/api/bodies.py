"""Request and response bodies of the /v1 API, as pydantic models (they also make /openapi.json)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from registrar.contracts.values import (
    DatasetRef,
    Description,
    Metrics,
    ModelName,
    Params,
    ParentRef,
    StageName,
    Tags,
    TagValue,
    VersionNumber,
)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    source: str = Field(min_length=1, max_length=4096, description="Where the artifact lives")
    run_id: str = Field(default="", max_length=256)
    digest: str = Field(default="", max_length=256, description="e.g. sha256:...")
    size: int | None = Field(default=None, ge=0, description="Artifact size in bytes")
    metrics: Metrics = Field(default_factory=dict)
    params: Params = Field(default_factory=dict)
    datasets: list[DatasetRef] = Field(default_factory=list)
    parents: list[ParentRef] = Field(default_factory=list)
    tags: Tags = Field(default_factory=dict)
    description: Description = ""


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


class ModelOut(BaseModel):
    id: str
    name: str
    description: str
    tags: dict[str, str]
    aliases: dict[str, int]
    latest_version: int
    created_at: datetime
    updated_at: datetime
    deleted: bool
    position: int | None = Field(default=None, description="Global position of a command's event")


class VersionOut(BaseModel):
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
    model_card: dict[str, str] = Field(default_factory=dict, description="Filled-in card fields")
    created_at: datetime
    updated_at: datetime
    deleted: bool
    position: int | None = Field(default=None, description="Global position of a command's event")


class ModelPage(BaseModel):
    models: list[ModelOut]
    next_page_token: str | None


class VersionPage(BaseModel):
    versions: list[VersionOut]
    next_page_token: str | None


class Deleted(BaseModel):
    deleted: bool
    position: int
