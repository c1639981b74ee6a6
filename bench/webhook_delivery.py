"""Webhook delivery latency of the system users run: from a command's commit to its delivery at
the receiver, at a steady command rate, with several webhooks, one of whose receivers answers
only after a few seconds, against `registrar up`.

It starts `registrar up` (bench/registrar_up.py; REGISTRAR_WEBHOOKS_ALLOW_PRIVATE=true, so it may
deliver to this machine), runs --webhooks receivers in this process (one asyncio HTTP/1.1 server,
a path each; the receiver of webhook 0 answers after --slow-seconds), creates --webhooks webhooks
over HTTP (every other one in MLflow's format, the rest in Registrar's, each subscribed to version
tags being set) and --models models with a version, then sets tags at a steady --rate (open loop)
for --duration seconds: one event a command, one delivery per webhook per event.

Each delivery is matched to its command by the tag's key. Its latency is measured two ways, both
printed: from the event's time (`recorded_at` in Registrar's payload, `timestamp` in MLflow's: the
clock just before the commit) to its arrival, and from the command's HTTP answer (just after the
commit) to its arrival. Receivers deduplicate on the delivery id: copies and missing deliveries
are counted too. Figures are printed, never asserted.

    .venv/bin/python bench/webhook_delivery.py [--rate 100] [--duration 20] [--webhooks 10]
        [--slow-seconds 5] [--models 20] [--database embedded|machine] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
from registrar_up import Http, HttpError, RegistrarUp, TreeCpu, add_database_option  # noqa: E402

HOST = "127.0.0.1"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class Arrival:
    at: float
    """time.time() when it arrived."""
    event_at: float
    """The event's own time, from the payload."""
    key: str


@dataclass
class Receivers:
    """One HTTP/1.1 server; path /hook/N is webhook N's receiver. N = 0 answers slowly."""

    slow_seconds: float
    arrivals: dict[int, dict[str, Arrival]] = field(default_factory=dict)
    """Webhook → delivery id → its first arrival (the receiver's deduplication)."""
    copies: Counter[int] = field(default_factory=Counter)
    """Webhook → deliveries that came again (same id)."""
    server: asyncio.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connection, HOST, 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ")[1].decode()
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
                arrived = time.time()
                webhook = int(path.rsplit("/", 1)[1])
                delivery = (
                    headers.get(b"x-registrar-delivery-id") or headers[b"x-mlflow-delivery-id"]
                ).decode()
                self._arrived(webhook, delivery, arrived, orjson.loads(body))
                if webhook == 0:
                    await asyncio.sleep(self.slow_seconds)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    def _arrived(self, webhook: int, delivery: str, arrived: float, body: dict) -> None:  # type: ignore[type-arg]
        seen = self.arrivals.setdefault(webhook, {})
        if delivery in seen:
            self.copies[webhook] += 1
            return
        if "entity" in body:  # MLflow's format
            event_at, key = body["timestamp"], body["data"]["key"]
        else:
            event_at, key = body["recorded_at"], body["payload"]["key"]
        when = datetime.fromisoformat(event_at.replace("Z", "+00:00")).timestamp()
        seen[delivery] = Arrival(arrived, when, key)


class Client:
    """Keep-alive connections to the API, at most `limit` requests at a time."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.idle: list[tuple[Http, float]] = []
        self.slots = asyncio.Semaphore(limit)

    async def request(self, method: bytes, path: str, body: dict[str, object]) -> tuple[int, bytes]:
        async with self.slots:
            http = None
            while self.idle and http is None:
                http, since = self.idle.pop()
                if time.monotonic() - since > 4.0:  # uvicorn closes idle ones after 5 s
                    await http.close()
                    http = None
            http = http or Http(HOST, self.port)
            try:
                return await http.request(method, path.encode(), orjson.dumps(body))
            finally:
                self.idle.append((http, time.monotonic()))

    async def close(self) -> None:
        await asyncio.gather(*(http.close() for http, _ in self.idle))


async def expect(
    client: Client, method: bytes, path: str, body: dict[str, object], status: int
) -> dict:  # type: ignore[type-arg]
    got, data = await client.request(method, path, body)
    if got != status:
        raise SystemExit(
            f"{method.decode()} {path}: HTTP {got}: {data.decode(errors='replace')[:500]}"
        )
    return orjson.loads(data)  # type: ignore[no-any-return]


async def setup(client: Client, receivers_port: int, webhooks: int, models: int) -> list[str]:
    for n in range(webhooks):
        mlflow = n % 2 == 1
        body: dict[str, object] = {
            "name": f"bench-{n}",
            "url": f"http://{HOST}:{receivers_port}/hook/{n}",
            "events": ["model_version_tag.set"] if mlflow else ["VersionTagSet"],
            "format": "mlflow" if mlflow else "registrar",
        }
        await expect(client, b"POST", "/v1/webhooks", body, 201)
    names = []
    for m in range(models):
        name = f"wh-bench-{m}"
        await expect(client, b"POST", "/v1/models", {"name": name}, 201)
        await expect(
            client, b"POST", f"/v1/models/{name}/versions", {"source": f"s3://b/{name}/1"}, 201
        )
        names.append(name)
    return names


@dataclass
class Load:
    answered: dict[str, float] = field(default_factory=dict)
    """Tag key → when its command was answered."""
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


async def tag(client: Client, load: Load, model: str, key: str) -> None:
    started = time.perf_counter()
    try:
        status, data = await client.request(
            b"PUT", f"/v1/models/{model}/versions/1/tags/{key}", {"value": "x"}
        )
    except (OSError, TimeoutError, HttpError, asyncio.IncompleteReadError) as error:
        load.errors[type(error).__name__] += 1
        return
    if status != 200:
        load.errors[f"HTTP {status}"] += 1
        if sum(load.errors.values()) <= 3:
            print(f"  HTTP {status}: {data[:300]!r}")
        return
    load.answered[key] = time.time()
    load.latencies.append(time.perf_counter() - started)


async def steady_load(client: Client, models: list[str], rate: float, duration: float) -> Load:
    load = Load()
    total = int(rate * duration)
    run = uuid.uuid4().hex[:6]
    started = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        key = f"k-{run}-{i}"
        tasks.append(asyncio.create_task(tag(client, load, models[i % len(models)], key)))
    await asyncio.gather(*tasks)
    return load


def row(label: str, seconds: list[float]) -> str:
    if not seconds:
        return f"  {label:<44}{0:>6}"
    ms = [s * 1000 for s in seconds]
    figures = "".join(f"{percentile(ms, p):>9.1f}" for p in (50, 90, 99))
    return f"  {label:<44}{len(ms):>6}{figures}{max(ms):>9.1f}"


async def bench(args: argparse.Namespace) -> None:
    receivers = Receivers(args.slow_seconds)
    port = await receivers.start()
    up = RegistrarUp(
        args.database, keep=args.keep, env={"REGISTRAR_WEBHOOKS_ALLOW_PRIVATE": "true"}
    )
    with up:
        print(f"starting registrar up ({args.database} PostgreSQL) ...", flush=True)
        await asyncio.to_thread(up.start)
        print(
            f"up in {up.started_in:.1f} s; {args.webhooks} webhooks, receiver 0 answers after {args.slow_seconds:g} s"
        )
        client = Client(up.port, limit=32)
        models = await setup(client, port, args.webhooks, args.models)
        await asyncio.sleep(1.0)
        cpu = TreeCpu(up)
        cpu.start()
        print(f"setting tags at {args.rate:g} commands/s for {args.duration:g} s ...", flush=True)
        load = await steady_load(client, models, args.rate, args.duration)
        commands = len(load.answered)
        fast = [n for n in range(args.webhooks) if n != 0]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
            len(receivers.arrivals.get(n, {})) < commands for n in fast
        ):
            await asyncio.sleep(0.1)
        cpu.stop()
        await client.close()
    if receivers.server is not None:
        receivers.server.close()

    print(
        f"\n{commands} commands answered ({dict(load.errors) or 'no errors'}); command latency"
        f" p50 {percentile(load.latencies, 50) * 1000:.1f} ms, p99 {percentile(load.latencies, 99) * 1000:.1f} ms"
    )
    print("delivery latency (ms):")
    print(f"  {'':<44}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}")
    from_event, from_answer = [], []
    for n in fast:
        for arrival in receivers.arrivals.get(n, {}).values():
            from_event.append(arrival.at - arrival.event_at)
            if arrival.key in load.answered:
                from_answer.append(arrival.at - load.answered[arrival.key])
    print(row(f"{len(fast)} webhooks, from the event's time", from_event))
    print(row(f"{len(fast)} webhooks, from the command's answer", from_answer))
    for n in fast:
        got = receivers.arrivals.get(n, {})
        kind = "mlflow" if n % 2 else "registrar"
        print(row(f"  webhook {n} ({kind})", [a.at - a.event_at for a in got.values()]))
    slow = receivers.arrivals.get(0, {})
    print(
        row(
            f"webhook 0 (answers after {args.slow_seconds:g} s)",
            [a.at - a.event_at for a in slow.values()],
        )
    )
    missing = {n: commands - len(receivers.arrivals.get(n, {})) for n in fast}
    print(
        f"missing deliveries per fast webhook: {sum(missing.values())}"
        f" ({ {n: m for n, m in missing.items() if m} or 'none' }); copies received: {dict(receivers.copies) or 'none'}"
    )
    print(
        f"the slow receiver got {len(slow)} of {commands} during the run (its queue waits in PostgreSQL; the others do not wait for it)"
    )
    if from_event:
        print(
            f"\ndelivery p99 at {args.rate:g} commands/s with {args.webhooks} webhooks (one slow):"
            f" {percentile([s * 1000 for s in from_event], 99):.1f} ms from commit"
        )
    parts = cpu.by_part()
    print(
        "CPU during the load: "
        + ", ".join(f"{part} {cpu.share(seconds):.0f}%" for part, seconds in parts.items())
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100.0, help="commands per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--webhooks", type=int, default=10)
    parser.add_argument("--slow-seconds", type=float, default=5.0, help="webhook 0's answer time")
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep REGISTRAR_HOME afterwards")
    add_database_option(parser)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
