"""GET /v1/models/{name}/versions/{version}/card: a version's model card, as it stands now or as
it stood at any instant, as JSON (the structured document), Markdown or a standalone HTML page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from registrar.api.card_rendering import MEDIA_TYPES, CardFormat, rendered_card
from registrar.api.context import registry_of
from registrar.api.governance_routes import version_as_of
from registrar.api.history_routes import AsOf, instant
from registrar.api.model_routes import NamePath
from registrar.api.openapi_document import Responses, refusals
from registrar.api.responses import JSON
from registrar.api.version_routes import VersionPath
from registrar.contracts.card_document import ModelCardDocument
from registrar.domain.model_card import card_document

router = APIRouter(tags=["versions"])

RENDERED: Responses = {
    200: {
        "content": {
            media_type.split(";")[0]: {"schema": {"type": "string"}}
            for media_type in MEDIA_TYPES.values()
        },
    }
}
"""The card's text renderings in /openapi.json, beside the JSON document."""


@router.get(
    "/v1/models/{name}/versions/{version}/card",
    response_model=ModelCardDocument,
    summary="The version's model card: details, data, evaluations, risk, compliance, approvals",
    response_description="The card as JSON sections; with format=markdown or html, as that text",
    responses={**RENDERED, **refusals(404)},
)
async def model_card(
    name: NamePath,
    version: VersionPath,
    request: Request,
    card_format: Annotated[
        CardFormat,
        Query(
            alias="format",
            description="json: the structured document; markdown; html: a standalone page",
        ),
    ] = "json",
    as_of: AsOf = None,
) -> Response:
    registry = registry_of(request)
    at = instant(as_of)
    model, found, envelopes = await version_as_of(registry, name, version, at)
    policies = await registry.commands.policies.as_of(at)
    document = card_document(model, found, policies=policies, envelopes=envelopes, as_of=at)
    if card_format == "json":
        return JSON(document)
    return Response(rendered_card(document, card_format), media_type=MEDIA_TYPES[card_format])
