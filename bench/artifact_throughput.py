"""Artifact throughput of Registrar, side by side with raw copies on the same machine in one run:
how fast a version's files go up and come back down, and what that costs the server in memory.

Two data sets, written at the start into a temporary directory (removed at the end):

  big     one file of --big-mb MiB (default 1024) of random bytes;
  small   --small-count files (default 10,000) of 1-8 KiB of random bytes each, three
          directories deep.

For each store in --stores (default local,s3), each data set is uploaded into a new version with
the Python client (`registrar.Client.upload_artifacts`: the version is registered, every file
streamed up one after the other, then sealed) and downloaded again
(`Client.download_artifacts`: every file streamed down and checked against the manifest), the
client running in this process, `registrar up` in its own, started as a user starts it
(bench/registrar_up.py: a fresh REGISTRAR_HOME, a free port, its embedded broker, and its embedded
PostgreSQL unless --database machine):

  local   the store on local disk ($REGISTRAR_HOME/artifacts, the default a user gets);
  s3      the store on S3: a SeaweedFS server started here (tests/s3_server.py, the `weed` binary
          of the venv), `up` given REGISTRAR_ARTIFACTS_URI=s3://bucket/registrar and AWS_*.

Next to each transfer, a baseline on the same data: for local, `cp` (the big file) and `cp -r`
(the small tree) into a scratch directory; for s3, obstore straight to the same SeaweedFS (no
Registrar), the small files one after the other as the client sends them, the big file in 8 MiB
parts four at a time, as Registrar's server sends it on. Registrar's MB/s is printed as a ratio of
the baseline's (1.00 = as fast as the raw copy).

While each transfer runs, a thread reads every ~50 ms the resident memory (RSS) of `up`'s process
tree (`up` itself, which serves the API, and its children: the companion process, the watchdog,
the broker; the embedded PostgreSQL is not a child of `up` and is left out) and of this process
(the client). Printed: the tree's RSS just before, its peak minus that, and what it still held a
second after. The goal it shows: a 1 GiB file must not raise the server's memory by more than
about 100 MB. Figures are printed, never asserted; on a shared 2-core machine the client, the
server and SeaweedFS compete for the same cores, and the CPU columns say where the time went.

    .venv/bin/python bench/artifact_throughput.py
    .venv/bin/python bench/artifact_throughput.py --big-mb 128 --small-count 1000 --stores local
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import os
import random
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from unittest import mock

import obstore
import psutil
from obstore.store import S3Store

from registrar import Client

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from registrar_up import RegistrarUp, add_database_option  # noqa: E402  (bench/ is not a package)

# tests/s3_server.py is how the tests start SeaweedFS; reused rather than copied (tests/ is not a
# package either).
sys.path.insert(0, str(BENCH.parent / "tests"))
from s3_server import S3Server, start_s3_server  # noqa: E402

T = TypeVar("T")
MiB = 1024 * 1024
GOAL_MB = 100
GOAL = f"a {1024} MiB file must not raise the server's memory by more than ~{GOAL_MB} MB"
SAMPLE_SECONDS = 0.05
MEMBERS_SECONDS = 1.0
"""How often the sampler looks for processes that joined or left `up`'s tree."""
S3_PART = 8 * MiB
S3_PARTS_IN_FLIGHT = 4
"""As Registrar's server puts a large blob (services/artifacts/blobs.py)."""
S3_PREFIX = "registrar"
STORES = ("local", "s3")
CLIENT = "Python client in the bench process (registrar.Client, blocking), not the CLI"


# --------------------------------------------------------------------------------------------
# The data
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSet:
    name: str
    root: Path
    """A directory holding the files (what is uploaded)."""
    files: int
    bytes: int

    @property
    def label(self) -> str:
        if self.files == 1:
            return f"1 file x {self.bytes / MiB:,.0f} MiB"
        return f"{self.files:,} files x {self.bytes / self.files / 1024:.1f} KiB"


def write_big(root: Path, mib: int) -> DataSet:
    """One file of `mib` MiB of random bytes (nothing a store could compress or deduplicate)."""
    root.mkdir(parents=True)
    with open(root / "model.bin", "wb") as out:
        for _ in range(mib):
            out.write(os.urandom(MiB))
    return DataSet("big", root, 1, mib * MiB)


def write_small(root: Path, count: int, seed: int = 7) -> DataSet:
    """`count` files of 1-8 KiB of random bytes, three directories deep (8 x 8 x 8 folders)."""
    rng = random.Random(seed)
    total = 0
    for i in range(count):
        folder = root / f"layer-{i % 8}" / f"block-{i // 8 % 8}" / f"shard-{i // 64 % 8}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.randint(1024, 8192)
        (folder / f"part-{i:06d}.bin").write_bytes(rng.randbytes(size))
        total += size
    return DataSet("small", root, count, total)


def tree_size(root: Path) -> tuple[int, int]:
    """(files, bytes) under `root`."""
    files = size = 0
    for folder, _, names in os.walk(root):
        for name in names:
            files += 1
            size += os.stat(os.path.join(folder, name)).st_size
    return files, size


# --------------------------------------------------------------------------------------------
# Memory and CPU of `up`'s process tree while a transfer runs
# --------------------------------------------------------------------------------------------


@dataclass
class Resources:
    """What one transfer cost: RSS of `up`'s tree (and of `up` alone, and of the client) in MB,
    and CPU seconds of the tree, the client and SeaweedFS."""

    tree_before: float = 0.0
    tree_peak: float = 0.0
    tree_after: float = 0.0
    api_before: float = 0.0
    api_peak: float = 0.0
    client_before: float = 0.0
    client_peak: float = 0.0
    server_cpu: float = 0.0
    api_cpu: float = 0.0
    client_cpu: float = 0.0
    weed_cpu: float = 0.0
    samples: int = 0


def _rss_and_cpu(process: psutil.Process) -> tuple[int, float] | None:
    try:
        with process.oneshot():
            times = process.cpu_times()
            return process.memory_info().rss, times.user + times.system
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


class TreeWatch:
    """Samples, in a thread, the RSS and CPU time of `up`'s process tree every SAMPLE_SECONDS
    between `begin()` and `end()`."""

    def __init__(self, up_pid: int, weed_pid: int | None) -> None:
        self.root = psutil.Process(up_pid)
        self.me = psutil.Process()
        self.weed = psutil.Process(weed_pid) if weed_pid is not None else None
        self._members: dict[int, psutil.Process] = {}
        self._members_at = 0.0
        self._cpu_first: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current = Resources()

    def _tree(self) -> list[psutil.Process]:
        now = time.monotonic()
        if now - self._members_at >= MEMBERS_SECONDS:
            self._members_at = now
            try:
                found = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                found = []
            # Keep the Process objects already known: psutil checks a pid was not reused by them.
            self._members = {p.pid: self._members.get(p.pid, p) for p in found}
        return list(self._members.values())

    def _sample(self) -> tuple[float, float, float]:
        """(tree RSS, `up`'s RSS, client RSS) in MB, noting CPU times on the way."""
        tree = api = 0
        for process in self._tree():
            seen = _rss_and_cpu(process)
            if seen is None:
                continue
            rss, cpu = seen
            tree += rss
            if process.pid == self.root.pid:
                api = rss
            self._cpu_first.setdefault(process.pid, cpu)
            self._cpu_last[process.pid] = cpu
        client = self.me.memory_info().rss
        return tree / 1e6, api / 1e6, client / 1e6

    def _cpu(self) -> float:
        return sum(self._cpu_last[pid] - first for pid, first in self._cpu_first.items())

    def begin(self) -> None:
        """Take the baseline (the median of samples over half a second), then start sampling."""
        self._members_at = 0.0
        self._cpu_first.clear()
        self._cpu_last.clear()
        quiet = []
        for _ in range(10):
            quiet.append(self._sample())
            time.sleep(SAMPLE_SECONDS)
        quiet.sort()
        tree, api, client = quiet[len(quiet) // 2]
        self.current = Resources(
            tree_before=tree,
            tree_peak=tree,
            api_before=api,
            api_peak=api,
            client_before=client,
            client_peak=client,
        )
        self._client_cpu = sum(os.times()[:2])
        self._weed_cpu = self._weed_seconds()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            self._note(*self._sample())

    def _note(self, tree: float, api: float, client: float) -> None:
        now = self.current
        now.tree_peak = max(now.tree_peak, tree)
        now.api_peak = max(now.api_peak, api)
        now.client_peak = max(now.client_peak, client)
        now.samples += 1

    def _weed_seconds(self) -> float:
        if self.weed is None:
            return 0.0
        seen = _rss_and_cpu(self.weed)
        return seen[1] if seen is not None else 0.0

    def end(self, settle: float = 1.0) -> Resources:
        """Stop sampling; what the transfer cost, with the tree's RSS `settle` seconds later."""
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._note(*self._sample())
        result = self.current
        result.server_cpu = self._cpu()
        root = self.root.pid
        result.api_cpu = self._cpu_last.get(root, 0.0) - self._cpu_first.get(root, 0.0)
        result.client_cpu = sum(os.times()[:2]) - self._client_cpu
        result.weed_cpu = self._weed_seconds() - self._weed_cpu
        time.sleep(settle)
        result.tree_after = self._sample()[0]
        return result


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class Pace:
    """The client's progress callback: when each byte count was reached, to tell whether the pace
    changed along a transfer, and how long the call went on after the last byte moved."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []
        self.total = 0

    def __call__(self, done: int, total: int) -> None:
        self.marks.append((time.perf_counter(), done))
        self.total = total

    def at(self, fraction: float) -> float:
        """When the bytes moved first reached `fraction` of the total."""
        wanted = fraction * self.total
        index = bisect.bisect_left([done for _, done in self.marks], wanted)
        return self.marks[min(index, len(self.marks) - 1)][0]

    def last_byte(self) -> float | None:
        return self.at(1.0) if self.marks and self.total else None

    def tenths(self, units: float) -> tuple[float, float] | None:
        """`units` per second over the first tenth of the bytes and over the last tenth."""
        if len(self.marks) < 3 or not self.total:
            return None
        first = self.at(0.1) - self.marks[0][0]
        last = self.at(1.0) - self.at(0.9)
        return (units / 10 / first if first > 0 else 0.0, units / 10 / last if last > 0 else 0.0)


@dataclass
class Transfer:
    """One timed transfer, Registrar's or a baseline's."""

    store: str
    data: DataSet
    direction: str
    """"upload" or "download" (a `cp` baseline is both)."""
    how: str
    seconds: float = 0.0
    ended: float = 0.0
    error: str = ""
    resources: Resources | None = None
    pace: Pace | None = None

    @property
    def unit(self) -> str:
        return "MiB" if self.data.files == 1 else "files"

    def tenths(self) -> tuple[float, float] | None:
        """Pace in the first and the last tenth of the bytes, in MiB/s (one file) or files/s."""
        if self.pace is None or self.error:
            return None
        units = self.data.bytes / MiB if self.data.files == 1 else self.data.files
        return self.pace.tenths(units)

    def tail(self) -> float | None:
        """Seconds the call went on after its last byte moved (for an upload: the server storing
        the last file and sealing; for a download: the client's last checks)."""
        if self.pace is None or self.error or self.pace.last_byte() is None:
            return None
        return self.ended - self.pace.last_byte()  # type: ignore[operator]

    @property
    def mb_per_second(self) -> float:
        return self.data.bytes / MiB / self.seconds if self.seconds > 0 and not self.error else 0.0

    @property
    def files_per_second(self) -> float:
        return self.data.files / self.seconds if self.seconds > 0 and not self.error else 0.0


@dataclass
class Run:
    transfers: list[Transfer] = field(default_factory=list)
    baselines: dict[tuple[str, str, str], Transfer] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def baseline(self, store: str, data: str, direction: str) -> Transfer | None:
        return self.baselines.get((store, data, direction))


def timed(transfer: Transfer, action: Callable[[], T]) -> T | None:
    """Run `action`, noting in `transfer` how long it took, or what went wrong; its result."""
    began = time.perf_counter()
    result = None
    try:
        result = action()
    except Exception as failed:  # a failure is a result too: report it, go on with the rest
        transfer.error = f"{type(failed).__name__}: {failed}".splitlines()[0][:200]
    transfer.ended = time.perf_counter()
    transfer.seconds = transfer.ended - began
    state = f"FAILED ({transfer.error})" if transfer.error else f"{transfer.seconds:.1f} s"
    print(f"  {transfer.store:<6}{transfer.data.name:<6}{transfer.direction:<9}"
          f"{transfer.how:<34}{state}", flush=True)  # fmt: skip
    return result


def checked_copy(data: DataSet, dest: Path) -> None:
    """Raise unless `dest` holds as many files and bytes as `data`."""
    found = tree_size(dest)
    if found != (data.files, data.bytes):
        raise RuntimeError(
            f"{dest} holds {found[0]} files of {found[1]} bytes, expected {data.files} of"
            f" {data.bytes}"
        )


# --------------------------------------------------------------------------------------------
# Baselines
# --------------------------------------------------------------------------------------------


def cp_baseline(run: Run, data: DataSet, scratch: Path) -> None:
    """`cp` of the big file, `cp -r` of the small tree, into a scratch directory: one copy serves
    as the baseline of both directions (a local store's upload and download are both a copy)."""
    dest = scratch / f"cp-{data.name}"
    if data.files == 1:
        (source,) = data.root.iterdir()
        dest.mkdir()
        command = ["cp", str(source), str(dest / source.name)]
        how = "cp"
    else:
        command = ["cp", "-r", str(data.root), str(dest)]
        how = "cp -r"

    def copy() -> None:
        subprocess.run(command, check=True)
        checked_copy(data, dest)

    transfer = Transfer("local", data, "copy", how)
    timed(transfer, copy)
    shutil.rmtree(dest, ignore_errors=True)
    for direction in ("upload", "download"):
        run.baselines[("local", data.name, direction)] = transfer


def s3_store(s3: S3Server, prefix: str) -> S3Store:
    return S3Store(
        s3.bucket,
        prefix=prefix,
        config={
            "endpoint": s3.endpoint_url,
            "access_key_id": s3.access_key,
            "secret_access_key": s3.secret_key,
            "region": s3.region,
        },
        client_options={"allow_http": True, "timeout": "24h"},
    )


def warm_up(s3: S3Server) -> None:
    """A first write makes SeaweedFS allocate its volumes: not to be counted against whoever
    writes first (the baseline)."""
    store = s3_store(s3, "warm-up")
    obstore.put(store, "big", os.urandom(3 * S3_PART), chunk_size=S3_PART)
    for i in range(20):
        obstore.put(store, f"small/{i}", os.urandom(4096), use_multipart=False)
    bytes(obstore.get(store, "big").bytes())
    obstore.delete(store, ["big", *(f"small/{i}" for i in range(20))])


def weed_and_client_cpu(s3: S3Server, action: Callable[[], object]) -> Resources:
    """CPU seconds SeaweedFS and this process spent while `action` ran."""
    assert s3.process is not None
    weed = psutil.Process(s3.process.pid)

    def seconds() -> tuple[float, float]:
        times = weed.cpu_times()
        return times.user + times.system, sum(os.times()[:2])

    before = seconds()
    action()
    after = seconds()
    return Resources(weed_cpu=after[0] - before[0], client_cpu=after[1] - before[1])


def s3_baseline(run: Run, data: DataSet, s3: S3Server, scratch: Path) -> None:
    """obstore straight to SeaweedFS: put every file, then get every file back into scratch."""
    store = s3_store(s3, f"baseline/{data.name}")
    files = sorted(p for p in data.root.rglob("*") if p.is_file())
    keys = [p.relative_to(data.root).as_posix() for p in files]

    def put_all() -> None:
        for path, key in zip(files, keys, strict=True):
            if data.files == 1:
                obstore.put(
                    store, key, path, chunk_size=S3_PART, max_concurrency=S3_PARTS_IN_FLIGHT
                )
            else:
                obstore.put(store, key, path.read_bytes(), use_multipart=False)

    dest = scratch / f"s3-{data.name}"

    def get_all() -> None:
        for key in keys:
            target = dest / key
            target.parent.mkdir(parents=True, exist_ok=True)
            result = obstore.get(store, key)
            with open(target, "wb") as out:
                for chunk in result.stream(min_chunk_size=MiB):
                    out.write(chunk)
        checked_copy(data, dest)

    how = "obstore put" + (f" ({S3_PART // MiB} MiB parts x{S3_PARTS_IN_FLIGHT})" if
                           data.files == 1 else ", one by one")  # fmt: skip
    up = Transfer("s3", data, "upload", how)
    up.resources = weed_and_client_cpu(s3, lambda: timed(up, put_all))
    down = Transfer("s3", data, "download", "obstore get" + how[11:])
    down.resources = weed_and_client_cpu(s3, lambda: timed(down, get_all))
    shutil.rmtree(dest, ignore_errors=True)
    run.baselines[("s3", data.name, "upload")] = up
    run.baselines[("s3", data.name, "download")] = down


# --------------------------------------------------------------------------------------------
# Registrar
# --------------------------------------------------------------------------------------------


@dataclass
class UpWithEnvironment(RegistrarUp):
    """`registrar up` given more environment (the S3 store's REGISTRAR_ARTIFACTS_URI and AWS_*):
    RegistrarUp hands `up` none of this process's REGISTRAR_* variables and takes no others, so
    the Popen it makes gets them added here (subprocess.Popen is replaced for the length of
    `start` only: nothing else starts a process meanwhile)."""

    environment: dict[str, str] = field(default_factory=dict)

    def start(self, timeout: float = 180.0, settle: float = 3.0) -> RegistrarUp:
        popen = subprocess.Popen
        extra = self.environment

        def with_environment(*args: object, **kwargs: object) -> object:
            kwargs["env"] = {**kwargs["env"], **extra}  # type: ignore[dict-item]
            return popen(*args, **kwargs)  # type: ignore[call-overload]

        with mock.patch.object(subprocess, "Popen", with_environment):
            return super().start(timeout, settle)


def upload(client: Client, model: str, data: DataSet, pace: Pace) -> int:
    """Upload `data` into a new version of `model`, sealed; the version's number."""
    manifest = client.upload_artifacts(model, data.root, progress=pace)
    if (manifest.file_count, manifest.bytes) != (data.files, data.bytes):
        raise RuntimeError(
            f"sealed {manifest.file_count} files of {manifest.bytes} bytes, sent {data.files}"
            f" of {data.bytes}"
        )
    return int(manifest.version)


def download(
    client: Client, model: str, version: int, data: DataSet, dest: Path, pace: Pace
) -> None:
    client.download_artifacts(model, version, dest, progress=pace)
    checked_copy(data, dest)


def registrar_transfers(
    run: Run, store: str, datasets: list[DataSet], up: RegistrarUp, weed_pid: int | None,
    scratch: Path,
) -> None:  # fmt: skip
    """Upload each data set into a new version and download it again, watching `up`'s tree."""
    watch = TreeWatch(up.pid, weed_pid)
    with Client(up.base_url) as client:
        for data in datasets:
            model = f"bench-{data.name}"
            client.create_model(model)
            watch.begin()
            pace = Pace()
            transfer = Transfer(store, data, "upload", "Registrar (client)", pace=pace)
            version = timed(transfer, lambda: upload(client, model, data, pace))  # noqa: B023
            transfer.resources = watch.end()
            run.transfers.append(transfer)
            if version is not None:
                dest = scratch / f"registrar-{store}-{data.name}"
                watch.begin()
                pace = Pace()
                transfer = Transfer(store, data, "download", "Registrar (client)", pace=pace)
                timed(transfer, lambda: download(client, model, version, data, dest, pace))  # noqa: B023
                transfer.resources = watch.end()
                run.transfers.append(transfer)
                shutil.rmtree(dest, ignore_errors=True)
            if not up.alive():
                raise RuntimeError(f"registrar up ended during the transfers:\n{up.tail(30)}")


def with_registrar(
    run: Run, store: str, datasets: list[DataSet], database: str, scratch: Path,
    s3: S3Server | None = None,
) -> None:  # fmt: skip
    environment = s3.environment(S3_PREFIX) if s3 is not None else {}
    up = UpWithEnvironment(database=database, environment=environment)
    with up:
        up.start()
        where = environment.get("REGISTRAR_ARTIFACTS_URI", f"{up.home}/artifacts")
        print(f"registrar up (store {where}) started in {up.started_in:.1f} s", flush=True)
        weed_pid = s3.process.pid if s3 is not None and s3.process is not None else None
        registrar_transfers(run, store, datasets, up, weed_pid, scratch)
        if "Traceback" in up.log.read_text(errors="replace"):
            run.notes.append(f"{store}: up's log holds a traceback; it ends:\n{up.tail(30)}")


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------


def print_throughput(run: Run) -> None:
    print("\nThroughput (MiB = 2^20 bytes; ratio = Registrar's MiB/s / the baseline's):")
    head = (
        f"{'store':<6} {'data':<24} {'direction':<9} {'seconds':>8} {'MiB/s':>8} {'files/s':>8}"
        f"  {'baseline':<36} {'seconds':>8} {'MiB/s':>8}  {'ratio':>6}"
    )
    print(head)
    print("-" * len(head))
    for t in run.transfers:
        base = run.baseline(t.store, t.data.name, t.direction)
        if t.error:
            mine = f"{'FAILED after ' + format(t.seconds, '.1f') + ' s':>26}"
        else:
            per_file = f"{t.files_per_second:>8.0f}" if t.data.files > 1 else f"{'':>8}"
            mine = f"{t.seconds:>8.2f} {t.mb_per_second:>8.1f} {per_file}"
        if base is None:
            theirs, ratio = f"{'(none)':<36} {'':>8} {'':>8}", ""
        elif base.error:
            theirs, ratio = f"{base.how + ' FAILED':<36} {'':>8} {'':>8}", ""
        else:
            theirs = f"{base.how:<36} {base.seconds:>8.2f} {base.mb_per_second:>8.1f}"
            ratio = f"{t.mb_per_second / base.mb_per_second:.2f}" if not t.error else ""
        print(f"{t.store:<6} {t.data.label:<24} {t.direction:<9} {mine}  {theirs}  {ratio:>6}")
    print(
        "(local: one `cp` is the baseline of both directions; every read, Registrar's and the"
        " baselines', comes\n from the page cache, the data having just been written)"
    )
    for t in run.transfers + list({id(b): b for b in run.baselines.values()}.values()):
        if t.error:
            print(f"  {t.store} {t.data.name} {t.direction} ({t.how}) failed: {t.error}")


def print_pace(run: Run) -> None:
    print(
        "\nAlong each Registrar transfer (from the client's progress callback): the pace over the"
        " first and the last\ntenth of the bytes, and how long the call went on after the last"
        " byte moved (upload: the server\nfinishing the last file, then sealing; download: the"
        " client's last checks and renames):"
    )
    head = (
        f"{'store':<6} {'data':<6} {'direction':<9} {'unit':<8} {'first 10%':>10} {'last 10%':>10}"
        f" {'after last byte s':>18}"
    )
    print(head)
    print("-" * len(head))
    for t in run.transfers:
        tenths, tail = t.tenths(), t.tail()
        if tenths is None or tail is None:
            continue
        print(
            f"{t.store:<6} {t.data.name:<6} {t.direction:<9} {t.unit + '/s':<8}"
            f" {tenths[0]:>10.1f} {tenths[1]:>10.1f} {tail:>18.2f}"
        )


def print_resources(run: Run) -> None:
    print(
        "\nMemory (RSS, MB = 10^6 bytes) of `registrar up`'s process tree (without its"
        " PostgreSQL) and of `up`\nalone (the API), sampled every"
        f" {SAMPLE_SECONDS * 1000:.0f} ms; CPU seconds over the transfer of the whole tree (its"
        " broker\nand companion idle along), of `up` alone, of the client (this process) and of"
        " SeaweedFS:"
    )
    head = (
        f"{'store':<6} {'data':<6} {'direction':<9} {'tree before':>11} {'peak +':>7}"
        f" {'1 s after +':>11} {'up peak +':>9} {'client peak +':>13}"
        f"  {'CPU tree':>8} {'up':>6} {'client':>6} {'weed':>6} {'samples':>7}"
    )
    print(head)
    print("-" * len(head))
    for t in run.transfers:
        r = t.resources
        if r is None:
            continue
        weed = f"{r.weed_cpu:>6.1f}" if t.store == "s3" else f"{'':>6}"
        print(
            f"{t.store:<6} {t.data.name:<6} {t.direction:<9} {r.tree_before:>11.0f}"
            f" {r.tree_peak - r.tree_before:>7.1f} {r.tree_after - r.tree_before:>11.1f}"
            f" {r.api_peak - r.api_before:>9.1f} {r.client_peak - r.client_before:>13.1f}"
            f"  {r.server_cpu:>8.1f} {r.api_cpu:>6.1f} {r.client_cpu:>6.1f} {weed} {r.samples:>7}"
        )
    for (store, _, direction), b in run.baselines.items():
        if b.resources is not None and not b.error:
            r = b.resources
            print(
                f"{store:<6} {b.data.name:<6} {direction:<9} {'(obstore straight to S3)':>55}"
                f"  {'':>8} {'':>6} {r.client_cpu:>6.1f} {r.weed_cpu:>6.1f}"
            )
    big = [t for t in run.transfers if t.data.name == "big" and t.resources is not None]
    if big:
        worst = max(big, key=lambda t: t.resources.tree_peak - t.resources.tree_before)  # type: ignore[union-attr]
        assert worst.resources is not None
        rise = worst.resources.tree_peak - worst.resources.tree_before
        verdict = "meets" if rise <= GOAL_MB else "MISSES"
        print(
            f"goal: {GOAL}: {verdict} it (largest rise {rise:.0f} MB, {worst.store}"
            f" {worst.direction} of {worst.data.label})"
        )


def machine_line() -> str:
    memory = psutil.virtual_memory()
    return (
        f"machine: {os.cpu_count()} cores, {memory.total / 1e9:.0f} GB RAM"
        f" ({memory.available / 1e9:.0f} GB available), load average"
        f" {' '.join(f'{x:.1f}' for x in os.getloadavg())}; python {sys.version.split()[0]}"
    )


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mb", type=int, default=1024, help="the big file's size in MiB")
    parser.add_argument("--small-count", type=int, default=10_000, help="how many small files")
    parser.add_argument(
        "--stores",
        type=lambda s: [x.strip() for x in s.split(",") if x.strip()],
        default=list(STORES),
        help="comma-separated, of local,s3 (default both)",
    )
    add_database_option(parser)
    args = parser.parse_args(argv)
    if args.big_mb < 1 or args.small_count < 1:
        parser.error("--big-mb and --small-count must be positive")
    unknown = set(args.stores) - set(STORES)
    if unknown or not args.stores:
        parser.error(f"--stores takes some of {','.join(STORES)}, got {','.join(args.stores)}")
    return args


@contextlib.contextmanager
def seaweedfs(directory: Path) -> Iterator[S3Server]:
    s3 = start_s3_server(directory)
    try:
        yield s3
    finally:
        s3.stop()


def measure_store(
    run: Run, store: str, datasets: list[DataSet], database: str, work: Path, scratch: Path
) -> None:
    if store == "local":
        print("store local: baselines, then Registrar", flush=True)
        for data in datasets:
            cp_baseline(run, data, scratch)
        with_registrar(run, "local", datasets, database, scratch)
        return
    print("store s3: SeaweedFS, baselines, then Registrar", flush=True)
    with seaweedfs(work / "seaweedfs") as s3:
        print(f"SeaweedFS S3 at {s3.endpoint_url}, up in {s3.startup_seconds:.1f} s", flush=True)
        warm_up(s3)
        for data in datasets:
            s3_baseline(run, data, s3, scratch)
        with_registrar(run, "s3", datasets, database, scratch, s3)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print("command: " + shlex.join([sys.executable, *sys.argv]))
    print(
        f"options: --big-mb {args.big_mb} --small-count {args.small_count}"
        f" --stores {','.join(args.stores)} --database {args.database}"
    )
    print(machine_line())
    print(f"transfers: {CLIENT}; `registrar up` in its own process tree")
    began = time.perf_counter()
    run = Run()
    work = Path(tempfile.mkdtemp(prefix="artifact-throughput-"))
    try:
        print(f"writing the data under {work} ...", flush=True)
        datasets = [
            write_big(work / "data" / "big", args.big_mb),
            write_small(work / "data" / "small", args.small_count),
        ]
        print("  " + "; ".join(f"{d.name}: {d.label} = {d.bytes / MiB:,.1f} MiB" for d in datasets))
        scratch = work / "scratch"
        scratch.mkdir()
        for store in args.stores:
            try:
                measure_store(run, store, datasets, args.database, work, scratch)
            except Exception as failed:  # the other store's figures are still worth printing
                run.notes.append(f"store {store} stopped early: {type(failed).__name__}: {failed}")
                print(f"store {store} stopped early: {failed}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_throughput(run)
    print_pace(run)
    print_resources(run)
    for note in run.notes:
        print("note: " + note)
    print(f"\nwhole run: {time.perf_counter() - began:.0f} s; {machine_line()}")
    errors = [t for t in run.transfers if t.error] + [b for b in run.baselines.values() if b.error]
    return 1 if errors or run.notes else 0


if __name__ == "__main__":
    sys.exit(main())
