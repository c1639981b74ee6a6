"""A stand-in MLflow server that answers every registry call at once with a canned response: the
ceiling of what the MLflow client itself reaches on this machine (bench/mlflow_compare.py).

One process, one event loop (uvloop where installed), an asyncio Protocol that parses just enough
HTTP/1.1 (request line, Content-Length, keep-alive) and writes each response in one piece. A
response depends only on the request's line and body, so each distinct request is rendered once
and cached: in steady state a request costs a dict lookup and a socket write. Version numbers are
canned ("1"); names and the requested stage are echoed so that the client's checks hold.

    .venv/bin/python bench/mlflow_stub.py --port 5055    # prints "listening on http://..."
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from collections import Counter
from typing import Any, cast
from urllib.parse import parse_qs

PREFIXES = ("/api/2.0/mlflow/", "/ajax-api/2.0/mlflow/")
STAGES = {"none": "None", "staging": "Staging", "production": "Production", "archived": "Archived"}
NAME_FILTER = re.compile(r"name\s*=\s*'([^']*)'")
CACHE_LIMIT = 10_000

answered: Counter[str] = Counter()
"""Requests answered, by method and path: printed at the end, to show what the client sent."""
cache: dict[bytes, bytes] = {}


def model_version(name: str, stage: str = "None") -> dict[str, Any]:
    return {
        "name": name,
        "version": "1",
        "creation_timestamp": 1,
        "last_updated_timestamp": 1,
        "current_stage": stage,
        "description": "",
        "source": "s3://bench/model",
        "run_id": "",
        "run_link": "",
        "status": "READY",  # anything else and the client polls until it is
        "tags": [],
        "aliases": [],
    }


def registered_model(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "creation_timestamp": 1,
        "last_updated_timestamp": 1,
        "description": "",
        "latest_versions": [],
        "tags": [],
        "aliases": [],
    }


def answer(endpoint: str, fields: dict[str, Any]) -> tuple[int, Any]:
    """(status, JSON body) for one registry call; `endpoint` is the path after the prefix."""
    name = str(fields.get("name") or "bench")
    match endpoint:
        case "registered-models/create" | "registered-models/get" | "registered-models/update":
            return 200, {"registered_model": registered_model(name)}
        case "registered-models/rename":
            return 200, {"registered_model": registered_model(str(fields.get("new_name", name)))}
        case "registered-models/search":
            return 200, {"registered_models": [registered_model(name)]}
        case "model-versions/create" | "model-versions/update":
            return 200, {"model_version": model_version(name)}
        case "model-versions/get":  # the five-operation loop reads a version it has promoted
            return 200, {"model_version": model_version(name, "Production")}
        case "model-versions/transition-stage":
            stage = STAGES.get(str(fields.get("stage", "")).lower(), "None")
            return 200, {"model_version": model_version(name, stage)}
        case "model-versions/search":
            found = NAME_FILTER.search(str(fields.get("filter", "")))
            return 200, {"model_versions": [model_version(found[1] if found else name)]}
        case "registered-models/get-latest-versions":
            return 200, {"model_versions": [model_version(name)]}
        case "registered-models/delete" | "model-versions/delete":
            return 200, {}
        case _:
            message = f"the stub does not answer {endpoint}"
            return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": message}


def render(request_line: bytes, body: bytes) -> bytes:
    """The whole HTTP response to one request."""
    method, target, _ = request_line.decode("latin-1").split(" ", 2)
    path, _, query = target.partition("?")
    if path == "/health":
        status, payload = 200, "OK"
    elif path.startswith(PREFIXES):
        endpoint = path.split("/mlflow/", 1)[1]
        if method == "GET":
            fields: dict[str, Any] = {k: v[0] for k, v in parse_qs(query).items()}
        else:
            fields = json.loads(body) if body else {}
        status, payload = answer(endpoint, fields)
    else:
        status, payload = 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": path}
    content = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    reason = "OK" if status == 200 else "Not Found"
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(content)}\r\n\r\n"
    )
    return head.encode() + content


class CannedHTTP(asyncio.Protocol):
    """HTTP/1.1 keep-alive, pipelining tolerated; no chunked request bodies (the client sends
    Content-Length)."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[:end]).lower()
            length = 0
            if (at := head.find(b"\r\ncontent-length:")) >= 0:
                line_end = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else None])
            if b"\r\ntransfer-encoding:" in head:
                self.transport.write(b"HTTP/1.1 501 Not Implemented\r\ncontent-length: 0\r\n\r\n")
                self.transport.close()
                return
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            request_line = bytes(self.buffer[: self.buffer.find(b"\r\n")])
            key = request_line + b"\n" + bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            response = cache.get(key)
            if response is None:
                if len(cache) > CACHE_LIMIT:
                    cache.clear()
                response = cache[key] = render(request_line, key.partition(b"\n")[2])
            answered[request_line.rsplit(b" ", 1)[0].partition(b"?")[0].decode("latin-1")] += 1
            self.transport.write(response)
            if b"\r\nconnection: close" in head:
                self.transport.close()
                return


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    server = await loop.create_server(CannedHTTP, host, port, reuse_address=True, backlog=1024)
    bound = server.sockets[0].getsockname()
    print(f"listening on http://{bound[0]}:{bound[1]}", flush=True)
    async with server:
        await stop.wait()
    for request, count in sorted(answered.items()):
        print(f"{count:>9} {request}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5055)
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(args.host, args.port))
    else:
        uvloop.run(serve(args.host, args.port))
    sys.exit(0)


if __name__ == "__main__":
    main()
