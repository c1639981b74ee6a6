"""One webhook's queue: its deliveries sent in event order, at most `max_in_flight` at once, over
its own connections, so a slow or failing receiver delays only its own deliveries.

A failed attempt is retried after a pause that doubles (with jitter) up to a cap, the same
delivery id every time. While a webhook fails, it is paused as a whole (also doubling): one probe
at a time, and once one succeeds everything queued for it is due at once. After
`max_failures` failures in a row the dispatcher disables it (a WebhookDisabled event)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from registrar.contracts.webhooks import ACTIVE, WebhookFormat
from registrar.projector.wake_signal import WakeSignal
from registrar.webhooks.sending import Outcome, WebhookClient
from registrar.webhooks.signing import delivery_headers

if TYPE_CHECKING:
    from registrar.webhooks.dispatcher import WebhookDispatcher

log = logging.getLogger("registrar.webhooks")

IN_MEMORY = 1000
"""Deliveries a queue holds in memory; beyond, they wait in the database (a slow receiver's
backlog costs no memory)."""
IDLE_CHECK_SECONDS = 5.0
RECOVERED_AFTER = 3
"""Failures in a row after which a success means the receiver is back: everything queued for it
is due at once. (One delivery the receiver keeps refusing, between successes, keeps its own
pauses.)"""


@dataclass(slots=True)
class Delivery:
    delivery_id: UUID
    webhook_id: str
    event_type: str
    position: int
    body: bytes
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook as it is now (its table row, refreshed on every change)."""

    webhook_id: str
    url: str
    format: WebhookFormat
    status: str
    has_secret: bool
    deleted: bool
    secret: str | None = None
    secret_problem: str | None = None

    @property
    def sendable(self) -> bool:
        return self.status == ACTIVE and not self.deleted


@dataclass(frozen=True, slots=True)
class Result:
    """An attempt, for the dispatcher to record."""

    delivery: Delivery
    attempt: int
    started_at: datetime
    outcome: Outcome
    status: str
    """After it: "delivered", "pending" (to be retried) or "failed" (given up)."""
    next_attempt_at: datetime | None


def pause(attempt: int, first: float, cap: float, asked: float | None = None) -> float:
    """Seconds before trying again after the `attempt`-th failure: doubling from `first` up to
    `cap`, a random half of it to the whole (jitter), and never less than a receiver asked for
    (Retry-After), within the cap."""
    delay = min(cap, first * 2 ** min(attempt - 1, 30))
    delay = random.uniform(delay / 2, delay)
    return min(cap, max(delay, asked or 0.0))


@dataclass(eq=False)
class WebhookSender:
    dispatcher: WebhookDispatcher
    webhook_id: str
    failures: int = 0
    """Consecutive failed attempts."""
    paused_until: float = 0.0
    """Loop time before which nothing is sent (the webhook is failing)."""
    last_status_code: int | None = None
    last_error: str = ""
    backlog: bool = True
    """The database may hold due deliveries that are not in `queue`."""
    retry_at: float | None = None
    """Loop time at which a delivery retried later falls due."""
    queue: deque[Delivery] = field(default_factory=deque)
    known: set[UUID] = field(default_factory=set)
    """Deliveries queued, in flight, or whose attempt is not recorded yet: not read again."""
    in_flight: int = 0
    signal: WakeSignal = field(default_factory=WakeSignal)
    task: asyncio.Task[None] | None = None
    _client: WebhookClient | None = None
    _attempts: set[asyncio.Task[None]] = field(default_factory=set)
    _disabling: bool = False
    _left_in_database: int = 0
    """Offered deliveries left for a refill to read (counted: a refill under way may miss them)."""

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"webhook {self.webhook_id}")

    def offer(self, delivery: Delivery) -> None:
        """A new delivery, just stored: queued in memory unless the queue is long."""
        if delivery.delivery_id in self.known:
            return
        if self.backlog or len(self.queue) >= IN_MEMORY:
            self.backlog = True  # read from the database in its turn
            self._left_in_database += 1
        else:
            self.queue.append(delivery)
            self.known.add(delivery.delivery_id)
        self.signal.wake()

    def recorded(self, result: Result) -> None:
        """The dispatcher stored `result`'s attempt: the delivery may be read again when due."""
        self.known.discard(result.delivery.delivery_id)
        if result.status == "pending" and result.next_attempt_at is not None:
            left = (result.next_attempt_at - datetime.now(UTC)).total_seconds()
            due = asyncio.get_running_loop().time() + max(0.0, left)
            self.retry_at = due if self.retry_at is None else min(self.retry_at, due)

    def reactivate(self) -> None:
        """Enabled again (by a person): a fresh start, its queue due now."""
        self.failures, self.paused_until, self.retry_at = 0, 0.0, None
        self.backlog, self._disabling = True, False
        self.signal.wake()

    async def stop(self) -> None:
        for running in [self.task, *self._attempts]:
            if running is not None:
                running.cancel()
        for running in [self.task, *self._attempts]:
            if running is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await running
        if self._client is not None:
            await self._client.aclose()

    # The loop --------------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        config = self.dispatcher.config
        while True:
            target = self.dispatcher.targets.get(self.webhook_id)
            if target is None or target.deleted:
                await self.dispatcher.forget_sender(self)
                return
            now = loop.time()
            probing = self.failures > 0
            if not target.sendable:
                wait: float | None = None
            elif probing and now < self.paused_until:
                wait = self.paused_until - now
            elif self.in_flight >= (1 if probing else config.max_in_flight):
                wait = None  # an attempt that ends wakes us
            else:
                delivery = await self._next(probing)
                if delivery is not None:
                    self._send(delivery, target)
                    continue
                wait = None if self.retry_at is None else max(0.0, self.retry_at - loop.time())
            await self.signal.sleep(IDLE_CHECK_SECONDS if wait is None else min(wait, 60.0))

    async def _next(self, probing: bool) -> Delivery | None:
        loop = asyncio.get_running_loop()
        due = self.retry_at is not None and loop.time() >= self.retry_at
        if not self.queue and (self.backlog or due or probing):
            await self._refill(probing)
        return self.queue.popleft() if self.queue else None

    async def _refill(self, probing: bool) -> None:
        limit = 1 if probing else IN_MEMORY
        left = self._left_in_database
        rows, next_in = await self.dispatcher.pending(self.webhook_id, self.known, limit, probing)
        for row in rows:
            if row.delivery_id not in self.known:  # offered meanwhile: queued already
                self.queue.append(row)
                self.known.add(row.delivery_id)
        if not probing:
            # Deliveries offered while it read may have committed after its snapshot.
            self.backlog = len(rows) == limit or self._left_in_database != left
        loop = asyncio.get_running_loop()
        self.retry_at = None if next_in is None else loop.time() + next_in

    def _send(self, delivery: Delivery, target: Target) -> None:
        self.in_flight += 1
        attempt = asyncio.create_task(self._attempt(delivery, target))
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempts.discard)

    async def _attempt(self, delivery: Delivery, target: Target) -> None:
        config = self.dispatcher.config
        number = delivery.attempts + 1
        started = datetime.now(UTC)
        try:
            outcome = await self._post(delivery, target, number)
        except Exception as error:  # a bug here must not strand the delivery: retried later
            log.exception("webhook %s: sending %s failed", self.webhook_id, delivery.delivery_id)
            outcome = Outcome(None, None, f"Registrar could not send it: {error!r}")
        finally:
            self.in_flight -= 1
            self.signal.wake()
        delivery.attempts = number
        if outcome.ok:
            recovered = self.failures >= RECOVERED_AFTER
            self.failures, self.paused_until = 0, 0.0
            result = Result(delivery, number, started, outcome, "delivered", None)
            if recovered:
                self.dispatcher.resume(self)
        else:
            result = self._failed(delivery, number, started, outcome)
        self.dispatcher.record(result)
        if not outcome.ok and self.failures >= config.max_failures and not self._disabling:
            self._disabling = True
            self.dispatcher.disable(self)

    async def _post(self, delivery: Delivery, target: Target, number: int) -> Outcome:
        if target.has_secret and target.secret is None:
            return Outcome(None, None, f"cannot sign: {target.secret_problem}")
        headers = delivery_headers(
            target.format,
            delivery_id=str(delivery.delivery_id),
            body=delivery.body,
            secret=target.secret,
            event_type=delivery.event_type,
            attempt=number,
        )
        return await self._http().post(target.url, headers, delivery.body)

    def _failed(
        self, delivery: Delivery, number: int, started: datetime, outcome: Outcome
    ) -> Result:
        config = self.dispatcher.config
        loop = asyncio.get_running_loop()
        self.failures += 1
        self.last_status_code, self.last_error = outcome.status_code, outcome.problem()
        first, cap = config.retry_first_seconds, config.retry_max_seconds
        self.paused_until = loop.time() + pause(self.failures, first, cap, outcome.retry_after)
        if number >= config.max_attempts:
            log.warning(
                "webhook %s: delivery %s given up after %d attempts (%s)",
                self.webhook_id,
                delivery.delivery_id,
                number,
                self.last_error,
            )
            return Result(delivery, number, started, outcome, "failed", None)
        wait = pause(number, first, cap, outcome.retry_after)
        retry = loop.time() + wait
        self.retry_at = retry if self.retry_at is None else min(self.retry_at, retry)
        due = datetime.now(UTC) + timedelta(seconds=wait)
        return Result(delivery, number, started, outcome, "pending", due)

    def _http(self) -> WebhookClient:
        if self._client is None:
            config = self.dispatcher.config
            self._client = WebhookClient(
                allow_private=config.allow_private,
                max_connections=config.max_in_flight,
                timeout=config.timeout_seconds,
            )
        return self._client

    def health(self) -> tuple[int, float]:
        """(consecutive failures, seconds until it sends again) to record."""
        left = self.paused_until - asyncio.get_running_loop().time()
        return self.failures, max(0.0, left) if self.failures else 0.0
