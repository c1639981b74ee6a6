"""Sending a described request over HTTP (httpx), in each flavour: where Registrar is and who is
calling, bounded retries with backoff when that is safe, errors raised as ClientError, and the
highest position this client wrote, sent back as `min_position` so it reads its own writes."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from registrar.client.calls import Call, Paged
from registrar.client.errors import Unavailable, error_for
from registrar.contracts.codec import dumps, loads

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8080"
POSITION_HEADER = "X-Registrar-Position"

# No answer came (or only part of one): worth another try for a request that is safe to repeat.
_NO_ANSWER = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

Timeout = float | httpx.Timeout


class Session:
    """What both flavours share: settings, the request to send for a Call, retry pauses, reading
    the answer, and the position of the client's last write."""

    base_url: str
    retries: int
    backoff: float

    def _configure(
        self,
        base_url: str | None,
        token: str | None,
        headers: Mapping[str, str] | None,
        retries: int,
        backoff: float,
    ) -> dict[str, str]:
        """Take the settings (REGISTRAR_URL and REGISTRAR_TOKEN fill in what is not given) and
        return the headers every request carries."""
        self.base_url = (base_url or os.environ.get("REGISTRAR_URL") or DEFAULT_URL).rstrip("/")
        if token is None:
            token = os.environ.get("REGISTRAR_TOKEN") or None
        self.retries = retries
        self.backoff = backoff
        self._position = 0
        self._position_lock = threading.Lock()
        sent = {"Accept": "application/json"}
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        return sent

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    @property
    def position(self) -> int:
        """The global position of this client's latest write (0: none yet)."""
        return self._position

    def _request(self, call: Call[Any]) -> dict[str, Any]:
        """httpx's arguments for `call`."""
        params = list(call.query)
        if call.projected and self._position:
            params.append(("min_position", self._position))
        headers = {}
        content = None
        if call.body is not None:
            content = dumps(call.body)
            headers["Content-Type"] = "application/json"
        if call.idempotency_key is not None:
            headers["Idempotency-Key"] = call.idempotency_key
        return {
            "method": call.method,
            "url": call.path,
            "params": params,
            "content": content,
            "headers": headers,
        }

    def _pause(self, call: Call[Any], attempt: int) -> float | None:
        """Seconds to wait before trying `call` again after attempt number `attempt` (from 0)
        failed, or None: give up. Doubles each time."""
        if not call.retry_safe or attempt >= self.retries:
            return None
        return self.backoff * 2.0**attempt

    def _unreachable(self, error: Exception) -> Unavailable:
        return Unavailable(None, f"no answer from Registrar at {self.base_url}: {error!r}")

    def _answer(self, call: Call[T], response: httpx.Response) -> T:
        """`call`'s result from `response`, or its error raised."""
        if call.text and response.status_code < 400:
            return call.parse(response.text)
        try:
            body = loads(response.content) if response.content else None
        except ValueError:
            body = None
        if response.status_code >= 400:
            fallback = response.text[:500] or response.reason_phrase
            raise error_for(response.status_code, body, fallback)
        if call.advances:
            self._remember(response, body)
        return call.parse(body)

    def _remember(self, response: httpx.Response, body: Any) -> None:
        header = response.headers.get(POSITION_HEADER)
        found = header if header is not None else (body or {}).get("position")
        if found is None:
            return
        with self._position_lock:  # a sync client may be shared by threads
            self._position = max(self._position, int(found))


class SyncSession(Session):
    """The blocking flavour, on an httpx.Client."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        sent = self._configure(base_url, token, headers, retries, backoff)
        self._http = httpx.Client(
            base_url=self.base_url, headers=sent, timeout=timeout, transport=transport
        )

    def send(self, call: Call[T]) -> T:
        """Send one described request (retrying it when safe) and return its parsed answer."""
        attempt = 0
        while True:
            try:
                response = self._http.request(**self._request(call))
            except _NO_ANSWER as error:
                pause = self._pause(call, attempt)
                if pause is None:
                    raise self._unreachable(error) from error
            else:
                pause = self._pause(call, attempt) if response.status_code == 503 else None
                if pause is None:
                    return self._answer(call, response)
            time.sleep(pause)
            attempt += 1

    def pages(self, paged: Paged[T]) -> Iterator[T]:
        """Every item of a list endpoint, a page at a time (the next page is asked for only when
        the items of this one have been read)."""
        token: str | None = None
        while True:
            items, token = self.send(paged.page(token))
            yield from items
            if token is None:
                return

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSession(Session):
    """The asyncio flavour, on an httpx.AsyncClient."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: Timeout = 30.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        sent = self._configure(base_url, token, headers, retries, backoff)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=sent, timeout=timeout, transport=transport
        )

    async def send(self, call: Call[T]) -> T:
        """Send one described request (retrying it when safe) and return its parsed answer."""
        attempt = 0
        while True:
            try:
                response = await self._http.request(**self._request(call))
            except _NO_ANSWER as error:
                pause = self._pause(call, attempt)
                if pause is None:
                    raise self._unreachable(error) from error
            else:
                pause = self._pause(call, attempt) if response.status_code == 503 else None
                if pause is None:
                    return self._answer(call, response)
            await asyncio.sleep(pause)
            attempt += 1

    async def pages(self, paged: Paged[T]) -> AsyncIterator[T]:
        """Every item of a list endpoint, a page at a time."""
        token: str | None = None
        while True:
            items, token = await self.send(paged.page(token))
            for item in items:
                yield item
            if token is None:
                return

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
