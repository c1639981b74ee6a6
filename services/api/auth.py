"""Access control of the HTTP API, in one place: an ASGI middleware that authenticates every
request (bearer token, or basic auth with the token as password), looks up what the request needs
in the permission table (services/access/permissions.py) by method and path, checks the caller's
role (or ownership of the model), and refuses with 401 / 403: MLflow's error body on MLflow's
paths, the house error body elsewhere. Every refusal is recorded as an event, off the request path.

Installed only when authentication is required; otherwise every caller is admin, as in MLflow,
and names itself with X-Registrar-Actor or the basic-auth username."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registrar.access.administration import AccessAdministration
from registrar.access.permissions import (
    Requirement,
    is_mlflow_path,
    needs_ownership_check,
    requirement,
    verdict,
)
from registrar.access.principal import ANONYMOUS, PRINCIPAL_SCOPE_KEY
from registrar.access.refusals import RefusalRecorder
from registrar.access.token_cache import TokenCache
from registrar.access.tokens import BadCredentials, credentials_from, token_hash
from registrar.api.mlflow.errors import MlflowError
from registrar.api.mlflow.fields import FIELDS_SCOPE_KEY, Fields
from registrar.api.responses import JSON, error
from registrar.contracts.events import AccessRefused
from registrar.registry import Registry

MAX_RECORDED_PATH = 1000
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="registrar", Basic realm="registrar"'}


class AccessGuard:
    """One API process's access control: its token cache and its refusal recorder."""

    def __init__(self, refresh_seconds: float = 5.0) -> None:
        self.refresh_seconds = refresh_seconds
        self._running: tuple[TokenCache, RefusalRecorder, AccessAdministration] | None = None

    @contextlib.asynccontextmanager
    async def running(self, registry: Registry) -> AsyncIterator[None]:
        """Load the tokens, then keep them fresh and record refusals until the block ends."""
        cache = TokenCache(registry.engine, self.refresh_seconds)
        await cache.reload()
        recorder = RefusalRecorder(registry.store)
        self._running = (cache, recorder, AccessAdministration(registry.store))
        tasks = [
            asyncio.create_task(cache.run(), name="access-tokens"),
            asyncio.create_task(recorder.run(), name="access-refusals"),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            with contextlib.suppress(Exception):
                await asyncio.wait_for(recorder.flush(), 5)
            self._running = None

    @property
    def cache(self) -> TokenCache:
        return self._parts()[0]

    @property
    def refusals(self) -> RefusalRecorder:
        return self._parts()[1]

    @property
    def administration(self) -> AccessAdministration:
        return self._parts()[2]

    def _parts(self) -> tuple[TokenCache, RefusalRecorder, AccessAdministration]:
        if self._running is None:
            raise RuntimeError("access control is not running (start the app's lifespan)")
        return self._running


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
        authorization = Headers(scope=scope).get("authorization")
        try:
            credentials = credentials_from(authorization)
        except BadCredentials as bad:
            await self._refuse(scope, send, 401, ANONYMOUS, need, str(bad))
            return
        if credentials is None:
            reason = "no token: send 'Authorization: Bearer <token>' (MLFLOW_TRACKING_TOKEN)"
            await self._refuse(scope, send, 401, ANONYMOUS, need, reason)
            return
        principal = self.guard.cache.principal(token_hash(credentials.token))
        if principal is None:
            reason = "the token is unknown or revoked"
            await self._refuse(scope, send, 401, ANONYMOUS, need, reason)
            return
        if credentials.claimed_user is not None and credentials.claimed_user != principal.user:
            reason = f"the token is not {credentials.claimed_user!r}'s"
            await self._refuse(scope, send, 401, ANONYMOUS, need, reason)
            return
        owns = False
        if needs_ownership_check(principal.role, need):
            try:
                need, receive = await _with_model_name(scope, receive, need)
            except MlflowError as unreadable:
                await unreadable.response()(scope, _nothing_to_receive, send)
                return
            if need.model is not None:
                owns = await self.guard.administration.owns(principal.user, need.model)
        decision = verdict(principal.user, principal.role, need, owns)
        if not decision.allowed:
            await self._refuse(scope, send, 403, principal.user, need, decision.reason)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    async def _refuse(
        self, scope: Scope, send: Send, status: int, actor: str, need: Requirement, reason: str
    ) -> None:
        path: str = scope["path"]
        self.guard.refusals.record(
            AccessRefused(
                actor=actor,
                action=need.action.value,
                reason=reason,
                method=scope["method"],
                path=path[:MAX_RECORDED_PATH],
                status=401 if status == 401 else 403,
                model=need.model or "",
            )
        )
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
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    fields = Fields.parse(scope["method"], scope.get("query_string", b""), body)
    scope[FIELDS_SCOPE_KEY] = fields
    return replace(need, model=fields.text("name")), replay
