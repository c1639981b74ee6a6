"""Replay: rebuild a read model from the event store into fresh copies of its tables while queries
keep reading the live ones, then swap the copies in, atomically, once they have caught up.

For a projection P owning tables T (`Projection.tables`):

1. Set up (one transaction): schema `replay_P`, holding `replay_P.t (LIKE public.t INCLUDING
   ALL)` for each t in T, their indexes renamed to the live tables' index names, and copies of
   `projection_checkpoints` and `projection_progress`: the copy's own checkpoint. Secondary
   (non-unique) indexes are dropped from the copies and built once at the end, far cheaper than
   maintaining them row by row (GIN and GiST above all); unique ones stay, upserts need them.
2. Catch up: the ordinary Projector runs P, each batch transaction starting with
   `SET LOCAL search_path TO replay_P, public`, so P's unqualified table names, and the
   projector's checkpoint and progress, all resolve to the copy.
3. Build the secondary indexes, ANALYZE.
4. Swap, in one transaction: lock the live tables (ACCESS EXCLUSIVE: queries and the live
   projector wait, a few milliseconds), apply the events stored since, drop the live tables,
   move the copies into `public`, move the copy's checkpoint and progress to P's rows, drop the
   schema. Tables not free within `lock_timeout_seconds` (the lock is asked for with NOWAIT,
   again and again, never queued) roll back the swap; it is tried again after a catch-up.

Why nothing is lost or applied twice at the swap. While the swap holds the lock, no live
projector can write to the live tables; whatever one wrote before, it had read before the swap
read the store. Every catch-up reader (the relay, a live projector, the swap's own) reads in
commit order up to the oldest transaction still running, a bound that only moves forward: so the
swap, reading last, reads at least every event any live projector has applied, in process or
fed by Kafka. Whatever a live projector applies after the swap lands in the new tables (blocked
on the lock, it resolves the table names again once it is granted: PostgreSQL re-plans
statements whose tables changed), and events the copy already holds are skipped by the
per-stream versions every projection records. Its in-memory caches stay valid: they hold a
stream's state at a given stream version, the same whichever table recorded that version.

Interrupting (Ctrl-C, a crash) loses at most the batch in flight: a rerun finds `replay_P` and
resumes from the copy's own checkpoint. If the live tables' definitions changed since the copy was
set up (a migration), or with `restart=True` (`registrar replay --restart`), the copy is dropped
and the rebuild starts over. Two replays of one projection cannot run at once (advisory lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.envelope import Envelope
from registrar.projections.ports import Projection
from registrar.projector.runner import Projector, save_checkpoint
from registrar.projector.status import record_progress
from registrar.retrying import CONTENTION
from registrar.store.advisory_locks import LockHeld, lock_key, session_lock
from registrar.store.event_store import START, Checkpoint, PostgresEventStore

_BOOKKEEPING = ("projection_checkpoints", "projection_progress")
"""The projector's own tables: copied too, so the copy keeps its own checkpoint and progress."""

_INDEXES = text(
    "SELECT c.relname AS table_name, i.relname AS index_name, x.indisunique AS is_unique,"
    "       x.indisprimary OR con.conindid IS NOT NULL AS is_constraint,"
    "       pg_get_indexdef(x.indexrelid) AS definition"
    " FROM pg_index x"
    " JOIN pg_class i ON i.oid = x.indexrelid"
    " JOIN pg_class c ON c.oid = x.indrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid"
    " WHERE n.nspname = :schema AND c.relname = ANY(:tables)"
    " ORDER BY c.relname, i.relname"
)
_COLUMNS = text(
    "SELECT table_name, column_name, data_type, is_nullable, column_default"
    " FROM information_schema.columns WHERE table_schema = 'public' AND table_name = ANY(:tables)"
    " ORDER BY table_name, ordinal_position"
)
_INDEX_HEAD = re.compile(r"^CREATE (UNIQUE )?INDEX (\S+) ON (?:ONLY )?(\S+) ")

log = logging.getLogger("registrar.replay")


class ReplayBusy(Exception):
    """Another replay of the same projection is running."""


@dataclass(frozen=True, slots=True)
class ReplayResult:
    projection: str
    events: int
    """Events applied to the copy, in all (the resumed part included)."""
    resumed_from: int
    """Events the copy held already when this run started (0: started from scratch)."""
    position: int
    """The store position the new tables reached at the swap."""
    seconds: float

    @property
    def events_per_second(self) -> float:
        done = self.events - self.resumed_from
        return done / self.seconds if self.seconds else 0.0


def copy_schema(projection_name: str) -> str:
    return f"replay_{projection_name}"


class _IntoCopy:
    """`projection`, writing into its copy: each batch transaction looks names up there first."""

    def __init__(self, projection: Projection, schema: str) -> None:
        self.projection = projection
        self.name = projection.name
        self.tables = projection.tables
        self.schema = schema

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        await conn.execute(text(f"SET LOCAL search_path TO {self.schema}, public"))
        await self.projection.apply(conn, events)

    def forget(self) -> None:
        self.projection.forget()


async def replay(
    store: PostgresEventStore,
    projection: Projection,
    *,
    batch_size: int = 100_000,
    restart: bool = False,
    progress: Callable[[int, int], None] | None = None,
    lock_timeout_seconds: float = 5.0,
    swap_attempts: int = 50,
) -> ReplayResult:
    """Rebuild `projection` from the store into fresh tables and swap them in (see the module).

    `progress(done, total)` is called after each batch: events applied to the copy, and the
    store's event count (an estimate while events are still being appended)."""
    began = time.perf_counter()
    schema = copy_schema(projection.name)
    engine = store.engine
    async with _exclusively(store, projection.name):
        async with engine.begin() as conn:
            fingerprint = await _fingerprint(conn, projection.tables)
            resumable = not restart and await _copy_matches(conn, schema, fingerprint)
            if not resumable:
                await _set_up_copy(conn, schema, projection.tables, fingerprint)
        into_copy = _IntoCopy(projection, schema)
        projector = Projector(store, into_copy, batch_size=batch_size)
        projector.checkpoint, resumed_from = await _copy_checkpoint(engine, schema, projection.name)
        done = resumed_from
        total, head = await _event_count(engine), await _head(store)
        if progress is not None:
            progress(done, total)
        # Up to the head as of now, outside any lock; the swap applies what comes after. The
        # reader may pause below a transaction still running in this database: wait it out.
        while projector.checkpoint < head:
            applied = await projector.catch_up_once()
            if not applied:
                await asyncio.sleep(0.05)
                continue
            done += applied
            total = max(total, done)
            if progress is not None:
                progress(done, total)
        projector.stop_reading_ahead()  # the swap reads the rest itself
        await _build_secondary_indexes(engine, schema, projection.tables)
        for attempt in range(1, swap_attempts + 1):
            try:
                checkpoint, applied = await _swap(
                    store, into_copy, projector.checkpoint, batch_size, lock_timeout_seconds
                )
            except Exception as error:
                if not _is_lock_contention(error) or attempt == swap_attempts:
                    raise
                # Others held the live tables past the timeout: let them be, catch up outside
                # the lock, and try again after the pause every contended writer takes.
                log.info("replay %s: the live tables are busy (try %d)", projection.name, attempt)
                while applied := await projector.catch_up_once():
                    done += applied
                await asyncio.sleep(CONTENTION.pause(attempt))
                continue
            done += applied
            break
        projector.stop_reading_ahead()
        if progress is not None:
            progress(done, max(total, done))
    return ReplayResult(
        projection.name, done, resumed_from, checkpoint.position, time.perf_counter() - began
    )


class _LiveTablesBusy(Exception):
    """The live tables were not free within the lock timeout."""


def _is_lock_contention(error: BaseException) -> bool:
    """Whether `error` means others held the live tables: the swap is worth trying again."""
    if isinstance(error, _LiveTablesBusy):
        return True
    cause = getattr(getattr(error, "orig", None), "__cause__", None) or error
    return isinstance(
        cause, asyncpg.exceptions.LockNotAvailableError | asyncpg.exceptions.DeadlockDetectedError
    )


@contextlib.asynccontextmanager
async def _exclusively(store: PostgresEventStore, name: str) -> AsyncIterator[None]:
    """Hold a session advisory lock for the replay of `name` while the rebuild runs."""
    try:
        async with session_lock(store.engine, lock_key(f"registrar.replay.{name}")):
            yield
    except LockHeld:
        busy = f"another `registrar replay` of {name!r} is running; wait for it"
        raise ReplayBusy(busy) from None


async def _fingerprint(conn: AsyncConnection, tables: Sequence[str]) -> str:
    """A digest of the live tables' columns and indexes: the copy must have been made from these."""
    columns = (await conn.execute(_COLUMNS, {"tables": list(tables)})).all()
    indexes = (await conn.execute(_INDEXES, {"schema": "public", "tables": list(tables)})).all()
    missing = set(tables) - {row.table_name for row in columns}
    if missing:
        raise ValueError(f"tables {sorted(missing)} do not exist: run `registrar migrate` first")
    described = repr([tuple(row) for row in columns]) + repr([tuple(row) for row in indexes])
    return hashlib.sha256(described.encode()).hexdigest()


async def _copy_matches(conn: AsyncConnection, schema: str, fingerprint: str) -> bool:
    exists = await conn.scalar(
        text("SELECT to_regclass(:marker) IS NOT NULL"), {"marker": f"{schema}.replay_copy"}
    )
    if not exists:
        return False
    found = await conn.scalar(text(f"SELECT fingerprint FROM {schema}.replay_copy"))
    return bool(found == fingerprint)


async def _set_up_copy(
    conn: AsyncConnection, schema: str, tables: Sequence[str], fingerprint: str
) -> None:
    await conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    await conn.execute(text(f"CREATE SCHEMA {schema}"))
    for table in (*tables, *_BOOKKEEPING):
        await conn.execute(
            text(f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)")
        )
    await conn.execute(text(f"CREATE TABLE {schema}.replay_copy (fingerprint text NOT NULL)"))
    await conn.execute(
        text(f"INSERT INTO {schema}.replay_copy VALUES (:fingerprint)"),
        {"fingerprint": fingerprint},
    )
    # Give each copied index the live one's name (LIKE makes up names), so that the tables, once
    # swapped in, are the ones the migrations made; drop the secondary ones until the end.
    live = await _index_shapes(conn, "public", tables)
    copied = await _index_shapes(conn, schema, tables)
    for shape, (copied_name, constraint) in copied.items():
        live_name, _ = live[shape]
        unique = shape[2]
        if not unique and not constraint:
            await conn.execute(text(f"DROP INDEX {schema}.{copied_name}"))
        elif copied_name != live_name:
            await conn.execute(text(f"ALTER INDEX {schema}.{copied_name} RENAME TO {live_name}"))


async def _index_shapes(
    conn: AsyncConnection, schema: str, tables: Sequence[str]
) -> dict[tuple[str, str, bool], tuple[str, bool]]:
    """(table, definition without name and schema, unique) → (index name, backs a constraint)."""
    rows = (await conn.execute(_INDEXES, {"schema": schema, "tables": list(tables)})).all()
    shapes: dict[tuple[str, str, bool], tuple[str, bool]] = {}
    for row in rows:
        body = _INDEX_HEAD.sub("", row.definition)
        shapes[(row.table_name, body, row.is_unique)] = (row.index_name, row.is_constraint)
    return shapes


async def _build_secondary_indexes(engine: Any, schema: str, tables: Sequence[str]) -> None:
    """Create on the copy each live index it lacks, under the live index's name: one transaction
    each, since a transaction that writes holds back every catch-up reader on the server."""
    async with engine.connect() as conn:
        live = (await conn.execute(_INDEXES, {"schema": "public", "tables": list(tables)})).all()
        present = {
            row.index_name
            for row in (await conn.execute(_INDEXES, {"schema": schema, "tables": list(tables)}))
        }
    for row in live:
        if row.index_name in present:
            continue
        head = _INDEX_HEAD.match(row.definition)
        assert head is not None, row.definition
        unique = head.group(1) or ""
        body = row.definition[head.end() :]
        async with engine.begin() as conn:
            await conn.execute(
                text(f"CREATE {unique}INDEX {row.index_name} ON {schema}.{row.table_name} {body}")
            )
    async with engine.connect() as conn:
        for table in tables:
            await conn.execute(text(f"ANALYZE {schema}.{table}"))
        await conn.commit()


async def _copy_checkpoint(engine: Any, schema: str, name: str) -> tuple[Checkpoint, int]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    f"SELECT c.transaction_id, c.position, coalesce(p.events_applied, 0) AS events"
                    f" FROM {schema}.projection_checkpoints c"
                    f" LEFT JOIN {schema}.projection_progress p USING (projection)"
                    f" WHERE c.projection = :name"
                ),
                {"name": name},
            )
        ).first()
    if row is None:
        return START, 0
    return Checkpoint(row.transaction_id, row.position), int(row.events)


async def _head(store: PostgresEventStore) -> Checkpoint:
    """The commit-order checkpoint of the newest event stored now (START for an empty store)."""
    async with store.engine.connect() as conn:
        position = await conn.scalar(text("SELECT max(position) FROM events"))
    found = None if position is None else await store.checkpoint_of(position)
    return found or START


async def _event_count(engine: Any) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM events")) or 0)


async def _swap(
    store: PostgresEventStore,
    into_copy: _IntoCopy,
    checkpoint: Checkpoint,
    batch_size: int,
    lock_timeout_seconds: float,
) -> tuple[Checkpoint, int]:
    """Apply the last events and swap the copy in, in one transaction (see the module)."""
    schema, tables, name = into_copy.schema, into_copy.tables, into_copy.name
    applied = 0
    try:
        async with store.engine.begin() as conn:
            live = ", ".join(f"public.{table}" for table in tables)
            await _lock_when_free(conn, live, lock_timeout_seconds)
            while batch := await store.read_all(checkpoint, batch_size):
                envelopes = [recorded.envelope for recorded in batch]
                await into_copy.apply(conn, envelopes)
                await record_progress(conn, name, envelopes)
                checkpoint = batch[-1].checkpoint
                applied += len(batch)
            await conn.execute(text(f"DROP TABLE {live}"))
            for table in tables:
                await conn.execute(text(f"ALTER TABLE {schema}.{table} SET SCHEMA public"))
            await save_checkpoint(conn, name, checkpoint)  # into the copy's own table
            for table in _BOOKKEEPING:  # the copy's checkpoint and progress become the live ones
                await conn.execute(
                    text(f"DELETE FROM public.{table} WHERE projection = :n"), {"n": name}
                )
                await conn.execute(
                    text(
                        f"INSERT INTO public.{table}"
                        f" SELECT * FROM {schema}.{table} WHERE projection = :n"
                    ),
                    {"n": name},
                )
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    except BaseException:
        into_copy.forget()  # its states may be ahead of the rolled back copy
        raise
    return checkpoint, applied


async def _lock_when_free(conn: AsyncConnection, tables: str, timeout_seconds: float) -> None:
    """Lock `tables` ACCESS EXCLUSIVE, all at once, as soon as nobody holds them. NOWAIT, tried
    again every few milliseconds: a lock request left waiting would queue every query behind it,
    and waiting while holding some of the tables could deadlock with a live projector locking
    them in another order."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        try:
            async with conn.begin_nested():
                await conn.execute(text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE NOWAIT"))
            return
        except Exception as error:
            if not _is_lock_contention(error):
                raise
        if time.monotonic() > deadline:
            raise _LiveTablesBusy(f"{tables} stayed in use for {timeout_seconds} s")
        await asyncio.sleep(0.005)


class ProgressBar:
    """Events/s and ETA on a stream: a bar redrawn in place on a terminal, else a plain line
    every `every_seconds` (logs, CI)."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, every_seconds: float = 2.0) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.every_seconds = every_seconds
        self.began = time.monotonic()
        self.first: int | None = None
        self.last_line = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if self.first is None:
            self.first = done
        elapsed = now - self.began
        rate = (done - self.first) / elapsed if elapsed > 0 else 0.0
        remaining = max(0, total - done)
        eta = f"{remaining / rate:,.0f} s" if rate > 0 else "?"
        share = done / total if total else 1.0
        figures = f"{done:,}/{total:,} events {share:4.0%}  {rate:,.0f} events/s  ETA {eta}"
        if self.tty:
            bar = "#" * int(share * 30)
            self.stream.write(f"\r{self.label} [{bar:<30}] {figures}\x1b[K")
            self.stream.flush()
        elif now - self.last_line >= self.every_seconds or done >= total:
            self.stream.write(f"{self.label}: {figures}\n")
            self.stream.flush()
            self.last_line = now

    def finish(self, result: ReplayResult) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.write(
            f"{self.label}: swapped in at position {result.position:,}: {result.events:,} events"
            f" ({result.resumed_from:,} resumed), {result.seconds:.1f} s,"
            f" {result.events_per_second:,.0f} events/s\n"
        )
        self.stream.flush()
