"""Promotions on a real broker: the relay feeds registry.events from a real PostgreSQL store and
the promotions publisher turns each stage change and alias move into one message on
registry.promotions, the same message (id) again when an event is delivered again."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.message import KafkaAckableMessage
from sqlalchemy.ext.asyncio import AsyncEngine
from topic_log import RUN, TopicLog, relayed_store, unique

from registrar.bus.command_bus import raw_body
from registrar.bus.kafka_broker import ensure_topics
from registrar.bus.promotions import attach_promotions, promotion_message_id
from registrar.commands.command_handler import CommandHandler, CommandMeta
from registrar.contracts.codec import dumps, loads
from registrar.contracts.commands import (
    Command,
    DeleteAlias,
    RegisterModel,
    RegisterVersion,
    RequestRollback,
    SetAlias,
    TransitionStage,
)
from registrar.contracts.envelope import Envelope
from registrar.contracts.topics import (
    ALL_TOPICS,
    DEADLETTER,
    REGISTRY_EVENTS,
    REGISTRY_PROMOTIONS,
    topic_name,
)
from registrar.store.event_store import PostgresEventStore

pytestmark = pytest.mark.asyncio(loop_scope="session")

README = Path(__file__).resolve().parents[2] / "README.md"
DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture(scope="module")
async def store(engine: AsyncEngine, kafka_bootstrap: str) -> AsyncIterator[PostgresEventStore]:
    """The store, with a relay publishing its events to registry.events."""
    async with relayed_store(engine, kafka_bootstrap) as store:
        yield store


@pytest.fixture(scope="module")
async def promotions(kafka_bootstrap: str) -> AsyncIterator[TopicLog]:
    log = TopicLog(kafka_bootstrap, REGISTRY_PROMOTIONS.name)
    await log.start()
    yield log
    await log.stop()


@contextlib.asynccontextmanager
async def promotions_publisher(
    bootstrap: str, store: PostgresEventStore, group_id: str, prefix: str = ""
) -> AsyncIterator[None]:
    broker = KafkaBroker(bootstrap, logger=None)
    attach_promotions(broker, store, group_id=group_id, prefix=prefix)
    await broker.start()
    try:
        yield
    finally:
        await broker.stop()


@pytest.fixture(scope="module")
async def publisher(kafka_bootstrap: str, store: PostgresEventStore) -> AsyncIterator[None]:
    """The promotions publisher this module's tests watch, in a consumer group of its own."""
    async with promotions_publisher(kafka_bootstrap, store, f"test.promotions.{RUN}"):
        yield


@pytest.fixture(scope="module")
def handler(store: PostgresEventStore) -> CommandHandler:
    return CommandHandler(store)


async def run(handler: CommandHandler, command: Command, actor: str = "alice") -> list[Envelope]:
    return (await handler.handle(command, CommandMeta(actor))).events


async def model_with_versions(handler: CommandHandler, name: str, count: int) -> None:
    await run(handler, RegisterModel(name=name))
    for number in range(1, count + 1):
        source = f"s3://models/{name}/run-{number}/model"
        await run(handler, RegisterVersion(name=name, source=source, digest=DIGEST))


def of_model(records: list[ConsumerRecord[bytes, bytes]], name: str) -> list[dict[str, Any]]:
    return [loads(r.value) for r in records if r.key == name.encode()]


async def promotions_until(
    log: TopicLog, name: str, last: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The promotions of model `name` up to the one `last` recognises (sent last, after every
    promotion the test checks: one model's promotions share a partition, so arrive in order)."""
    await log.wait_for(lambda records: any(last(p) for p in of_model(records, name)))
    return of_model(log.records, name)


def marker(promotion: dict[str, Any]) -> bool:
    return promotion["alias"] == "marker"


def occurred_at(promotion: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(promotion["occurred_at"])


async def test_a_transition_to_production_publishes_one_promotion(
    handler: CommandHandler, promotions: TopicLog, publisher: None
) -> None:
    name = unique("churn")
    await model_with_versions(handler, name, 1)
    await run(handler, TransitionStage(name=name, version=1, stage="Staging"))
    (event,) = await run(handler, TransitionStage(name=name, version=1, stage="Production"))
    await run(handler, SetAlias(name=name, alias="marker", version=1), actor="bob")

    published = await promotions_until(promotions, name, marker)
    to_production = [p for p in published if p["to_stage"] == "Production" and p["kind"] == "stage"]
    assert len(to_production) == 1
    (promotion,) = to_production
    assert occurred_at(promotion) == event.recorded_at
    assert {k: v for k, v in promotion.items() if k != "occurred_at"} == {
        "message_id": str(promotion_message_id(event.event_id)),
        "model": name,
        "version": "1",
        "kind": "stage",
        "from_stage": "Staging",
        "to_stage": "Production",
        "alias": None,
        "artifact": {"uri": f"s3://models/{name}/run-1/model", "digest": DIGEST},
        "actor": "alice",
        "approvals": [],
        "authorization": None,
        "rollback": None,
        "position": event.position,
    }
    assert [(p["kind"], p["to_stage"]) for p in published] == [
        ("stage", "Staging"),
        ("stage", "Production"),
        ("alias", "Production"),
    ]


async def test_archive_existing_publishes_a_promotion_for_the_archived_version(
    handler: CommandHandler, promotions: TopicLog, publisher: None
) -> None:
    name = unique("fraud")
    await model_with_versions(handler, name, 2)
    await run(handler, TransitionStage(name=name, version=1, stage="Production"))
    requested, archived = await run(
        handler, TransitionStage(name=name, version=2, stage="Production", archive_existing=True)
    )
    await run(handler, SetAlias(name=name, alias="marker", version=2))

    published = await promotions_until(promotions, name, marker)
    moves = [(p["version"], p["from_stage"], p["to_stage"], p["position"]) for p in published]
    assert moves == [
        ("1", "None", "Production", moves[0][3]),
        ("2", "None", "Production", requested.position),
        ("1", "Production", "Archived", archived.position),
        ("2", "Production", "Production", moves[3][3]),  # the marker alias
    ]
    assert published[2]["artifact"]["uri"] == f"s3://models/{name}/run-1/model"
    assert published[2]["message_id"] == str(promotion_message_id(archived.event_id))


async def test_an_alias_move_carries_the_versions_current_stage(
    handler: CommandHandler, promotions: TopicLog, publisher: None
) -> None:
    name = unique("ranker")
    await model_with_versions(handler, name, 2)
    await run(handler, TransitionStage(name=name, version=2, stage="Staging"))
    (first,) = await run(handler, SetAlias(name=name, alias="champion", version=2), actor="carol")
    (moved,) = await run(handler, SetAlias(name=name, alias="champion", version=1), actor="carol")
    await run(handler, SetAlias(name=name, alias="marker", version=1))

    published = await promotions_until(promotions, name, marker)
    aliases = [p for p in published if p["alias"] == "champion"]
    assert [(p["version"], p["from_stage"], p["to_stage"]) for p in aliases] == [
        ("2", "Staging", "Staging"),
        ("1", "None", "None"),
    ]
    assert all(p["kind"] == "alias" and p["actor"] == "carol" for p in aliases)
    assert [p["position"] for p in aliases] == [first.position, moved.position]
    assert aliases[1]["artifact"]["uri"] == f"s3://models/{name}/run-1/model"


async def test_removing_an_alias_and_rolling_back_are_announced(
    handler: CommandHandler, promotions: TopicLog, publisher: None
) -> None:
    name = unique("rolled")
    await model_with_versions(handler, name, 2)
    for number in (1, 2):
        move = TransitionStage(name=name, version=number, stage="Production", archive_existing=True)
        await run(handler, move)
    rolled_back = RequestRollback(name=name, stage="Production", reason="bad canary")
    back, aside = (await run(handler, rolled_back))[1:]
    await run(handler, SetAlias(name=name, alias="champion", version=2))
    (removed,) = await run(handler, DeleteAlias(name=name, alias="champion"))
    await run(handler, SetAlias(name=name, alias="marker", version=1))

    published = await promotions_until(promotions, name, marker)
    by_position = {p["position"]: p for p in published}
    assert by_position[back.position]["rollback"] == {
        "reason": "bad canary",
        "from_version": 2,
        "to_version": 1,
    }
    assert [
        (by_position[e.position]["version"], by_position[e.position]["to_stage"])
        for e in (back, aside)
    ] == [
        ("1", "Production"),
        ("2", "Archived"),
    ]
    assert by_position[aside.position]["rollback"] is None
    assert {k: by_position[removed.position][k] for k in ("kind", "alias", "version")} == {
        "kind": "alias_removed",
        "alias": "champion",
        "version": "2",
    }


async def test_a_topic_prefix_gives_a_registry_topics_and_groups_of_its_own(
    handler: CommandHandler, store: PostgresEventStore, kafka_bootstrap: str
) -> None:
    first, second = f"a{RUN}.", f"b{RUN}."
    made = [await ensure_topics(kafka_bootstrap, prefix=p) for p in (first, second)]
    assert [sorted(m) for m in made] == [
        sorted(topic_name(t, p) for t in ALL_TOPICS) for p in (first, second)
    ]
    name = unique("prefixed")
    await model_with_versions(handler, name, 1)
    (event,) = await run(handler, TransitionStage(name=name, version=1, stage="Staging"))
    prefixed = TopicLog(kafka_bootstrap, topic_name(REGISTRY_PROMOTIONS, first))
    await prefixed.start()
    try:
        async with promotions_publisher(kafka_bootstrap, store, "promotions", prefix=first):
            # The relay here publishes unprefixed: hand the event to the prefixed registry.
            producer = KafkaBroker(kafka_bootstrap, logger=None)
            async with producer:
                await producer.publish(
                    dumps(event.model_dump(mode="json")),
                    topic_name(REGISTRY_EVENTS, first),
                    key=event.stream_id.encode(),
                )
            await prefixed.wait_for(lambda records: bool(of_model(records, name)))
    finally:
        await prefixed.stop()
    (promotion,) = of_model(prefixed.records, name)
    assert promotion["message_id"] == str(promotion_message_id(event.event_id))


def readme_deployment_example() -> str:
    fences = re.findall(r"^```([^\n]*)\n(.*?)^```", README.read_text(), re.MULTILINE | re.DOTALL)
    (code,) = [code for info, code in fences if "python" in info and "registry.promotions" in code]
    return code


async def test_the_readme_example_reacts_to_the_promotion_of_churn(
    handler: CommandHandler, kafka_bootstrap: str, publisher: None
) -> None:
    name = "churn"  # as in the README; this module's database is fresh
    await run(handler, RegisterModel(name=name, description="Customer churn"))
    await run(
        handler,
        RegisterVersion(name=name, source="s3://models/churn/run-42/model", digest=DIGEST),
    )
    await run(
        handler,
        TransitionStage(name=name, version=1, stage="Production", archive_existing=True),
    )
    example = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        readme_deployment_example(),
        env={**os.environ, "REGISTRAR_KAFKA_BOOTSTRAP": kafka_bootstrap},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(example.communicate(), timeout=90)
    assert example.returncode == 0, stdout.decode() + stderr.decode()
    assert "churn version 1 -> Production:" in stdout.decode()


async def test_an_event_delivered_again_republishes_the_same_message(
    handler: CommandHandler,
    store: PostgresEventStore,
    kafka_bootstrap: str,
    promotions: TopicLog,
    publisher: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Last in this module: the restarted group publishes again every promotion on the topic.
    name = unique("redelivered")
    group = f"test.promotions.redelivery.{RUN}"
    await model_with_versions(handler, name, 1)
    (event,) = await run(handler, TransitionStage(name=name, version=1, stage="Staging"))

    async def never_acknowledge(self: KafkaAckableMessage) -> None:
        return None

    with monkeypatch.context() as patch:
        patch.setattr(KafkaAckableMessage, "ack", never_acknowledge)
        async with promotions_publisher(kafka_bootstrap, store, group):
            # one from this module's publisher, one from the one that never acknowledges
            await promotions.wait_for(lambda records: len(of_model(records, name)) == 2)
    # The same group again: nothing was committed, so the event is read and published again.
    async with promotions_publisher(kafka_bootstrap, store, group):
        await promotions.wait_for(lambda records: len(of_model(records, name)) == 3)
    published = of_model(promotions.records, name)
    assert {p["message_id"] for p in published} == {str(promotion_message_id(event.event_id))}
    assert published[0] == published[1] == published[2]


@contextlib.asynccontextmanager
async def in_memory_publisher(
    store: PostgresEventStore,
) -> AsyncIterator[tuple[KafkaBroker, list[dict[str, Any]], list[tuple[bytes, dict[str, str]]]]]:
    """The promotions publisher on FastStream's in-memory broker: (broker, promotions, dead
    letters as (value, headers))."""
    broker = KafkaBroker()
    attach_promotions(broker, store, group_id="in-memory")
    published: list[dict[str, Any]] = []
    dead: list[tuple[bytes, dict[str, str]]] = []

    @broker.subscriber(REGISTRY_PROMOTIONS.name)
    async def promoted(body: dict[str, Any]) -> None:
        published.append(body)

    @broker.subscriber(DEADLETTER.name, decoder=raw_body)
    async def dead_lettered(body: bytes, message: KafkaMessage) -> None:
        dead.append((body, message.headers))

    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, published, dead


async def test_an_event_seen_without_its_predecessors_is_completed_from_the_store(
    handler: CommandHandler, store: PostgresEventStore
) -> None:
    name = unique("gap")
    await model_with_versions(handler, name, 1)
    (event,) = await run(handler, TransitionStage(name=name, version=1, stage="Production"))
    async with in_memory_publisher(store) as (broker, published, dead):
        # Only the stage change: the registration and the version are not delivered to it.
        value = dumps(event.model_dump(mode="json"))
        await broker.publish(value, REGISTRY_EVENTS.name, key=event.stream_id.encode())
    (promotion,) = published
    assert promotion["model"] == name
    assert promotion["artifact"] == {"uri": f"s3://models/{name}/run-1/model", "digest": DIGEST}
    assert promotion["message_id"] == str(promotion_message_id(event.event_id))
    assert dead == []


async def test_what_is_not_an_event_is_dead_lettered_and_other_streams_are_passed_over(
    handler: CommandHandler, store: PostgresEventStore
) -> None:
    name = unique("after-garbage")
    await model_with_versions(handler, name, 1)
    (event,) = await run(handler, TransitionStage(name=name, version=1, stage="Staging"))
    training_run = event.model_copy(
        update={"stream_id": "run:r-1", "stream_version": 1, "type": "RunRecorded"}
    )
    async with in_memory_publisher(store) as (broker, published, dead):
        await broker.publish(b"{not an envelope", REGISTRY_EVENTS.name, key=b"x")
        await broker.publish(dumps(training_run.model_dump(mode="json")), REGISTRY_EVENTS.name)
        await broker.publish(dumps(event.model_dump(mode="json")), REGISTRY_EVENTS.name)
    ((value, headers),) = dead
    assert value == b"{not an envelope"
    assert headers["error"].startswith("not an event envelope: message: Invalid JSON")
    assert headers["source-topic"] == REGISTRY_EVENTS.name
    assert [p["model"] for p in published] == [name]


async def test_an_event_delivered_twice_gives_the_same_promotion_twice(
    handler: CommandHandler, store: PostgresEventStore
) -> None:
    name = unique("twice")
    await model_with_versions(handler, name, 1)
    events = await store.read_stream((await handler.load(name)).stream_id)  # type: ignore[union-attr]
    (moved,) = await run(handler, SetAlias(name=name, alias="champion", version=1))
    async with in_memory_publisher(store) as (broker, published, _):
        for envelope in [*events, moved, moved]:
            await broker.publish(dumps(envelope.model_dump(mode="json")), REGISTRY_EVENTS.name)
    assert len(published) == 2 and published[0] == published[1]
    assert published[0]["message_id"] == str(promotion_message_id(moved.event_id))
