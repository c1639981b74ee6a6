"""Relay throughput on a backlog: how fast one relay publishes a store's events to registry.events.

It writes --events events into a fresh store straight through the event store (no commands; one
append per --batch events, like bench/stream_load.py), over --streams model streams, then starts
an embedded Kafka-compatible broker (Tansu) and one Relay, and times how long the relay takes
until its checkpoint (table relay_state, written only after the broker acknowledged a batch)
reaches the last event. Then it reads registry.events back and checks every event is there.
Goal (from the issue): at least 10,000 events/s. Figures are printed, never asserted.

    .venv/bin/python bench/relay_backlog.py [--events 100000] [--streams 1000] [--batch 1000]
    .venv/bin/python bench/relay_backlog.py --process   # `registrar relay` instead of in-process

In-process (the default), the relay runs on this process's event loop with nothing else to do
but the 20 ms checkpoint poll; with --process it is a separate `registrar relay` process, as in
production (its start-up, about a second, is reported apart from the publishing time).

The server is REGISTRAR_DATABASE_URL if set, else an embedded PostgreSQL started under a temporary
directory; the run uses a fresh database, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from fresh_database import plain, run_on_a_fresh_database
from sqlalchemy import text

from registrar.bus.kafka_broker import ensure_topics, start_embedded_broker
from registrar.bus.relay import Relay
from registrar.contracts.events import Event, ModelRegistered, VersionRegistered, VersionTagSet
from registrar.contracts.identifiers import uuid7
from registrar.contracts.topics import REGISTRY_EVENTS
from registrar.store.database import create_engine
from registrar.store.event_store import NameChange, NewEvent, PostgresEventStore, StreamHead
from registrar.store.schema_migrations import migrate

BIN = Path(sys.executable).parent
GOAL = 10_000
START_TIME = datetime(2024, 5, 1, tzinfo=UTC)


def stream_events(stream_id: str, name: str, count: int) -> list[Event]:
    """ModelRegistered, then versions and tags on them: `count` events of one model."""
    events: list[Event] = [ModelRegistered(model_id=stream_id, name=name, description="bench")]
    versions = 0
    while len(events) < count:
        if versions == 0 or len(events) % 2:
            versions += 1
            events.append(
                VersionRegistered(
                    version=versions,
                    source=f"s3://bench-bucket/{name}/{versions}/model.bin",
                    run_id=f"run-{versions:08d}",
                    digest=f"sha256:{versions:064x}",
                    size=123_456,
                    metrics={"accuracy": 0.93, "loss": 0.21},
                )
            )
        else:
            events.append(VersionTagSet(version=versions, key="step", value=str(len(events))))
    return events


async def write_backlog(store: PostgresEventStore, total: int, streams: int, batch: int) -> int:
    """`total` events over `streams` streams, appended `batch` at a time, four streams at once."""
    per_stream = max(1, total // streams)

    async def write(index: int) -> int:
        stream_id, name = str(uuid7()), f"backlog-{index:05d}"
        events = stream_events(stream_id, name, per_stream)
        head = StreamHead()
        for start in range(0, len(events), batch):
            chunk = [
                NewEvent(
                    uuid7(),
                    e.type,
                    e.model_dump(mode="json", exclude={"type"}),
                    START_TIME + timedelta(milliseconds=start + i),
                    "bench",
                )
                for i, e in enumerate(events[start : start + batch])
            ]
            names = NameChange(claim=name) if start == 0 else None
            appended = await store.append(stream_id, head, chunk, names)
            head = StreamHead(appended[-1].stream_version, appended[-1].hash)
        return len(events)

    written = 0
    for first in range(0, streams, 4):
        written += sum(
            await asyncio.gather(*(write(i) for i in range(first, min(first + 4, streams))))
        )
    return written


async def relay_checkpoint(conn: asyncpg.Connection) -> tuple[int, int] | None:
    """The relay's checkpoint: (transaction id, position) of the last event it published."""
    row = await conn.fetchrow("SELECT transaction_id, position FROM relay_state")
    return None if row is None else (row["transaction_id"], row["position"])


_LAST_IN_COMMIT_ORDER = text(
    "SELECT transaction_id::text::bigint AS tx, position FROM events"
    " ORDER BY transaction_id DESC, position DESC LIMIT 1"
)
_EVENTS_UP_TO = (
    "SELECT count(*) FROM events WHERE (transaction_id::text::bigint, position) <= ($1, $2)"
)


async def count_published(bootstrap: str, wanted: int, timeout: float = 120) -> tuple[int, int]:
    """(records read, distinct event ids) on registry.events, from the beginning, until `wanted`
    distinct ids were seen or `timeout`."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records, ids = 0, set[str]()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(REGISTRY_EVENTS.name) or set()
        consumer.assign([TopicPartition(REGISTRY_EVENTS.name, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        deadline = time.perf_counter() + timeout
        while len(ids) < wanted and time.perf_counter() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for batch in batches.values():
                for record in batch:
                    records += 1
                    ids.add(dict(record.headers)["event-id"])
    finally:
        await consumer.stop()
    return records, len(ids)


async def run(url: str, args: argparse.Namespace) -> bool:
    engine = create_engine(url, pool_size=6)
    broker = None
    process = None
    try:
        await migrate(engine)
        store = PostgresEventStore(engine)
        async with engine.connect() as conn:
            server_version = (await conn.exec_driver_sql("SHOW server_version")).scalar()
        print(f"PostgreSQL {server_version}")
        started = time.perf_counter()
        written = await write_backlog(store, args.events, args.streams, args.batch)
        took = time.perf_counter() - started
        print(
            f"backlog: {written:,} events over {args.streams:,} streams written in {took:.1f} s"
            f" ({written / took:,.0f} events/s)"
        )
        async with engine.connect() as conn:
            row = (await conn.execute(_LAST_IN_COMMIT_ORDER)).one()
            last = (row.tx, row.position)  # the relay reads in commit order: it ends there

        home = Path(tempfile.mkdtemp(prefix="registrar-relay-bench-"))
        broker = start_embedded_broker(log_path=home / "tansu.log")
        await ensure_topics(broker.bootstrap)
        watcher = await asyncpg.connect(plain(url))
        relay_task = None
        try:
            started = time.perf_counter()
            if args.process:
                env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRAR_")}
                env |= {
                    "REGISTRAR_DATABASE_URL": url,
                    "REGISTRAR_KAFKA_BOOTSTRAP": broker.bootstrap,
                    "REGISTRAR_LOG_LEVEL": "warning",
                }
                with open(home / "relay.log", "wb") as output:
                    process = subprocess.Popen(
                        [str(BIN / "registrar"), "relay"],
                        env=env,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                    )
            else:
                relay_task = asyncio.create_task(Relay(store, broker.bootstrap).run())
            first: tuple[float, tuple[int, int]] | None = None
            deadline = started + args.timeout
            while True:
                checkpoint = await relay_checkpoint(watcher)
                now = time.perf_counter()
                if checkpoint is not None and first is None:
                    first = (now, checkpoint)
                if checkpoint == last:
                    break
                if now > deadline or (relay_task is not None and relay_task.done()):
                    print(f"the relay did not finish within {args.timeout:g} s (at {checkpoint})")
                    return False
                if process is not None and process.poll() is not None:
                    print(f"`registrar relay` exited ({process.returncode}); see {home}")
                    return False
                await asyncio.sleep(0.02)
            finished = time.perf_counter()
        finally:
            await watcher.close()
            if relay_task is not None:
                relay_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await relay_task
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(15)

        assert first is not None
        total = finished - started
        print(
            f"relay ({'`registrar relay` process' if args.process else 'in-process'}):"
            f" {written:,} events published and checkpointed in {total:.2f} s from start"
            f" = {written / total:,.0f} events/s (goal >= {GOAL:,})"
        )
        first_at, first_checkpoint = first
        if finished > first_at:
            async with engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                in_first = await driver.fetchval(_EVENTS_UP_TO, *first_checkpoint)
            after_first = written - in_first
            print(
                f"  start-up to the first checkpoint ({in_first:,} events):"
                f" {first_at - started:.2f} s;"
                f" after it: {after_first:,} events in {finished - first_at:.2f} s ="
                f" {after_first / (finished - first_at):,.0f} events/s"
            )
        records, distinct = await count_published(broker.bootstrap, written)
        print(f"registry.events: {records:,} records, {distinct:,} distinct events of {written:,}")
        return distinct == written
    finally:
        if broker is not None:
            broker.stop()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--streams", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=1_000, help="events per append")
    parser.add_argument("--process", action="store_true", help="run `registrar relay`")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()

    def body(url: str) -> Awaitable[bool]:
        return run(url, args)

    ok = run_on_a_fresh_database(body)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
