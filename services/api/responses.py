"""JSON responses through the project's one codec (orjson), and the error body every 4xx uses."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from registrar.contracts.codec import dumps


class JSON(JSONResponse):
    # A JSONResponse (not a bare Response), so that /openapi.json shows each route's
    # response_model: FastAPI documents response bodies only for JSONResponse classes.
    def render(self, content: Any) -> bytes:
        return dumps(content)


def error(status: int, code: str, message: str, fields: list[dict[str, str]] | None = None) -> JSON:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return JSON({"error": body}, status_code=status)


def with_position(body: dict[str, Any], position: int, status: int = 200) -> JSON:
    """A command's answer: what it produced, and the global position it is as of."""
    return JSON(
        {**body, "position": position},
        status_code=status,
        headers={"X-Registrar-Position": str(position)},
    )
