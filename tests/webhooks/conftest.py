"""The API in this process with webhooks configured for tests (private targets allowed, quick
retries); the tests start and stop dispatchers themselves (webhook_dispatching.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from cryptography.fernet import Fernet
from fastapi import FastAPI

from registrar.api.app import create_app
from registrar.registry import Registry
from registrar.webhooks.config import WebhookConfig


@pytest.fixture(scope="module")
def webhook_config() -> WebhookConfig:
    return WebhookConfig(
        allow_private=True,
        secret_key=Fernet.generate_key().decode(),
        max_failures=1000,
        timeout_seconds=30.0,
        retry_first_seconds=0.05,
        retry_max_seconds=0.4,
    )


@pytest.fixture(scope="module")
async def webhook_app(
    database_url: str, webhook_config: WebhookConfig
) -> AsyncIterator[tuple[Registry, httpx.AsyncClient, FastAPI]]:
    app = create_app(database_url, query_wait_seconds=10)
    app.state.webhook_config = webhook_config
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            yield app.state.registry, client, app


@pytest.fixture
def api(webhook_app: tuple[Registry, httpx.AsyncClient, FastAPI]) -> httpx.AsyncClient:
    return webhook_app[1]


@pytest.fixture
def registry(webhook_app: tuple[Registry, httpx.AsyncClient, FastAPI]) -> Registry:
    return webhook_app[0]


@pytest.fixture
def app(webhook_app: tuple[Registry, httpx.AsyncClient, FastAPI]) -> FastAPI:
    return webhook_app[2]
