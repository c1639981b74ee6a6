"""Deployment ingest on a real PostgreSQL and a real Kafka-protocol broker: a DeploymentReport on
`deployment.status` is recorded on the version's stream once however often it arrives, as the
deployment ingest's principal (the message's deployer recorded as the deployer); what cannot be
recorded (not JSON, a contract violation, an undeclared environment, no such model or version, a
report id reused) goes to the dead-letter topic with the reason, and nothing is recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from topic_log import TopicLog, unique

from registrar.access.principal import Principal
from registrar.bus.asyncapi import specification
from registrar.bus.deployment_ingest import (
    DEPLOYMENT_PRINCIPAL,
    attach_deployment_ingest,
    ingest_report,
)
from registrar.bus.kafka_broker import ensure_topics
from registrar.contracts.codec import dumps
from registrar.contracts.deployments import DeploymentReport, report_command_id
from registrar.contracts.topics import DEADLETTER, DEPLOYMENT_STATUS
from registrar.contracts.values import Role
from registrar.domain.errors import Forbidden
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")


def deployment_report(name: str, version: int = 1, **changes: Any) -> dict[str, Any]:
    """A report that version `version` of model `name` serves in prod."""
    message = {
        "report_id": str(uuid4()),
        "model": name,
        "version": version,
        "environment": "prod",
        "status": "serving",
        "endpoint": "https://churn.prod.example",
        "deployer": "argo-cd",
    }
    return {**message, **changes}


@pytest.fixture(scope="module")
async def ingest_group(
    kafka_bootstrap: str, app_and_client: tuple[Registry, httpx.AsyncClient]
) -> AsyncIterator[str]:
    """The governance document declaring prod, and the ingest consuming deployment.status into
    the API's registry, in a consumer group of its own, retrying fast; its group id."""
    applied = await app_and_client[1].put(
        "/v1/policies", json={"environments": {"prod": {"follows": {"stage": "Production"}}}}
    )
    assert applied.status_code == 200, applied.text
    await ensure_topics(kafka_bootstrap)
    group_id = unique("registrar.deployments.test")
    broker = KafkaBroker(kafka_bootstrap, logger=None)
    attach_deployment_ingest(broker, app_and_client[0], group_id=group_id, retry_delay_seconds=0.1)
    await broker.start()
    try:
        yield group_id
    finally:
        await broker.stop()


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A deployer, publishing with plain aiokafka."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@pytest.fixture(scope="module")
async def dead_letters(kafka_bootstrap: str) -> AsyncIterator[TopicLog]:
    await ensure_topics(kafka_bootstrap)
    log = TopicLog(kafka_bootstrap, DEADLETTER.name)
    await log.start()
    try:
        yield log
    finally:
        await log.stop()


async def new_model(api: httpx.AsyncClient, versions: int = 1) -> str:
    name = unique("churn")
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    for number in range(1, versions + 1):
        body = {"source": f"s3://models/{name}/{number}"}
        assert (await api.post(f"/v1/models/{name}/versions", json=body)).status_code == 201
    return name


async def publish(producer: AIOKafkaProducer, value: bytes, key: str) -> RecordMetadata:
    return await producer.send_and_wait(DEPLOYMENT_STATUS.name, value, key=key.encode())


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not done before the deadline"
        await asyncio.sleep(0.1)


async def deployments_of(api: httpx.AsyncClient, name: str, version: int = 1) -> list[Any]:
    """The version's status in each environment, from the read model (without min_position it
    may lag the ingest: callers poll with `eventually`)."""
    response = await api.get(f"/v1/models/{name}/versions/{version}/deployments")
    assert response.status_code == 200, response.text
    return list(response.json()["deployments"])


async def wait_for_deployment(api: httpx.AsyncClient, name: str, version: int = 1) -> list[Any]:
    async def shown() -> bool:
        return bool(await deployments_of(api, name, version))

    await eventually(shown)
    return await deployments_of(api, name, version)


async def wait_until_committed(bootstrap: str, group_id: str, sent: RecordMetadata) -> None:
    """Return once `group_id` has committed an offset past the record `sent`."""
    partition = TopicPartition(sent.topic, sent.partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id)
    await consumer.start()
    try:

        async def committed() -> bool:
            offset = await consumer.committed(partition)
            return offset is not None and offset > sent.offset

        await eventually(committed)
    finally:
        await consumer.stop()


async def reports_recorded(registry: Registry) -> int:
    """How many DeploymentReported events the store holds, on every model."""
    async with registry.engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM events WHERE type = 'DeploymentReported'")
        )
    return int(count or 0)


# Recording ---------------------------------------------------------------------------------------


async def test_a_report_on_kafka_is_recorded_as_the_deployment_principal(
    ingest_group: str, producer: AIOKafkaProducer, api: httpx.AsyncClient
) -> None:
    name = await new_model(api)
    message = deployment_report(name, message="canary passed")
    await publish(producer, dumps(message), name)

    (deployment,) = await wait_for_deployment(api, name)

    assert (deployment["environment"], deployment["status"]) == ("prod", "serving")
    assert deployment["endpoint"] == message["endpoint"]
    assert deployment["message"] == "canary passed"
    assert deployment["report_id"] == message["report_id"]
    # The deployer is what the message says; who recorded it is the ingest's own principal.
    assert deployment["deployer"] == "argo-cd"
    assert deployment["actor"] == DEPLOYMENT_PRINCIPAL.user


async def test_the_same_report_delivered_twice_is_recorded_once(
    ingest_group: str,
    producer: AIOKafkaProducer,
    api: httpx.AsyncClient,
    registry: Registry,
    kafka_bootstrap: str,
) -> None:
    name = await new_model(api, versions=2)
    message = deployment_report(name, status="deploying")
    value = dumps(message)
    await publish(producer, value, name)
    await publish(producer, value, name)  # delivered twice
    # A later message on the same partition (same key): once it is in, both copies were handled.
    sent = await publish(producer, dumps(deployment_report(name, version=2)), name)
    await wait_for_deployment(api, name, version=2)
    await wait_until_committed(kafka_bootstrap, ingest_group, sent)

    caused = await registry.store.events_caused_by(report_command_id(message["report_id"]))
    assert [event.type for event in caused] == ["DeploymentReported"]
    (first,) = await deployments_of(api, name)
    assert first["status"] == "deploying"


# Refusals ----------------------------------------------------------------------------------------


async def test_bad_reports_are_dead_lettered_with_why_and_nothing_is_recorded(
    ingest_group: str,
    producer: AIOKafkaProducer,
    api: httpx.AsyncClient,
    registry: Registry,
    dead_letters: TopicLog,
    kafka_bootstrap: str,
) -> None:
    name = await new_model(api)
    key = unique("key")  # one key: one partition, so the messages are handled in this order
    garbage = f"not json at all {uuid4()}".encode()
    bad_status = dumps(deployment_report(name, status="running"))
    undeclared = dumps(deployment_report(name, environment="mars"))
    unknown_version = dumps(deployment_report(name, version=7))
    unknown_model = dumps(deployment_report(unique("no-such-model")))
    wanted = {garbage, bad_status, undeclared, unknown_version, unknown_model}
    before = await reports_recorded(registry)
    for value in (garbage, bad_status, undeclared, unknown_version, unknown_model):
        await publish(producer, value, key)
    sent = await publish(producer, dumps(deployment_report(name)), key)  # a valid one after

    await wait_for_deployment(api, name)
    await wait_until_committed(kafka_bootstrap, ingest_group, sent)
    await dead_letters.wait_for(lambda records: wanted <= {r.value for r in records})
    found = {r.value: dict(r.headers) for r in dead_letters.records if r.value in wanted}
    for headers in found.values():
        assert headers["source-topic"] == DEPLOYMENT_STATUS.name.encode()
    assert b"Invalid JSON" in found[garbage]["error"]
    assert b"status" in found[bad_status]["error"]
    assert found[bad_status]["error-code"] == b"invalid"
    assert b"environment 'mars' is not declared" in found[undeclared]["error"]
    assert found[undeclared]["error-code"] == b"invalid"
    assert b"has no version 7" in found[unknown_version]["error"]
    assert found[unknown_version]["error-code"] == b"not_found"
    assert found[unknown_model]["error-code"] == b"not_found"
    # Of the six messages, only the valid one recorded anything.
    assert await reports_recorded(registry) == before + 1
    assert len(await deployments_of(api, name)) == 1


async def test_a_report_id_sent_again_with_another_report_is_dead_lettered(
    ingest_group: str,
    producer: AIOKafkaProducer,
    api: httpx.AsyncClient,
    dead_letters: TopicLog,
) -> None:
    name = await new_model(api)
    first = deployment_report(name)
    await publish(producer, dumps(first), name)
    (recorded,) = await wait_for_deployment(api, name)
    value = dumps({**first, "status": "failed"})
    await publish(producer, value, name)

    await dead_letters.wait_for(lambda records: value in [r.value for r in records])
    (record,) = [r for r in dead_letters.records if r.value == value]
    error = dict(record.headers)["error"]
    assert b"report_id" in error and b"used before" in error
    assert await deployments_of(api, name) == [recorded]


async def test_a_principal_who_may_not_deploy_records_nothing(
    ingest_group: str, api: httpx.AsyncClient, registry: Registry
) -> None:
    name = await new_model(api)
    message = DeploymentReport.model_validate(deployment_report(name))
    for role in (Role.VIEWER, Role.CONTRIBUTOR, Role.APPROVER):
        with pytest.raises(Forbidden, match="deploy needs the deployer role"):
            await ingest_report(registry, message, Principal("pipeline", role))
    assert await deployments_of(api, name) == []


# The topic and its documentation -----------------------------------------------------------------


async def test_the_topic_is_created_with_the_others(kafka_bootstrap: str) -> None:
    await ensure_topics(kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        assert DEPLOYMENT_STATUS.name in await consumer.topics()
        partitions = consumer.partitions_for_topic(DEPLOYMENT_STATUS.name) or set()
        assert len(partitions) == DEPLOYMENT_STATUS.partitions
    finally:
        await consumer.stop()


async def test_the_asyncapi_document_describes_the_topic_and_its_message() -> None:
    document = specification("0").to_specification()
    channel = document.channels[f"{DEPLOYMENT_STATUS.name} (consumed)"]
    assert channel.address == DEPLOYMENT_STATUS.name
    assert "deployment-ingest" in (channel.description or "")
    schema = document.components.schemas["DeploymentReport"]  # type: ignore[union-attr]
    assert {"report_id", "model", "version", "environment", "status", "deployer"} <= set(
        schema["properties"]
    )
