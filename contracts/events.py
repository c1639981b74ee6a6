"""Events: the immutable facts of a model's stream. Their payloads are what the store keeps; the
envelope (registrar.contracts.envelope) adds identity, order, time, actor and the hash chain."""

from __future__ import annotations

from typing import Annotated, Literal, get_args
from uuid import UUID

from pydantic import Field, TypeAdapter

from registrar.contracts.deployments import DeploymentStatus
from registrar.contracts.envelope import Envelope
from registrar.contracts.evaluations import Evaluation
from registrar.contracts.policies import Rollback, TransitionAuthorization
from registrar.contracts.values import (
    DatasetRef,
    Frozen,
    Metrics,
    Params,
    ParentRef,
    Role,
    Stage,
)


class ModelRegistered(Frozen):
    type: Literal["ModelRegistered"] = "ModelRegistered"
    model_id: str
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class ModelDescriptionUpdated(Frozen):
    type: Literal["ModelDescriptionUpdated"] = "ModelDescriptionUpdated"
    description: str


class ModelTagSet(Frozen):
    type: Literal["ModelTagSet"] = "ModelTagSet"
    key: str
    value: str


class ModelTagDeleted(Frozen):
    type: Literal["ModelTagDeleted"] = "ModelTagDeleted"
    key: str


class ModelRenamed(Frozen):
    type: Literal["ModelRenamed"] = "ModelRenamed"
    old_name: str
    new_name: str


class ModelDeleted(Frozen):
    type: Literal["ModelDeleted"] = "ModelDeleted"
    name: str


class VersionRegistered(Frozen):
    type: Literal["VersionRegistered"] = "VersionRegistered"
    version: int
    source: str
    run_id: str = ""
    digest: str = ""
    size: int | None = None
    metrics: Metrics = Field(default_factory=dict)
    params: Params = Field(default_factory=dict)
    datasets: list[DatasetRef] = Field(default_factory=list)
    parents: list[ParentRef] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    description: str = ""
    model_type: str = ""
    framework: str = ""
    """Both "" in events recorded before versions had them."""


class VersionDescriptionUpdated(Frozen):
    type: Literal["VersionDescriptionUpdated"] = "VersionDescriptionUpdated"
    version: int
    description: str


class VersionTagSet(Frozen):
    type: Literal["VersionTagSet"] = "VersionTagSet"
    version: int
    key: str
    value: str


class VersionTagDeleted(Frozen):
    type: Literal["VersionTagDeleted"] = "VersionTagDeleted"
    version: int
    key: str


class MetricsRecorded(Frozen):
    type: Literal["MetricsRecorded"] = "MetricsRecorded"
    version: int
    metrics: Metrics


class StageChanged(Frozen):
    """A version moved between stages. `reason` is "requested" for the version asked for and
    "archived_by" (with `archived_by_version`) for the holders moved aside by archive-existing."""

    type: Literal["StageChanged"] = "StageChanged"
    version: int
    from_stage: Stage
    to_stage: Stage
    reason: Literal["requested", "archived_by"] = "requested"
    archived_by_version: int | None = None
    authorization: TransitionAuthorization | None = None
    """For a move under a promotion policy: what allowed it (request, policy, gates, approvals)."""


class AliasSet(Frozen):
    type: Literal["AliasSet"] = "AliasSet"
    alias: str
    version: int
    previous_version: int | None = None
    authorization: TransitionAuthorization | None = None
    """For a protected alias: what allowed the move (request, policy, gates, approvals)."""


class AliasDeleted(Frozen):
    type: Literal["AliasDeleted"] = "AliasDeleted"
    alias: str
    version: int


class VersionDeleted(Frozen):
    type: Literal["VersionDeleted"] = "VersionDeleted"
    version: int


class ModelCardUpdated(Frozen):
    """Model-card fields of a version were set (those named; "" means cleared)."""

    type: Literal["ModelCardUpdated"] = "ModelCardUpdated"
    version: int
    card: dict[str, str]


class ArtifactsSealed(Frozen):
    """A version's files were sealed: the manifest with this digest (kept in the artifact
    store, content-addressed) lists them, and the version's artifact digest is now that digest."""

    type: Literal["ArtifactsSealed"] = "ArtifactsSealed"
    version: int
    manifest_digest: str
    files: int
    bytes: int


class EvaluationRecorded(Evaluation):
    """An evaluation of a version was recorded (immutable: a new one supersedes it for gates)."""

    type: Literal["EvaluationRecorded"] = "EvaluationRecorded"
    version: int


class RiskAssessed(Frozen):
    """The model's risk was assessed: its tier now, how it was reached, and by whom."""

    type: Literal["RiskAssessed"] = "RiskAssessed"
    tier: str
    method: Literal["questionnaire", "direct"]
    answers: dict[str, str] = Field(default_factory=dict)
    rationale: str = ""
    assessed_by: str
    policy_version: int = Field(description="The governance document whose rules were used")


class DeploymentReported(Frozen):
    """A deployer reported `version`'s status in `environment`. A version reported serving
    replaces the one that served there (`replaced_version`: it no longer serves)."""

    type: Literal["DeploymentReported"] = "DeploymentReported"
    version: int
    environment: str
    status: DeploymentStatus
    endpoint: str = ""
    deployer: str
    message: str = ""
    report_id: str
    replaced_version: int | None = None


class TransitionRequested(Frozen):
    """Someone asked for a version to move to `stage` or take `alias`; the request is pending
    until the policy's approvals and gates are met (then the move applies in the same decision)."""

    type: Literal["TransitionRequested"] = "TransitionRequested"
    request_id: str
    version: int
    stage: Stage | None = None
    alias: str | None = None
    archive_existing: bool = False
    requested_by: str
    comment: str = ""
    rollback: Rollback | None = None
    """For a rollback: from which holder to which (`version`), and why."""


class TransitionApproved(Frozen):
    type: Literal["TransitionApproved"] = "TransitionApproved"
    request_id: str
    by: str
    comment: str = ""


class TransitionRejected(Frozen):
    type: Literal["TransitionRejected"] = "TransitionRejected"
    request_id: str
    by: str
    comment: str = ""


class TransitionCancelled(Frozen):
    type: Literal["TransitionCancelled"] = "TransitionCancelled"
    request_id: str
    by: str
    comment: str = ""


class TransitionRequestStale(Frozen):
    """The version changed in a way gates read (metrics, model card): approvals given before no
    longer count, and the request needs approving again."""

    type: Literal["TransitionRequestStale"] = "TransitionRequestStale"
    request_id: str
    reason: str
    dropped: list[str] = Field(description="Who had approved: their approvals no longer count")


Event = Annotated[
    ModelRegistered
    | ModelDescriptionUpdated
    | ModelTagSet
    | ModelTagDeleted
    | ModelRenamed
    | ModelDeleted
    | VersionRegistered
    | VersionDescriptionUpdated
    | VersionTagSet
    | VersionTagDeleted
    | MetricsRecorded
    | StageChanged
    | AliasSet
    | AliasDeleted
    | VersionDeleted
    | ModelCardUpdated
    | ArtifactsSealed
    | EvaluationRecorded
    | RiskAssessed
    | DeploymentReported
    | TransitionRequested
    | TransitionApproved
    | TransitionRejected
    | TransitionCancelled
    | TransitionRequestStale,
    Field(discriminator="type"),
]

EVENT_TYPES: dict[str, type[Frozen]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(Event)[0])
}

SCHEMA_VERSION = 1
"""Schema version of every event type above; bump per type with an upcaster when a shape changes."""

event_adapter: TypeAdapter[Event] = TypeAdapter(Event)


def event_from_payload(event_type: str, payload: dict[str, object]) -> Event:
    """Rebuild a typed event from the store's (type, payload) pair."""
    cls = EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown event type {event_type!r}")
    return cls.model_validate({"type": event_type, **payload})  # type: ignore[return-value]


# Access control: each user's tokens and ownership grants live in the stream `access:<user>`,
# refused attempts in new streams of their own (`refusal:<uuid7>`), so refusals never contend.
# They are not model-stream events, so not in `Event` / EVENT_TYPES, which the model projections
# read as "this envelope belongs to a model stream".


class TokenIssued(Frozen):
    type: Literal["TokenIssued"] = "TokenIssued"
    token_id: UUID
    user: str
    role: Role
    label: str = ""
    token_hash: str = Field(description="sha256 of the token, hex: the token itself is never kept")


SECRET_FIELDS: dict[str, frozenset[str]] = {
    "TokenIssued": frozenset({"token_hash"}),
    "WebhookCreated": frozenset({"url"}),
    "WebhookUpdated": frozenset({"url"}),
}
"""Payload fields that never leave the store, by event type: a token's hash would let anyone who
reads the bus test guesses offline, or match a token seen elsewhere; a webhook's URL is often a
capability itself (a chat hook's URL carries its token), so only admins read it, from the API."""
REDACTED = "[redacted]"


def redacted(envelope: Envelope) -> Envelope:
    """The envelope as it may leave the store: each secret field's value replaced by REDACTED.
    Its hash still covers the stored payload: verify the chain against the store."""
    secret = SECRET_FIELDS.get(envelope.type)
    if not secret or not secret & envelope.payload.keys():
        return envelope
    payload = {k: REDACTED if k in secret else v for k, v in envelope.payload.items()}
    return envelope.model_copy(update={"payload": payload})


class TokenRevoked(Frozen):
    type: Literal["TokenRevoked"] = "TokenRevoked"
    token_id: UUID
    user: str
    reason: str = ""


class OwnershipGranted(Frozen):
    type: Literal["OwnershipGranted"] = "OwnershipGranted"
    user: str
    model_id: str = Field(description="The model's stream id: ownership survives a rename")
    model_name: str


class OwnershipRevoked(Frozen):
    type: Literal["OwnershipRevoked"] = "OwnershipRevoked"
    user: str
    model_id: str
    model_name: str


class AccessRefused(Frozen):
    type: Literal["AccessRefused"] = "AccessRefused"
    actor: str = Field(description='The authenticated user, or "anonymous"')
    action: str
    reason: str
    method: str
    path: str
    status: Literal[401, 403]
    model: str = ""


class AccessRefusalsDropped(Frozen):
    """Refusals came faster than they could be recorded: `count` of them were only counted."""

    type: Literal["AccessRefusalsDropped"] = "AccessRefusalsDropped"
    count: int


AccessEvent = Annotated[
    TokenIssued
    | TokenRevoked
    | OwnershipGranted
    | OwnershipRevoked
    | AccessRefused
    | AccessRefusalsDropped,
    Field(discriminator="type"),
]

ACCESS_EVENT_TYPES: dict[str, type[Frozen]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(AccessEvent)[0])
}


def access_event_from_payload(event_type: str, payload: dict[str, object]) -> AccessEvent:
    cls = ACCESS_EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown access event type {event_type!r}")
    return cls.model_validate({"type": event_type, **payload})  # type: ignore[return-value]
