"""What every route needs from the request: the running registry, the caller, and the ids that
make a retried request idempotent and tie events to it.

Read straight from the request rather than as FastAPI dependencies and header parameters: solving
those was a fifth of a request's CPU. The headers are documented in OpenAPI by `document_headers`.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import HTTPException, Request

from registrar.access.principal import ANONYMOUS, PRINCIPAL_SCOPE_KEY, Principal
from registrar.access.tokens import basic_user
from registrar.commands.command_handler import CommandMeta, Outcome
from registrar.contracts.commands import Command
from registrar.contracts.identifiers import uuid7
from registrar.contracts.values import Role
from registrar.registry import Registry

ACTOR_HEADER = "x-registrar-actor"
IDEMPOTENCY_HEADER = "idempotency-key"
CORRELATION_HEADER = "x-correlation-id"

HEADERS = {
    "X-Registrar-Actor": "Who is acting, recorded on every event, when authentication is off"
    " (with it on, the token's user is)",
    "Idempotency-Key": "A UUID: retrying a request with the same key changes nothing twice",
    "X-Correlation-Id": "A UUID copied onto the events this request produces",
}


def registry_of(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def _uuid_header(request: Request, name: str) -> UUID | None:
    value = request.headers.get(name)
    if value is None:
        return None
    try:
        return UUID(value)
    except ValueError:
        raise HTTPException(422, f"header {name}: {value!r} is not a UUID") from None


def command_meta(request: Request) -> CommandMeta:
    """The caller's meta: with authentication on, the token's user and role; off, whoever
    X-Registrar-Actor (or the basic-auth username) names, as admin."""
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    if principal is not None:
        actor, role = principal.user, principal.role
    else:
        named = request.headers.get(ACTOR_HEADER)
        if named is None:
            named = basic_user(request.headers.get("authorization")) or ANONYMOUS
        actor = named
        role = Role.ADMIN
    if not actor or len(actor) > 256:
        raise HTTPException(422, f"header {ACTOR_HEADER}: 1 to 256 characters")
    key = _uuid_header(request, IDEMPOTENCY_HEADER)
    return CommandMeta(
        actor=actor,
        command_id=key or uuid7(),
        correlation_id=_uuid_header(request, CORRELATION_HEADER),
        role=role,
        chosen_by_caller=key is not None,
    )


def document_headers(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the request headers to every write operation of an OpenAPI document."""
    parameters = [
        {
            "name": name,
            "in": "header",
            "required": False,
            "description": text,
            "schema": {"type": "string"},
        }
        for name, text in HEADERS.items()
    ]
    for operations in schema.get("paths", {}).values():
        for method, operation in operations.items():
            if method in ("post", "put", "patch", "delete"):
                operation.setdefault("parameters", []).extend(parameters)
    return schema


async def handle(request: Request, command: Command, part: int = 0) -> Outcome:
    """Handle `command` for the caller of `request`, with its idempotency and correlation ids.
    `part` tells apart the commands of a request that makes several (e.g. describe and rename)."""
    meta = command_meta(request).part(part)
    return await registry_of(request).commands.handle(command, meta)
