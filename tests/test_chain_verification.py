"""Tamper evidence on a real PostgreSQL: alter, remove or cut stored events with SQL (the
append-only triggers disabled, as someone with the database's keys could) and see the first
broken link named, by stream and version."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from conftest import create_database, drop_database
from registrar_process import BIN, registrar_env
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.commands.command_handler import CommandHandler, CommandMeta
from registrar.contracts.codec import dumps, loads
from registrar.contracts.commands import RegisterModel, RegisterVersion, TransitionStage
from registrar.contracts.envelope import chain_hash
from registrar.store.chain_verification import verify_chains
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore
from registrar.store.schema_migrations import migrate

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture
def fresh_url(server_url: str) -> Iterator[str]:
    """A database of this test's own: tampering must not leak into other tests."""
    url, name = create_database(server_url)
    yield url
    drop_database(server_url, name)


@pytest.fixture
async def store(fresh_url: str) -> AsyncIterator[PostgresEventStore]:
    """A store with three models (one with a stage change)."""
    url = fresh_url
    engine = create_engine(url, pool_size=4)
    await migrate(engine)
    store = PostgresEventStore(engine)
    handler = CommandHandler(store)
    for model in ("alpha", "beta", "gamma"):
        await handler.handle(RegisterModel(name=model), CommandMeta("t"))
        for i in range(4):
            await handler.handle(RegisterVersion(name=model, source=f"s3://{i}"), CommandMeta("t"))
    await handler.handle(TransitionStage(name="beta", version=2, stage="Staging"), CommandMeta("t"))
    store.url = url  # type: ignore[attr-defined]
    yield store
    await engine.dispose()


async def stream_of(engine: AsyncEngine, model: str) -> str:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT stream_id FROM model_names WHERE name = :n"), {"n": model}
        )
        return str(found.scalar_one())


async def tamper(engine: AsyncEngine, sql: str, **params: object) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete"))
        await conn.execute(text(sql), params)
        await conn.execute(text("ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete"))


async def test_an_untouched_store_verifies(store: PostgresEventStore) -> None:
    report = await verify_chains(store)
    assert report.intact and report.broken == []
    assert (report.streams, report.events) == (3, 3 * 5 + 1)
    assert sorted(h.version for h in report.heads) == [5, 5, 6]


async def test_an_altered_event_is_named_by_stream_and_version(store: PostgresEventStore) -> None:
    beta = await stream_of(store.engine, "beta")
    await tamper(
        store.engine,
        "UPDATE events SET payload = CAST(:p AS json) WHERE stream_id = :s AND stream_version = 3",
        p='{"version": 2, "source": "s3://evil"}',
        s=beta,
    )
    report = await verify_chains(store)
    assert not report.intact
    (link,) = report.broken
    assert (link.stream_id, link.version) == (beta, 3)
    assert "altered" in link.problem


async def test_a_removed_event_in_the_middle_is_named(store: PostgresEventStore) -> None:
    gamma = await stream_of(store.engine, "gamma")
    await tamper(
        store.engine, "DELETE FROM events WHERE stream_id = :s AND stream_version = 2", s=gamma
    )
    (link,) = (await verify_chains(store)).broken
    assert (link.stream_id, link.version) == (gamma, 3)
    assert "version 2 is missing" in link.problem


async def test_a_cut_tail_shows_only_against_anchored_heads(store: PostgresEventStore) -> None:
    anchored = (await verify_chains(store)).heads
    alpha = await stream_of(store.engine, "alpha")
    await tamper(
        store.engine, "DELETE FROM events WHERE stream_id = :s AND stream_version > 3", s=alpha
    )
    assert (await verify_chains(store)).intact, "a shorter chain is still a valid chain"
    (link,) = (await verify_chains(store, anchored)).broken
    assert (link.stream_id, link.version) == (alpha, 4)
    assert "removed" in link.problem


async def test_a_rewritten_history_with_recomputed_hashes_shows_against_anchors(
    store: PostgresEventStore,
) -> None:
    anchored = (await verify_chains(store)).heads
    alpha = await stream_of(store.engine, "alpha")
    events = await store.read_stream(alpha)
    # Rewrite version 2 and recompute every hash after it: the chain itself is valid again.
    prev = events[0].hash
    for envelope in events[1:]:
        payload = dict(envelope.payload)
        if envelope.stream_version == 2:
            payload["source"] = "s3://rewritten"
        rewritten = envelope.model_copy(update={"payload": payload, "prev_hash": prev})
        digest = chain_hash(prev, rewritten.hashed_fields())
        await tamper(
            store.engine,
            "UPDATE events SET payload = CAST(:p AS json), prev_hash = :prev, hash = :h"
            " WHERE event_id = :id",
            p=dumps(payload).decode(),
            prev=prev,
            h=digest,
            id=envelope.event_id,
        )
        prev = digest
    assert (await verify_chains(store)).intact, "recomputed hashes make a valid chain"
    (link,) = (await verify_chains(store, anchored)).broken
    assert (link.stream_id, link.version) == (alpha, 5)
    assert "rewritten" in link.problem


async def test_registrar_audit_verify_and_heads_on_the_command_line(
    store: PostgresEventStore, tmp_path: Path
) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=store.url)  # type: ignore[attr-defined]

    def audit(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "registrar"), "audit", *args], env=env, capture_output=True, text=True
        )

    exported = audit("heads", str(tmp_path / "heads.json"))
    assert exported.returncode == 0, exported.stderr
    heads = loads((tmp_path / "heads.json").read_bytes())
    assert len(heads["heads"]) == 3
    assert audit("verify").returncode == 0
    beta = await stream_of(store.engine, "beta")
    await tamper(
        store.engine, "DELETE FROM events WHERE stream_id = :s AND stream_version = 6", s=beta
    )
    assert audit("verify").returncode == 0, "the cut tail needs the anchor"
    anchored = audit("verify", "--anchored", str(tmp_path / "heads.json"))
    assert anchored.returncode == 1
    assert f"BROKEN stream {beta} at version 6" in anchored.stdout
