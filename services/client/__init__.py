"""The Python client of Registrar's native /v1 API, in two flavours with one set of methods:
`Client` (blocking) and `AsyncClient` (asyncio), on httpx. Import them from `registrar`."""

from __future__ import annotations

from registrar.client.clients import AsyncClient, Client
from registrar.client.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    Unauthorized,
    Unavailable,
)

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Unauthorized",
    "Unavailable",
]
