"""/v1/webhooks: Registrar's own webhooks, for any event type (stage and alias moves, transition
requests and decisions, evaluations, deployments, ...) or MLflow's, with their delivery log.
Admins only, as in MLflow (services/access/permissions.py): a webhook's URL may be a capability."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from registrar.api.context import command_meta, registry_of
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON, with_position
from registrar.contracts.webhooks import (
    CreateWebhook,
    DeliveriesPage,
    DeliveryStatus,
    UpdateWebhook,
    WebhookChanged,
    WebhookDeletedOut,
    WebhookFormat,
    WebhookOut,
    WebhooksPage,
    WebhookTestRequest,
    WebhookTestResult,
)
from registrar.webhooks.config import WebhookConfig
from registrar.webhooks.delivery_log import deliveries_page
from registrar.webhooks.registrations import WebhookRegistrations

router = APIRouter(tags=["webhooks"])

WebhookId = Annotated[str, Path(max_length=64, description="The webhook's id")]
_ANSWERED = tuple(WebhookOut.model_fields)


def registrations_of(request: Request) -> WebhookRegistrations:
    """The registry's webhooks, configured from the environment (REGISTRAR_WEBHOOKS_*) unless the
    app was given a WebhookConfig (app.state.webhook_config)."""
    state = request.app.state
    made: WebhookRegistrations | None = getattr(state, "webhook_registrations", None)
    store = registry_of(request).store
    if made is None or made.store is not store:
        config = getattr(state, "webhook_config", None) or WebhookConfig.from_env()
        made = state.webhook_registrations = WebhookRegistrations(store, config)
    return made


def webhook_answer(row: dict[str, Any]) -> dict[str, Any]:
    return {key: row[key] for key in _ANSWERED}


@router.post(
    "/v1/webhooks",
    status_code=201,
    response_model=WebhookChanged,
    summary="Create a webhook (a secret not given is generated and answered only here)",
    responses=refusals(409),
)
async def create_webhook(body: CreateWebhook, request: Request) -> JSON:
    changed = await registrations_of(request).create(
        command_meta(request),
        name=body.name,
        url=body.url,
        events=body.events,
        format=body.format,
        description=body.description,
        status=body.status,
        secret=body.secret,
        generate_secret=body.secret is None,
    )
    answer = {**webhook_answer(changed.webhook), "secret": changed.secret}
    return with_position(answer, changed.position, 201)


@router.get(
    "/v1/webhooks",
    response_model=WebhooksPage,
    summary="Webhooks, newest first (never their secrets)",
    responses=refusals(422),
)
async def list_webhooks(
    request: Request,
    format: Annotated[WebhookFormat | None, Query(description="Only this format's")] = None,
    max_results: Annotated[int, Query(ge=1, le=1000)] = 100,
    page_token: Annotated[str | None, Query(max_length=200)] = None,
) -> JSON:
    rows, token = await registrations_of(request).list(
        format=format, limit=max_results, page_token=page_token
    )
    return JSON({"webhooks": [webhook_answer(row) for row in rows], "next_page_token": token})


@router.get(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookOut,
    summary="A webhook, its health and how many deliveries wait",
    responses=refusals(404, 422),
)
async def get_webhook(webhook_id: WebhookId, request: Request) -> JSON:
    return JSON(webhook_answer(await registrations_of(request).get(webhook_id)))


@router.patch(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookChanged,
    summary="Change a webhook; status ACTIVE re-enables it and resumes its queue",
    responses=refusals(404, 409),
)
async def update_webhook(webhook_id: WebhookId, body: UpdateWebhook, request: Request) -> JSON:
    changed = await registrations_of(request).update(
        webhook_id,
        command_meta(request),
        name=body.name,
        url=body.url,
        events=body.events,
        description=body.description,
        status=body.status,
        secret=body.secret,
        rotate_secret=body.rotate_secret,
    )
    answer = {**webhook_answer(changed.webhook), "secret": changed.secret}
    return with_position(answer, changed.position)


@router.delete(
    "/v1/webhooks/{webhook_id}",
    response_model=WebhookDeletedOut,
    summary="Delete a webhook: its secret is erased and its waiting deliveries cancelled",
    responses=refusals(404, 409),
)
async def delete_webhook(webhook_id: WebhookId, request: Request) -> JSON:
    position = await registrations_of(request).delete(webhook_id, command_meta(request))
    return with_position({"webhook_id": webhook_id, "deleted": True}, position)


@router.post(
    "/v1/webhooks/{webhook_id}/test",
    response_model=WebhookTestResult,
    summary="Send a signed sample delivery now and answer how the receiver answered",
    responses=refusals(404, 409),
)
async def test_webhook(
    webhook_id: WebhookId, request: Request, body: WebhookTestRequest | None = None
) -> JSON:
    event = body.event if body is not None else None
    return JSON(await registrations_of(request).test(webhook_id, event))


@router.get(
    "/v1/webhooks/{webhook_id}/deliveries",
    response_model=DeliveriesPage,
    summary="The delivery log: each delivery, newest event first, with every attempt",
    responses=refusals(404, 422),
)
async def list_deliveries(
    webhook_id: WebhookId,
    request: Request,
    status: Annotated[DeliveryStatus | None, Query(description="Only these")] = None,
    max_results: Annotated[int, Query(ge=1, le=500)] = 50,
    page_token: Annotated[str | None, Query(max_length=200)] = None,
) -> JSON:
    registrations = registrations_of(request)
    await registrations.get(webhook_id)  # 404 for a webhook that is not there
    rows, token = await deliveries_page(
        registrations.store.engine,
        webhook_id,
        status=status,
        limit=max_results,
        page_token=page_token,
    )
    return JSON({"deliveries": rows, "next_page_token": token})
