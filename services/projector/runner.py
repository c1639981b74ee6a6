"""The projector: follows the event store's catch-up reader and applies each batch of events to a
projection, recording its checkpoint in the same transaction. Queries can wait for it to reach a
client's last write (read-your-writes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.projections.ports import Projection
from registrar.projector.halts import clear_halt, halt_reason, is_transient, record_halt
from registrar.projector.status import record_progress
from registrar.projector.wake_signal import WakeSignal
from registrar.retrying import OUTAGE
from registrar.store.advisory_locks import HeldLock, lock_key, session_lock
from registrar.store.event_store import START, Checkpoint, PostgresEventStore, RecordedEvent

log = logging.getLogger("registrar.projector")


_SAVE_CHECKPOINT = text(
    "INSERT INTO projection_checkpoints (projection, transaction_id, position)"
    " VALUES (:name, :tx, :pos) ON CONFLICT (projection) DO UPDATE"
    " SET transaction_id = excluded.transaction_id, position = excluded.position,"
    " updated_at = now()"
)


async def save_checkpoint(conn: AsyncConnection, name: str, checkpoint: Checkpoint) -> None:
    """Record, in the caller's transaction, that projection `name` has applied to `checkpoint`."""
    await conn.execute(
        _SAVE_CHECKPOINT,
        {"name": name, "tx": checkpoint.transaction_id, "pos": checkpoint.position},
    )


LOCK_CHECK_SECONDS = 5.0
"""How often a following projector checks that the session holding its lock is alive."""
WAITED_POLL_SECONDS = 0.002
"""How soon a projector looks again, while a query waits for it, after finding nothing new."""


class Projector:
    def __init__(
        self,
        store: PostgresEventStore,
        projection: Projection,
        *,
        batch_size: int = 1000,
        idle_poll_seconds: float = 0.05,
    ) -> None:
        self.store = store
        self.projection = projection
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.checkpoint = START
        self._wake = WakeSignal()
        self._progress = asyncio.Condition()
        self.batches = 0
        """How many batches this projector has applied: queries wait for the next one."""
        self.following = False
        """Whether `run` follows the store now (not standing by for another process)."""
        self._waiters = 0
        """Queries waiting for the next batch (applied_since)."""
        self.lock_check_seconds = LOCK_CHECK_SECONDS
        self._ahead: tuple[Checkpoint, asyncio.Task[list[RecordedEvent]]] | None = None
        """The batch after a full one, read while that one is applied (a backlog, a rebuild)."""
        self.last_batch: list[RecordedEvent] = []
        """The batch read last: the one that failed, when one fails."""
        self.halted: str | None = None
        """Why this projection stopped for good (an event it cannot apply), if it did."""

    def wake(self) -> None:
        """Something was appended: look now rather than at the next poll."""
        self._wake.wake()

    async def load_checkpoint(self) -> Checkpoint:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT transaction_id, position FROM projection_checkpoints"
                        " WHERE projection = :name"
                    ),
                    {"name": self.projection.name},
                )
            ).first()
        self.checkpoint = START if row is None else Checkpoint(row.transaction_id, row.position)
        return self.checkpoint

    async def catch_up_once(self, limit: int | None = None) -> int:
        """Apply the next batch (of at most `limit` events, else batch_size), if any; return how
        many events it held."""
        batch = await self._next_batch(limit or self.batch_size)
        self.last_batch = batch
        if not batch:
            return 0
        last = batch[-1].checkpoint
        if limit is None and len(batch) == self.batch_size:  # more waits: read it meanwhile
            self._ahead = (last, asyncio.create_task(self.store.read_all(last, self.batch_size)))
        try:
            async with self.store.engine.begin() as conn:
                envelopes = [recorded.envelope for recorded in batch]
                await self.projection.apply(conn, envelopes)
                await record_progress(conn, self.projection.name, envelopes)
                await save_checkpoint(conn, self.projection.name, last)
        except BaseException:
            self.projection.forget()
            self.stop_reading_ahead()
            raise
        async with self._progress:
            self.checkpoint = last
            self.batches += 1
            self._progress.notify_all()
        return len(batch)

    async def _next_batch(self, limit: int) -> list[RecordedEvent]:
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            after, reading = ahead
            if after == self.checkpoint and limit == self.batch_size:
                return await reading
            reading.cancel()
        return await self.store.read_all(self.checkpoint, limit)

    def stop_reading_ahead(self) -> None:
        """Drop a batch being read ahead (the projector stops, or its checkpoint moves)."""
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    async def run(self) -> None:
        """Follow the store until cancelled. A failing batch is retried, never skipped: waiting
        1 s, then twice as long each time up to a minute, so a stuck projection is loud but does
        not flood the log.

        One process at a time follows the store for a read model (a session advisory lock):
        two applying the same events at once would race on the same rows. Another process that
        runs it stands by and takes over when the first stops. The session holding the lock is
        checked every `lock_check_seconds`: lost (the server restarted, say), or the database
        away, the lock is taken again (or waited for, if another process took it meanwhile)."""

        def standing_by() -> None:
            log.info("another process follows the store for %s; standing by", self.projection.name)

        key = lock_key(f"registrar.projector.{self.projection.name}")
        while True:
            try:
                async with session_lock(self.store.engine, key, waiting=standing_by) as held:
                    self.following = True
                    await self.load_checkpoint()
                    try:
                        await self._follow(held)
                    finally:
                        self.following = False
                        self.stop_reading_ahead()
            except Exception as failed:  # LockLost, or the database is away: take it again
                log.warning(
                    "projection %s lost or could not take its lock (%r); trying again in 1 s",
                    self.projection.name,
                    failed,
                )
                await asyncio.sleep(1.0)

    async def _follow(self, held: HeldLock) -> None:
        await clear_halt(self.store.engine, self.projection.name)
        self.halted = None
        failures = 0
        careful_until: Checkpoint | None = None
        """After a batch failed for a reason that does not pass: one event at a time up to its
        end, to apply the good ones and find the event that fails."""
        checked = time.monotonic()
        while True:
            if time.monotonic() - checked >= self.lock_check_seconds:
                await held.check()  # LockLost: another process may follow the store now
                checked = time.monotonic()
            careful = careful_until is not None and self.checkpoint < careful_until
            try:
                applied = await self.catch_up_once(1 if careful else None)
            except asyncio.CancelledError:
                raise
            except Exception as failed:
                failures += 1
                log.exception(
                    "projection %s failed a batch after %s (attempt %d); retrying",
                    self.projection.name,
                    self.checkpoint,
                    failures,
                )
                if not is_transient(failed):
                    if careful and failures >= 2:  # one event, failing the same way again
                        await self._halt(failed)
                        await asyncio.Event().wait()  # halted: keep the lock, until cancelled
                    if not careful:  # at once, one event at a time
                        careful_until, failures = self.last_batch[-1].checkpoint, 0
                        continue
                await asyncio.sleep(OUTAGE.pause(failures))
                continue
            failures = 0
            if applied == self.batch_size:
                continue
            await self._wake.sleep(WAITED_POLL_SECONDS if self._waiters else self.idle_poll_seconds)

    async def _halt(self, failed: Exception) -> None:
        envelope = self.last_batch[0].envelope if self.last_batch else None
        reason = halt_reason(failed, envelope)
        log.error("projection %s stopped: %s", self.projection.name, reason)
        position = envelope.position if envelope is not None else None
        await record_halt(self.store.engine, self.projection.name, reason, position)
        self.halted = reason  # only now: whoever sees it reads the record
        async with self._progress:
            self._progress.notify_all()  # waiting queries: it will not get there

    async def applied_since(self, batches: int, timeout: float) -> None:
        """Return once a batch after the `batches`-th is applied, or after `timeout` seconds.

        While someone waits, the projector looks every WAITED_POLL_SECONDS: an append wakes it,
        but the catch-up reader may not see that event yet (another transaction still running
        on the server holds its horizon back), and the next look would otherwise be a whole idle
        poll away."""
        self._waiters += 1
        self.wake()
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout), self._progress:
                    await self._progress.wait_for(lambda: self.batches > batches)
        finally:
            self._waiters -= 1

    async def wait_for(self, target: Checkpoint, timeout: float) -> bool:
        """Wait until the projection has applied everything up to `target`; False on timeout."""
        if self.checkpoint >= target:
            return True
        self.wake()

        async def reached() -> None:
            async with self._progress:
                await self._progress.wait_for(lambda: self.checkpoint >= target)

        try:
            async with asyncio.timeout(timeout):
                await reached()
        except TimeoutError:
            return False
        return True
