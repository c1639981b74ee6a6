"""Side by side in one run: the real MLflow client against `mlflow server`, against Registrar
(`registrar up`), and against a stub that answers at once (the client's own ceiling).

Three servers, each started for its phase and stopped after it, so that nothing idles beside the
server being measured (an idle `registrar up` alone takes about a third of a core):

  mlflow     `mlflow server --backend-store-uri postgresql+psycopg2://... --workers 2` from a
             separate virtualenv (the full `mlflow` package and psycopg2-binary), created on first
             use under ~/.cache/registrar-bench/mlflow-venv (or --mlflow-venv);
  registrar  `registrar up` from this repository's venv (--registrar-topology up, the default):
             API, relay, projectors and consumers in one process, with its own embedded
             Kafka-compatible broker (Tansu); REGISTRAR_DATABASE_URL names a database on the same
             PostgreSQL server as MLflow's. Loading starts once it prints "Ctrl-C stops it.",
             /healthz answers and --settle seconds have passed (its consumers join their groups).
             Other topologies, labelled as such in the output: `split` (`registrar serve
             --read-models current_state` beside `registrar project` for the other read models,
             no Kafka) and `serve` (one `registrar serve` keeping every read model, no Kafka);
  stub       bench/mlflow_stub.py: a canned, schema-valid answer to every call, at once. What the
             clients reach against it is the ceiling their own CPU sets on this machine.

Both real servers use the PostgreSQL server of REGISTRAR_DATABASE_URL (default
postgresql://postgres@127.0.0.1:5432/test), each on a fresh database dropped at the end.

The load is the MLflow client of this venv (mlflow-skinny, its INFO logging off): concurrency c
runs c client processes, one MlflowClient each owning one registered model, for --duration
seconds after --warmup seconds. Workloads (--workload):

  pairs  (default) create_model_version, then transition_model_version_stage -> Staging
  five   the same, then -> Production (archive_existing_versions), get_model_version and
         search_model_versions("name = '<its model>'", max_results=10)

Order: for each concurrency level, mlflow, then registrar, then the stub, with the same duration
and warm-up. Printed: the machine, the commands, per level and server each operation's and each
loop's p50 / p99 and loops per second, then a summary against issue 14's goals (Registrar >= 3x
MLflow's throughput at 16 clients, a sequential p50 per pair <= 1/3 of MLflow's, >= 60% of the
stub's ceiling at 16). Figures only: nothing is asserted.

    .venv/bin/python bench/mlflow_compare.py                          # concurrency 1 and 16
    .venv/bin/python bench/mlflow_compare.py --concurrency 1,16 --duration 5 --warmup 1
    .venv/bin/python bench/mlflow_compare.py --workload five --registrar-topology split
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import multiprocessing
import os
import platform
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fresh_database import with_fresh_database  # noqa: E402  (bench/ is not a package)

BENCH = Path(__file__).resolve().parent
HOST = "127.0.0.1"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
MLFLOW_VENV = Path.home() / ".cache" / "registrar-bench" / "mlflow-venv"
SERVERS = ("mlflow", "registrar", "stub")
WORKLOADS = {
    "pairs": ("create", "staging"),
    "five": ("create", "staging", "production", "get", "search"),
}
LOOP = {"pairs": "pair", "five": "loop"}
"""What one pass of a workload is called in the output."""
SOURCE = "s3://bench/model"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def ensure_mlflow_venv(venv: Path) -> Path:
    """The `mlflow` executable of a virtualenv holding the full MLflow server, made if missing."""
    mlflow = venv / "bin" / "mlflow"
    probe = [str(venv / "bin" / "python"), "-c", "import mlflow.server, psycopg2"]
    if mlflow.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return mlflow
    print(f"creating {venv} with mlflow and psycopg2-binary (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "mlflow>=3.17,<4", "psycopg2-binary"]
    subprocess.run(pip, check=True)
    return mlflow


def registrar_executable() -> str:
    beside = Path(sys.executable).parent / "registrar"
    return str(beside if beside.exists() else BENCH.parent / ".venv" / "bin" / "registrar")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running(
    command: list[str],
    env: dict[str, str],
    log: Path,
    *,
    url: str | None = None,
    line: str | None = None,
    stop: signal.Signals = signal.SIGTERM,
    grace: float = 30.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process, wait until `url` answers 200 and its output holds `line`; at the end send
    it `stop`, and kill it if it has not exited after `grace` seconds."""
    with log.open("a") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while not ((line is None or line in log.read_text()) and (url is None or answers(url))):
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited:\n{log.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            yield process
        finally:
            process.send_signal(stop)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# The servers: each a recipe of commands, and a context that runs it for one phase --------------


def mlflow_command(
    mlflow: Path, database: str, artifacts: str, port: str, workers: int
) -> list[str]:
    return [
        str(mlflow),
        "server",
        "--backend-store-uri",
        # psycopg2 named: SQLAlchemy 2.1 would otherwise look for psycopg 3
        database.replace("postgresql://", "postgresql+psycopg2://", 1),
        "--default-artifact-root",
        artifacts,
        "--host",
        HOST,
        "--port",
        port,
        "--workers",
        str(workers),
    ]


def split_read_models() -> list[str]:
    """The read models `registrar project` keeps beside `serve --read-models current_state`,
    as its --help lists them (all but current_state; promotions needs Kafka)."""
    shown = subprocess.run(
        [registrar_executable(), "project", "--help"], capture_output=True, text=True, check=True
    )
    found = re.search(r"which \(([^)]*)\)", " ".join(shown.stdout.split()))
    if found is None:
        raise RuntimeError(f"no read model names in `registrar project --help`:\n{shown.stdout}")
    names = [name.strip() for name in found[1].split(",")]
    return [name for name in names if name not in ("current_state", "promotions")]


def registrar_commands(topology: str) -> list[list[str]]:
    registrar = registrar_executable()
    if topology == "up":
        return [[registrar, "up"]]
    if topology == "serve":
        return [[registrar, "serve"]]
    return [
        [registrar, "serve", "--read-models", "current_state"],
        [registrar, "project", *split_read_models()],
    ]


def registrar_env(database: str, home: Path, port: int) -> dict[str, str]:
    """This environment without any REGISTRAR_ setting (so no REGISTRAR_KAFKA_BOOTSTRAP: `up`
    starts its own broker), plus the benchmark's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRAR_")}
    return env | {
        "REGISTRAR_HOME": str(home),
        "REGISTRAR_DATABASE_URL": database,
        "REGISTRAR_PORT": str(port),
        "REGISTRAR_HOST": HOST,
        "REGISTRAR_LOG_LEVEL": "warning",
    }


class Servers:
    """Starts one of the three servers for a phase; knows the databases, logs and options."""

    def __init__(self, args: argparse.Namespace, mlflow: Path, databases: dict, scratch: Path):
        self.args, self.mlflow, self.databases, self.scratch = args, mlflow, databases, scratch
        self.announced = False

    def commands(self) -> dict[str, list[list[str]]]:
        """Each server's commands, with placeholders for what changes from phase to phase."""
        workers = self.args.mlflow_workers
        mlflow = mlflow_command(self.mlflow, "postgresql://.../<db>", "<dir>", "<port>", workers)
        stub = [sys.executable, str(BENCH / "mlflow_stub.py"), "--host", HOST, "--port", "<port>"]
        return {
            "mlflow": [mlflow],
            "registrar": registrar_commands(self.args.registrar_topology),
            "stub": [stub],
        }

    @contextmanager
    def run(self, server: str) -> Iterator[str]:
        """Run `server` and yield its base URL."""
        port = free_port()
        uri = f"http://{HOST}:{port}"
        logs = self.scratch
        with ExitStack() as stack:
            if server == "mlflow":
                command = mlflow_command(
                    self.mlflow,
                    self.databases["mlflow"],
                    str(logs / "artifacts"),
                    str(port),
                    self.args.mlflow_workers,
                )
                env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
                stack.enter_context(running(command, env, logs / "mlflow.log", url=f"{uri}/health"))
            elif server == "stub":
                command = [
                    sys.executable,
                    str(BENCH / "mlflow_stub.py"),
                    "--host",
                    HOST,
                    "--port",
                    str(port),
                ]
                log, health = logs / "stub.log", f"{uri}/health"
                stub = running(command, dict(os.environ), log, url=health, stop=signal.SIGINT)
                stack.enter_context(stub)
            else:
                env = registrar_env(self.databases["registrar"], logs / "registrar-home", port)
                for i, command in enumerate(registrar_commands(self.args.registrar_topology)):
                    stack.enter_context(
                        running(
                            command,
                            env,
                            logs / f"registrar-{command[1]}.log",
                            url=f"{uri}/healthz" if i == 0 else None,
                            line="Ctrl-C stops it.",
                            stop=signal.SIGINT,
                            grace=15,
                        )
                    )
                    if not self.announced:  # what it runs, in its own words, once
                        said = (logs / f"registrar-{command[1]}.log").read_text().splitlines()
                        for line in (ln for ln in said if ln.startswith("Running:")):
                            print(f"  {command[1]}: {line}", flush=True)
                self.announced = True
                if self.args.registrar_topology == "up":
                    time.sleep(self.args.settle)  # its Kafka consumers join their groups
            yield uri


# The load: one process per client --------------------------------------------------------------


def one_loop(client: Any, model: str, workload: str) -> list[tuple[str, float]]:
    """One pass of the workload: each operation's latency in ms, in order."""
    times = [time.perf_counter()]
    version = client.create_model_version(model, SOURCE, run_id="").version
    times.append(time.perf_counter())
    client.transition_model_version_stage(model, version, "Staging")
    times.append(time.perf_counter())
    if workload == "five":
        client.transition_model_version_stage(model, version, "Production", True)
        times.append(time.perf_counter())
        got = client.get_model_version(model, version)
        times.append(time.perf_counter())
        assert got.current_stage == "Production", got
        found = client.search_model_versions(f"name = '{model}'", max_results=10)
        times.append(time.perf_counter())
        assert found and found[0].name == model, found
    ops = WORKLOADS[workload]
    return [(op, (times[i + 1] - times[i]) * 1000) for i, op in enumerate(ops)]


def client_loop(
    uri: str,
    model: str,
    workload: str,
    warmup: float,
    duration: float,
    ready: Any,
    go: Any,
    queue: Any,
) -> None:
    """One client: loop over the workload on its own model once every client is ready; report
    each operation's and each loop's latencies (measured after the warm-up) to `queue`."""
    warnings.simplefilter("ignore")  # stages are deprecated in MLflow; still widely used
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # an error shows, not a retried one
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"  # not a line per created version
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.get_registered_model(model)  # imports done, connection open
    loop = LOOP[workload]
    timings: dict[str, list[float]] = {op: [] for op in (*WORKLOADS[workload], loop)}
    errors = 0
    ready.put(model)
    go.wait()
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + duration
    while (now := time.monotonic()) < stop_at:
        try:
            steps = one_loop(client, model, workload)
        except Exception as error:  # counted and reported, never hidden
            errors += 1
            print(f"client error: {error}", file=sys.stderr)
            continue
        if now >= measure_from:
            for op, ms in steps:
                timings[op].append(ms)
            timings[loop].append(sum(ms for _, ms in steps))
    queue.put((timings, errors))


def run_phase(uri: str, workload: str, level: int, warmup: float, duration: float) -> dict:
    tag = uuid.uuid4().hex[:8]
    models = [f"bench-{level}-{tag}-{i}" for i in range(level)]
    for model in models:  # plain HTTP: this process never imports mlflow, its clients do
        created = httpx.post(
            f"{uri}/api/2.0/mlflow/registered-models/create", json={"name": model}, timeout=30
        )
        created.raise_for_status()
    context = multiprocessing.get_context("spawn")
    ready, go, queue = context.Queue(), context.Event(), context.Queue()
    clients = [
        context.Process(
            target=client_loop, args=(uri, model, workload, warmup, duration, ready, go, queue)
        )
        for model in models
    ]
    for client in clients:
        client.start()
    for _ in clients:
        ready.get()
    go.set()
    results = [queue.get() for _ in clients]
    for client in clients:
        client.join()
    timings: dict[str, list[float]] = {}
    for client_timings, _ in results:
        for op, values in client_timings.items():
            timings.setdefault(op, []).extend(values)
    return {
        "timings": timings,
        "errors": sum(errors for _, errors in results),
        "per_second": len(timings[LOOP[workload]]) / duration,
    }


# The report ------------------------------------------------------------------------------------


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return quantiles(values, n=100, method="inclusive")[q - 1]


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(results: dict, args: argparse.Namespace) -> None:
    servers = [s for s in SERVERS if s in args.servers]
    loop = LOOP[args.workload]
    label = {"mlflow": "MLflow", "registrar": "Registrar", "stub": "stub"}
    print(f"\nlatency in ms (p50 / p99); Registrar = {args.registrar_topology} topology")
    for level in args.concurrency:
        print(f"\nconcurrency {level}")
        print(f"  {'':<12}" + "".join(f"{label[s] + ' p50':>16}{'p99':>8}" for s in servers))
        for op in (*WORKLOADS[args.workload], loop):
            cells = ""
            for server in servers:
                values = results[(server, level)]["timings"][op]
                cells += f"{percentile(values, 50):>16.1f}{percentile(values, 99):>8.1f}"
            print(f"  {op:<12}{cells}")
        print(
            f"  {loop + 's/s':<12}"
            + "".join(f"{results[(s, level)]['per_second']:>16,.1f}{'':>8}" for s in servers)
        )
        errors = "".join(f"{results[(s, level)]['errors']:>16}{'':>8}" for s in servers)
        print(f"  {'errors':<12}{errors}")
    summarize(results, args, servers)


def summarize(results: dict, args: argparse.Namespace, servers: list[str]) -> None:
    """The issue's three figures, each beside its goal (ratios of what ran; n/a otherwise)."""
    loop = LOOP[args.workload]
    high, low = max(args.concurrency), min(args.concurrency)

    def rate(server: str) -> float:
        return results[(server, high)]["per_second"] if server in servers else float("nan")

    def p50(server: str) -> float:
        if server not in servers:
            return float("nan")
        return percentile(results[(server, low)]["timings"][loop], 50)

    throughput = ratio(rate("registrar"), rate("mlflow"))
    sequential = ratio(p50("registrar"), p50("mlflow"))
    of_ceiling = ratio(rate("registrar"), rate("stub"))
    mlflow_of_ceiling = ratio(rate("mlflow"), rate("stub"))
    rows = [
        (
            f"throughput at {high}: Registrar / MLflow",
            f"{throughput:.2f}x",
            ">= 3x",
            throughput >= 3,
        ),
        (
            f"{loop} p50 at {low}: Registrar / MLflow",
            f"{sequential:.2f}",
            "<= 0.33",
            sequential <= 1 / 3,
        ),
        (
            f"throughput at {high}: Registrar / stub ceiling",
            f"{of_ceiling:.0%}",
            ">= 60%",
            of_ceiling >= 0.6,
        ),
        (f"throughput at {high}: MLflow / stub ceiling", f"{mlflow_of_ceiling:.0%}", "", None),
    ]
    print(f"\nsummary: {args.workload} workload, Registrar = `{args.registrar_topology}` topology")
    print(f"  {'figure':<48}{'value':>9}  {'goal':<9}")
    for name, value, goal, met in rows:
        if "nan" in value:
            value, met = "n/a", None
        verdict = "" if met is None else ("met" if met else "not met")
        print(f"  {name:<48}{value:>9}  {goal:<9}{verdict}")
    print(
        f"  {loop}s/s at {high}: "
        + ", ".join(f"{s} {rate(s):,.1f}" for s in servers)
        + f"; {loop} p50 at {low}: "
        + ", ".join(f"{s} {p50(s):.1f} ms" for s in servers)
    )


def describe(args: argparse.Namespace, servers: Servers, mlflow: Path, server: str) -> None:
    """The machine, the versions and the commands: what a reader needs to rerun it."""
    mlflow_version = subprocess.run([str(mlflow), "--version"], capture_output=True, text=True)
    cpuinfo = Path("/proc/cpuinfo")
    names = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    cpu = next((n.split(":", 1)[1].strip() for n in names if n.startswith("model name")), "?")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores ({cpu}), load average {load}; the servers, PostgreSQL")
    print("  and the clients share them")
    print(
        f"server: {mlflow_version.stdout.strip()}; client: mlflow-skinny"
        f" {importlib.metadata.version('mlflow-skinny')}, Python {platform.python_version()}"
    )
    print(f"PostgreSQL server (both real servers): {re.sub(r'//.*@', '//', server)}")
    steps = " -> ".join(WORKLOADS[args.workload])
    print(
        f"workload {args.workload}: {steps} per {LOOP[args.workload]};"
        f" concurrency {', '.join(map(str, args.concurrency))} client processes;"
        f" {args.warmup:g} s warm-up + {args.duration:g} s measured per phase"
    )
    print("commands:")
    for name, commands in servers.commands().items():
        if name in args.servers:
            for command in commands:
                print(f"  {name:<10}{shlex.join(command)}")
    if "registrar" in args.servers:
        print(
            "  registrar env: REGISTRAR_HOME=<tmp> REGISTRAR_DATABASE_URL=<fresh db>"
            " REGISTRAR_PORT=<port> REGISTRAR_HOST=127.0.0.1 REGISTRAR_LOG_LEVEL=warning"
            " (no REGISTRAR_KAFKA_BOOTSTRAP)"
        )
    print(f"  this run  {shlex.join([sys.executable, *sys.argv])}", flush=True)


def compare(server: str, args: argparse.Namespace, mlflow: Path) -> None:
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlflow-compare-") as scratch:

        async def on_databases(mlflow_db: str) -> None:
            async def on_registrar_db(registrar_db: str) -> None:
                databases = {"mlflow": mlflow_db, "registrar": registrar_db}
                servers = Servers(args, mlflow, databases, Path(scratch))
                describe(args, servers, mlflow, server)
                for level in args.concurrency:
                    for name in (s for s in SERVERS if s in args.servers):
                        print(f"{name}, concurrency {level} ...", flush=True)
                        with servers.run(name) as uri:
                            results[(name, level)] = run_phase(
                                uri, args.workload, level, args.warmup, args.duration
                            )

            await with_fresh_database(server, on_registrar_db)

        asyncio.run(with_fresh_database(server, on_databases))
    report(results, args)


def comma_list(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    return lambda text: [kind(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency", type=comma_list(int), nargs="+", default=[[1, 16]], help="e.g. 1,16"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="pairs")
    parser.add_argument(
        "--registrar-topology",
        choices=("up", "split", "serve"),
        default="up",
        help="up: `registrar up` (default); split: `serve --read-models current_state` beside"
        " `project` the others, no Kafka; serve: one `registrar serve`, no Kafka",
    )
    parser.add_argument(
        "--servers",
        type=comma_list(str),
        default=list(SERVERS),
        help="default mlflow,registrar,stub",
    )
    parser.add_argument(
        "--settle", type=float, default=3.0, help="seconds after `registrar up` starts"
    )
    parser.add_argument("--mlflow-venv", type=Path, default=MLFLOW_VENV)
    parser.add_argument(
        "--mlflow-workers", type=int, default=2, help="mlflow server workers (one per core)"
    )
    args = parser.parse_args()
    args.concurrency = sorted({level for levels in args.concurrency for level in levels})
    unknown = set(args.servers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown servers {', '.join(sorted(unknown))}: choose from {SERVERS}")
    server = os.environ.get("REGISTRAR_DATABASE_URL") or DEFAULT_SERVER
    mlflow = ensure_mlflow_venv(args.mlflow_venv)
    compare(server, args, mlflow)


if __name__ == "__main__":
    main()
