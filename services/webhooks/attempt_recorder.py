"""Recording each attempt of a webhook delivery: the attempt in the delivery log, the delivery's
state (delivered, to retry at, given up), and the webhook's run of failures, in batches (one
transaction for what finished meanwhile), off the path of sending."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.retrying import OUTAGE
from registrar.webhooks.sender import Result, WebhookSender

log = logging.getLogger("registrar.webhooks")

_RECORD_ATTEMPTS = (
    "INSERT INTO webhook_attempts (delivery_id, attempt, started_at, status_code, latency_ms,"
    " error) SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::int[],"
    " $5::float8[], $6::text[]) ON CONFLICT DO NOTHING"
)
_RECORD_DELIVERIES = (
    "UPDATE webhook_deliveries d SET status = u.status, attempts = u.attempt,"
    " next_attempt_at = coalesce(u.next_at, d.next_attempt_at),"
    " delivered_at = CASE WHEN u.status = 'delivered' THEN now() ELSE d.delivered_at END,"
    " last_status_code = u.status_code, last_error = u.error"
    " FROM unnest($1::uuid[], $2::text[], $3::int[], $4::timestamptz[], $5::int[], $6::text[])"
    "   AS u(delivery_id, status, attempt, next_at, status_code, error)"
    " WHERE d.delivery_id = u.delivery_id AND d.status = 'pending'"
)
_RECORD_HEALTH = (
    "INSERT INTO webhook_health AS h (webhook_id, consecutive_failures, paused_until,"
    " last_success_at, last_failure_at, last_status_code, last_error)"
    " SELECT w, f, CASE WHEN p > 0 THEN now() + p * interval '1 second' END,"
    "   CASE WHEN s THEN now() END, CASE WHEN NOT s THEN now() END, c, e"
    " FROM unnest($1::text[], $2::int[], $3::float8[], $4::bool[], $5::int[], $6::text[])"
    "   AS u(w, f, p, s, c, e)"
    " ON CONFLICT (webhook_id) DO UPDATE SET consecutive_failures = excluded.consecutive_failures,"
    " paused_until = excluded.paused_until,"
    " last_success_at = coalesce(excluded.last_success_at, h.last_success_at),"
    " last_failure_at = coalesce(excluded.last_failure_at, h.last_failure_at),"
    " last_status_code = coalesce(excluded.last_status_code, h.last_status_code),"
    " last_error = coalesce(excluded.last_error, h.last_error)"
)
_RESUME = (
    "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE webhook_id = ANY($1::text[])"
    " AND status = 'pending' AND next_attempt_at > now()"
)


class AttemptRecorder:
    def __init__(
        self, engine: AsyncEngine, senders: dict[str, WebhookSender], flush_seconds: float
    ) -> None:
        self.engine = engine
        self.senders = senders
        """The dispatcher's queues, by webhook: told when their attempts are recorded."""
        self.flush_seconds = flush_seconds
        self._queue: asyncio.Queue[Result] = asyncio.Queue()
        self._resumed: set[str] = set()

    def record(self, result: Result) -> None:
        self._queue.put_nowait(result)

    def resume(self, webhook_id: str) -> None:
        """With the next batch: the webhook's deliveries waiting for a retry are due now."""
        self._resumed.add(webhook_id)

    async def run(self) -> None:
        """Record what was sent, in batches, until cancelled; on a failure, again."""
        while True:
            batch = [await self._queue.get()]
            await asyncio.sleep(self.flush_seconds)  # gather what else finishes meanwhile
            while len(batch) < 1000 and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            failures = 0
            while True:
                try:
                    await self._store(batch)
                    break
                except Exception:
                    failures += 1
                    log.exception("webhooks: recording %d attempts failed", len(batch))
                    await asyncio.sleep(OUTAGE.pause(failures))
            for result in batch:
                sender = self.senders.get(result.delivery.webhook_id)
                if sender is not None:
                    sender.recorded(result)
                    sender.signal.wake()

    async def _store(self, batch: Sequence[Result]) -> None:
        senders = {r.delivery.webhook_id: r.outcome.ok for r in batch}  # the last one's
        resumed, self._resumed = self._resumed, set()
        health = []
        for webhook_id, ok in senders.items():
            sender = self.senders.get(webhook_id)
            failures, left = sender.health() if sender is not None else (0, 0.0)
            last = sender.last_status_code if sender is not None and not ok else None
            error = sender.last_error if sender is not None and not ok else None
            health.append((webhook_id, failures, left, ok, last, error))
        try:
            async with self.engine.begin() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                await driver.execute(
                    _RECORD_ATTEMPTS,
                    [r.delivery.delivery_id for r in batch],
                    [r.attempt for r in batch],
                    [r.started_at for r in batch],
                    [r.outcome.status_code for r in batch],
                    [r.outcome.latency_ms for r in batch],
                    [None if r.outcome.ok else r.outcome.problem() for r in batch],
                )
                await driver.execute(
                    _RECORD_DELIVERIES,
                    [r.delivery.delivery_id for r in batch],
                    [r.status for r in batch],
                    [r.attempt for r in batch],
                    [r.next_attempt_at for r in batch],
                    [r.outcome.status_code for r in batch],
                    [None if r.outcome.ok else r.outcome.problem() for r in batch],
                )
                await driver.execute(_RECORD_HEALTH, *map(list, zip(*health, strict=True)))
                if resumed:
                    await driver.execute(_RESUME, list(resumed))
        except BaseException:
            self._resumed |= resumed
            raise
        for webhook_id in resumed:
            sender = self.senders.get(webhook_id)
            if sender is not None:
                sender.backlog = True
