"""The webhook dispatcher: follows the event store with a durable cursor (the catch-up reader the
relay uses, so no event that commits late is skipped), turns each event into a delivery for every
webhook subscribed to it at that point of the history, stores the deliveries with the cursor in
one transaction, and hands them to each webhook's queue (registrar.webhooks.sender).

Delivery is at least once: an attempt is recorded after the receiver answered, so a crash in
between sends it again, with the same delivery id for the receiver to deduplicate on. Queues,
attempts and each webhook's run of failures are in PostgreSQL and survive restarts. One process
delivers at a time (a PostgreSQL advisory lock); another that runs it stands by and takes over."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection
from dataclasses import replace
from datetime import timedelta
from typing import Any

from sqlalchemy import text

from registrar.contracts.codec import dumps, loads
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import EVENT_TYPES, redacted
from registrar.contracts.webhooks import (
    ACTIVE,
    ALL_EVENTS,
    DISABLED,
    WEBHOOK_EVENT_TYPES,
    webhook_event_from_payload,
)
from registrar.domain import webhooks as rules
from registrar.domain.webhook_payloads import MLFLOW_EVENT_OF, mlflow_body, mlflow_data, native_body
from registrar.projector.wake_signal import WakeSignal
from registrar.registry import Registry
from registrar.retrying import OUTAGE
from registrar.store.advisory_locks import HeldLock, lock_key, session_lock
from registrar.store.event_store import START, Checkpoint, PostgresEventStore, RecordedEvent
from registrar.webhooks.attempt_recorder import AttemptRecorder
from registrar.webhooks.config import WebhookConfig
from registrar.webhooks.registrations import WebhookRegistrations
from registrar.webhooks.secret_box import SecretUnreadable
from registrar.webhooks.sender import Delivery, Result, Target, WebhookSender

log = logging.getLogger("registrar.webhooks")

LOCK = lock_key("registrar.webhooks.dispatcher")
CHANNEL = "registrar_webhooks"
"""NOTIFY channel of migration 0020's trigger: a webhook changed (the payload is its id)."""
DELIVERY_NAMESPACE = uuid.UUID("0b1d2c3e-5f60-4a7b-8c9d-0e1f2a3b4c5d")
RETENTION = timedelta(days=7)
"""How long finished deliveries (and their attempts) stay in the log."""
WATCH_SECONDS = 5.0

_INSERT = (
    "INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, position, event_type, body)"
    " SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::text[],"
    " $6::text[]) ON CONFLICT (delivery_id) DO NOTHING"
)
_SAVE_CURSOR = (
    "INSERT INTO webhook_cursor (name, transaction_id, position) VALUES ($1, $2, $3)"
    " ON CONFLICT (name) DO UPDATE SET transaction_id = excluded.transaction_id,"
    " position = excluded.position, updated_at = now()"
)
_SUBSCRIPTIONS_AT = (
    "SELECT e.type, e.payload FROM events e"
    " WHERE e.stream_id IN (SELECT 'webhook:' || webhook_id FROM webhooks)"
    "   AND (e.transaction_id, e.position) <= ($1::text::xid8, $2)"
    " ORDER BY e.stream_id, e.stream_version"
)
_TARGETS = (
    "SELECT w.webhook_id, w.url, w.format, w.status, w.has_secret, w.deleted_at IS NOT NULL"
    " AS deleted, s.ciphertext, s.key_id FROM webhooks w LEFT JOIN webhook_secrets s USING"
    " (webhook_id)"
)
_PENDING = (
    "SELECT delivery_id, event_type, position, body, attempts FROM webhook_deliveries"
    " WHERE webhook_id = $1 AND status = 'pending' AND ($2 OR next_attempt_at <= now())"
    "   AND NOT (delivery_id = ANY($3::uuid[])) ORDER BY next_attempt_at, position LIMIT $4"
)
_NEXT_DUE = (
    "SELECT extract(epoch FROM min(next_attempt_at) - now()) FROM webhook_deliveries"
    " WHERE webhook_id = $1 AND status = 'pending' AND next_attempt_at > now()"
)
_MODEL_NAME_AT = (
    "SELECT name FROM model_names WHERE stream_id = $1"
    " ORDER BY claimed_at <= $2 DESC, claimed_at DESC LIMIT 1"
)
_PRUNE = (
    "DELETE FROM webhook_deliveries WHERE delivery_id IN (SELECT delivery_id FROM"
    " webhook_deliveries WHERE status <> 'pending' AND created_at < now() - $1::interval"
    " LIMIT 10000)"
)


def delivery_id(webhook_id: str, event_id: uuid.UUID) -> uuid.UUID:
    """The same for every attempt, and for the same event again after a restart."""
    return uuid.uuid5(DELIVERY_NAMESPACE, f"{webhook_id}/{event_id}")


class WebhookDispatcher:
    def __init__(
        self,
        store: PostgresEventStore,
        config: WebhookConfig,
        *,
        name: str = "webhooks",
        batch_size: int = 1000,
        idle_poll_seconds: float = 0.02,
        idle_poll_max_seconds: float = 0.25,
        flush_seconds: float = 0.01,
    ) -> None:
        self.store = store
        self.config = config
        self.registrations = WebhookRegistrations(store, config)
        self.name = name
        self.batch_size = batch_size
        self.idle_poll_seconds = idle_poll_seconds
        self.idle_poll_max_seconds = idle_poll_max_seconds
        """Looks for appends made by other processes this often, backing off to the max while
        there are none; an append in this process wakes it at once."""
        self.flush_seconds = flush_seconds
        self.checkpoint = START
        self.subscriptions: dict[str, rules.WebhookState] = {}
        """Each webhook as of the cursor: which events it wanted at that point of the history."""
        self._by_type: dict[str, list[rules.WebhookState]] = {}
        self.targets: dict[str, Target] = {}
        """Each webhook as it is now: where to send, whether it may be sent to, its secret."""
        self.senders: dict[str, WebhookSender] = {}
        self.is_leader = False
        self._wake = WakeSignal()
        self.attempts = AttemptRecorder(store.engine, self.senders, flush_seconds)
        self._changed: set[str] = set()
        self._refresh = WakeSignal()
        self._names: dict[str, str] = {}
        self._disabling: set[asyncio.Task[Any]] = set()
        self._disabling_ids: set[str] = set()
        self._secrets: dict[str, str] = {}
        """Decrypted secrets by their ciphertext: decrypted once, not at every refresh."""

    def wake(self) -> None:
        """Something was appended in this process: look now."""
        self._wake.wake()

    async def run(self) -> None:
        """Wait to be the one delivering process, then deliver until cancelled; on a lost lock
        or database, start again (from the stored cursor and queues)."""

        def standing_by() -> None:
            log.info("another process delivers webhooks; standing by")

        while True:
            try:
                async with session_lock(self.store.engine, LOCK, waiting=standing_by) as held:
                    self.is_leader = True
                    try:
                        await self._lead(held)
                    finally:
                        self.is_leader = False
                        await self._stop_senders()
            except Exception as failed:
                log.warning("webhook delivery stopped (%r); starting again in 1 s", failed)
                await asyncio.sleep(1.0)

    async def _lead(self, held: HeldLock) -> None:
        pooled = await self.store.engine.raw_connection()
        try:
            listener = pooled.driver_connection
            assert listener is not None
            await listener.add_listener(CHANNEL, self._notified)
            await self._start()
            loops = [self._follow(), self.attempts.run(), self._watch(held, listener)]
            tasks = [asyncio.create_task(work) for work in loops]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raises what ended it
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            pooled.invalidate()  # its LISTEN goes with it

    # Start -----------------------------------------------------------------------------------

    async def _start(self) -> None:
        async with self.store.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            row = await driver.fetchrow(
                "SELECT transaction_id, position FROM webhook_cursor WHERE name = $1", self.name
            )
            self.checkpoint = START if row is None else Checkpoint(row[0], row[1])
            found = await driver.fetch(
                _SUBSCRIPTIONS_AT, str(self.checkpoint.transaction_id), self.checkpoint.position
            )
            health = await driver.fetch(
                "SELECT webhook_id, consecutive_failures,"
                " greatest(0, extract(epoch FROM paused_until - now()))::float8 AS left"
                " FROM webhook_health"
            )
            queued = await driver.fetch(
                "SELECT DISTINCT webhook_id FROM webhook_deliveries WHERE status = 'pending'"
            )
        self.subscriptions = {}
        for event in found:
            self._subscribe(webhook_event_from_payload(event["type"], _payload(event["payload"])))
        self._index()
        await self._refresh_targets(None)
        loop = asyncio.get_running_loop()
        failing = {row["webhook_id"]: row for row in health}
        for row in queued:
            sender = self._sender(row["webhook_id"])
            if sender is not None and row["webhook_id"] in failing:
                sender.failures = failing[row["webhook_id"]]["consecutive_failures"]
                sender.paused_until = loop.time() + failing[row["webhook_id"]]["left"]

    def _subscribe(self, event: Any) -> None:
        webhook_id = event.webhook_id
        state = rules.evolve(self.subscriptions.get(webhook_id), event)
        if state is None or state.deleted:
            self.subscriptions.pop(webhook_id, None)
        else:
            self.subscriptions[webhook_id] = state

    def _index(self) -> None:
        """Active subscriptions by the Registrar event type they want ("*": every type)."""
        by_type: dict[str, list[rules.WebhookState]] = {}
        for state in self.subscriptions.values():
            if not state.active:
                continue
            for name in state.events:
                wanted = [t for t, n in MLFLOW_EVENT_OF.items() if n == name]
                for event_type in wanted if state.format == "mlflow" else [name]:
                    by_type.setdefault(event_type, []).append(state)
        self._by_type = by_type

    # Following the store ---------------------------------------------------------------------

    async def _follow(self) -> None:
        empty, failures = 0, 0
        while True:
            try:
                batch = await self.store.read_all(self.checkpoint, self.batch_size)
                if batch:
                    await self._fan_out(batch)
                failures = 0
            except Exception:
                failures += 1
                log.exception("webhooks: reading or storing deliveries failed (try %d)", failures)
                await asyncio.sleep(OUTAGE.pause(failures))
                continue
            if len(batch) == self.batch_size:
                continue
            empty = 0 if batch else empty + 1
            wait = self.idle_poll_seconds * 2 ** min(max(empty - 1, 0), 16)
            await self._wake.sleep(min(wait, self.idle_poll_max_seconds))

    async def _fan_out(self, batch: list[RecordedEvent]) -> None:
        deliveries: list[tuple[Delivery, uuid.UUID]] = []
        for recorded in batch:
            envelope = recorded.envelope
            if envelope.type == "ModelRegistered":
                self._names[envelope.stream_id] = str(envelope.payload.get("name", ""))
            elif envelope.type == "ModelRenamed":
                self._names[envelope.stream_id] = str(envelope.payload.get("new_name", ""))
            wanted = [*self._by_type.get(envelope.type, ()), *self._by_type.get(ALL_EVENTS, ())]
            bodies: dict[str, tuple[str, bytes] | None] = {}  # by format: made once an event
            for state in {state.webhook_id: state for state in wanted}.values():
                target = self.targets.get(state.webhook_id)
                if target is None or target.deleted:
                    continue
                if state.format not in bodies:
                    bodies[state.format] = await self._body(state.format, envelope)
                made = bodies[state.format]
                if made is not None and (state.format != "mlflow" or made[0] in state.events):
                    ident = delivery_id(state.webhook_id, envelope.event_id)
                    position = envelope.position or 0
                    delivery = Delivery(ident, state.webhook_id, made[0], position, made[1])
                    deliveries.append((delivery, envelope.event_id))
            if envelope.type in WEBHOOK_EVENT_TYPES:  # for the events after this one
                event = webhook_event_from_payload(envelope.type, envelope.payload)
                self._subscribe(event)
                self._index()
                if event.webhook_id not in self.targets:  # before its NOTIFY is heard
                    await self._refresh_targets({event.webhook_id})
        async with self.store.engine.begin() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            if deliveries:
                await driver.execute(
                    _INSERT,
                    [d.delivery_id for d, _ in deliveries],
                    [d.webhook_id for d, _ in deliveries],
                    [event_id for _, event_id in deliveries],
                    [d.position for d, _ in deliveries],
                    [d.event_type for d, _ in deliveries],
                    [d.body.decode() for d, _ in deliveries],
                )
            last = batch[-1].checkpoint
            await driver.execute(_SAVE_CURSOR, self.name, last.transaction_id, last.position)
        self.checkpoint = batch[-1].checkpoint
        for delivery, _ in deliveries:
            sender = self._sender(delivery.webhook_id)
            if sender is not None:
                sender.offer(delivery)

    async def _body(self, format: str, envelope: Envelope) -> tuple[str, bytes] | None:
        """(the event's name, the delivery's body) of `envelope` in `format`; None if that
        format has nothing to say about it."""
        if format == "mlflow":
            name = MLFLOW_EVENT_OF.get(envelope.type)
            if name is None:
                return None
            data = mlflow_data(envelope.type, envelope.payload, await self._model(envelope) or "")
            if data is None:
                return None
            return name, dumps(mlflow_body(name, data, envelope.recorded_at))
        event = dict(redacted(envelope))
        return envelope.type, dumps(native_body(event, await self._model(envelope)))

    async def _model(self, envelope: Envelope) -> str | None:
        """The name of the model the event concerns, as of the event."""
        if envelope.type not in EVENT_TYPES:
            named = envelope.payload.get("model_name") or envelope.payload.get("model")
            return named if isinstance(named, str) and named else None
        known = self._names.get(envelope.stream_id)
        if known is None:
            async with self.store.engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                found = await driver.fetchval(
                    _MODEL_NAME_AT, envelope.stream_id, envelope.recorded_at
                )
            known = self._names[envelope.stream_id] = found or envelope.stream_id
        return known

    # Queues ----------------------------------------------------------------------------------

    def _sender(self, webhook_id: str) -> WebhookSender | None:
        """The webhook's queue, started if need be; None for a webhook that is gone."""
        sender = self.senders.get(webhook_id)
        if sender is None:
            target = self.targets.get(webhook_id)
            if target is None or target.deleted:
                return None
            sender = self.senders[webhook_id] = WebhookSender(self, webhook_id)
            sender.start()
        return sender

    async def forget_sender(self, sender: WebhookSender) -> None:
        """A deleted webhook's queue ends: what it still held will not be sent."""
        if self.senders.get(sender.webhook_id) is sender:
            del self.senders[sender.webhook_id]
        async with self.store.engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE webhook_deliveries SET status = 'cancelled'"
                    " WHERE webhook_id = :id AND status = 'pending'"
                ),
                {"id": sender.webhook_id},
            )
        sender.task = None  # it is the task calling: let it end by itself
        await sender.stop()

    async def _stop_senders(self) -> None:
        senders = list(self.senders.values())
        self.senders.clear()
        await asyncio.gather(*(sender.stop() for sender in senders))
        for task in self._disabling:
            task.cancel()

    async def pending(
        self, webhook_id: str, known: Collection[uuid.UUID], limit: int, any_time: bool
    ) -> tuple[list[Delivery], float | None]:
        """The webhook's stored deliveries that are due (`any_time`: due or not), not in
        `known`, oldest due first; and in how many seconds the next later one falls due."""
        async with self.store.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            rows = await driver.fetch(_PENDING, webhook_id, any_time, list(known), limit)
            next_in = await driver.fetchval(_NEXT_DUE, webhook_id)
        found = [
            Delivery(
                row["delivery_id"],
                webhook_id,
                row["event_type"],
                row["position"],
                row["body"].encode(),
                row["attempts"],
            )
            for row in rows
        ]
        return found, None if next_in is None else float(next_in)

    def record(self, result: Result) -> None:
        self.attempts.record(result)

    def resume(self, sender: WebhookSender) -> None:
        """The webhook answers again: what waits for a retry is due now."""
        self.attempts.resume(sender.webhook_id)
        sender.backlog = True

    def disable(self, sender: WebhookSender) -> None:
        """Disable a webhook that failed `max_failures` times in a row (a WebhookDisabled
        event); its queue is kept, and resumes if it is enabled again."""
        target = self.targets.get(sender.webhook_id)
        if target is not None:  # stop sending now, before the event comes back by NOTIFY
            self.targets[sender.webhook_id] = replace(target, status=DISABLED)
        self._disabling_ids.add(sender.webhook_id)
        task = asyncio.create_task(self._disable(sender))
        self._disabling.add(task)
        task.add_done_callback(self._disabling.discard)

    async def _disable(self, sender: WebhookSender) -> None:
        try:
            position = await self.registrations.disable(
                sender.webhook_id,
                failures=sender.failures,
                status_code=sender.last_status_code,
                error=sender.last_error,
            )
        finally:
            self._disabling_ids.discard(sender.webhook_id)
        if position is not None:
            log.warning(
                "webhook %s disabled after %d consecutive failed attempts (last: %s)",
                sender.webhook_id,
                sender.failures,
                sender.last_error,
            )

    # Webhooks as they are now ----------------------------------------------------------------

    def _notified(self, _conn: Any, _pid: int, _channel: str, webhook_id: str) -> None:
        self._changed.add(webhook_id)
        self._refresh.wake()

    async def _watch(self, held: HeldLock, listener: Any) -> None:
        """Keep `targets` current (on NOTIFY, and every WATCH_SECONDS in case one was missed),
        check the lock's session, prune old deliveries."""
        loop = asyncio.get_running_loop()
        checked = pruned = loop.time()
        while True:
            await self._refresh.sleep(WATCH_SECONDS)
            changed, self._changed = self._changed, set()
            if loop.time() - checked >= WATCH_SECONDS:
                await held.check()
                await listener.fetchval("SELECT 1")  # its LISTEN session is alive
                checked = loop.time()
                await self._refresh_targets(None)
            elif changed:
                await self._refresh_targets(changed)
            if loop.time() - pruned >= 600:
                pruned = loop.time()
                async with self.store.engine.begin() as conn:
                    driver = (await conn.get_raw_connection()).driver_connection
                    assert driver is not None
                    await driver.execute(_PRUNE, RETENTION)

    async def _refresh_targets(self, ids: set[str] | None) -> None:
        """Read the webhooks `ids` (None: every live one) as they are now; a webhook enabled
        again resumes its queue, a deleted one's queue ends."""
        if ids is None:
            query, args = f"{_TARGETS} WHERE w.deleted_at IS NULL", []
        else:
            query, args = f"{_TARGETS} WHERE w.webhook_id = ANY($1::text[])", [list(ids)]
        async with self.store.engine.connect() as conn:
            driver = (await conn.get_raw_connection()).driver_connection
            assert driver is not None
            rows = await driver.fetch(query, *args)
        found = {row["webhook_id"] for row in rows}
        if ids is None:  # forget secrets no webhook has any more
            kept = {row["ciphertext"] for row in rows}
            self._secrets = {k: v for k, v in self._secrets.items() if k in kept}
        for gone in set(self.targets) - found if ids is None else ():
            self.targets[gone] = replace(self.targets[gone], deleted=True)
            self._wake_sender(gone)
        for row in rows:
            secret, problem = self._secret(row)
            target = Target(
                row["webhook_id"],
                row["url"],
                row["format"],
                row["status"],
                row["has_secret"],
                row["deleted"],
                secret,
                problem,
            )
            if target.webhook_id in self._disabling_ids and target.status == ACTIVE:
                target = replace(target, status=DISABLED)  # its WebhookDisabled is on its way
            before = self.targets.get(target.webhook_id)
            self.targets[target.webhook_id] = target
            if before is not None and not before.sendable and target.sendable:
                sender = self._sender(target.webhook_id)
                if sender is not None:
                    sender.reactivate()
            else:
                self._wake_sender(target.webhook_id)

    def _wake_sender(self, webhook_id: str) -> None:
        sender = self.senders.get(webhook_id)
        if sender is not None:
            sender.signal.wake()

    def _secret(self, row: Any) -> tuple[str | None, str | None]:
        """(the webhook's secret, why it cannot be used) from its row."""
        ciphertext = row["ciphertext"]
        if ciphertext is None:
            missing = "its secret is missing from webhook_secrets: set it again"
            return None, missing if row["has_secret"] else None
        known = self._secrets.get(ciphertext)
        if known is None:
            try:
                known = self.registrations.box.open(ciphertext, row["key_id"])
            except SecretUnreadable as unreadable:
                log.error("webhook %s: %s", row["webhook_id"], unreadable)
                return None, str(unreadable)
            self._secrets[ciphertext] = known
        return known, None


def _payload(raw: Any) -> dict[str, Any]:
    return raw if isinstance(raw, dict) else loads(raw)


def start_dispatcher(registry: Registry) -> asyncio.Task[None]:
    """Deliver `registry`'s webhooks from this process (configured by REGISTRAR_WEBHOOKS_*),
    woken by each append made here; the task runs until cancelled."""
    dispatcher = WebhookDispatcher(registry.store, WebhookConfig.from_env())
    registry.on_append.append(dispatcher.wake)
    return asyncio.create_task(dispatcher.run(), name="webhooks")
