"""Evaluation ingest on a real PostgreSQL and a real Kafka-protocol broker: an EvaluationCompleted
on `evaluation.completed` records its evaluation on the version once however often it arrives, as
the configured ingest principal; what cannot be recorded (not JSON, a contract violation, no such
version) goes to the dead-letter topic with the reason, and nothing is recorded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker
from sqlalchemy import text
from topic_log import TopicLog, unique

from registrar.access.principal import Principal
from registrar.bus.asyncapi import specification
from registrar.bus.evaluation_ingest import (
    attach_evaluation_ingest,
    evaluation_command_id,
    ingest_evaluation,
)
from registrar.bus.kafka_broker import ensure_topics
from registrar.contracts.codec import dumps
from registrar.contracts.evaluations import EvaluationCompleted
from registrar.contracts.topics import DEADLETTER, EVALUATION_COMPLETED
from registrar.contracts.values import Role
from registrar.domain.errors import Forbidden
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")

PIPELINE = Principal("evaluation-pipeline", Role.CONTRIBUTOR)
"""The service principal the ingest consumer is configured with."""

COUNTS = {
    "F": {"tp": 30, "fp": 10, "tn": 50, "fn": 10},
    "M": {"tp": 40, "fp": 20, "tn": 30, "fn": 10},
}


def selection_rate(counts: dict[str, int]) -> float:
    return (counts["tp"] + counts["fp"]) / sum(counts.values())


def demographic_parity_difference(groups: dict[str, dict[str, int]]) -> float:
    """fairlearn's definition: the largest selection rate less the smallest."""
    rates = [selection_rate(counts) for counts in groups.values()]
    return max(rates) - min(rates)


def evaluation_completed(name: str, version: int = 1, **changes: Any) -> dict[str, Any]:
    """A fairness EvaluationCompleted for version `version` of model `name`."""
    message = {
        "message_id": str(uuid4()),
        "model_name": name,
        "version": version,
        "evaluation": {
            "kind": "fairness",
            "sensitive_feature": "sex",
            "groups": COUNTS,
            "dataset": {"name": "holdout", "version": "2026-11"},
            "tools": {"fairlearn": "0.13"},
        },
        "producer": "evaluation-pipeline",
    }
    return {**message, **changes}


@pytest.fixture(scope="module")
async def ingest_group(
    kafka_bootstrap: str, app_and_client: tuple[Registry, httpx.AsyncClient]
) -> AsyncIterator[str]:
    """The ingest consuming evaluation.completed into the API's registry, in a consumer group of
    its own (so no earlier run's committed offsets apply), retrying fast; its group id."""
    await ensure_topics(kafka_bootstrap)
    group_id = unique("registrar.evaluations.test")
    broker = KafkaBroker(kafka_bootstrap, logger=None)
    attach_evaluation_ingest(
        broker, app_and_client[0], group_id=group_id, caller=PIPELINE, retry_delay_seconds=0.1
    )
    await broker.start()
    try:
        yield group_id
    finally:
        await broker.stop()


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """Another team's evaluation pipeline, publishing with plain aiokafka."""
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
    name = unique("credit")
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    for number in range(1, versions + 1):
        body = {"source": f"s3://models/{name}/{number}"}
        assert (await api.post(f"/v1/models/{name}/versions", json=body)).status_code == 201
    return name


async def publish(producer: AIOKafkaProducer, value: bytes, key: str) -> RecordMetadata:
    # Whatever the body, say it is JSON: the consumer must still see the bytes as they are.
    return await producer.send_and_wait(
        EVALUATION_COMPLETED.name,
        value,
        key=key.encode(),
        headers=[("content-type", b"application/json")],
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not done before the deadline"
        await asyncio.sleep(0.1)


async def evaluations_of(api: httpx.AsyncClient, name: str, version: int = 1) -> list[Any]:
    response = await api.get(f"/v1/models/{name}/versions/{version}/evaluations")
    assert response.status_code == 200, response.text
    return list(response.json()["evaluations"])


async def wait_for_evaluation(api: httpx.AsyncClient, name: str, version: int = 1) -> list[Any]:
    async def recorded() -> bool:
        return bool(await evaluations_of(api, name, version))

    await eventually(recorded)
    return await evaluations_of(api, name, version)


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


async def evaluations_recorded(registry: Registry) -> int:
    """How many EvaluationRecorded events the store holds, on every model."""
    async with registry.engine.connect() as conn:
        count = await conn.scalar(
            text("SELECT count(*) FROM events WHERE type = 'EvaluationRecorded'")
        )
    return int(count or 0)


# Recording ---------------------------------------------------------------------------------------


async def test_a_fairness_evaluation_on_kafka_is_recorded_with_its_derived_disparity(
    ingest_group: str, producer: AIOKafkaProducer, api: httpx.AsyncClient
) -> None:
    name = await new_model(api)
    message = evaluation_completed(name)
    await publish(producer, dumps(message), name)

    (evaluation,) = await wait_for_evaluation(api, name)
    assert (evaluation["model"], evaluation["version"]) == (name, 1)
    assert evaluation["kind"] == "fairness" and evaluation["sensitive_feature"] == "sex"
    summary = evaluation["fairness"]
    expected = demographic_parity_difference(COUNTS)  # 0.6 - 0.4
    assert summary["demographic_parity_difference"] == pytest.approx(expected)
    assert evaluation["groups"]["F"]["selection_rate"] == pytest.approx(selection_rate(COUNTS["F"]))
    assert evaluation["dataset"]["name"] == "holdout"
    # Recorded by the configured principal, never by what the message says of itself.
    assert evaluation["recorded_by"] == PIPELINE.user
    fetched = await api.get(
        f"/v1/models/{name}/versions/1/evaluations/{evaluation['evaluation_id']}"
    )
    assert fetched.status_code == 200 and fetched.json() == evaluation


async def test_the_same_message_delivered_twice_records_one_evaluation(
    ingest_group: str,
    producer: AIOKafkaProducer,
    api: httpx.AsyncClient,
    registry: Registry,
    kafka_bootstrap: str,
) -> None:
    name = await new_model(api, versions=2)
    message = evaluation_completed(name)
    value = dumps(message)
    await publish(producer, value, name)
    await publish(producer, value, name)  # delivered twice
    # A later message on the same partition (same key): once it is in, both copies were handled.
    sent = await publish(producer, dumps(evaluation_completed(name, version=2)), name)
    await wait_for_evaluation(api, name, version=2)
    await wait_until_committed(kafka_bootstrap, ingest_group, sent)  # acknowledged

    assert len(await evaluations_of(api, name)) == 1
    caused = await registry.store.events_caused_by(
        evaluation_command_id(UUID(message["message_id"]))
    )
    assert [event.type for event in caused] == ["EvaluationRecorded"]


# Refusals ----------------------------------------------------------------------------------------


async def test_bad_messages_are_dead_lettered_with_why_and_nothing_is_recorded(
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
    unknown_version = dumps(evaluation_completed(name, version=7))
    bad_digest_message = evaluation_completed(name)
    bad_digest_message["evaluation"]["dataset"]["digest"] = "md5:1"
    bad_digest = dumps(bad_digest_message)
    unknown_model = dumps(evaluation_completed(unique("no-such-model")))
    before = await evaluations_recorded(registry)
    for value in (garbage, unknown_version, bad_digest, unknown_model):
        await publish(producer, value, key)
    sent = await publish(producer, dumps(evaluation_completed(name)), key)  # a valid one after

    await wait_for_evaluation(api, name)
    await wait_until_committed(kafka_bootstrap, ingest_group, sent)
    wanted = {garbage, unknown_version, bad_digest, unknown_model}
    await dead_letters.wait_for(lambda records: wanted <= {r.value for r in records})
    found = {r.value: r for r in dead_letters.records if r.value in wanted}
    headers = {value: dict(record.headers) for value, record in found.items()}
    for value, record in found.items():
        assert record.key == key.encode()
        assert headers[value]["source-topic"] == EVALUATION_COMPLETED.name.encode()
        assert int(headers[value]["source-offset"]) >= 0
    assert b"Invalid JSON" in headers[garbage]["error"]
    assert headers[garbage]["error-code"] == b"invalid"
    assert b"has no version 7" in headers[unknown_version]["error"]
    assert headers[unknown_version]["error-code"] == b"not_found"
    assert b"evaluation.dataset.digest" in headers[bad_digest]["error"]
    assert b"'md5:1'" in headers[bad_digest]["error"]
    assert headers[bad_digest]["error-code"] == b"invalid"
    assert b"no-such-model" in headers[unknown_model]["error"]
    assert headers[unknown_model]["error-code"] == b"not_found"
    # Of the five messages, only the valid one recorded anything.
    assert await evaluations_recorded(registry) == before + 1
    assert len(await evaluations_of(api, name)) == 1


async def test_a_message_id_sent_again_with_another_evaluation_is_dead_lettered(
    ingest_group: str,
    producer: AIOKafkaProducer,
    api: httpx.AsyncClient,
    dead_letters: TopicLog,
) -> None:
    name = await new_model(api)
    first = evaluation_completed(name)
    await publish(producer, dumps(first), name)
    (recorded,) = await wait_for_evaluation(api, name)
    other = {**first, "evaluation": {"kind": "performance", "metrics": {"auc": 0.8}}}
    value = dumps(other)
    await publish(producer, value, name)

    await dead_letters.wait_for(lambda records: value in [r.value for r in records])
    (record,) = [r for r in dead_letters.records if r.value == value]
    error = dict(record.headers)["error"]
    assert b"message_id" in error and b"used before" in error
    assert await evaluations_of(api, name) == [recorded]


async def test_a_principal_who_may_not_contribute_records_nothing(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    name = await new_model(api)
    message = EvaluationCompleted.model_validate(evaluation_completed(name))
    with pytest.raises(Forbidden, match="contribute"):
        await ingest_evaluation(registry, message, Principal("reader", Role.VIEWER))
    assert await evaluations_of(api, name) == []


# The topic and its documentation -----------------------------------------------------------------


async def test_the_topic_is_created_with_the_others(kafka_bootstrap: str) -> None:
    await ensure_topics(kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        assert EVALUATION_COMPLETED.name in await consumer.topics()
        partitions = consumer.partitions_for_topic(EVALUATION_COMPLETED.name) or set()
        assert len(partitions) == EVALUATION_COMPLETED.partitions
    finally:
        await consumer.stop()


async def test_the_asyncapi_document_describes_the_topic_and_its_message() -> None:
    document = specification("0").to_specification()
    channel = document.channels[f"{EVALUATION_COMPLETED.name} (consumed)"]
    assert channel.address == EVALUATION_COMPLETED.name
    assert "REGISTRAR_INGEST_USER" in (channel.description or "")
    schema = document.components.schemas["EvaluationCompleted"]  # type: ignore[union-attr]
    assert {"message_id", "model_name", "version", "evaluation", "producer"} <= set(
        schema["properties"]
    )
