"""`registrar up` as a user runs it, started and stopped from outside for benchmarks that measure
the whole system (bench/bus_lag.py, bench/idle_cpu.py); and the CPU time of every process it is
made of, read from /proc (Linux).

`up` runs with a temporary REGISTRAR_HOME, a free port, REGISTRAR_LOG_LEVEL=warning and no
REGISTRAR_KAFKA_BOOTSTRAP (so it starts its embedded broker, Tansu); its database is either the
embedded PostgreSQL it makes under REGISTRAR_HOME (what a user gets) or a fresh database on the
machine's server (REGISTRAR_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test), dropped
at the end. Its output goes to a log file, printed when something fails.

Nothing of Registrar is imported: the benchmarks see the system as its users do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from fresh_database import create_database, drop_database

REPO = Path(__file__).resolve().parent.parent
MACHINE_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
READY_LINE = "Ctrl-C stops it."
TICK = os.sysconf("SC_CLK_TCK")


def registrar_executable() -> Path:
    """The `registrar` script next to this interpreter, else the checkout's venv's."""
    beside = Path(sys.executable).parent / "registrar"
    return beside if beside.exists() else REPO / ".venv" / "bin" / "registrar"


def add_database_option(parser: argparse.ArgumentParser) -> None:
    """`--database embedded|machine`, as every benchmark of `registrar up` takes it."""
    parser.add_argument(
        "--database",
        choices=("embedded", "machine"),
        default="embedded",
        help="up's embedded PostgreSQL (default), or a fresh database on the machine's server",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Starting and stopping `registrar up`
# --------------------------------------------------------------------------------------------


@dataclass
class RegistrarUp:
    """One `registrar up` in a temporary REGISTRAR_HOME. `database`: "embedded" (its own
    PostgreSQL under REGISTRAR_HOME, the default a user gets) or "machine" (a fresh database on
    the machine's server)."""

    database: str = "embedded"
    keep: bool = False
    """Keep REGISTRAR_HOME (logs, embedded data) after stopping; it is kept anyway on failure."""
    home: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="registrar-up-")))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    database_url: str | None = None
    """The fresh database on the machine's server (machine mode only)."""
    started_in: float = 0.0
    failed: bool = False
    env: dict[str, str] = field(default_factory=dict)
    """More REGISTRAR_* settings for it (e.g. REGISTRAR_WEBHOOKS_ALLOW_PRIVATE)."""

    @property
    def log(self) -> Path:
        return self.home / "up.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 180.0, settle: float = 3.0) -> RegistrarUp:
        """Start it; return once it printed that everything started, answers GET /healthz, and
        `settle` more seconds passed (its Kafka consumers join their groups)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRAR_")}
        env |= {
            "REGISTRAR_HOME": str(self.home),
            "REGISTRAR_PORT": str(self.port),
            "REGISTRAR_HOST": "127.0.0.1",
            "REGISTRAR_LOG_LEVEL": "warning",
            **self.env,
        }
        if self.database == "machine":
            server = os.environ.get("REGISTRAR_DATABASE_URL") or MACHINE_SERVER
            self.database_url = asyncio.run(create_database(server))
            env["REGISTRAR_DATABASE_URL"] = self.database_url
        began = time.perf_counter()
        with open(self.log, "wb") as output:
            self.process = subprocess.Popen(
                [str(registrar_executable()), "up"],
                env=env,
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = began + timeout
        while READY_LINE not in self.log.read_text(errors="replace"):
            self._check_alive(deadline, "print that it started")
            time.sleep(0.1)
        while not self._healthy():
            self._check_alive(deadline, "answer GET /healthz")
            time.sleep(0.1)
        self.started_in = time.perf_counter() - began
        time.sleep(settle)
        self._check_alive(deadline + settle, "stay up")
        return self

    def _check_alive(self, deadline: float, what: str) -> None:
        assert self.process is not None
        if self.process.poll() is not None or time.perf_counter() > deadline:
            self.failed = True
            state = (
                f"exited with {self.process.returncode}"
                if self.process.poll() is not None
                else "timed out"
            )
            raise RuntimeError(f"registrar up did not {what} ({state}); its log:\n{self.tail()}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def postmaster(self) -> Postmaster | None:
        """The embedded PostgreSQL's postmaster (None in machine mode or before it is ready)."""
        if self.database != "embedded":
            return None
        return Postmaster.read(self.home / "postgres")

    def dsn(self) -> str:
        """A URL for asyncpg to the database `up` uses."""
        if self.database_url is not None:
            return self.database_url
        postmaster = self.postmaster()
        if postmaster is None:
            raise RuntimeError(f"no running embedded PostgreSQL under {self.home / 'postgres'}")
        return postmaster.url("registrar")

    def stop(self) -> None:
        """SIGINT (Ctrl-C) and up to 15 s for it to stop what it started, then SIGKILL; then
        make sure its broker, companion and embedded PostgreSQL are gone too."""
        if self.process is None:
            return
        tree = {p.pid: p for p in (read_proc(pid) for pid in descendants(self.pid)) if p}
        postmaster = self.postmaster()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                print("registrar up did not stop within 15 s of SIGINT: killed")
                self.failed = True
                self.process.kill()
                self.process.wait()
        elif self.process.returncode != 0:
            self.failed = True
        leftovers = [p for p in tree.values() if p.pid != self.pid and _same_process(p)]
        deadline = time.monotonic() + 10
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.2)
            leftovers = [p for p in leftovers if _same_process(p)]
        for process in leftovers:  # the watchdog, the broker or the companion outlived it
            print(f"left running after registrar up stopped, killed: {describe(process.pid)}")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
        if postmaster is not None:
            postmaster.wait_stopped()
        if self.database_url is not None:
            server = os.environ.get("REGISTRAR_DATABASE_URL") or MACHINE_SERVER
            asyncio.run(drop_database(server, self.database_url))
        if self.keep or self.failed:
            print(f"registrar up's home (log: up.log) is kept in {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> RegistrarUp:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None and exc[0] is not KeyboardInterrupt:
            self.failed = True
        self.stop()


@dataclass(frozen=True)
class Postmaster:
    """What an embedded server's postmaster.pid says (pid, port, socket directory)."""

    pid: int
    port: int
    socket_dir: str
    data_dir: Path

    @classmethod
    def read(cls, data_dir: Path) -> Postmaster | None:
        try:
            lines = (data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 8 or lines[7].strip() != "ready":
            return None
        return cls(int(lines[0]), int(lines[3]), lines[4].strip(), data_dir)

    def url(self, database: str) -> str:
        host = self.socket_dir or "127.0.0.1"
        return f"postgresql://postgres@/{database}?host={host}&port={self.port}"

    def wait_stopped(self, seconds: float = 15.0) -> None:
        """Wait for the server to stop (`up` or its watchdog stops it); stop it if it does not."""
        deadline = time.monotonic() + seconds
        while is_running(self.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if is_running(self.pid):
            print(f"the embedded PostgreSQL ({self.pid}) outlived registrar up: stopping it")
            os.kill(self.pid, signal.SIGINT)  # a fast shutdown
            deadline = time.monotonic() + 10
            while is_running(self.pid) and time.monotonic() < deadline:
                time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Processes and their CPU time, from /proc
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    started: int
    """Start time (clock ticks after boot): with the pid, names one process (pids are reused)."""
    ticks: int
    """utime + stime so far, in clock ticks."""
    reaped_ticks: int
    """cutime + cstime: CPU time of its children that ended and it waited for."""
    comm: str


def read_proc(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read().decode(errors="replace")
    except OSError:
        return None
    comm = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return Proc(
        pid,
        int(fields[1]),
        int(fields[19]),
        int(fields[11]) + int(fields[12]),
        int(fields[13]) + int(fields[14]),
        comm,
    )


def is_running(pid: int) -> bool:
    return read_proc(pid) is not None and not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            raw = stat.read()
    except OSError:
        return True
    return raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] in (b"Z", b"X")


def _same_process(process: Proc) -> bool:
    now = read_proc(process.pid)
    return now is not None and now.started == process.started and not _is_zombie(process.pid)


def all_processes() -> dict[int, Proc]:
    found = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            process = read_proc(int(entry.name))
            if process is not None:
                found[process.pid] = process
    return found


def descendants(root: int, processes: dict[int, Proc] | None = None) -> list[int]:
    """`root` and every process under it."""
    processes = all_processes() if processes is None else processes
    children: dict[int, list[int]] = {}
    for process in processes.values():
        children.setdefault(process.ppid, []).append(process.pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in processes:
            found.append(pid)
            todo.extend(children.get(pid, ()))
    return found


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as raw:
            return raw.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def describe(pid: int) -> str:
    return f"{pid} {cmdline(pid)[:120]}"


PARTS = ("registrar python", "broker", "postgres")
POSTGRES_AUXILIARIES = (
    "checkpointer",
    "background writer",
    "walwriter",
    "autovacuum launcher",
    "autovacuum worker",
    "logical replication launcher",
    "io worker",
    "walsummarizer",
    "archiver",
    "startup",
)
"""A PostgreSQL server's own processes, by their titles; the other children are backends."""


def classify(pid: int, up_pid: int) -> tuple[str, str]:
    """(part, role) of a process of `up`'s tree or of its PostgreSQL."""
    line = cmdline(pid)
    process = read_proc(pid)
    comm = process.comm if process is not None else "?"
    if pid == up_pid:
        return "registrar python", "up: API + relay (main process)"
    if "multiprocessing.spawn" in line:
        return "registrar python", "companion: projectors + promotions + ingest"
    if "multiprocessing.resource_tracker" in line:
        return "registrar python", "multiprocessing resource tracker"
    if "registrar.watchdog" in line:
        return "registrar python", "watchdog (polls `up` is alive)"
    if "tansu" in comm or " broker " in f" {line} ":
        return "broker", "Tansu broker"
    if comm == "postgres" or line.startswith("postgres"):
        title = line.removeprefix("postgres: ")
        if title == line:
            return "postgres", "postmaster"
        for auxiliary in POSTGRES_AUXILIARIES:
            if title.startswith(auxiliary):
                return "postgres", auxiliary
        return "postgres", "backends (connections)"
    return "other", f"{comm}"


@dataclass
class _Tracked:
    part: str
    role: str
    ppid: int
    first: int
    """Its ticks when first seen in the window (0 if it started in the window)."""
    last: int
    first_reaped: int
    last_reaped: int
    first_switches: int
    last_switches: int
    alive: bool = True


@dataclass
class Usage:
    """What one role's processes used over the window."""

    part: str
    role: str
    processes: int
    cpu_seconds: float
    switches: int
    """Context switches of their threads: how often they went to sleep or were woken (a process
    that polls shows here even when each wake-up costs too little CPU to see)."""


class TreeCpu:
    """CPU time of `registrar up`'s process tree and of its PostgreSQL over a window: sampled
    every call to `sample()`, so processes that start and end in between are counted too (a
    process that ends counts until its last sample; its parent's reaped time fills the rest).

    PostgreSQL: the embedded server's postmaster and all its children; or, on the machine's
    shared server, only the backends connected to `up`'s database (the server's own background
    processes serve every database and are left out)."""

    def __init__(self, up: RegistrarUp) -> None:
        self.up = up
        self.tracked: dict[tuple[int, int], _Tracked] = {}
        self.started_at = 0.0
        self.ended_at = 0.0
        self.machine_busy = (0, 0)

    def _members(self, processes: dict[int, Proc]) -> list[int]:
        pids = descendants(self.up.pid, processes)
        postmaster = self.up.postmaster()
        if postmaster is not None:
            pids += descendants(postmaster.pid, processes)
        elif self.up.database_url is not None:
            database = urlsplit(self.up.database_url).path.lstrip("/")
            pids += [
                pid
                for pid, process in processes.items()
                if process.comm == "postgres" and f" {database} " in cmdline(pid)
            ]
        return pids

    def start(self) -> None:
        self.tracked.clear()
        self.started_at = time.perf_counter()
        self.machine_busy = machine_jiffies()
        self._sample(first=True)

    def sample(self) -> None:
        self._sample(first=False)

    def stop(self) -> None:
        self._sample(first=False)
        self.ended_at = time.perf_counter()
        busy, total = machine_jiffies()
        self.machine_busy = (busy - self.machine_busy[0], total - self.machine_busy[1])

    def _sample(self, first: bool) -> None:
        processes = all_processes()
        seen = set()
        for pid in self._members(processes):
            process = processes[pid]
            key = (pid, process.started)
            seen.add(key)
            switches = context_switches(pid)
            tracked = self.tracked.get(key)
            if tracked is None:
                part, role = classify(pid, self.up.pid)
                self.tracked[key] = _Tracked(
                    part,
                    role,
                    process.ppid,
                    process.ticks if first else 0,
                    process.ticks,
                    process.reaped_ticks if first else 0,
                    process.reaped_ticks,
                    switches if first else 0,
                    switches,
                )
            else:
                tracked.last, tracked.last_reaped = process.ticks, process.reaped_ticks
                tracked.last_switches = max(tracked.last_switches, switches)
        for key, tracked in self.tracked.items():
            if key not in seen:
                tracked.alive = False

    @property
    def seconds(self) -> float:
        return self.ended_at - self.started_at

    def by_role(self) -> list[Usage]:
        """What each role used, in PARTS order, the busiest first within a part."""
        totals: dict[tuple[str, str], Usage] = {}
        ended_children: dict[int, int] = {}
        for tracked in self.tracked.values():
            if not tracked.alive:  # its whole life's time went into its parent's reaped time
                ended_children[tracked.ppid] = ended_children.get(tracked.ppid, 0) + tracked.last
        for (pid, _), tracked in self.tracked.items():
            usage = totals.setdefault(
                (tracked.part, tracked.role), Usage(tracked.part, tracked.role, 0, 0.0, 0)
            )
            usage.processes += 1
            usage.cpu_seconds += (tracked.last - tracked.first) / TICK
            usage.switches += tracked.last_switches - tracked.first_switches
            if tracked.alive:
                reaped = tracked.last_reaped - tracked.first_reaped - ended_children.get(pid, 0)
                if reaped > 0:
                    role = "short-lived processes (ended in the window)"
                    short = totals.setdefault(
                        (tracked.part, role), Usage(tracked.part, role, 0, 0.0, 0)
                    )
                    short.cpu_seconds += reaped / TICK
        order = {part: i for i, part in enumerate((*PARTS, "other"))}
        return sorted(totals.values(), key=lambda u: (order.get(u.part, 9), -u.cpu_seconds))

    def by_part(self) -> dict[str, float]:
        parts: dict[str, float] = {}
        for usage in self.by_role():
            parts[usage.part] = parts.get(usage.part, 0.0) + usage.cpu_seconds
        return parts

    def share(self, cpu_seconds: float) -> float:
        """`cpu_seconds` as % of one core over the window."""
        return 100 * cpu_seconds / self.seconds if self.seconds > 0 else 0.0

    def machine_share(self) -> float:
        """The whole machine's busy CPU over the window, as % of all its cores."""
        busy, total = self.machine_busy
        return 100 * busy / total if total else 0.0


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of all of `pid`'s threads so far."""
    total = 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/status", "rb") as status:
                for line in status:
                    if b"ctxt_switches:" in line:
                        total += int(line.split(b":")[1])
        except (OSError, ValueError):
            continue
    return total


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


# --------------------------------------------------------------------------------------------
# A minimal HTTP/1.1 keep-alive client: the load generator must cost little next to the server
# --------------------------------------------------------------------------------------------


class HttpError(Exception):
    """The response could not be read as HTTP/1.1."""


class Http:
    """One keep-alive connection; one request at a time."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self._head = f"Host: {host}:{port}\r\nContent-Type: application/json\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 2.0)

    async def request(self, method: bytes, path: bytes, body: bytes = b"") -> tuple[int, bytes]:
        """(status, body) of one request; raises on I/O errors (the connection is then closed)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(method, path, body)
        except BaseException:
            await self.close()
            raise

    async def _exchange(self, method: bytes, path: bytes, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None and self._writer is not None
        self._writer.write(
            b"%s %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n%s"
            % (method, path, self._head, len(body), body)
        )
        head = await self._reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status_line = lines[0].split(b" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
            raise HttpError(f"bad status line {lines[0][:80]!r}")
        length, close = -1, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                raise HttpError("chunked responses are not expected")
            elif name == b"connection":
                close = b"close" in value.lower()
        if length >= 0:
            data = await self._reader.readexactly(length)
        else:
            data, close = await self._reader.read(1 << 24), True
        if close:
            await self.close()
        return int(status_line[1]), data
