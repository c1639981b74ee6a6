"""Training-run ingest: record a finished run in its stream and register the model version it
produced, from POST /v1/training-runs or the `training.completed` topic. Every id is derived from
the run, so a redelivered message, or another message about the same run, changes nothing."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from uuid import UUID, uuid5

from faststream.kafka import KafkaBroker

from registrar.access.principal import Principal
from registrar.bus.inbound import attach_ingest
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.commands import RegisterModel, RegisterVersion
from registrar.contracts.identifiers import derived_event_id
from registrar.contracts.topics import TRAINING_COMPLETED
from registrar.contracts.training import (
    RUN_SCHEMA_VERSION,
    RecordRun,
    TrainingCompleted,
    TrainingRun,
)
from registrar.contracts.values import Role
from registrar.domain.errors import Conflict
from registrar.domain.runs import RunState, decide_run, fold_run, run_stream_id
from registrar.domain.state import ModelState
from registrar.registry import Registry
from registrar.retrying import appended_with_retries
from registrar.store.event_store import NewEvent, StreamHead

log = logging.getLogger("registrar.ingest")

INGEST_GROUP = "registrar.ingest"
INGEST_ACTOR = "training-ingest"
INGEST_PRINCIPAL = Principal(INGEST_ACTOR, Role.CONTRIBUTOR)
"""Who records the runs of `training.completed` unless configured otherwise
(REGISTRAR_INGEST_USER, REGISTRAR_INGEST_ROLE): a service principal fixed when the consumer
starts, never whoever wrote the message. Contributor is enough to record runs and register."""
_ID_NAMESPACE = UUID("5d0c1f7e-9a43-4c56-b7a2-3f0d6c2e8b91")  # namespace of run-derived ids


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What ingesting a TrainingCompleted did: the run as recorded and, when it names a model,
    that model (as of the version's registration) and the version's number."""

    run: RunState
    model: ModelState | None
    version: int | None
    position: int
    """Global position of the last event written, or of the run's / version's event if the
    message changed nothing: wait for it to read this ingest's effects from a projection."""
    changed: bool
    """False when everything was recorded before (a redelivered message, or the same run)."""


def run_command_id(run: TrainingRun, *purpose: str) -> UUID:
    """A command id that depends only on the run and `purpose`, so handling the same run twice
    yields the same event ids (stored once). Time-ordered like uuid7, by the run's finish."""
    name = uuid5(_ID_NAMESPACE, "\x00".join((run.run_id, *purpose)))
    millis = max(0, int(run.finished_at.timestamp() * 1000))  # a uuid7 has no time before 1970
    base = UUID(int=(millis << 80) | (name.int & ((1 << 80) - 1)))
    return derived_event_id(base, 0)  # makes it a well-formed UUIDv7


async def load_run(registry: Registry, run_id: str) -> RunState | None:
    """Run `run_id` as recorded (strongly consistent), or None if it was never recorded."""
    return fold_run(await registry.store.read_stream(run_stream_id(run_id)))


async def ingest(
    registry: Registry, message: TrainingCompleted, caller: Principal
) -> IngestOutcome:
    """Record the run of `message` and, if it names a model, register the version it produced
    (registering the model first if there is none of that name).

    The version is made from the run as first recorded, not from `message`: a run's facts never
    change, and one run registers one version. Raises DomainError if the registry refuses the
    version (e.g. its model was deleted); the run stays recorded.
    """
    run, run_position, recorded_now = await _record_run(registry, message, caller.user)
    name = run.run.model_name
    if name is None:
        return IngestOutcome(run, None, None, run_position, recorded_now)
    meta = CommandMeta(
        caller.user,
        run_command_id(run.run, "RegisterVersion", name),
        correlation_id=message.message_id,
        role=caller.role,
    )
    before = await registry.commands.load(name)
    if before is None:
        try:
            await registry.commands.handle(RegisterModel(name=name), meta.part(1))
        except Conflict:
            pass  # registered meanwhile by another writer: add the version to it
    outcome = await registry.commands.handle(_version_of(run.run, name), meta)
    event = outcome.events[-1]
    # The command's event ids are the run's, so a version stored before comes back as it was.
    registered_now = event.stream_version > (before.version if before else 0)
    return IngestOutcome(
        run,
        outcome.state,
        int(event.payload["version"]),
        max(run_position, event.position or 0),
        recorded_now or registered_now,
    )


async def _record_run(
    registry: Registry, message: TrainingCompleted, actor: str
) -> tuple[RunState, int, bool]:
    """Append RunRecorded to the run's stream unless it holds it: (run, its position, new?)."""
    command = RecordRun(**message.facts())
    stream_id = run_stream_id(command.run_id)
    command_id = run_command_id(command, "RecordRun")

    async def once() -> tuple[RunState, int, bool]:
        stored = await registry.store.read_stream(stream_id)
        state = fold_run(stored)
        decided = decide_run(command, state)
        if not decided:  # recorded before
            assert state is not None
            return state, stored[-1].position or 0, False
        head = StreamHead(stored[-1].stream_version, stored[-1].hash) if stored else StreamHead()
        new_events = [
            NewEvent(
                event_id=derived_event_id(command_id, index),
                type=event.type,
                payload=event.model_dump(mode="json", exclude={"type"}),
                recorded_at=registry.commands.clock(),
                actor=actor,
                causation_id=command_id,
                correlation_id=message.message_id,
                schema_version=RUN_SCHEMA_VERSION,
            )
            for index, event in enumerate(decided)
        ]
        # A concurrent ingest of this run that got there first is read on the next try.
        appended = await registry.store.append(stream_id, head, new_events)
        recorded = fold_run([*stored, *appended])
        assert recorded is not None
        return recorded, appended[-1].position or 0, True

    return await appended_with_retries(once, what=f"run {command.run_id!r}", log=log)


def _version_of(run: TrainingRun, name: str) -> RegisterVersion:
    """The version a run registers: its artifact, results and inputs, what built it, and where
    it came from. The framework is the version's own field, and stays a tag too, as before."""
    context = {
        "experiment": run.experiment,
        "framework": run.framework,
        "code.repository": run.code.repository if run.code else "",
        "code.commit": run.code.commit if run.code else "",
        "producer": run.producer,
    }
    origin = f" of experiment {run.experiment!r}" if run.experiment else ""
    return RegisterVersion(
        name=name,
        source=run.artifact.uri,
        run_id=run.run_id,
        digest=run.artifact.digest,
        size=run.artifact.size,
        metrics=run.metrics,
        params=run.params,
        datasets=run.datasets,
        tags={key: value for key, value in context.items() if value},
        description=f"Registered from training run {run.run_id!r}{origin}.",
        framework=run.framework,
    )


# Kafka -------------------------------------------------------------------------------------------


def attach_training_ingest(
    broker: KafkaBroker,
    registry: Registry,
    *,
    group_id: str = INGEST_GROUP,
    caller: Principal = INGEST_PRINCIPAL,
    retry_delay_seconds: float = 1.0,
    prefix: str = "",
) -> None:
    """Consume `training.completed` on `broker` into `registry`, in consumer group `group_id`,
    recording as `caller`. A message that is not a valid TrainingCompleted, or whose version the
    registry refuses, is dead-lettered with the reason; see `attach_ingest` (and `prefix` there)."""

    async def record(message: TrainingCompleted, as_: Principal) -> None:
        await ingest(registry, message, as_)

    attach_ingest(
        broker,
        TRAINING_COMPLETED,
        TrainingCompleted,
        record,
        lambda message: f"run {message.run_id!r}",
        caller=caller,
        group_id=group_id,
        logger=log,
        retry_delay_seconds=retry_delay_seconds,
        prefix=prefix,
    )
