"""Commands: what a caller asks the registry to do. Each names its model by name; the command
handler resolves the name to the model's stream. The same contracts serve HTTP and, later, Kafka."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from registrar.contracts.deployments import (
    Deployer,
    DeploymentStatus,
    Endpoint,
    EnvironmentName,
    ReportId,
    ReportMessage,
)
from registrar.contracts.evaluations import EvaluationInput
from registrar.contracts.model_card import ModelCardPatch
from registrar.contracts.values import (
    MAX_REFERENCES,
    AliasName,
    DatasetInput,
    Description,
    Digest,
    Inbound,
    Metrics,
    ModelName,
    Params,
    ParentRef,
    ShortText,
    StageName,
    TagKey,
    Tags,
    TagValue,
    VersionNumber,
)


class RegisterModel(Inbound):
    type: Literal["RegisterModel"] = "RegisterModel"
    name: ModelName
    description: Description = ""
    tags: Tags = Field(default_factory=dict)


class UpdateModelDescription(Inbound):
    type: Literal["UpdateModelDescription"] = "UpdateModelDescription"
    name: ModelName
    description: Description


class SetModelTag(Inbound):
    type: Literal["SetModelTag"] = "SetModelTag"
    name: ModelName
    key: TagKey
    value: TagValue


class DeleteModelTag(Inbound):
    type: Literal["DeleteModelTag"] = "DeleteModelTag"
    name: ModelName
    key: TagKey


class RenameModel(Inbound):
    type: Literal["RenameModel"] = "RenameModel"
    name: ModelName
    new_name: ModelName


class DeleteModel(Inbound):
    type: Literal["DeleteModel"] = "DeleteModel"
    name: ModelName


class RegisterVersion(Inbound):
    type: Literal["RegisterVersion"] = "RegisterVersion"
    name: ModelName
    source: Annotated[str, Field(max_length=4096)] = ""
    """Where the version's files are; "" for none yet: the registry's artifact store will hold
    them (the decider names that place, registrar.domain.sources.registry_source)."""
    run_id: Annotated[str, Field(max_length=256)] = ""
    digest: Digest = ""
    size: Annotated[int, Field(ge=0)] | None = None
    metrics: Metrics = Field(default_factory=dict)
    params: Params = Field(default_factory=dict)
    datasets: list[DatasetInput] = Field(default_factory=list, max_length=MAX_REFERENCES)
    parents: list[ParentRef] = Field(default_factory=list, max_length=MAX_REFERENCES)
    tags: Tags = Field(default_factory=dict)
    description: Description = ""
    model_type: ShortText = ""
    """What kind of model it is, e.g. "gradient-boosted trees" ("" for not said)."""
    framework: ShortText = ""
    """What it was built with, e.g. "scikit-learn 1.5" ("" for not said)."""


class UpdateVersionDescription(Inbound):
    type: Literal["UpdateVersionDescription"] = "UpdateVersionDescription"
    name: ModelName
    version: VersionNumber
    description: Description


class SetVersionTag(Inbound):
    type: Literal["SetVersionTag"] = "SetVersionTag"
    name: ModelName
    version: VersionNumber
    key: TagKey
    value: TagValue


class DeleteVersionTag(Inbound):
    type: Literal["DeleteVersionTag"] = "DeleteVersionTag"
    name: ModelName
    version: VersionNumber
    key: TagKey


class RecordMetrics(Inbound):
    type: Literal["RecordMetrics"] = "RecordMetrics"
    name: ModelName
    version: VersionNumber
    metrics: Annotated[Metrics, Field(min_length=1)]


class TransitionStage(Inbound):
    type: Literal["TransitionStage"] = "TransitionStage"
    name: ModelName
    version: VersionNumber
    stage: StageName
    archive_existing: bool = False


class SetAlias(Inbound):
    type: Literal["SetAlias"] = "SetAlias"
    name: ModelName
    alias: AliasName
    version: VersionNumber


class DeleteAlias(Inbound):
    type: Literal["DeleteAlias"] = "DeleteAlias"
    name: ModelName
    alias: AliasName


class DeleteVersion(Inbound):
    type: Literal["DeleteVersion"] = "DeleteVersion"
    name: ModelName
    version: VersionNumber


class UpdateModelCard(Inbound):
    """Set a version's model-card fields (those left out stay as they are)."""

    type: Literal["UpdateModelCard"] = "UpdateModelCard"
    name: ModelName
    version: VersionNumber
    card: ModelCardPatch


class SealArtifacts(Inbound):
    """Seal a version's files: the manifest (stored in the artifact store under its own digest)
    lists every file with its size and sha256; from now on the files never change."""

    type: Literal["SealArtifacts"] = "SealArtifacts"
    name: ModelName
    version: VersionNumber
    manifest_digest: Digest = Field(min_length=71)
    files: Annotated[int, Field(ge=0)]
    bytes: Annotated[int, Field(ge=0)]


class RecordEvaluation(Inbound):
    """Record an evaluation of a version (its id is derived from the command id: a retried
    command, or a redelivered evaluation.completed message, records it once)."""

    type: Literal["RecordEvaluation"] = "RecordEvaluation"
    name: ModelName
    version: VersionNumber
    evaluation: EvaluationInput


class AssessRisk(Inbound):
    """Assess a model's risk: answers to the governance document's questionnaire (Registrar
    maps them to a tier), or a tier set directly with a rationale by the assessor role."""

    type: Literal["AssessRisk"] = "AssessRisk"
    name: ModelName
    tier: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    answers: dict[
        Annotated[str, Field(min_length=1, max_length=128)],
        Annotated[str, Field(min_length=1, max_length=256)],
    ] = Field(default_factory=dict, max_length=200)
    rationale: Annotated[str, Field(max_length=10_000)] = ""

    @model_validator(mode="after")
    def _answers_or_tier(self) -> AssessRisk:
        if (self.tier is None) == (not self.answers):
            raise ValueError(
                "give either the questionnaire's answers, or a tier (with a rationale), not both"
            )
        if self.tier is not None and not self.rationale.strip():
            raise ValueError("a tier set directly needs a rationale: say why")
        return self


class ReportDeployment(Inbound):
    """Record a deployer's report of a version's status in an environment the governance
    document declares (its command id is derived from `report_id`: a report sent again is
    recorded once). `deployer` "" means the caller."""

    type: Literal["ReportDeployment"] = "ReportDeployment"
    name: ModelName
    version: VersionNumber
    environment: EnvironmentName
    status: DeploymentStatus
    report_id: ReportId
    endpoint: Endpoint = ""
    deployer: Deployer = ""
    message: ReportMessage = ""


Comment = Annotated[str, Field(max_length=10_000)]
RequestId = Annotated[str, Field(min_length=1, max_length=64)]


class RequestTransition(Inbound):
    """Ask for a version to move to `stage`, or to take `alias`, under the promotion policy."""

    type: Literal["RequestTransition"] = "RequestTransition"
    name: ModelName
    version: VersionNumber
    stage: StageName | None = None
    alias: AliasName | None = None
    archive_existing: bool = False
    comment: Comment = ""

    @model_validator(mode="after")
    def _one_target(self) -> RequestTransition:
        if (self.stage is None) == (self.alias is None):
            raise ValueError("name exactly one target: a stage or an alias")
        if self.archive_existing and self.stage is None:
            raise ValueError("archive_existing applies to a stage, not to an alias")
        return self


class RequestRollback(Inbound):
    """Ask for `stage` or `alias` to go back from the version holding it to its previous holder
    (or to `to_version`, an earlier holder), as one governed transition, for `reason`."""

    type: Literal["RequestRollback"] = "RequestRollback"
    name: ModelName
    stage: StageName | None = None
    alias: AliasName | None = None
    to_version: VersionNumber | None = None
    reason: Annotated[str, Field(min_length=1, max_length=10_000)]

    @model_validator(mode="after")
    def _one_target_and_a_reason(self) -> RequestRollback:
        if (self.stage is None) == (self.alias is None):
            raise ValueError("name exactly one target to roll back: a stage or an alias")
        if not self.reason.strip():
            raise ValueError("say why in `reason`: a rollback is recorded with its reason")
        return self


class ApproveTransition(Inbound):
    type: Literal["ApproveTransition"] = "ApproveTransition"
    name: ModelName
    request_id: RequestId
    comment: Comment = ""


class RejectTransition(Inbound):
    type: Literal["RejectTransition"] = "RejectTransition"
    name: ModelName
    request_id: RequestId
    comment: Comment = ""


class CancelTransition(Inbound):
    type: Literal["CancelTransition"] = "CancelTransition"
    name: ModelName
    request_id: RequestId
    comment: Comment = ""


REQUEST_COMMANDS = (
    RequestTransition,
    RequestRollback,
    ApproveTransition,
    RejectTransition,
    CancelTransition,
)


Command = Annotated[
    RegisterModel
    | UpdateModelDescription
    | SetModelTag
    | DeleteModelTag
    | RenameModel
    | DeleteModel
    | RegisterVersion
    | UpdateVersionDescription
    | SetVersionTag
    | DeleteVersionTag
    | RecordMetrics
    | TransitionStage
    | SetAlias
    | DeleteAlias
    | DeleteVersion
    | UpdateModelCard
    | SealArtifacts
    | RecordEvaluation
    | AssessRisk
    | ReportDeployment
    | RequestTransition
    | RequestRollback
    | ApproveTransition
    | RejectTransition
    | CancelTransition,
    Field(discriminator="type"),
]
