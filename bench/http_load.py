"""Write-path load benchmark of Registrar over HTTP.

It creates a fresh database on the PostgreSQL server of REGISTRAR_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test), starts `registrar serve` on a free port against it
(REGISTRAR_LOG_LEVEL=warning), waits for GET /healthz, and for every concurrency runs:

  register  RegisterVersion only: POST /v1/models/{name}/versions, expecting 201;
  mix       cycles of RegisterVersion, then POST .../versions/{v}/stage to Staging, then to
            Production with archive_existing=true (expecting 201, 200, 200);

with every client on a model of its own ("per-client") and, for concurrency > 1, with all clients
on ONE model ("shared", to show contention on one stream). Each phase pre-registers its own models,
warms up, then measures for --duration seconds (or --count commands). Before the server starts,
the PostgreSQL ceiling is measured with pgbench (bench/pg_insert_ceiling.py) and is printed next
to the HTTP figures. The server, the database and any profiler are stopped and dropped at the end.

The load generator is deliberately cheap: one keep-alive HTTP/1.1 connection per simulated client
over asyncio streams, no HTTP library. Every response's status is checked; errors are counted per
kind, printed, and make the exit status 1. Times are printed, never asserted.

    .venv/bin/python bench/http_load.py                    # concurrency 1 and 16, 10 s phases
    .venv/bin/python bench/http_load.py --concurrency 16 --phases register --layouts per-client \\
        --py-spy /tmp/registrar-profile.json              # profile the server (speedscope JSON)

Figures on a 2-core machine are only comparable between runs on an otherwise idle machine: the
CPU line of each phase says where the cycles went (server, PostgreSQL, load generator, other).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson  # a dependency of the project: the venv has it

_dumps = orjson.dumps
_loads = orjson.loads

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pg_insert_ceiling  # noqa: E402  (bench/ is not a package)

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
GOAL = "goal at concurrency 16: >= 1,500 RegisterVersion/s with p99 < 50 ms (2 cores)"


# --------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client
# --------------------------------------------------------------------------------------------


class HttpError(Exception):
    """The response could not be read as HTTP/1.1."""


class Http:
    """One keep-alive connection; requests are sent one at a time (no pipelining)."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._host_header = f"Host: {host}:{port}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.connects = 0

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self.connects += 1

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2.0)
            except (TimeoutError, OSError):
                pass

    async def request(self, method: bytes, path: bytes, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request and read its whole response: (status, body). Raises on I/O errors."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(method, path, body)
        except BaseException:
            await self.close()  # the connection's state is unknown: never reuse it
            raise

    async def _exchange(self, method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            await self._connect()
        assert self._reader is not None and self._writer is not None
        self._writer.write(
            b"%s %s HTTP/1.1\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (method, path, self._host_header, len(body), body)
        )
        reader = self._reader
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {lines[0][:80]!r}")
        status = int(status_line[1])
        length = -1
        chunked = close = False
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            data = await self._read_chunked(reader)
        elif length >= 0:
            data = await reader.readexactly(length)
        else:  # no length: the body runs to the end of the connection
            data = await reader.read(1 << 24)
            close = True
        if close:
            await self.close()
        return status, data

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        for _ in range(1_000_000):  # bounded: a body has far fewer chunks
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        raise HttpError("too many chunks")


# --------------------------------------------------------------------------------------------
# CPU accounting from /proc (Linux)
# --------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) / _TICK, int(fields[12]) / _TICK  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def _proc_cpu_seconds(pid: int) -> float:
    return sum(_proc_cpu_times(pid))


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            return f.read().strip() == b"postgres"
    except OSError:
        return False


def _postgres_cpu_seconds(database: str) -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds of PostgreSQL's processes: (ours, others'). Ours are the backends connected to
    `database` and the server's own background processes (WAL writer, checkpointer, ...);
    others' are backends of other databases (e.g. someone's tests on the same server)."""
    ours: dict[int, float] = {}
    others: dict[int, float] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm", "rb") as f:
                if f.read().strip() != b"postgres":
                    continue
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace").split()
        except OSError:
            continue
        # A backend's title: "postgres: <cluster>: <user> <database> <host(port)> <state>".
        backend = len(title) >= 5 and title[0] == "postgres:" and "(" in title[4]
        mine = not backend or title[3] == database
        (ours if mine else others)[int(entry.name)] = _proc_cpu_seconds(int(entry.name))
    return ours, others


def _machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


@dataclass
class CpuSample:
    at: float
    server: float
    server_sys: float
    postgres: dict[int, float]
    postgres_others: dict[int, float]
    loadgen: float
    profiler: float
    machine: tuple[int, int]


class CpuMeter:
    def __init__(self, server_pids: Callable[[], list[int]], database: str) -> None:
        self.server_pids = server_pids
        self.database = database
        self.profiler_pid: int | None = None

    def sample(self) -> CpuSample:
        t = os.times()
        server = [_proc_cpu_times(pid) for pid in self.server_pids()]
        postgres, postgres_others = _postgres_cpu_seconds(self.database)
        return CpuSample(
            at=time.perf_counter(),
            server=sum(u + s for u, s in server),
            server_sys=sum(s for _, s in server),
            postgres=postgres,
            postgres_others=postgres_others,
            loadgen=t.user + t.system,
            profiler=_proc_cpu_seconds(self.profiler_pid) if self.profiler_pid else 0.0,
            machine=_machine_jiffies(),
        )

    @staticmethod
    def shares(a: CpuSample, b: CpuSample) -> dict[str, float]:
        """Percent of ONE core used by each party between two samples (a machine has N x 100)."""
        wall = max(b.at - a.at, 1e-9)
        pg = sum(cpu - a.postgres.get(pid, 0.0) for pid, cpu in b.postgres.items())
        pg_others = sum(
            cpu - a.postgres_others.get(pid, 0.0) for pid, cpu in b.postgres_others.items()
        )
        busy = b.machine[0] - a.machine[0]
        total = max(b.machine[1] - a.machine[1], 1)
        cores = os.cpu_count() or 1
        shares = {
            "server": 100 * (b.server - a.server) / wall,
            "server_sys": 100 * (b.server_sys - a.server_sys) / wall,
            "postgres": 100 * pg / wall,
            "postgres_others": 100 * pg_others / wall,
            "loadgen": 100 * (b.loadgen - a.loadgen) / wall,
            "profiler": 100 * (b.profiler - a.profiler) / wall,
            "machine": 100 * cores * busy / total,
        }
        known = shares["server"] + shares["postgres"] + shares["loadgen"] + shares["profiler"]
        shares["other"] = max(0.0, shares["machine"] - known)
        shares["capacity"] = 100.0 * cores
        return shares


# --------------------------------------------------------------------------------------------
# Phases
# --------------------------------------------------------------------------------------------


@dataclass
class Stats:
    latencies: dict[str, list[int]] = field(default_factory=dict)  # kind -> ns, measured only
    errors: Counter[str] = field(default_factory=Counter)
    warmup_errors: Counter[str] = field(default_factory=Counter)
    samples: dict[str, str] = field(default_factory=dict)
    numbers: dict[str, list[int]] = field(default_factory=dict)
    """model -> the version numbers RegisterVersion answered (warm-up included)."""

    def ok(self, kind: str, started: float, measure_from: float, ns: int) -> None:
        if started >= measure_from:
            self.latencies.setdefault(kind, []).append(ns)

    def error(self, kind: str, started: float, measure_from: float, what: str, sample: str) -> None:
        key = f"{kind}: {what}"
        (self.errors if started >= measure_from else self.warmup_errors)[key] += 1
        self.samples.setdefault(key, sample[:300])


@dataclass
class Window:
    measure_from: float
    deadline: float
    quota: int | None  # measured commands per client, in --count mode

    def done(self, now: float, measured: int) -> bool:
        return now >= self.deadline or (self.quota is not None and measured >= self.quota)


@dataclass
class PhaseResult:
    name: str
    concurrency: int
    layout: str
    models: int
    seconds: float
    stats: Stats
    cpu: dict[str, float]

    def commands(self) -> int:
        return sum(len(v) for v in self.stats.latencies.values())


def _percentiles(values: list[int]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)
    last = len(ordered) - 1

    def at(q: float) -> float:
        return ordered[min(last, int(round(q * last)))] / 1e6

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1] / 1e6}


_DIGEST = "sha256:" + "ab" * 32


def _version_body(client: int, n: int) -> bytes:
    return _dumps(
        {
            "source": f"s3://bench-artifacts/client-{client}/model-{n}/model.safetensors",
            "run_id": f"run-{client}-{n}",
            "digest": _DIGEST,
            "metrics": {"accuracy": 0.9312, "loss": 0.2087, "f1": 0.9105},
            "params": {"learning_rate": "0.001", "epochs": "10", "batch_size": "64"},
        }
    )


_STAGING = _dumps({"stage": "Staging", "archive_existing": False})
_PRODUCTION = _dumps({"stage": "Production", "archive_existing": True})


def _describe_failure(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


async def _call(
    http: Http,
    stats: Stats,
    window: Window,
    kind: str,
    method: bytes,
    path: bytes,
    body: bytes,
    expect: int,
) -> bytes | None:
    """One command: its response body if the status was `expect`, else None (error counted)."""
    started = time.perf_counter()
    t0 = time.perf_counter_ns()
    try:
        status, data = await http.request(method, path, body)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
            TimeoutError, ValueError) as exc:  # fmt: skip
        stats.error(kind, started, window.measure_from, _describe_failure(exc), repr(exc))
        return None
    elapsed = time.perf_counter_ns() - t0
    if status != expect:
        stats.error(
            kind, started, window.measure_from, f"HTTP {status}", data.decode("utf-8", "replace")
        )
        return None
    stats.ok(kind, started, window.measure_from, elapsed)
    return data


MAX_CONSECUTIVE_FAILURES = 50


async def register_client(
    http: Http, client: int, model: str, stats: Stats, window: Window
) -> None:
    path = f"/v1/models/{quote(model, safe='')}/versions".encode()
    measured = failures = 0
    for n in range(10_000_000):  # bounded; the window ends it long before
        now = time.perf_counter()
        if window.done(now, measured) or failures >= MAX_CONSECUTIVE_FAILURES:
            return
        ok = await _call(http, stats, window, "RegisterVersion", b"POST", path,
                         _version_body(client, n), 201)  # fmt: skip
        failures = 0 if ok is not None else failures + 1
        measured += now >= window.measure_from
        if ok is not None:
            stats.numbers.setdefault(model, []).append(_loads(ok)["version"])


def gaps(stats: Stats) -> list[str]:
    """Each model whose answered version numbers are not exactly 1..N, once each (every version
    of a phase's models is registered by the phase, so any gap or repeat is the server's)."""
    return [
        f"{model}: {len(numbers)} versions answered, {len(set(numbers))} distinct, highest"
        f" {max(numbers)}"
        for model, numbers in stats.numbers.items()
        if sorted(numbers) != list(range(1, len(numbers) + 1))
    ]


async def mix_client(http: Http, client: int, model: str, stats: Stats, window: Window) -> None:
    base = f"/v1/models/{quote(model, safe='')}/versions"
    register_path = base.encode()
    measured = failures = 0
    for n in range(10_000_000):  # bounded; the window ends it long before
        now = time.perf_counter()
        if window.done(now, measured) or failures >= MAX_CONSECUTIVE_FAILURES:
            return
        data = await _call(http, stats, window, "RegisterVersion", b"POST", register_path,
                           _version_body(client, n), 201)  # fmt: skip
        measured += now >= window.measure_from
        if data is None:
            failures += 1
            continue
        version = _loads(data)["version"]
        stage_path = f"{base}/{version}/stage".encode()
        for kind, body, stage in (
            ("TransitionStage->Staging", _STAGING, "Staging"),
            ("TransitionStage->Production", _PRODUCTION, "Production"),
        ):
            now = time.perf_counter()
            if window.done(now, measured):
                return
            data = await _call(http, stats, window, kind, b"POST", stage_path, body, 200)
            measured += now >= window.measure_from
            if data is None:
                failures += 1
                break
            answer = _loads(data)
            if answer.get("stage") != stage or answer.get("version") != version:
                stats.error(kind, now, window.measure_from, "wrong answer",
                            data.decode("utf-8", "replace"))  # fmt: skip
                failures += 1
                break
        else:
            failures = 0


PHASES: dict[str, Callable[[Http, int, str, Stats, Window], Coroutine[Any, Any, None]]] = {
    "register": register_client,
    "mix": mix_client,
}


# --------------------------------------------------------------------------------------------
# The server under test
# --------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    port: int
    process: subprocess.Popen[bytes]
    log: Path


SPLIT_READ_MODELS = ("approvals", "lineage", "audit_trail", "stage_history")
"""With --topology split, the read models a `registrar project` process keeps beside the servers."""

TOPOLOGIES = ("up", "serve", "split")
"""up: `registrar up` as a user starts it (API, relay, every projector, ingest, embedded broker;
the embedded PostgreSQL unless --database machine). serve: `registrar serve` processes keeping
every read model themselves, no Kafka. split: serve keeping current_state only, beside a
`registrar project` process for the other read models, no Kafka."""


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (the broker `registrar up` starts, for one)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


class Servers:
    """The system under test, on its own ports: `registrar up` (the default), or `count`
    `registrar serve` processes on the fresh database (several processes are the way to use more
    than one core; one at a time follows the store for each read model, the others stand by),
    with `topology` split a `registrar project` process beside them."""

    def __init__(
        self,
        registrar: str,
        database_url: str | None,
        count: int,
        log_dir: Path,
        topology: str = "up",
    ) -> None:
        self.registrar, self.database_url, self.count = registrar, database_url, count
        self.topology = topology
        self.log_dir = log_dir
        self.processes: list[ServerProcess] = []

    @property
    def pids(self) -> list[int]:
        """Every process of the system under test (found again at each call: children come and
        go), the embedded PostgreSQL aside (it is counted as PostgreSQL)."""
        pids = [pid for p in self.processes for pid in _descendants(p.process.pid)]
        return [pid for pid in pids if not _is_postgres(pid)]

    @property
    def ports(self) -> list[int]:
        return [p.port for p in self.processes if p.port]  # not the projector's (0)

    async def start(self, timeout: float) -> None:
        for index in range(1 if self.topology == "up" else self.count):
            await self._start_one(index, timeout)
        if self.topology == "split":
            await self._start_projector(timeout)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("REGISTRAR_KAFKA_BOOTSTRAP", None)  # up: its own broker; serve: no bus
        env.pop("REGISTRAR_DATABASE_URL", None)
        if self.database_url is not None:
            env["REGISTRAR_DATABASE_URL"] = self.database_url
        env["REGISTRAR_HOME"] = str(self.log_dir / "home")
        env["REGISTRAR_LOG_LEVEL"] = "warning"
        return env

    async def _start_projector(self, timeout: float) -> None:
        log = self.log_dir / "project.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                [self.registrar, "project", *SPLIT_READ_MODELS], env=self._env(), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.log_dir,
                start_new_session=True,
            )  # fmt: skip
        projector = ServerProcess(0, process, log)
        self.processes.append(projector)
        give_up = time.monotonic() + timeout
        while b"Ctrl-C stops it." not in log.read_bytes():
            if process.poll() is not None or time.monotonic() > give_up:
                raise RuntimeError("`registrar project` did not start:\n" + self.tail(projector))
            await asyncio.sleep(0.1)

    async def _start_one(self, index: int, timeout: float) -> None:
        port = _free_port()
        env = self._env()
        role = "up" if self.topology == "up" else "serve"
        command = [self.registrar, role, "--host", HOST, "--port", str(port)]
        if self.topology == "split":
            command += ["--read-models", "current_state"]
        log = self.log_dir / f"server-{index}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=self.log_dir, start_new_session=True,
            )  # fmt: skip
        server = ServerProcess(port, process, log)
        self.processes.append(server)
        http = Http(HOST, port, timeout=2.0)
        give_up = time.monotonic() + timeout
        try:
            while time.monotonic() < give_up:
                if process.poll() is not None:
                    raise RuntimeError(f"`registrar {role}` exited ({process.returncode}):\n"
                                       + self.tail(server))  # fmt: skip
                try:
                    status, _ = await http.request(b"GET", b"/healthz")
                    # `up` answers before its consumers have joined their groups: wait for the
                    # whole system, as a user would before loading it.
                    if status == 200 and (role == "serve" or b"Ctrl-C" in log.read_bytes()):
                        await asyncio.sleep(3.0 if role == "up" else 0.0)
                        return
                except (OSError, asyncio.IncompleteReadError, HttpError, TimeoutError):
                    pass
                await asyncio.sleep(0.1)
            raise RuntimeError(
                f"`registrar {role}` not healthy after {timeout} s:\n" + self.tail(server)
            )
        finally:
            await http.close()

    @staticmethod
    def tail(server: ServerProcess, lines: int = 30) -> str:
        try:
            return "\n".join(server.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        for server in self.processes:
            if server.process.poll() is None:
                server.process.send_signal(signal.SIGINT)  # uvicorn shuts down cleanly on ^C
        for server in self.processes:
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait(timeout=5)
        self.processes.clear()


# --------------------------------------------------------------------------------------------
# Running it all
# --------------------------------------------------------------------------------------------


@dataclass
class Options:
    concurrency: list[int]
    phases: list[str]
    layouts: list[str]
    duration: float
    warmup: float
    count: int | None
    servers: int
    timeout: float
    py_spy: Path | None
    py_spy_rate: int
    py_spy_args: list[str]
    py_spy_phase: tuple[str, int, str]
    ceiling: bool
    ceiling_seconds: int
    registrar: str
    keep_logs: bool
    topology: str
    database: str


class Bench:
    def __init__(self, opts: Options, servers: Servers, database: str) -> None:
        self.opts = opts
        self.servers = servers
        self.meter = CpuMeter(lambda: servers.pids, database)
        self.profiled = False
        self.profile_note = ""

    async def _register_models(self, names: list[str]) -> None:
        http = Http(HOST, self.servers.ports[0], self.opts.timeout)
        try:
            for name in names:
                body = _dumps({"name": name, "description": "write-path benchmark", "tags": {}})
                status, data = await http.request(b"POST", b"/v1/models", body)
                if status != 201:
                    raise RuntimeError(f"registering model {name!r}: HTTP {status} {data[:300]!r}")
        finally:
            await http.close()

    def _should_profile(self, phase: str, concurrency: int, layout: str) -> bool:
        if self.opts.py_spy is None or self.profiled:
            return False
        want_phase, want_c, want_layout = self.opts.py_spy_phase
        return (
            phase == want_phase
            and concurrency == (want_c or max(self.opts.concurrency))
            and layout == (want_layout or self.opts.layouts[0])
        )

    def _start_profiler(self, seconds: float, log_dir: Path) -> subprocess.Popen[bytes] | None:
        assert self.opts.py_spy is not None
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        out = self.opts.py_spy
        fmt = {".svg": "flamegraph", ".txt": "raw"}.get(out.suffix, "speedscope")
        command = [
            py_spy, "record", "--pid", str(self.servers.pids[0]), "--rate", str(self.opts.py_spy_rate),
            "--duration", str(max(1, int(seconds))), "--format", fmt, "--output", str(out),
            *self.opts.py_spy_args,
        ]  # fmt: skip
        try:
            log = open(log_dir / "py-spy.log", "wb")
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        except OSError as exc:
            self.profile_note = f"py-spy could not start: {exc}"
            return None
        self.meter.profiler_pid = process.pid
        self.profile_note = f"py-spy ({fmt}, {self.opts.py_spy_rate} Hz) on server pid {self.servers.pids[0]} -> {out}"
        return process

    async def run_phase(
        self, phase: str, concurrency: int, layout: str, log_dir: Path
    ) -> PhaseResult:
        tag = f"{phase}-c{concurrency}-{layout}"
        models = (
            [f"{tag}-{i}" for i in range(concurrency)]
            if layout == "per-client"
            else [f"{tag}-shared"]
        )
        await self._register_models(models)
        ports = self.servers.ports
        connections = [
            Http(HOST, ports[i % len(ports)], self.opts.timeout) for i in range(concurrency)
        ]
        stats = Stats()
        start = time.perf_counter()
        measure_from = start + self.opts.warmup
        if self.opts.count is not None:
            quota = -(-self.opts.count // concurrency)
            window = Window(measure_from, measure_from + 3600.0, quota)  # an hour at most
        else:
            window = Window(measure_from, measure_from + self.opts.duration, None)
        client = PHASES[phase]
        gc.collect()
        gc.disable()
        profiler = None
        try:
            tasks = [
                asyncio.create_task(
                    client(connections[i], i, models[i % len(models)], stats, window)
                )
                for i in range(concurrency)
            ]
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            if self._should_profile(phase, concurrency, layout):
                profiler = self._start_profiler(
                    self.opts.duration if self.opts.count is None else 30, log_dir
                )
                self.profiled = True
            before = self.meter.sample()
            await asyncio.gather(*tasks)
            after = self.meter.sample()
        finally:
            gc.enable()
            for http in connections:
                await http.close()
            if profiler is not None:
                try:
                    profiler.wait(timeout=120)
                except subprocess.TimeoutExpired:
                    profiler.kill()
                    profiler.wait(timeout=5)
                self.meter.profiler_pid = None
                if profiler.returncode:
                    self.profile_note += f"  (py-spy exited {profiler.returncode}; see its log)"
        seconds = after.at - before.at
        return PhaseResult(phase, concurrency, layout, len(models), seconds, stats,
                           CpuMeter.shares(before, after))  # fmt: skip


def print_phase(result: PhaseResult, servers: int) -> None:
    stats = result.stats
    models = f"{result.models} model{'s' if result.models > 1 else ''}"
    print(
        f"\n== {result.name}  concurrency={result.concurrency}  layout={result.layout} ({models})"
        f"  servers={servers}  measured {result.seconds:.1f} s"
    )
    print(f"   {'command':<30}{'commands':>9}{'errors':>8}{'cmd/s':>9}"
          f"{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}  ms")  # fmt: skip
    errors_by_kind: Counter[str] = Counter()
    for key, n in stats.errors.items():
        errors_by_kind[key.split(":", 1)[0]] += n
    kinds = list(stats.latencies) + [k for k in errors_by_kind if k not in stats.latencies]
    rows = [(k, stats.latencies.get(k, []), errors_by_kind[k]) for k in kinds]
    if len(rows) > 1:
        rows.append(("all commands", [ns for v in stats.latencies.values() for ns in v],
                     sum(errors_by_kind.values())))  # fmt: skip
    for kind, values, errors in rows:
        p = _percentiles(values)
        rate = len(values) / result.seconds if result.seconds > 0 else 0.0
        print(f"   {kind:<30}{len(values):>9}{errors:>8}{rate:>9.1f}"
              f"{p['p50']:>8.2f}{p['p90']:>8.2f}{p['p99']:>8.2f}{p['max']:>8.2f}")  # fmt: skip
    cpu = result.cpu
    print(
        f"   CPU, % of one core (capacity {cpu['capacity']:.0f}): server {cpu['server']:.0f}"
        f" (kernel {cpu['server_sys']:.0f})"
        f"  postgres {cpu['postgres']:.0f}  load generator {cpu['loadgen']:.0f}"
        + (f"  py-spy {cpu['profiler']:.0f}" if cpu["profiler"] > 0.5 else "")
        + f"  other {cpu['other']:.0f} (of which other databases' backends"
        f" {cpu['postgres_others']:.0f})  | machine busy {cpu['machine']:.0f}"
    )
    commands = result.commands() + sum(stats.errors.values())
    if commands:
        per = 10 * result.seconds / commands  # % of a core -> ms per command
        print(
            f"   CPU per command: server {cpu['server'] * per:.2f} ms, postgres"
            f" {cpu['postgres'] * per:.2f} ms, load generator {cpu['loadgen'] * per:.2f} ms"
            "  (robust to other load on the machine; throughput figures are not)"
        )
    if result.layout == "shared" and stats.numbers:
        broken = gaps(stats)
        numbered = sum(len(n) for n in stats.numbers.values())
        print(f"   version numbers: {'GAPS OR REPEATS: ' + '; '.join(broken) if broken else 'gapless'}"
              f" ({numbered} versions answered on one model, warm-up included)")  # fmt: skip
    if stats.errors:
        total = sum(stats.errors.values())
        print(f"   !!!!!!!! {total} ERRORS IN THIS PHASE: its figures are not valid !!!!!!!!")
        for key, n in stats.errors.most_common():
            print(f"   !!! {n:>6} x {key}   e.g. {stats.samples.get(key, '')!r}")
    if stats.warmup_errors:
        print(f"   !!! errors during warm-up (not in the figures): {dict(stats.warmup_errors)}")


def print_summary(results: list[PhaseResult], ceiling: list[Any], opts: Options) -> None:
    print("\n" + "=" * 100)
    print(f"SUMMARY  ({describe_topology(opts)}; latency in ms; CPU in % of one core; {GOAL})")
    print(f"   {'phase':<10}{'c':>4}  {'layout':<11}{'commands':>9}{'errors':>8}{'cmd/s':>9}"
          f"{'p50':>8}{'p90':>8}{'p99':>8}{'max':>8}  {'server%':>8}{'pg%':>6}{'gen%':>6}{'other%':>7}"
          f"{'srv ms/cmd':>11}{'pg ms/cmd':>10}")  # fmt: skip
    for r in results:
        values = [ns for v in r.stats.latencies.values() for ns in v]
        p = _percentiles(values)
        rate = len(values) / r.seconds if r.seconds > 0 else 0.0
        errors = sum(r.stats.errors.values())
        per = 10 * r.seconds / max(1, len(values) + errors)
        print(f"   {r.name:<10}{r.concurrency:>4}  {r.layout:<11}{len(values):>9}{errors:>8}"
              f"{rate:>9.1f}{p['p50']:>8.2f}{p['p90']:>8.2f}{p['p99']:>8.2f}{p['max']:>8.2f}"
              f"  {r.cpu['server']:>8.0f}{r.cpu['postgres']:>6.0f}{r.cpu['loadgen']:>6.0f}"
              f"{r.cpu['other']:>7.0f}"
              f"{r.cpu['server'] * per:>11.2f}{r.cpu['postgres'] * per:>10.2f}"
              + ("   <-- ERRORS" if errors else ""))  # fmt: skip
    if ceiling:
        print(pg_insert_ceiling.describe(ceiling))
    else:
        print("PostgreSQL ceiling: not measured (--no-ceiling)")


def parse_args(argv: list[str] | None = None) -> Options:
    def int_list(text: str) -> list[int]:
        values = [int(v) for v in text.split(",") if v.strip()]
        if not values or any(v < 1 for v in values):
            raise argparse.ArgumentTypeError("positive integers, comma-separated")
        return values

    def choices(allowed: list[str]) -> Callable[[str], list[str]]:
        def parse(text: str) -> list[str]:
            values = [v.strip() for v in text.split(",") if v.strip()]
            bad = [v for v in values if v not in allowed]
            if not values or bad:
                raise argparse.ArgumentTypeError(f"comma-separated, from {allowed}")
            return values

        return parse

    parser = argparse.ArgumentParser(
        description="Write-path HTTP load benchmark of Registrar (prints figures, asserts nothing)."
    )
    parser.add_argument(
        "--concurrency",
        type=int_list,
        default=[1, 16],
        help="clients per phase, comma-separated (default 1,16)",
    )
    parser.add_argument(
        "--phases",
        type=choices(list(PHASES)),
        default=list(PHASES),
        help="register,mix (default both)",
    )
    parser.add_argument(
        "--layouts",
        type=choices(["per-client", "shared"]),
        default=["per-client", "shared"],
        help="per-client: a model per client; shared: all clients on one model "
        "(only for concurrency > 1). Default both",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per phase")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds first")
    parser.add_argument(
        "--count",
        type=int,
        default=None,
        help="measure this many commands per phase instead of --duration",
    )
    parser.add_argument(
        "--servers",
        type=int,
        default=1,
        help="`registrar serve` processes (own ports; clients spread round-robin)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="FILE",
        help="profile the first server with py-spy during one phase (see "
        "--py-spy-phase); .txt: raw collapsed stacks (bench/profile_summary.py "
        "reads them), .svg: flamegraph, other: speedscope JSON",
    )
    parser.add_argument(
        "--py-spy-phase",
        default="register",
        help="which phase to profile: PHASE[:CONCURRENCY[:LAYOUT]] (default: "
        "register at the highest concurrency, first layout)",
    )
    parser.add_argument("--py-spy-rate", type=int, default=100, help="py-spy samples/s")
    parser.add_argument(
        "--py-spy-args",
        default="--gil",
        help="more py-spy record arguments (default '--gil': sample only the thread running "
        "Python, so idle worker threads do not count)",
    )
    parser.add_argument(
        "--no-ceiling", dest="ceiling", action="store_false", help="skip the pgbench ceiling"
    )
    parser.add_argument("--ceiling-seconds", type=int, default=10)
    parser.add_argument("--registrar", default=None, help="the registrar executable")
    parser.add_argument(
        "--topology",
        choices=TOPOLOGIES,
        default="up",
        help="up (default): `registrar up` as a user starts it, with its embedded broker; serve:"
        " `registrar serve` keeping every read model, no Kafka; split: serve keeping"
        " current_state beside a `registrar project` process (production's layout without Kafka)",
    )
    parser.add_argument(
        "--database",
        choices=("embedded", "machine"),
        default="embedded",
        help="for --topology up: its embedded PostgreSQL (default), or a fresh database on the"
        " server of REGISTRAR_DATABASE_URL (serve and split always use the latter)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the server logs' folder")
    args = parser.parse_args(argv)
    if args.registrar and os.sep in args.registrar:
        args.registrar = str(Path(args.registrar).absolute())  # the server runs in another cwd
    registrar = args.registrar or next(
        (
            str(p)
            for p in (Path(sys.executable).parent / "registrar", REPO / ".venv/bin/registrar")
            if p.exists()
        ),  # fmt: skip
        shutil.which("registrar") or "registrar",
    )
    spec = (args.py_spy_phase.split(":") + ["", ""])[:3]
    if (
        spec[0] not in PHASES
        or (spec[1] and not spec[1].isdigit())
        or spec[2] not in ("", "per-client", "shared")
    ):
        parser.error("--py-spy-phase is PHASE[:CONCURRENCY[:LAYOUT]], e.g. register:16:shared")
    py_spy_phase = (spec[0], int(spec[1] or 0), spec[2])
    if args.count is not None and args.count < 1:
        parser.error("--count must be positive")
    if args.duration <= 0 or args.warmup < 0 or args.servers < 1:
        parser.error("--duration > 0, --warmup >= 0 and --servers >= 1 please")
    return Options(
        concurrency=args.concurrency, phases=args.phases, layouts=args.layouts,
        duration=args.duration, warmup=args.warmup, count=args.count, servers=args.servers,
        timeout=args.timeout, py_spy=args.py_spy, py_spy_rate=args.py_spy_rate,
        py_spy_args=args.py_spy_args.split(), py_spy_phase=py_spy_phase,
        ceiling=args.ceiling, ceiling_seconds=args.ceiling_seconds, registrar=registrar,
        keep_logs=args.keep_logs, topology=args.topology,
        database=args.database,
    )  # fmt: skip


async def amain(opts: Options) -> int:
    url = os.environ.get("REGISTRAR_DATABASE_URL") or pg_insert_ceiling.DEFAULT_URL
    url = re.sub(r"^postgres(ql)?(\+\w+)?://", "postgresql://", url)
    embedded = opts.topology == "up" and opts.database == "embedded"
    print(
        f"machine: {os.cpu_count()} cores; python {sys.version.split()[0]}; server {opts.registrar}"
    )
    print(f"system under test: {describe_topology(opts)}")
    print(GOAL)
    ceiling: list[Any] = []
    if opts.ceiling and not embedded:
        print(f"measuring the PostgreSQL ceiling ({opts.ceiling_seconds} s per pgbench script)...",
              flush=True)  # fmt: skip
        ceiling = await pg_insert_ceiling.measure(url, clients=16, threads=2,
                                                  seconds=opts.ceiling_seconds)  # fmt: skip
        print(pg_insert_ceiling.describe(ceiling), flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="registrar_bench_"))
    results: list[PhaseResult] = []
    async with contextlib.AsyncExitStack() as stack:
        database_url, database = None, "registrar"  # the embedded server's database
        if not embedded:
            server = pg_insert_ceiling.Server.from_url(url)
            db = await stack.enter_async_context(
                pg_insert_ceiling.fresh_database(server, "registrar_bench")
            )
            database_url, database = db.url(), db.database
        servers = Servers(opts.registrar, database_url, opts.servers, log_dir, opts.topology)
        try:
            await servers.start(timeout=120.0)
            print(f"database {database}; pid(s) {servers.pids} on port(s) {servers.ports};"
                  f" logs in {log_dir}", flush=True)  # fmt: skip
            bench = Bench(opts, servers, database)
            for concurrency in opts.concurrency:
                for layout in opts.layouts:
                    if layout == "shared" and concurrency == 1:
                        continue  # one client on one model is the per-client layout
                    for phase in opts.phases:
                        result = await bench.run_phase(phase, concurrency, layout, log_dir)
                        results.append(result)
                        print_phase(result, opts.servers)
                        if bench.profile_note:
                            print("   profile: " + bench.profile_note)
                            bench.profile_note = ""
                        sys.stdout.flush()
                        for s in servers.processes:
                            if s.process.poll() is not None:
                                raise RuntimeError("the server died:\n" + servers.tail(s))
        except BaseException:
            print(f"server logs kept in {log_dir}", file=sys.stderr)
            raise
        finally:
            servers.stop()
    print_summary(results, ceiling, opts)
    if not opts.keep_logs:
        shutil.rmtree(log_dir, ignore_errors=True)
    else:
        print(f"server logs kept in {log_dir}")
    failed = sum(sum(r.stats.errors.values()) for r in results)
    failed += sum(len(gaps(r.stats)) for r in results)
    if failed:
        print(f"\n!!! {failed} requests failed: see the phases marked ERRORS above !!!")
        return 1
    return 0


def describe_topology(opts: Options) -> str:
    if opts.topology == "up":
        where = "its embedded PostgreSQL" if opts.database == "embedded" else "a fresh database"
        return f"`registrar up` (API, relay, every projector, ingest, embedded broker) on {where}"
    servers = f"{opts.servers} x `registrar serve`"
    if opts.topology == "split":
        return f"{servers} (current_state) + `registrar project`, no Kafka"
    return f"{servers} keeping every read model, no Kafka"


async def amain_stoppable(opts: Options) -> int:
    """amain, cancelled by SIGTERM as asyncio.run cancels it on Ctrl-C: either way its clean-up
    (stop the servers, drop the database) runs before the process ends."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await amain(opts)


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    try:
        return asyncio.run(amain_stoppable(opts))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the server was stopped and the database dropped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
