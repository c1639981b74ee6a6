"""compose.yaml's topology, run for real without Docker: every Registrar service it declares
starts here as a local process with the same command and environment (the Dockerfile's too),
the host names `postgres` and `kafka` pointed at this test's PostgreSQL and broker and the API's
port at a free one. A model is driven through register, lineage, a governed request and its
approval, and every read model must answer for it: none may be left unmaintained."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from registrar_process import BIN, registrar_env, running_registrar

from registrar.bus.kafka_broker import start_embedded_broker
from registrar.contracts.codec import loads
from registrar.contracts.topics import REGISTRY_PROMOTIONS

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
IMAGE_ENV = dict(
    re.findall(r"(REGISTRAR_[A-Z_]+)=(\S+)", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _local(value: str, database_url: str, bootstrap: str) -> str:
    """A compose value with its service host names pointed at this test's servers."""
    value = re.sub(r"postgresql://[^@]+@postgres:5432/\w+", database_url, value)
    return value.replace("kafka:9092", bootstrap)


def _services(
    database_url: str, bootstrap: str, api_port: int
) -> list[tuple[str, list[str], dict[str, str]]]:
    """(name, command, environment) of each Registrar process compose starts, replicas too."""
    started = []
    for name, spec in COMPOSE["services"].items():
        if spec.get("build") != ".":
            continue
        environment = {
            **IMAGE_ENV,
            **{
                k: _local(str(v), database_url, bootstrap)
                for k, v in spec.get("environment", {}).items()
            },
        }
        command = [str(part) for part in spec["command"]]
        if command[0] == "serve":
            command = [str(api_port) if part == "8080" else part for part in command]
        replicas = spec.get("deploy", {}).get("replicas", 1)
        started += [(f"{name}-{i}", command, environment) for i in range(replicas)]
    return started


@pytest.fixture(scope="module")
def topology(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    workdir = tmp_path_factory.mktemp("compose")
    broker = start_embedded_broker(log_path=workdir / "tansu.log")
    port = _free_port()
    services = _services(database_url, broker.bootstrap, port)
    try:
        with contextlib.ExitStack() as running:
            for _, command, environment in services:
                env = registrar_env(**environment)
                if command[0] == "migrate":  # a one-off that must finish before the others
                    done = subprocess.run(
                        [str(BIN / "registrar"), *command],
                        env=env,
                        cwd=workdir,
                        capture_output=True,
                        text=True,
                        timeout=120,
                    )
                    assert done.returncode == 0, done.stderr
                    continue
                is_api = command[0] == "serve"
                url, _ = running.enter_context(
                    running_registrar(*command, env=env, cwd=workdir, api=is_api)
                )
                if is_api:
                    api = url
            admin = subprocess.run(
                [str(BIN / "registrar"), "token", "create", "--user", "admin", "--role", "admin"],
                env=registrar_env(REGISTRAR_DATABASE_URL=database_url),
                cwd=workdir,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert admin.returncode == 0, admin.stderr
            yield {
                "api": api.replace("0.0.0.0", "127.0.0.1"),
                "token": admin.stdout.strip().splitlines()[-1],
                "bootstrap": broker.bootstrap,
                "services": [name for name, _, _ in services],
            }
    finally:
        broker.stop()


def test_compose_starts_every_role(topology: dict[str, Any]) -> None:
    roles = {name.rsplit("-", 1)[0] for name in topology["services"]}
    assert {"migrate", "api", "relay", "projector", "ingest"} <= roles


async def _promotions_of(bootstrap: str, model: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        REGISTRY_PROMOTIONS.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        found: list[dict[str, Any]] = []
        async with asyncio.timeout(30):
            while not found:
                batches = await consumer.getmany(timeout_ms=500)
                found += [
                    loads(r.value) for rs in batches.values() for r in rs if r.key == model.encode()
                ]
        return found
    finally:
        await consumer.stop()


def test_a_governed_promotion_shows_in_every_read_model(topology: dict[str, Any]) -> None:
    api = topology["api"]
    admin = {"Authorization": f"Bearer {topology['token']}"}
    with httpx.Client(base_url=api, headers=admin, timeout=30) as client:
        approver = client.post("/v1/admin/tokens", json={"user": "ann", "role": "approver"})
        assert approver.status_code == 201, approver.text
        policy = {"stages": {"Production": {"approvals": 1, "gates": ["lineage.datasets >= 1"]}}}
        assert client.put("/v1/policies", json=policy).status_code == 200
        assert client.post("/v1/models", json={"name": "composed"}).status_code == 201
        dataset = {"name": "loans", "version": "v1", "uri": "s3://data/loans/v1"}
        registered = client.post(
            "/v1/models/composed/versions",
            json={"source": "s3://models/composed/1", "datasets": [dataset]},
        )
        assert registered.status_code == 201, registered.text
        requested = client.post(
            "/v1/models/composed/versions/1/transition-requests", json={"stage": "Production"}
        )
        assert requested.status_code == 201 and requested.json()["state"] == "pending"
        approved = client.post(
            f"/v1/transition-requests/{requested.json()['request_id']}/approve",
            headers={"Authorization": f"Bearer {approver.json()['token']}"},
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["state"] == "applied"
        at = {"min_position": approved.json()["position"]}

        reads = {
            "current_state": client.get("/v1/versions", params={**at, "model": "composed"}),
            "approvals": client.get("/v1/approvals", params={**at, "state": "applied"}),
            "lineage": client.get("/v1/lineage", params={**at, "node": "dataset:loans@v1"}),
            "audit_trail": client.get("/v1/audit", params={**at, "model": "composed"}),
            "stage_history": client.get("/v1/models/composed/stages", params=at),
        }
    for read_model, answer in reads.items():
        assert answer.status_code == 200, f"{read_model}: {answer.text}"
    assert [v["stage"] for v in reads["current_state"].json()["versions"]] == ["Production"]
    assert "composed" in reads["approvals"].text
    assert "version:composed/1" in reads["lineage"].text
    assert "StageChanged" in reads["audit_trail"].text
    assert "Production" in reads["stage_history"].text
    promotions = asyncio.run(_promotions_of(topology["bootstrap"], "composed"))
    assert [p["to_stage"] for p in promotions] == ["Production"]
