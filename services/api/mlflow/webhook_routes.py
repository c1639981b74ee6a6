"""MLflow 3's webhook endpoints (mlflow/protos/webhooks_pb2 WebhookService; the client's calls in
mlflow/store/model_registry/rest_store.py): create, list, get, update, delete and test, with
MLflow's entity shapes, field semantics and errors (mlflow/server/handlers.py `_create_webhook`
...). They see the webhooks in MLflow's format; /v1/webhooks sees every webhook."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import Field

from registrar.api.context import command_meta
from registrar.api.mlflow.answers import MlflowAnswer
from registrar.api.mlflow.errors import MlflowRoute, invalid, not_found
from registrar.api.mlflow.fields import Fields
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON
from registrar.api.webhook_routes import registrations_of
from registrar.contracts.webhooks import ACTIVE, DISABLED, WebhookStatus
from registrar.webhooks.registrations import WebhookRegistrations

router = APIRouter(route_class=MlflowRoute, tags=["mlflow"])

WEBHOOKS = "/mlflow/webhooks"
"""Under each of MLflow's prefixes (services/api/mlflow/routes.py includes this router twice)."""
_ENTITIES = (
    "REGISTERED_MODEL",
    "MODEL_VERSION",
    "MODEL_VERSION_TAG",
    "MODEL_VERSION_ALIAS",
    "PROMPT",
    "PROMPT_VERSION",
    "PROMPT_TAG",
    "PROMPT_VERSION_TAG",
    "PROMPT_ALIAS",
    "BUDGET_POLICY",
)
"""WebhookEntity's values in proto order (1, 2, ...): JSON may give the name or the number."""
_ACTIONS = ("CREATED", "UPDATED", "DELETED", "SET", "EXCEEDED")
_STATUSES: tuple[WebhookStatus, ...] = (ACTIVE, DISABLED)


class MlflowWebhookEvent(MlflowAnswer):
    entity: str = Field(description="e.g. MODEL_VERSION")
    action: str = Field(description="e.g. CREATED")


class MlflowWebhook(MlflowAnswer):
    webhook_id: str
    name: str
    description: str
    url: str
    events: list[MlflowWebhookEvent]
    status: str = Field(description="ACTIVE or DISABLED")
    creation_timestamp: int = Field(description="Milliseconds since the epoch")
    last_updated_timestamp: int


class WebhookAnswer(MlflowAnswer):
    webhook: MlflowWebhook


class WebhooksAnswer(MlflowAnswer):
    webhooks: list[MlflowWebhook]
    next_page_token: str | None = None


class MlflowTestResult(MlflowAnswer):
    success: bool
    response_status: int | None = None
    response_body: str | None = None
    error_message: str | None = None


class WebhookTestAnswer(MlflowAnswer):
    result: MlflowTestResult


class Empty(MlflowAnswer):
    pass


def _enum(value: Any, names: tuple[str, ...], what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= len(names):
        return names[value - 1]
    if isinstance(value, str) and value.upper() in names:
        return value.upper()
    raise invalid(f"Invalid webhook {what} {value!r}: expected one of {', '.join(names)}")


def _event_name(event: Any) -> str:
    """{"entity": "MODEL_VERSION", "action": "CREATED"} as "model_version.created"."""
    if isinstance(event, str) and "." in event:
        return event
    if not isinstance(event, dict):
        raise invalid(f"each webhook event must be an {{entity, action}} object, got {event!r}")
    entity = _enum(event.get("entity"), _ENTITIES, "entity").lower()
    action = _enum(event.get("action"), _ACTIONS, "action").lower()
    return f"{entity}.{action}"


def _events(fields: Fields) -> list[str] | None:
    value = fields.values.get("events")
    if value is None or value == []:
        return None
    if not isinstance(value, list):
        raise invalid(f"parameter 'events' must be a list of events, got {value!r}")
    return [_event_name(event) for event in value]


def _status(fields: Fields) -> WebhookStatus | None:
    value = fields.values.get("status")
    if value is None:
        return None
    status = _enum(value, _STATUSES, "status")
    return ACTIVE if status == ACTIVE else DISABLED


def _millis(row: dict[str, Any], key: str) -> int:
    return int(row[key].timestamp() * 1000)


def mlflow_webhook(row: dict[str, Any]) -> dict[str, Any]:
    """As Webhook.to_proto() renders it (mlflow/entities/webhook.py)."""
    return {
        "webhook_id": row["webhook_id"],
        "name": row["name"],
        "description": row["description"],
        "url": row["url"],
        "events": [
            {"entity": entity.upper(), "action": action.upper()}
            for entity, _, action in (name.partition(".") for name in row["events"])
        ],
        "status": row["status"],
        "creation_timestamp": _millis(row, "created_at"),
        "last_updated_timestamp": _millis(row, "updated_at"),
    }


async def _mlflow_webhook(webhooks: WebhookRegistrations, webhook_id: str) -> dict[str, Any]:
    row = await webhooks.get(webhook_id)
    if row["format"] != "mlflow":
        raise not_found(
            f"Webhook with ID {webhook_id} is in Registrar's format, not MLflow's: manage it"
            f" at /v1/webhooks/{webhook_id}"
        )
    return row


@router.post(
    WEBHOOKS,
    response_model=WebhookAnswer,
    summary="MLflow POST webhooks (create)",
    responses=refusals(400),
)
async def create_webhook(request: Request) -> JSON:
    fields = await Fields.of(request)
    name, url = fields.required("name"), fields.required("url")
    events = _events(fields)
    if events is None:
        fields.required("events")
        events = []
    changed = await registrations_of(request).create(
        command_meta(request),
        name=name,
        url=url,
        events=events,
        format="mlflow",
        description=fields.text("description") or "",
        status=_status(fields) or ACTIVE,
        secret=fields.text("secret") or None,
    )
    return JSON({"webhook": mlflow_webhook(changed.webhook)})


@router.get(
    WEBHOOKS,
    response_model=WebhooksAnswer,
    summary="MLflow GET webhooks (list, newest first)",
    responses=refusals(400),
)
async def list_webhooks(request: Request) -> JSON:
    fields = await Fields.of(request)
    rows, token = await registrations_of(request).list(
        format="mlflow",
        limit=fields.integer("max_results", 100, 1, 1000),
        page_token=fields.text("page_token") or None,
    )
    answer: dict[str, Any] = {"webhooks": [mlflow_webhook(row) for row in rows]}
    if token is not None:
        answer["next_page_token"] = token
    return JSON(answer)


@router.get(
    WEBHOOKS + "/{webhook_id}",
    response_model=WebhookAnswer,
    summary="MLflow GET webhooks/{webhook_id}",
    responses=refusals(404),
)
async def get_webhook(webhook_id: str, request: Request) -> JSON:
    row = await _mlflow_webhook(registrations_of(request), webhook_id)
    return JSON({"webhook": mlflow_webhook(row)})


@router.patch(
    WEBHOOKS + "/{webhook_id}",
    response_model=WebhookAnswer,
    summary="MLflow PATCH webhooks/{webhook_id} (update the fields given)",
    responses=refusals(400, 404),
)
async def update_webhook(webhook_id: str, request: Request) -> JSON:
    fields = await Fields.of(request)
    webhooks = registrations_of(request)
    await _mlflow_webhook(webhooks, webhook_id)
    given = fields.values
    changed = await webhooks.update(
        webhook_id,
        command_meta(request),
        name=fields.text("name") or None,
        url=fields.text("url") or None,
        events=_events(fields),
        # As MLflow: a description or secret given, even "", is set ("" removes the secret).
        description=fields.text("description", "") if "description" in given else None,
        status=_status(fields),
        secret=fields.text("secret", "") if "secret" in given else None,
    )
    return JSON({"webhook": mlflow_webhook(changed.webhook)})


@router.delete(
    WEBHOOKS + "/{webhook_id}",
    response_model=Empty,
    summary="MLflow DELETE webhooks/{webhook_id}",
    responses=refusals(404),
)
async def delete_webhook(webhook_id: str, request: Request) -> JSON:
    webhooks = registrations_of(request)
    await _mlflow_webhook(webhooks, webhook_id)
    await webhooks.delete(webhook_id, command_meta(request))
    return JSON({})


@router.post(
    WEBHOOKS + "/{webhook_id}/test",
    response_model=WebhookTestAnswer,
    summary="MLflow POST webhooks/{webhook_id}/test (send a signed example payload now)",
    responses=refusals(400, 404),
)
async def test_webhook(webhook_id: str, request: Request) -> JSON:
    fields = await Fields.of(request)
    webhooks = registrations_of(request)
    await _mlflow_webhook(webhooks, webhook_id)
    event = fields.values.get("event")
    tested = await webhooks.test(webhook_id, _event_name(event) if event else None)
    keys = ("success", "response_status", "response_body", "error_message")
    return JSON({"result": {key: tested[key] for key in keys if tested[key] is not None}})
