"""Helpers of the client's tests: awaiting what either flavour answers, and recording requests."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from registrar import AsyncClient, Client

AnyClient = Client | AsyncClient
MakeClient = Callable[..., AnyClient]


class Recorder:
    """An httpx transport of either flavour that sends for real and keeps every request."""

    def __init__(self, flavour: str) -> None:
        self.requests: list[httpx.Request] = []
        recorder = self

        class Sync(httpx.HTTPTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                recorder.requests.append(request)
                return super().handle_request(request)

        class Async(httpx.AsyncHTTPTransport):
            async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
                recorder.requests.append(request)
                return await super().handle_async_request(request)

        self.transport: httpx.BaseTransport | httpx.AsyncBaseTransport = (
            Sync() if flavour == "sync" else Async()
        )

    def to(self, path: str) -> list[httpx.Request]:
        return [r for r in self.requests if r.url.path == path]


async def done(answer: Any) -> Any:
    """What a client method answered: awaited when the flavour is async."""
    return await answer if inspect.isawaitable(answer) else answer


async def every(items: Any) -> list[Any]:
    """Every item of a list method's iterator, sync or async."""
    if hasattr(items, "__aiter__"):
        return [item async for item in items]
    return list(items)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
