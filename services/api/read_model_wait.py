"""Read-your-writes for the read models beside current state: wait until one has applied the
event at a client's `min_position`, wherever it runs (in this process or a projector service)."""

from __future__ import annotations

import asyncio
import time

from fastapi import HTTPException
from sqlalchemy import TextClause

from registrar.projector.halts import halted_message, halted_reason
from registrar.registry import Registry


async def wait_for_read_model(
    registry: Registry, name: str, min_position: int | None, applied: TextClause
) -> None:
    """Block until `applied` (a query of :stream, :version, :position, :projection answering
    true once the read model `name` has applied that stream version) says so, or 503."""
    if min_position is None:
        return
    written = await registry.store.stream_version_at(min_position)
    if written is None:
        raise HTTPException(422, f"min_position {min_position} is not a stored event's position")
    params = {
        "stream": written[0],
        "version": written[1],
        "position": min_position,
        "projection": name,
    }
    deadline = time.monotonic() + registry.query_wait_seconds
    first = True
    while True:
        async with registry.engine.connect() as conn:
            if (await conn.execute(applied, params)).scalar():
                return
            reason = await halted_reason(conn, name) if first else None
        if reason is not None:
            raise HTTPException(503, halted_message(name, reason))
        first = False
        if time.monotonic() >= deadline:
            raise HTTPException(
                503,
                f"the {name} read model has not reached position {min_position} within"
                f" {registry.query_wait_seconds:g}s; retry shortly",
            )
        await asyncio.sleep(0.01)
