"""The current-state projection on a real PostgreSQL: each event applied once in effect, any
rebuild equal to the live tables, missing events taken from the store."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.commands.command_handler import CommandHandler, CommandMeta
from registrar.contracts.commands import (
    DeleteModel,
    DeleteVersion,
    RecordMetrics,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    SetAlias,
    SetVersionTag,
    TransitionStage,
)
from registrar.projections.current_state import CurrentStateProjection
from registrar.projector.runner import Projector
from registrar.store.event_store import START, PostgresEventStore

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def tables(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    async with engine.connect() as conn:
        models = await conn.execute(text("SELECT * FROM cs_models ORDER BY stream_id"))
        versions = await conn.execute(text("SELECT * FROM cs_versions ORDER BY stream_id, version"))
        return {
            "models": [dict(r._mapping) for r in models],
            "versions": [dict(r._mapping) for r in versions],
        }


async def forget_projection(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM cs_versions"))
        await conn.execute(text("DELETE FROM cs_models"))
        await conn.execute(text("DELETE FROM projection_checkpoints"))


async def catch_up(projector: Projector) -> None:
    await projector.load_checkpoint()
    while await projector.catch_up_once():
        pass


@pytest.fixture(scope="module")
async def history(engine: AsyncEngine) -> PostgresEventStore:
    """A varied history: renames, stage changes with archive-existing, aliases, deletions."""
    store = PostgresEventStore(engine)
    handler = CommandHandler(store)

    def fresh() -> CommandMeta:  # a new command id for every command
        return CommandMeta("tester")

    for m in range(4):
        await handler.handle(RegisterModel(name=f"model-{m}", tags={"n": str(m)}), fresh())
        for v in range(5):
            await handler.handle(
                RegisterVersion(name=f"model-{m}", source=f"s3://{m}/{v}", run_id=f"run-{m}-{v}"),
                fresh(),
            )
    await handler.handle(TransitionStage(name="model-0", version=1, stage="Production"), fresh())
    await handler.handle(
        TransitionStage(name="model-0", version=2, stage="Production", archive_existing=True),
        fresh(),
    )
    await handler.handle(SetAlias(name="model-0", alias="champion", version=2), fresh())
    await handler.handle(SetAlias(name="model-0", alias="champion", version=3), fresh())
    await handler.handle(SetVersionTag(name="model-1", version=2, key="ok", value="yes"), fresh())
    await handler.handle(RecordMetrics(name="model-1", version=2, metrics={"auc": 0.9}), fresh())
    await handler.handle(RenameModel(name="model-2", new_name="model-2b"), fresh())
    await handler.handle(DeleteVersion(name="model-2b", version=4), fresh())
    await handler.handle(DeleteModel(name="model-3"), fresh())
    return store


async def test_the_projection_matches_the_streams(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    await forget_projection(engine)
    await catch_up(Projector(history, CurrentStateProjection(history)))
    state = await tables(engine)
    by_name = {m["name"]: m for m in state["models"]}
    assert set(by_name) == {"model-0", "model-1", "model-2b", "model-3"}
    assert by_name["model-3"]["deleted"] is True
    assert by_name["model-0"]["aliases"] == {"champion": 3}
    versions = {(v["model_name"], v["version"]): v for v in state["versions"]}
    assert versions[("model-0", 1)]["stage"] == "Archived"
    assert versions[("model-0", 2)]["stage"] == "Production"
    assert versions[("model-0", 3)]["aliases"] == ["champion"]
    assert versions[("model-0", 2)]["aliases"] == []
    assert versions[("model-1", 2)]["tags"] == {"ok": "yes"}
    assert versions[("model-1", 2)]["metrics"] == {"auc": 0.9}
    assert versions[("model-2b", 4)]["deleted"] is True
    assert not any(name == "model-2" for name, _ in versions)
    assert all(v["deleted"] for (name, _), v in versions.items() if name == "model-3")


async def test_applying_the_same_events_again_changes_nothing(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    await forget_projection(engine)
    projection = CurrentStateProjection(history)
    await catch_up(Projector(history, projection))
    before = await tables(engine)
    everything = [recorded.envelope for recorded in await history.read_all(START, 10_000)]
    for fresh_cache in (False, True):
        if fresh_cache:
            projection = CurrentStateProjection(history)
        async with engine.begin() as conn:
            await projection.apply(conn, everything)
            await projection.apply(conn, everything[: len(everything) // 2])
    assert await tables(engine) == before


async def test_a_rebuild_from_scratch_equals_the_live_projection(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    await forget_projection(engine)
    live = CurrentStateProjection(history)
    projector = Projector(history, live, batch_size=7)  # many small batches, warm cache
    await catch_up(projector)
    incremental = await tables(engine)
    await forget_projection(engine)
    await catch_up(Projector(history, CurrentStateProjection(history), batch_size=10_000))
    assert await tables(engine) == incremental


async def test_events_delivered_with_a_gap_are_completed_from_the_store(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    await forget_projection(engine)
    await catch_up(Projector(history, CurrentStateProjection(history)))
    expected = await tables(engine)
    await forget_projection(engine)
    everything = [recorded.envelope for recorded in await history.read_all(START, 10_000)]
    stream = everything[0].stream_id
    own = [e for e in everything if e.stream_id == stream]
    with_gap = [e for e in everything if e.stream_id != stream] + [own[0], *own[2:]]
    async with engine.begin() as conn:
        await CurrentStateProjection(history).apply(conn, with_gap)
    assert await tables(engine) == expected


async def test_the_checkpoint_is_saved_with_the_rows(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    await forget_projection(engine)
    projector = Projector(history, CurrentStateProjection(history))
    await catch_up(projector)
    restarted = Projector(history, CurrentStateProjection(history))
    assert await restarted.load_checkpoint() == projector.checkpoint
    assert await restarted.catch_up_once() == 0


async def test_a_failing_batch_is_retried_and_nothing_is_skipped(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    await forget_projection(engine)
    await catch_up(Projector(history, CurrentStateProjection(history)))
    expected = await tables(engine)
    await forget_projection(engine)

    class FailsOnce(CurrentStateProjection):
        failed = False

        async def apply(self, conn: Any, events: Any) -> None:
            await super().apply(conn, events)  # writes rows, then fails: all must roll back
            if not self.failed:
                self.failed = True
                raise RuntimeError("the database went away mid-batch")

    projector = Projector(history, FailsOnce(history), batch_size=10_000)
    task = asyncio.create_task(projector.run())
    try:
        last = (await history.read_all(START, 10_000))[-1].checkpoint
        assert await projector.wait_for(last, timeout=30)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert projector.projection.failed  # type: ignore[attr-defined]
    assert await tables(engine) == expected


async def test_one_process_at_a_time_follows_the_store_and_another_takes_over(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    """Two projectors of one read model on one database (two `registrar serve`, say): one
    follows, the other stands by without applying anything, and takes over when the first
    stops."""
    await forget_projection(engine)
    first = Projector(history, CurrentStateProjection(history))
    second = Projector(history, CurrentStateProjection(history))
    following = asyncio.create_task(first.run())
    standing_by: asyncio.Task[None] | None = None
    try:
        last = (await history.read_all(START, 10_000))[-1].checkpoint
        assert await first.wait_for(last, timeout=30)
        standing_by = asyncio.create_task(second.run())
        # The second has not taken the lock nor applied a batch while the first runs.
        assert not await second.wait_for(last, timeout=1.5)
        assert (second.following, second.batches) == (False, 0)

        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
        handler = CommandHandler(history)
        await handler.handle(RegisterModel(name="after-the-handover"), CommandMeta("tester"))
        newest = (await history.read_all(last, 10))[-1].checkpoint
        assert await second.wait_for(newest, timeout=30)
        assert second.following
    finally:
        for task in (following, standing_by):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    names = [m["name"] for m in (await tables(engine))["models"]]
    assert "after-the-handover" in names


async def test_a_projector_whose_lock_session_dies_takes_the_lock_again_and_goes_on(
    engine: AsyncEngine, history: PostgresEventStore
) -> None:
    await forget_projection(engine)
    projector = Projector(history, CurrentStateProjection(history))
    projector.lock_check_seconds = 0.05
    following = asyncio.create_task(projector.run())
    try:
        last = (await history.read_all(START, 10_000))[-1].checkpoint
        assert await projector.wait_for(last, timeout=30)

        async def lock_holders() -> list[int]:
            async with engine.connect() as conn:
                held = await conn.execute(
                    text(
                        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
                        " AND database = (SELECT oid FROM pg_database"
                        " WHERE datname = current_database())"
                    )
                )
                return list(held.scalars())

        [first] = await lock_holders()
        async with engine.connect() as conn:  # as a server restart would: the session is gone
            ended = await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            assert ended.scalar() is True
        for _ in range(200):  # the projector notices within lock_check_seconds, then retakes it
            if (await lock_holders()) not in ([], [first]):
                break
            await asyncio.sleep(0.05)
        [again] = await lock_holders()
        assert again != first
        await CommandHandler(history).handle(
            RegisterModel(name="after-the-lost-lock"), CommandMeta("tester")
        )
        newest = (await history.read_all(last, 10))[-1].checkpoint
        assert await projector.wait_for(newest, timeout=30)
        assert projector.following
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following
