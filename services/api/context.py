"""What every route needs from the request: the running registry, the caller, and the ids that
make a retried request idempotent and tie events to it."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import Depends, Header, Request

from contracts.identifiers import uuid7
from services.command_handler import CommandMeta
from services.registry import Registry


def registry(request: Request) -> Registry:
    return request.app.state.registry  # type: ignore[no-any-return]


def command_meta(
    x_registrar_actor: Annotated[
        str, Header(max_length=256, description="Who is acting (until tokens arrive)")
    ] = "anonymous",
    idempotency_key: Annotated[
        UUID | None,
        Header(description="A UUID: retrying a request with the same key changes nothing twice"),
    ] = None,
    x_correlation_id: Annotated[UUID | None, Header()] = None,
) -> CommandMeta:
    return CommandMeta(
        actor=x_registrar_actor,
        command_id=idempotency_key or uuid7(),
        correlation_id=x_correlation_id,
    )


RegistryDep = Annotated[Registry, Depends(registry)]
MetaDep = Annotated[CommandMeta, Depends(command_meta)]
