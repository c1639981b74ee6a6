"""Consuming messages other services send (training runs, commands) and the events the relay
publishes: bytes as sent, acknowledged only after the work is done, read again after a failure,
and parked on registrar.deadletter with the reason when they cannot be used."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from registrar.contracts.codec import dumps
from registrar.contracts.topics import DEADLETTER
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
) -> Callable[[bytes, KafkaMessage], Awaitable[None]]:
    """A handler for a subscriber with AckPolicy.MANUAL that acknowledges each message once `work`
    is done with it. If `work` fails, it seeks back to the message (an offset commit covers every
    message before it, so a later acknowledgement must not pass a failed one) and, after a pause,
    reads it again. A message over `max_bytes` is dead-lettered without being read (None: the
    relay's own events, which must all be read)."""
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
                await dead_letter(broker, record, reason, "too_large")
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
    broker: KafkaBroker, record: ConsumerRecord[Any, Any], reason: str, code: str = "invalid"
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
    await broker.publish(value, DEADLETTER.name, key=key, headers=headers)
