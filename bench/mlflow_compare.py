"""Side by side: the same MlflowClient workload against `mlflow server` and against Registrar.

Both servers run on the same PostgreSQL server (REGISTRAR_DATABASE_URL's, default
postgresql://postgres@127.0.0.1:5432/test), each on a fresh database dropped at the end:

  mlflow     `mlflow server --backend-store-uri postgresql://...` from a separate virtualenv
             (the full `mlflow` package and psycopg2-binary), created on first use under
             ~/.cache/registrar-bench/mlflow-venv (or --mlflow-venv);
  registrar  `registrar serve --read-models current_state` from this repository's venv, beside
             `registrar project` keeping the other read models (both following the store; no
             Kafka), as production without Kafka runs it; --single-process: `serve` alone.

The workload is the MLflow client of this venv (mlflow-skinny), identical for both: each client
owns one registered model and loops over

  create     create_model_version
  staging    transition_model_version_stage -> Staging
  production transition_model_version_stage -> Production, archive_existing_versions=True
  get        get_model_version
  search     search_model_versions("name = '<its model>'", max_results=10)

Concurrency c runs c client processes (one MlflowClient each, like c separate users), for
--duration seconds after a warm-up. Printed per server and concurrency: each operation's p50 /
p99 latency, total operations per second, and the Registrar/MLflow ratios. Nothing is asserted.

    .venv/bin/python bench/mlflow_compare.py                       # concurrency 1 and 16
    .venv/bin/python bench/mlflow_compare.py --concurrency 16 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path
from statistics import quantiles
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fresh_database import with_fresh_database  # noqa: E402  (bench/ is not a package)

from registrar.projections.catalogue import READ_MODELS  # noqa: E402
from registrar.projections.current_state import NAME as CURRENT_STATE  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/test"
MLFLOW_VENV = Path.home() / ".cache" / "registrar-bench" / "mlflow-venv"
OPERATIONS = ("create", "staging", "production", "get", "search")
GOAL = "goal: Registrar >= 3x MLflow's throughput at concurrency 16, and a lower p50 at 1"


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


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@contextmanager
def running(command: list[str], url: str | None, env: dict[str, str], log: Path) -> Any:
    """Start a process, wait until `url` answers (no `url`: until it says it runs), stop it at
    the end."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{command[0]} exited:\n{log.read_text()[-3000:]}")
                if answers(url) if url else "Ctrl-C stops it." in log.read_text():
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{command[0]} did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# The load: one process per client ------------------------------------------------------------


def client_loop(
    uri: str, model: str, warmup: float, duration: float, ready: Any, go: Any, queue: Any
) -> None:
    """One client: loop over the workload on its own model once every client is ready; report
    each operation's latencies (measured after the warm-up) to `queue`."""
    warnings.simplefilter("ignore")  # stages are deprecated in MLflow; still widely used
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"  # an error shows, not a retried one
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.get_registered_model(model)  # imports done, connection open
    timings: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    errors = 0
    ready.put(model)
    go.wait()
    start = time.monotonic()
    measure_from, stop_at = start + warmup, start + warmup + duration
    while (now := time.monotonic()) < stop_at:
        measured = now >= measure_from
        try:
            steps = []
            t0 = time.perf_counter()
            version = client.create_model_version(model, "s3://bench/model", run_id="")
            steps.append(("create", t0))
            t0 = time.perf_counter()
            client.transition_model_version_stage(model, version.version, "Staging")
            steps.append(("staging", t0))
            t0 = time.perf_counter()
            client.transition_model_version_stage(model, version.version, "Production", True)
            steps.append(("production", t0))
            t0 = time.perf_counter()
            got = client.get_model_version(model, version.version)
            steps.append(("get", t0))
            assert got.current_stage == "Production", got
            t0 = time.perf_counter()
            found = client.search_model_versions(f"name = '{model}'", max_results=10)
            steps.append(("search", t0))
            assert found and found[0].name == model, found
        except Exception as error:  # counted and reported, never hidden
            errors += 1
            print(f"client error: {error}", file=sys.stderr)
            continue
        if measured:
            ends = [t for _, t in steps[1:]] + [time.perf_counter()]
            for (op, began), ended in zip(steps, ends, strict=True):
                timings[op].append((ended - began) * 1000)
    queue.put((timings, errors))


def run_phase(uri: str, concurrency: int, warmup: float, duration: float) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    models = [f"bench-{concurrency}-{tag}-{i}" for i in range(concurrency)]
    for model in models:  # plain HTTP: this process never imports mlflow, its clients do
        created = httpx.post(
            f"{uri}/api/2.0/mlflow/registered-models/create", json={"name": model}, timeout=30
        )
        created.raise_for_status()
    context = multiprocessing.get_context("spawn")
    ready, go, queue = context.Queue(), context.Event(), context.Queue()
    clients = [
        context.Process(target=client_loop, args=(uri, model, warmup, duration, ready, go, queue))
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
    timings: dict[str, list[float]] = {op: [] for op in OPERATIONS}
    for client_timings, _ in results:
        for op, values in client_timings.items():
            timings[op] += values
    total = sum(len(values) for values in timings.values())
    return {
        "timings": timings,
        "errors": sum(errors for _, errors in results),
        "ops_per_second": total / duration,
    }


def percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return quantiles(values, n=100, method="inclusive")[q - 1]


def report(results: dict[tuple[str, int], dict[str, Any]], levels: list[int]) -> None:
    for level in levels:
        print(f"\nconcurrency {level}")
        print(
            f"  {'operation':<11}{'':>2}{'MLflow p50':>11}{'p99':>9}{'Registrar p50':>15}{'p99':>9}"
        )
        for op in OPERATIONS:
            cells = []
            for server in ("mlflow", "registrar"):
                values = results[(server, level)]["timings"][op]
                cells += [percentile(values, 50), percentile(values, 99)]
            print(
                f"  {op:<11}{'':>2}{cells[0]:>10.1f} {cells[1]:>8.1f} {cells[2]:>14.1f} {cells[3]:>8.1f}"
            )
        ml, reg = results[("mlflow", level)], results[("registrar", level)]
        all_ml = [v for vs in ml["timings"].values() for v in vs]
        all_reg = [v for vs in reg["timings"].values() for v in vs]
        print(
            f"  throughput: MLflow {ml['ops_per_second']:,.0f} ops/s, Registrar"
            f" {reg['ops_per_second']:,.0f} ops/s -> ratio"
            f" {reg['ops_per_second'] / ml['ops_per_second']:.2f}x"
        )
        print(
            f"  p50 over all operations: MLflow {percentile(all_ml, 50):.1f} ms, Registrar"
            f" {percentile(all_reg, 50):.1f} ms -> ratio"
            f" {percentile(all_reg, 50) / percentile(all_ml, 50):.2f}"
        )
        print(f"  errors: MLflow {ml['errors']}, Registrar {reg['errors']}")
    print(f"\n{GOAL}")


async def compare(server: str, args: argparse.Namespace, mlflow: Path) -> None:
    results: dict[tuple[str, int], dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlflow-compare-") as scratch:
        logs = Path(scratch)

        async def on_mlflow(database: str) -> None:
            port = free_port()
            uri = f"http://{HOST}:{port}"
            command = [
                str(mlflow),
                "server",
                "--backend-store-uri",
                # psycopg2 named: SQLAlchemy 2.1 would otherwise look for psycopg 3
                database.replace("postgresql://", "postgresql+psycopg2://", 1),
                "--default-artifact-root",
                str(logs / "artifacts"),
                "--host",
                HOST,
                "--port",
                str(port),
                "--workers",
                str(args.mlflow_workers),
            ]
            env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
            with running(command, f"{uri}/health", env, logs / "mlflow.log"):
                for level in args.concurrency:
                    print(f"mlflow server, concurrency {level} ...", flush=True)
                    results[("mlflow", level)] = run_phase(uri, level, args.warmup, args.duration)

        async def on_registrar(database: str) -> None:
            port = free_port()
            uri = f"http://{HOST}:{port}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRAR_")}
            env |= {
                "REGISTRAR_DATABASE_URL": database,
                "REGISTRAR_PORT": str(port),
                "REGISTRAR_HOST": HOST,
                "REGISTRAR_LOG_LEVEL": "warning",
            }
            registrar = str(REPO / ".venv" / "bin" / "registrar")
            serve = [registrar, "serve"]
            # As in production without Kafka: the API process keeps the read model its queries
            # wait for; a projector process keeps the others.
            project = [registrar, "project", *(n for n in READ_MODELS if n != CURRENT_STATE)]
            if not args.single_process:
                serve += ["--read-models", CURRENT_STATE]
            with contextlib.ExitStack() as processes:
                processes.enter_context(
                    running(serve, f"{uri}/healthz", env, logs / "registrar.log")
                )
                if not args.single_process:
                    processes.enter_context(running(project, None, env, logs / "project.log"))
                for level in args.concurrency:
                    print(f"{' + '.join(processes_of(args))}, concurrency {level} ...", flush=True)
                    results[("registrar", level)] = run_phase(
                        uri, level, args.warmup, args.duration
                    )

        await with_fresh_database(server, on_mlflow)
        await with_fresh_database(server, on_registrar)
    report(results, args.concurrency)


def processes_of(args: argparse.Namespace) -> list[str]:
    if args.single_process:
        return ["registrar serve"]
    return [f"registrar serve --read-models {CURRENT_STATE}", "registrar project (the others)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured per phase")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--mlflow-venv", type=Path, default=MLFLOW_VENV)
    parser.add_argument(
        "--mlflow-workers", type=int, default=2, help="mlflow server workers (one per core)"
    )
    parser.add_argument(
        "--single-process",
        action="store_true",
        help="run Registrar as one `registrar serve` keeping every read model",
    )
    args = parser.parse_args()
    server = os.environ.get("REGISTRAR_DATABASE_URL") or DEFAULT_SERVER
    mlflow = ensure_mlflow_venv(args.mlflow_venv)
    version = subprocess.run([str(mlflow), "--version"], capture_output=True, text=True)
    print(f"{version.stdout.strip()}; PostgreSQL server {re.sub(r'//.*@', '//', server)}")
    print(f"{os.cpu_count()} cores, shared by the server, PostgreSQL and the clients")
    asyncio.run(compare(server, args, mlflow))


if __name__ == "__main__":
    main()
