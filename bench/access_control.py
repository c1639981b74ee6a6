"""Access control's costs: what authenticating adds to a request, how fast a revocation made by
another process takes effect, and what a flood of unauthenticated requests does. Prints figures;
asserts nothing.

    .venv/bin/python bench/access_control.py [--requests 3000] [--revocations 30] [--flood 20000]

The server is REGISTRAR_DATABASE_URL if set, else an embedded PostgreSQL; the run uses a fresh
database, dropped at the end. Requests go through the whole ASGI app in process (httpx's ASGI
transport), so the figures are the app's own cost, without sockets.
- overhead: GET /v1/whoami, one at a time, with authentication off and then on (bearer token).
- revocation: a token revoked through the store, as `registrar token revoke` does from another
  process; timed from the revoke's return to the moment the API's token cache refuses it (the
  table's NOTIFY, then a reload).
- flood: requests without a token, 50 at a time: their rate, and how many refusals were recorded
  as events or only counted (the bounded queue), and how long recording the rest took.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fresh_database import run_on_a_fresh_database

from registrar.access.administration import AccessAdministration
from registrar.access.guard import AccessGuard
from registrar.access.tokens import token_hash
from registrar.api.app import create_app
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role
from registrar.registry import Registry


@asynccontextmanager
async def serving(url: str, auth: bool) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(url, auth_required=auth)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            yield app, client


async def per_request_ms(client: httpx.AsyncClient, headers: dict[str, str], n: int) -> float:
    for _ in range(100):  # warm up
        await client.get("/v1/whoami", headers=headers)
    started = time.perf_counter()
    for _ in range(n):
        assert (await client.get("/v1/whoami", headers=headers)).status_code == 200
    return (time.perf_counter() - started) / n * 1000


async def bench(url: str, args: argparse.Namespace) -> None:
    async with serving(url, auth=False) as (_, client):
        off = await per_request_ms(client, {"X-Registrar-Actor": "bench"}, args.requests)
    async with serving(url, auth=True) as (app, client):
        guard: AccessGuard = app.state.access_guard
        registry: Registry = app.state.registry
        elsewhere = AccessAdministration(registry.store)
        meta = CommandMeta("bench")
        admin = await elsewhere.issue_token("bench", Role.ADMIN, meta.part(0))
        await guard.cache.reload()
        on = await per_request_ms(client, {"Authorization": f"Bearer {admin.token}"}, args.requests)
        print(f"GET /v1/whoami, {args.requests} one at a time (ASGI, no sockets):")
        print(f"  authentication off: {off:.3f} ms/request")
        print(f"  authentication on:  {on:.3f} ms/request (+{(on - off) * 1000:.0f} µs)")

        latencies = []
        for i in range(args.revocations):
            issued = await elsewhere.issue_token(f"user{i}", Role.VIEWER, meta.part(1 + 2 * i))
            hashed = token_hash(issued.token)
            while guard.cache.principal(hashed) is None:
                await asyncio.sleep(0.0005)
            await elsewhere.revoke_token(issued.event.token_id, meta.part(2 + 2 * i))
            revoked_at = time.perf_counter()
            while guard.cache.principal(hashed) is not None:
                await asyncio.sleep(0.0005)
            latencies.append((time.perf_counter() - revoked_at) * 1000)
        latencies.sort()
        print(f"revocation by another process → refused here, {args.revocations} times:")
        print(
            f"  p50 {statistics.median(latencies):.1f} ms, max {latencies[-1]:.1f} ms"
            f" (periodic reload without NOTIFY: every {guard.refresh_seconds:g} s)"
        )

        recorder = guard.refusals
        before = recorder.recorded
        limit = asyncio.Semaphore(50)

        async def anonymous() -> int:
            async with limit:
                # In process a refused request never waits on I/O, so without this yield (which
                # a socket read gives a real server) the flood would starve every other task.
                await asyncio.sleep(0)
                return (await client.get("/v1/models")).status_code

        started = time.perf_counter()
        statuses = await asyncio.gather(*(anonymous() for _ in range(args.flood)))
        elapsed = time.perf_counter() - started
        queued, counted = recorder.pending(), recorder.dropped
        flush_started = time.perf_counter()
        await recorder.flush()
        flushed = time.perf_counter() - flush_started
        print(f"flood of {args.flood} requests without a token, 50 at a time:")
        print(
            f"  {args.flood / elapsed:.0f} refusals/s, all 401: {set(statuses) == {401}};"
            f" when it ended: {queued} queued, {counted} only counted (queue full)"
        )
        print(
            f"  recorded as AccessRefused events: {recorder.recorded - before};"
            f" the queue's rest written in {flushed:.2f} s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--revocations", type=int, default=30)
    parser.add_argument("--flood", type=int, default=20000)
    args = parser.parse_args()
    run_on_a_fresh_database(lambda url: bench(url, args))


if __name__ == "__main__":
    main()
