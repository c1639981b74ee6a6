"""Training runs: the TrainingCompleted message other teams' training services send (Kafka topic
`training.completed` or POST /v1/training-runs), and the command and event of a run's own stream.

TrainingCompleted's JSON shape is fixed by its producers: unknown fields are refused by name and
optional fields may be omitted. Run events live in `run:<run_id>` streams, folded apart from model
streams, so they are not part of registrar.contracts.events.Event.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, model_validator

from registrar.contracts.values import (
    MAX_REFERENCES,
    DatasetRef,
    Frozen,
    Metrics,
    ModelName,
    Params,
    StorableText,
    check_digest,
)

MAX_RUN_ID_LENGTH = 256
_RUN_ID = re.compile(r"^[\w.\-:]+$")


def check_run_id(run_id: str) -> str:
    # The run id names the run's stream and is a URL path segment, so no '/' and no spaces.
    if len(run_id) > MAX_RUN_ID_LENGTH:
        raise ValueError(f"a run id is at most {MAX_RUN_ID_LENGTH} characters, got {len(run_id)}")
    if not _RUN_ID.fullmatch(run_id):
        raise ValueError(
            f"run id {run_id!r} is invalid: use letters, digits and _ - . : only, not empty"
        )
    return run_id


def _as_utc(moment: datetime) -> datetime:
    # A time without a zone is UTC, as everywhere else in Registrar (see registrar.contracts.codec).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


RunId = Annotated[str, AfterValidator(check_run_id)]
UtcTime = Annotated[datetime, AfterValidator(_as_utc)]
ShortText = Annotated[str, Field(max_length=256)]
LongText = Annotated[str, Field(max_length=4096)]


class ArtifactRef(Frozen):
    """What a run produced: where the model artifact lives and how to check it."""

    uri: Annotated[str, Field(min_length=1, max_length=4096)]
    digest: ShortText = ""
    size: Annotated[int, Field(ge=0)] | None = None
    files: list[Annotated[str, Field(min_length=1, max_length=4096)]] = Field(default_factory=list)


class CodeRef(Frozen):
    """The code a run was trained with."""

    repository: LongText = ""
    commit: ShortText = ""


class TrainingRun(Frozen):
    """What a training run was and produced: the facts TrainingCompleted, RecordRun and
    RunRecorded share. `model_name` absent: record the run, register no version."""

    run_id: RunId
    experiment: ShortText = ""
    model_name: ModelName | None = None
    artifact: ArtifactRef
    metrics: Metrics = Field(default_factory=dict)
    params: Params = Field(default_factory=dict)
    datasets: list[DatasetRef] = Field(default_factory=list, max_length=MAX_REFERENCES)
    code: CodeRef | None = None
    framework: ShortText = ""
    started_at: UtcTime | None = None
    finished_at: UtcTime
    producer: ShortText = ""

    @model_validator(mode="after")
    def _finishes_after_it_starts(self) -> TrainingRun:
        if self.started_at is not None and self.started_at > self.finished_at:
            raise ValueError(
                f"started_at {self.started_at.isoformat()} is after finished_at"
                f" {self.finished_at.isoformat()}: a run cannot finish before it starts"
            )
        return self

    def facts(self) -> dict[str, Any]:
        """This run's fields as keyword arguments (nested values kept as they are)."""
        return {name: getattr(self, name) for name in TrainingRun.model_fields}


class TrainingCompleted(TrainingRun, StorableText):
    """A training service's report that a run finished. `message_id` identifies this message;
    the run is identified by `run_id`, so a second message about one run changes nothing."""

    message_id: UUID

    @model_validator(mode="after")
    def _digests_are_sha256(self) -> TrainingCompleted:
        # Checked where the message arrives, not on TrainingRun: runs recorded before this rule
        # are read back from their streams as they were stored.
        check_digest(self.artifact.digest)
        for dataset in self.datasets:
            check_digest(dataset.digest)
        return self


class RecordRun(TrainingRun):
    """Record a training run in its stream `run:<run_id>` (a run already recorded: no change)."""

    type: Literal["RecordRun"] = "RecordRun"


class RunRecorded(TrainingRun):
    """A training run was recorded: the first and only event of its stream."""

    type: Literal["RunRecorded"] = "RunRecorded"


RUN_EVENT_TYPES: dict[str, type[RunRecorded]] = {"RunRecorded": RunRecorded}

RUN_SCHEMA_VERSION = 1
"""Schema version of the run event types; bump with an upcaster when a shape changes."""


def run_event_from_payload(event_type: str, payload: dict[str, object]) -> RunRecorded:
    """Rebuild a typed run event from the store's (type, payload) pair."""
    cls = RUN_EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown run event type {event_type!r}")
    return cls.model_validate({"type": event_type, **payload})
