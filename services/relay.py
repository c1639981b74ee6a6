"""The relay: publishes every committed event of the store to `registry.events`, in stream order,
at least once, and never skips an event that commits late (it follows the store's commit-order
reader). One relay is active at a time; a second waits on a PostgreSQL advisory lock and takes
over when the first dies. It notices a broker that came back empty and republishes everything."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker
from sqlalchemy import text

from contracts.codec import dumps
from contracts.envelope import Envelope
from contracts.topics import REGISTRY_EVENTS
from services.event_store import START, Checkpoint, PostgresEventStore, RecordedEvent
from services.kafka_broker import ensure_topics

log = logging.getLogger("registrar.relay")

LEADER_LOCK = 0x52_656C_6179  # "Relay": the advisory lock id only the active relay holds


def event_message(envelope: Envelope) -> tuple[bytes, bytes, dict[str, str]]:
    """(key, value, headers) of an event on registry.events."""
    headers = {
        "type": envelope.type,
        "event-id": str(envelope.event_id),
        "position": str(envelope.position),
        "stream-version": str(envelope.stream_version),
    }
    return envelope.stream_id.encode(), dumps(envelope.model_dump(mode="json")), headers


@dataclass
class RelayProgress:
    checkpoint: Checkpoint = START
    next_offsets: dict[int, int] = field(default_factory=dict)
    republished: int = 0

    def broker_lost_messages(self, acks: Sequence[Any]) -> bool:
        """True if the broker assigned an offset below one it had already assigned: it restarted
        empty (or its log was truncated), so what was published before is gone."""
        first: dict[int, int] = {}
        for ack in acks:
            first.setdefault(ack.partition, ack.offset)
        return any(offset < self.next_offsets.get(p, 0) for p, offset in first.items())

    def advance(self, checkpoint: Checkpoint, acks: Sequence[Any]) -> None:
        self.checkpoint = checkpoint
        for ack in acks:
            self.next_offsets[ack.partition] = max(
                self.next_offsets.get(ack.partition, 0), ack.offset + 1
            )


class Relay:
    def __init__(
        self,
        store: PostgresEventStore,
        bootstrap: str,
        *,
        name: str = "registry.events",
        batch_size: int = 2000,
        idle_poll_seconds: float = 0.05,
        broker_check_seconds: float = 5.0,
    ) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.name = name
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.broker_check_seconds = broker_check_seconds
        self.progress = RelayProgress()
        self.is_leader = False
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Wait to be the one active relay, then publish until cancelled (or the lock is lost)."""
        pooled = await self.store.engine.raw_connection()
        lock_connection = pooled.driver_connection
        try:
            while not await lock_connection.fetchval(
                "SELECT pg_try_advisory_lock($1)", LEADER_LOCK
            ):
                await asyncio.sleep(1.0)  # another relay is active: take over when it dies
            self.is_leader = True
            log.info("relay %s is the active relay", self.name)
            broker = KafkaBroker(self.bootstrap, client_id="registrar-relay", logger=None)
            await broker.start()
            try:
                await self._publish_forever(broker, lock_connection)
            finally:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(broker.stop(), 10)  # not forever if the broker is gone
        finally:
            self.is_leader = False
            pooled.invalidate()  # closing the session releases the advisory lock

    async def _publish_forever(self, broker: KafkaBroker, lock_connection: Any) -> None:
        await ensure_topics(self.bootstrap)
        self.progress = await self.load_progress()
        last_check = asyncio.get_running_loop().time()
        failures = 0
        while True:
            try:
                batch = await self.store.read_all(self.progress.checkpoint, self.batch_size)
                if batch:
                    await self._publish(broker, batch)
                    failures = 0
                    if len(batch) == self.batch_size:
                        continue
                now = asyncio.get_running_loop().time()
                if now - last_check >= self.broker_check_seconds:
                    last_check = now
                    await lock_connection.fetchval("SELECT 1")  # our lock's session is alive
                    if REGISTRY_EVENTS.name in await ensure_topics(self.bootstrap):
                        await self._start_over("registry.events was missing")
                        continue
            except KafkaError as error:
                # The broker is down or restarting: keep the checkpoint (the batch is published
                # again, at least once) and retry; a broker that comes back empty is noticed by
                # its offsets or its missing topic. Ending here would end the relay's process.
                failures += 1
                log.warning("relay: publishing failed (%r); retry %d", error, failures)
                await asyncio.sleep(min(5.0, 0.1 * 2**failures))
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.idle_poll_seconds)
            except TimeoutError:
                pass

    async def _publish(self, broker: KafkaBroker, batch: list[RecordedEvent]) -> None:
        pending = []
        for recorded in batch:
            key, value, headers = event_message(recorded.envelope)
            pending.append(
                await broker.publish(
                    value, REGISTRY_EVENTS.name, key=key, headers=headers, no_confirm=True
                )
            )
        # every message confirmed before moving on (all awaited, so none fails unobserved)
        results = await asyncio.gather(*pending, return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            raise failed[0]
        acks = results
        if self.progress.broker_lost_messages(acks):
            await self._start_over("the broker assigned offsets it had assigned before")
            return
        self.progress.advance(batch[-1].checkpoint, acks)
        await self.save_progress()

    async def _start_over(self, reason: str) -> None:
        log.warning(
            "relay: the broker lost published events (%s); republishing from the start", reason
        )
        self.progress = RelayProgress(republished=self.progress.republished + 1)
        await self.save_progress()

    async def load_progress(self) -> RelayProgress:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT transaction_id, position, partition_offsets, republished"
                        " FROM relay_state WHERE name = :name"
                    ),
                    {"name": self.name},
                )
            ).first()
        if row is None:
            return RelayProgress()
        offsets = {int(p): int(o) for p, o in row.partition_offsets.items()}
        return RelayProgress(Checkpoint(row.transaction_id, row.position), offsets, row.republished)

    async def save_progress(self) -> None:
        async with self.store.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO relay_state (name, transaction_id, position, partition_offsets,"
                    " republished) VALUES (:name, :tx, :pos, CAST(:offsets AS jsonb), :republished)"
                    " ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id,"
                    " position = excluded.position, partition_offsets = excluded.partition_offsets,"
                    " republished = excluded.republished, updated_at = now()"
                ),
                {
                    "name": self.name,
                    "tx": self.progress.checkpoint.transaction_id,
                    "pos": self.progress.checkpoint.position,
                    "offsets": dumps(
                        {str(p): o for p, o in self.progress.next_offsets.items()}
                    ).decode(),
                    "republished": self.progress.republished,
                },
            )
