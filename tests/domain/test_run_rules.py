"""Rules of a training run's stream, as given/when/then without a database: a run is recorded once,
with every fact its TrainingCompleted carried; and what a TrainingCompleted must look like."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from registrar.contracts.envelope import GENESIS_HASH, Envelope
from registrar.contracts.training import RecordRun, RunRecorded, TrainingCompleted
from registrar.domain.runs import RunState, decide_run, evolve_run, fold_run, run_stream_id

AT = datetime(2026, 11, 26, 11, 5, tzinfo=UTC)

EXAMPLE: dict[str, Any] = {
    "message_id": "0b6f5d1e-8c1a-4f5e-9d1b-6f1c2a3b4c5d",
    "run_id": "abcdef123456",
    "experiment": "churn",
    "model_name": "customer_churn_predictor",
    "artifact": {
        "uri": "s3://models/churn/abcdef123456/model",
        "digest": "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "size": 48213,
        "files": ["MLmodel", "model.pkl", "requirements.txt"],
    },
    "metrics": {"auc": 0.91, "f1": 0.84},
    "params": {"n_estimators": "200"},
    "datasets": [
        {
            "name": "customers",
            "version": "v2.1",
            "uri": "s3://data/customers/v2.1",
            "digest": "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
        }
    ],
    "code": {"repository": "https://git.example.com/ml/churn", "commit": "4f2a9c1"},
    "framework": "scikit-learn 1.2.0",
    "started_at": "2026-11-26T10:00:00Z",
    "finished_at": "2026-11-26T11:00:00Z",
    "producer": "training-service",
}


def record_run(**changes: Any) -> RecordRun:
    fields = {k: v for k, v in EXAMPLE.items() if k != "message_id"}
    return RecordRun.model_validate({**fields, **changes})


def given(*events: RunRecorded) -> RunState | None:
    """The state of a run stream that holds `events` (None when there are none)."""
    state: RunState | None = None
    for event in events:
        state = evolve_run(state, event, AT)
    return state


def when(command: RecordRun, state: RunState | None) -> list[RunRecorded]:
    return decide_run(command, state)


def test_recording_a_new_run_records_every_fact_of_it() -> None:
    command = record_run()
    assert when(command, given()) == [RunRecorded(**command.facts())]


def test_recording_a_recorded_run_again_changes_nothing() -> None:
    recorded = when(record_run(), given())
    assert when(record_run(), given(*recorded)) == []


def test_another_account_of_a_recorded_run_changes_nothing() -> None:
    recorded = when(record_run(), given())
    other = record_run(metrics={"auc": 0.5}, model_name="another_model")
    assert when(other, given(*recorded)) == []


def test_a_recorded_run_holds_what_it_was_recorded_with_and_when() -> None:
    command = record_run()
    state = given(*when(command, given()))
    assert state is not None
    assert state.run.model_dump() == {k: v for k, v in command.model_dump().items() if k != "type"}
    assert state.recorded_at == AT


def test_a_run_without_a_model_name_is_recorded_too() -> None:
    state = given(*when(record_run(model_name=None), given()))
    assert state is not None and state.run.model_name is None


def test_a_stream_holding_a_run_twice_is_refused_when_folded() -> None:
    event = when(record_run(), given())[0]
    with pytest.raises(ValueError, match="recorded twice"):
        given(event, event)


def test_a_run_stream_folds_from_its_stored_envelopes() -> None:
    event = when(record_run(), given())[0]
    envelope = Envelope(
        event_id=uuid4(),
        stream_id=run_stream_id(event.run_id),
        stream_version=1,
        type=event.type,
        recorded_at=AT,
        actor="training-ingest",
        payload=event.model_dump(mode="json", exclude={"type"}),
        prev_hash=GENESIS_HASH,
        hash="0" * 64,
    )
    assert fold_run([envelope]) == given(event)
    assert fold_run([]) is None


# The TrainingCompleted contract ------------------------------------------------------------------


def test_the_documented_example_is_a_valid_training_completed() -> None:
    message = TrainingCompleted.model_validate(EXAMPLE)
    assert message.model_dump(mode="json") == EXAMPLE


def test_only_the_ids_the_artifact_uri_and_the_finish_time_are_required() -> None:
    minimal = {
        "message_id": str(uuid4()),
        "run_id": "r1",
        "artifact": {"uri": "s3://m/r1"},
        "finished_at": "2026-11-26T11:00:00Z",
    }
    message = TrainingCompleted.model_validate(minimal)
    assert message.model_name is None and message.metrics == {} and message.code is None


def test_missing_required_fields_are_each_named() -> None:
    with pytest.raises(ValidationError) as refused:
        TrainingCompleted.model_validate({"artifact": {}})
    missing = {".".join(str(p) for p in e["loc"]) for e in refused.value.errors()}
    assert missing == {"message_id", "run_id", "artifact.uri", "finished_at"}


def test_an_unknown_field_is_refused_by_name_even_when_nested() -> None:
    extra = {**EXAMPLE, "owner": "me", "artifact": {**EXAMPLE["artifact"], "checksum": "x"}}
    with pytest.raises(ValidationError) as refused:
        TrainingCompleted.model_validate(extra)
    named = {".".join(str(p) for p in e["loc"]) for e in refused.value.errors()}
    assert named == {"owner", "artifact.checksum"}


def test_a_run_that_finishes_before_it_starts_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot finish before it starts"):
        TrainingCompleted.model_validate({**EXAMPLE, "started_at": "2026-11-26T12:00:00Z"})


def test_a_time_without_a_zone_is_utc() -> None:
    message = TrainingCompleted.model_validate({**EXAMPLE, "finished_at": "2026-11-26T11:00:00"})
    assert message.finished_at == datetime(2026, 11, 26, 11, 0, tzinfo=UTC)


@pytest.mark.parametrize("run_id", ["", "a/b", "has space", "x" * 257])
def test_a_run_id_that_cannot_name_a_stream_or_a_path_is_refused(run_id: str) -> None:
    with pytest.raises(ValidationError, match="run id"):
        TrainingCompleted.model_validate({**EXAMPLE, "run_id": run_id})


def test_an_invalid_model_name_is_refused() -> None:
    with pytest.raises(ValidationError, match="model name"):
        TrainingCompleted.model_validate({**EXAMPLE, "model_name": "a/b"})
