"""The largest request body the API reads: a bigger one is refused with 413 before any of it is
parsed, whatever its Content-Length claims, so one request cannot make the server hold megabytes
(the contracts bound what one event may hold; this bounds the bytes that carry it)."""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registrar.access.permissions import is_mlflow_path
from registrar.api.request_body import TooLarge, read_body, replaying
from registrar.api.responses import JSON, error

MAX_BODY_BYTES = 2 * 1024 * 1024


ARTIFACT_UPLOAD = re.compile(r"/v1/models/[^/]+/versions/[^/]+/artifacts/.+")
"""An artifact upload streams its body into the store (no size limit but the store's): the one
request this limit does not read."""


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (
            scope["method"] == "PUT" and ARTIFACT_UPLOAD.fullmatch(scope["path"])
        ):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, send)
            return
        try:
            body = await read_body(receive, self.max_bytes)
        except TooLarge:
            await self._refuse(scope, send)
            return
        await self.app(scope, replaying(body, receive), send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        message = (
            f"the request body is larger than {self.max_bytes:,} bytes, the most this API reads"
        )
        response = (
            JSON({"error_code": "RESOURCE_LIMIT_EXCEEDED", "message": message}, status_code=413)
            if is_mlflow_path(scope["path"])
            else error(413, "too_large", message)
        )
        await response(scope, _disconnected, send)


async def _disconnected() -> Message:
    return {"type": "http.disconnect"}
