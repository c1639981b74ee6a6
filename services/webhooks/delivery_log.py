"""A webhook's delivery log, as GET /v1/webhooks/{id}/deliveries answers it: each delivery (one
per matching event, the same id on every attempt), newest first, with every attempt's time,
status code, latency and error."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.projections.paging import keyset_page

_DELIVERIES = (
    "SELECT delivery_id, event_id, event_type, position, status, attempts, created_at,"
    " CASE WHEN status = 'pending' THEN next_attempt_at END AS next_attempt_at, delivered_at,"
    " last_status_code, last_error FROM webhook_deliveries"
)
_ATTEMPTS = text(
    "SELECT delivery_id, attempt, started_at, status_code, latency_ms, error FROM webhook_attempts"
    " WHERE delivery_id = ANY(:ids) ORDER BY delivery_id, attempt"
)


async def deliveries_page(
    engine: AsyncEngine,
    webhook_id: str,
    *,
    status: str | None = None,
    limit: int = 50,
    page_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the webhook's deliveries, the newest event first, each with its attempts."""
    where = ["webhook_id = :webhook", "(CAST(:status AS text) IS NULL OR status = :status)"]
    async with engine.connect() as conn:
        rows, token = await keyset_page(
            conn,
            _DELIVERIES,
            where,
            {"webhook": webhook_id, "status": status},
            {"position": "position"},
            limit,
            page_token,
            descending=frozenset({"position"}),
        )
        attempts: dict[Any, list[dict[str, Any]]] = {row["delivery_id"]: [] for row in rows}
        if rows:
            found = await conn.execute(_ATTEMPTS, {"ids": list(attempts)})
            for attempt in found:
                entry = dict(attempt._mapping)
                attempts[entry.pop("delivery_id")].append(entry)
    return [{**row, "log": attempts[row["delivery_id"]]} for row in rows], token
