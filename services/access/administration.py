"""The access shell: issue and revoke tokens, grant and revoke model ownership (each an event in
the user's stream `access:<user>`), and answer who holds what from the tables those events
maintain (migration 0009). Used by the admin API and by `registrar token`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text

from registrar.access import rules
from registrar.access.tokens import new_token, token_hash
from registrar.commands.command_handler import (
    CommandMeta,
    IdempotencyKeyReused,
    reused_key_message,
)
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import AccessEvent, TokenIssued, access_event_from_payload
from registrar.contracts.identifiers import derived_event_id, uuid7
from registrar.contracts.values import Role
from registrar.domain.errors import Conflict, NotFound
from registrar.retrying import appended_with_retries
from registrar.store.event_store import (
    EventIdsTaken,
    NewEvent,
    PostgresEventStore,
    StreamHead,
)

log = logging.getLogger("registrar.access")


_TOKEN_COLUMNS = (
    "token_id, user_name AS user, role, label, issued_at, issued_by, revoked_at, revoked_by"
)
_CURRENT_NAME = "SELECT stream_id FROM model_names WHERE name = :name AND is_current"
_OWNERS_OF = "SELECT user_name FROM access_owners WHERE model_id = :model_id"
_OWNS = (
    "SELECT EXISTS (SELECT 1 FROM model_names n JOIN access_owners o ON o.model_id = n.stream_id"
    " WHERE n.name = :name AND n.is_current AND o.user_name = :user)"
)


@dataclass(frozen=True, slots=True)
class Stored:
    """An access event as the store holds it."""

    event: AccessEvent
    position: int
    recorded_at: datetime
    actor: str


def _stored(envelope: Envelope) -> Stored:
    event = access_event_from_payload(envelope.type, envelope.payload)
    return Stored(event, envelope.position or 0, envelope.recorded_at, envelope.actor)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    """The token itself: shown once, never stored."""
    event: TokenIssued
    stored: Stored


class AccessAdministration:
    def __init__(
        self, store: PostgresEventStore, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock

    async def issue_token(
        self, user: str, role: Role, meta: CommandMeta, label: str = ""
    ) -> IssuedToken:
        token = new_token()
        event = rules.issue_token(user, role, label, uuid7(), token_hash(token))
        stored = (await self._append(user, lambda _: [event], meta))[0]
        if stored.event != event:
            raise Conflict(
                "this Idempotency-Key issued a token before, which was shown only once: revoke"
                " it if it was lost (GET /v1/admin/tokens), and issue another with a new key"
            )
        return IssuedToken(token, event, stored)

    async def revoke_token(self, token_id: UUID, meta: CommandMeta, reason: str = "") -> Stored:
        async with self.store.engine.connect() as conn:
            user = await conn.scalar(
                text("SELECT user_name FROM access_tokens WHERE token_id = :id"), {"id": token_id}
            )
        if user is None:
            raise NotFound(f"no token {token_id}")
        stored = await self._append(
            user, lambda state: [rules.revoke_token(state, user, token_id, reason)], meta
        )
        return stored[0]

    async def revoke_token_itself(self, token: str, meta: CommandMeta, reason: str = "") -> Stored:
        """Revoke the token given in full (e.g. one found leaked)."""
        async with self.store.engine.connect() as conn:
            token_id = await conn.scalar(
                text("SELECT token_id FROM access_tokens WHERE token_hash = :hash"),
                {"hash": token_hash(token)},
            )
        if token_id is None:
            raise NotFound("no such token (was it issued by this registry?)")
        return await self.revoke_token(token_id, meta, reason)

    async def grant_ownership(self, user: str, model: str, meta: CommandMeta) -> Stored:
        model_id, owners = await self._owners(model)
        stored = await self._append(
            user, lambda _: [rules.grant_ownership(owners, user, model_id, model)], meta
        )
        return stored[0]

    async def revoke_ownership(self, user: str, model: str, meta: CommandMeta) -> Stored:
        model_id, owners = await self._owners(model)
        stored = await self._append(
            user, lambda _: [rules.revoke_ownership(owners, user, model_id, model)], meta
        )
        return stored[0]

    async def owns(self, user: str, model: str) -> bool:
        async with self.store.engine.connect() as conn:
            return bool(await conn.scalar(text(_OWNS), {"name": model, "user": user}))

    async def tokens(
        self, user: str | None = None, include_revoked: bool = False
    ) -> list[dict[str, Any]]:
        """Tokens (never their hashes), newest first."""
        where = ["(CAST(:user AS text) IS NULL OR user_name = :user)"]
        if not include_revoked:
            where.append("revoked_at IS NULL")
        query = (
            f"SELECT {_TOKEN_COLUMNS} FROM access_tokens WHERE {' AND '.join(where)}"
            " ORDER BY issued_at DESC, token_id DESC"
        )
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(text(query), {"user": user})
            return [dict(row._mapping) for row in rows]

    async def owners(
        self, user: str | None = None, model: str | None = None
    ) -> list[dict[str, Any]]:
        """Who owns which model (models by their current name), by model then user."""
        query = (
            "SELECT n.name AS model, o.model_id, o.user_name AS user, o.since, o.granted_by"
            " FROM access_owners o JOIN model_names n ON n.stream_id = o.model_id AND n.is_current"
            " WHERE (CAST(:user AS text) IS NULL OR o.user_name = :user)"
            " AND (CAST(:model AS text) IS NULL OR n.name = :model)"
            " ORDER BY n.name, o.user_name"
        )
        async with self.store.engine.connect() as conn:
            rows = await conn.execute(text(query), {"user": user, "model": model})
            return [dict(row._mapping) for row in rows]

    async def _owners(self, model: str) -> tuple[str, frozenset[str]]:
        async with self.store.engine.connect() as conn:
            model_id = await conn.scalar(text(_CURRENT_NAME), {"name": model})
            if model_id is None:
                raise NotFound(f"no model is named {model!r} now")
            rows = await conn.execute(text(_OWNERS_OF), {"model_id": model_id})
            return model_id, frozenset(row.user_name for row in rows)

    async def _append(
        self,
        user: str,
        decide: Callable[[rules.AccessState], list[AccessEvent]],
        meta: CommandMeta,
    ) -> list[Stored]:
        """Load the user's stream, decide, append; on a concurrent append, again. Returns the
        stored events with their positions (those of the first try, for a retried command)."""
        rules.check_user_name(user)
        stream_id = rules.access_stream(user)
        prior = await self.store.events_caused_by(meta.command_id)
        if prior:  # a retried request (same Idempotency-Key): answer with what it did then
            if any(e.stream_id != stream_id for e in prior):
                raise IdempotencyKeyReused(reused_key_message(meta.command_id))
            return [_stored(e) for e in prior]

        async def once() -> list[Stored]:
            stored = await self.store.read_stream(stream_id)
            state = rules.fold(access_event_from_payload(e.type, e.payload) for e in stored)
            decided = decide(state)
            head = (
                StreamHead(stored[-1].stream_version, stored[-1].hash) if stored else StreamHead()
            )
            new_events = [
                NewEvent(
                    event_id=derived_event_id(meta.command_id, index),
                    type=event.type,
                    payload=event.model_dump(mode="json", exclude={"type"}),
                    recorded_at=self.clock(),
                    actor=meta.actor,
                    causation_id=meta.command_id,
                    correlation_id=meta.correlation_id or meta.command_id,
                )
                for index, event in enumerate(decided)
            ]
            try:
                appended = await self.store.append(stream_id, head, new_events)
            except EventIdsTaken:  # the Idempotency-Key was used for another user's stream
                raise IdempotencyKeyReused(reused_key_message(meta.command_id)) from None
            return [_stored(e) for e in appended]

        return await appended_with_retries(once, what=f"the access of {user}", log=log)
