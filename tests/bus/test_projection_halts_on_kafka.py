"""A Kafka-fed read model that meets an event it cannot apply applies the events before it one at
a time, then stops on that event, records why and where (topic, partition, offset, event), and
commits no offset past it. (The store-following case: tests/test_projection_halts.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from test_projection_halts import append_poison
from topic_log import relayed_store

from registrar.bus.kafka_projector import attach_projection
from registrar.commands.command_handler import CommandHandler, CommandMeta
from registrar.contracts.commands import RegisterModel
from registrar.projections.current_state import CurrentStateProjection
from registrar.store.event_store import PostgresEventStore


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


@pytest.fixture
async def fresh_store(
    engine: AsyncEngine, kafka_bootstrap: str
) -> AsyncIterator[PostgresEventStore]:
    async with relayed_store(engine, kafka_bootstrap) as store:
        yield store


async def test_a_kafka_fed_projection_stops_on_the_event_and_records_why(
    engine: AsyncEngine, kafka_bootstrap: str, fresh_store: PostgresEventStore
) -> None:
    name = unique("kafka-fed")
    await CommandHandler(fresh_store).handle(RegisterModel(name=name), CommandMeta("t"))
    poison = await append_poison(fresh_store, name)
    projection = CurrentStateProjection(fresh_store)
    broker = KafkaBroker(kafka_bootstrap, logger=None)
    attach_projection(
        broker, fresh_store, projection, group_id=unique("test.halts"), halted_pause_seconds=0.2
    )
    await broker.start()
    try:
        async with asyncio.timeout(60):
            while True:
                async with engine.connect() as conn:
                    row = (
                        await conn.execute(
                            text(
                                "SELECT halted_reason, halted_position FROM projection_progress"
                                " WHERE projection = 'current_state' AND halted_position = :p"
                            ),
                            {"p": poison},
                        )
                    ).first()
                if row is not None:
                    break
                await asyncio.sleep(0.1)
    finally:
        await broker.stop()
    assert row.halted_position == poison
    assert "ModelTagSet" in row.halted_reason and "registry.events[" in row.halted_reason
    async with engine.connect() as conn:
        applied = await conn.execute(
            text("SELECT count(*) FROM cs_models WHERE name = :n"), {"n": name}
        )
        assert applied.scalar() == 1, "the events before the poison were applied"
