"""Webhooks: the events of a webhook's stream (`webhook:<id>`), the /v1/webhooks request and
answer bodies, and the names MLflow's webhooks use for events, headers and statuses.

A webhook's signing secret is never in these: not in its events (they go on the bus and into the
audit trail), not in any answer but the one that creates or rotates a generated secret."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final, Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from registrar.contracts.values import Frozen, StorableText

# Names ---------------------------------------------------------------------------------------

ACTIVE: Final = "ACTIVE"
DISABLED: Final = "DISABLED"
WebhookStatus = Literal["ACTIVE", "DISABLED"]
"""As MLflow's WebhookStatus (mlflow/entities/webhook.py)."""

WebhookFormat = Literal["registrar", "mlflow"]
"""What a webhook's deliveries look like: "registrar" sends each event as it is published on
registry.events (plus the model's name), "mlflow" sends MLflow 3's webhook payloads."""

MLFLOW_EVENTS = (
    "registered_model.created",
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)
"""The MLflow webhook events of a model registry (mlflow/entities/webhook.py WebhookEventStr,
without the prompt registry's and the AI gateway's, which Registrar has not)."""

ALL_EVENTS = "*"
"""A native subscription to every event, of any type, including types added later."""

SIGNATURE_VERSION = "v1"
MLFLOW_HEADERS = ("X-MLflow-Delivery-Id", "X-MLflow-Timestamp", "X-MLflow-Signature")
"""(delivery id, timestamp, signature) headers of an MLflow-format delivery
(mlflow/webhooks/constants.py)."""
REGISTRAR_HEADERS = ("X-Registrar-Delivery-Id", "X-Registrar-Timestamp", "X-Registrar-Signature")
"""The same three of a native delivery; the signature is computed the same way."""
EVENT_TYPE_HEADER = "X-Registrar-Event"
ATTEMPT_HEADER = "X-Registrar-Attempt"


def webhook_stream(webhook_id: str) -> str:
    """The stream of a webhook's registration, changes and disabling."""
    return f"webhook:{webhook_id}"


# Events --------------------------------------------------------------------------------------


class WebhookCreated(Frozen):
    type: Literal["WebhookCreated"] = "WebhookCreated"
    webhook_id: str
    name: str
    description: str = ""
    url: str
    events: list[str]
    format: WebhookFormat
    status: WebhookStatus = "ACTIVE"
    has_secret: bool = Field(description="Deliveries are signed; the secret is kept elsewhere")


class WebhookUpdated(Frozen):
    """Fields given changed (None: unchanged); `secret_changed`: the secret was set, replaced or
    removed (`has_secret` says which), its value kept out of the event."""

    type: Literal["WebhookUpdated"] = "WebhookUpdated"
    webhook_id: str
    name: str | None = None
    description: str | None = None
    url: str | None = None
    events: list[str] | None = None
    status: WebhookStatus | None = None
    secret_changed: bool = False
    has_secret: bool | None = None


class WebhookDisabled(Frozen):
    """Registrar disabled the webhook: its deliveries failed `consecutive_failures` times in a
    row. Re-enable it (status ACTIVE) to resume its queued deliveries."""

    type: Literal["WebhookDisabled"] = "WebhookDisabled"
    webhook_id: str
    reason: str
    consecutive_failures: int
    last_status_code: int | None = None
    last_error: str = ""


class WebhookDeleted(Frozen):
    type: Literal["WebhookDeleted"] = "WebhookDeleted"
    webhook_id: str


WebhookEvent = Annotated[
    WebhookCreated | WebhookUpdated | WebhookDisabled | WebhookDeleted,
    Field(discriminator="type"),
]

WEBHOOK_EVENT_TYPES: dict[str, type[Frozen]] = {
    cls.model_fields["type"].default: cls for cls in get_args(get_args(WebhookEvent)[0])
}
"""Not model-stream events (not in registrar.contracts.events.Event): the model projections
leave them out."""

webhook_event_adapter: TypeAdapter[WebhookEvent] = TypeAdapter(WebhookEvent)


def webhook_event_from_payload(event_type: str, payload: dict[str, object]) -> WebhookEvent:
    cls = WEBHOOK_EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    return cls.model_validate({"type": event_type, **payload})  # type: ignore[return-value]


# Requests ------------------------------------------------------------------------------------

WebhookName = Annotated[str, Field(min_length=1, max_length=63)]
WebhookUrl = Annotated[str, Field(min_length=1, max_length=2048)]
WebhookSecret = Annotated[str, Field(min_length=1, max_length=1024)]
EventNames = Annotated[list[Annotated[str, Field(max_length=128)]], Field(min_length=1)]


class _Body(StorableText):
    model_config = ConfigDict(extra="forbid")


class CreateWebhook(_Body):
    name: WebhookName = Field(description="Letters, digits, . _ - ; starts and ends with one")
    url: WebhookUrl = Field(description="http(s) URL the deliveries are POSTed to")
    events: EventNames = Field(
        description='Event types ("StageChanged", "AliasSet", ... or "*" for all) for the'
        ' registrar format; MLflow event names ("model_version.created", ...) for the mlflow one'
    )
    description: str = Field(default="", max_length=1000)
    format: WebhookFormat = "registrar"
    status: WebhookStatus = "ACTIVE"
    secret: WebhookSecret | None = Field(
        default=None,
        description="The HMAC signing secret; absent: Registrar generates one and answers it once",
    )


class UpdateWebhook(_Body):
    name: WebhookName | None = None
    url: WebhookUrl | None = None
    events: EventNames | None = None
    description: str | None = Field(default=None, max_length=1000)
    status: WebhookStatus | None = Field(
        default=None, description="ACTIVE re-enables a disabled webhook and resumes its queue"
    )
    secret: WebhookSecret | None = Field(default=None, description="Replace the secret")
    rotate_secret: bool = Field(
        default=False, description="Replace the secret with a generated one, answered once"
    )


class WebhookTestRequest(_Body):
    event: str | None = Field(
        default=None,
        max_length=128,
        description="The event to send a sample of (default: the webhook's first)",
    )


# Answers -------------------------------------------------------------------------------------


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WebhookOut(_Answer):
    webhook_id: str
    name: str
    description: str
    url: str
    events: list[str]
    format: WebhookFormat
    status: WebhookStatus
    disabled_reason: str | None = Field(description="Why Registrar disabled it, if it did")
    has_secret: bool
    created_at: datetime
    created_by: str
    updated_at: datetime
    consecutive_failures: int = Field(description="Failed attempts since the last success")
    last_success_at: datetime | None
    last_failure_at: datetime | None
    pending_deliveries: int


class WebhooksPage(_Answer):
    webhooks: list[WebhookOut]
    next_page_token: str | None


class WebhookChanged(WebhookOut):
    position: int = Field(description="The global position of the change's event")
    secret: str | None = Field(
        default=None, description="The generated secret: answered this once, never again"
    )


class WebhookDeletedOut(_Answer):
    webhook_id: str
    deleted: Literal[True] = True
    position: int


class WebhookTestResult(_Answer):
    """As MLflow's WebhookTestResult, plus the delivery's id and latency."""

    success: bool
    response_status: int | None
    response_body: str | None = Field(description="At most the first 10,000 characters")
    error_message: str | None
    delivery_id: UUID
    latency_ms: float | None


class AttemptOut(_Answer):
    attempt: int
    started_at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None


DeliveryStatus = Literal["pending", "delivered", "failed", "cancelled"]


class DeliveryOut(_Answer):
    delivery_id: UUID = Field(description="The same on every attempt: receivers deduplicate on it")
    event_id: UUID
    event_type: str = Field(description="Registrar's event type, or the MLflow event's name")
    position: int
    status: DeliveryStatus
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    log: list[AttemptOut] = Field(description="Each attempt: when, status code, latency, error")


class DeliveriesPage(_Answer):
    deliveries: list[DeliveryOut]
    next_page_token: str | None
