"""A webhook's secret is answered once (when Registrar generates it) and never again: not by any
API, not in the events (so not on the bus nor in the audit trail), only encrypted at rest and
erased with the webhook. Targets on loopback, private or link-local networks are refused unless
allowed, when the webhook is made and again at every connection."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from webhook_dispatching import dispatching
from webhook_receiver import Receiver

from registrar.bus.relay import event_message
from registrar.contracts.envelope import Envelope
from registrar.registry import Registry
from registrar.webhooks.config import WebhookConfig
from registrar.webhooks.secret_box import SecretBox
from registrar.webhooks.sending import WebhookClient

pytestmark = pytest.mark.asyncio(loop_scope="session")

MLFLOW = "/api/2.0/mlflow/webhooks"


def name() -> str:
    return f"hook-{uuid.uuid4().hex[:8]}"


async def webhook_events(registry: Registry) -> list[Envelope]:
    """Every event of every webhook stream, as the store keeps them."""
    async with registry.engine.connect() as conn:
        streams = await conn.execute(
            text("SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'webhook:%'")
        )
        stream_ids = list(streams.scalars())
    return [e for stream in stream_ids for e in await registry.store.read_stream(stream)]


async def test_a_secret_is_answered_once_and_kept_only_encrypted(
    api: httpx.AsyncClient, registry: Registry, webhook_config: WebhookConfig
) -> None:
    url = "http://127.0.0.1:9/hook"
    generated = await api.post("/v1/webhooks", json={"name": name(), "url": url, "events": ["*"]})
    assert generated.status_code == 201, generated.text
    native = generated.json()
    first_secret = native["secret"]
    assert first_secret.startswith("whsec_") and native["has_secret"] is True
    chosen = "a-secret-the-caller-chose"
    mlflow = await api.post(
        MLFLOW,
        json={
            "name": name(),
            "url": url,
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}],
            "secret": chosen,
        },
    )
    assert mlflow.status_code == 200, mlflow.text
    mlflow_id = mlflow.json()["webhook"]["webhook_id"]
    rotated = await api.patch(f"/v1/webhooks/{native['webhook_id']}", json={"rotate_secret": True})
    assert rotated.status_code == 200, rotated.text
    second_secret = rotated.json()["secret"]
    assert second_secret not in (None, first_secret)
    replaced = await api.patch(f"{MLFLOW}/{mlflow_id}", json={"secret": "replaced-secret"})
    assert replaced.status_code == 200 and "secret" not in replaced.text
    secrets = [first_secret, second_secret, chosen, "replaced-secret"]

    answers = [
        await api.get("/v1/webhooks"),
        await api.get(f"/v1/webhooks/{native['webhook_id']}"),
        await api.get(f"/v1/webhooks/{mlflow_id}"),
        await api.get(MLFLOW),
        await api.get(f"{MLFLOW}/{mlflow_id}"),
        await api.get(f"/v1/webhooks/{native['webhook_id']}/deliveries"),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert not any(secret in answer.text for secret in secrets), answer.text
    assert "secret" not in (await api.get(f"/v1/webhooks/{mlflow_id}")).json()

    stored = await webhook_events(registry)
    assert {e.type for e in stored} >= {"WebhookCreated", "WebhookUpdated"}
    for envelope in stored:  # as stored, and as the relay would publish it
        _, published, _ = event_message(envelope)
        for secret in secrets:
            assert secret not in str(envelope.payload) and secret.encode() not in published
    rotation = [e for e in stored if e.type == "WebhookUpdated"]
    assert all(e.payload["secret_changed"] for e in rotation)

    box = SecretBox.from_config(webhook_config)
    async with registry.engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT webhook_id, ciphertext, key_id FROM webhook_secrets"))
        ).all()
    kept = {row.webhook_id: row for row in rows}
    for webhook_id, secret in (
        (native["webhook_id"], second_secret),
        (mlflow_id, "replaced-secret"),
    ):
        assert secret not in kept[webhook_id].ciphertext
        assert box.open(kept[webhook_id].ciphertext, kept[webhook_id].key_id) == secret

    for webhook_id in (native["webhook_id"], mlflow_id):
        assert (await api.delete(f"/v1/webhooks/{webhook_id}")).status_code == 200
    async with registry.engine.connect() as conn:
        left = await conn.scalar(
            text("SELECT count(*) FROM webhook_secrets WHERE webhook_id = ANY(:ids)"),
            {"ids": [native["webhook_id"], mlflow_id]},
        )
    assert left == 0


async def test_retrying_a_create_whose_secret_was_generated_does_not_show_it_again(
    api: httpx.AsyncClient,
) -> None:
    key = str(uuid.uuid4())
    body = {"name": name(), "url": "http://127.0.0.1:9/hook", "events": ["AliasSet"]}
    first = await api.post("/v1/webhooks", json=body, headers={"Idempotency-Key": key})
    again = await api.post("/v1/webhooks", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201 and again.status_code == 409
    assert "shown only then" in again.json()["error"]["message"]
    listed = (await api.get("/v1/webhooks")).json()["webhooks"]
    assert [w["webhook_id"] for w in listed].count(first.json()["webhook_id"]) == 1
    await api.delete(f"/v1/webhooks/{first.json()['webhook_id']}")


@pytest.fixture
def private_refused(app: FastAPI, webhook_config: WebhookConfig) -> Any:
    """The API as configured without REGISTRAR_WEBHOOKS_ALLOW_PRIVATE."""
    app.state.webhook_config = replace(webhook_config, allow_private=False)
    app.state.webhook_registrations = None
    yield
    app.state.webhook_config = webhook_config
    app.state.webhook_registrations = None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10:9000/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
    ],
)
async def test_a_target_on_a_private_network_is_refused_without_the_setting(
    api: httpx.AsyncClient, private_refused: None, url: str
) -> None:
    refused = await api.post("/v1/webhooks", json={"name": name(), "url": url, "events": ["*"]})
    assert refused.status_code == 422, refused.text
    message = refused.json()["error"]["message"]
    assert "not a public address" in message and "REGISTRAR_WEBHOOKS_ALLOW_PRIVATE" in message
    mlflow = await api.post(
        MLFLOW,
        json={
            "name": name(),
            "url": url,
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}],
        },
    )
    assert mlflow.status_code == 400
    assert mlflow.json()["error_code"] == "INVALID_PARAMETER_VALUE"


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://0177.0.0.1/hook", "canonical"),
        ("http://127.1/hook", "canonical"),
        ("ftp://example.com/hook", "scheme"),
        ("http://user:pass@example.com/hook", "credentials"),
        ("http:///hook", "hostname"),
    ],
)
async def test_malformed_targets_are_refused_whatever_the_setting(
    api: httpx.AsyncClient, url: str, why: str
) -> None:
    refused = await api.post("/v1/webhooks", json={"name": name(), "url": url, "events": ["*"]})
    assert refused.status_code == 422 and why in refused.json()["error"]["message"], refused.text


async def test_a_public_address_is_accepted(api: httpx.AsyncClient, private_refused: None) -> None:
    made = await api.post(
        "/v1/webhooks", json={"name": name(), "url": "https://93.184.216.34/hook", "events": ["*"]}
    )
    assert made.status_code == 201, made.text
    await api.delete(f"/v1/webhooks/{made.json()['webhook_id']}")


async def test_the_target_is_checked_again_at_every_connection(
    api: httpx.AsyncClient, registry: Registry, webhook_config: WebhookConfig
) -> None:
    """A webhook made while private targets were allowed (or a name that resolves elsewhere by
    now) is not reached: the address connected to is the one checked."""
    receiver = Receiver().start()
    try:
        client = WebhookClient(allow_private=False, max_connections=1, timeout=5)
        for url in (receiver.url, receiver.url.replace("127.0.0.1", "localhost")):
            outcome = await client.post(url, [], b"{}")
            assert outcome.status_code is None and outcome.error is not None
            assert outcome.error.startswith("refused:") and "not a public address" in outcome.error
        await client.aclose()

        made = await api.post(
            "/v1/webhooks",
            json={"name": name(), "url": receiver.url, "events": ["ModelRegistered"]},
        )
        webhook_id = made.json()["webhook_id"]
        async with dispatching(registry, webhook_config, allow_private=False):
            await api.post("/v1/models", json={"name": f"m-{uuid.uuid4().hex[:8]}"})
            for _ in range(600):
                log = (await api.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()["deliveries"]
                if log and log[0]["log"]:
                    break
                await asyncio.sleep(0.05)
        assert log[0]["status"] == "pending" and log[0]["last_error"].startswith("refused:")
        assert receiver.received == []
        await api.delete(f"/v1/webhooks/{webhook_id}")
    finally:
        receiver.stop()
