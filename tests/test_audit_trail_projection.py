"""The audit trail and history projections fed directly, as the bus feeds them: the same events
twice, events of one stream with a gap (after a rebalance) and events of unknown stream kinds,
on a real PostgreSQL. No projector runs here: the test is the only writer of the read models."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.contracts.envelope import Envelope
from registrar.contracts.identifiers import uuid7
from registrar.projections.audit_trail import AuditTrailProjection
from registrar.projections.ports import Projection
from registrar.projections.stage_history import StageHistoryProjection
from registrar.store.event_store import NewEvent, PostgresEventStore, StreamHead

pytestmark = pytest.mark.asyncio(loop_scope="session")

T0 = datetime(2026, 3, 3, 14, 0, tzinfo=UTC)


def event(kind: str, minute: int, actor: str = "alice", **payload: Any) -> NewEvent:
    return NewEvent(
        event_id=uuid7(),
        type=kind,
        payload=payload,
        recorded_at=T0 + timedelta(minutes=minute),
        actor=actor,
    )


async def model_stream(store: PostgresEventStore) -> tuple[str, list[Envelope]]:
    stream = str(uuid7())
    events = [
        event("ModelRegistered", 0, model_id=stream, name=f"m-{stream[-8:]}"),
        event("VersionRegistered", 1, version=1, source="s3://m/1"),
        event("StageChanged", 2, version=1, from_stage="None", to_stage="Production"),
        event("AliasSet", 3, alias="champion", version=1),
        event("VersionRegistered", 4, version=2, source="s3://m/2"),
        event("AliasSet", 5, alias="champion", version=2, previous_version=1),
    ]
    return stream, await store.append(stream, StreamHead(), events)


async def apply(engine: AsyncEngine, projection: Projection, events: Sequence[Envelope]) -> None:
    async with engine.begin() as conn:
        await projection.apply(conn, events)


async def rows(engine: AsyncEngine, sql: str, stream: str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        result = await conn.execute(text(sql), {"stream": stream})
        return [tuple(row) for row in result]


AUDIT = "SELECT stream_version, summary FROM audit_trail WHERE stream_id = :stream ORDER BY 1"
STAGES = (
    "SELECT version, stage, valid_from, valid_to, ended_by FROM stage_history"
    " WHERE stream_id = :stream ORDER BY version, from_position"
)
ALIASES = (
    "SELECT alias, version, valid_from, valid_to, ended_by FROM alias_history"
    " WHERE stream_id = :stream ORDER BY from_position"
)


async def test_events_delivered_twice_are_recorded_once(engine: AsyncEngine) -> None:
    store = PostgresEventStore(engine)
    stream, events = await model_stream(store)
    audit, history = AuditTrailProjection(store), StageHistoryProjection(store)
    for projection in (audit, history):
        await apply(engine, projection, events[:4])
        await apply(engine, projection, events[2:])  # a redelivery overlapping what was applied
        await apply(engine, projection, events)
    assert [version for version, _ in await rows(engine, AUDIT, stream)] == [1, 2, 3, 4, 5, 6]
    assert await rows(engine, ALIASES, stream) == [
        ("champion", 1, T0 + timedelta(minutes=3), T0 + timedelta(minutes=5), "AliasSet"),
        ("champion", 2, T0 + timedelta(minutes=5), None, None),
    ]
    assert await rows(engine, STAGES, stream) == [
        (1, "None", T0 + timedelta(minutes=1), T0 + timedelta(minutes=2), "StageChanged"),
        (1, "Production", T0 + timedelta(minutes=2), None, None),
        (2, "None", T0 + timedelta(minutes=4), None, None),
    ]


async def test_a_gap_in_a_stream_is_filled_from_the_store(engine: AsyncEngine) -> None:
    store = PostgresEventStore(engine)
    stream, events = await model_stream(store)
    audit, history = AuditTrailProjection(store), StageHistoryProjection(store)
    for projection in (audit, history):
        await apply(engine, projection, events[:2])
        await apply(engine, projection, events[4:])  # 3 and 4 lost in a rebalance
    assert [version for version, _ in await rows(engine, AUDIT, stream)] == [1, 2, 3, 4, 5, 6]
    assert [alias[:2] for alias in await rows(engine, ALIASES, stream)] == [
        ("champion", 1),
        ("champion", 2),
    ]


async def test_archive_existing_in_a_later_batch_is_named_on_the_move(
    engine: AsyncEngine,
) -> None:
    store = PostgresEventStore(engine)
    stream, events = await model_stream(store)
    command = uuid7()
    move = [
        event("StageChanged", 6, version=2, from_stage="None", to_stage="Production"),
        event(
            "StageChanged",
            6,
            version=1,
            from_stage="Production",
            to_stage="Archived",
            reason="archived_by",
            archived_by_version=2,
        ),
    ]
    move = [replace(e, causation_id=command) for e in move]
    head = StreamHead(events[-1].stream_version, events[-1].hash)
    moved = await store.append(stream, head, move)
    audit, history = AuditTrailProjection(store), StageHistoryProjection(store)
    for projection in (audit, history):
        await apply(engine, projection, [*events, moved[0]])
        await apply(engine, projection, moved[1:])
    summaries = [summary for _, summary in await rows(engine, AUDIT, stream)]
    assert summaries[-2:] == [
        "moved 2 from None to Production, archived 1",
        "archived 1 (was Production), replaced by 2",
    ]
    six = T0 + timedelta(minutes=6)
    assert [r for r in await rows(engine, STAGES, stream) if r[2] >= six or r[3] == six] == [
        (1, "Production", T0 + timedelta(minutes=2), six, "StageChanged"),
        (1, "Archived", six, None, None),
        (2, "None", T0 + timedelta(minutes=4), six, "StageChanged"),
        (2, "Production", six, None, None),
    ]


async def test_other_stream_kinds_pass_without_harm(engine: AsyncEngine) -> None:
    store = PostgresEventStore(engine)
    odd = await store.append(
        f"policy:{uuid7()}", StreamHead(), [event("PolicyAmended", 0, actor="carol", rule=[1])]
    )
    empty = await store.append(f"other:{uuid7()}", StreamHead(), [event("Nothing", 1)])
    audit, history = AuditTrailProjection(store), StageHistoryProjection(store)
    for projection in (audit, history):
        await apply(engine, projection, [*odd, *empty])
    assert await rows(engine, AUDIT, odd[0].stream_id) == [(1, "PolicyAmended")]
    assert await rows(engine, AUDIT, empty[0].stream_id) == [(1, "Nothing")]
    assert await rows(engine, STAGES, odd[0].stream_id) == []
