"""The benchmark history generator (bench/history_generator.py) writes what Registrar itself would:
chains that verify, names claimed as the store claims them, snapshots the handler can load from,
and models the command handler extends like any other."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.commands.command_handler import CommandHandler, CommandMeta
from registrar.contracts.commands import RegisterVersion, RenameModel, SetAlias
from registrar.domain.state import fold
from registrar.store.chain_verification import verify_chains
from registrar.store.event_store import START, PostgresEventStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from history_generator import DEFAULT_START, History, _Generator, generate  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODELS, EVENTS = 40, 6_000


@pytest.fixture(scope="module")
async def generated(engine: AsyncEngine, database_url: str) -> History:
    return await generate(database_url, models=MODELS, events=EVENTS, seed=11, batch_size=1_500)


async def test_the_history_has_the_size_asked_for_and_every_kind_of_event(
    generated: History, engine: AsyncEngine
) -> None:
    async with engine.connect() as conn:
        stored = (await conn.execute(text("SELECT count(*) FROM events"))).scalar()
        types = set((await conn.execute(text("SELECT DISTINCT type FROM events"))).scalars())
        streams = (
            await conn.execute(text("SELECT count(DISTINCT stream_id) FROM events"))
        ).scalar()
    assert stored == generated.events
    assert EVENTS <= generated.events < EVENTS + 10  # it stops at the command reaching the count
    assert generated.model_streams == MODELS
    assert streams == generated.model_streams + generated.run_streams
    assert generated.runs > 0 and generated.parent_links > 0 and generated.commits > 0
    expected = {"ModelRegistered", "VersionRegistered", "RunRecorded", "MetricsRecorded"}
    expected |= {"StageChanged", "AliasSet", "VersionTagSet", "ModelTagSet"}
    assert expected <= types
    assert generated.first_recorded_at >= DEFAULT_START
    assert (generated.last_recorded_at - generated.first_recorded_at).days > 200


async def test_every_hash_chain_of_the_generated_store_verifies(
    generated: History, engine: AsyncEngine
) -> None:
    report = await verify_chains(PostgresEventStore(engine))
    assert report.intact, report.broken[:5]
    assert report.events == generated.events


async def test_names_are_claimed_as_the_store_claims_them(
    generated: History, engine: AsyncEngine
) -> None:
    async with engine.connect() as conn:
        current = set(
            (await conn.execute(text("SELECT name FROM model_names WHERE is_current"))).scalars()
        )
        renamed = (
            await conn.execute(text("SELECT count(*) FROM events WHERE type = 'ModelRenamed'"))
        ).scalar()
        deleted = set(
            (
                await conn.execute(
                    text("SELECT payload ->> 'name' FROM events WHERE type = 'ModelDeleted'")
                )
            ).scalars()
        )
        released = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM model_names WHERE NOT is_current AND released_at >"
                    " claimed_at"
                )
            )
        ).scalar()
    # A rename lets the former name go, a deletion the name held, each at its event's time.
    assert current == set(generated.model_names) - deleted
    assert released == renamed + len(deleted)


async def test_commit_order_reads_every_event_once_in_stream_order(
    generated: History, engine: AsyncEngine
) -> None:
    store = PostgresEventStore(engine)
    seen: dict[str, int] = {}
    checkpoint, total = START, 0
    while batch := await store.read_all(checkpoint, 2_000):
        for recorded in batch:
            envelope = recorded.envelope
            assert envelope.stream_version == seen.get(envelope.stream_id, 0) + 1
            seen[envelope.stream_id] = envelope.stream_version
        checkpoint, total = batch[-1].checkpoint, total + len(batch)
    assert total == generated.events


async def test_the_command_handler_loads_and_extends_a_generated_model(
    generated: History, engine: AsyncEngine
) -> None:
    store = PostgresEventStore(engine)
    handler = CommandHandler(store)
    async with engine.connect() as conn:
        busiest = (
            await conn.execute(
                text(
                    "SELECT n.name FROM model_names n JOIN events e USING (stream_id)"
                    " WHERE n.is_current AND e.type = 'VersionRegistered'"
                    " AND NOT EXISTS (SELECT 1 FROM events d WHERE d.stream_id = n.stream_id"
                    "                 AND d.type = 'ModelDeleted')"
                    " GROUP BY n.name ORDER BY count(*) DESC LIMIT 1"
                )
            )
        ).scalar_one()
    loaded = await handler.load(busiest)
    assert loaded is not None and loaded.state is not None
    assert loaded.state == fold(None, await store.read_stream(loaded.stream_id))
    meta = CommandMeta("tester")
    added = await handler.handle(RegisterVersion(name=busiest, source="s3://x/model"), meta)
    assert added.events[0].stream_version == loaded.version + 1
    assert added.events[0].prev_hash == loaded.head_hash
    number = added.state.last_version
    aliased = await handler.handle(
        SetAlias(name=busiest, alias="tested", version=number), CommandMeta("tester")
    )
    assert aliased.state.aliases["tested"] == number
    renamed = await handler.handle(
        RenameModel(name=busiest, new_name=f"{busiest}-extended"), CommandMeta("tester")
    )
    assert renamed.state.name == f"{busiest}-extended"
    assert (await verify_chains(store)).intact


async def test_snapshots_are_what_folding_the_stream_gives(
    generated: History, engine: AsyncEngine
) -> None:
    store = PostgresEventStore(engine)
    async with engine.connect() as conn:
        streams = list((await conn.execute(text("SELECT stream_id FROM snapshots"))).scalars())
    assert len(streams) == generated.snapshots > 0
    for stream_id in streams[:5]:
        from_snapshot = await CommandHandler(store).load_stream(stream_id)
        events = await store.read_stream(stream_id)
        assert from_snapshot.state == fold(None, events)
        assert from_snapshot.version == events[-1].stream_version


async def test_the_same_seed_gives_the_same_history() -> None:
    def rows(seed: int) -> list[tuple[object, ...]]:
        simulation = _Generator(models=10, events=500, seed=seed, start=DEFAULT_START, days=30)
        simulation.run()
        return simulation.rows

    first, again, other = rows(5), rows(5), rows(6)
    assert first == again
    assert [r[-1] for r in first] != [r[-1] for r in other]
