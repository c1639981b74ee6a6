"""Training-run ingest on a real PostgreSQL and a real Kafka-protocol broker: a TrainingCompleted,
over HTTP or on `training.completed`, records its run and registers one version however often it
arrives; bad input is refused by name (HTTP) or dead-lettered with its reason (Kafka) while the
consumer keeps going; a failing database makes the consumer retry, not skip."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from uuid import uuid4

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata
from faststream.kafka import KafkaBroker
from sqlalchemy import text

from registrar.access.principal import Principal
from registrar.bus.kafka_broker import ensure_topics
from registrar.bus.training_ingest import INGEST_PRINCIPAL, attach_training_ingest, ingest, load_run
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.codec import dumps
from registrar.contracts.commands import DeleteModel, RegisterModel
from registrar.contracts.topics import DEADLETTER, TRAINING_COMPLETED
from registrar.contracts.values import Role
from registrar.domain.runs import run_stream_id
from registrar.domain.state import ModelState
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")

DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
DATASET_DIGEST = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:10]}"


def training_completed(**changes: Any) -> dict[str, Any]:
    """A complete TrainingCompleted (the documented example) for a new run and a new model."""
    run_id = unique("run")
    message = {
        "message_id": str(uuid4()),
        "run_id": run_id,
        "experiment": "churn",
        "model_name": unique("churn"),
        "artifact": {
            "uri": f"s3://models/churn/{run_id}/model",
            "digest": DIGEST,
            "size": 48213,
            "files": ["MLmodel", "model.pkl", "requirements.txt"],
        },
        "metrics": {"auc": 0.91, "f1": 0.84},
        "params": {"n_estimators": "200"},
        "datasets": [
            {
                "name": "customers",
                "version": "v2.1",
                "uri": "s3://data/customers/v2.1",
                "digest": DATASET_DIGEST,
            }
        ],
        "code": {"repository": "https://git.example.com/ml/churn", "commit": "4f2a9c1"},
        "framework": "scikit-learn 1.2.0",
        "started_at": "2026-11-26T10:00:00Z",
        "finished_at": "2026-11-26T11:00:00Z",
        "producer": "training-service",
    }
    return {**message, **changes}


async def versions_of(registry: Registry, name: str) -> ModelState | None:
    loaded = await registry.commands.load(name)
    return loaded.state if loaded else None


# HTTP --------------------------------------------------------------------------------------------


async def test_posting_a_training_run_records_the_run_and_registers_a_version_with_every_field(
    api: httpx.AsyncClient,
) -> None:
    message = training_completed()
    response = await api.post("/v1/training-runs", json=message)
    assert response.status_code == 201, response.text
    body = response.json()
    run = body["run"]
    for key, value in message.items():
        if key != "message_id":
            assert run[key] == value, key
    assert run["recorded_at"]
    version = body["version"]
    assert version["model"] == message["model_name"] and version["version"] == 1
    assert version["source"] == message["artifact"]["uri"]
    assert version["run_id"] == message["run_id"]
    assert version["digest"] == DIGEST and version["size"] == 48213
    assert version["metrics"] == message["metrics"] and version["params"] == message["params"]
    assert version["datasets"] == message["datasets"]
    assert version["framework"] == "scikit-learn 1.2.0" and version["model_type"] == ""
    assert version["tags"] == {
        "experiment": "churn",
        "framework": "scikit-learn 1.2.0",
        "code.repository": "https://git.example.com/ml/churn",
        "code.commit": "4f2a9c1",
        "producer": "training-service",
    }
    assert message["run_id"] in version["description"]
    assert body["position"] >= 1
    assert response.headers["X-Registrar-Position"] == str(body["position"])

    stored = (await api.get(f"/v1/models/{message['model_name']}/versions/1")).json()
    assert stored == {k: v for k, v in version.items() if k != "position"}
    fetched = (await api.get(f"/v1/runs/{message['run_id']}")).json()
    assert fetched == {"run": run, "versions": [stored]}


async def test_the_same_message_twice_answers_200_with_the_same_version(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    message = training_completed()
    first = await api.post("/v1/training-runs", json=message)
    again = await api.post("/v1/training-runs", json=message)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    model = await versions_of(registry, message["model_name"])
    assert model is not None and list(model.versions) == [1]


async def test_the_same_run_in_another_message_registers_one_version(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    message = training_completed()
    first = await api.post("/v1/training-runs", json=message)
    # Another message about the same run: new message id, even other numbers. The run's facts
    # were recorded by the first; this one changes nothing.
    other = {**message, "message_id": str(uuid4()), "metrics": {"auc": 0.5}}
    again = await api.post("/v1/training-runs", json=other)
    assert again.status_code == 200
    assert again.json()["version"] == first.json()["version"]
    assert again.json()["run"]["metrics"] == message["metrics"]
    model = await versions_of(registry, message["model_name"])
    assert model is not None and list(model.versions) == [1]


async def test_the_same_run_ingested_concurrently_registers_one_version(
    registry: Registry,
) -> None:
    from registrar.contracts.training import TrainingCompleted

    message = training_completed()
    copies = [
        TrainingCompleted.model_validate({**message, "message_id": str(uuid4())}) for _ in range(6)
    ]
    outcomes = await asyncio.gather(*(ingest(registry, m, INGEST_PRINCIPAL) for m in copies))
    assert {outcome.version for outcome in outcomes} == {1}
    assert sum(outcome.changed for outcome in outcomes) >= 1
    model = await versions_of(registry, message["model_name"])
    assert model is not None and list(model.versions) == [1]
    run_events = await registry.store.read_stream(f"run:{message['run_id']}")
    assert [e.type for e in run_events] == ["RunRecorded"]


async def test_a_run_for_an_existing_model_adds_the_next_version_to_it(
    api: httpx.AsyncClient,
) -> None:
    message = training_completed()
    name = message["model_name"]
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    assert (await api.post(f"/v1/models/{name}/versions", json={"source": "s3://x"})).is_success
    response = await api.post("/v1/training-runs", json=message)
    assert response.status_code == 201
    assert response.json()["version"]["version"] == 2


async def test_a_run_without_a_model_name_is_recorded_only(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    message = training_completed()
    del message["model_name"]
    response = await api.post("/v1/training-runs", json=message)
    assert response.status_code == 201
    assert response.json()["version"] is None
    assert response.json()["run"]["model_name"] is None
    fetched = await api.get(f"/v1/runs/{message['run_id']}")
    assert fetched.status_code == 200 and fetched.json()["versions"] == []
    again = await api.post("/v1/training-runs", json=message)
    assert again.status_code == 200 and again.json()["position"] == response.json()["position"]


async def test_a_version_the_registry_refuses_is_answered_with_why_and_the_run_stays(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    message = training_completed()
    name = message["model_name"]
    meta = CommandMeta("test")
    await registry.commands.handle(RegisterModel(name=name), meta)
    await registry.commands.handle(DeleteModel(name=name), meta.part(1))
    response = await api.post("/v1/training-runs", json=message)
    assert response.status_code == 404
    assert "deleted" in response.json()["error"]["message"]
    assert await load_run(registry, message["run_id"]) is not None


async def test_an_unknown_run_answers_404_saying_so(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/runs/no-such-run")
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found" and "no-such-run" in error["message"]


async def test_an_extra_field_is_refused_by_name(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    message = training_completed(owner="someone")
    message["artifact"]["checksum"] = "abc"
    response = await api.post("/v1/training-runs", json=message)
    assert response.status_code == 422
    error = response.json()["error"]
    assert {f["field"] for f in error["fields"]} == {"body.owner", "body.artifact.checksum"}
    assert "owner" in error["message"] and "checksum" in error["message"]
    assert await load_run(registry, message["run_id"]) is None


async def test_missing_required_fields_are_refused_each_by_name(api: httpx.AsyncClient) -> None:
    message = training_completed()
    for key in ("message_id", "run_id", "finished_at"):
        del message[key]
    del message["artifact"]["uri"]
    response = await api.post("/v1/training-runs", json=message)
    assert response.status_code == 422
    fields = {f["field"] for f in response.json()["error"]["fields"]}
    assert fields == {"body.message_id", "body.run_id", "body.finished_at", "body.artifact.uri"}


async def test_malformed_json_is_refused(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/training-runs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_models_written_after_a_run_are_still_listed(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/training-runs", json=training_completed())
    assert response.status_code == 201
    name = unique("listed")
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    listed = await api.get("/v1/models", params={"name": name})
    assert listed.status_code == 200, listed.text
    assert [model["name"] for model in listed.json()["models"]] == [name]


# Kafka -------------------------------------------------------------------------------------------

TRAINER = Principal("trainer-service", Role.CONTRIBUTOR)
"""The service principal the ingest consumer is configured with."""


@pytest.fixture(scope="module")
async def ingest_group(
    kafka_bootstrap: str, app_and_client: tuple[Registry, httpx.AsyncClient]
) -> AsyncIterator[str]:
    """The ingest consuming training.completed into the API's registry, in a consumer group of
    its own (so no earlier run's committed offsets apply), retrying fast; its group id."""
    await ensure_topics(kafka_bootstrap)
    group_id = unique("registrar.ingest.test")
    broker = KafkaBroker(kafka_bootstrap, logger=None)
    attach_training_ingest(
        broker, app_and_client[0], group_id=group_id, caller=TRAINER, retry_delay_seconds=0.1
    )
    await broker.start()
    try:
        yield group_id
    finally:
        await broker.stop()


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """Another team's training service, publishing with plain aiokafka."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


async def publish(producer: AIOKafkaProducer, value: bytes, key: str) -> RecordMetadata:
    # Whatever the body, say it is JSON: the consumer must still see the bytes as they are.
    return await producer.send_and_wait(
        TRAINING_COMPLETED.name,
        value,
        key=key.encode(),
        headers=[("content-type", b"application/json")],
    )


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "not done before the deadline"
        await asyncio.sleep(0.1)


async def wait_for_version(registry: Registry, name: str, number: int = 1) -> ModelState:
    async def registered() -> bool:
        model = await versions_of(registry, name)
        return model is not None and number in model.versions

    await eventually(registered)
    model = await versions_of(registry, name)
    assert model is not None
    return model


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


async def dead_letters(bootstrap: str, wanted: set[bytes]) -> dict[bytes, ConsumerRecord[Any, Any]]:
    """The records on registrar.deadletter whose value is one of `wanted`, once all are there."""
    found: dict[bytes, ConsumerRecord[Any, Any]] = {}
    consumer = AIOKafkaConsumer(
        DEADLETTER.name, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while set(found) != wanted and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for record in (r for records in batches.values() for r in records):
                if record.value in wanted:
                    found[record.value] = record
    finally:
        await consumer.stop()
    return found


async def test_a_training_completed_on_kafka_registers_one_version_however_often_it_comes(
    ingest_group: str, producer: AIOKafkaProducer, registry: Registry, kafka_bootstrap: str
) -> None:
    message = training_completed()
    value = dumps(message)
    await publish(producer, value, message["run_id"])
    await publish(producer, value, message["run_id"])  # delivered twice
    # A later message on the same partition (same key): once it is in, both copies were handled.
    later = training_completed(run_id=f"{message['run_id']}-later")
    sent = await publish(producer, dumps(later), message["run_id"])
    await wait_for_version(registry, later["model_name"])
    await wait_until_committed(kafka_bootstrap, ingest_group, sent)  # acknowledged

    model = await wait_for_version(registry, message["model_name"])
    assert list(model.versions) == [1]
    version = model.versions[1]
    assert version.run_id == message["run_id"] and version.source == message["artifact"]["uri"]
    assert version.metrics == message["metrics"] and version.digest == DIGEST
    run = await load_run(registry, message["run_id"])
    assert run is not None and run.run.artifact.files == message["artifact"]["files"]


async def test_runs_from_kafka_are_recorded_by_the_configured_principal_not_the_producer(
    ingest_group: str, producer: AIOKafkaProducer, registry: Registry
) -> None:
    message = training_completed(producer="admin")
    await publish(producer, dumps(message), message["run_id"])
    await wait_for_version(registry, message["model_name"])

    async with registry.engine.connect() as conn:
        actors = await conn.execute(
            text("SELECT DISTINCT actor FROM events WHERE stream_id IN (:run, :model)"),
            {
                "run": run_stream_id(message["run_id"]),
                "model": await registry.store.resolve_name(message["model_name"]),
            },
        )
        assert list(actors.scalars()) == ["trainer-service"]


async def test_bad_messages_are_dead_lettered_with_why_and_the_consumer_keeps_going(
    ingest_group: str, producer: AIOKafkaProducer, registry: Registry, kafka_bootstrap: str
) -> None:
    key = unique("key")  # one key: one partition, so the messages are handled in this order
    garbage = f"not json at all {uuid4()}".encode()
    invalid_message = training_completed(owner="someone")
    del invalid_message["finished_at"]
    invalid = dumps(invalid_message)
    refused_message = training_completed()
    meta = CommandMeta("test")
    await registry.commands.handle(RegisterModel(name=refused_message["model_name"]), meta)
    await registry.commands.handle(DeleteModel(name=refused_message["model_name"]), meta.part(1))
    refused = dumps(refused_message)
    valid = training_completed()
    for value in (garbage, invalid, refused, dumps(valid)):
        sent = await publish(producer, value, key)

    await wait_for_version(registry, valid["model_name"])
    await wait_until_committed(kafka_bootstrap, ingest_group, sent)
    found = await dead_letters(kafka_bootstrap, {garbage, invalid, refused})
    assert set(found) == {garbage, invalid, refused}
    headers = {value: dict(record.headers) for value, record in found.items()}
    for value, record in found.items():
        assert record.key == key.encode()
        assert headers[value]["source-topic"] == TRAINING_COMPLETED.name.encode()
        assert int(headers[value]["source-partition"]) >= 0
        assert int(headers[value]["source-offset"]) >= 0
    assert b"Invalid JSON" in headers[garbage]["error"]
    assert headers[garbage]["error-code"] == b"invalid"
    assert b"owner" in headers[invalid]["error"] and b"finished_at" in headers[invalid]["error"]
    assert b"deleted" in headers[refused]["error"]
    assert headers[refused]["error-code"] == b"not_found"
    # The refused message's run is recorded all the same; the invalid one's is not.
    assert await load_run(registry, refused_message["run_id"]) is not None
    assert await load_run(registry, invalid_message["run_id"]) is None


async def test_a_message_that_fails_on_a_database_error_is_retried_not_skipped(
    ingest_group: str,
    producer: AIOKafkaProducer,
    registry: Registry,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = training_completed()
    failures = 3
    append = registry.store.append

    async def failing_append(stream_id: str, *args: Any, **kwargs: Any) -> Any:
        nonlocal failures
        if stream_id == f"run:{message['run_id']}" and failures:
            failures -= 1
            raise ConnectionRefusedError("the database is down")
        return await append(stream_id, *args, **kwargs)

    monkeypatch.setattr(registry.store, "append", failing_append)
    value = dumps(message)
    await publish(producer, value, message["run_id"])
    model = await wait_for_version(registry, message["model_name"])
    assert failures == 0 and list(model.versions) == [1]
    # It was never given up on: nothing of it is on the dead-letter topic.
    assert await dead_letters_quickly(kafka_bootstrap, value) == 0


async def dead_letters_quickly(bootstrap: str, value: bytes) -> int:
    """How many records on registrar.deadletter hold `value` (reading what is there now)."""
    consumer = AIOKafkaConsumer(
        DEADLETTER.name, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    count = 0
    try:
        for _ in range(4):
            batches = await consumer.getmany(timeout_ms=500)
            count += sum(r.value == value for records in batches.values() for r in records)
    finally:
        await consumer.stop()
    return count
