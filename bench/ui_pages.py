"""How fast the web UI's pages render on a large registry: writes a realistic history with
bench/history_generator.py (by default 1,000 models and 2,400,000 events: about 100,000
versions, the generator writing some 24 events per version), starts `registrar serve` on it
(authentication off: loopback), waits until every read model has caught up, then asks for each
page many times, one request at a time. It prints each page's median, p95 and slowest time; it
asserts nothing. Goal: every page under 200 ms.

    .venv/bin/python bench/ui_pages.py [--models 1000] [--events 2400000] [--requests 30]

The server is REGISTRAR_DATABASE_URL if set, else an embedded PostgreSQL started under a temporary
directory; the run uses a fresh database, dropped at the end. A request is timed by the client,
from sending it to its last byte, over a keep-alive connection to 127.0.0.1: the server's time
plus about a millisecond. The pages asked for: the catalogue (first page, a name search, a tag
search, a past view), the stage board (now and past), the busiest model's page, a version page
(now and past), the approvals inbox, a dataset's lineage and the audit trail.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from fresh_database import run_on_a_fresh_database
from history_generator import generate

REGISTRAR = Path(sys.executable).parent / "registrar"
GOAL_MS = 200.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_caught_up(client: httpx.Client, timeout: float) -> float:
    """Seconds until every read model's lag is 0."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        try:
            status = client.get("/v1/projections").json()
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        lags = [p["lag"] for p in status["projections"]]
        if lags and max(lags) == 0:
            return time.monotonic() - began
        time.sleep(1)
    raise RuntimeError("the read models did not catch up in time")


def pages(client: httpx.Client, names: list[str], dataset: str, past: str) -> dict[str, str]:
    """The pages to time, by label: the busiest model and one of its versions found through the
    API itself."""
    busiest, versions = "", 0
    for name in names[:200]:
        model = client.get(f"/v1/models/{quote(name, safe='')}")
        if model.status_code == 200 and model.json()["latest_version"] > versions:
            busiest, versions = name, model.json()["latest_version"]
    model = quote(busiest, safe="")
    live = client.get(f"/v1/models/{model}/versions", params={"page_size": 1000}).json()
    numbers = [v["version"] for v in live["versions"]]
    version = f"/ui/models/{model}/versions/{max(numbers)}"
    oldest = f"/ui/models/{model}/versions/{min(numbers)}"
    return {
        "catalogue": "/ui/",
        "catalogue name search": f"/ui/?q={quote(busiest[:4])}",
        "catalogue tag search": "/ui/?tag=team",
        "catalogue past": f"/ui/?as_of={past}",
        "board": "/ui/board",
        "board past": f"/ui/board?as_of={past}",
        f"model ({versions} versions)": f"/ui/models/{model}",
        "version": version,
        "version past (its oldest live one)": f"{oldest}?as_of={past}",
        "approvals": "/ui/approvals",
        "lineage (busiest dataset)": f"/ui/lineage?node={quote('dataset:' + dataset)}",
        "audit": "/ui/audit",
    }


async def measure(url: str, args: argparse.Namespace) -> None:
    history = await generate(url, models=args.models, events=args.events, seed=args.seed)
    print(
        f"history: {history.events:,} events, {history.model_streams:,} models,"
        f" {history.versions:,} versions, {history.runs:,} runs in {history.seconds:.0f} s"
    )
    span = history.last_recorded_at - history.first_recorded_at
    past = (history.first_recorded_at + span * 0.9).replace(microsecond=0)
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("REGISTRAR_")},
        "REGISTRAR_DATABASE_URL": url,
        "REGISTRAR_LOG_LEVEL": "warning",
    }
    with tempfile.TemporaryDirectory(prefix="registrar-ui-bench-") as home:
        env["REGISTRAR_HOME"] = home
        log = Path(home) / "serve.log"
        with open(log, "wb") as out:
            server = subprocess.Popen(
                [str(REGISTRAR), "serve", "--port", str(port)],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                caught_up = wait_until_caught_up(client, args.catch_up_timeout)
                print(f"read models caught up {caught_up:.0f} s after the server started")
                targets = pages(
                    client,
                    history.model_names,
                    history.dataset_refs[0],
                    past.isoformat().replace("+00:00", "Z"),
                )
                print(
                    f"{'page':36} {'median':>8} {'p95':>8} {'max':>8}  (ms, {args.requests} each)"
                )
                slowest = 0.0
                for label, path in targets.items():
                    first = client.get(path)
                    if first.status_code != 200:
                        print(f"{label:36} HTTP {first.status_code}: {first.text[:200]}")
                        continue
                    times = []
                    for _ in range(args.requests):
                        began = time.perf_counter()
                        client.get(path).raise_for_status()
                        times.append((time.perf_counter() - began) * 1000)
                    times.sort()
                    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
                    slowest = max(slowest, times[-1])
                    median = statistics.median(times)
                    print(f"{label:36} {median:8.1f} {p95:8.1f} {times[-1]:8.1f}")
                verdict = "met" if slowest < GOAL_MS else "NOT met"
                print(f"goal: every page under {GOAL_MS:.0f} ms: {verdict} (slowest {slowest:.0f})")
        finally:
            server.terminate()
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", type=int, default=1_000)
    cli.add_argument(
        "--events", type=int, default=2_400_000, help="about 100,000 versions with 1,000 models"
    )
    cli.add_argument("--requests", type=int, default=30)
    cli.add_argument("--seed", type=int, default=7)
    cli.add_argument("--catch-up-timeout", type=float, default=timedelta(hours=1).total_seconds())
    args = cli.parse_args()
    run_on_a_fresh_database(lambda url: measure(url, args))


if __name__ == "__main__":
    main()
