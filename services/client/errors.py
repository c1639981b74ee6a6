"""The errors the client raises: one class per kind of refusal, each carrying the HTTP status and
the server's own message (from its `{"error": {"code", "message", "fields"}}` body)."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Registrar refused a request or could not be reached. `status` is the HTTP status (None when
    no answer came), `message` the server's explanation, `code` its short error code, `fields`
    the invalid parts of the request (`{"field": ..., "problem": ...}`) when it named them."""

    def __init__(
        self,
        status: int | None,
        message: str,
        code: str = "",
        fields: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}" if status is not None else message)
        self.status = status
        self.message = message
        self.code = code
        self.fields = fields or []


class InvalidRequest(ClientError):
    """400 or 422: the request was malformed or broke a rule; nothing changed."""


class Unauthorized(ClientError):
    """401: no token, or one that is unknown or revoked."""


class Forbidden(ClientError):
    """403: the token's role (or ownership) does not allow this."""


class NotFound(ClientError):
    """404: no such model, version, alias or request (or it was renamed or deleted)."""


class Conflict(ClientError):
    """409: the request clashes with the registry's state (a taken name, a pending approval)."""


class Unavailable(ClientError):
    """503, or no answer at all, after the client's own retries (for requests safe to retry)."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidRequest,
    503: Unavailable,
}


def error_for(status: int, body: Any, fallback: str) -> ClientError:
    """The error for an answer with `status` and decoded JSON `body` (`fallback`: the message
    when the body says none, e.g. a proxy's HTML page)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or fallback)
        code = str(error.get("code") or "")
        fields = error.get("fields")
        fields = [f for f in fields if isinstance(f, dict)] if isinstance(fields, list) else []
    elif isinstance(body, dict) and "message" in body:  # MLflow's shape, on its paths
        message, code, fields = str(body["message"]), str(body.get("error_code", "")), []
    else:
        message, code, fields = fallback, "", []
    return _BY_STATUS.get(status, ClientError)(status, message, code, fields)
