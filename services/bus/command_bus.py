"""Commands over Kafka: each CommandMessage on `registry.commands` is handled like an HTTP request
and answered by one CommandResult on `registry.command-results` (key = command id): the positions
of the events it wrote, or why it was refused. Messages that are not a valid CommandMessage go to
`registrar.deadletter` with the reason; the consumer keeps going.

Delivery and "exactly one result". A message is acknowledged only after its result is confirmed by
the broker, so a crash, a rebalance or a failure replays it. The replay changes nothing twice and
answers with the same result: the result is recorded in `command_results` before it is published
(a replay publishes the recorded one, or nothing once it is recorded as published), and a command
whose events are stored (their ids derive from the command id) is answered with those events'
positions rather than decided again. Only a refusal or a no-op whose result was not yet recorded
is decided again; it wrote nothing, and its first result was never published.

What remains: a crash after the broker confirmed the result and before `published_at` is recorded
(one statement) makes the replay publish that same result a second time; so can a rebalance that
hands the message to another consumer while the first is still answering it. Closing that window
needs the publication and the consumer offset committed atomically (Kafka transactions), which the
broker here does not offer. A consumer of registry.command-results should therefore keep the
first result per command id (a repeat is identical). Results are not sent again if the broker loses
them (a memory-only broker that restarts).

A failure other than a refused command (the database or the broker unavailable) is not
acknowledged: the message is read again after a pause that grows with each failure.

Access. With authentication on (an AccessGuard given), a message must carry a bearer token in its
`authorization` header. It runs as that token's user and role, and needs what the same command
needs over HTTP (the permission table); a refusal is recorded as an AccessRefused event like an
HTTP one. A message without a valid token is dead-lettered (and answered, unrecorded, with code
"unauthenticated"); one the token's role may not send is answered "permission_denied". With
authentication off, as over HTTP, the message's actor acts as admin.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.access.guard import AccessGuard, NotAuthenticated
from registrar.access.permissions import command_requirement
from registrar.access.principal import ANONYMOUS, Principal
from registrar.bus.inbound import (
    MAX_REASON_LENGTH,
    acknowledged_after,
    dead_letter,
    problems,
    raw_body,
)
from registrar.bus.kafka_broker import UNHURRIED_CONSUMER_TUNING
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.codec import canonical, dumps, loads
from registrar.contracts.command_messages import (
    AUTHORIZATION_HEADER,
    CommandError,
    CommandMessage,
    CommandResult,
)
from registrar.contracts.topics import COMMAND_RESULTS, REGISTRY_COMMANDS, group_name, topic_name
from registrar.contracts.values import Role
from registrar.domain.errors import DomainError
from registrar.registry import Registry

log = logging.getLogger("registrar.commands")

# Recorded results ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecordedResult:
    request_hash: str
    result: CommandResult
    published: bool


_RECORDED = text(
    "SELECT request_hash, result, published_at IS NOT NULL AS published"
    " FROM command_results WHERE command_id = :id"
)
_RECORD = text(
    "INSERT INTO command_results (command_id, request_hash, result)"
    " VALUES (:id, :hash, CAST(:result AS jsonb)) ON CONFLICT (command_id) DO NOTHING"
)
_MARK_PUBLISHED = text(
    "UPDATE command_results SET published_at = now()"
    " WHERE command_id = :id AND published_at IS NULL"
)


class CommandResults:
    """The `command_results` table: each Kafka command's result, and whether it went out."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def recorded(self, command_id: UUID) -> RecordedResult | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(_RECORDED, {"id": command_id})).first()
        if row is None:
            return None
        result = row.result if isinstance(row.result, dict) else loads(row.result)
        return RecordedResult(row.request_hash, CommandResult.model_validate(result), row.published)

    async def record(self, request_hash: str, result: CommandResult) -> RecordedResult:
        """Record `result` unless one is recorded for its command already; return the recorded."""
        async with self.engine.begin() as conn:
            await conn.execute(
                _RECORD,
                {
                    "id": result.command_id,
                    "hash": request_hash,
                    "result": dumps(result.model_dump(mode="json")).decode(),
                },
            )
        recorded = await self.recorded(result.command_id)
        assert recorded is not None
        return recorded

    async def mark_published(self, command_id: UUID) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(_MARK_PUBLISHED, {"id": command_id})


# The consumer ----------------------------------------------------------------------------------


def _read(body: bytes) -> tuple[CommandMessage | None, UUID | None, str]:
    """(the message, its command id, "") if `body` is a valid CommandMessage; else (None, the
    command id if one can be read, why the message is invalid)."""
    try:
        message = CommandMessage.model_validate_json(body)
    except ValidationError as invalid:
        reason = f"not a valid CommandMessage: {problems(invalid)}"[:MAX_REASON_LENGTH]
    else:
        return message, message.command_id, ""
    try:
        command_id = UUID(str(loads(body)["command_id"]))
    except Exception:
        command_id = None
    return None, command_id, reason


def _request_hash(message: CommandMessage | None, body: bytes) -> str:
    """Tells a redelivery (or a resend) of a command from another command reusing its id."""
    content = canonical(message.model_dump(mode="json")) if message is not None else body
    return hashlib.sha256(content).hexdigest()


def result_message(result: CommandResult) -> tuple[bytes, bytes, dict[str, str]]:
    """(key, value, headers) of a result on registry.command-results."""
    headers = {"command-id": str(result.command_id), "ok": "true" if result.ok else "false"}
    return str(result.command_id).encode(), dumps(result.model_dump(mode="json")), headers


def _header(record: ConsumerRecord[Any, Any], name: str) -> str | None:
    for key, value in record.headers or ():
        if key.lower() == name:
            return bytes(value).decode("utf-8", "replace")
    return None


def _refused(command_id: UUID, code: str, message: str) -> CommandResult:
    return CommandResult(
        command_id=command_id, ok=False, error=CommandError(code=code, message=message)
    )


def attach_command_bus(
    broker: KafkaBroker,
    registry: Registry,
    group_id: str = "registrar.commands",
    guard: AccessGuard | None = None,
    *,
    prefix: str = "",
) -> None:
    """Handle the commands on `registry.commands` with `registry`, from `broker` (started by the
    caller), in consumer group `group_id` (a new group starts at the earliest command).
    `guard`: authentication is on, and the guard (running) authenticates and authorizes.
    `prefix` (REGISTRAR_TOPIC_PREFIX) is put before the topics' names and the group's."""
    results = CommandResults(registry.engine)
    commands_topic = topic_name(REGISTRY_COMMANDS, prefix)

    async def execute(message: CommandMessage, caller: Principal) -> CommandResult:
        # A redelivered command handled before answers with what it did then: the command
        # handler finds its stored events by command id instead of deciding it again.
        command_id = message.command_id
        if guard is not None:
            need = command_requirement(message.command)
            decision = await guard.authorize(caller, need)
            if not decision.allowed:
                guard.record_refusal(
                    caller.user, need, decision.reason, "KAFKA", commands_topic, 403
                )
                return _refused(command_id, "permission_denied", decision.reason)
        meta = CommandMeta(caller.user, command_id, message.correlation_id, role=caller.role)
        try:
            outcome = await registry.commands.handle(message.command, meta)
        except DomainError as refused:
            return _refused(command_id, refused.code, refused.message)
        positions = [e.position for e in outcome.events if e.position is not None]
        return CommandResult(command_id=command_id, ok=True, positions=positions)

    def caller_of(message: CommandMessage, record: ConsumerRecord[Any, Any]) -> Principal:
        """The token's user and role; with authentication off, the message's actor as admin."""
        if guard is None:
            return Principal(message.actor, Role.ADMIN)
        return guard.authenticate(_header(record, AUTHORIZATION_HEADER))

    async def answer_command(body: bytes, record: ConsumerRecord[Any, Any]) -> None:
        message, command_id, reason = _read(body)
        if command_id is None:
            await dead_letter(broker, record, reason, prefix=prefix)
            return
        request_hash = _request_hash(message, body)
        recorded = await results.recorded(command_id)
        if recorded is None:
            if message is None:
                await dead_letter(broker, record, reason, prefix=prefix)
                result = _refused(command_id, "invalid", reason)
            else:
                try:
                    caller = caller_of(message, record)
                except NotAuthenticated as unknown:
                    await _unauthenticated(message, record, unknown.reason)
                    return
                result = await execute(message, caller)
            recorded = await results.record(request_hash, result)
        if recorded.request_hash != request_hash:
            reused = (
                f"command id {command_id} was already used by another command, which has its"
                " result: send each command with a new command_id"
            )
            said = f"{reason}; {reused}" if reason else reused
            await dead_letter(broker, record, said, prefix=prefix)
            return
        if recorded.published:
            return  # a redelivery: its result went out before
        await _publish(recorded.result)
        await results.mark_published(command_id)

    async def _unauthenticated(
        message: CommandMessage, record: ConsumerRecord[Any, Any], why: str
    ) -> None:
        """Dead-letter it and tell the sender, recording nothing: a message anyone could have
        written must not claim its command id."""
        assert guard is not None
        reason = f"not authenticated: {why}"
        need = command_requirement(message.command)
        guard.record_refusal(ANONYMOUS, need, reason, "KAFKA", commands_topic, 401)
        await dead_letter(broker, record, reason, "unauthenticated", prefix=prefix)
        await _publish(_refused(message.command_id, "unauthenticated", reason))

    async def _publish(result: CommandResult) -> None:
        key, value, headers = result_message(result)
        await broker.publish(value, topic_name(COMMAND_RESULTS, prefix), key=key, headers=headers)

    broker.subscriber(
        commands_topic,
        **UNHURRIED_CONSUMER_TUNING,
        group_id=group_name(group_id, prefix),
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
        decoder=raw_body,
        title="commands",
    )(acknowledged_after(answer_command, log, broker, prefix=prefix))
