"""Projector services on Kafka: a projection consumes `registry.events` in a consumer group and
commits its offsets only after the read-model transaction commits. The projection records what it
applied in that same transaction (per stream version) and skips what it has seen, so the bus's
at-least-once delivery applies each event once in effect, in any order across partitions."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from registrar.bus.kafka_broker import CONSUMER_TUNING
from registrar.contracts.envelope import Envelope
from registrar.contracts.topics import REGISTRY_EVENTS
from registrar.projections.ports import Projection
from registrar.projector.status import record_progress
from registrar.store.event_store import PostgresEventStore

log = logging.getLogger("registrar.projector")


def group_of(projection_name: str) -> str:
    return f"registrar.projection.{projection_name}"


def attach_projection(
    broker: KafkaBroker,
    store: PostgresEventStore,
    projection: Projection,
    *,
    group_id: str | None = None,
    max_records: int = 500,
) -> None:
    """Run `projection` from `registry.events` on `broker` (started by the caller)."""
    failures = 0

    @broker.subscriber(
        REGISTRY_EVENTS.name,
        **CONSUMER_TUNING,
        group_id=group_id or group_of(projection.name),
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
        nonlocal failures
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        try:
            envelopes = [Envelope.model_validate_json(record.value) for record in records]
            async with store.engine.begin() as conn:
                await projection.apply(conn, envelopes)
                await record_progress(conn, projection.name, envelopes)
        except Exception:
            projection.forget()
            failures += 1
            log.exception("projection %s failed a batch (attempt %d)", projection.name, failures)
            await asyncio.sleep(min(30.0, 0.5 * 2**failures))
            await msg.nack()  # seek back: the batch is read again, never committed past
            return
        failures = 0
        await msg.ack()  # offsets committed only now, after the read model committed
