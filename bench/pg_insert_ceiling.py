"""The PostgreSQL ceiling for Registrar's write path: how many single-row INSERTs per second (one
INSERT per transaction, default synchronous_commit) the server takes at N concurrent clients, into
a table shaped exactly like the events table (the project's own migration creates it), measured
with pgbench against a fresh database that is dropped at the end.

Two pgbench scripts run, one after the other:

  insert   one INSERT INTO events ... per transaction: the ceiling the issue asks for;
  command  the SQL a RegisterVersion sends on a model its API process holds: one head-guarded
           INSERT ... RETURNING in autocommit. The projector's work is not in it.

It prints figures; it asserts nothing.

    .venv/bin/python bench/pg_insert_ceiling.py [--clients 16] [--threads 2] [--seconds 10]

The server is REGISTRAR_DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/test): the
fresh database is created on it (the URL's own database is only used to connect).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg  # type: ignore[import-untyped]

REPO = Path(__file__).resolve().parent.parent
EVENTS_MIGRATION = REPO / "services" / "store" / "migrations" / "0001_event_store.sql"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"

# A VersionRegistered payload of a realistic size (~330 bytes), as the server would store it.
_PAYLOAD = (
    '{"version":1,"source":"s3://bench-bucket/models/model/artifacts/model.bin",'
    '"run_id":"run-0000000000","digest":"sha256:0000000000000000000000000000000000000000000000000'
    '000000000000000","size":123456789,"metrics":{"accuracy":0.93,"loss":0.21},'
    '"params":{"lr":"0.001","epochs":"10"},"datasets":[],"parents":[],"tags":{},"description":""}'
)
_HASH = "0" * 64
_ACTOR = "bench"

# One row per transaction. Each pgbench client writes its own stream with increasing versions,
# as one model per client does through the API.
INSERT_SCRIPT = f"""\
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, recorded_at, actor,
                    causation_id, correlation_id, payload, prev_hash, hash)
VALUES (gen_random_uuid(), 'bench-stream-' || :client_id, nextval('bench_versions'),
        'VersionRegistered', 1, now(), '{_ACTOR}', gen_random_uuid(), gen_random_uuid(),
        '{_PAYLOAD}', '{_HASH}', '{_HASH}');
"""

# The SQL one RegisterVersion sends on a model its API process already holds (the usual case):
# a single autocommit statement, the INSERT guarded by an index probe for the expected head (here
# one that always passes). A model the process has not seen costs one read before it.
COMMAND_SCRIPT = f"""\
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, recorded_at, actor, causation_id, correlation_id, payload, prev_hash, hash) SELECT gen_random_uuid(), 'bench-stream-' || :client_id, nextval('bench_versions'), 'VersionRegistered', 1, now(), '{_ACTOR}', gen_random_uuid(), gen_random_uuid(), '{_PAYLOAD}', '{_HASH}', '{_HASH}' WHERE NOT EXISTS (SELECT 1 FROM events WHERE stream_id = 'bench-stream-' || :client_id AND stream_version = -1 AND hash = '{_HASH}') ON CONFLICT (event_id) DO NOTHING RETURNING position, event_id, transaction_id::text::bigint AS transaction_id;
"""

SCRIPTS = {"insert": INSERT_SCRIPT, "command": COMMAND_SCRIPT}


@dataclass
class Server:
    host: str
    port: int
    user: str
    password: str | None
    database: str

    @classmethod
    def from_url(cls, url: str) -> Server:
        parts = urlsplit(url)
        if not parts.scheme.startswith("postgres"):
            raise SystemExit(f"not a PostgreSQL URL: {url!r}")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password) if parts.password else None,
            database=unquote(parts.path.lstrip("/")) or "postgres",
        )

    def with_database(self, database: str) -> Server:
        return Server(self.host, self.port, self.user, self.password, database)

    def url(self) -> str:
        auth = self.user + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@{self.host}:{self.port}/{self.database}"

    async def connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=self.database,
            timeout=10,
        )


@asynccontextmanager
async def fresh_database(server: Server, prefix: str) -> AsyncIterator[Server]:
    """A new, empty database on `server`, dropped (even if still connected to) on exit."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = await server.connect()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield server.with_database(name)
    finally:
        admin = await server.connect()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class PgbenchResult:
    script: str
    clients: int
    seconds: int
    transactions: int = 0
    failed: int = 0
    tps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    raw: str = ""

    def line(self) -> str:
        lat = self.latency_ms
        return (
            f"pgbench {self.script:<8} c={self.clients:<3} tx={self.transactions:<7} "
            f"failed={self.failed:<3} tx/s={self.tps:9.1f}  "
            f"p50={lat.get('p50', 0):6.2f} p90={lat.get('p90', 0):6.2f} "
            f"p99={lat.get('p99', 0):6.2f} max={lat.get('max', 0):7.2f} ms "
            f"(avg {lat.get('avg', 0):.2f} ms)"
        )


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


async def _prepare(db: Server, clients: int) -> None:
    conn = await db.connect()
    try:
        await conn.execute(EVENTS_MIGRATION.read_text(encoding="utf-8"))
        await conn.execute("CREATE SEQUENCE bench_versions")
        await conn.executemany(
            "INSERT INTO model_names (name, stream_id, is_current) VALUES ($1, $2, true)",
            [(f"bench-model-{i}", f"bench-stream-{i}") for i in range(clients)],
        )
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


def run_pgbench(
    db: Server, script: str, clients: int, threads: int, seconds: int, pgbench: str
) -> PgbenchResult:
    result = PgbenchResult(script, clients, seconds)
    with tempfile.TemporaryDirectory(prefix="pgbench_") as tmp:
        script_path = Path(tmp) / f"{script}.sql"
        script_path.write_text(SCRIPTS[script], encoding="utf-8")
        env = dict(os.environ)
        if db.password:
            env["PGPASSWORD"] = db.password
        command = [
            pgbench, "-n", "-c", str(clients), "-j", str(threads), "-T", str(seconds),
            "-f", str(script_path), "-l", f"--log-prefix={tmp}/log",
            "-h", db.host, "-p", str(db.port), "-U", db.user, db.database,
        ]  # fmt: skip
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        result.raw = done.stdout + done.stderr
        if done.returncode != 0:
            raise RuntimeError(f"pgbench failed ({done.returncode}):\n{result.raw}")
        latencies: list[float] = []
        for log in Path(tmp).glob("log.*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():  # client tx# latency_us ...
                    latencies.append(int(fields[2]) / 1000.0)
    if m := re.search(r"number of transactions actually processed: (\d+)", result.raw):
        result.transactions = int(m.group(1))
    if m := re.search(r"number of failed transactions: (\d+)", result.raw):
        result.failed = int(m.group(1))
    if m := re.search(r"tps = ([\d.]+) \(without initial connection time\)", result.raw):
        result.tps = float(m.group(1))
    latencies.sort()
    if latencies:
        result.latency_ms = {
            "p50": percentile(latencies, 0.50),
            "p90": percentile(latencies, 0.90),
            "p99": percentile(latencies, 0.99),
            "max": latencies[-1],
            "avg": sum(latencies) / len(latencies),
        }
    return result


async def measure(
    url: str,
    clients: int = 16,
    threads: int = 2,
    seconds: int = 10,
    scripts: tuple[str, ...] = ("insert", "command"),
    pgbench: str | None = None,
) -> list[PgbenchResult]:
    """Run each pgbench script for `seconds` at `clients` against a fresh database."""
    binary = pgbench or shutil.which("pgbench") or "/usr/bin/pgbench"
    results = []
    async with fresh_database(Server.from_url(url), "registrar_ceiling") as db:
        await _prepare(db, clients)
        for script in scripts:
            results.append(
                await asyncio.to_thread(run_pgbench, db, script, clients, threads, seconds, binary)
            )
    return results


def describe(results: list[PgbenchResult]) -> str:
    lines = [
        "PostgreSQL ceiling (pgbench, table shaped like `events`, default synchronous_commit):",
        *("  " + r.line() for r in results),
        "  insert  = one single-row INSERT per transaction (the ceiling)",
        "  command = a RegisterVersion's SQL on a model the API process holds: one head-guarded"
        " INSERT RETURNING, autocommit",
    ]
    return "\n".join(lines)


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    args.add_argument("--clients", type=int, default=16)
    args.add_argument("--threads", type=int, default=2)
    args.add_argument("--seconds", type=int, default=10)
    args.add_argument(
        "--scripts", default="insert,command", help="comma-separated: insert, command"
    )
    args.add_argument("--pgbench", default=None, help="path of pgbench (default: on PATH)")
    opts = args.parse_args()
    url = os.environ.get("REGISTRAR_DATABASE_URL") or DEFAULT_URL
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
    scripts = tuple(s.strip() for s in opts.scripts.split(",") if s.strip())
    unknown = [s for s in scripts if s not in SCRIPTS]
    if unknown:
        print(f"unknown scripts: {unknown}; choose from {sorted(SCRIPTS)}", file=sys.stderr)
        return 2

    async def stoppable() -> list[PgbenchResult]:
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
        return await measure(url, opts.clients, opts.threads, opts.seconds, scripts, opts.pgbench)

    try:
        results = asyncio.run(stoppable())
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the database was dropped", file=sys.stderr)
        return 130
    print(describe(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
