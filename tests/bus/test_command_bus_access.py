"""Commands over Kafka with authentication on: a command message carries a bearer token in its
`authorization` header and runs as that token's user and role, under the same permission table
as HTTP; one without a valid token is dead-lettered, answered "unauthenticated" and changes
nothing; every refusal is recorded like an HTTP one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from topic_log import RUN, TopicLog, unique

from registrar.access.administration import AccessAdministration
from registrar.access.guard import AccessGuard
from registrar.bus.command_bus import attach_command_bus
from registrar.bus.kafka_broker import ensure_topics
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.codec import dumps, loads
from registrar.contracts.command_messages import AUTHORIZATION_HEADER, CommandMessage
from registrar.contracts.commands import (
    ApproveTransition,
    Command,
    RegisterModel,
    RegisterVersion,
    RequestTransition,
    SetAlias,
)
from registrar.contracts.topics import COMMAND_RESULTS, DEADLETTER, REGISTRY_COMMANDS
from registrar.contracts.values import Role
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Secured:
    registry: Registry
    guard: AccessGuard
    tokens: dict[Role, str]
    """A token per role, for a user named after the role."""


@pytest.fixture(scope="module")
async def secured(database_url: str, kafka_bootstrap: str) -> AsyncIterator[Secured]:
    await ensure_topics(kafka_bootstrap)
    registry = await Registry.open(database_url)
    administration = AccessAdministration(registry.store)
    tokens = {
        role: (await administration.issue_token(role.value, role, CommandMeta("cli:test"))).token
        for role in Role
    }
    guard = AccessGuard(refresh_seconds=3600)
    async with guard.running(registry):
        broker = KafkaBroker(kafka_bootstrap, logger=None)
        attach_command_bus(broker, registry, group_id=f"test.secured.{RUN}", guard=guard)
        await broker.start()
        yield Secured(registry, guard, tokens)
        await broker.stop()
    await registry.close()


@pytest.fixture(scope="module")
async def logs(kafka_bootstrap: str) -> AsyncIterator[tuple[TopicLog, TopicLog]]:
    results, dead = (
        TopicLog(kafka_bootstrap, COMMAND_RESULTS.name),
        TopicLog(kafka_bootstrap, DEADLETTER.name),
    )
    await results.start()
    await dead.start()
    yield results, dead
    await results.stop()
    await dead.stop()


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    yield producer
    await producer.stop()


async def send(
    producer: AIOKafkaProducer, command: Command, token: str | None, actor: str = "admin"
) -> CommandMessage:
    message = CommandMessage(command_id=uuid4(), actor=actor, command=command)
    headers = [] if token is None else [(AUTHORIZATION_HEADER, f"Bearer {token}".encode())]
    await producer.send_and_wait(
        REGISTRY_COMMANDS.name,
        dumps(message.model_dump(mode="json")),
        key=command.name.encode(),
        headers=headers,
    )
    return message


async def result_of(results: TopicLog, message: CommandMessage) -> dict[str, Any]:
    key = str(message.command_id).encode()
    await results.wait_for(lambda records: any(r.key == key for r in records))
    return next(loads(r.value) for r in results.records if r.key == key)


async def actors_of(registry: Registry, name: str) -> list[tuple[str, str]]:
    async with registry.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT type, actor FROM events WHERE stream_id ="
                " (SELECT stream_id FROM model_names WHERE name = :n) ORDER BY stream_version"
            ),
            {"n": name},
        )
        return [(row.type, row.actor) for row in rows]


async def refusals(secured: Secured) -> list[dict[str, Any]]:
    await secured.guard.refusals.flush()
    async with secured.registry.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload::jsonb AS p FROM events WHERE type = 'AccessRefused'")
        )
        return [row.p for row in rows]


@pytest.mark.parametrize("token", [None, "not-a-token"], ids=["no token", "unknown token"])
async def test_a_command_without_a_valid_token_is_dead_lettered_and_changes_nothing(
    secured: Secured,
    logs: tuple[TopicLog, TopicLog],
    producer: AIOKafkaProducer,
    token: str | None,
) -> None:
    results, dead = logs
    name = unique("forged")
    message = await send(producer, RegisterModel(name=name), token)

    result = await result_of(results, message)
    assert (result["ok"], result["error"]["code"]) == (False, "unauthenticated")
    value = dumps(message.model_dump(mode="json"))
    await dead.wait_for(lambda records: value in [r.value for r in records])
    (parked,) = [r for r in dead.records if r.value == value]
    headers = {key: bytes(v).decode() for key, v in parked.headers}
    assert headers["error"].startswith("not authenticated")
    assert AUTHORIZATION_HEADER not in headers, "a token must not be copied to the dead letters"
    assert await actors_of(secured.registry, name) == []
    assert any(
        r["status"] == 401 and r["method"] == "KAFKA" and r["model"] == name
        for r in await refusals(secured)
    )


async def test_a_command_runs_as_its_tokens_user_whatever_actor_it_names(
    secured: Secured, logs: tuple[TopicLog, TopicLog], producer: AIOKafkaProducer
) -> None:
    name = unique("named")
    message = await send(
        producer, RegisterModel(name=name), secured.tokens[Role.CONTRIBUTOR], actor="admin"
    )

    assert (await result_of(logs[0], message))["ok"] is True
    assert await actors_of(secured.registry, name) == [("ModelRegistered", "contributor")]


async def test_a_role_refused_over_http_is_refused_over_kafka_and_recorded(
    secured: Secured, logs: tuple[TopicLog, TopicLog], producer: AIOKafkaProducer
) -> None:
    results = logs[0]
    name = unique("promoted")
    contributor = secured.tokens[Role.CONTRIBUTOR]
    for command in (RegisterModel(name=name), RegisterVersion(name=name, source="s3://m")):
        assert (await result_of(results, await send(producer, command, contributor)))["ok"]

    moved = await send(producer, SetAlias(name=name, alias="champion", version=1), contributor)
    viewer = await send(
        producer, RegisterVersion(name=name, source="s3://n"), secured.tokens[Role.VIEWER]
    )

    for message, role in ((moved, "contributor"), (viewer, "viewer")):
        result = await result_of(results, message)
        assert (result["ok"], result["error"]["code"]) == (False, "permission_denied")
        assert f"{role} has {role}" in result["error"]["message"]
    assert [t for t, _ in await actors_of(secured.registry, name)] == [
        "ModelRegistered",
        "VersionRegistered",
    ]
    assert any(
        r["status"] == 403 and r["method"] == "KAFKA" and r["actor"] == "viewer"
        for r in await refusals(secured)
    )


async def test_a_transition_is_recorded_as_the_tokens_user_and_a_forged_approval_is_not(
    secured: Secured, logs: tuple[TopicLog, TopicLog], producer: AIOKafkaProducer
) -> None:
    results = logs[0]
    name = unique("approved")
    approver = secured.tokens[Role.APPROVER]
    for command in (
        RegisterModel(name=name),
        RegisterVersion(name=name, source="s3://m"),
        RequestTransition(name=name, version=1, stage="Staging"),
    ):
        sent = await send(producer, command, approver, actor="admin")
        assert (await result_of(results, sent))["ok"]
    events = await actors_of(secured.registry, name)
    assert {actor for _, actor in events} == {"approver"}
    assert [t for t, _ in events][-2:] == ["TransitionRequested", "StageChanged"]

    forged = await send(
        producer, ApproveTransition(name=name, request_id="any"), None, actor="approver"
    )
    assert (await result_of(results, forged))["error"]["code"] == "unauthenticated"
    assert await actors_of(secured.registry, name) == events
