"""Projector services on Kafka: a projection consumes `registry.events` in a consumer group and
commits its offsets only after the read-model transaction commits. The projection records what it
applied in that same transaction (per stream version) and skips what it has seen, so the bus's
at-least-once delivery applies each event once in effect, in any order across partitions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from registrar.bus.kafka_broker import CONSUMER_TUNING
from registrar.contracts.envelope import Envelope
from registrar.contracts.topics import REGISTRY_EVENTS, group_name, topic_name
from registrar.projections.ports import Projection
from registrar.projector.halts import clear_halt, halt_reason, is_transient, record_halt
from registrar.projector.status import record_progress
from registrar.retrying import OUTAGE
from registrar.store.event_store import PostgresEventStore

log = logging.getLogger("registrar.projector")


def group_of(projection_name: str) -> str:
    return f"registrar.projection.{projection_name}"


HALTED_PAUSE_SECONDS = 60.0
"""How long a halted projection holds each batch it is handed before handing it back unread."""


def attach_projection(
    broker: KafkaBroker,
    store: PostgresEventStore,
    projection: Projection,
    *,
    group_id: str | None = None,
    max_records: int = 500,
    halted_pause_seconds: float = HALTED_PAUSE_SECONDS,
    prefix: str = "",
) -> None:
    """Run `projection` from `registry.events` on `broker` (started by the caller); `prefix`
    (REGISTRAR_TOPIC_PREFIX) is put before the topic's name and the consumer group's.

    A batch that fails for a reason that may pass (the database away) is read again after a
    pause. One that fails otherwise is applied one event at a time, and an event that fails
    twice halts the projection (see registrar.projector.halts): it applies nothing more, and
    commits no offset, until its process restarts."""
    failures = 0
    halted: str | None = None
    resumed = False

    async def apply(envelopes: list[Envelope]) -> None:
        try:
            async with store.engine.begin() as conn:
                await projection.apply(conn, envelopes)
                await record_progress(conn, projection.name, envelopes)
        except BaseException:
            projection.forget()
            raise

    async def apply_each(records: Sequence[ConsumerRecord[Any, bytes]]) -> bool:
        """Apply `records` one at a time; False (and the projection halted) at one that fails
        twice for a reason that does not pass."""
        nonlocal halted
        for record in records:
            for attempt in (1, 2):
                envelope = None
                try:
                    envelope = Envelope.model_validate_json(record.value or b"")
                    await apply([envelope])
                    break
                except Exception as failed:
                    if is_transient(failed):
                        raise
                    if attempt == 2:
                        where = f"{record.topic}[{record.partition}]@{record.offset}"
                        halted = f"{where}: {halt_reason(failed, envelope)}"
                        log.error("projection %s stopped: %s", projection.name, halted)
                        position = envelope.position if envelope is not None else None
                        await record_halt(store.engine, projection.name, halted, position)
                        return False
        return True

    @broker.subscriber(
        topic_name(REGISTRY_EVENTS, prefix),
        **CONSUMER_TUNING,
        group_id=group_name(group_id or group_of(projection.name), prefix),
        batch=True,
        max_records=max_records,
        batch_timeout_ms=10,  # the projection's lag includes this wait for a fuller batch
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.MANUAL,
    )
    async def apply_events(body: Any, msg: KafkaMessage) -> None:
        # `body` is what FastStream decoded; the records' own bytes are parsed here instead, so
        # nothing can fail before this handler runs (an unacked, un-nacked batch would be
        # committed past by the next ack).
        nonlocal failures, resumed
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        if halted is not None:
            await asyncio.sleep(halted_pause_seconds)
            await msg.nack()  # never committed past: a restart reads it again
            return
        try:
            if not resumed:
                await clear_halt(store.engine, projection.name)
                resumed = True
            await apply([Envelope.model_validate_json(record.value) for record in records])
        except Exception as failed:
            failures += 1
            log.exception("projection %s failed a batch (attempt %d)", projection.name, failures)
            try:
                if not is_transient(failed) and await apply_each(records):
                    failures = 0
                    await msg.ack()
                    return
            except Exception:
                log.exception("projection %s failed an event", projection.name)
            await asyncio.sleep(OUTAGE.pause(failures) if halted is None else 0)
            await msg.nack()  # seek back: the batch is read again, never committed past
            return
        failures = 0
        await msg.ack()  # offsets committed only now, after the read model committed
