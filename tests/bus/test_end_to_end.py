"""End to end through a real `registrar up` (its own PostgreSQL database, its own broker): a
training service publishes TrainingCompleted on Kafka, a person promotes the version over HTTP,
a deployment system hears exactly one promotion, with the artifact's digest."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from registrar_process import registrar_env, running_registrar
from topic_log import TopicLog

from registrar.contracts.topics import REGISTRY_PROMOTIONS, TRAINING_COMPLETED

pytestmark = pytest.mark.asyncio(loop_scope="session")

DIGEST = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
BUS = re.compile(r"Bus: .* at (\S+?)\.?$", re.MULTILINE)


@pytest.fixture(scope="module")
def registrar(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    workdir: Path = tmp_path_factory.mktemp("end-to-end")
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(workdir / "home"))
    with running_registrar("up", "--port", "0", env=env, cwd=workdir) as (url, lines):
        bus = BUS.search("".join(lines))
        assert bus is not None, "".join(lines)
        yield url, bus.group(1)


async def test_a_run_on_kafka_becomes_a_version_whose_promotion_reaches_deployers_once(
    registrar: tuple[str, str],
) -> None:
    url, bootstrap = registrar
    run_id, model = f"run-{uuid4().hex[:10]}", f"fraud-{uuid4().hex[:6]}"
    completed = {
        "message_id": str(uuid4()),
        "run_id": run_id,
        "model_name": model,
        "artifact": {"uri": f"s3://models/{model}/{run_id}", "digest": DIGEST, "size": 1234},
        "metrics": {"auc": 0.93},
        "finished_at": "2026-11-26T11:00:00Z",
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for _ in range(2):  # delivered twice: still one version
            await producer.send_and_wait(TRAINING_COMPLETED.name, orjson.dumps(completed))
    finally:
        await producer.stop()

    async with httpx.AsyncClient(base_url=url, timeout=10) as api:
        deadline = asyncio.get_running_loop().time() + 60
        while True:
            run = await api.get(f"/v1/runs/{run_id}")
            if run.status_code == 200 and run.json()["versions"]:
                break
            assert asyncio.get_running_loop().time() < deadline, "the run was not ingested"
            await asyncio.sleep(0.2)
        (version,) = run.json()["versions"]
        assert (version["model"], version["digest"], version["run_id"]) == (model, DIGEST, run_id)
        promoted = await api.post(
            f"/v1/models/{model}/versions/{version['version']}/stage",
            json={"stage": "Production"},
            headers={"X-Registrar-Actor": "alice"},
        )
        assert promoted.status_code == 200
        listed = (await api.get(f"/v1/models/{model}/versions")).json()["versions"]
        assert [v["version"] for v in listed] == [version["version"]]

    promotions = TopicLog(bootstrap, REGISTRY_PROMOTIONS.name)
    await promotions.start()
    try:

        def of_model(records: list) -> list[dict]:  # type: ignore[type-arg]
            return [p for r in records if (p := orjson.loads(r.value))["model"] == model]

        await promotions.wait_for(lambda records: bool(of_model(records)), timeout=60)
        await asyncio.sleep(3)  # anything more than one would arrive meanwhile
        (promotion,) = of_model(promotions.records)
    finally:
        await promotions.stop()
    assert promotion["kind"] == "stage"
    assert (promotion["from_stage"], promotion["to_stage"]) == ("None", "Production")
    assert promotion["version"] == str(version["version"])
    assert promotion["artifact"] == {"uri": completed["artifact"]["uri"], "digest": DIGEST}
    assert promotion["actor"] == "alice"
    assert promotion["position"] == promoted.json()["position"]
