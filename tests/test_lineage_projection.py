"""The lineage projection on a real PostgreSQL: each event applied once in effect, whatever the
delivery order across streams, gaps filled from the store, and walks that end even on a cycle."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import text

from registrar.bus.training_ingest import INGEST_PRINCIPAL, ingest
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.commands import (
    DeleteModel,
    DeleteVersion,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    SetAlias,
    TransitionStage,
)
from registrar.contracts.envelope import GENESIS_HASH, Envelope
from registrar.contracts.training import TrainingCompleted
from registrar.contracts.values import DatasetRef, ParentRef
from registrar.projections.lineage import LineageProjection, graph, impact
from registrar.projector.runner import Projector
from registrar.registry import Registry
from registrar.store.event_store import START

pytestmark = pytest.mark.asyncio(loop_scope="session")

TABLES = ("lineage_nodes", "lineage_edges", "lineage_models", "lineage_model_names")


@pytest.fixture(scope="module")
async def registry(database_url: str) -> AsyncIterator[Registry]:
    """A registry whose projectors do not run: the tests drive the lineage projection."""
    opened = await Registry.open(database_url)
    await _history(opened)
    yield opened
    await opened.close()


async def _history(registry: Registry) -> None:
    """Runs, versions from runs and by hand, parents across models, a parent model renamed
    afterwards and its former name taken by another model, stages, aliases, a deleted version
    and a deleted model."""
    handle = registry.commands.handle

    def meta() -> CommandMeta:
        return CommandMeta("tester")

    clicks = DatasetRef(name="clicks", version="v3", uri="s3://data/clicks/v3")
    for run_id, model in (("run-a", "base"), ("run-b", None)):
        message = TrainingCompleted(
            message_id=uuid4(),
            run_id=run_id,
            model_name=model,
            artifact={"uri": f"s3://models/{run_id}"},  # type: ignore[arg-type]
            datasets=[clicks],
            code={"repository": "https://git/ml", "commit": f"sha-{run_id}"},  # type: ignore[arg-type]
            finished_at=datetime(2026, 11, 26, 11, tzinfo=UTC),
        )
        await ingest(registry, message, INGEST_PRINCIPAL)
    await handle(RegisterVersion(name="base", source="s3://b/2", run_id="never-recorded"), meta())
    await handle(RegisterModel(name="student"), meta())
    await handle(
        RegisterVersion(
            name="student",
            source="s3://s/1",
            datasets=[DatasetRef(name="clicks", version="v3")],  # the same dataset, no URI
            parents=[ParentRef(model="base", version=1, relation="distilled")],
        ),
        meta(),
    )
    await handle(RenameModel(name="base", new_name="teacher"), meta())
    # Another model takes the released name: student 1's parent stays the first "base".
    await handle(RegisterModel(name="base"), meta())
    await handle(RegisterVersion(name="base", source="s3://new-base/1"), meta())
    await handle(
        RegisterVersion(
            name="student",
            source="s3://s/2",
            parents=[
                ParentRef(model="student", version=1, relation="fine_tuned"),
                ParentRef(model="teacher", version=2, relation="ensembled"),
            ],
        ),
        meta(),
    )
    await handle(TransitionStage(name="student", version=2, stage="Production"), meta())
    await handle(SetAlias(name="student", alias="champion", version=1), meta())
    await handle(DeleteVersion(name="teacher", version=2), meta())
    await handle(RegisterModel(name="doomed"), meta())
    await handle(
        RegisterVersion(name="doomed", source="s3://d/1", datasets=[clicks]),
        meta(),
    )
    await handle(DeleteModel(name="doomed"), meta())


async def tables(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    async with registry.engine.connect() as conn:
        return {
            table: [
                dict(row._mapping)
                for row in await conn.execute(text(f"SELECT * FROM {table} ORDER BY 1, 2"))
            ]
            for table in TABLES
        }


async def forget_lineage(registry: Registry) -> None:
    async with registry.engine.begin() as conn:
        for table in TABLES:
            await conn.execute(text(f"DELETE FROM {table}"))
        await conn.execute(text("DELETE FROM projection_checkpoints WHERE projection = 'lineage'"))


async def catch_up(registry: Registry, projection: LineageProjection) -> None:
    projector = Projector(registry.store, projection, batch_size=7)
    await projector.load_checkpoint()
    while await projector.catch_up_once():
        pass


async def apply(registry: Registry, projection: LineageProjection, events: list[Envelope]) -> None:
    async with registry.engine.begin() as conn:
        await projection.apply(conn, events)


async def everything(registry: Registry) -> list[Envelope]:
    return [recorded.envelope for recorded in await registry.store.read_all(START, 100_000)]


async def in_order(registry: Registry) -> dict[str, list[dict[str, Any]]]:
    await forget_lineage(registry)
    await catch_up(registry, LineageProjection(registry.store))
    return await tables(registry)


async def test_the_graph_holds_what_the_history_says(registry: Registry) -> None:
    await in_order(registry)
    async with registry.engine.connect() as conn:
        found = await impact(conn, "dataset:clicks@v3")
        upstream = await graph(conn, "version:student/2", "upstream", 25)
    assert [v["id"] for v in found["versions"]] == [
        "version:doomed/1",
        "version:student/1",
        "version:student/2",
        "version:teacher/1",
    ]
    assert found["in_production"] == ["version:student/2"]
    assert found["holding_aliases"] == ["version:student/1"]
    assert {v["id"] for v in found["versions"] if v["deleted"]} == {"version:doomed/1"}
    assert {(e["from"], e["to"], e.get("relation", e["kind"])) for e in upstream["edges"]} == {
        ("version:student/2", "version:student/1", "fine_tuned"),
        ("version:student/2", "version:teacher/2", "ensembled"),
        ("version:student/1", "version:teacher/1", "distilled"),
        ("version:student/1", "dataset:clicks@v3", "trained_on"),
        ("version:teacher/1", "dataset:clicks@v3", "trained_on"),
        ("version:teacher/1", "run:run-a", "produced_by"),
        ("version:teacher/2", "run:never-recorded", "produced_by"),
        ("run:run-a", "dataset:clicks@v3", "trained_on"),
        ("run:run-a", "commit:https://git/ml@sha-run-a", "built_from"),
    }
    nodes = {n["id"]: n for n in upstream["nodes"]}
    assert nodes["version:teacher/2"]["deleted"] is True
    assert nodes["run:never-recorded"]["recorded"] is False
    assert nodes["dataset:clicks@v3"]["uri"] == "s3://data/clicks/v3"  # a bare reference adds none


async def test_applying_the_same_events_again_changes_nothing(registry: Registry) -> None:
    before = await in_order(registry)
    events = await everything(registry)
    for projection in (LineageProjection(registry.store), LineageProjection(registry.store)):
        await apply(registry, projection, events)
        await apply(registry, projection, events[len(events) // 2 :])
        assert await tables(registry) == before


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_any_delivery_order_across_streams_and_gaps_give_the_same_graph(
    registry: Registry, seed: int
) -> None:
    expected = await in_order(registry)
    await forget_lineage(registry)
    events = await everything(registry)
    shuffle = random.Random(seed)
    by_stream: dict[str, list[Envelope]] = {}
    for envelope in events:
        by_stream.setdefault(envelope.stream_id, []).append(envelope)
    # Each stream in order, but streams interleaved at random; some first show up with only
    # their newest event (a gap the store must fill), and some are delivered twice.
    pending = {stream: list(stream_events) for stream, stream_events in by_stream.items()}
    delivery: list[Envelope] = []
    for stream_events in pending.values():
        if shuffle.random() < 0.5:
            delivery.append(stream_events[-1])
    while any(pending.values()):
        stream = shuffle.choice([s for s, left in pending.items() if left])
        delivery.append(pending[stream].pop(0))
    delivery += shuffle.sample(events, len(events) // 3)
    projection = LineageProjection(registry.store)
    while delivery:
        size = shuffle.randint(1, 6)
        batch, delivery = delivery[:size], delivery[size:]
        await apply(registry, projection, batch)
    assert await tables(registry) == expected


async def test_events_of_other_stream_kinds_are_ignored(registry: Registry) -> None:
    before = await in_order(registry)
    foreign = Envelope(
        event_id=uuid4(),
        stream_id="policy:Production",
        stream_version=1,
        type="PolicySet",
        recorded_at=datetime.now(UTC),
        actor="admin",
        payload={"stage": "Production", "approvals": 2},
        prev_hash=GENESIS_HASH,
        hash=GENESIS_HASH,
    )
    await apply(registry, LineageProjection(registry.store), [foreign])
    assert await tables(registry) == before


async def test_a_cycle_in_the_graph_does_not_make_a_walk_run_forever(registry: Registry) -> None:
    await in_order(registry)
    async with registry.engine.begin() as conn:
        # Impossible through the registry (a parent exists before its child): forced with SQL.
        await conn.execute(
            text(
                "INSERT INTO lineage_nodes (node_key, kind, attrs, recorded) VALUES"
                " ('dataset:loop-a', 'dataset', '{}', true),"
                " ('dataset:loop-b', 'dataset', '{}', true)"
            )
        )
        await conn.execute(
            text(
                "INSERT INTO lineage_edges (src, dst, kind, relation) VALUES"
                " ('dataset:loop-a', 'dataset:loop-b', 'derived_from', ''),"
                " ('dataset:loop-b', 'dataset:loop-a', 'derived_from', ''),"
                " ('version:' || (SELECT stream_id FROM lineage_models WHERE name = 'teacher')"
                "   || '/1', 'dataset:loop-a', 'trained_on', '')"
            )
        )
    async with registry.engine.connect() as conn:
        walked = await graph(conn, "dataset:loop-a", "both", 25)
        below = await impact(conn, "dataset:loop-b")
    assert {n["id"] for n in walked["nodes"]} >= {"dataset:loop-a", "dataset:loop-b"}
    assert len(walked["edges"]) == len({(e["from"], e["to"]) for e in walked["edges"]})
    assert "version:teacher/1" in {v["id"] for v in below["versions"]}
    await forget_lineage(registry)
