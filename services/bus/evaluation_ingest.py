"""Evaluation ingest: record the evaluation an `evaluation.completed` message carries on its
version, as the ingest's service principal. The command id is derived from the message id, so a
redelivered message records its evaluation once."""

from __future__ import annotations

import logging
from uuid import UUID

from faststream.kafka import KafkaBroker

from registrar.access.permissions import command_requirement, verdict
from registrar.access.principal import Principal
from registrar.bus.inbound import attach_ingest
from registrar.bus.training_ingest import INGEST_PRINCIPAL
from registrar.commands.command_handler import CommandMeta, IdempotencyKeyReused, Outcome
from registrar.contracts.commands import RecordEvaluation
from registrar.contracts.evaluations import EvaluationCompleted
from registrar.contracts.identifiers import derived_event_id
from registrar.contracts.topics import EVALUATION_COMPLETED
from registrar.domain.errors import Forbidden, Invalid
from registrar.registry import Registry

log = logging.getLogger("registrar.ingest")

EVALUATION_GROUP = "registrar.evaluations"
_COMMAND_OF_MESSAGE = 2_000_000
"""Which id derived from a message id is its command's: not one a command derives from its own
id (its events count from 0, its parts from 1,000,000), so a producer that also used the message
id as a command id elsewhere collides with nothing."""


def evaluation_command_id(message_id: UUID) -> UUID:
    """The command id of message `message_id`: the same for every delivery of it (a UUIDv7 with
    the message id's timestamp bits)."""
    return derived_event_id(message_id, _COMMAND_OF_MESSAGE)


async def ingest_evaluation(
    registry: Registry, message: EvaluationCompleted, caller: Principal
) -> Outcome:
    """Record the evaluation of `message` as `caller`. Raises DomainError if the registry refuses
    it (no such model or version, a caller who may not contribute, the message id used before
    for another evaluation)."""
    command = RecordEvaluation(
        name=message.model_name, version=message.version, evaluation=message.evaluation
    )
    # The permission table HTTP and the command bus apply: recording an evaluation is
    # contributing to the model, which no ownership stands in for.
    allowed = verdict(caller.user, caller.role, command_requirement(command))
    if not allowed.allowed:
        raise Forbidden(allowed.reason)
    meta = CommandMeta(
        caller.user,
        evaluation_command_id(message.message_id),
        correlation_id=message.message_id,
        role=caller.role,
        # The message id is the producer's idempotency key: the same id with another evaluation
        # is a mistake to report, not a redelivery to answer with the first one.
        chosen_by_caller=True,
    )
    try:
        return await registry.commands.handle(command, meta)
    except IdempotencyKeyReused:
        raise Invalid(
            f"message_id {message.message_id} was used before for another evaluation (or"
            " another model or version): send each evaluation with a new message_id, and the"
            " same one only when sending the same message again"
        ) from None


def attach_evaluation_ingest(
    broker: KafkaBroker,
    registry: Registry,
    *,
    group_id: str = EVALUATION_GROUP,
    caller: Principal = INGEST_PRINCIPAL,
    retry_delay_seconds: float = 1.0,
    prefix: str = "",
) -> None:
    """Consume `evaluation.completed` on `broker` into `registry`, in consumer group `group_id`,
    recording as `caller`. A message that is not a valid EvaluationCompleted, or that the registry
    refuses, is dead-lettered with the reason; see `attach_ingest` (and `prefix` there)."""

    async def record(message: EvaluationCompleted, as_: Principal) -> None:
        await ingest_evaluation(registry, message, as_)

    attach_ingest(
        broker,
        EVALUATION_COMPLETED,
        EvaluationCompleted,
        record,
        lambda message: (
            f"evaluation message {message.message_id} for version {message.version} of model"
            f" {message.model_name!r}"
        ),
        caller=caller,
        group_id=group_id,
        logger=log,
        retry_delay_seconds=retry_delay_seconds,
        prefix=prefix,
    )
