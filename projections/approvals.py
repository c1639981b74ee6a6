"""Approvals: every transition request as it stands now, for GET /v1/approvals (pending ones
first of all). `apply` folds each touched model stream with the domain's own `evolve` and writes
the requests that changed; it records each stream's applied version in the same transaction,
so a redelivered event is skipped. Reading one request by id goes to its stream instead."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registrar.contracts.codec import dumps
from registrar.contracts.envelope import Envelope
from registrar.domain.state import ModelState, fold
from registrar.domain.transition_requests import TransitionRequest, request_fields
from registrar.projections.paging import keyset_page
from registrar.projections.ports import EventSource
from registrar.projections.stream_states import StreamStates
from registrar.projections.unapplied_events import by_model_stream, unapplied_events

NAME = "approvals"

_UPSERT = text(
    """
    INSERT INTO ap_requests (request_id, stream_id, model_name, version, stage, alias,
                             archive_existing, state, requested_by, comment, approvals,
                             closed_by, closed_comment, created_at, updated_at)
    VALUES (:request_id, :stream_id, :model_name, :version, :stage, :alias, :archive_existing,
            :state, :requested_by, :comment, CAST(:approvals AS jsonb), :closed_by,
            :closed_comment, :created_at, :updated_at)
    ON CONFLICT (request_id) DO UPDATE SET
        model_name = excluded.model_name, state = excluded.state,
        approvals = excluded.approvals, closed_by = excluded.closed_by,
        closed_comment = excluded.closed_comment, updated_at = excluded.updated_at
    """
)
_SAVE_VERSIONS = text(
    "INSERT INTO ap_streams (stream_id, stream_version)"
    " SELECT * FROM unnest(CAST(:ids AS text[]), CAST(:versions AS int[]))"
    " ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version"
)


def _row(stream_id: str, model: ModelState, request: TransitionRequest) -> dict[str, Any]:
    fields = request_fields(request)
    return {
        **fields,
        "stream_id": stream_id,
        "model_name": model.name,
        "approvals": dumps(fields["approvals"]).decode(),
    }


class ApprovalsProjection:
    name = NAME
    tables = ("ap_requests", "ap_streams")

    def __init__(self, store: EventSource, cache_size: int = 10_000) -> None:
        self.store = store
        self.states = StreamStates(store, cache_size)

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        """Apply `events` (any order across streams, in order within each) in `conn`'s
        transaction; events at or below a stream's recorded version are skipped."""
        by_stream = by_model_stream(events)
        if not by_stream:
            return
        rows = await conn.execute(
            text("SELECT stream_id, stream_version FROM ap_streams WHERE stream_id = ANY(:ids)"),
            {"ids": list(by_stream)},
        )
        applied = {row.stream_id: row.stream_version for row in rows}
        request_rows: list[dict[str, Any]] = []
        versions: dict[str, int] = {}
        for stream_id, stream_events in by_stream.items():
            done = applied.get(stream_id, 0)
            fresh = await unapplied_events(self.store, stream_events, done)
            if not fresh:
                continue
            before = await self.states.state_at(stream_id, done)
            after = fold(before, fresh)
            if after is None:
                continue
            renamed = before is None or before.name != after.name
            request_rows.extend(
                _row(stream_id, after, request)
                for request_id, request in after.requests.items()
                if renamed or before is None or before.requests.get(request_id) is not request
            )
            versions[stream_id] = fresh[-1].stream_version
            self.states.remember(stream_id, versions[stream_id], after)
        if request_rows:
            await conn.execute(_UPSERT, request_rows)
        if versions:
            await conn.execute(
                _SAVE_VERSIONS, {"ids": list(versions), "versions": list(versions.values())}
            )

    def forget(self) -> None:
        self.states.forget()


# Queries -----------------------------------------------------------------------------------------

_COLUMNS = (
    "request_id, model_name AS model, version, stage, alias, archive_existing, state,"
    " requested_by, comment, approvals, closed_by, closed_comment, created_at, updated_at"
)


async def list_requests(
    conn: AsyncConnection,
    *,
    state: str | None = None,
    model: str | None = None,
    page_size: int = 100,
    page_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Transition requests, oldest first, filtered by state and model name; one page."""
    where: list[str] = []
    params: dict[str, Any] = {}
    for column, value in (("state", state), ("model_name", model)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    select = f"SELECT {_COLUMNS} FROM ap_requests"
    return await keyset_page(
        conn, select, where, params, {"request_id": "request_id"}, page_size, page_token
    )


async def wait_until_applied(engine: AsyncEngine, wanted: dict[str, int], timeout: float) -> bool:
    """Wait until this projection has applied each stream up to the version in `wanted`;
    False if it has not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while wanted:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT w.stream_id FROM unnest(CAST(:ids AS text[]), CAST(:versions AS int[]))"
                    " AS w(stream_id, version) LEFT JOIN ap_streams s USING (stream_id)"
                    " WHERE coalesce(s.stream_version, 0) < w.version"
                ),
                {"ids": list(wanted), "versions": list(wanted.values())},
            )
            behind = {row.stream_id for row in rows}
        wanted = {k: v for k, v in wanted.items() if k in behind}
        if not wanted:
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.005)
    return True
