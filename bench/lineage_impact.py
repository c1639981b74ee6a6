"""The lineage impact query on a large graph: writes a realistic history with
bench/history_generator.py (1,000,000 events over 10,000 models: a lineage graph of about 100,000
nodes), builds the lineage projection from it, then asks "which versions descend from this node,
and which are in Production or hold an alias" for many nodes. It prints figures; it asserts
nothing. Goal: p99 under 50 ms.

    .venv/bin/python bench/lineage_impact.py [--models 10000] [--events 1000000] [--queries 2000]

The server is REGISTRAR_DATABASE_URL if set, else an embedded PostgreSQL started under a temporary
directory; the run uses a fresh database, dropped at the end. The queried nodes are drawn from
every kind: the most used datasets (the largest answers), random datasets, runs and versions.
A query is timed from the call to `registrar.projections.lineage.impact` (what GET /v1/lineage/impact
runs) to its JSON bytes, on one connection, one query at a time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import Any

from fresh_database import run_on_a_fresh_database
from history_generator import generate
from sqlalchemy import text

from registrar.contracts.codec import dumps
from registrar.projections.lineage import LineageProjection, impact
from registrar.projector.runner import Projector
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore


async def build_projection(url: str) -> tuple[int, float]:
    engine = create_engine(url, pool_size=4)
    try:
        store = PostgresEventStore(engine)
        projector = Projector(store, LineageProjection(store), batch_size=5000)
        await projector.load_checkpoint()
        began, applied = time.perf_counter(), 0
        while batch := await projector.catch_up_once():
            applied += batch
        return applied, time.perf_counter() - began
    finally:
        await engine.dispose()


async def sample_nodes(conn: Any, top_datasets: list[str], count: int, seed: int) -> list[str]:
    """`count` node ids: a tenth the most used datasets, the rest random nodes of every kind."""
    rows = await conn.execute(
        text(
            "SELECT CASE WHEN n.kind = 'version' THEN 'version:' || m.name || '/' || n.version"
            " ELSE n.node_key END AS id"
            " FROM lineage_nodes n LEFT JOIN lineage_models m ON m.stream_id = n.stream_id"
            " WHERE n.kind IN ('dataset', 'run', 'version') ORDER BY n.node_key"
        )
    )
    every = [row.id for row in rows]
    chooser = random.Random(seed)
    heavy = [f"dataset:{ref}" for ref in top_datasets[:20]]
    return [chooser.choice(heavy) if i % 10 == 0 else chooser.choice(every) for i in range(count)]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(url: str, args: argparse.Namespace) -> None:
    print(f"generating {args.events:,} events over {args.models:,} models ...", flush=True)
    history = await generate(url, models=args.models, events=args.events, seed=args.seed)
    print(
        f"  {history.events:,} events in {history.seconds:.1f} s; {history.versions:,} versions,"
        f" {history.runs:,} runs, {history.datasets:,} datasets, {history.commits:,} commits,"
        f" {history.parent_links:,} parent links"
    )
    applied, seconds = await build_projection(url)
    print(f"lineage projection: {applied:,} events in {seconds:.1f} s ({applied / seconds:,.0f}/s)")
    engine = create_engine(url, pool_size=2)
    try:
        async with engine.connect() as conn:
            counts = (
                await conn.execute(
                    text(
                        "SELECT (SELECT count(*) FROM lineage_nodes) AS nodes,"
                        " (SELECT count(*) FROM lineage_edges) AS edges"
                    )
                )
            ).one()
            print(f"graph: {counts.nodes:,} nodes, {counts.edges:,} edges")
            await conn.execute(text("ANALYZE lineage_nodes, lineage_edges, lineage_models"))
            nodes = await sample_nodes(conn, history.dataset_refs, args.queries, args.seed)
            for node in nodes[:50]:  # warm the caches
                await impact(conn, node)
            timings: list[float] = []
            sizes: list[int] = []
            by_kind: dict[str, list[float]] = {}
            for node in nodes:
                began = time.perf_counter()
                answer = await impact(conn, node)
                dumps(answer)
                took = (time.perf_counter() - began) * 1000
                timings.append(took)
                sizes.append(len(answer["versions"]))
                by_kind.setdefault(node.partition(":")[0], []).append(took)
            heaviest = await impact(conn, f"dataset:{history.dataset_refs[0]}")
    finally:
        await engine.dispose()
    print(
        f"impact, {len(timings):,} queries: p50 {percentile(timings, 0.5):.1f} ms,"
        f" p95 {percentile(timings, 0.95):.1f} ms, p99 {percentile(timings, 0.99):.1f} ms,"
        f" max {max(timings):.1f} ms (goal: p99 < 50 ms)"
    )
    for kind, values in sorted(by_kind.items()):
        print(
            f"  {kind}: {len(values):,} queries, p50 {percentile(values, 0.5):.1f} ms,"
            f" p99 {percentile(values, 0.99):.1f} ms"
        )
    print(
        f"versions per answer: mean {statistics.mean(sizes):.1f}, max {max(sizes):,};"
        f" the most used dataset {heaviest['node']}: {len(heaviest['versions']):,} versions,"
        f" {len(heaviest['in_production']):,} in Production,"
        f" {len(heaviest['holding_aliases']):,} holding an alias"
    )


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", type=int, default=10_000)
    cli.add_argument("--events", type=int, default=1_000_000)
    cli.add_argument("--queries", type=int, default=2000)
    cli.add_argument("--seed", type=int, default=7)
    args = cli.parse_args()
    run_on_a_fresh_database(lambda url: measure(url, args))


if __name__ == "__main__":
    main()
