"""Events: the immutable facts of a model's stream. Their payloads are what the store keeps; the
envelope (contracts.envelope) adds identity, order, time, actor and the hash chain."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import Field, TypeAdapter

from contracts.values import (
    DatasetRef,
    Frozen,
    Metrics,
    Params,
    ParentRef,
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


class AliasSet(Frozen):
    type: Literal["AliasSet"] = "AliasSet"
    alias: str
    version: int
    previous_version: int | None = None


class AliasDeleted(Frozen):
    type: Literal["AliasDeleted"] = "AliasDeleted"
    alias: str
    version: int


class VersionDeleted(Frozen):
    type: Literal["VersionDeleted"] = "VersionDeleted"
    version: int


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
    | VersionDeleted,
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
