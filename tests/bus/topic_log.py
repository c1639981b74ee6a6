"""Reading a Kafka topic in tests: every message from its beginning, in the background; a store
whose events a relay publishes; and names unique to a test run (earlier runs leave messages on a
shared broker's topics)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from uuid import uuid4

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.bus.kafka_broker import ensure_topics
from registrar.bus.relay import Relay
from registrar.store.event_store import PostgresEventStore

RUN = uuid4().hex[:8]
"""Earlier runs leave messages on the broker's topics: every name here is unique to this run."""


def unique(prefix: str) -> str:
    return f"{prefix}-{RUN}-{uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def relayed_store(engine: AsyncEngine, bootstrap: str) -> AsyncIterator[PostgresEventStore]:
    """The store on `engine`, with a relay publishing its events to registry.events meanwhile."""
    await ensure_topics(bootstrap)
    store = PostgresEventStore(engine)
    relay = asyncio.create_task(Relay(store, bootstrap, idle_poll_seconds=0.02).run())
    try:
        yield store
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


class TopicLog:
    """Every message on a topic from its beginning, read in the background."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.topic = topic
        self.records: list[ConsumerRecord[bytes, bytes]] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        await self._consumer.topics()  # metadata, so the partitions are known
        partitions = self._consumer.partitions_for_topic(self.topic) or set()
        self._consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        await self._consumer.seek_to_beginning()
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for record in self._consumer:
            self.records.append(record)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    async def wait_for(
        self, found: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], timeout: float = 30
    ) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not found(self.records):
            assert asyncio.get_running_loop().time() < deadline, f"timed out reading {self.topic}"
            await asyncio.sleep(0.05)
