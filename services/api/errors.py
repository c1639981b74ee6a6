"""Turning every refusal into a 4xx whose body says what was wrong: domain errors, schema errors,
malformed JSON, bad page tokens. A 500 means a bug in Registrar, never bad input."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from registrar.api.refused_input import DATABASE_ERRORS, refused_input
from registrar.api.responses import JSON, error
from registrar.domain.errors import Conflict, DomainError, Forbidden, NotFound, Unavailable
from registrar.projections.paging import BadPageToken

log = logging.getLogger("registrar.api")

_STATUS = {NotFound: 404, Conflict: 409, Forbidden: 403, Unavailable: 503}


def _fields(errors: list[Any], drop_prefix: tuple[str, ...] = ()) -> list[dict[str, str]]:
    fields = []
    for item in errors:
        loc = [str(part) for part in item.get("loc", ())]
        if loc and loc[0] in drop_prefix:
            loc = loc[1:]
        fields.append({"field": ".".join(loc) or "body", "problem": item.get("msg", "invalid")})
    return fields


def _summary(fields: list[dict[str, str]]) -> str:
    return "; ".join(f"{f['field']}: {f['problem']}" for f in fields)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSON:
        status = next((_STATUS[kind] for kind in type(exc).__mro__ if kind in _STATUS), 422)
        return error(status, exc.code, exc.message)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_: Request, exc: RequestValidationError) -> JSON:
        fields = _fields(list(exc.errors()))
        return error(422, "invalid", _summary(fields), fields)

    @app.exception_handler(ValidationError)
    async def command_invalid(_: Request, exc: ValidationError) -> JSON:
        # Raised when a path parameter (a model name, an alias) makes an invalid command.
        fields = _fields(list(exc.errors()))
        return error(422, "invalid", _summary(fields), fields)

    async def database_refused(_: Request, exc: Exception) -> JSON:
        problem = refused_input(exc)
        if problem is None:
            raise exc
        return error(422, "invalid", problem)

    for refusing in DATABASE_ERRORS:
        app.add_exception_handler(refusing, database_refused)

    @app.exception_handler(BadPageToken)
    async def bad_page_token(_: Request, exc: BadPageToken) -> JSON:
        return error(422, "invalid", str(exc), [{"field": "page_token", "problem": str(exc)}])

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSON:
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            422: "invalid",
            503: "unavailable",
        }
        return error(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))
