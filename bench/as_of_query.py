"""As-of (point-in-time) queries on a generated history: build the stage_history read model from
the store, then time, at random instants over the history's span:

- every model's Production versions at T (`GET /v1/stages/Production?as_of=T`), and
- one random model's versions per stage at T (`GET /v1/models/{name}/stages?as_of=T`),

through the same query functions the API calls (no HTTP), printing p50/p90/p99/max. With
--compare-indexes the first query is also timed on the indexes it replaced, to show why it
has its own: a btree on (stage, valid_from), and one GiST on (stage, tstzrange) joined to the
models' current names (migration 0007, before 0011). Goal: p99 < 10 ms.

    .venv/bin/python bench/as_of_query.py --models 10000 --events 1000000 [--queries 2000]
        [--compare-indexes] [--database-url URL (an existing generated history: kept)]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fresh_database import run_on_a_fresh_database
from history_generator import generate
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registrar.contracts.values import Stage
from registrar.projections.audit_trail import AuditTrailProjection
from registrar.projections.ports import Projection
from registrar.projections.stage_history import StageHistoryProjection, stage_holders_at, stages_at
from registrar.projector.runner import Projector
from registrar.runtime import tune_garbage_collector
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore
from registrar.store.schema_migrations import migrate


async def build(engine: AsyncEngine, projection: Projection) -> tuple[int, float]:
    """Apply the whole store to `projection`; (events, seconds)."""
    projector = Projector(PostgresEventStore(engine), projection, batch_size=2000)
    await projector.load_checkpoint()
    began, events = time.perf_counter(), 0
    while applied := await projector.catch_up_once():
        events += applied
    return events, time.perf_counter() - began


def report(label: str, timings: list[float], rows: list[int]) -> None:
    ms = sorted(t * 1000 for t in timings)
    p = statistics.quantiles(ms, n=100)
    print(
        f"  {label}: p50 {p[49]:.2f} ms, p90 {p[89]:.2f} ms, p99 {p[98]:.2f} ms,"
        f" max {ms[-1]:.2f} ms over {len(ms)} queries (rows per answer: median"
        f" {statistics.median(rows):.0f}, max {max(rows)})"
    )


async def timed(
    conn: AsyncConnection, queries: int, ask: Callable[[AsyncConnection], Awaitable[Any]]
) -> tuple[list[float], list[int]]:
    timings, rows = [], []
    for _ in range(queries):
        began = time.perf_counter()
        answer = await ask(conn)
        timings.append(time.perf_counter() - began)
        rows.append(len(answer) if isinstance(answer, list) else sum(map(len, answer.values())))
    return timings, rows


# The same question as stage_holders_at, phrased for the indexes it replaced.
_FORMER = {
    "btree (stage, valid_from)": (
        "CREATE INDEX stage_history_btree ON stage_history (stage, valid_from)"
        " INCLUDE (valid_to, model, version)",
        "SELECT model, version, valid_from AS since FROM stage_history"
        " WHERE stage = 'Production' AND valid_from <= :at"
        " AND (valid_to IS NULL OR valid_to > :at) ORDER BY model, version",
    ),
    "GiST (stage, tstzrange) + join to names": (
        "CREATE INDEX stage_history_gist ON stage_history"
        " USING gist (stage, tstzrange(valid_from, valid_to, '[)'))",
        "SELECT m.name AS model, h.version, h.valid_from AS since"
        " FROM stage_history h JOIN history_models m USING (stream_id)"
        " WHERE h.stage = :stage AND tstzrange(valid_from, valid_to, '[)') @> CAST(:at AS timestamptz)"
        " ORDER BY m.name, h.version",
    ),
}


async def compare_former_indexes(
    conn: AsyncConnection, queries: int, instant: Callable[[], datetime]
) -> None:
    """Time the every-model question on each former index alone (rolled back after)."""
    for label, (index, query) in _FORMER.items():
        for stage in Stage:
            await conn.execute(text(f"DROP INDEX IF EXISTS stage_history_{stage.value.lower()}_at"))
        await conn.execute(text(index))
        await conn.execute(text("ANALYZE stage_history"))
        statement = text(query)

        async def ask(c: AsyncConnection, statement: Any = statement) -> list[Any]:
            return list(await c.execute(statement, {"at": instant(), "stage": "Production"}))

        report(f"{label} instead", *await timed(conn, queries, ask))
        await conn.rollback()  # the stage indexes are back


async def measure(url: str, args: argparse.Namespace) -> None:
    if not args.database_url:
        history = await generate(url, models=args.models, events=args.events, seed=args.seed)
        print(f"generated {history.events:,} events over {history.model_streams:,} models")
    engine = create_engine(url, pool_size=4)
    try:
        await migrate(engine)
        store = PostgresEventStore(engine)
        for projection in (StageHistoryProjection(store), AuditTrailProjection(store)):
            events, seconds = await build(engine, projection)
            print(
                f"built {projection.name}: {events:,} events in {seconds:.1f} s"
                f" ({events / seconds if seconds else 0:,.0f} events/s)"
            )
        async with engine.connect() as conn:
            # What autovacuum does to a live table soon after such a build: statistics, and the
            # visibility map that lets the stage query read its index alone.
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM ANALYZE stage_history, history_models"))
            span = (
                await conn.execute(
                    text("SELECT min(valid_from), max(valid_from) FROM stage_history")
                )
            ).one()
            intervals = (await conn.execute(text("SELECT count(*) FROM stage_history"))).scalar()
            streams = list(
                (await conn.execute(text("SELECT stream_id FROM history_models"))).scalars()
            )
            await conn.commit()
        first, last = span
        print(f"{intervals:,} stage intervals from {first:%Y-%m-%d} to {last:%Y-%m-%d}")
        rng = random.Random(args.seed)

        def instant() -> datetime:
            return first + timedelta(seconds=rng.uniform(0, (last - first).total_seconds()))

        tune_garbage_collector()  # as `registrar serve` runs the API
        async with engine.connect() as conn:
            await timed(conn, 50, lambda c: stage_holders_at(c, Stage.PRODUCTION, instant()))
            print("every model's Production versions at T (GET /v1/stages/Production?as_of=T):")
            report(
                "SP-GiST (tstzrange) per stage",
                *await timed(
                    conn, args.queries, lambda c: stage_holders_at(c, Stage.PRODUCTION, instant())
                ),
            )
            print("one model's versions per stage at T (GET /v1/models/{name}/stages?as_of=T):")
            report(
                "primary key (stream_id, ...)",
                *await timed(
                    conn, args.queries, lambda c: stages_at(c, rng.choice(streams), instant())
                ),
            )
            if args.compare_indexes:
                await conn.commit()
                await compare_former_indexes(conn, args.queries, instant)
    finally:
        await engine.dispose()


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--models", type=int, default=10_000)
    cli.add_argument("--events", type=int, default=1_000_000)
    cli.add_argument("--seed", type=int, default=7)
    cli.add_argument("--queries", type=int, default=2000)
    cli.add_argument("--compare-indexes", action="store_true")
    cli.add_argument("--database-url", help="an existing generated history (kept)")
    args = cli.parse_args()
    if args.database_url:
        asyncio.run(measure(args.database_url, args))
    else:
        run_on_a_fresh_database(lambda url: measure(url, args))


if __name__ == "__main__":
    main()
