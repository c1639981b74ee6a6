"""End-to-end projection lag through Kafka: from a command's append returning to the moment the
current-state projection shows it, at a steady command rate.

It creates a fresh database, starts an embedded Kafka-compatible broker (Tansu) and the production
topology's bus processes, `registrar relay` and `registrar project current_state` (separate
processes, REGISTRAR_LOG_LEVEL=warning), and, in this process, a Registry that sends commands at a
steady --rate (open loop: each command starts on schedule whatever the previous ones took) for
--duration seconds: over --models models, each cycles RegisterVersion → TransitionStage to
Staging → TransitionStage to Production with archive_existing. A poller asks PostgreSQL every
--poll-ms for the recorded stream_version of every model with commands not yet seen in the
projection (one query for all of them), so a lag is measured to within a poll interval plus one
query. Goal (from the issue): p99 under 250 ms at 200 commands/s. Figures are printed, never
asserted.

    .venv/bin/python bench/bus_lag.py [--rate 200] [--duration 20] [--models 100] [--poll-ms 3]

The server is REGISTRAR_DATABASE_URL if set, else an embedded PostgreSQL started under a temporary
directory; the run uses a fresh database, dropped at the end, and the processes' output is kept in
a temporary directory (its path is printed) only if something failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path

from fresh_database import run_on_a_fresh_database
from sqlalchemy import text

from registrar.bus.kafka_broker import start_embedded_broker
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.commands import Command, RegisterModel, RegisterVersion, TransitionStage
from registrar.registry import Registry

BIN = Path(sys.executable).parent
GOAL_P99_MS = 250.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@dataclass
class Pending:
    version: int
    accepted_at: float


@dataclass
class Measured:
    lags: list[float] = field(default_factory=list)
    """Seconds from the append returning to the projection showing it, per command."""
    append_latencies: list[float] = field(default_factory=list)
    errors: int = 0
    pending: dict[str, list[Pending]] = field(default_factory=dict)
    """stream id → commands accepted but not yet seen in the projection, oldest first."""
    polls: int = 0


_PROJECTED = text("SELECT stream_id, stream_version FROM cs_models WHERE stream_id = ANY(:ids)")


async def poll_projection(registry: Registry, measured: Measured, interval: float) -> None:
    """Until cancelled: one query for every stream with pending commands; a command is visible
    once its stream's projected version reaches the command's last event's version."""
    while True:
        if measured.pending:
            async with registry.engine.connect() as conn:
                rows = (await conn.execute(_PROJECTED, {"ids": list(measured.pending)})).all()
            now = time.perf_counter()
            measured.polls += 1
            for stream_id, projected in rows:
                waiting = measured.pending.get(stream_id)
                while waiting and waiting[0].version <= projected:
                    measured.lags.append(now - waiting.pop(0).accepted_at)
                if waiting is not None and not waiting:
                    del measured.pending[stream_id]
        await asyncio.sleep(interval)


def command_for(model: str, step: int) -> Command:
    version = step // 3 + 1
    if step % 3 == 0:
        return RegisterVersion(name=model, source=f"s3://bench/{model}/{version}")
    if step % 3 == 1:
        return TransitionStage(name=model, version=version, stage="Staging")
    return TransitionStage(name=model, version=version, stage="Production", archive_existing=True)


async def send(registry: Registry, command: Command, measured: Measured) -> None:
    started = time.perf_counter()
    try:
        outcome = await registry.commands.handle(command, CommandMeta("bench"))
    except Exception as error:  # counted and shown; the run goes on
        measured.errors += 1
        if measured.errors <= 5:
            print(f"  command failed: {type(error).__name__}: {error}")
        return
    accepted = time.perf_counter()
    measured.append_latencies.append(accepted - started)
    if outcome.events:
        last = outcome.events[-1]
        measured.pending.setdefault(last.stream_id, []).append(
            Pending(last.stream_version, accepted)
        )


async def steady_load(
    registry: Registry, models: list[str], rate: float, duration: float, measured: Measured
) -> tuple[int, float]:
    """Start commands on schedule (open loop); return how many and over how long."""
    tasks: set[asyncio.Task[None]] = set()
    total = int(rate * duration)
    started = time.perf_counter()
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        model = models[i % len(models)]
        task = asyncio.create_task(send(registry, command_for(model, i // len(models)), measured))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    return total, time.perf_counter() - started


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as output:
        return subprocess.Popen(
            [str(BIN / "registrar"), *args], env=env, stdout=output, stderr=subprocess.STDOUT
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def run(url: str, args: argparse.Namespace, logs: Path) -> bool:
    broker = start_embedded_broker(log_path=logs / "tansu.log")
    processes: list[subprocess.Popen[bytes]] = []
    registry = await Registry.open(url)  # applies the migrations before the processes start
    ok = True
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRAR_")}
        env |= {
            "REGISTRAR_DATABASE_URL": url,
            "REGISTRAR_KAFKA_BOOTSTRAP": broker.bootstrap,
            "REGISTRAR_LOG_LEVEL": "warning",
        }
        processes.append(start_process(["relay"], env, logs / "relay.log"))
        processes.append(start_process(["project", "current_state"], env, logs / "projector.log"))

        run_id = uuid.uuid4().hex[:6]
        models = [f"lag-{run_id}-{i:03d}" for i in range(args.models)]
        started = time.perf_counter()
        for model in models:
            await registry.commands.handle(RegisterModel(name=model), CommandMeta("bench"))
        if not await registry.wait_until_projected(timeout=60):
            print("the projection did not catch up with the models within 60 s")
            return False
        print(
            f"{args.models} models registered; relay and projector ready after"
            f" {time.perf_counter() - started:.1f} s (the projector joins its consumer group)"
        )

        measured = Measured()
        poller = asyncio.create_task(poll_projection(registry, measured, args.poll_ms / 1000))
        try:
            sent, took = await steady_load(registry, models, args.rate, args.duration, measured)
            deadline = time.perf_counter() + 30
            while measured.pending and time.perf_counter() < deadline:
                await asyncio.sleep(0.05)
        finally:
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)

        unseen = sum(len(p) for p in measured.pending.values())
        accepted = len(measured.append_latencies)
        print(
            f"commands: {sent} sent over {took:.1f} s ({sent / took:.0f}/s scheduled at"
            f" {args.rate:g}/s), {accepted} accepted ({accepted / took:.0f}/s), {measured.errors}"
            f" failed; {unseen} never seen in the projection within 30 s"
        )
        appends = [t * 1000 for t in measured.append_latencies]
        print(
            f"append latency (ms): p50 {percentile(appends, 50):.1f}  p99"
            f" {percentile(appends, 99):.1f}  max {max(appends):.1f}"
        )
        lags = [t * 1000 for t in measured.lags]
        if lags:
            p99 = percentile(lags, 99)
            print(
                f"projection lag via Kafka (ms), {len(lags)} commands: p50"
                f" {percentile(lags, 50):.1f}  p90 {percentile(lags, 90):.1f}  p99 {p99:.1f}"
                f"  max {max(lags):.1f}  mean {statistics.fmean(lags):.1f}"
            )
            verdict = "meets" if p99 < GOAL_P99_MS else "MISSES"
            print(
                f"goal p99 < {GOAL_P99_MS:.0f} ms at 200 commands/s: {verdict} it (p99 {p99:.0f})"
            )
        print(
            f"poller: {measured.polls} polls (every {args.poll_ms:g} ms + one query), so each lag"
            " is an upper bound by about that much"
        )
        ok = measured.errors == 0 and unseen == 0
        for process, name in zip(processes, ("relay", "projector"), strict=True):
            if process.poll() is not None:
                print(f"the {name} process exited early ({process.returncode})")
                ok = False
        return ok
    finally:
        for process in processes:
            stop_process(process)
        await registry.close()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=200.0, help="commands per second")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of steady load")
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--poll-ms", type=float, default=3.0, help="projection poll interval")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="registrar-bus-lag-"))

    def body(url: str) -> Awaitable[bool]:
        return run(url, args, logs)

    ok = run_on_a_fresh_database(body)
    if ok:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print(f"something failed: the processes' output is in {logs}")
        sys.exit(1)


if __name__ == "__main__":
    main()
