"""The bus under failure, with real processes: `registrar relay` and `registrar project
current_state` run as separate processes against a real PostgreSQL and a Kafka-protocol broker of
each test's own, while this process writes commands through a Registry.

- kill -9 the relay and the projector at random moments under 1,000 commands, restart them: the
  projection equals one rebuilt from the store, no event is missing, none is applied twice in
  effect, and registry.events holds every event of the store in stream order;
- two relays: one is active (it holds the advisory lock), the other takes over when it dies;
- the broker restarts empty mid-load: the relay notices and republishes, and it all converges;
- the relay killed mid-batch, several times, while it publishes a backlog: nothing is lost.

Each test prints its random seed (REGISTRAR_RESILIENCE_SEED replays one) and, when it fails, the
processes' output (pytest shows a failing test's captured output).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from conftest import create_database, drop_database
from registrar_process import BIN, registrar_env
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.bus.kafka_broker import EmbeddedBroker, start_embedded_broker
from registrar.bus.relay import LEADER_LOCK
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.codec import loads
from registrar.contracts.commands import (
    Command,
    DeleteModel,
    DeleteVersion,
    RecordMetrics,
    RegisterModel,
    RegisterVersion,
    RenameModel,
    SetAlias,
    SetModelTag,
    SetVersionTag,
    TransitionStage,
)
from registrar.contracts.events import Event, ModelRegistered, VersionRegistered
from registrar.contracts.identifiers import uuid7
from registrar.contracts.topics import REGISTRY_EVENTS
from registrar.domain.errors import DomainError
from registrar.projections.current_state import CurrentStateProjection
from registrar.projector.runner import Projector
from registrar.registry import Registry
from registrar.store.event_store import NameChange, NewEvent, PostgresEventStore, StreamHead

pytestmark = pytest.mark.asyncio(loop_scope="session")

CONVERGE_SECONDS = 60.0
"""How long the processes get to catch up once the load stops. A projector killed with kill -9
resumes only once its consumer group gives up on the dead member and rebalances: about 20 s on
Tansu (aiokafka's 10 s session timeout, then the join); a broker restart costs a group join too."""


def seed_of(test: str) -> int:
    seed = int(os.environ.get("REGISTRAR_RESILIENCE_SEED") or random.randrange(2**32))
    print(f"{test}: seed {seed} (REGISTRAR_RESILIENCE_SEED={seed} replays it)")
    return seed


# Processes ---------------------------------------------------------------------------------------


@dataclass
class Service:
    """One `registrar` process, restartable; every run's output goes to the same log file."""

    args: tuple[str, ...]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0

    @property
    def name(self) -> str:
        return self.log_path.stem

    def start(self) -> None:
        assert not self.running
        self.starts += 1
        with open(self.log_path, "ab") as output:
            output.write(f"--- start {self.starts} at {time.time():.3f} ---\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                [str(BIN / "registrar"), *self.args],
                env=self.env,
                stdout=output,
                stderr=subprocess.STDOUT,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no cleanup, no goodbye to the broker or the database."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
            self.kills += 1

    def stop(self) -> None:
        """Ctrl-C, then kill -9 if it has not stopped within 15 s."""
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Bus:
    """A fresh database (migrated), a broker of this test's own, and its `registrar` processes."""

    database_url: str
    broker: EmbeddedBroker
    directory: Path
    services: list[Service] = field(default_factory=list)

    def service(self, name: str, *args: str, log_level: str = "warning") -> Service:
        env = registrar_env(
            REGISTRAR_DATABASE_URL=self.database_url,
            REGISTRAR_KAFKA_BOOTSTRAP=self.broker.bootstrap,
            REGISTRAR_LOG_LEVEL=log_level,
        )
        service = Service(args, env, self.directory / f"{name}.log")
        self.services.append(service)
        return service

    def print_logs(self) -> None:
        """The processes' output (and the broker's): pytest shows it when the test fails."""
        for service in self.services:
            print(f"===== {service.name}: {service.starts} starts, {service.kills} kills =====")
            print(service.output()[-20_000:])
        broker_log = self.directory / "tansu.log"
        if broker_log.exists():
            print("===== broker =====")
            print(broker_log.read_text(errors="replace")[-5_000:])


@pytest.fixture
def bus(server_url: str, tmp_path: Path) -> Iterator[Bus]:
    url, name = create_database(server_url)
    broker = start_embedded_broker(log_path=tmp_path / "tansu.log")
    bus = Bus(url, broker, tmp_path)
    try:
        yield bus
    finally:
        for service in bus.services:
            service.kill()
        broker.stop()
        drop_database(server_url, name)


@contextlib.asynccontextmanager
async def opened(bus: Bus) -> AsyncIterator[Registry]:
    """The test's own Registry on the bus's database (it applies the migrations first)."""
    registry = await Registry.open(bus.database_url)
    try:
        yield registry
    finally:
        await registry.close()


# Load --------------------------------------------------------------------------------------------


@dataclass
class Model:
    name: str
    versions: int = 0
    deleted_versions: set[int] = field(default_factory=set)
    deleted: bool = False

    def live_versions(self) -> list[int]:
        return [n for n in range(1, self.versions + 1) if n not in self.deleted_versions]


@dataclass
class Load:
    """Commands over many models, from several writers at a steady total rate. Each writer owns
    some models and writes to them in turn, so what it sends is valid when it sends it."""

    registry: Registry
    rng: random.Random
    prefix: str
    models: int = 20
    writers: int = 5
    rate: float = 80.0
    accepted: int = 0
    refused: int = 0
    events: int = 0
    renamed: bool = False
    deleted: bool = False
    refusals: Counter[str] = field(default_factory=Counter)

    def command(self, model: Model, issued: int, total: int) -> Command:
        rng = self.rng
        if model.versions == 0:
            model.versions = 1
            return RegisterVersion(name=model.name, source=f"s3://b/{model.name}/1")
        if not self.renamed and issued >= total // 3:
            self.renamed = True
            new_name = f"{model.name}-renamed"
            old, model.name = model.name, new_name
            return RenameModel(name=old, new_name=new_name)
        if not self.deleted and issued >= 2 * total // 3:
            self.deleted = model.deleted = True
            return DeleteModel(name=model.name)
        live = model.live_versions()
        version = rng.choice(live)
        roll = rng.random()
        if roll < 0.35 or len(live) < 2:
            model.versions += 1
            return RegisterVersion(
                name=model.name,
                source=f"s3://b/{model.name}/{model.versions}",
                run_id=f"run-{model.versions}",
                metrics={"auc": round(rng.random(), 4)},
            )
        if roll < 0.55:
            stage = rng.choice(["Staging", "Production", "Archived"])
            archive = stage != "Archived" and rng.random() < 0.7
            return TransitionStage(
                name=model.name, version=version, stage=stage, archive_existing=archive
            )
        if roll < 0.67:
            alias = rng.choice(["champion", "challenger", "shadow"])
            return SetAlias(name=model.name, alias=alias, version=version)
        if roll < 0.77:
            key = rng.choice(["team", "owner"])
            return SetModelTag(name=model.name, key=key, value=str(rng.randrange(100)))
        if roll < 0.87:
            return SetVersionTag(
                name=model.name, version=version, key="checked", value=str(rng.random() < 0.5)
            )
        if roll < 0.97:
            return RecordMetrics(name=model.name, version=version, metrics={"f1": rng.random()})
        model.deleted_versions.add(version)
        return DeleteVersion(name=model.name, version=version)

    async def run(self, total: int | None = None, until: asyncio.Event | None = None) -> None:
        """Send `total` commands (or until `until` is set) at `rate` per second in all."""
        names = [Model(f"{self.prefix}-{i:02d}") for i in range(self.models)]
        for model in names:  # registered first, so every writer starts with its models
            await self.send(RegisterModel(name=model.name, tags={"load": self.prefix}))
        issued = len(names)
        interval = self.writers / self.rate
        started = time.monotonic()

        async def writer(index: int) -> None:
            nonlocal issued
            mine = [m for i, m in enumerate(names) if i % self.writers == index]
            turn = 0
            while (total is None or issued < total) and not (until and until.is_set()):
                live = [m for m in mine if not m.deleted]
                model = live[turn % len(live)]
                turn += 1
                issued += 1
                await self.send(self.command(model, issued, total or 1_000))
                delay = started + turn * interval - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

        await asyncio.gather(*(writer(i) for i in range(self.writers)))

    async def send(self, command: Command) -> None:
        try:
            outcome = await self.registry.commands.handle(command, CommandMeta("resilience"))
        except DomainError as error:
            self.refused += 1  # nothing written
            self.refusals[f"{command.type}: {error.message}"] += 1
        else:
            self.accepted += 1
            self.events += len(outcome.events)


# Checks ------------------------------------------------------------------------------------------

_BEHIND = text(
    "SELECT count(*) FROM (SELECT stream_id, max(stream_version) AS last FROM events"
    " GROUP BY stream_id) AS s LEFT JOIN cs_models m USING (stream_id)"
    " WHERE coalesce(m.stream_version, 0) <> s.last"
)


async def streams_behind(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(_BEHIND)).scalar_one())


async def events_applied(engine: AsyncEngine) -> int:
    """What the Kafka-fed current-state projector has applied (redeliveries included)."""
    async with engine.connect() as conn:
        applied = await conn.execute(
            text("SELECT events_applied FROM projection_progress WHERE projection = :name"),
            {"name": CurrentStateProjection.name},
        )
        return int(applied.scalar() or 0)


async def wait_until_converged(engine: AsyncEngine, timeout: float = CONVERGE_SECONDS) -> float:
    """Wait until every model stream's projected version is its last event's version; return how
    long it took (fail after `timeout`)."""
    started = time.monotonic()
    while True:
        behind = await streams_behind(engine)
        if behind == 0:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, (
            f"{behind} model streams are still not fully projected after {timeout:g} s"
        )
        await asyncio.sleep(0.2)


async def tables(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    async with engine.connect() as conn:
        models = await conn.execute(text("SELECT * FROM cs_models ORDER BY stream_id"))
        versions = await conn.execute(text("SELECT * FROM cs_versions ORDER BY stream_id, version"))
        return {
            "models": [dict(r._mapping) for r in models],
            "versions": [dict(r._mapping) for r in versions],
        }


def first_difference(live: dict[str, list[dict[str, Any]]], rebuilt: dict[str, Any]) -> str:
    for table in ("models", "versions"):
        if len(live[table]) != len(rebuilt[table]):
            return f"{table}: {len(live[table])} live rows, {len(rebuilt[table])} rebuilt"
        for a, b in zip(live[table], rebuilt[table], strict=True):
            if a != b:
                changed = {k: (a[k], b.get(k)) for k in a if a[k] != b.get(k)}
                return f"{table} row {a.get('stream_id')}/{a.get('version')}: {changed}"
    return "no difference"


async def assert_projection_equals_a_rebuild(registry: Registry) -> None:
    """Read the live tables (the projector service stopped), clear them, rebuild them from the
    store with a fresh in-process Projector, and compare."""
    engine, store = registry.engine, registry.store
    live = await tables(engine)
    async with engine.begin() as conn:
        for table in ("cs_versions", "cs_models", "projection_checkpoints"):
            await conn.execute(text(f"DELETE FROM {table}"))
    projector = Projector(store, CurrentStateProjection(store), batch_size=1000)
    await projector.load_checkpoint()
    while await projector.catch_up_once():
        pass
    rebuilt = await tables(engine)
    assert live["models"], "the projection is empty"
    assert live == rebuilt, "the live projection differs from a rebuild: " + first_difference(
        live, rebuilt
    )


async def assert_nothing_missing(engine: AsyncEngine) -> dict[str, int]:
    """Every model stream's recorded version is its last event's; return the event counts."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT s.stream_id, s.last, m.stream_version FROM (SELECT stream_id,"
                    " max(stream_version) AS last FROM events GROUP BY stream_id) AS s"
                    " LEFT JOIN cs_models m USING (stream_id)"
                )
            )
        ).all()
        counts = (
            await conn.execute(
                text("SELECT count(*) AS events, count(DISTINCT event_id) AS ids FROM events")
            )
        ).one()
    missing = {row.stream_id: (row.last, row.stream_version) for row in rows}
    missing = {s: v for s, v in missing.items() if v[0] != v[1]}
    assert not missing, f"streams whose projection is behind (last, projected): {missing}"
    return {"events": counts.events, "streams": len(rows)}


async def redeliveries_absorbed(engine: AsyncEngine, events: int) -> int:
    """How many deliveries beyond one per event the projector applied (and skipped, in effect):
    projection_progress counts every event of every committed batch, duplicates included."""
    applied = await events_applied(engine)
    assert applied >= events, f"the projector committed {applied} deliveries of {events} events"
    return applied - events


@dataclass
class Published:
    partition: int
    offset: int
    stream_id: str
    stream_version: int
    event_id: str


async def read_registry_events(
    bootstrap: str, wanted: set[str], timeout: float = 30.0
) -> list[Published]:
    """registry.events from the beginning of every partition, by a reader of its own (no group,
    nothing committed), until every id in `wanted` was seen (fail after `timeout`)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Published] = []
    seen: set[str] = set()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(REGISTRY_EVENTS.name) or set()
        assert partitions, "registry.events does not exist"
        consumer.assign([TopicPartition(REGISTRY_EVENTS.name, p) for p in sorted(partitions)])
        await consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout
        while not wanted <= seen:
            assert time.monotonic() < deadline, (
                f"{len(wanted - seen)} of {len(wanted)} stored events are not on registry.events"
                f" (read {len(records)} records)"
            )
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for partition, batch in batches.items():
                for record in batch:
                    value = loads(record.value)
                    records.append(
                        Published(
                            partition.partition,
                            record.offset,
                            value["stream_id"],
                            value["stream_version"],
                            value["event_id"],
                        )
                    )
                    seen.add(value["event_id"])
    finally:
        await consumer.stop()
    return records


async def store_events(engine: AsyncEngine) -> dict[str, int]:
    """event id → stream version, of every stored event."""
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT event_id, stream_version FROM events"))
        return {str(row.event_id): row.stream_version for row in rows}


def in_order_from(stream: list[Published], start: int) -> int:
    """The highest version reached reading `stream` from `start`, never skipping ahead (each
    record's version at most one above the highest before it: duplicates allowed, gaps not);
    -1 if it skips ahead."""
    highest = 0
    for record in stream[start:]:
        if record.stream_version > highest + 1:
            return -1
        highest = max(highest, record.stream_version)
    return highest


@dataclass
class Order:
    records: int
    duplicates: int
    stale: int


def assert_in_stream_order(
    records: list[Published], last_versions: dict[str, int], *, broker_lost_events: bool = False
) -> Order:
    """Read in offset order, each stream's records never skip ahead and reach its last version.

    After a broker that lost its log, the new log may begin with what the relay published before
    it noticed the loss (aiokafka resends its in-flight batches to the new broker; the relay only
    learns from their offsets): then each stream must hold, in one partition, a complete pass in
    order from its last version 1 on (the relay's republication), and what precedes it is stale.
    """
    by_stream: dict[str, dict[int, list[Published]]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_stream.setdefault(record.stream_id, {}).setdefault(record.partition, []).append(record)
    assert set(by_stream) == set(last_versions), "streams missing from registry.events"
    stale = 0
    for stream_id, partitions in by_stream.items():
        last = last_versions[stream_id]
        if not broker_lost_events:
            assert len(partitions) == 1, f"stream {stream_id} spans partitions {set(partitions)}"
            [stream] = partitions.values()
            assert in_order_from(stream, 0) == last, (
                f"stream {stream_id} (last version {last}) out of order on registry.events:"
                f" {[r.stream_version for r in stream]}"
            )
            continue
        passes = {
            p: max(i for i, r in enumerate(stream) if r.stream_version == 1)
            for p, stream in partitions.items()
            if any(r.stream_version == 1 for r in stream)
        }
        complete = [p for p, i in passes.items() if in_order_from(partitions[p], i) == last]
        seen = {p: [f"{r.offset}:{r.stream_version}" for r in s] for p, s in partitions.items()}
        assert complete, (
            f"stream {stream_id} (last version {last}) has no complete pass in order"
            f" (offset:version per partition): {seen}"
        )
        stale += sum(len(s) for p, s in partitions.items() if p != complete[0])
        stale += passes[complete[0]]
    duplicates = len(records) - len({r.event_id for r in records})
    return Order(len(records), duplicates, stale)


async def last_versions(engine: AsyncEngine) -> dict[str, int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT stream_id, max(stream_version) AS last FROM events GROUP BY stream_id")
        )
        return {row.stream_id: row.last for row in rows}


async def assert_everything_converged(
    bus: Bus, registry: Registry, *, broker_lost_events: bool = False
) -> None:
    """(b) nothing is missing; (c) registry.events holds every stored event, in stream order;
    then, the processes stopped, (d) redeliveries were absorbed (printed) and (a) the projection
    equals a rebuild."""
    engine = registry.engine
    counts = await assert_nothing_missing(engine)
    events = await store_events(engine)
    records = await read_registry_events(bus.broker.bootstrap, set(events))
    order = assert_in_stream_order(
        records, await last_versions(engine), broker_lost_events=broker_lost_events
    )
    for service in reversed(bus.services):
        service.stop()
    redelivered = await redeliveries_absorbed(engine, counts["events"])
    print(
        f"{counts['events']} events in {counts['streams']} streams; registry.events holds"
        f" {order.records} records ({order.duplicates} duplicates, {order.stale} published"
        f" before the relay noticed a lost log); the projector absorbed"
        f" {redelivered} redeliveries"
    )
    await assert_projection_equals_a_rebuild(registry)


# Tests -------------------------------------------------------------------------------------------


async def chaos(
    services: list[Service], rng: random.Random, stop: asyncio.Event, history: list[str]
) -> None:
    """Until `stop`: after a random while, kill -9 one of `services` (each in turn, in a random
    order per round), and restart it after a short random pause."""
    started = time.monotonic()
    while not stop.is_set():
        for service in rng.sample(services, len(services)):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(0.3, 1.2))
            if stop.is_set():
                return
            service.kill()
            pause = rng.uniform(0.05, 0.6)
            history.append(f"{time.monotonic() - started:5.2f}s kill -9 {service.name}")
            await asyncio.sleep(pause)
            service.start()


async def test_killing_the_relay_and_a_projector_under_load_loses_nothing(bus: Bus) -> None:
    rng = random.Random(seed_of("kill -9 under load"))
    async with opened(bus) as registry:
        relay = bus.service("relay", "relay")
        projector = bus.service("projector", "project", "current_state")
        history: list[str] = []
        try:
            relay.start()
            projector.start()
            load = Load(registry, rng, prefix="crash", rate=80.0)
            stop = asyncio.Event()
            killer = asyncio.create_task(chaos([relay, projector], rng, stop, history))
            try:
                await load.run(total=1_000)
            finally:
                stop.set()
                await killer
            print("\n".join(history))
            print(
                f"{load.accepted + load.refused} commands: {load.accepted} accepted"
                f" ({load.events} events), {load.refused} refused;"
                f" relay killed {relay.kills}x, projector killed {projector.kills}x"
            )
            assert load.accepted + load.refused == 1_000
            assert load.refused < 50, "the load should be mostly valid commands"
            assert relay.kills >= 3 and projector.kills >= 3
            # A restarted projector resumes only once its consumer group gives up on the killed
            # member (~20 s on Tansu), so the kills above mostly hit it while it started. One
            # more, while it applies the backlog the load left (batches of up to 500 events):
            applied = await events_applied(registry.engine)

            async def resumed() -> bool:
                return await events_applied(registry.engine) > applied

            await eventually(resumed, CONVERGE_SECONDS, "the projector resumed")
            await asyncio.sleep(rng.uniform(0.0, 0.15))
            behind = await streams_behind(registry.engine)
            projector.kill()
            print(f"kill -9 projector while {behind} model streams were behind; restarted")
            projector.start()
            took = await wait_until_converged(registry.engine)
            print(f"converged {took:.1f} s after the load")
            await assert_everything_converged(bus, registry)
        except BaseException:
            bus.print_logs()
            raise


LOCK_HELD = text(
    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = :high AND objid = :low AND objsubid = 1"
)
ACTIVE = "is the active relay"


async def lock_holders(engine: AsyncEngine) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            LOCK_HELD, {"high": LEADER_LOCK >> 32, "low": LEADER_LOCK & 0xFFFF_FFFF}
        )
        return [row.pid for row in rows]


async def eventually(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := await check()):
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.1)
    return result


async def test_two_relays_one_active_and_the_second_takes_over(bus: Bus) -> None:
    async with opened(bus) as registry:
        # info: each relay says when it becomes the active one
        first = bus.service("relay-a", "relay", log_level="info")
        second = bus.service("relay-b", "relay", log_level="info")
        try:
            for relay in (first, second):
                relay.start()

            async def one_active() -> list[Service]:
                return [r for r in (first, second) if ACTIVE in r.output()]

            active = (await eventually(one_active, 30, "a relay became active"))[0]
            standby = second if active is first else first
            holders = await lock_holders(registry.engine)
            assert len(holders) == 1, holders
            await asyncio.sleep(2.5)  # the standby tries the lock every second
            assert await one_active() == [active], "two relays were active at once"
            assert await lock_holders(registry.engine) == holders
            assert standby.running

            before = [RegisterModel(name=f"takeover-{i}") for i in range(5)]
            for command in before:
                await registry.commands.handle(command, CommandMeta("resilience"))
            active.kill()
            killed_at = time.monotonic()

            async def taken_over() -> bool:
                return ACTIVE in standby.output()

            await eventually(taken_over, 15, "the standby relay took over")
            print(f"the standby took over {time.monotonic() - killed_at:.2f} s after kill -9")
            new_holders = await lock_holders(registry.engine)
            assert len(new_holders) == 1 and new_holders != holders, (holders, new_holders)
            for i in range(5):  # written after the takeover
                await registry.commands.handle(
                    RegisterVersion(name=f"takeover-{i}", source="s3://b/1"),
                    CommandMeta("resilience"),
                )
            events = await store_events(registry.engine)
            records = await read_registry_events(bus.broker.bootstrap, set(events))
            assert_in_stream_order(records, await last_versions(registry.engine))
        except BaseException:
            bus.print_logs()
            raise


async def test_a_broker_that_restarts_empty_under_load_converges(bus: Bus) -> None:
    rng = random.Random(seed_of("broker restart"))
    async with opened(bus) as registry:
        relay = bus.service("relay", "relay")
        projector = bus.service("projector", "project", "current_state")
        try:
            relay.start()
            projector.start()
            load = Load(registry, rng, prefix="outage", models=12, writers=4, rate=60.0)
            stop = asyncio.Event()
            writing = asyncio.create_task(load.run(until=stop))
            await asyncio.sleep(rng.uniform(4.0, 6.0))
            bus.broker.kill()  # every topic, message and committed offset is gone
            before = load.events
            down = rng.uniform(0.0, 1.5)
            await asyncio.sleep(down)  # the writes go on
            bus.broker.start()  # empty, on the same port
            print(f"the broker restarted empty after {before} events, down {down:.2f} s")
            await asyncio.sleep(rng.uniform(4.0, 6.0))
            stop.set()
            await writing
            print(
                f"{load.accepted} commands accepted ({load.events} events), {load.refused} refused"
            )
            assert load.events > before > 0
            try:
                took = await wait_until_converged(registry.engine)
            except AssertionError:
                await print_why_streams_are_behind(bus, registry.engine)
                raise
            print(f"converged {took:.1f} s after the load")
            assert relay.running and projector.running, "a process died with the broker"
            assert "republishing from the start" in relay.output()
            await assert_everything_converged(bus, registry, broker_lost_events=True)
        except BaseException:
            bus.print_logs()
            raise


async def print_why_streams_are_behind(bus: Bus, engine: AsyncEngine) -> None:
    """For a failed convergence: each stream the projection is behind on, its versions in the
    store and in the projection, and where its records are on registry.events (were they never
    published, or published and not applied?), with the relay's own record of its progress."""
    async with engine.connect() as conn:
        behind = (
            await conn.execute(
                text(
                    "SELECT s.stream_id, s.last, coalesce(m.stream_version, 0) AS projected"
                    " FROM (SELECT stream_id, max(stream_version) AS last FROM events"
                    " GROUP BY stream_id) AS s LEFT JOIN cs_models m USING (stream_id)"
                    " WHERE coalesce(m.stream_version, 0) <> s.last"
                )
            )
        ).all()
        relay = (await conn.execute(text("SELECT * FROM relay_state"))).all()
    print(f"relay_state: {[dict(row._mapping) for row in relay]}")
    admin = AIOKafkaAdminClient(bootstrap_servers=bus.broker.bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets("registrar.projection.current_state")
        print(f"the projector's committed offsets: {committed}")
    except Exception as failed:  # a diagnosis must not hide the failure it explains
        print(f"the projector's committed offsets: unknown ({failed!r})")
    finally:
        await admin.close()
    wanted = set(await store_events(engine))
    try:
        records = await read_registry_events(bus.broker.bootstrap, wanted, timeout=10)
    except AssertionError as missing:
        print(f"registry.events: {missing}")
        records = []
    for row in behind:
        mine = [r for r in records if r.stream_id == row.stream_id]
        print(
            f"stream {row.stream_id}: store v{row.last}, projected v{row.projected};"
            f" on registry.events (partition:offset:version):"
            f" {[f'{r.partition}:{r.offset}:{r.stream_version}' for r in mine]}"
        )


async def write_backlog(store: PostgresEventStore, prefix: str, streams: int, versions: int) -> int:
    """`streams` models of `versions` versions each, appended straight to the store (one append
    per stream, as fast as the store takes them): a backlog for the relay. Returns the events."""
    at = datetime.now(UTC)

    async def write(index: int) -> None:
        stream_id, name = str(uuid7()), f"{prefix}-{index:03d}"
        events: list[Event] = [ModelRegistered(model_id=stream_id, name=name)]
        events += [
            VersionRegistered(version=n, source=f"s3://b/{name}/{n}", run_id=f"run-{n}")
            for n in range(1, versions + 1)
        ]
        new = [
            NewEvent(uuid7(), e.type, e.model_dump(mode="json", exclude={"type"}), at, "backlog")
            for e in events
        ]
        await store.append(stream_id, StreamHead(), new, NameChange(claim=name))

    for start in range(0, streams, 4):
        await asyncio.gather(*(write(i) for i in range(start, min(start + 4, streams))))
    return streams * (versions + 1)


async def relay_position(engine: AsyncEngine) -> int:
    """The position of the last event the relay checkpointed (0: none yet)."""
    async with engine.connect() as conn:
        position = (await conn.execute(text("SELECT position FROM relay_state"))).scalar()
        return int(position or 0)


async def last_in_commit_order(engine: AsyncEngine) -> int:
    """The position of the store's last event in commit order (the relay's reading order; not
    max(position): concurrent appends commit in another order than they draw positions)."""
    async with engine.connect() as conn:
        last = await conn.execute(
            text("SELECT position FROM events ORDER BY transaction_id DESC, position DESC LIMIT 1")
        )
        return int(last.scalar_one())


async def test_a_relay_killed_mid_batch_loses_nothing(bus: Bus) -> None:
    """kill -9 the relay while it publishes a large backlog (batches of 2,000), several times: it
    resumes from its checkpoint, so what it had published unconfirmed is published again (at
    least once) and nothing is lost."""
    rng = random.Random(seed_of("relay mid-batch"))
    async with opened(bus) as registry:
        engine = registry.engine
        relay = bus.service("relay", "relay")
        try:
            total = await write_backlog(registry.store, "backlog", streams=100, versions=399)
            last = await last_in_commit_order(engine)
            relay.start()
            mid_batch = 0
            while mid_batch < 3:
                seen = await relay_position(engine)

                async def moved(seen: int = seen) -> bool:
                    return await relay_position(engine) != seen

                await eventually(moved, 30, "the relay published a batch")
                await asyncio.sleep(rng.uniform(0.0, 0.15))
                relay.kill()
                at = await relay_position(engine)
                print(f"kill -9 the relay at checkpoint position {at:,} (the last is {last:,})")
                relay.start()
                if at == last:
                    break
                mid_batch += 1
            assert mid_batch >= 2, "the relay was not killed mid-backlog"

            async def done() -> bool:
                return await relay_position(engine) == last

            await eventually(done, 60, "the relay published the whole backlog")
            events = await store_events(engine)
            assert len(events) == total
            records = await read_registry_events(bus.broker.bootstrap, set(events))
            order = assert_in_stream_order(records, await last_versions(engine))
            print(
                f"{total:,} events; {mid_batch} kills mid-backlog; registry.events holds"
                f" {order.records:,} records ({order.duplicates:,} published again)"
            )
        except BaseException:
            bus.print_logs()
            raise
