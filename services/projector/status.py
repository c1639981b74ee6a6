"""How far each projection and the relay have got, and how far behind the store they are."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.envelope import Envelope

_RECORD_PROGRESS = text(
    "INSERT INTO projection_progress (projection, position, events_applied)"
    " VALUES (:name, :position, :count) ON CONFLICT (projection) DO UPDATE SET"
    " position = greatest(projection_progress.position, excluded.position),"
    " events_applied = projection_progress.events_applied + excluded.events_applied,"
    " updated_at = now()"
)

_STATUS = text(
    "SELECT 'projection' AS kind, projection AS name, position, events_applied, updated_at,"
    " NULL::int AS republished, halted_at, halted_reason, halted_position"
    " FROM projection_progress"
    " UNION ALL"
    " SELECT 'relay', name, position, NULL, updated_at, republished, NULL, NULL, NULL"
    " FROM relay_state"
    " ORDER BY kind, name"
)


async def record_progress(conn: AsyncConnection, name: str, events: Sequence[Envelope]) -> None:
    """Note, in the projection's own transaction, how far it got (for its position and lag)."""
    if events:
        position = max(e.position or 0 for e in events)
        await conn.execute(
            _RECORD_PROGRESS, {"name": name, "position": position, "count": len(events)}
        )


async def status(conn: AsyncConnection) -> dict[str, Any]:
    """The store's head position, and each projection's and relay's position and lag behind it.

    A projection fed by Kafka applies partitions in any relative order, so its position is the
    highest it applied: a lag of 0 means it is caught up, a small lag is approximate. `halted`
    says when and why a projection stopped on an event it cannot apply (else null)."""
    head = (await conn.execute(text("SELECT coalesce(max(position), 0) FROM events"))).scalar()
    rows = (await conn.execute(_STATUS)).all()
    described: dict[str, Any] = {"store_position": head, "projections": [], "relays": []}
    for row in rows:
        entry = {
            "name": row.name,
            "position": row.position,
            "lag": max(0, head - row.position),
            "updated_at": row.updated_at,
        }
        if row.kind == "projection":
            halted = (
                None
                if row.halted_at is None
                else {
                    "at": row.halted_at,
                    "reason": row.halted_reason,
                    "position": row.halted_position,
                }
            )
            described["projections"].append(
                {**entry, "events_applied": row.events_applied, "halted": halted}
            )
        else:
            described["relays"].append({**entry, "broker_resets": row.republished})
    return described
