"""A real HTTP receiver for webhook tests: a threaded http.server on a port of its own that records
every delivery (headers, raw body, when), answers with a chosen status, can hold its answers until
released, and can go down and come back up on the same port (HTTP/1.0: a connection per request,
so down is down)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    """Header names lowercased."""
    body: bytes
    at: float

    def header(self, name: str) -> str:
        return self.headers[name.lower()]

    def json(self) -> dict:  # type: ignore[type-arg]
        return orjson.loads(self.body)  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Receiver:
    def __init__(self, status: int = 200, gate: threading.Event | None = None) -> None:
        self.port = free_port()
        self.status = status
        self.gate = gate
        """While set to an unset Event, every answer waits for it."""
        self.received: list[Received] = []
        self.answered = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    receiver.received.append(Received(headers, body, time.time()))
                if receiver.gate is not None:
                    receiver.gate.wait(60)
                status = receiver.status
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
                with receiver._lock:
                    receiver.answered += 1

            def log_message(self, *args: object) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port refuses connections (open ones are closed)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def deliveries(self, id_header: str) -> dict[str, Received]:
        """What a receiver keeps after deduplicating on the delivery id: the first of each."""
        with self._lock:
            kept: dict[str, Received] = {}
            for received in self.received:
                kept.setdefault(received.header(id_header), received)
            return kept

    def copies(self, id_header: str) -> Counter[str]:
        with self._lock:
            return Counter(r.header(id_header) for r in self.received)

    def wait_for(self, done: Callable[[Receiver], bool], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(self.received)}")
            time.sleep(0.02)

    async def until(self, done: Callable[[Receiver], bool], timeout: float = 30.0) -> None:
        """wait_for, for tests whose event loop runs the dispatcher."""
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {len(self.received)}")
            await asyncio.sleep(0.02)
