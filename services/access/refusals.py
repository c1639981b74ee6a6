"""Recording refused attempts as events, off the request path: a refusal is queued (never
awaited), and a writer appends what is queued in batches, each batch in one statement to a new
stream of its own (`refusal:<uuid7>`), so that no two writes ever contend.

The queue is bounded: when refusals arrive faster than the database takes them (a flood of bad
tokens), the ones that do not fit are counted instead, and the writer records the count as one
AccessRefusalsDropped event once it catches up. The flood itself costs a dict lookup and a 401."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg

from registrar.contracts.events import AccessRefusalsDropped, AccessRefused
from registrar.contracts.identifiers import uuid7
from registrar.store.event_store import NewEvent, PostgresEventStore, StreamHead

log = logging.getLogger("registrar.access")

REFUSAL_STREAM_PREFIX = "refusal:"


class RefusalRecorder:
    def __init__(
        self,
        store: PostgresEventStore,
        capacity: int = 10_000,
        batch: int = 256,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.batch = batch
        self.clock = clock
        self.recorded = 0
        self.dropped = 0
        """Refusals counted but not recorded since the last AccessRefusalsDropped."""
        self._queue: asyncio.Queue[NewEvent] = asyncio.Queue(capacity)

    def record(self, refusal: AccessRefused) -> None:
        """Queue `refusal`; if the queue is full, count it instead. Never blocks."""
        event = self._new_event(refusal, refusal.actor)
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.dropped += 1

    def pending(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        """Write queued refusals until cancelled."""
        while True:
            first = await self._queue.get()
            await self._write_batch(first)

    async def flush(self) -> None:
        """Write everything queued now (at shutdown, and in tests)."""
        while not self._queue.empty():
            await self._write_batch(self._queue.get_nowait())
        await self._record_dropped()

    async def _write_batch(self, first: NewEvent) -> None:
        """Append up to `batch` queued refusals in one statement, as a new stream of their own:
        one round trip for them all, and no other writer ever appends to that stream."""
        events = [first]
        while len(events) < self.batch and not self._queue.empty():
            events.append(self._queue.get_nowait())
        try:
            await self.store.append(f"{REFUSAL_STREAM_PREFIX}{uuid7()}", StreamHead(), events)
        except (OSError, asyncpg.PostgresError) as error:
            self.dropped += len(events)
            log.warning("could not record %d refused attempts: %s", len(events), error)
        else:
            self.recorded += len(events)
        await self._record_dropped()

    async def _record_dropped(self) -> None:
        if not self.dropped or not self._queue.empty():
            return
        count, self.dropped = self.dropped, 0
        event = self._new_event(AccessRefusalsDropped(count=count), "registrar")
        try:
            await self.store.append(f"{REFUSAL_STREAM_PREFIX}{uuid7()}", StreamHead(), [event])
        except (OSError, asyncpg.PostgresError) as error:
            self.dropped += count
            log.warning("could not record that %d refused attempts were dropped: %s", count, error)

    def _new_event(self, event: AccessRefused | AccessRefusalsDropped, actor: str) -> NewEvent:
        event_id = uuid7()
        return NewEvent(
            event_id=event_id,
            type=event.type,
            payload=event.model_dump(mode="json", exclude={"type"}),
            recorded_at=self.clock(),
            actor=actor,
            causation_id=None,
            correlation_id=event_id,
        )
