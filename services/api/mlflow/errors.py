"""MLflow's error answers: `{"error_code", "message"}` with the HTTP status the MLflow client
expects, for every refusal a route of this package can meet. Domain errors map by their class, so
new refusals (an approval policy, a permission) get a sensible code without a rule per message."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from registrar.api.refused_input import refused_input
from registrar.api.responses import JSON
from registrar.domain.errors import (
    Conflict,
    DomainError,
    Invalid,
    ModelNotFound,
    NotFound,
    VersionNotFound,
)
from registrar.domain.mlflow_search import BadSearch
from registrar.projections.paging import BadPageToken

RESOURCE_ALREADY_EXISTS = "RESOURCE_ALREADY_EXISTS"
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
INVALID_PARAMETER_VALUE = "INVALID_PARAMETER_VALUE"
RESOURCE_CONFLICT = "RESOURCE_CONFLICT"
PERMISSION_DENIED = "PERMISSION_DENIED"
UNAUTHENTICATED = "UNAUTHENTICATED"
TEMPORARILY_UNAVAILABLE = "TEMPORARILY_UNAVAILABLE"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"

STATUS = {
    RESOURCE_ALREADY_EXISTS: 400,
    INVALID_PARAMETER_VALUE: 400,
    RESOURCE_DOES_NOT_EXIST: 404,
    ENDPOINT_NOT_FOUND: 404,
    RESOURCE_CONFLICT: 409,
    PERMISSION_DENIED: 403,
    UNAUTHENTICATED: 401,
    TEMPORARILY_UNAVAILABLE: 503,
}
"""As mlflow.exceptions.ERROR_CODE_TO_HTTP_STATUS."""

_BY_DOMAIN_CODE = {
    "not_found": RESOURCE_DOES_NOT_EXIST,
    "conflict": RESOURCE_CONFLICT,
    "forbidden": PERMISSION_DENIED,
    "permission_denied": PERMISSION_DENIED,
    "unauthenticated": UNAUTHENTICATED,
    "unavailable": TEMPORARILY_UNAVAILABLE,
}
_BY_HTTP_STATUS = {401: UNAUTHENTICATED, 403: PERMISSION_DENIED, 404: RESOURCE_DOES_NOT_EXIST}


class MlflowError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def response(self) -> JSON:
        return JSON({"error_code": self.code, "message": self.message}, STATUS.get(self.code, 400))


def invalid(message: str) -> MlflowError:
    return MlflowError(INVALID_PARAMETER_VALUE, message)


def not_found(message: str) -> MlflowError:
    return MlflowError(RESOURCE_DOES_NOT_EXIST, message)


def _problems(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()))
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def mlflow_error_of(exc: Exception) -> MlflowError | None:
    """The MLflow error `exc` stands for; None for an unexpected exception (a bug: a 500)."""
    match exc:
        case MlflowError():
            return exc
        case ModelNotFound():
            return not_found(f"Registered Model with name={exc.name} not found")
        case VersionNotFound():
            return not_found(f"Model Version (name={exc.name}, version={exc.version}) not found")
        case NotFound():
            return not_found(exc.message)
        case Invalid():
            return invalid(exc.message)
        case Conflict():
            return MlflowError(RESOURCE_CONFLICT, exc.message)
        case DomainError():
            return MlflowError(_BY_DOMAIN_CODE.get(exc.code, INVALID_PARAMETER_VALUE), exc.message)
        case ValidationError():
            return invalid(_problems(exc))
        case BadSearch() | BadPageToken():
            return invalid(str(exc))
        case _ if (problem := refused_input(exc)) is not None:
            return invalid(problem)
        case HTTPException(status_code=503):
            return MlflowError(TEMPORARILY_UNAVAILABLE, str(exc.detail))
        case HTTPException():
            code = _BY_HTTP_STATUS.get(exc.status_code, INVALID_PARAMETER_VALUE)
            return MlflowError(code, str(exc.detail))
    return None


class MlflowRoute(APIRoute):
    """A route whose refusals are answered in MLflow's error shape, not /v1's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:
                error = mlflow_error_of(exc)
                if error is None:
                    raise
                return error.response()

        return answer
