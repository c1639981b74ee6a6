"""Replay on a real PostgreSQL: every read model rebuilt into fresh tables and swapped in, queries
served from the old tables meanwhile, an interrupted rebuild resumed, and a swap under concurrent
writes that neither loses an event nor applies one twice."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from registrar_process import registrar_env
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.commands.command_handler import CommandMeta
from registrar.contracts.commands import (
    RecordMetrics,
    RegisterModel,
    RegisterVersion,
    SetAlias,
    TransitionStage,
)
from registrar.domain.state import fold
from registrar.projections.catalogue import READ_MODELS, read_model
from registrar.projections.current_state import list_models, model_view, version_view
from registrar.projector.replay import ProgressBar, ReplayBusy, copy_schema, replay
from registrar.projector.runner import Projector
from registrar.registry import Registry
from registrar.store.event_store import PostgresEventStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from history_generator import generate  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")

MODELS = 30


@pytest.fixture(scope="module")
async def registry(engine: AsyncEngine, database_url: str) -> AsyncIterator[Registry]:
    """A generated history, every read model projected by the in-process projectors."""
    await generate(database_url, models=MODELS, events=4_000, seed=21, batch_size=1_000)
    opened = await Registry.open(database_url)
    for projector in opened.projectors:
        await catch_up(projector)
    yield opened
    await opened.close()


async def catch_up(projector: Projector) -> None:
    """Apply every event stored now (the reader may wait for transactions elsewhere on the
    server to end)."""
    await projector.load_checkpoint()
    head = await last_checkpoint(projector.store)
    async with asyncio.timeout(120):
        while projector.checkpoint < head:
            if not await projector.catch_up_once():
                await asyncio.sleep(0.05)


async def rows_of(engine: AsyncEngine, tables: tuple[str, ...]) -> dict[str, list[Any]]:
    """Every row of `tables`, in a stable order."""
    contents: dict[str, list[Any]] = {}
    async with engine.connect() as conn:
        for table in tables:
            rows = (await conn.execute(text(f"SELECT * FROM public.{table}"))).all()
            contents[table] = sorted((tuple(row) for row in rows), key=repr)
    return contents


async def index_definitions(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
                " ORDER BY indexname"
            )
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]


async def replay_schemas(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'replay\\_%'")
        )
        return list(rows.scalars())


async def event_count(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM events"))).scalar_one())


async def rebuilt_from_scratch(store: PostgresEventStore, name: str) -> dict[str, list[Any]]:
    """The read model `name` as a fresh projection applies every event from the start, into
    its emptied tables, in small batches."""
    projection = read_model(name, store)
    async with store.engine.begin() as conn:
        for table in projection.tables:
            await conn.execute(text(f"DELETE FROM {table}"))
        await conn.execute(
            text("DELETE FROM projection_checkpoints WHERE projection = :n"), {"n": name}
        )
    await catch_up(Projector(store, projection, batch_size=333))
    return await rows_of(store.engine, projection.tables)


async def test_replay_rebuilds_every_read_model_equal_to_the_live_one(registry: Registry) -> None:
    indexes = await index_definitions(registry.engine)
    total = await event_count(registry.engine)
    for name in READ_MODELS:
        projection = read_model(name, registry.store)
        live = await rows_of(registry.engine, projection.tables)
        seen: list[tuple[int, int]] = []
        result = await replay(
            registry.store,
            projection,
            batch_size=700,
            progress=lambda done, of, seen=seen: seen.append((done, of)),
        )
        assert await rows_of(registry.engine, projection.tables) == live, name
        assert result.events == total and result.resumed_from == 0
        assert seen[0][0] == 0 and seen[-1] == (total, total)
        assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    # The swapped-in tables are the ones the migrations made: same index names and definitions.
    assert await index_definitions(registry.engine) == indexes
    assert await replay_schemas(registry.engine) == []
    async with registry.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT projection, events_applied FROM projection_progress")
        )
        progress = {name: applied for name, applied in rows}
    assert all(progress[name] == total for name in READ_MODELS)


async def test_queries_are_served_from_the_old_tables_during_a_rebuild(
    registry: Registry,
) -> None:
    engine = registry.engine
    schema = copy_schema("current_state")
    halfway = asyncio.Event()
    release = asyncio.Event()
    total = await event_count(engine)

    def on_progress(done: int, of: int) -> None:
        if 0 < done < of:
            halfway.set()

    class Paused:
        """current_state, pausing in its first batch after halfway so the test can look."""

        def __init__(self) -> None:
            self.inner = read_model("current_state", registry.store)
            self.name, self.tables = self.inner.name, self.inner.tables

        async def apply(self, conn: Any, events: Any) -> None:
            if halfway.is_set():
                await release.wait()
            await self.inner.apply(conn, events)

        def forget(self) -> None:
            self.inner.forget()

    rebuild = asyncio.create_task(
        replay(registry.store, Paused(), batch_size=500, progress=on_progress)
    )
    await asyncio.wait_for(halfway.wait(), 60)
    async with engine.connect() as conn:
        served, _ = await list_models(conn, include_deleted=True, page_size=1_000)
        copied = (await conn.execute(text(f"SELECT count(*) FROM {schema}.cs_models"))).scalar()
    assert len(served) == MODELS  # the live tables, whole
    assert copied is not None and 0 < copied < MODELS  # the copy, half built
    release.set()
    result = await rebuild
    assert result.events == total
    async with engine.connect() as conn:
        served_after, _ = await list_models(conn, include_deleted=True, page_size=1_000)
    assert sorted(served_after, key=repr) == sorted(served, key=repr)


async def test_an_interrupted_replay_resumes_from_its_own_checkpoint(registry: Registry) -> None:
    engine = registry.engine
    expected = await rows_of(engine, ("cs_models", "cs_versions"))
    total = await event_count(engine)
    await interrupt_a_replay(registry, after=1_000)
    assert await replay_schemas(engine) == [copy_schema("current_state")]
    assert await rows_of(engine, ("cs_models", "cs_versions")) == expected  # live: untouched

    resumed = await replay(registry.store, read_model("current_state", registry.store))
    assert 1_000 <= resumed.resumed_from < total
    assert resumed.events == total
    assert await rows_of(engine, ("cs_models", "cs_versions")) == expected
    assert await replay_schemas(engine) == []


async def interrupt_a_replay(registry: Registry, after: int) -> None:
    """Start a replay of current_state in batches of 500 and cancel it once it has applied
    `after` events (Ctrl-C, a crash): it leaves its half-built copy behind."""
    started = asyncio.Event()

    def on_progress(done: int, of: int) -> None:
        if done >= after:
            started.set()

    interrupted = asyncio.create_task(
        replay(
            registry.store,
            read_model("current_state", registry.store),
            batch_size=500,
            progress=on_progress,
        )
    )
    await asyncio.wait_for(started.wait(), 60)
    interrupted.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await interrupted


async def test_restart_drops_a_half_built_copy_and_starts_over(registry: Registry) -> None:
    engine = registry.engine
    expected = await rows_of(engine, ("cs_models", "cs_versions"))
    await interrupt_a_replay(registry, after=500)
    again = await replay(registry.store, read_model("current_state", registry.store), restart=True)
    assert again.resumed_from == 0
    assert await rows_of(engine, ("cs_models", "cs_versions")) == expected


async def test_a_copy_made_before_a_migration_is_dropped_and_rebuilt_on_the_new_tables(
    registry: Registry,
) -> None:
    engine = registry.engine
    expected = await rows_of(engine, ("cs_models", "cs_versions"))
    await interrupt_a_replay(registry, after=500)
    async with engine.begin() as conn:  # what a migration might do meanwhile
        await conn.execute(text("CREATE INDEX cs_models_updated ON cs_models (updated_at)"))
    try:
        again = await replay(registry.store, read_model("current_state", registry.store))
        assert again.resumed_from == 0
        assert await rows_of(engine, ("cs_models", "cs_versions")) == expected
        assert "cs_models_updated" in {name for name, _ in await index_definitions(engine)}
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP INDEX IF EXISTS cs_models_updated"))


async def test_a_second_replay_of_the_same_read_model_is_refused_while_one_runs(
    registry: Registry,
) -> None:
    running = asyncio.Event()
    first = asyncio.create_task(
        replay(
            registry.store,
            read_model("current_state", registry.store),
            batch_size=500,
            progress=lambda done, of: running.set(),
        )
    )
    await asyncio.wait_for(running.wait(), 60)
    with pytest.raises(ReplayBusy, match="another `registrar replay` of 'current_state'"):
        await replay(registry.store, read_model("current_state", registry.store))
    await first
    await replay(registry.store, read_model("current_state", registry.store))  # free again


async def test_a_swap_waits_for_queries_that_hold_the_live_tables(registry: Registry) -> None:
    """A query holding the live tables past the lock timeout makes the swap retry, not fail."""
    engine = registry.engine
    expected = await rows_of(engine, ("cs_models", "cs_versions"))
    async with engine.connect() as reader:
        await reader.execute(text("SELECT count(*) FROM cs_models"))  # holds ACCESS SHARE
        rebuild = asyncio.create_task(
            replay(
                registry.store,
                read_model("current_state", registry.store),
                lock_timeout_seconds=0.1,
            )
        )
        await asyncio.sleep(1.0)
        assert not rebuild.done()
        await reader.rollback()  # the query's transaction ends: the swap can go on
    result = await asyncio.wait_for(rebuild, 60)
    assert result.events == await event_count(engine)
    assert await rows_of(engine, ("cs_models", "cs_versions")) == expected


async def test_a_swap_under_concurrent_writes_loses_no_event_and_applies_none_twice(
    registry: Registry,
) -> None:
    """Writers and the live in-process projectors run throughout the rebuild and the swap; once
    they stop, every read model equals a from-scratch projection of the whole store, and the
    current state equals each stream folded."""
    engine = registry.engine
    async with engine.connect() as conn:
        names = list(
            (
                await conn.execute(
                    text(
                        "SELECT name FROM cs_models WHERE NOT deleted AND latest_version > 0"
                        " ORDER BY name LIMIT 6"
                    )
                )
            ).scalars()
        )
    registry.start_projectors()
    stop = asyncio.Event()
    written = 0

    async def write(name: str) -> None:
        nonlocal written
        step = 0
        while not stop.is_set():
            step += 1
            added = await registry.commands.handle(
                RegisterVersion(name=name, source=f"s3://{name}/{step}"), CommandMeta("writer")
            )
            number = added.state.last_version
            for command in (
                RecordMetrics(name=name, version=number, metrics={"auc": step / 1000}),
                TransitionStage(name=name, version=number, stage="Staging"),
                SetAlias(name=name, alias="newest", version=number),
            ):
                await registry.commands.handle(command, CommandMeta("writer"))
            written += 4

    async def write_once_each(prefix: str) -> None:
        """Models written once and never again: an event of theirs lost at a swap would stay
        lost (a model written again gets its missing events filled in from the store)."""
        nonlocal written
        step = 0
        while not stop.is_set():
            step += 1
            name = f"{prefix}-{step}"
            await registry.commands.handle(RegisterModel(name=name), CommandMeta("writer"))
            await registry.commands.handle(
                RegisterVersion(name=name, source=f"s3://{name}"), CommandMeta("writer")
            )
            written += 2

    writers = [asyncio.create_task(write(name)) for name in names]
    writers += [asyncio.create_task(write_once_each(f"once-{i}")) for i in range(3)]
    try:
        for name in READ_MODELS:
            await replay(registry.store, read_model(name, registry.store), batch_size=250)
            await asyncio.sleep(0.2)  # keep writing a little after each swap
    finally:
        stop.set()
        await asyncio.gather(*writers)
    assert written > 0
    for projector in registry.projectors:
        assert await projector.wait_for(await last_checkpoint(registry.store), 60)
    await registry.close()  # stop the live projectors before comparing

    store = PostgresEventStore(engine)
    async with engine.connect() as conn:
        models = {
            row.id: dict(row._mapping)
            for row in await conn.execute(
                text("SELECT stream_id AS id, * FROM cs_models WHERE NOT deleted")
            )
        }
        versions = (await conn.execute(text("SELECT * FROM cs_versions"))).all()
    for name in names:
        stream_id = next(i for i, m in models.items() if m["name"] == name)
        state = fold(None, await store.read_stream(stream_id))
        assert state is not None
        view = model_view(state)
        assert {k: models[stream_id][k] for k in ("name", "aliases", "latest_version")} == {
            k: view[k] for k in ("name", "aliases", "latest_version")
        }
        stored = {r.version: r for r in versions if r.stream_id == stream_id}
        assert set(stored) == set(state.versions)
        for number, version in state.versions.items():
            expected = version_view(state, version)
            assert (stored[number].stage, sorted(stored[number].aliases)) == (
                expected["stage"],
                expected["aliases"],
            )
            assert stored[number].metrics == expected["metrics"]
    for name in READ_MODELS:
        after_swap = await rows_of(engine, read_model(name, store).tables)
        assert await rebuilt_from_scratch(store, name) == after_swap, name


async def last_checkpoint(store: PostgresEventStore) -> Any:
    async with store.engine.connect() as conn:
        position = (await conn.execute(text("SELECT max(position) FROM events"))).scalar_one()
    checkpoint = await store.checkpoint_of(position)
    assert checkpoint is not None
    return checkpoint


async def test_the_progress_bar_prints_plain_lines_when_not_on_a_terminal() -> None:
    out = io.StringIO()
    bar = ProgressBar("replay current_state", stream=out, every_seconds=0)
    bar(0, 1_000)
    bar(500, 1_000)
    bar(1_000, 1_000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[1].startswith("replay current_state: 500/1,000 events  50%")
    assert "events/s" in lines[1] and "ETA" in lines[1]


async def test_registrar_replay_rebuilds_from_the_command_line(
    database_url: str, registry: Registry, tmp_path: Path
) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    done = subprocess.run(
        ["registrar", "replay", "--projection", "current_state", "--batch-size", "900"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "replay current_state: swapped in at position" in done.stderr
    assert "events/s" in done.stderr and "\r" not in done.stderr
    refused = subprocess.run(
        ["registrar", "replay", "--projection", "nope"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "invalid choice: 'nope'" in refused.stderr and "current_state" in refused.stderr
