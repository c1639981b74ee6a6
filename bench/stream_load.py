"""How long loading one long model stream takes with and without a snapshot: writes a stream of
100,000 events for one model straight into the store, then loads the model with a fresh
CommandHandler (empty cache) (a) from the events alone, (b) from a snapshot at the head and
(c) from a snapshot 1,000 events behind it. It prints figures; it asserts nothing.

    .venv/bin/python bench/stream_load.py [--events 100000] [--versions 1000] [--batch 1000]

The server is REGISTRAR_DATABASE_URL if set, else an embedded PostgreSQL started under a temporary
directory; the run uses a fresh database, dropped at the end.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any

from fresh_database import run_on_a_fresh_database

from registrar.commands.command_handler import CommandHandler, LoadedStream
from registrar.contracts.codec import dumps
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import (
    Event,
    MetricsRecorded,
    ModelRegistered,
    VersionRegistered,
    VersionTagSet,
)
from registrar.contracts.identifiers import uuid7
from registrar.domain.state import STATE_SCHEMA, state_to_json
from registrar.store.database import create_engine
from registrar.store.event_store import (
    NameChange,
    NewEvent,
    PostgresEventStore,
    Snapshot,
    StreamHead,
)
from registrar.store.schema_migrations import migrate

MODEL = "bench-long-stream"
STREAM_ID = str(uuid7())
START_TIME = datetime(2024, 5, 1, tzinfo=UTC)


def stream_events(total: int, versions: int) -> list[Event]:
    """ModelRegistered, `versions` versions, then metrics and tags on them up to `total` events."""
    events: list[Event] = [ModelRegistered(model_id=STREAM_ID, name=MODEL, description="bench")]
    for number in range(1, versions + 1):
        events.append(
            VersionRegistered(
                version=number,
                source=f"s3://bench-bucket/models/{MODEL}/{number}/model.bin",
                run_id=f"run-{number:010d}",
                digest=f"sha256:{number:064x}",
                size=123_456_789,
                metrics={"accuracy": 0.93, "loss": 0.21},
                params={"lr": "0.001", "epochs": "10"},
            )
        )
    step = 0
    while len(events) < total:
        step += 1
        number = step % versions + 1
        if step % 2:
            metrics = {"step": float(step), "loss": 1 / step}
            events.append(MetricsRecorded(version=number, metrics=metrics))
        else:
            events.append(VersionTagSet(version=number, key="step", value=str(step)))
    return events[:total]


def new_event(index: int, event: Event) -> NewEvent:
    return NewEvent(
        event_id=uuid7(),
        type=event.type,
        payload=event.model_dump(mode="json", exclude={"type"}),
        recorded_at=START_TIME + timedelta(milliseconds=index),
        actor="bench",
    )


async def write_stream(store: PostgresEventStore, events: list[Event], batch: int) -> Envelope:
    head = StreamHead()
    last: Envelope | None = None
    for start in range(0, len(events), batch):
        chunk = [new_event(start + i, e) for i, e in enumerate(events[start : start + batch])]
        names = NameChange(claim=MODEL) if start == 0 else None
        appended = await store.append(STREAM_ID, head, chunk, names)
        last = appended[-1]
        head = StreamHead(last.stream_version, last.hash)
    assert last is not None
    return last


class CountingStore(PostgresEventStore):
    """The store, counting what a load reads and how long the reading takes."""

    events_read = 0
    read_seconds = 0.0

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        started = time.perf_counter()
        envelopes = await super().read_stream(stream_id, after_version)
        self.read_seconds += time.perf_counter() - started
        self.events_read += len(envelopes)
        return envelopes


async def timed_load(engine: Any, label: str, runs: int) -> LoadedStream:
    """Load the model `runs` times, each with a fresh store and handler (nothing cached)."""
    totals: list[float] = []
    reads: list[float] = []
    for _ in range(runs):
        store = CountingStore(engine)
        handler = CommandHandler(store)
        started = time.perf_counter()
        loaded = await handler.load(MODEL)
        totals.append(time.perf_counter() - started)
        reads.append(store.read_seconds)
    assert loaded is not None
    total, read = statistics.median(totals), statistics.median(reads)
    print(
        f"{label}: {total * 1000:9.1f} ms median of {runs}"
        f" ({', '.join(f'{t * 1000:.1f}' for t in totals)});"
        f" events read {store.events_read:,}; read_stream {read * 1000:.1f} ms,"
        f" the rest (snapshot, decode, fold) {(total - read) * 1000:.1f} ms;"
        f" state at version {loaded.version:,}"
    )
    return loaded


def snapshot_of(loaded: LoadedStream) -> Snapshot:
    assert loaded.state is not None
    return Snapshot(
        loaded.stream_id,
        loaded.version,
        loaded.head_hash,
        loaded.head_position,
        STATE_SCHEMA,
        state_to_json(loaded.state),
    )


async def run(url: str, total: int, versions: int, batch: int, runs: int) -> None:
    engine = create_engine(url, pool_size=5)
    try:
        await migrate(engine)
        store = PostgresEventStore(engine)
        async with engine.connect() as conn:
            server_version = (await conn.exec_driver_sql("SHOW server_version")).scalar()
        print(f"PostgreSQL {server_version}; stream of {total:,} events ({versions:,} versions)")

        started = time.perf_counter()
        events = stream_events(total, versions)
        last = await write_stream(store, events, batch)
        elapsed = time.perf_counter() - started
        print(
            f"write: {last.stream_version:,} events in batches of {batch:,} in {elapsed:.1f} s"
            f" ({last.stream_version / elapsed:,.0f} events/s, payloads built and hashed included)"
        )

        loaded = await timed_load(engine, "(a) no snapshot          ", runs)

        # (c) before (b): the store keeps only the newest snapshot of a stream.
        every_event = await store.read_stream(STREAM_ID)
        behind = LoadedStream(STREAM_ID, None).folded(every_event[: max(total - 1000, 1)])
        await store.save_snapshot(snapshot_of(behind))
        loaded_c = await timed_load(engine, "(c) snapshot 1,000 behind", runs)

        snapshot = snapshot_of(loaded)
        await store.save_snapshot(snapshot)
        loaded_b = await timed_load(engine, "(b) snapshot at the head ", runs)
        print(f"    snapshot state: {len(dumps(snapshot.state)):,} bytes of JSON")
        print(f"    states equal to the full fold: {loaded_b == loaded and loaded_c == loaded}")
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=3, help="loads timed per case")
    args = parser.parse_args()

    def body(url: str) -> Awaitable[None]:
        return run(url, args.events, args.versions, args.batch, args.runs)

    run_on_a_fresh_database(body)


if __name__ == "__main__":
    main()
