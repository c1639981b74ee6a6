"""One webhook's HTTP client: POSTs a delivery and says how it went (status, latency, error). Each
webhook has its own keep-alive connections, so a slow or hung receiver holds only its own.

HTTP/1.1 over asyncio streams with h11 for the protocol: httpx's stack (httpcore over anyio) cost
about four times the CPU a delivery needs, and a dispatcher sends thousands a second. Connections
go to addresses registrar.webhooks.targets checked; TLS verifies the certificate against the
URL's host name."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlsplit

import h11

from registrar.webhooks.targets import TargetRefused, public_addresses

KEPT_BODY_CHARS = 10_000
"""Of a receiver's answer, what a test keeps (MLflow's test answers the body)."""
ERROR_BODY_CHARS = 200
"""Of a failed attempt's answer, what the delivery log keeps."""
MAX_READ_BYTES = 1 << 20
"""An answer longer than this is not read to its end (the connection is closed instead)."""
KEEP_ALIVE_SECONDS = 30.0
CONNECT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Outcome:
    status_code: int | None
    latency_ms: float | None
    error: str | None = None
    body: str | None = None
    retry_after: float | None = None
    """Seconds the receiver asked to wait (Retry-After on a 429 or 503)."""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    def problem(self) -> str:
        """The failure in a line, for the delivery log."""
        if self.error:
            return self.error
        body = f": {self.body[:ERROR_BODY_CHARS]}" if self.body else ""
        return f"HTTP {self.status_code}{body}"


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT)
        self.used_at = time.monotonic()

    def close(self) -> None:
        self.writer.close()


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    retry_after: float | None


class _Stale(Exception):
    """A kept-alive connection turned out closed before any answer: send on a new one."""


class WebhookClient:
    def __init__(self, *, allow_private: bool, max_connections: int, timeout: float) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max_connections)
        self._idle: dict[tuple[str, str, int], deque[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def post(
        self,
        url: str,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        keep: int = ERROR_BODY_CHARS,
    ) -> Outcome:
        """POST `body` to `url`; the answer's first `keep` characters are kept. Never raises for
        what the receiver or the network does."""
        async with self._slots:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.timeout):  # all of it: connecting, sending, answer
                    answer = await self._post(url, headers, body)
            except TargetRefused as refused:
                return Outcome(None, None, f"refused: {refused}")
            except TimeoutError:
                return Outcome(None, None, f"no answer within {self.timeout:g} s")
            except h11.RemoteProtocolError as error:
                return Outcome(None, None, f"the receiver broke the HTTP exchange: {error}")
            except ssl.SSLError as error:
                return Outcome(None, None, f"TLS failed: {error}")
            except _Refused as error:
                return Outcome(None, None, f"could not connect: {error}")
            except (OSError, asyncio.IncompleteReadError, _Stale) as error:
                return Outcome(None, None, f"the connection failed: {error!r}")
            latency = (time.perf_counter() - started) * 1000
            text = answer.body[:keep].decode(errors="replace")
            return Outcome(answer.status, latency, body=text, retry_after=answer.retry_after)

    async def _post(self, url: str, headers: list[tuple[bytes, bytes]], body: bytes) -> _Answer:
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        authority = parts.netloc.rpartition("@")[2]
        request = h11.Request(
            method="POST",
            target=target,
            headers=[(b"Host", authority.encode()), (b"Content-Length", b"%d" % len(body))]
            + headers,
        )
        origin = (scheme, host, port)
        reused = self._reuse(origin)
        if reused is not None:
            try:
                return await self._exchange(reused, origin, request, body)
            except _Stale:
                pass  # the receiver closed it meanwhile: nothing was answered, send again
        connection = await self._connect(scheme, host, port)
        return await self._exchange(connection, origin, request, body)

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            fresh = time.monotonic() - connection.used_at < KEEP_ALIVE_SECONDS
            if fresh and not connection.reader.at_eof() and not connection.writer.is_closing():
                return connection
            connection.close()
        return None

    async def _connect(self, scheme: str, host: str, port: int) -> _Connection:
        tls = self._context() if scheme == "https" else None
        if self.allow_private:
            addresses = [host]  # resolved by the connection itself
        else:
            addresses = [str(address) for address in await public_addresses(host, port)]
        failures = []
        for address in addresses:
            try:
                async with asyncio.timeout(CONNECT_SECONDS):
                    reader, writer = await asyncio.open_connection(
                        address, port, ssl=tls, server_hostname=host if tls else None
                    )
                return _Connection(reader, writer)
            except (OSError, TimeoutError) as error:
                failures.append(f"{address}: {error or type(error).__name__}")
        raise _Refused("; ".join(failures))

    async def _exchange(
        self,
        connection: _Connection,
        origin: tuple[str, str, int],
        request: h11.Request,
        body: bytes,
    ) -> _Answer:
        protocol = connection.protocol
        answered = False
        try:
            out = protocol.send(request) + protocol.send(h11.Data(data=body))
            connection.writer.write(out + protocol.send(h11.EndOfMessage()))
            await connection.writer.drain()
            status, retry_after, kept, size = 0, None, bytearray(), 0
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    data = await connection.reader.read(65536)
                    if not data and not answered:
                        raise _Stale("closed before answering")
                    protocol.receive_data(data)
                    continue
                if isinstance(event, h11.Response):
                    answered, status = True, event.status_code
                    retry_after = _retry_after(event)
                elif isinstance(event, h11.Data):
                    size += len(event.data)
                    kept += event.data[: KEPT_BODY_CHARS - len(kept)]
                    if size > MAX_READ_BYTES:
                        connection.close()
                        return _Answer(status, bytes(kept), retry_after)
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    break
                # InformationalResponse (1xx): the final answer follows.
        except (_Stale, OSError, asyncio.IncompleteReadError) as error:
            connection.close()
            if not answered and not isinstance(error, _Stale) and protocol.their_state is h11.IDLE:
                raise _Stale(repr(error)) from error
            raise
        except BaseException:
            connection.close()
            raise
        self._keep(connection, origin)
        return _Answer(status, bytes(kept), retry_after)

    def _keep(self, connection: _Connection, origin: tuple[str, str, int]) -> None:
        protocol = connection.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            connection.used_at = time.monotonic()
            self._idle.setdefault(origin, deque()).append(connection)
        else:
            connection.close()

    def _context(self) -> ssl.SSLContext:
        if self._tls is None:
            self._tls = ssl.create_default_context()
        return self._tls

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()
                with contextlib.suppress(Exception):
                    await connection.writer.wait_closed()


class _Refused(Exception):
    """No address of the target accepted a connection."""


def _retry_after(response: h11.Response) -> float | None:
    if response.status_code not in (429, 503):
        return None
    for name, value in response.headers:
        if name == b"retry-after" and value.strip().isdigit():
            return float(value.strip())
    return None
