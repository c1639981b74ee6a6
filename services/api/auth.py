"""Access control of the HTTP API: an ASGI middleware that authenticates every request (bearer
token, or basic auth with the token as password) with the process's AccessGuard, looks up what
the request needs in the permission table (services/access/permissions.py) by method and path,
has the guard check the caller's role (or ownership of the model), and refuses with 401 / 403:
MLflow's error body on MLflow's paths, the house error body elsewhere. Every refusal is recorded
as an event, off the request path.

Installed only when authentication is required; otherwise every caller is admin, as in MLflow,
and names itself with X-Registrar-Actor or the basic-auth username."""

from __future__ import annotations

from dataclasses import replace

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registrar.access.guard import AccessGuard, NotAuthenticated
from registrar.access.permissions import (
    Requirement,
    is_mlflow_path,
    needs_ownership_check,
    requirement,
)
from registrar.access.principal import ANONYMOUS, PRINCIPAL_SCOPE_KEY
from registrar.api.mlflow.errors import MlflowError
from registrar.api.mlflow.fields import FIELDS_SCOPE_KEY, Fields
from registrar.api.request_body import read_body, replaying
from registrar.api.responses import JSON, error

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="registrar", Basic realm="registrar"'}


class AccessControl:
    """The middleware. Open paths (health, API docs) pass untouched."""

    def __init__(self, app: ASGIApp, guard: AccessGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        need = requirement(scope["method"], scope["path"])
        if need is None:
            await self.app(scope, receive, send)
            return
        try:
            # On the web UI's paths, its session door (registrar.ui.session_door, just outside)
            # has authenticated the session cookie through this guard: checked below all the same.
            principal = scope.get(PRINCIPAL_SCOPE_KEY) or self.guard.authenticate(
                Headers(scope=scope).get("authorization")
            )
        except NotAuthenticated as refused:
            await self._refuse(scope, send, 401, ANONYMOUS, need, refused.reason)
            return
        if needs_ownership_check(principal.role, need):
            try:
                need, receive = await _with_model_name(scope, receive, need)
            except MlflowError as unreadable:
                await unreadable.response()(scope, _nothing_to_receive, send)
                return
        decision = await self.guard.authorize(principal, need)
        if not decision.allowed:
            await self._refuse(scope, send, 403, principal.user, need, decision.reason)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    async def _refuse(
        self, scope: Scope, send: Send, status: int, actor: str, need: Requirement, reason: str
    ) -> None:
        path: str = scope["path"]
        self.guard.record_refusal(actor, need, reason, scope["method"], path, status)
        response = refusal(status, path, reason)
        await response(scope, _nothing_to_receive, send)


def refusal(status: int, path: str, reason: str) -> JSON:
    """A 401 or 403 in the error shape the path's clients read."""
    headers = _CHALLENGE if status == 401 else {}
    if is_mlflow_path(path):
        code = "UNAUTHENTICATED" if status == 401 else "PERMISSION_DENIED"
        return JSON({"error_code": code, "message": reason}, status_code=status, headers=headers)
    response = error(status, "unauthenticated" if status == 401 else "permission_denied", reason)
    response.headers.update(headers)
    return response


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}


async def _with_model_name(
    scope: Scope, receive: Receive, need: Requirement
) -> tuple[Requirement, Receive]:
    """The requirement with its model's name as the handler will read it (MLflow sends it in the
    query or the JSON body), and a `receive` that replays the body read to find it. The parsed
    fields stay in the scope: the handler acts on exactly what was checked.

    Raises MlflowError when the fields cannot be read (the handler would refuse them too)."""
    if need.model is not None or not need.model_in_body:
        return need, receive
    body = await read_body(receive)
    fields = Fields.parse(scope["method"], scope.get("query_string", b""), body)
    scope[FIELDS_SCOPE_KEY] = fields
    return replace(need, model=fields.text("name")), replaying(body, receive)
