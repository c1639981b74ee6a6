"""The webhook shell: create, change, disable and delete webhooks (each an event in the webhook's
stream `webhook:<id>`, decided by registrar.domain.webhooks), keep their secrets encrypted beside
the events, answer from the table the events maintain (migration 0020), and send test deliveries.
Used by /v1/webhooks, MLflow's webhook endpoints and the dispatcher (to disable)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text

from registrar.commands.command_handler import CommandMeta, IdempotencyKeyReused, reused_key_message
from registrar.contracts.codec import dumps
from registrar.contracts.identifiers import derived_event_id, uuid7
from registrar.contracts.webhooks import (
    ACTIVE,
    ALL_EVENTS,
    MLFLOW_EVENTS,
    WebhookEvent,
    WebhookFormat,
    WebhookStatus,
    webhook_event_from_payload,
    webhook_stream,
)
from registrar.domain import webhooks as rules
from registrar.domain.errors import Conflict, Invalid, NotFound
from registrar.domain.webhook_payloads import MLFLOW_EXAMPLES, mlflow_body, native_example
from registrar.projections.paging import keyset_page
from registrar.retrying import appended_with_retries
from registrar.store.event_store import (
    ConcurrencyConflict,
    EventIdsTaken,
    NewEvent,
    PostgresEventStore,
    StreamHead,
)
from registrar.webhooks.config import WebhookConfig
from registrar.webhooks.secret_box import SecretBox, generated_secret
from registrar.webhooks.sending import KEPT_BODY_CHARS, WebhookClient
from registrar.webhooks.signing import delivery_headers
from registrar.webhooks.targets import check_target

log = logging.getLogger("registrar.webhooks")

DISPATCHER_ACTOR = "registrar:webhooks"
"""Who disables a webhook whose deliveries keep failing."""

_SELECT = (
    "SELECT w.webhook_id, w.name, w.description, w.url, w.events, w.format, w.status,"
    " w.disabled_reason, w.has_secret, w.created_at, w.created_by, w.created_position,"
    " w.updated_at, coalesce(h.consecutive_failures, 0) AS consecutive_failures,"
    " h.last_success_at, h.last_failure_at,"
    " (SELECT count(*) FROM webhook_deliveries d"
    "   WHERE d.webhook_id = w.webhook_id AND d.status = 'pending') AS pending_deliveries"
    " FROM webhooks w LEFT JOIN webhook_health h USING (webhook_id)"
)


@dataclass(frozen=True, slots=True)
class Changed:
    """A webhook after a change: its row, the change's position, and a generated secret to
    answer once (None when the caller chose it, or none changed)."""

    webhook: dict[str, Any]
    position: int
    secret: str | None = None


class WebhookRegistrations:
    def __init__(
        self,
        store: PostgresEventStore,
        config: WebhookConfig,
        box: SecretBox | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.config = config
        self._box = box
        self.clock = clock

    @property
    def box(self) -> SecretBox:
        if self._box is None:  # made on first need: a key file is written only if secrets are
            self._box = SecretBox.from_config(self.config)
        return self._box

    # Commands --------------------------------------------------------------------------------

    async def create(
        self,
        meta: CommandMeta,
        *,
        name: str,
        url: str,
        events: Sequence[str],
        format: WebhookFormat,
        description: str = "",
        status: WebhookStatus = ACTIVE,
        secret: str | None = None,
        generate_secret: bool = False,
    ) -> Changed:
        """`secret`: the caller's; `generate_secret` (and no secret): Registrar makes one,
        answered once. Retried with the same Idempotency-Key, the webhook made then."""
        webhook_id = str(derived_event_id(meta.command_id, 2_000_000))
        made = await self._retried(meta, webhook_id, secret_shown=generate_secret and not secret)
        if made is not None:
            return made
        has_secret = bool(secret) or generate_secret
        created = rules.create(
            webhook_id,
            name,
            url,
            events,
            format,
            description=description,
            status=status,
            has_secret=has_secret,
        )
        await check_target(url, self.config.allow_private)
        chosen = secret or (generated_secret() if generate_secret else None)
        if chosen:
            async with self.store.engine.begin() as conn:
                await self.box.store(conn, webhook_id, chosen)
        try:
            appended = await self.store.append(
                webhook_stream(webhook_id), StreamHead(), [self._new(meta, 0, created)]
            )
        except ConcurrencyConflict:  # the same request, concurrently: answer as a retry
            made = await self._retried(meta, webhook_id, secret_shown=chosen != secret)
            if made is None:
                raise
            return made
        except EventIdsTaken:
            raise IdempotencyKeyReused(reused_key_message(meta.command_id)) from None
        shown = chosen if chosen and chosen != secret else None
        return Changed(await self.get(webhook_id), appended[0].position or 0, shown)

    async def _retried(
        self, meta: CommandMeta, webhook_id: str, secret_shown: bool
    ) -> Changed | None:
        prior = await self.store.events_caused_by(meta.command_id)
        if not prior:
            return None
        if any(e.stream_id != webhook_stream(webhook_id) for e in prior):
            raise IdempotencyKeyReused(reused_key_message(meta.command_id))
        if secret_shown:
            raise Conflict(
                f"this Idempotency-Key created webhook {webhook_id} before, and its generated"
                " secret was shown only then: rotate the secret (PATCH /v1/webhooks/"
                f"{webhook_id} with rotate_secret) if it was lost"
            )
        return Changed(await self.get(webhook_id), prior[-1].position or 0)

    async def update(
        self,
        webhook_id: str,
        meta: CommandMeta,
        *,
        name: str | None = None,
        url: str | None = None,
        events: Sequence[str] | None = None,
        description: str | None = None,
        status: WebhookStatus | None = None,
        secret: str | None = None,
        rotate_secret: bool = False,
    ) -> Changed:
        """Change what is given. `secret`: "" removes it, text replaces it; `rotate_secret`:
        Registrar makes a new one, answered once."""
        if rotate_secret and secret:
            raise Invalid("give a secret or ask to rotate it, not both")
        chosen = generated_secret() if rotate_secret else secret
        has_secret = None if chosen is None else bool(chosen)
        if url is not None:
            rules.check_url_shape(url)
            await check_target(url, self.config.allow_private)

        async def decide(state: rules.WebhookState | None) -> list[WebhookEvent]:
            decided = rules.update(
                state,
                webhook_id,
                name=name,
                url=url,
                events=events,
                description=description,
                status=status,
                has_secret=has_secret,
            )
            if chosen is not None:  # before the event that says so; rewritten if retried
                async with self.store.engine.begin() as conn:
                    if chosen:
                        await self.box.store(conn, webhook_id, chosen)
                    else:
                        await self.box.remove(conn, webhook_id)
            return decided

        position = await self._append(webhook_id, decide, meta) or 0
        return Changed(await self.get(webhook_id), position, chosen if rotate_secret else None)

    async def delete(self, webhook_id: str, meta: CommandMeta) -> int:
        async def decide(state: rules.WebhookState | None) -> list[WebhookEvent]:
            return rules.delete(state, webhook_id)

        return await self._append(webhook_id, decide, meta) or 0

    async def disable(
        self, webhook_id: str, *, failures: int, status_code: int | None, error: str
    ) -> int | None:
        """Registrar's own disabling of a failing webhook (the WebhookDisabled event); None if it
        was not active any more."""
        meta = CommandMeta(DISPATCHER_ACTOR, uuid7())

        async def decide(state: rules.WebhookState | None) -> list[WebhookEvent]:
            return rules.disable(
                state,
                webhook_id,
                consecutive_failures=failures,
                last_status_code=status_code,
                last_error=error,
            )

        try:
            return await self._append(webhook_id, decide, meta, none_if_unchanged=True)
        except NotFound:
            return None

    async def _append(
        self,
        webhook_id: str,
        decide: Callable[[rules.WebhookState | None], Awaitable[list[WebhookEvent]]],
        meta: CommandMeta,
        none_if_unchanged: bool = False,
    ) -> int | None:
        """Load the webhook's stream, decide, append; again on a concurrent append. The position
        of the change (of the stream's last event if nothing changed)."""
        stream_id = webhook_stream(webhook_id)
        prior = await self.store.events_caused_by(meta.command_id)
        if prior:
            if any(e.stream_id != stream_id for e in prior):
                raise IdempotencyKeyReused(reused_key_message(meta.command_id))
            return prior[-1].position or 0

        async def once() -> int | None:
            stored = await self.store.read_stream(stream_id)
            state = rules.fold(webhook_event_from_payload(e.type, e.payload) for e in stored)
            decided = await decide(state)
            if not decided:
                if state is None or state.deleted:
                    raise NotFound(f"Webhook with ID {webhook_id} not found.")
                return None if none_if_unchanged else stored[-1].position
            head = StreamHead(stored[-1].stream_version, stored[-1].hash)
            new = [self._new(meta, i, event) for i, event in enumerate(decided)]
            try:
                appended = await self.store.append(stream_id, head, new)
            except EventIdsTaken:
                raise IdempotencyKeyReused(reused_key_message(meta.command_id)) from None
            return appended[-1].position

        return await appended_with_retries(once, what=f"webhook {webhook_id}", log=log)

    def _new(self, meta: CommandMeta, index: int, event: WebhookEvent) -> NewEvent:
        return NewEvent(
            event_id=derived_event_id(meta.command_id, index),
            type=event.type,
            payload=event.model_dump(mode="json", exclude={"type"}),
            recorded_at=self.clock(),
            actor=meta.actor,
            causation_id=meta.command_id,
            correlation_id=meta.correlation_id or meta.command_id,
        )

    # Queries ---------------------------------------------------------------------------------

    async def get(self, webhook_id: str) -> dict[str, Any]:
        async with self.store.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(f"{_SELECT} WHERE w.webhook_id = :id AND w.deleted_at IS NULL"),
                    {"id": webhook_id},
                )
            ).first()
        if row is None:
            raise NotFound(f"Webhook with ID {webhook_id} not found.")
        return dict(row._mapping)

    async def list(
        self,
        *,
        format: WebhookFormat | None = None,
        limit: int = 100,
        page_token: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Live webhooks, newest first."""
        where = ["w.deleted_at IS NULL", "(CAST(:format AS text) IS NULL OR w.format = :format)"]
        async with self.store.engine.connect() as conn:
            return await keyset_page(
                conn,
                _SELECT,
                where,
                {"format": format},
                {"w.created_position": "created_position"},
                limit,
                page_token,
                descending=frozenset({"w.created_position"}),
            )

    # Tests -----------------------------------------------------------------------------------

    async def test(self, webhook_id: str, event: str | None = None) -> dict[str, Any]:
        """Send a sample of `event` (default: the webhook's first) now, signed as deliveries are,
        and say how the receiver answered (as MLflow's test_webhook does)."""
        webhook = await self.get(webhook_id)
        format: WebhookFormat = webhook["format"]
        chosen = event or webhook["events"][0]
        now = self.clock()
        if format == "mlflow":
            if chosen not in MLFLOW_EVENTS:
                rules.check_events([chosen], "mlflow")
            body = mlflow_body(chosen, MLFLOW_EXAMPLES[chosen], now)
        else:
            rules.check_events([chosen], "registrar")
            body = native_example("VersionRegistered" if chosen == ALL_EVENTS else chosen, now)
        async with self.store.engine.connect() as conn:
            secret = await self.box.load(conn, webhook_id) if webhook["has_secret"] else None
        delivery_id = str(uuid.uuid4())
        content = dumps(body)
        headers = delivery_headers(
            format,
            delivery_id=delivery_id,
            body=content,
            secret=secret,
            event_type=chosen,
            attempt=1,
        )
        client = WebhookClient(
            allow_private=self.config.allow_private,
            max_connections=1,
            timeout=self.config.timeout_seconds,
        )
        try:
            outcome = await client.post(webhook["url"], headers, content, keep=KEPT_BODY_CHARS)
        finally:
            await client.aclose()
        return {
            "success": outcome.ok,
            "response_status": outcome.status_code,
            "response_body": outcome.body,
            "error_message": None if outcome.ok else outcome.problem(),
            "delivery_id": delivery_id,
            "latency_ms": outcome.latency_ms,
        }
