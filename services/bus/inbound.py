"""Consuming messages other services send (training runs, evaluations, commands) and the events
the relay publishes: bytes as sent, acknowledged only after the work is done, read again after a
failure, and parked on registrar.deadletter with the reason when they cannot be used."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import BaseModel, ValidationError

from registrar.access.principal import Principal
from registrar.bus.kafka_broker import UNHURRIED_CONSUMER_TUNING
from registrar.contracts.codec import dumps
from registrar.contracts.topics import DEADLETTER, Topic, group_name, topic_name
from registrar.domain.errors import DomainError
from registrar.retrying import OUTAGE, Backoff

log = logging.getLogger("registrar.inbound")

MAX_REASON_LENGTH = 4000
"""Why a message is refused is cut to this many characters (a dead letter's `error` header, an
invalid command's result)."""
MAX_INBOUND_BYTES = 1_000_000
"""The largest message Registrar reads (a TrainingCompleted, a CommandMessage); a larger one is
dead-lettered unread."""
MAX_DEAD_LETTER_BYTES = 256 * 1024
"""A dead letter's value larger than this (brokers refuse messages over about 1 MB) is replaced
by a summary that fits: size, and an excerpt of the start."""
EXCERPT_BYTES = 1024
MAX_DEAD_LETTER_KEY = 1024

Message = TypeVar("Message", bound=BaseModel)


def raw_body(message: StreamMessage[Any]) -> bytes:
    """A FastStream decoder that leaves the body as bytes, so the handler sees bad input too."""
    return message.body


def problems(error: ValidationError) -> str:
    """What was wrong, field by field: `command.RegisterModel.name: Value error, ...; actor: ...`"""
    return "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'message'}: {item['msg']}"
        for item in error.errors(include_url=False)
    )


def retry_delay(failures: int, first: float = OUTAGE.first) -> float:
    """Seconds to wait before reading a failed message again: the common outage backoff."""
    return Backoff(first, OUTAGE.cap).pause(failures)


def acknowledged_after(
    work: Callable[[bytes, ConsumerRecord[Any, Any]], Awaitable[None]],
    logger: logging.Logger,
    broker: KafkaBroker,
    first_retry_delay: float = 1.0,
    max_bytes: int | None = MAX_INBOUND_BYTES,
    prefix: str = "",
) -> Callable[[bytes, KafkaMessage], Awaitable[None]]:
    """A handler for a subscriber with AckPolicy.MANUAL that acknowledges each message once `work`
    is done with it. If `work` fails, it seeks back to the message (an offset commit covers every
    message before it, so a later acknowledgement must not pass a failed one) and, after a pause,
    reads it again. A message over `max_bytes` is dead-lettered without being read (None: the
    relay's own events, which must all be read); `prefix`: the topics' (REGISTRAR_TOPIC_PREFIX)."""
    failures = 0

    async def handle(body: bytes, msg: KafkaMessage) -> None:
        nonlocal failures
        record: ConsumerRecord[Any, Any] = msg.raw_message
        try:
            if max_bytes is not None and len(body) > max_bytes:
                reason = (
                    f"the message holds {len(body):,} bytes; Registrar reads messages of at most"
                    f" {max_bytes:,}"
                )
                await dead_letter(broker, record, reason, "too_large", prefix=prefix)
            else:
                await work(body, record)
        except Exception:
            failures += 1
            logger.exception(
                "message %s[%d]@%d failed (attempt %d); it will be read again",
                record.topic,
                record.partition,
                record.offset,
                failures,
            )
            await asyncio.sleep(retry_delay(failures, first_retry_delay))
            await msg.nack()
            return
        failures = 0
        await msg.ack()

    handle.__name__ = getattr(work, "__name__", "handle")
    return handle


async def dead_letter(
    broker: KafkaBroker,
    record: ConsumerRecord[Any, Any],
    reason: str,
    code: str = "invalid",
    *,
    prefix: str = "",
) -> None:
    """Park an inbound message that cannot be used on registrar.deadletter with the reason
    (header `error`, and `error-code`) and its origin (`source-topic`, `source-partition`,
    `source-offset`): unchanged if it fits, else as a summary that does (header `truncated`)."""
    log.warning(
        "dead-lettering %s[%d]@%d: %s", record.topic, record.partition, record.offset, reason
    )
    value: bytes = record.value or b""
    headers = {
        "error": reason[:MAX_REASON_LENGTH],
        "error-code": code,
        "source-topic": record.topic,
        "source-partition": str(record.partition),
        "source-offset": str(record.offset),
    }
    if len(value) > MAX_DEAD_LETTER_BYTES:
        headers["truncated"] = "true"
        value = dumps(
            {
                "reason": reason[:MAX_REASON_LENGTH],
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "size": len(value),
                "excerpt": value[:EXCERPT_BYTES].decode("utf-8", "replace"),
            }
        )
    key = record.key[:MAX_DEAD_LETTER_KEY] if record.key else record.key
    await broker.publish(value, topic_name(DEADLETTER, prefix), key=key, headers=headers)


def attach_ingest(
    broker: KafkaBroker,
    topic: Topic,
    contract: type[Message],
    work: Callable[[Message, Principal], Awaitable[object]],
    about: Callable[[Message], str],
    *,
    caller: Principal,
    group_id: str,
    logger: logging.Logger,
    retry_delay_seconds: float = 1.0,
    prefix: str = "",
) -> None:
    """Consume `topic` on `broker` in consumer group `group_id` (both names after `prefix`,
    REGISTRAR_TOPIC_PREFIX): each message's bytes validated
    as `contract`, then `work` done with it as `caller` (a service principal fixed here, never
    whoever wrote the message).

    A message is acknowledged (its offset committed) only once done, or once dead-lettered on
    registrar.deadletter (original bytes, the reason in header `error`, prefixed by `about` the
    message) because it is not a valid `contract` or the registry refused it (DomainError). Any
    other failure (the database is down) rewinds to the message and retries it after a pause
    that doubles up to 30 s.
    """

    async def consume(body: bytes, record: ConsumerRecord[Any, Any]) -> None:
        refusal = await _done_or_refusal(body, contract, work, about, caller)
        if refusal is not None:
            code, reason = refusal
            await dead_letter(broker, record, reason, code, prefix=prefix)

    consume.__name__ = f"ingest_{topic.name.replace('.', '_')}"
    broker.subscriber(
        topic_name(topic, prefix),
        **UNHURRIED_CONSUMER_TUNING,
        group_id=group_name(group_id, prefix),
        ack_policy=AckPolicy.MANUAL,
        # A new group starts at the oldest message: what was sent before Registrar first started
        # must be recorded too.
        auto_offset_reset="earliest",
        decoder=raw_body,
    )(acknowledged_after(consume, logger, broker, retry_delay_seconds, prefix=prefix))


async def _done_or_refusal(
    body: bytes,
    contract: type[Message],
    work: Callable[[Message, Principal], Awaitable[object]],
    about: Callable[[Message], str],
    caller: Principal,
) -> tuple[str, str] | None:
    """Do `work` with `body`; None when done, (code, reason) when it must be dead-lettered."""
    try:
        message = contract.model_validate_json(body)
    except ValidationError as invalid:
        return "invalid", f"not a valid {contract.__name__}: {problems(invalid)}"
    try:
        await work(message, caller)
    except DomainError as refused:
        return refused.code, f"{about(message)}: {refused.message}"
    except ValidationError as invalid:
        return "invalid", f"{about(message)}: {problems(invalid)}"
    return None
