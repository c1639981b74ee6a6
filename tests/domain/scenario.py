"""Given/when/then for the pure domain: fold past events into a model's state, then decide a
command against it. No database, no clock: every event is recorded at the same fixed time."""

from __future__ import annotations

from datetime import UTC, datetime

from registrar.contracts.commands import Command
from registrar.contracts.events import (
    Event,
    ModelRegistered,
    StageChanged,
    VersionRegistered,
)
from registrar.contracts.values import Stage
from registrar.domain.decider import decide
from registrar.domain.state import ModelState, evolve

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
MODEL_ID = "0190f2a0-0000-7000-8000-000000000001"
NAME = "fraud-detector"


def given(*events: Event) -> ModelState | None:
    """The state of a model stream that holds `events` (None when there are none)."""
    state: ModelState | None = None
    for event in events:
        state = evolve(state, event, AT)
    return state


def when(command: Command, state: ModelState | None, new_model_id: str = "") -> list[Event]:
    """The events `command` produces against `state`; a refusal raises a DomainError."""
    return decide(command, state, new_model_id)


def model_registered(name: str = NAME, **fields: object) -> ModelRegistered:
    return ModelRegistered(model_id=MODEL_ID, name=name, **fields)


def version_registered(number: int, **fields: object) -> VersionRegistered:
    fields.setdefault("source", f"s3://models/{NAME}/{number}")
    return VersionRegistered(version=number, **fields)


def moved(number: int, from_stage: Stage, to_stage: Stage) -> StageChanged:
    """A requested stage change, as a past event."""
    return StageChanged(version=number, from_stage=from_stage, to_stage=to_stage)


def model_with_versions(count: int, name: str = NAME) -> list[Event]:
    """The events of a model `name` with versions 1..count, all live and in stage None."""
    return [model_registered(name), *(version_registered(n) for n in range(1, count + 1))]
