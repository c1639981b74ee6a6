"""Replay beside projectors fed by Kafka: `registrar replay` rebuilds every read model while a real
`registrar up` (relay, Kafka-fed projector services, API) takes writes; once the writes stop and
the projectors have caught up, each read model equals a from-scratch projection of the store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from registrar_process import registrar_env, running_registrar
from sqlalchemy.ext.asyncio import AsyncEngine
from test_replay import rebuilt_from_scratch, rows_of

from registrar.projections.catalogue import READ_MODELS, read_model
from registrar.store.event_store import PostgresEventStore

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from history_generator import generate  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def caught_up(api: httpx.AsyncClient, timeout: float = 90) -> None:
    """Until every read model's projector reports the store's head (GET /v1/projections)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = (await api.get("/v1/projections")).json()
        lags = {p["name"]: p["lag"] for p in status["projections"]}
        if all(lags.get(name) == 0 for name in READ_MODELS):
            return
        assert asyncio.get_running_loop().time() < deadline, f"projectors behind: {lags}"
        await asyncio.sleep(0.2)


async def test_replay_beside_kafka_fed_projectors_loses_nothing(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    await generate(database_url, models=20, events=3_000, seed=5, batch_size=1_000)
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(tmp_path / "home"))
    with running_registrar("up", "--port", "0", env=env, cwd=tmp_path) as (url, _lines):
        async with httpx.AsyncClient(base_url=url, timeout=30) as api:
            await caught_up(api)
            stop = asyncio.Event()

            async def write(name: str) -> int:
                assert (await api.post("/v1/models", json={"name": name})).status_code == 201
                written = 0
                while not stop.is_set():
                    made = await api.post(
                        f"/v1/models/{name}/versions", json={"source": f"s3://{name}/{written}"}
                    )
                    assert made.status_code == 201, made.text
                    number = made.json()["version"]
                    staged = await api.post(
                        f"/v1/models/{name}/versions/{number}/stage", json={"stage": "Staging"}
                    )
                    assert staged.status_code == 200, staged.text
                    written += 1
                return written

            writers = [asyncio.create_task(write(f"bus-writer-{i}")) for i in range(3)]
            replayed = await asyncio.to_thread(
                subprocess.run,
                ["registrar", "replay", "--batch-size", "400"],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
            )
            await asyncio.sleep(0.5)  # a few writes after the last swap
            stop.set()
            written = sum(await asyncio.gather(*writers))
            assert replayed.returncode == 0, replayed.stderr
            for name in READ_MODELS:
                assert f"replay {name}: swapped in" in replayed.stderr
            await caught_up(api)
            staged = 0
            for i in range(3):
                listed = await api.get(
                    "/v1/versions",
                    params={"model": f"bus-writer-{i}", "stage": "Staging", "page_size": 1000},
                )
                assert listed.status_code == 200, listed.text
                staged += len(listed.json()["versions"])
    # The API answered from the projection after the swaps; now compare every read model (the
    # registrar has stopped, so nothing moves) with a projection of the whole store from scratch.
    assert staged == written > 0
    store = PostgresEventStore(engine)
    for name in READ_MODELS:
        after_swaps = await rows_of(engine, read_model(name, store).tables)
        assert await rebuilt_from_scratch(store, name) == after_swaps, name
