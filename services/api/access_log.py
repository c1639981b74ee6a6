"""The access log: one INFO line per HTTP request from logger `registrar.access`, saying the
method, the path and query keys, the status, how long it took, the client and the caller."""

from __future__ import annotations

import logging
from time import perf_counter

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registrar.access.principal import PRINCIPAL_SCOPE_KEY

log = logging.getLogger("registrar.access")

_INFO = logging.INFO


class AccessLog:
    """The outermost middleware, so it times and sees every answer, refusals included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # isEnabledFor is a cached dict lookup: REGISTRAR_LOG_LEVEL=warning costs one call
        if scope["type"] != "http" or not log.isEnabledFor(_INFO):
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            # The 500 is sent by Starlette's error middleware, outside this one: say it here.
            _write(scope, status or 500, started)
            raise
        _write(scope, status, started)


def _write(scope: Scope, status: int, started: float) -> None:
    milliseconds = round((perf_counter() - started) * 1000, 2)
    # The raw path, still percent-encoded: a decoded one could hold a newline (a forged line).
    raw: bytes | None = scope.get("raw_path")
    path = raw.decode("latin-1") if raw is not None else scope["path"]
    query: bytes = scope.get("query_string", b"")
    if query:
        # The query's keys, not its values: a value could be a secret (or a person's data).
        path += "?" + "&".join(
            item.partition("=")[0] for item in query.decode("latin-1").split("&")
        )
    client = scope.get("client")
    address = client[0] if client else None
    principal = scope.get(PRINCIPAL_SCOPE_KEY)
    user = principal.user if principal is not None else None
    log.info(
        "%s %s %d %.1fms %s %s",
        scope["method"],
        path,
        status,
        milliseconds,
        address or "-",
        user or "-",
        extra={
            "method": scope["method"],
            "path": path,
            "status": status,
            "duration_ms": milliseconds,
            "client": address,
            "user": user,
        },
    )
