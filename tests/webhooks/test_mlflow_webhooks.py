"""MLflow's own client, unmodified, managing webhooks on a running `registrar serve`: create, list
(paged), get, update, test and delete; and the registry changes it makes delivered to a real
receiver as MLflow 3 delivers them, signed as MLflow signs, verified with MLflow's own code."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookAction, WebhookEntity, WebhookEvent, WebhookStatus
from mlflow.exceptions import MlflowException
from mlflow.webhooks.constants import (
    WEBHOOK_DELIVERY_ID_HEADER,
    WEBHOOK_SIGNATURE_HEADER,
    WEBHOOK_TIMESTAMP_HEADER,
)
from mlflow.webhooks.delivery import _generate_hmac_signature
from mlflow.webhooks.types import EVENT_TO_PAYLOAD_CLASS
from registrar_process import registrar_env, running_registrar
from webhook_receiver import Received, Receiver

SIX_EVENTS = [
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
]


@pytest.fixture(scope="module")
def registrar_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = registrar_env(
        REGISTRAR_DATABASE_URL=database_url,
        REGISTRAR_WEBHOOKS_ALLOW_PRIVATE="true",
        REGISTRAR_WEBHOOKS_SECRET_KEY=Fernet.generate_key().decode(),
    )
    cwd = Path(tmp_path_factory.mktemp("mlflow-webhooks"))
    with running_registrar("serve", "--port", "0", env=env, cwd=cwd) as (url, _):
        yield url


@pytest.fixture(scope="module")
def client(registrar_url: str) -> Iterator[MlflowClient]:
    patch = pytest.MonkeyPatch()
    patch.setenv("MLFLOW_TRACKING_URI", registrar_url)
    patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a failure fails the test at once
    yield MlflowClient(tracking_uri=registrar_url, registry_uri=registrar_url)
    patch.undo()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def verified_as_mlflow_does(delivery: Received, secret: str) -> bool:
    """The receiver's check MLflow documents: the HMAC over "{delivery id}.{timestamp}.{body}"
    that MLflow's delivery code makes, and a recent timestamp."""
    delivery_id = delivery.header(WEBHOOK_DELIVERY_ID_HEADER)
    timestamp = delivery.header(WEBHOOK_TIMESTAMP_HEADER)
    expected = _generate_hmac_signature(secret, delivery_id, timestamp, delivery.body.decode())
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and delivery.header(WEBHOOK_SIGNATURE_HEADER) == expected


def test_the_mlflow_client_creates_lists_gets_updates_tests_and_deletes_a_webhook(
    client: MlflowClient, receiver: Receiver
) -> None:
    secret = "mlflow-client-secret"
    created = client.create_webhook(
        name=unique("ci-notifier"),
        url=receiver.url,
        events=["model_version.created", "registered_model.created"],
        description="Tells CI about new versions",
        secret=secret,
    )
    assert created.status == WebhookStatus.ACTIVE and created.url == receiver.url
    assert created.events == [
        WebhookEvent(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED),
        WebhookEvent(WebhookEntity.REGISTERED_MODEL, WebhookAction.CREATED),
    ]
    assert created.description == "Tells CI about new versions"
    assert created.creation_timestamp == created.last_updated_timestamp > 0
    assert created.secret is None  # never answered

    fetched = client.get_webhook(created.webhook_id)
    assert (fetched.name, fetched.events) == (created.name, created.events)
    other = client.create_webhook(unique("other"), receiver.url, ["model_version_tag.set"])
    first_page = client.list_webhooks(max_results=1)
    assert len(first_page) == 1 and first_page.token
    second_page = client.list_webhooks(max_results=1, page_token=first_page.token)
    listed = {w.webhook_id for w in [*first_page, *second_page]}
    assert listed == {created.webhook_id, other.webhook_id}  # newest first, one a page

    updated = client.update_webhook(
        created.webhook_id, description="Now disabled", status="DISABLED"
    )
    assert updated.status == WebhookStatus.DISABLED and updated.description == "Now disabled"
    assert updated.last_updated_timestamp >= created.last_updated_timestamp
    assert updated.events == created.events  # what was not given stays

    result = client.test_webhook(created.webhook_id)
    assert result.success and result.response_status == 200 and result.response_body == "ok"
    (sent,) = receiver.received
    assert verified_as_mlflow_does(sent, secret)
    assert sent.json()["entity"] == "model_version" and sent.json()["action"] == "created"
    assert (
        sent.json()["data"]
        == EVENT_TO_PAYLOAD_CLASS[(WebhookEntity.MODEL_VERSION, WebhookAction.CREATED)].example()
    )
    chosen = WebhookEvent(WebhookEntity.REGISTERED_MODEL, WebhookAction.CREATED)
    assert client.test_webhook(created.webhook_id, event=chosen).success
    assert receiver.received[-1].json()["entity"] == "registered_model"

    for webhook in (created, other):
        client.delete_webhook(webhook.webhook_id)
    with pytest.raises(MlflowException) as missing:
        client.get_webhook(created.webhook_id)
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert created.webhook_id in str(missing.value)


def test_mlflow_refuses_what_the_registry_cannot_do_with_mlflows_errors(
    client: MlflowClient, receiver: Receiver
) -> None:
    for name, events in (("bad name!", ["model_version.created"]), ("ok", ["prompt.created"])):
        with pytest.raises(MlflowException) as refused:
            client.create_webhook(name, receiver.url, events)
        assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as scheme:
        client.create_webhook("ok", "file:///etc/passwd", ["model_version.created"])
    assert scheme.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException) as missing:
        client.delete_webhook(str(uuid.uuid4()))
    assert missing.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_registry_changes_reach_the_receiver_as_mlflow_delivers_them(
    client: MlflowClient, receiver: Receiver
) -> None:
    secret = "deliveries-secret"
    hook = client.create_webhook(unique("all-six"), receiver.url, SIX_EVENTS, secret=secret)
    name = unique("churn")
    try:
        client.create_registered_model(name, tags={"team": "risk"}, description="Churn")
        client.create_model_version(name, "s3://models/churn/1", tags={"t": "1"})
        client.set_model_version_tag(name, "1", "validated", "yes")
        client.delete_model_version_tag(name, "1", "validated")
        client.set_registered_model_alias(name, "champion", "1")
        client.delete_registered_model_alias(name, "champion")

        receiver.wait_for(lambda r: len(r.deliveries(WEBHOOK_DELIVERY_ID_HEADER)) == 6)
        time.sleep(0.3)  # nothing more comes
        delivered = list(receiver.deliveries(WEBHOOK_DELIVERY_ID_HEADER).values())
        assert len(receiver.received) == 6
        bodies = [d.json() for d in delivered]
        assert sorted(f"{b['entity']}.{b['action']}" for b in bodies) == sorted(SIX_EVENTS)
        data = {f"{b['entity']}.{b['action']}": b["data"] for b in bodies}
        assert data["registered_model.created"] == {
            "name": name,
            "tags": {"team": "risk"},
            "description": "Churn",
        }
        assert data["model_version.created"] == {
            "name": name,
            "version": "1",
            "source": "s3://models/churn/1",
            "run_id": None,
            "tags": {"t": "1"},
            "description": None,
        }
        assert data["model_version_tag.set"] == {
            "name": name,
            "version": "1",
            "key": "validated",
            "value": "yes",
        }
        assert data["model_version_tag.deleted"] == {
            "name": name,
            "version": "1",
            "key": "validated",
        }
        assert data["model_version_alias.created"] == {
            "name": name,
            "alias": "champion",
            "version": "1",
        }
        assert data["model_version_alias.deleted"] == {"name": name, "alias": "champion"}
        for delivery, body in zip(delivered, bodies, strict=True):
            assert verified_as_mlflow_does(delivery, secret)
            entity, action = WebhookEntity(body["entity"]), WebhookAction(body["action"])
            shape = EVENT_TO_PAYLOAD_CLASS[(entity, action)]
            assert set(body["data"]) == shape.__required_keys__ | shape.__optional_keys__
            assert body["timestamp"].endswith("+00:00")
            uuid.UUID(delivery.header(WEBHOOK_DELIVERY_ID_HEADER))
    finally:
        client.delete_webhook(hook.webhook_id)
