"""Commands over a real broker against a real PostgreSQL: each command on registry.commands gets
exactly one result on registry.command-results, a redelivery changes nothing and answers nothing
twice, and what is not a command goes to the dead-letter topic while the consumer keeps going."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from topic_log import RUN, TopicLog, unique

from registrar.bus.command_bus import attach_command_bus
from registrar.bus.kafka_broker import ensure_topics
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.codec import dumps, loads
from registrar.contracts.command_messages import CommandMessage
from registrar.contracts.commands import (
    Command,
    RegisterModel,
    RegisterVersion,
    SetModelTag,
    TransitionStage,
)
from registrar.contracts.topics import COMMAND_RESULTS, DEADLETTER, REGISTRY_COMMANDS
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def registry(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Registry]:
    """A registry answering the commands on registry.commands, in a consumer group of its own."""
    await ensure_topics(kafka_bootstrap)
    registry = await Registry.open(database_url)
    broker = KafkaBroker(kafka_bootstrap, logger=None)
    attach_command_bus(broker, registry, group_id=f"test.commands.{RUN}")
    await broker.start()
    yield registry
    await broker.stop()
    await registry.close()


@pytest.fixture(scope="module")
async def results(kafka_bootstrap: str) -> AsyncIterator[TopicLog]:
    log = TopicLog(kafka_bootstrap, COMMAND_RESULTS.name)
    await log.start()
    yield log
    await log.stop()


@pytest.fixture(scope="module")
async def dead_letters(kafka_bootstrap: str) -> AsyncIterator[TopicLog]:
    log = TopicLog(kafka_bootstrap, DEADLETTER.name)
    await log.start()
    yield log
    await log.stop()


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


class Sender:
    """Sends to registry.commands with one key, so its messages are consumed in the order sent."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer
        self.key = unique("sender").encode()

    async def raw(self, value: bytes) -> None:
        await self.producer.send_and_wait(REGISTRY_COMMANDS.name, value, key=self.key)

    async def command(
        self, command: Command, command_id: UUID | None = None, actor: str = "alice"
    ) -> CommandMessage:
        message = CommandMessage(command_id=command_id or uuid4(), actor=actor, command=command)
        await self.raw(dumps(message.model_dump(mode="json")))
        return message


def results_for(log: TopicLog, command_id: UUID) -> list[dict[str, Any]]:
    return [loads(r.value) for r in log.records if r.key == str(command_id).encode()]


async def result_of(log: TopicLog, message: CommandMessage) -> dict[str, Any]:
    await log.wait_for(lambda _: bool(results_for(log, message.command_id)))
    return results_for(log, message.command_id)[0]


async def positions_written_by(registry: Registry, command_id: UUID) -> list[int]:
    async with registry.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT position FROM events WHERE causation_id = :id ORDER BY position"),
            {"id": command_id},
        )
        return list(rows.scalars())


async def event_count(registry: Registry) -> int:
    async with registry.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM events"))).scalar_one())


async def test_commands_over_kafka_get_one_result_each_with_their_events_positions(
    registry: Registry, results: TopicLog, producer: AIOKafkaProducer
) -> None:
    send, name = Sender(producer), unique("churn")
    sent = [
        await send.command(RegisterModel(name=name)),
        await send.command(RegisterVersion(name=name, source="s3://a")),
        await send.command(RegisterVersion(name=name, source="s3://b")),
        await send.command(TransitionStage(name=name, version=1, stage="Production")),
        await send.command(
            TransitionStage(name=name, version=2, stage="Production", archive_existing=True)
        ),
    ]
    for message in sent:
        result = await result_of(results, message)
        positions = await positions_written_by(registry, message.command_id)
        assert result == {
            "command_id": str(message.command_id),
            "ok": True,
            "positions": positions,
            "error": None,
        }
    assert len(positions) == 2  # the last command moved version 2 up and archived version 1
    last = await send.command(SetModelTag(name=name, key="done", value="yes"))
    await result_of(results, last)
    assert all(len(results_for(results, m.command_id)) == 1 for m in sent)
    state = (await registry.commands.load(name)).state  # type: ignore[union-attr]
    assert (state.versions[1].stage.value, state.versions[2].stage.value) == (
        "Archived",
        "Production",
    )


async def test_a_refused_command_gets_one_result_with_the_domain_error(
    registry: Registry, results: TopicLog, producer: AIOKafkaProducer
) -> None:
    send, name = Sender(producer), unique("refused")
    await result_of(results, await send.command(RegisterModel(name=name)))
    before = await event_count(registry)
    refused = await send.command(TransitionStage(name=name, version=9, stage="Production"))
    duplicate = await send.command(RegisterModel(name=name))
    assert await result_of(results, refused) == {
        "command_id": str(refused.command_id),
        "ok": False,
        "positions": [],
        "error": {"code": "not_found", "message": f"model {name!r} has no version 9"},
    }
    conflict = await result_of(results, duplicate)
    assert conflict["error"] == {
        "code": "conflict",
        "message": f"a model named {name!r} already exists",
    }
    assert await event_count(registry) == before


async def test_a_command_delivered_again_changes_nothing_and_is_not_answered_again(
    registry: Registry, results: TopicLog, producer: AIOKafkaProducer
) -> None:
    send, name = Sender(producer), unique("again")
    await result_of(results, await send.command(RegisterModel(name=name)))
    first = await send.command(RegisterVersion(name=name, source="s3://a"))
    answer = await result_of(results, first)
    before = await event_count(registry)
    await send.raw(dumps(first.model_dump(mode="json")))  # the same message, delivered again
    await result_of(results, await send.command(SetModelTag(name=name, key="k", value="v")))
    assert results_for(results, first.command_id) == [answer]
    assert await event_count(registry) == before + 1  # only the tag


async def test_a_command_handled_before_its_result_was_recorded_is_answered_from_its_events(
    registry: Registry, results: TopicLog, producer: AIOKafkaProducer
) -> None:
    # As after a crash between the append and recording the result: deciding the command again
    # would find nothing to do (the version is already in Production) and answer no positions.
    send, name = Sender(producer), unique("crashed")
    await result_of(results, await send.command(RegisterModel(name=name)))
    await result_of(results, await send.command(RegisterVersion(name=name, source="s3://a")))
    command = TransitionStage(name=name, version=1, stage="Production")
    command_id = uuid4()
    outcome = await registry.commands.handle(command, CommandMeta("alice", command_id))
    before = await event_count(registry)
    result = await result_of(results, await send.command(command, command_id=command_id))
    assert result["ok"] is True
    assert result["positions"] == [e.position for e in outcome.events] != []
    assert await event_count(registry) == before


async def test_a_result_recorded_but_not_published_is_published_on_redelivery(
    registry: Registry, results: TopicLog, producer: AIOKafkaProducer
) -> None:
    send, name = Sender(producer), unique("unpublished")
    registered = await send.command(RegisterModel(name=name))
    answer = await result_of(results, registered)
    async with registry.engine.begin() as conn:  # as if it crashed before the publish
        await conn.execute(
            text("UPDATE command_results SET published_at = NULL WHERE command_id = :id"),
            {"id": registered.command_id},
        )
    await send.raw(dumps(registered.model_dump(mode="json")))
    await results.wait_for(lambda _: len(results_for(results, registered.command_id)) == 2)
    assert results_for(results, registered.command_id) == [answer, answer]


async def test_garbage_is_dead_lettered_with_the_reason_and_the_consumer_keeps_going(
    registry: Registry, results: TopicLog, dead_letters: TopicLog, producer: AIOKafkaProducer
) -> None:
    send, name = Sender(producer), unique("after-garbage")
    garbage = f"garbage {uuid4()} {{".encode()
    invalid_id = uuid4()
    invalid = dumps(
        {"command_id": str(invalid_id), "actor": "alice", "command": {"type": "RegisterModel"}}
    )
    await send.raw(garbage)
    await send.raw(invalid)
    after = await send.command(RegisterModel(name=name))

    assert (await result_of(results, after))["ok"] is True
    await dead_letters.wait_for(lambda records: invalid in [r.value for r in records])
    by_value = {r.value: r for r in dead_letters.records}
    for value in (garbage, invalid):
        headers = {k: v.decode() for k, v in by_value[value].headers}
        assert headers["source-topic"] == REGISTRY_COMMANDS.name
        assert int(headers["source-offset"]) >= 0 and int(headers["source-partition"]) >= 0
        assert by_value[value].key == send.key
    garbage_reason = dict(by_value[garbage].headers)["error"].decode()
    assert garbage_reason.startswith("not a valid CommandMessage: message: Invalid JSON")
    invalid_reason = dict(by_value[invalid].headers)["error"].decode()
    assert "command.RegisterModel.name: Field required" in invalid_reason
    (refusal,) = results_for(results, invalid_id)
    assert refusal == {
        "command_id": str(invalid_id),
        "ok": False,
        "positions": [],
        "error": {"code": "invalid", "message": invalid_reason},
    }


async def test_a_command_id_used_again_for_another_command_is_dead_lettered(
    registry: Registry, results: TopicLog, dead_letters: TopicLog, producer: AIOKafkaProducer
) -> None:
    send, name = Sender(producer), unique("reused")
    first = await send.command(RegisterModel(name=name))
    await result_of(results, first)
    reused = await send.command(
        RegisterModel(name=unique("other")), command_id=first.command_id, actor="bob"
    )
    value = dumps(reused.model_dump(mode="json"))
    await dead_letters.wait_for(lambda records: value in [r.value for r in records])
    (record,) = [r for r in dead_letters.records if r.value == value]
    assert "already used by another command" in dict(record.headers)["error"].decode()
    assert len(results_for(results, first.command_id)) == 1
    assert await registry.commands.load(reused.command.name) is None


async def test_a_database_outage_is_not_acknowledged_but_retried(
    registry: Registry,
    results: TopicLog,
    producer: AIOKafkaProducer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    send, name = Sender(producer), unique("outage")
    handle = registry.commands.handle
    calls = 0

    async def unavailable_once(command: Command, meta: CommandMeta) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionRefusedError("the database is not accepting connections")
        return await handle(command, meta)

    monkeypatch.setattr(registry.commands, "handle", unavailable_once)
    message = await send.command(RegisterModel(name=name))
    result = await result_of(results, message)
    assert result["ok"] is True and calls == 2
    assert result["positions"] == await positions_written_by(registry, message.command_id)
    after = await send.command(SetModelTag(name=name, key="k", value="v"))
    await result_of(results, after)
    assert len(results_for(results, message.command_id)) == 1


@pytest.mark.parametrize("size", [300_000, 5_000_000], ids=["over the dead-letter size", "5 MB"])
async def test_an_oversized_message_is_dead_lettered_in_a_form_that_fits_and_the_partition_moves_on(
    registry: Registry,
    results: TopicLog,
    dead_letters: TopicLog,
    kafka_bootstrap: str,
    size: int,
) -> None:
    big_producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=8_000_000)
    await big_producer.start()
    try:
        send = Sender(big_producer)
        marker = uuid4().hex
        huge = dumps(
            {
                "command_id": str(uuid4()),
                "actor": "alice",
                "command": {"type": "RegisterModel", "name": marker, "description": "x" * size},
            }
        )
        await send.raw(huge)
        after = await send.command(RegisterModel(name=unique("after-huge")))
        assert (await result_of(results, after))["ok"] is True
    finally:
        await big_producer.stop()

    def parked(records: list[Any]) -> list[Any]:
        return [r for r in records if marker.encode() in (r.value or b"")]

    await dead_letters.wait_for(lambda records: bool(parked(records)))
    (record,) = parked(dead_letters.records)
    headers = {key: bytes(value).decode() for key, value in record.headers}
    assert headers["truncated"] == "true" and headers["source-topic"] == REGISTRY_COMMANDS.name
    assert len(record.value) < 16_000
    summary = loads(record.value)
    assert summary["size"] == len(huge) and summary["excerpt"].startswith('{"command_id"')
    code = "too_large" if len(huge) > 1_000_000 else "invalid"
    assert headers["error-code"] == code
