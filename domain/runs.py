"""A training run's stream (`run:<run_id>`): its state, `decide_run` and `evolve_run`. Pure, like
the model decider: no I/O, no clock, no ids. Run streams are folded apart from model streams."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from registrar.contracts.envelope import Envelope
from registrar.contracts.training import RecordRun, RunRecorded, TrainingRun, run_event_from_payload

RUN_STREAM_PREFIX = "run:"


def run_stream_id(run_id: str) -> str:
    """The stream of run `run_id`. The prefix keeps run streams apart from model streams, whose
    ids are UUIDs."""
    return f"{RUN_STREAM_PREFIX}{run_id}"


@dataclass(frozen=True, slots=True)
class RunState:
    """A recorded run: what it was and produced, and when Registrar recorded it."""

    run: TrainingRun
    recorded_at: datetime


def decide_run(command: RecordRun, state: RunState | None) -> list[RunRecorded]:
    """The events recording `command`'s run. A run is recorded once: recording it again (a
    redelivered message, or another message about the same run) changes nothing."""
    if state is not None:
        return []
    return [RunRecorded(**command.facts())]


def evolve_run(state: RunState | None, event: RunRecorded, at: datetime) -> RunState:
    """The run's state after `event`, recorded at `at`. Pure."""
    if state is not None:
        raise ValueError(f"run {state.run.run_id!r} is recorded twice in its stream")
    return RunState(run=TrainingRun(**event.facts()), recorded_at=at)


def fold_run(envelopes: Iterable[Envelope]) -> RunState | None:
    """The state of a run stream holding `envelopes` (None when it holds none)."""
    state: RunState | None = None
    for envelope in envelopes:
        event = run_event_from_payload(envelope.type, envelope.payload)
        state = evolve_run(state, event, envelope.recorded_at)
    return state
