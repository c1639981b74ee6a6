"""The event store's contract: one abstract test case holding every test, subclassed once per
PostgreSQL server it must hold on (the configured one, the embedded one), as the eventsourcing
library does for its recorders. Each test runs on a fresh, migrated database."""

from __future__ import annotations

import asyncio
import math
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import pytest
from conftest import configured_server_url, create_database, drop_database
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registrar.commands.command_handler import CommandHandler, CommandMeta, LoadedStream, Outcome
from registrar.contracts.codec import dumps
from registrar.contracts.commands import (
    Command,
    RecordMetrics,
    RegisterModel,
    RegisterVersion,
    SetAlias,
    SetModelTag,
    SetVersionTag,
    TransitionStage,
    UpdateVersionDescription,
)
from registrar.contracts.envelope import GENESIS_HASH, Envelope, chain_hash
from registrar.contracts.identifiers import uuid7
from registrar.contracts.values import DatasetRef, ParentRef
from registrar.domain.errors import Conflict
from registrar.domain.state import STATE_SCHEMA
from registrar.store.database import create_engine
from registrar.store.event_store import (
    START,
    Checkpoint,
    ConcurrencyConflict,
    NameChange,
    NameTaken,
    NewEvent,
    PostgresEventStore,
    RecordedEvent,
    Snapshot,
    StreamHead,
    chain,
)
from registrar.store.schema_migrations import migrate

AT = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

# Written with explicit columns, not through the store, so that a test can hold the transaction
# open; transaction_id is left to its default, as the store leaves it.
_INSERT_ONE = text(
    "INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, recorded_at,"
    " actor, payload, prev_hash, hash)"
    " VALUES (:event_id, :stream_id, :stream_version, :type, :schema_version, :recorded_at,"
    " :actor, CAST(:payload AS json), :prev_hash, :hash)"
    " RETURNING position"
)


def new_event(payload: dict[str, Any] | None = None, *, at: datetime = AT) -> NewEvent:
    return NewEvent(
        event_id=uuid7(),
        type="Noted",
        payload={} if payload is None else payload,
        recorded_at=at,
        actor="contract-test",
    )


def head_of(envelopes: list[Envelope]) -> StreamHead:
    return StreamHead(envelopes[-1].stream_version, envelopes[-1].hash)


def ids(items: Iterable[NewEvent | Envelope | RecordedEvent]) -> list[UUID]:
    return [i.envelope.event_id if isinstance(i, RecordedEvent) else i.event_id for i in items]


def meta() -> CommandMeta:
    return CommandMeta(actor="contract-test")  # a new command id each time


async def insert_event(
    conn: AsyncConnection, stream_id: str, head: StreamHead, event: NewEvent
) -> Envelope:
    """Insert `event` after `head` in `conn`'s transaction, which the caller commits or not."""
    [envelope] = chain(stream_id, head, [event])
    position = (
        await conn.execute(
            _INSERT_ONE,
            {
                "event_id": envelope.event_id,
                "stream_id": stream_id,
                "stream_version": envelope.stream_version,
                "type": envelope.type,
                "schema_version": envelope.schema_version,
                "recorded_at": envelope.recorded_at,
                "actor": envelope.actor,
                "payload": dumps(envelope.payload).decode(),
                "prev_hash": envelope.prev_hash,
                "hash": envelope.hash,
            },
        )
    ).scalar_one()
    return envelope.model_copy(update={"position": position})


async def count_events(engine: AsyncEngine, stream_id: str | None = None) -> int:
    async with engine.connect() as conn:
        if stream_id is None:
            result = await conn.execute(text("SELECT count(*) FROM events"))
        else:
            result = await conn.execute(
                text("SELECT count(*) FROM events WHERE stream_id = :s"), {"s": stream_id}
            )
        return int(result.scalar_one())


async def read_until(
    store: PostgresEventStore, after: Checkpoint, want: set[UUID], timeout: float = 30.0
) -> list[RecordedEvent]:
    """read_all from `after`, following its checkpoints, until every id in `want` was read.

    A transaction open anywhere on the server holds read_all back (it stops below the oldest
    running transaction); on a shared server another session may do that for a moment."""
    read: list[RecordedEvent] = []
    deadline = asyncio.get_running_loop().time() + timeout
    while not want <= set(ids(read)) and asyncio.get_running_loop().time() < deadline:
        batch = await store.read_all(after)
        if batch:
            read += batch
            after = batch[-1].checkpoint
        else:
            await asyncio.sleep(0.05)
    return read


def verify_chain(envelopes: list[Envelope]) -> None:
    """Every hash recomputes from the fields as read back, and links to the one before."""
    prev = GENESIS_HASH
    for envelope in envelopes:
        assert envelope.prev_hash == prev, f"version {envelope.stream_version} breaks the chain"
        assert envelope.hash == chain_hash(envelope.prev_hash, envelope.hashed_fields()), (
            f"the hash of version {envelope.stream_version} does not match its stored fields"
        )
        prev = envelope.hash


class EventStoreContract(ABC):
    """Every test of PostgresEventStore; a subclass says which server it runs them on."""

    @pytest.fixture(scope="class")
    @classmethod
    @abstractmethod
    def server(cls) -> str:
        """The URL of the PostgreSQL server under test (any database of it)."""

    @pytest.fixture
    def database_url(self, server: str) -> Iterator[str]:
        url, name = create_database(server)
        yield url
        drop_database(server, name)

    @pytest.fixture
    def other_database_url(self, server: str) -> Iterator[str]:
        """Another database on the same server."""
        url, name = create_database(server)
        yield url
        drop_database(server, name)

    @pytest.fixture
    async def engine(self, database_url: str) -> AsyncIterator[AsyncEngine]:
        engine = create_engine(database_url, pool_size=10)
        await migrate(engine)
        yield engine
        await engine.dispose()

    @pytest.fixture
    def store(self, engine: AsyncEngine) -> PostgresEventStore:
        return PostgresEventStore(engine)

    # Append and read a stream

    async def test_appended_events_are_read_back_with_versions_positions_and_payloads(
        self, store: PostgresEventStore
    ) -> None:
        events = [new_event({"n": n, "nested": {"list": [1, "two", None, True]}}) for n in range(5)]
        appended = await store.append("stream-1", StreamHead(), events)
        more = await store.append("stream-1", head_of(appended), [new_event({"n": 5})])

        read = await store.read_stream("stream-1")
        assert [e.stream_version for e in read] == [1, 2, 3, 4, 5, 6]
        assert ids(read) == ids(events) + ids(more)
        assert [e.payload for e in read] == [e.payload for e in events] + [{"n": 5}]
        positions = [e.position for e in read if e.position is not None]
        assert len(positions) == len(read), "every event has a position"
        assert positions == sorted(set(positions)), "positions are unique and grow with versions"
        assert read == appended + more, "append returns what read_stream later reads"
        assert all(e.recorded_at == AT and e.actor == "contract-test" for e in read)
        assert await store.read_stream("stream-1", after_version=4) == read[4:]
        assert await store.read_stream("no-such-stream") == []

    async def test_append_with_a_stale_expected_version_conflicts_and_writes_nothing(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        appended = await store.append("stream-1", StreamHead(), [new_event(), new_event()])

        with pytest.raises(ConcurrencyConflict):
            await store.append("stream-1", StreamHead(1, appended[0].hash), [new_event()])
        with pytest.raises(ConcurrencyConflict):
            await store.append("stream-1", StreamHead(), [new_event()])

        assert await count_events(engine) == 2
        assert await store.read_stream("stream-1") == appended

    async def test_append_expecting_a_version_the_stream_has_not_reached_conflicts(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        appended = await store.append("stream-1", StreamHead(), [new_event(), new_event()])

        with pytest.raises(ConcurrencyConflict):
            await store.append("stream-1", StreamHead(5, appended[-1].hash), [new_event()])
        with pytest.raises(ConcurrencyConflict):
            await store.append("empty-stream", StreamHead(3, appended[-1].hash), [new_event()])

        assert await count_events(engine) == 2, "versions stay gapless"

    async def test_append_expecting_another_head_hash_conflicts(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        appended = await store.append("stream-1", StreamHead(), [new_event(), new_event()])

        with pytest.raises(ConcurrencyConflict):
            await store.append("stream-1", StreamHead(2, appended[0].hash), [new_event()])

        assert await count_events(engine) == 2, "the chain is never linked to a wrong hash"

    async def test_appending_the_same_events_twice_stores_them_once(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        events = [new_event({"n": n}) for n in range(3)]
        first = await store.append("stream-1", StreamHead(), events)
        again = await store.append("stream-1", StreamHead(), events)
        assert again == first, "the stored envelopes, positions included"
        assert await count_events(engine) == 3

        # A late retry, after the stream moved on, still gets the events it stored.
        later = await store.append("stream-1", head_of(first), [new_event()])
        assert await store.append("stream-1", StreamHead(), events) == first
        assert await store.read_stream("stream-1") == first + later

    async def test_concurrent_retries_of_one_append_store_it_once(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        # Many small rounds: the race between duplicates is narrow, and each round is a new try.
        for round_ in range(200):
            stream_id = f"stream-{round_}"
            events = [new_event({"n": n}) for n in range(2)]
            results = await asyncio.gather(
                *(store.append(stream_id, StreamHead(), events) for _ in range(8)),
                return_exceptions=True,
            )
            assert all(result == results[0] for result in results), results
            assert ids(results[0]) == ids(events)  # type: ignore[arg-type]
        assert await count_events(engine) == 400

    # The hash chain

    async def test_each_hash_recomputes_from_what_is_read_back_and_links_to_the_previous(
        self, store: PostgresEventStore
    ) -> None:
        head = StreamHead()
        for batch in ([new_event({"n": 1})], [new_event({"n": n}) for n in range(2, 5)]):
            head = head_of(await store.append("stream-1", head, batch))
        await store.append("stream-2", StreamHead(), [new_event({"n": 1})])

        read = await store.read_stream("stream-1")
        assert read[0].prev_hash == GENESIS_HASH
        verify_chain(read)
        other = await store.read_stream("stream-2")
        verify_chain(other)
        assert other[0].hash != read[0].hash, "the stream id is part of what is hashed"

    async def test_awkward_floats_and_unicode_survive_the_round_trip_with_the_hash_verifying(
        self, store: PostgresEventStore
    ) -> None:
        payloads: list[dict[str, Any]] = [
            {"tenth": 0.1, "negative_zero": -0.0, "tiny": 1e-7},
            {"huge": 1.7976931348623157e308, "denormal": 5e-324, "third": 1 / 3},
            {"big_int": 2**53 + 1, "min_int": -(2**63), "max_uint": 2**64 - 1},
            {"text": "naïve café – 模型 – Ωμέγα – 🚀", "rtl": "مرحبا", "combining": "e\u0301"},
            {"escapes": 'quote" backslash\\ newline\n tab\t nul\u0000 bell\u0007 del\u007f'},
            {"z_last": {"b": [0.1, -0.0, 1e-7], "a": {"z": 1, "y": 2}}, "a_first": [], "m": {}},
            {"ключ": "значение", "🔑": "🗝", "": "empty key"},
        ]
        first = await store.append("stream-1", StreamHead(), [new_event(p) for p in payloads[:3]])
        then = await store.append("stream-1", head_of(first), [new_event(p) for p in payloads[3:]])
        read = await store.read_stream("stream-1")

        assert [e.payload for e in read] == payloads
        assert read == first + then
        assert math.copysign(1.0, read[0].payload["negative_zero"]) == -1.0, "-0.0 kept its sign"
        assert math.copysign(1.0, read[5].payload["z_last"]["b"][1]) == -1.0
        assert read[0].payload["tiny"] == 1e-7 and read[1].payload["denormal"] == 5e-324
        assert list(read[5].payload) == ["z_last", "a_first", "m"], "key order is kept"
        verify_chain(read)

    async def test_a_recorded_time_in_any_time_zone_keeps_the_hash_verifiable(
        self, store: PostgresEventStore
    ) -> None:
        instants = [
            datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
            datetime(2024, 5, 1, 6, 30, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
            datetime(2024, 5, 1, 12, 0),  # naive: taken as UTC, as the codec takes it
        ]
        events = [new_event(at=at) for at in instants]
        appended = await store.append("stream-1", StreamHead(), events)
        read = await store.read_stream("stream-1")

        as_utc = [at if at.tzinfo else at.replace(tzinfo=UTC) for at in instants]
        assert [e.recorded_at for e in read] == as_utc, "the same instants"
        assert read == appended, "append returns the envelopes as stored"
        assert all(e.recorded_at.utcoffset() == timedelta(0) for e in appended + read)
        verify_chain(read)

    # Names

    async def test_claiming_a_taken_name_is_refused_and_rolls_back_the_append(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        held = await store.append("stream-a", StreamHead(), [new_event()], NameChange("fraud"))

        with pytest.raises(NameTaken) as refused:
            await store.append(
                "stream-b", StreamHead(), [new_event(), new_event()], NameChange(claim="fraud")
            )

        assert refused.value.name == "fraud" and "fraud" in str(refused.value)
        assert await store.read_stream("stream-b") == []
        assert await count_events(engine) == 1
        assert await store.resolve_name("fraud") == "stream-a"
        # Nothing of the refused append remains: its stream can start at version 1 again.
        retried = await store.append("stream-b", StreamHead(), [new_event()], NameChange("churn"))
        assert retried[0].stream_version == 1
        assert await store.resolve_name("churn") == "stream-b"
        assert await store.read_stream("stream-a") == held

    async def test_a_released_name_finds_its_last_holder_until_another_takes_it(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        registered = await store.append(
            "stream-a", StreamHead(), [new_event()], NameChange(claim="fraud")
        )
        renamed = await store.append(
            "stream-a", head_of(registered), [new_event()], NameChange("fraud-v2", retire="fraud")
        )
        assert await store.resolve_name("fraud") == "stream-a"  # a former name still finds it
        assert await store.resolve_name("fraud-v2") == "stream-a"
        assert await store.resolve_name("never-claimed") is None

        # A rename released "fraud": another model takes it, and the name now finds that one.
        taken = await store.append("stream-b", StreamHead(), [new_event()], NameChange("fraud"))
        assert await store.resolve_name("fraud") == "stream-b"
        # A live model's name is held: a claim of it fails, and the append writes nothing.
        await store.append("stream-c", StreamHead(), [new_event()], NameChange(claim="churn"))
        with pytest.raises(NameTaken):
            await store.append(
                "stream-a", head_of(renamed), [new_event()], NameChange("churn", retire="fraud-v2")
            )
        with pytest.raises(NameTaken):
            await store.append("stream-d", StreamHead(), [new_event()], NameChange("fraud-v2"))
        assert await store.read_stream("stream-a") == registered + renamed
        assert await store.read_stream("stream-d") == []

        # Deleting a model releases every name it holds; its last names still find it.
        await store.append(
            "stream-a", head_of(renamed), [new_event()], NameChange(release_all=True)
        )
        assert await store.resolve_name("fraud-v2") == "stream-a"
        await store.append("stream-d", StreamHead(), [new_event()], NameChange("fraud-v2"))
        assert await store.resolve_name("fraud-v2") == "stream-d"
        assert await store.read_stream("stream-b") == taken

        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT name, stream_id, is_current FROM model_names ORDER BY 1, 2")
            )
            held = [tuple(row) for row in rows]
        assert held == [
            ("churn", "stream-c", True),
            ("fraud", "stream-a", False),
            ("fraud", "stream-b", True),
            ("fraud-v2", "stream-a", False),
            ("fraud-v2", "stream-d", True),
        ]

    # Append-only

    @pytest.mark.parametrize(
        "statement",
        [
            "UPDATE events SET payload = CAST('{}' AS json)",
            "UPDATE events SET type = 'Forged' WHERE stream_version = 2",
            "DELETE FROM events WHERE stream_version = 1",
            "DELETE FROM events",
            "TRUNCATE events",
        ],
    )
    async def test_events_cannot_be_changed_or_removed(
        self, engine: AsyncEngine, store: PostgresEventStore, statement: str
    ) -> None:
        events = [new_event({"n": 1}), new_event({"n": 2})]
        appended = await store.append("stream-1", StreamHead(), events)

        with pytest.raises(DBAPIError, match="immutable"):
            async with engine.begin() as conn:
                await conn.execute(text(statement))

        assert await store.read_stream("stream-1") == appended

    # Reading everything in commit order

    async def test_read_all_does_not_pass_an_open_transaction_holding_a_lower_position(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        async with engine.connect() as conn_a:
            transaction_a = await conn_a.begin()
            a = await insert_event(conn_a, "stream-a", StreamHead(), new_event())
            [b] = await store.append("stream-b", StreamHead(), [new_event()])
            assert a.position is not None and b.position is not None and a.position < b.position

            before = await store.read_all(START)
            # Returning B now would move the checkpoint past A's lower position for good.
            assert b.event_id not in ids(before)
            assert a.event_id not in ids(before), "A is not committed"
            await transaction_a.commit()

        checkpoint = before[-1].checkpoint if before else START
        after = await read_until(store, checkpoint, want={a.event_id, b.event_id})
        assert ids(before + after) == [a.event_id, b.event_id], "each once, A first"

    async def test_a_transaction_open_in_another_database_does_not_hold_read_all_back(
        self, database_url: str, store: PostgresEventStore, other_database_url: str
    ) -> None:
        other = create_engine(other_database_url, pool_size=1)
        try:
            async with other.connect() as conn:
                transaction = await conn.begin()
                await conn.execute(text("SELECT pg_current_xact_id()"))  # it holds an id now
                [event] = await store.append("stream-1", StreamHead(), [new_event()])
                read = await store.read_all(START)
                await transaction.rollback()
        finally:
            await other.dispose()
        assert ids(read) == [event.event_id]

    async def test_read_all_returns_a_later_commit_at_a_lower_position_after_its_checkpoint(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        async with engine.connect() as conn_a, engine.connect() as conn_b:
            transaction_b = await conn_b.begin()
            await conn_b.execute(text("SELECT pg_current_xact_id()"))  # B's transaction id first
            transaction_a = await conn_a.begin()
            a = await insert_event(conn_a, "stream-a", StreamHead(), new_event())
            b = await insert_event(conn_b, "stream-b", StreamHead(), new_event())
            await transaction_b.commit()
            assert a.position is not None and b.position is not None and a.position < b.position

            first = await read_until(store, START, want={b.event_id})
            assert ids(first) == [b.event_id]
            await transaction_a.commit()

        # Reading on by position (> b.position) would skip A; by checkpoint it does not.
        rest = await read_until(store, first[-1].checkpoint, want={a.event_id})
        assert ids(rest) == [a.event_id]
        assert await store.read_all(rest[-1].checkpoint) == []

    async def test_a_reader_following_checkpoints_sees_every_committed_event_exactly_once(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        seed = random.randrange(2**32)
        rng = random.Random(seed)
        committed: set[UUID] = set()
        rolled_back: set[UUID] = set()
        writers_done = asyncio.Event()

        async def write(writer: int) -> None:
            stream_id, head = f"writer-{writer}", StreamHead()
            for _ in range(6):
                events = [new_event({"writer": writer}) for _ in range(rng.randint(1, 3))]
                if rng.random() < 0.3:
                    await asyncio.sleep(rng.uniform(0, 0.01))
                    appended = await store.append(stream_id, head, events)
                    committed.update(ids(appended))
                    head = head_of(appended)
                    continue
                async with engine.connect() as conn:
                    transaction = await conn.begin()
                    written, after = [], head
                    for event in events:
                        written.append(await insert_event(conn, stream_id, after, event))
                        after = head_of(written)
                        await asyncio.sleep(rng.uniform(0, 0.02))  # inside the open transaction
                    if rng.random() < 0.15:
                        await transaction.rollback()
                        rolled_back.update(ids(written))
                    else:
                        await transaction.commit()
                        committed.update(ids(written))
                        head = after

        async def follow() -> list[RecordedEvent]:
            read: list[RecordedEvent] = []
            checkpoint = START
            while not writers_done.is_set():
                batch = await store.read_all(checkpoint, limit=rng.randint(1, 10))
                if batch:
                    read += batch
                    checkpoint = batch[-1].checkpoint
                await asyncio.sleep(rng.uniform(0, 0.005))
            return read + await read_until(store, checkpoint, want=committed - set(ids(read)))

        async def write_all() -> None:
            await asyncio.gather(*(write(w) for w in range(8)))
            writers_done.set()

        read, _ = await asyncio.gather(follow(), write_all())

        seen = ids(read)
        assert len(seen) == len(set(seen)), f"an event was read twice (seed {seed})"
        assert set(seen) == committed, f"missed {len(committed - set(seen))} events (seed {seed})"
        assert not rolled_back & set(seen)
        checkpoints = [r.checkpoint for r in read]
        assert checkpoints == sorted(checkpoints) and len(set(checkpoints)) == len(checkpoints)
        by_stream: dict[str, list[int]] = {}
        for r in read:
            by_stream.setdefault(r.envelope.stream_id, []).append(r.envelope.stream_version)
        for stream_id, versions in by_stream.items():
            assert versions == list(range(1, len(versions) + 1)), f"{stream_id} out of order"

    async def test_checkpoint_of_a_position_is_the_checkpoint_read_all_reported(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        heads: dict[str, StreamHead] = {}
        written: list[UUID] = []
        for n in range(12):
            stream_id = f"stream-{n % 3}"
            appended = await store.append(
                stream_id, heads.get(stream_id, StreamHead()), [new_event({"n": n}), new_event()]
            )
            heads[stream_id] = head_of(appended)
            written += ids(appended)

        recorded = await read_until(store, START, want=set(written))
        assert ids(recorded) == written, "one writer: commit order is append order"
        for r in recorded:
            assert r.envelope.position is not None
            assert await store.checkpoint_of(r.envelope.position) == r.checkpoint
        assert await store.checkpoint_of(10**12) is None
        last = recorded[-1].envelope
        assert await store.stream_version_at(last.position or 0) == (
            last.stream_id,
            last.stream_version,
        ), "what read-your-writes waits for"
        assert await store.stream_version_at(10**12) is None

        # A reader resuming from a position's checkpoint reads exactly the events after it.
        middle = recorded[9].envelope.position
        assert middle is not None
        resumed = await store.read_all(await store.checkpoint_of(middle) or START)
        assert resumed == recorded[10:]
        paged: list[RecordedEvent] = []
        checkpoint = START
        while batch := await store.read_all(checkpoint, limit=5):
            paged += batch
            checkpoint = batch[-1].checkpoint
        assert paged == recorded

    # Writers through the command handler

    async def test_concurrent_version_registrations_get_gapless_distinct_numbers(
        self, store: PostgresEventStore
    ) -> None:
        handler = CommandHandler(store)
        registered = await handler.handle(RegisterModel(name="fraud"), meta())
        stream_id = registered.stream.stream_id
        # Three handlers, as three API processes: each makes its own writers to a model take
        # turns, and the store's expected version settles the races between them.
        handlers = [handler, CommandHandler(store), CommandHandler(store)]

        outcomes = await asyncio.gather(
            *(
                handlers[n % 3].handle(RegisterVersion(name="fraud", source=f"s3://m/{n}"), meta())
                for n in range(30)
            )
        )

        numbers = [o.events[0].payload["version"] for o in outcomes]
        assert sorted(numbers) == list(range(1, 31))
        read = await store.read_stream(stream_id)
        assert [e.stream_version for e in read] == list(range(1, 32))
        stored = {e.payload["version"]: e.payload["source"] for e in read[1:]}
        answered = {o.events[0].payload["version"]: o.events[0].payload["source"] for o in outcomes}
        assert stored == answered, "each command got the version its event holds"
        verify_chain(read)
        final = await CommandHandler(store).load("fraud")
        assert final is not None and final.state is not None
        assert final.state.last_version == 30 and sorted(final.state.versions) == list(range(1, 31))

    async def test_two_concurrent_registrations_of_one_name_let_exactly_one_win(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        for round_ in range(5):
            name = f"model-{round_}"
            results = await asyncio.gather(
                CommandHandler(store).handle(RegisterModel(name=name), meta()),
                CommandHandler(store).handle(RegisterModel(name=name), meta()),
                return_exceptions=True,
            )

            won = [r for r in results if isinstance(r, Outcome)]
            refused = [r for r in results if not isinstance(r, Outcome)]
            assert len(won) == 1 and len(refused) == 1, results
            assert isinstance(refused[0], Conflict), refused[0]
            assert await store.resolve_name(name) == won[0].stream.stream_id
        assert await count_events(engine) == 5

    # Snapshots

    async def test_an_older_snapshot_never_replaces_a_newer_one(
        self, store: PostgresEventStore
    ) -> None:
        def snapshot(version: int) -> Snapshot:
            head_hash, head_position, state = f"{version:064x}", version * 10, {"v": version}
            return Snapshot("stream-1", version, head_hash, head_position, STATE_SCHEMA, state)

        await store.save_snapshot(snapshot(10))
        await store.save_snapshot(snapshot(5))
        assert await store.load_snapshot("stream-1") == snapshot(10)
        await store.save_snapshot(snapshot(20))
        assert await store.load_snapshot("stream-1") == snapshot(20)

        versions = list(range(21, 41))
        random.shuffle(versions)
        await asyncio.gather(*(store.save_snapshot(snapshot(v)) for v in versions))
        assert await store.load_snapshot("stream-1") == snapshot(40)
        assert await store.load_snapshot("stream-2") is None

    async def test_loading_from_a_snapshot_reads_only_later_events_and_equals_the_full_fold(
        self, engine: AsyncEngine, store: PostgresEventStore
    ) -> None:
        handler = CommandHandler(store, snapshot_every=50)
        commands: list[Command] = [RegisterModel(name="fraud", tags={"team": "risk ✓"})]
        for n in range(1, 11):
            commands.append(
                RegisterVersion(
                    name="fraud",
                    source=f"s3://models/fraud/{n}",
                    metrics={"auc": 0.1 * n, "loss": -0.0, "eps": 1e-7},
                    params={"lr": "0.01", "模型": "é"},
                    datasets=[DatasetRef(name="train", version="2024-05", uri="s3://data/train")],
                    parents=[ParentRef(model="fraud", version=n - 1)] if n > 1 else [],
                    tags={"owner": "zoë"},
                )
            )
        commands += [
            TransitionStage(name="fraud", version=3, stage="Staging"),
            SetAlias(name="fraud", alias="champion", version=3),
        ]
        step = 0
        while len(commands) < 120:
            step += 1
            number, value = step % 10 + 1, str(step)
            changes: list[Command] = [
                SetVersionTag(name="fraud", version=number, key="step", value=value),
                RecordMetrics(name="fraud", version=number, metrics={"step": step / 7}),
                UpdateVersionDescription(name="fraud", version=number, description=f"{value} ✓"),
                SetModelTag(name="fraud", key="step", value=value),
            ]
            commands.append(changes[step % 4])
        for command in commands:
            outcome = await handler.handle(command, meta())
            assert len(outcome.events) == 1, command
        stream_id = outcome.stream.stream_id

        snapshot = await store.load_snapshot(stream_id)
        assert snapshot is not None and snapshot.stream_version == 100

        fresh_store = PostgresEventStore(engine)
        reads: list[tuple[int, int]] = []
        read_stream = fresh_store.read_stream

        async def spying_read_stream(stream_id: str, after_version: int = 0) -> list[Envelope]:
            envelopes = await read_stream(stream_id, after_version)
            reads.append((after_version, len(envelopes)))
            return envelopes

        fresh_store.read_stream = spying_read_stream  # type: ignore[method-assign]
        loaded = await CommandHandler(fresh_store, snapshot_every=50).load("fraud")

        assert reads == [(100, 20)], "only the events after the snapshot"
        folded = LoadedStream(stream_id, None).folded(await store.read_stream(stream_id))
        assert folded.version == 120
        assert loaded == folded
        assert loaded == outcome.stream


@pytest.mark.skipif(
    configured_server_url() is None,
    reason="REGISTRAR_DATABASE_URL is not set, so there is no configured PostgreSQL server to test",
)
class TestEventStoreOnConfiguredServer(EventStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls) -> str:
        url = configured_server_url()
        assert url is not None
        return url


class TestEventStoreOnEmbeddedServer(EventStoreContract):
    @pytest.fixture(scope="class")
    @classmethod
    def server(cls, embedded_server_url: str) -> str:
        return embedded_server_url
