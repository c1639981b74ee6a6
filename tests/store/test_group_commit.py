"""Commands that queue for one model while it is busy are appended together (a group commit), and
each still gets exactly its own outcome: gapless version numbers, its own events, its own
refusal. Against a real PostgreSQL."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.commands.command_handler import CommandHandler, CommandMeta
from registrar.contracts.commands import RegisterModel, RegisterVersion, TransitionStage
from registrar.contracts.values import Stage
from registrar.domain.errors import DomainError
from registrar.store.event_store import PostgresEventStore


def _register(name: str, n: int) -> RegisterVersion:
    return RegisterVersion(name=name, source=f"s3://bucket/{name}/{n}")


async def _commands_per_transaction(engine: AsyncEngine, stream_id: str) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT count(DISTINCT causation_id) AS commands FROM events"
                " WHERE stream_id = :stream GROUP BY transaction_id ORDER BY min(position)"
            ),
            {"stream": stream_id},
        )
        return [row.commands for row in rows]


async def test_concurrent_commands_on_one_model_share_an_append_and_keep_their_own_outcomes(
    engine: AsyncEngine,
) -> None:
    handler = CommandHandler(PostgresEventStore(engine))
    name = f"hot-{uuid4().hex[:8]}"
    created = await handler.handle(RegisterModel(name=name), CommandMeta("alice"))
    stream_id = created.stream.stream_id

    outcomes = await asyncio.gather(
        *(handler.handle(_register(name, n), CommandMeta(f"writer-{n}")) for n in range(20))
    )

    numbers = [int(o.events[-1].payload["version"]) for o in outcomes]
    assert numbers == list(range(1, 21))  # gapless, in the order the commands came
    for n, outcome in enumerate(outcomes):
        assert [e.actor for e in outcome.events] == [f"writer-{n}"]
        assert outcome.events[-1].payload["source"] == f"s3://bucket/{name}/{n}"
        assert outcome.state.last_version == n + 1  # the state right after its own command
        assert outcome.position == outcome.events[-1].position
    assert sorted(await _commands_per_transaction(engine, stream_id))[-1] > 1, (
        "no two queued commands were appended together"
    )
    stored = await handler.load(name)
    assert stored is not None and stored.state is not None
    assert sorted(stored.state.versions) == list(range(1, 21))


async def test_a_refused_command_in_a_queue_is_refused_alone_and_the_others_go_through(
    engine: AsyncEngine,
) -> None:
    handler = CommandHandler(PostgresEventStore(engine))
    name = f"mixed-{uuid4().hex[:8]}"
    await handler.handle(RegisterModel(name=name), CommandMeta("alice"))

    results = await asyncio.gather(
        handler.handle(_register(name, 0), CommandMeta("a")),
        handler.handle(
            TransitionStage(name=name, version=99, stage=Stage.STAGING), CommandMeta("b")
        ),
        handler.handle(_register(name, 1), CommandMeta("c")),
        handler.handle(
            TransitionStage(name=name, version=1, stage=Stage.STAGING), CommandMeta("d")
        ),
        return_exceptions=True,
    )

    assert isinstance(results[1], DomainError) and "99" in str(results[1])
    first, _, second, moved = results
    assert not isinstance(first, BaseException) and not isinstance(second, BaseException)
    assert not isinstance(moved, BaseException)
    assert [first.events[-1].payload["version"], second.events[-1].payload["version"]] == [1, 2]
    assert moved.state.versions[1].stage == Stage.STAGING
    stored = await handler.load(name)
    assert stored is not None and stored.version == 4  # registered, two versions, one move


async def test_writers_in_two_processes_on_one_model_still_get_gapless_numbers(
    engine: AsyncEngine,
) -> None:
    """Two handlers (as two processes) queue and group on their own; the store's version check
    sends a group that lost the race back to be decided again."""
    store = PostgresEventStore(engine)
    first, second = CommandHandler(store), CommandHandler(store)
    name = f"shared-{uuid4().hex[:8]}"
    await first.handle(RegisterModel(name=name), CommandMeta("alice"))
    await second.load(name)  # both hold the model in cache: both try grouped appends

    outcomes = await asyncio.gather(
        *(
            (first if n % 2 else second).handle(_register(name, n), CommandMeta(f"w{n}"))
            for n in range(30)
        )
    )

    numbers = sorted(int(o.events[-1].payload["version"]) for o in outcomes)
    assert numbers == list(range(1, 31))
