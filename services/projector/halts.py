"""When a projection stops for good: an event it cannot apply. A failure that may pass (the
database or the broker away, a lock conflict) is retried; anything else fails the same way each
time, so after a second try the projection halts on that event, records why (projection_progress)
and answers every query that waits for it with that reason instead of a timeout."""

from __future__ import annotations

import asyncpg
import sqlalchemy.exc
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registrar.contracts.envelope import Envelope
from registrar.store.advisory_locks import LockLost

MAX_REASON = 2000

_TRANSIENT = (
    OSError,  # connection refused or reset (ConnectionError), and the like
    TimeoutError,
    LockLost,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.OperatorInterventionError,  # shutdown, admin shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,
)


def is_transient(error: BaseException) -> bool:
    """Whether trying the same batch again may succeed (SQLAlchemy's wrappers looked through)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _TRANSIENT):
            return True
        if isinstance(current, sqlalchemy.exc.DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def halt_reason(error: BaseException, envelope: Envelope | None) -> str:
    """In words: the event (if known) and what went wrong with it."""
    what = f"{type(error).__name__}: {error}".replace("\n", " ")
    if envelope is None:
        return what[:MAX_REASON]
    event = (
        f"event {envelope.event_id} ({envelope.type}, stream {envelope.stream_id} version"
        f" {envelope.stream_version}, position {envelope.position})"
    )
    return f"cannot apply {event}: {what}"[:MAX_REASON]


_HALT = text(
    "INSERT INTO projection_progress"
    " (projection, position, events_applied, halted_at, halted_reason, halted_position)"
    " VALUES (:name, 0, 0, now(), :reason, :position) ON CONFLICT (projection) DO UPDATE SET"
    " halted_at = now(), halted_reason = excluded.halted_reason,"
    " halted_position = excluded.halted_position"
)
_RESUME = text(
    "UPDATE projection_progress SET halted_at = NULL, halted_reason = NULL,"
    " halted_position = NULL WHERE projection = :name AND halted_at IS NOT NULL"
)
_HALTED = text(
    "SELECT halted_reason FROM projection_progress"
    " WHERE projection = :name AND halted_at IS NOT NULL"
)


async def record_halt(engine: AsyncEngine, name: str, reason: str, position: int | None) -> None:
    async with engine.begin() as conn:
        await conn.execute(_HALT, {"name": name, "reason": reason, "position": position})


async def clear_halt(engine: AsyncEngine, name: str) -> None:
    """A process (re)starting the projection tries again: it may hold the fix."""
    async with engine.begin() as conn:
        await conn.execute(_RESUME, {"name": name})


async def halted_reason(conn: AsyncConnection, name: str) -> str | None:
    """Why read model `name` stopped, if it did."""
    reason = (await conn.execute(_HALTED, {"name": name})).scalar()
    return None if reason is None else str(reason)


def halted_message(name: str, reason: str) -> str:
    """What a query waiting for a halted read model is told."""
    return (
        f"the {name} read model has stopped: {reason}. It resumes when its process restarts"
        f" (e.g. after an upgrade that fixes this); GET /v1/projections shows its status"
    )
