"""How fast `registrar replay` rebuilds a read model: a generated history (bench/history_generator.py)
replayed by the `registrar replay` command into fresh tables and swapped in. It prints figures; it
asserts nothing.

    .venv/bin/python bench/rebuild.py [--models 10000] [--events 1000000] [--seed 1]
        [--projection current_state] [--batch-size 100000] [--database-url URL]

Without --database-url the history is generated into a fresh database (REGISTRAR_DATABASE_URL's
server, else an embedded PostgreSQL), dropped at the end; with it, the database must already hold
a generated history (`bench/history_generator.py --database-url URL`), which is replayed as is.
The goal for current_state on the project's 2-core machine: 20,000 events/s or more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
from fresh_database import plain, run_on_a_fresh_database
from history_generator import generate

from registrar.projections.catalogue import READ_MODELS

REGISTRAR = Path(sys.executable).parent / "registrar"
SWAPPED = re.compile(r"swapped in at position [\d,]+: ([\d,]+) events")


async def rebuild(url: str, args: argparse.Namespace, generate_first: bool) -> None:
    if generate_first:
        history = await generate(url, models=args.models, events=args.events, seed=args.seed)
        print(
            f"generated {history.events:,} events over {history.model_streams:,} models"
            f" in {history.seconds:.0f} s"
        )
    conn = await asyncpg.connect(plain(url))
    try:
        stored = await conn.fetchval("SELECT count(*) FROM events")
    finally:
        await conn.close()
    for name in args.projection or ["current_state"]:
        command = [str(REGISTRAR), "replay", "--projection", name]
        command += ["--batch-size", str(args.batch_size)]
        env = {**os.environ, "REGISTRAR_DATABASE_URL": url}
        began = time.perf_counter()
        done = await asyncio.to_thread(
            subprocess.run, command, env=env, stderr=subprocess.PIPE, text=True
        )
        seconds = time.perf_counter() - began
        print(done.stderr.strip().splitlines()[-1] if done.stderr else "(no output)")
        swapped = SWAPPED.search(done.stderr)
        if done.returncode != 0 or swapped is None:
            print(f"{name}: registrar replay failed:\n{done.stderr}")
            continue
        events = int(swapped.group(1).replace(",", ""))
        print(
            f"{name}: {events:,} of {stored:,} events rebuilt and swapped in by `registrar replay`"
            f" in {seconds:.1f} s (process start included): {events / seconds:,.0f} events/s"
            f" (batch size {args.batch_size})"
        )


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", type=int, default=10_000)
    cli.add_argument("--events", type=int, default=1_000_000)
    cli.add_argument("--seed", type=int, default=1)
    cli.add_argument("--projection", action="append", choices=list(READ_MODELS))
    cli.add_argument("--batch-size", type=int, default=100_000)
    cli.add_argument("--database-url", help="replay this database's history (no generation)")
    args = cli.parse_args()
    if args.database_url:
        asyncio.run(rebuild(args.database_url, args, generate_first=False))
    else:
        run_on_a_fresh_database(lambda url: rebuild(url, args, generate_first=True))


if __name__ == "__main__":
    main()
