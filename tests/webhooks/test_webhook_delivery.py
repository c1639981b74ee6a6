"""Delivering webhooks to real HTTP receivers: every delivery arrives, exactly once by its id, to a
receiver that was down for a while and across a restart of the dispatcher; signatures verify with
MLflow's own code; a slow receiver delays no other webhook and no command; a webhook that keeps
failing is disabled by an event, and resumes its queue when enabled again."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from mlflow.webhooks.delivery import _generate_hmac_signature
from sqlalchemy import text
from webhook_dispatching import dispatching
from webhook_receiver import Receiver

from registrar.registry import Registry
from registrar.webhooks.config import WebhookConfig
from registrar.webhooks.dispatcher import delivery_id

pytestmark = pytest.mark.asyncio(loop_scope="session")

DELIVERY_ID = "X-Registrar-Delivery-Id"
TIMESTAMP = "X-Registrar-Timestamp"
SIGNATURE = "X-Registrar-Signature"


async def webhook(
    api: httpx.AsyncClient, url: str, events: list[str], **more: Any
) -> dict[str, Any]:
    created = await api.post(
        "/v1/webhooks",
        json={"name": f"hook-{uuid.uuid4().hex[:8]}", "url": url, "events": events, **more},
    )
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


async def model_with_version(api: httpx.AsyncClient) -> str:
    name = f"model-{uuid.uuid4().hex[:8]}"
    assert (await api.post("/v1/models", json={"name": name})).status_code == 201
    made = await api.post(f"/v1/models/{name}/versions", json={"source": "s3://models/m/1"})
    assert made.status_code == 201, made.text
    return name


async def set_tag(api: httpx.AsyncClient, model: str, key: str) -> None:
    answer = await api.put(f"/v1/models/{model}/versions/1/tags/{key}", json={"value": "v"})
    assert answer.status_code == 200, answer.text


async def tag_event_ids(registry: Registry, model: str) -> list[uuid.UUID]:
    async with registry.engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT event_id FROM events WHERE type = 'VersionTagSet' AND stream_id ="
                " (SELECT stream_id FROM model_names WHERE name = :name) ORDER BY position"
            ),
            {"name": model},
        )
        return list(rows.scalars())


async def delivery_log(api: httpx.AsyncClient, webhook_id: str) -> list[dict[str, Any]]:
    answer = await api.get(f"/v1/webhooks/{webhook_id}/deliveries", params={"max_results": 500})
    assert answer.status_code == 200, answer.text
    return answer.json()["deliveries"]  # type: ignore[no-any-return]


async def until_logged(
    api: httpx.AsyncClient, webhook_id: str, done: Any, timeout: float = 30.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        log = await delivery_log(api, webhook_id)
        if done(log):
            return log
        assert time.monotonic() < deadline, f"the delivery log did not get there: {log}"
        await asyncio.sleep(0.05)


async def until_disabled(api: httpx.AsyncClient, webhook_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        state: dict[str, Any] = (await api.get(f"/v1/webhooks/{webhook_id}")).json()
        if state["status"] == "DISABLED":
            return state
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.05)


async def test_a_receiver_down_for_a_while_gets_every_delivery_exactly_once_across_a_restart(
    api: httpx.AsyncClient, registry: Registry, webhook_config: WebhookConfig
) -> None:
    secret = "down-then-up-secret"
    receiver = Receiver().start()
    hook = await webhook(api, receiver.url, ["VersionTagSet"], secret=secret)
    model = await model_with_version(api)
    receiver.stop()  # down
    try:
        async with dispatching(registry, webhook_config):
            for i in range(10):
                await set_tag(api, model, f"before-{i}")
            # Each tried and failed at least once while the receiver was down.
            await until_logged(
                api,
                hook["webhook_id"],
                lambda log: len(log) == 10 and all(d["attempts"] >= 1 for d in log),
            )
        # The dispatcher stopped (as a process would); more events meanwhile.
        for i in range(5):
            await set_tag(api, model, f"between-{i}")
        receiver.start()  # up again, on the same port
        async with dispatching(registry, webhook_config):
            await receiver.until(lambda r: len(r.deliveries(DELIVERY_ID)) >= 15, timeout=60)
            log = await until_logged(
                api,
                hook["webhook_id"],
                lambda log: len(log) == 15 and all(d["status"] == "delivered" for d in log),
            )
        expected = {
            str(delivery_id(hook["webhook_id"], e)) for e in await tag_event_ids(registry, model)
        }
        received = receiver.deliveries(DELIVERY_ID)
        assert set(received) == expected and len(expected) == 15
        for ident, delivery in received.items():  # verified as MLflow signs
            signed = _generate_hmac_signature(
                secret, ident, delivery.header(TIMESTAMP), delivery.body.decode()
            )
            assert delivery.header(SIGNATURE) == signed
            assert delivery.json()["type"] == "VersionTagSet" and delivery.json()["model"] == model
        first_ten = [d for d in log if d["attempts"] >= 2]
        assert len(first_ten) >= 10
        for failed in first_ten:
            assert failed["log"][0]["status_code"] is None
            assert "could not connect" in failed["log"][0]["error"]
            assert failed["log"][-1]["status_code"] == 200
    finally:
        receiver.stop()
        await api.delete(f"/v1/webhooks/{hook['webhook_id']}")


async def test_a_slow_receiver_delays_neither_another_webhook_nor_the_commands(
    api: httpx.AsyncClient, registry: Registry, webhook_config: WebhookConfig
) -> None:
    gate = threading.Event()
    slow, fast = Receiver(gate=gate).start(), Receiver().start()
    slow_hook = await webhook(api, slow.url, ["VersionTagSet"])
    fast_hook = await webhook(api, fast.url, ["VersionTagSet"])
    model = await model_with_version(api)
    try:
        async with dispatching(registry, webhook_config, max_in_flight=2):
            for i in range(20):
                await set_tag(api, model, f"k{i}")  # every command answered...
            await fast.until(lambda r: len(r.deliveries(DELIVERY_ID)) == 20)
            # ...and every delivery to the fast receiver made, while the slow one has answered
            # none of the two it holds.
            assert slow.answered == 0 and len(slow.received) <= 2
            gate.set()
            await slow.until(lambda r: len(r.deliveries(DELIVERY_ID)) == 20, timeout=60)
    finally:
        gate.set()
        slow.stop()
        fast.stop()
        for hook in (slow_hook, fast_hook):
            await api.delete(f"/v1/webhooks/{hook['webhook_id']}")


async def test_a_webhook_that_keeps_failing_is_disabled_by_an_event_and_resumes_when_enabled(
    api: httpx.AsyncClient, registry: Registry, webhook_config: WebhookConfig
) -> None:
    receiver = Receiver(status=500).start()
    hook = await webhook(api, receiver.url, ["VersionTagSet"])
    webhook_id = hook["webhook_id"]
    model = await model_with_version(api)
    try:
        async with dispatching(registry, webhook_config, max_failures=3):
            for i in range(2):
                await set_tag(api, model, f"k{i}")
            state = await until_disabled(api, webhook_id)
            assert "3 consecutive delivery attempts failed" in state["disabled_reason"]
            assert "HTTP 500" in state["disabled_reason"]
            async with registry.engine.connect() as conn:
                disabled = (
                    await conn.execute(
                        text(
                            "SELECT actor, payload::jsonb AS p FROM events"
                            " WHERE type = 'WebhookDisabled' AND stream_id = :stream"
                        ),
                        {"stream": f"webhook:{webhook_id}"},
                    )
                ).one()
            assert disabled.actor == "registrar:webhooks"
            assert disabled.p["consecutive_failures"] == 3
            assert disabled.p["last_status_code"] == 500
            log = await delivery_log(api, webhook_id)
            assert {d["status"] for d in log} == {"pending"}  # kept for later
            assert all(a["status_code"] == 500 for d in log for a in d["log"])
            tried = len(receiver.received)

            await set_tag(api, model, "while-disabled")  # disabled: not queued
            receiver.status = 200
            enabled = await api.patch(f"/v1/webhooks/{webhook_id}", json={"status": "ACTIVE"})
            assert enabled.status_code == 200 and enabled.json()["disabled_reason"] is None
            log = await until_logged(
                api, webhook_id, lambda log: all(d["status"] == "delivered" for d in log)
            )
            assert len(log) == 2 and tried == 3
    finally:
        receiver.stop()
        await api.delete(f"/v1/webhooks/{webhook_id}")


async def test_a_native_webhook_gets_the_event_types_it_names_with_the_models_name(
    api: httpx.AsyncClient, registry: Registry, webhook_config: WebhookConfig
) -> None:
    receiver = Receiver().start()
    # "DeploymentReported" need not exist yet: any event type's name is taken as it is.
    hook = await webhook(api, receiver.url, ["StageChanged", "AliasSet", "DeploymentReported"])
    model = await model_with_version(api)
    try:
        async with dispatching(registry, webhook_config):
            staged = await api.post(
                f"/v1/models/{model}/versions/1/stage", json={"stage": "Staging"}
            )
            assert staged.status_code == 200, staged.text
            aliased = await api.put(f"/v1/models/{model}/aliases/champion", json={"version": 1})
            assert aliased.status_code == 200, aliased.text
            await set_tag(api, model, "not-subscribed")
            await receiver.until(lambda r: len(r.deliveries(DELIVERY_ID)) == 2)
        bodies = sorted(
            (d.json() for d in receiver.deliveries(DELIVERY_ID).values()),
            key=lambda b: b["position"],
        )
        assert [b["type"] for b in bodies] == ["StageChanged", "AliasSet"]
        assert all(b["model"] == model for b in bodies)
        assert bodies[0]["payload"]["to_stage"] == "Staging"
        assert bodies[1]["payload"] == {**bodies[1]["payload"], "alias": "champion", "version": 1}
        assert bodies[0]["position"] == staged.json()["position"]
        assert {d.header("X-Registrar-Event") for d in receiver.received} == {
            "StageChanged",
            "AliasSet",
        }
    finally:
        receiver.stop()
        await api.delete(f"/v1/webhooks/{hook['webhook_id']}")


async def test_two_dispatchers_deliver_each_event_once(
    api: httpx.AsyncClient, registry: Registry, webhook_config: WebhookConfig
) -> None:
    receiver = Receiver().start()
    hook = await webhook(api, receiver.url, ["VersionTagSet"])
    model = await model_with_version(api)
    try:
        async with dispatching(registry, webhook_config) as first:
            second_running = dispatching(registry, webhook_config)
            second = asyncio.create_task(second_running.__aenter__())
            await asyncio.sleep(0.3)
            assert not second.done()  # standing by: the first holds the lock
            for i in range(10):
                await set_tag(api, model, f"k{i}")
            await receiver.until(lambda r: len(r.deliveries(DELIVERY_ID)) == 10)
            assert first.is_leader
            second.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await second
        assert max(receiver.copies(DELIVERY_ID).values()) == 1
    finally:
        receiver.stop()
        await api.delete(f"/v1/webhooks/{hook['webhook_id']}")
