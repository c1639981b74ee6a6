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
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from sqlalchemy import text

from registrar.bus.kafka_broker import ensure_topics
from registrar.contracts.codec import dumps
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import redacted
from registrar.contracts.topics import ALL_TOPICS, REGISTRY_EVENTS, Topic, topic_name
from registrar.projector.wake_signal import WakeSignal
from registrar.retrying import OUTAGE
from registrar.store.event_store import START, Checkpoint, PostgresEventStore, RecordedEvent

log = logging.getLogger("registrar.relay")

LEADER_LOCK = 0x52_656C_6179  # "Relay": the advisory lock id only the active relay holds
SENTINEL = Topic(
    "registrar.relay-sentinel",
    1,
    "Created by the relay and written by nobody: gone means the broker lost every topic (a"
    " memory-only broker restarted), so the relay republishes the store.",
)
"""registry.events itself cannot tell: a broker that auto-creates topics makes it again on the
relay's next publish, so its absence is seen only by a check that comes before that."""


def event_message(envelope: Envelope) -> tuple[bytes, bytes, dict[str, str]]:
    """(key, value, headers) of an event on registry.events, its secrets redacted."""
    envelope = redacted(envelope)
    headers = {
        "type": envelope.type,
        "event-id": str(envelope.event_id),
        "position": str(envelope.position),
        "stream-version": str(envelope.stream_version),
    }
    # dict(envelope), not model_dump: the fields are already JSON-ready for orjson (UUIDs, UTC
    # times, the payload dict) and the relay does this for every event it publishes.
    return envelope.stream_id.encode(), dumps(dict(envelope)), headers


def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is not None:
        task.cancel()


class Ack(NamedTuple):
    """The broker's acknowledgement of consecutive records of one partition."""

    partition: int
    first_offset: int
    last_offset: int


@dataclass
class RelayProgress:
    checkpoint: Checkpoint = START
    next_offsets: dict[int, int] = field(default_factory=dict)
    republished: int = 0

    def broker_lost_messages(self, acks: Sequence[Ack]) -> bool:
        """True if the broker assigned an offset below one it had already assigned: it restarted
        empty (or its log was truncated), so what was published before is gone."""
        first: dict[int, int] = {}
        for ack in acks:
            first.setdefault(ack.partition, ack.first_offset)
        return any(offset < self.next_offsets.get(p, 0) for p, offset in first.items())

    def advance(self, checkpoint: Checkpoint, acks: Sequence[Ack]) -> None:
        self.checkpoint = checkpoint
        for ack in acks:
            self.next_offsets[ack.partition] = max(
                self.next_offsets.get(ack.partition, 0), ack.last_offset + 1
            )


class Relay:
    def __init__(
        self,
        store: PostgresEventStore,
        bootstrap: str,
        *,
        name: str = "registry.events",
        batch_size: int = 5000,
        idle_poll_seconds: float = 0.02,
        idle_poll_max_seconds: float = 0.25,
        broker_check_seconds: float = 5.0,
        topic_prefix: str = "",
    ) -> None:
        self.store = store
        self.bootstrap = bootstrap
        self.name = name
        self.topic_prefix = topic_prefix
        """REGISTRAR_TOPIC_PREFIX. Its sentinel is prefixed too: under a new prefix the sentinel is
        missing, so the relay publishes the whole store again, into the new topics."""
        self.topic = topic_name(REGISTRY_EVENTS, topic_prefix)
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.idle_poll_max_seconds = idle_poll_max_seconds
        """Looks for appends made elsewhere (other processes) every idle_poll_seconds while events
        flow, backing off to this when there are none; an append in this process wakes it."""
        self.broker_check_seconds = broker_check_seconds
        self.progress = RelayProgress()
        self.is_leader = False
        self._partitioner = DefaultPartitioner()  # Kafka's: murmur2 of the key
        self._partition_of: dict[bytes, int] = {}  # murmur2 in Python is slow: once per stream
        self._wake = WakeSignal()

    def wake(self) -> None:
        self._wake.wake()

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
            # aiokafka's producer itself rather than FastStream's publish: the relay sends batches
            # per partition with each event's own headers, which FastStream's publish_batch does
            # not offer, and one publish call per event capped it at ~6,500 events/s.
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, client_id="registrar-relay", acks="all"
            )
            await producer.start()
            try:
                await self._publish_forever(producer, lock_connection)
            finally:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(producer.stop(), 10)  # not forever if the broker is gone
        finally:
            self.is_leader = False
            pooled.invalidate()  # closing the session releases the advisory lock

    async def _broker_lost_everything(self) -> bool:
        """Whether the broker restarted empty since the relay last looked (its sentinel topic is
        gone); the topics are made again either way."""
        made = await ensure_topics(self.bootstrap, [SENTINEL, *ALL_TOPICS], self.topic_prefix)
        return topic_name(SENTINEL, self.topic_prefix) in made

    async def _publish_forever(self, producer: AIOKafkaProducer, lock_connection: Any) -> None:
        self.progress = await self.load_progress()
        if await self._broker_lost_everything() and self.progress.checkpoint != START:
            await self._start_over("the broker holds none of Registrar's topics")
        last_check = asyncio.get_running_loop().time()
        failures = 0
        empty_reads = 0
        ahead: asyncio.Task[list[RecordedEvent]] | None = None
        while True:
            try:
                now = asyncio.get_running_loop().time()
                if now - last_check >= self.broker_check_seconds:
                    last_check = now
                    await lock_connection.fetchval("SELECT 1")  # our lock's session is alive
                    if await self._broker_lost_everything():
                        _cancel(ahead)  # read from the old place
                        ahead = None
                        await self._start_over("its topics were gone")
                if ahead is not None:
                    batch, ahead = await ahead, None
                else:
                    batch = await self.store.read_all(self.progress.checkpoint, self.batch_size)
                empty_reads = 0 if batch else empty_reads + 1
                if batch:
                    sent = await self._send(producer, batch)
                    if len(batch) == self.batch_size:
                        # Read the next batch while the broker acknowledges this one.
                        after = batch[-1].checkpoint
                        ahead = asyncio.create_task(self.store.read_all(after, self.batch_size))
                    if not await self._confirm(batch, sent):
                        _cancel(ahead)  # started over: that read is from the old place
                        ahead = None
                    failures = 0
                    if ahead is not None:
                        continue
            except KafkaError as error:
                _cancel(ahead)
                ahead = None
                # The broker is down or restarting: keep the checkpoint (the batch is published
                # again, at least once) and retry. A broker that comes back empty is noticed by
                # its offsets, or by its missing sentinel, looked for before publishing on: what
                # it acknowledged before it went (a batch in flight too) is gone with it. Ending
                # here would end the relay's process.
                failures += 1
                log.warning("relay: publishing failed (%r); retry %d", error, failures)
                await asyncio.sleep(OUTAGE.pause(failures))
                last_check = -self.broker_check_seconds
                continue
            await self._wake.sleep(
                min(
                    self.idle_poll_seconds * 2 ** min(max(empty_reads - 1, 0), 16),
                    self.idle_poll_max_seconds,
                )
            )

    async def _send(
        self, producer: AIOKafkaProducer, batch: list[RecordedEvent]
    ) -> list[tuple[asyncio.Future[Any], int]]:
        """Hand `batch` to the producer, a record batch per partition (a stream's events go to
        its key's partition, in order); return each batch's ack future and record count."""
        partitions = sorted(await producer.partitions_for(self.topic))
        building: dict[int, tuple[Any, int]] = {}
        sent: list[tuple[asyncio.Future[Any], int]] = []

        async def flush(partition: int) -> None:
            builder, count = building.pop(partition)
            future = await producer.send_batch(builder, self.topic, partition=partition)
            sent.append((future, count))

        for recorded in batch:
            key, value, headers = event_message(recorded.envelope)
            partition = self._partition_of.get(key)
            if partition is None or partition not in partitions:
                partition = self._partition_of[key] = self._partitioner(key, partitions, partitions)
            record = {
                "key": key,
                "value": value,
                "timestamp": None,
                "headers": [(name, text.encode()) for name, text in headers.items()],
            }
            if partition in building and building[partition][0].append(**record) is not None:
                builder, count = building[partition]
                building[partition] = (builder, count + 1)
                continue
            if partition in building:
                await flush(partition)  # full: send it, start another
            builder = producer.create_batch()
            if builder.append(**record) is None:
                raise ValueError(f"event {recorded.envelope.event_id} is too large for a batch")
            building[partition] = (builder, 1)
        for partition in list(building):
            await flush(partition)
        return sent

    async def _confirm(
        self, batch: list[RecordedEvent], sent: list[tuple[asyncio.Future[Any], int]]
    ) -> bool:
        """Wait for every ack of `batch`, then move the checkpoint past it; False if the broker
        turned out to have lost what it had (the relay then starts over from the store)."""
        # Every ack awaited, so none fails unobserved; the first failure is raised.
        results = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        failed = [result for result in results if isinstance(result, BaseException)]
        if failed:
            raise failed[0]
        # A batch's ack carries its first offset; it holds `count` consecutive records.
        acks = [
            Ack(r.partition, r.offset, r.offset + count - 1)
            for r, (_, count) in zip(results, sent, strict=True)
        ]
        if self.progress.broker_lost_messages(acks):
            await self._start_over("the broker assigned offsets it had assigned before")
            return False
        self.progress.advance(batch[-1].checkpoint, acks)
        await self.save_progress()
        return True

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
