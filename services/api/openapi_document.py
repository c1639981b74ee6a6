"""What /openapi.json says beyond what FastAPI derives from the routes: every refusal with the body
the API really sends, the refusals any route can meet (401, 403, 413, 422), and how to
authenticate (the security schemes Swagger's Authorize button and generated clients use)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from registrar.access.permissions import OPEN_PATHS, is_mlflow_path
from registrar.api.body_limit import MAX_BODY_BYTES
from registrar.api.mlflow.answers import MlflowErrorBody
from registrar.contracts.api import ErrorBody

Responses = dict[int | str, dict[str, Any]]

DESCRIPTION = f"""\
Every change is an immutable, hash-chained event; what the routes read is built from those events.

**Authentication.** A bearer token (`registrar token create`, or `POST /v1/admin/tokens`): use
*Authorize*. The MLflow client may send basic auth instead, the token's user as username and the
token as password. A server listening on loopback and started without `--auth` needs no token:
every caller is an admin, named by the `X-Registrar-Actor` header.

**Refusals.** Under `/v1` every refusal is `{{"error": {{"code", "message", "fields"?}}}}`
(`ErrorBody`); on MLflow's paths it is MLflow's `{{"error_code", "message"}}` (`MlflowErrorBody`).
A request body over {MAX_BODY_BYTES // (1024 * 1024)} MiB is refused with 413.
"""

SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token from `registrar token create` or POST /v1/admin/tokens",
    },
    "basicAuth": {
        "type": "http",
        "scheme": "basic",
        "description": "The token's user as username, the token as password (the MLflow client's"
        " MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD)",
    },
}

_WHY = {
    400: "Invalid: a missing or wrong parameter (INVALID_PARAMETER_VALUE), or the name is taken"
    " (RESOURCE_ALREADY_EXISTS)",
    401: "No valid token (authentication is on: `--auth`, or any address but loopback)",
    403: "The token's role, or ownership of the model, does not allow this (or the promotion"
    " policy names another approver role)",
    404: "Not found: nothing by that name or id, or it was renamed or deleted",
    409: "Conflict: the registry's state refuses the change (e.g. the name is taken, the version"
    " is deleted)",
    413: f"The request body is larger than {MAX_BODY_BYTES:,} bytes, the most the API reads",
    416: "The Range asked for lies outside the file",
    422: "Invalid: the body, a parameter or a header is wrong; `fields` names each",
    503: "The read model has not caught up within the wait, or has halted: retry shortly",
}
_WRITES = frozenset({"post", "put", "patch", "delete"})
_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
"""FastAPI's own 422 body, which this API never sends: replaced by ErrorBody."""


def refusals(*statuses: int) -> Responses:
    """A route's `responses=`: the refusals it can answer with besides 401, 403, 413 and 422,
    which `completed` adds where they apply. `completed` also gives each its body."""
    return {status: {"description": _WHY[status]} for status in statuses}


def completed(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` (FastAPI's document) with each error response's real body, the refusals every
    route can meet, and the security schemes, required on all but the open paths."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    bodies = {mlflow: _add_model(schemas, model) for mlflow, model in _ERROR_MODELS.items()}
    components["securitySchemes"] = SECURITY_SCHEMES
    schema["security"] = [{name: []} for name in SECURITY_SCHEMES]
    for path, operations in schema.get("paths", {}).items():
        mlflow = is_mlflow_path(path)
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if path in OPEN_PATHS:
                operation["security"] = []
            else:
                responses.setdefault("401", {})
                responses.setdefault("403", {})
            if method in _WRITES:
                responses.setdefault("413", {})
                if not mlflow:  # every write reads headers that may be malformed (context.py)
                    responses.setdefault("422", {})
            for code, response in responses.items():
                if code[0] in "45":
                    _as_refusal(response, int(code), bodies[mlflow])
            operation["responses"] = dict(sorted(responses.items()))
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    return schema


_ERROR_MODELS: dict[bool, type[BaseModel]] = {False: ErrorBody, True: MlflowErrorBody}
"""The refusal body by whether the path is MLflow's."""


def _as_refusal(response: dict[str, Any], status: int, body_ref: str) -> None:
    if response.get("description") in (None, "", "Validation Error", "Additional Response"):
        response["description"] = _WHY.get(status, "Refused")
    response["content"] = {"application/json": {"schema": {"$ref": body_ref}}}


def _add_model(schemas: dict[str, Any], model: type[BaseModel]) -> str:
    """Put `model`'s JSON schema (and those it refers to) among the document's schemas; its $ref."""
    template = "#/components/schemas/{model}"
    described = model.model_json_schema(ref_template=template, mode="serialization")
    for name, nested in described.pop("$defs", {}).items():
        schemas.setdefault(name, nested)
    schemas[model.__name__] = described
    return template.format(model=model.__name__)
