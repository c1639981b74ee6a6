"""The event store on PostgreSQL: append with an expected stream version, idempotent on event id,
hash-chained per stream; read a stream; read everything in commit order; names; snapshots."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.contracts.codec import dumps, loads
from registrar.contracts.envelope import GENESIS_HASH, Envelope, chain_hash


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream since it was loaded: reload, decide again, retry."""


class EventIdsTaken(Exception):
    """The ids of the events to append belong to another stream's events (their command id,
    from which they derive, was used for a command on another model)."""


class NameTaken(Exception):
    """The name is, or once was, held by a model stream."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the model name {name!r} is taken")
        self.name = name


class Checkpoint(NamedTuple):
    """Where a catch-up reader is: the last (transaction id, position) it has read.

    Events are read in commit order, (transaction_id, position); see `read_all`."""

    transaction_id: int
    position: int


START = Checkpoint(0, 0)


@dataclass(frozen=True, slots=True)
class StreamHead:
    """What an append expects the stream to end with: its version and that event's hash."""

    version: int = 0
    hash: str = GENESIS_HASH


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append; the store adds the stream version, position and hash chain."""

    event_id: UUID
    type: str
    payload: dict[str, Any]
    recorded_at: datetime
    actor: str
    causation_id: UUID | None = None
    correlation_id: UUID | None = None
    schema_version: int = 1


@dataclass(frozen=True, slots=True)
class RequestKey:
    """A command id the caller chose (an Idempotency-Key), and a fingerprint of the request it
    was first used for."""

    key: UUID
    request_hash: str


@dataclass(frozen=True, slots=True)
class NameChange:
    """Names an append takes (RegisterModel, RenameModel) or releases (the former name of a
    rename; every name of a deleted model)."""

    claim: str | None = None
    retire: str | None = None
    release_all: bool = False


@dataclass(frozen=True, slots=True)
class Snapshot:
    stream_id: str
    stream_version: int
    head_hash: str
    head_position: int
    state_schema: int
    state: Any


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    envelope: Envelope
    checkpoint: Checkpoint


_COLUMNS = (
    "position, event_id, stream_id, stream_version, type, schema_version, recorded_at, actor,"
    " causation_id, correlation_id, payload, prev_hash, hash"
)

_INSERT_EVENTS = """
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, recorded_at,
                        actor, causation_id, correlation_id, payload, prev_hash, hash)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::int[],
                         $6::timestamptz[], $7::text[], $8::uuid[], $9::uuid[], $10::json[],
                         $11::text[], $12::text[])
    -- The unique stream version catches a stale head; this catches a head the stream never had
    -- (a gap, or a chain linked to a hash that is not the stream's): then nothing is inserted.
    WHERE ($14::int = 0 OR EXISTS (
        SELECT 1 FROM events WHERE stream_id = $13 AND stream_version = $14 AND hash = $15))
    -- No ON CONFLICT: if any of these events is stored, the unique event id fails the whole
    -- statement, so a retry writes none of its events (one that decided more events than the
    -- first try must not add the extra ones), and the store answers with what is stored.
    RETURNING position, event_id, transaction_id, recorded_at
"""
# Each append is ONE statement, so it is atomic without BEGIN/COMMIT round trips: the events,
# and for RegisterModel / RenameModel the name claim (a unique violation undoes the events too).
_NAME_CHANGE = (
    " moment AS (SELECT min(recorded_at) AS instant FROM inserted),"
    " claimed AS (INSERT INTO model_names (name, stream_id, is_current, claimed_at)"
    "   SELECT ${claim}, $13, true, moment.instant FROM moment"
    "   WHERE ${claim}::text IS NOT NULL AND EXISTS (SELECT 1 FROM inserted)"
    "   ON CONFLICT (name, stream_id) DO UPDATE"
    "   SET is_current = true, claimed_at = excluded.claimed_at, released_at = NULL"
    "   RETURNING name),"
    " retired AS (UPDATE model_names SET is_current = false,"
    "   released_at = coalesce(released_at, (SELECT instant FROM moment))"
    "   WHERE stream_id = $13 AND (name = ${retire} OR (${release_all}::boolean AND is_current))"
    "   AND name IS DISTINCT FROM ${claim} AND EXISTS (SELECT 1 FROM inserted) RETURNING name),"
)
_REQUEST_KEY = (
    " keyed AS (INSERT INTO idempotency_keys (key, request_hash)"
    "   SELECT ${key}, ${request_hash} WHERE EXISTS (SELECT 1 FROM inserted)"
    "   ON CONFLICT (key) DO NOTHING),"
)


def _append_statement(names: bool, keyed: bool) -> str:
    """The append: the events, and in the same statement any name change and request key."""
    parts, number = [f"WITH inserted AS ({_INSERT_EVENTS}),"], 16
    if names:
        parts.append(_NAME_CHANGE.format(claim=number, retire=number + 1, release_all=number + 2))
        number += 3
    if keyed:
        parts.append(_REQUEST_KEY.format(key=number, request_hash=number + 1))
    parts[-1] = parts[-1].removesuffix(",")
    parts.append(
        " SELECT position, event_id, transaction_id::text::bigint AS transaction_id FROM inserted"
    )
    return "".join(parts)


_APPEND = {(n, k): _append_statement(n, k) for n in (False, True) for k in (False, True)}
_SELECT_BY_IDS = f"SELECT {_COLUMNS} FROM events WHERE event_id = ANY($1::uuid[]) ORDER BY position"
_SELECT_BY_CAUSE = f"SELECT {_COLUMNS} FROM events WHERE causation_id = $1 ORDER BY position"
_READ_STREAM = (
    f"SELECT {_COLUMNS} FROM events WHERE stream_id = $1 AND stream_version > $2"
    " ORDER BY stream_version"
)
# Rows of transactions below the oldest transaction that may still write here can no longer change;
# anything committed later has a transaction id at or above it, so after our checkpoint.
# Transactions of other databases on the same server can write no event here, so they must not
# hold the reader back (pg_snapshot_xmin alone would: a long report in another database stalled
# every projection). Of the server's running transactions (the snapshot's xip), those holding the
# lock on their own id from a session of another database are left out; any other, including one
# that ended after the snapshot was taken (its rows are not visible to this statement), still
# counts. The lookup runs only when some transaction is running at all.
_HORIZON = (
    "(SELECT CASE WHEN pg_snapshot_xmin(s) = pg_snapshot_xmax(s) THEN pg_snapshot_xmax(s)"
    "  ELSE coalesce((SELECT min(x) FROM pg_snapshot_xip(s) x WHERE x::xid NOT IN ("
    "    SELECT l.transactionid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    "    WHERE l.locktype = 'transactionid' AND l.transactionid IS NOT NULL"
    "      AND l.mode = 'ExclusiveLock'"
    "      AND a.datname <> current_database())), pg_snapshot_xmax(s)) END"
    " FROM pg_current_snapshot() s)"
)
_READ_ALL = (
    f"SELECT {_COLUMNS}, transaction_id::text::bigint AS transaction_id FROM events"
    " WHERE (transaction_id, position) > ($1::text::xid8, $2)"
    f"   AND transaction_id < {_HORIZON}"
    " ORDER BY transaction_id, position LIMIT $3"
)
# The stream holding `name` and, when it is the stream the caller has cached, the events after the
# cached version: one round trip for the common case of a command on a model loaded before.
# The model a name means: its live holder, else the last model that held it (deleted, or renamed
# since), until another takes it.
_HOLDER_OF_NAME = (
    "SELECT stream_id FROM model_names WHERE name = $1 ORDER BY is_current DESC, claimed_at DESC"
    " LIMIT 1"
)
_READ_BY_NAME = (
    f"SELECT n.stream_id AS resolved, {', '.join('e.' + c.strip() for c in _COLUMNS.split(','))}"
    f" FROM ({_HOLDER_OF_NAME}) n LEFT JOIN events e ON e.stream_id = n.stream_id"
    "  AND n.stream_id = $2 AND e.stream_version > $3"
    " ORDER BY e.stream_version"
)
_CHECKPOINT_OF = "SELECT transaction_id::text::bigint FROM events WHERE position = $1"
_STREAM_VERSION_AT = "SELECT stream_id, stream_version FROM events WHERE position = $1"
_LAST_OF_TYPES_UP_TO = (
    "SELECT stream_id, stream_version FROM events WHERE position <= $1 AND type = ANY($2::text[])"
    " ORDER BY position DESC LIMIT 1"
)
# The model that held `name` at an instant, if one did.
_HOLDER_OF_NAME_AT = (
    "SELECT stream_id FROM model_names WHERE name = $1 AND claimed_at <= $2"
    " AND (released_at IS NULL OR released_at > $2) ORDER BY claimed_at DESC LIMIT 1"
)
_LOAD_SNAPSHOT = (
    "SELECT stream_id, stream_version, head_hash, head_position, state_schema, state"
    " FROM snapshots WHERE stream_id = $1"
)
_SAVE_SNAPSHOT = (
    "INSERT INTO snapshots (stream_id, stream_version, head_hash, head_position, state_schema,"
    " state) VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
    " ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version,"
    " head_hash = excluded.head_hash, head_position = excluded.head_position,"
    " state_schema = excluded.state_schema, state = excluded.state, taken_at = now()"
    " WHERE snapshots.stream_version < excluded.stream_version"
    " OR snapshots.state_schema <> excluded.state_schema"
)


_ENVELOPE_FIELDS = tuple(Envelope.model_fields)


def _stored_envelope(**fields: Any) -> Envelope:
    """What `Envelope.model_construct(**fields)` makes, given every field, five times faster: a
    rebuild reads every stored event, and model_construct was a tenth of its CPU. The row was
    validated when it was appended; only pydantic's own slots are set besides the fields."""
    envelope = object.__new__(Envelope)
    object.__setattr__(envelope, "__dict__", fields)
    object.__setattr__(envelope, "__pydantic_fields_set__", set(_ENVELOPE_FIELDS))
    object.__setattr__(envelope, "__pydantic_extra__", None)
    object.__setattr__(envelope, "__pydantic_private__", None)
    return envelope


def envelope_from_row(row: asyncpg.Record) -> Envelope:
    payload = row["payload"]
    return _stored_envelope(
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        position=row["position"],
        type=row["type"],
        schema_version=row["schema_version"],
        recorded_at=row["recorded_at"],
        actor=row["actor"],
        causation_id=row["causation_id"],
        correlation_id=row["correlation_id"],
        payload=payload if isinstance(payload, dict) else loads(payload),
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


def _as_stored(at: datetime) -> datetime:
    """The time as a timestamptz reads back: the same instant, in UTC (a naive time is UTC, as in
    the codec). Hashing anything else would make the stored hash unverifiable from the row."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def chain(stream_id: str, head: StreamHead, events: Sequence[NewEvent]) -> list[Envelope]:
    """The envelopes `events` become when appended after `head`: versions and hashes assigned."""
    envelopes: list[Envelope] = []
    prev_hash, version = head.hash, head.version
    for event in events:
        version += 1
        envelope = Envelope.model_construct(
            event_id=event.event_id,
            stream_id=stream_id,
            stream_version=version,
            position=None,
            type=event.type,
            schema_version=event.schema_version,
            recorded_at=_as_stored(event.recorded_at),
            actor=event.actor,
            causation_id=event.causation_id,
            correlation_id=event.correlation_id,
            payload=event.payload,
            prev_hash=prev_hash,
            hash="",
        )
        digest = chain_hash(prev_hash, envelope.hashed_fields())
        envelopes.append(envelope.model_copy(update={"hash": digest}))
        prev_hash = digest
    return envelopes


class PostgresEventStore:
    """The event store. Its statements run on the asyncpg connection of a connection from the
    SQLAlchemy engine's pool: each is a single statement (atomic on its own, no BEGIN/COMMIT round
    trips), and SQLAlchemy's per-statement machinery would cost about three times the driver's CPU
    on this, the hottest path (see README, Performance)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[asyncpg.Connection]:
        """A connection in a read-only transaction (one snapshot), for long reads with cursors."""
        async with self._driver() as conn, conn.transaction(readonly=True):
            yield conn

    @contextlib.asynccontextmanager
    async def _driver(self) -> AsyncIterator[asyncpg.Connection]:
        pooled = await self.engine.raw_connection()
        try:
            yield pooled.driver_connection  # type: ignore[misc]
        except (asyncpg.PostgresError, ValueError, ConcurrencyConflict, NameTaken):
            pooled.close()  # the server refused a statement: the connection itself is fine
            raise
        except BaseException:
            pooled.invalidate()  # cancelled or broken mid-statement: do not reuse it
            raise
        else:
            pooled.close()

    async def append(
        self,
        stream_id: str,
        expected: StreamHead,
        events: Sequence[NewEvent],
        names: NameChange | None = None,
        request: RequestKey | None = None,
    ) -> list[Envelope]:
        """Append `events` after `expected`, atomically, with any name change and the request
        key (a caller-chosen command id) they answer.

        Raises ConcurrencyConflict if the stream moved on, NameTaken if the claimed name is held.
        Appending events whose ids are already stored writes nothing and returns the stored ones.
        """
        if not events:
            return []
        envelopes = chain(stream_id, expected, events)
        args: list[Any] = [
            [e.event_id for e in envelopes],
            [stream_id] * len(envelopes),
            [e.stream_version for e in envelopes],
            [e.type for e in envelopes],
            [e.schema_version for e in envelopes],
            [e.recorded_at for e in envelopes],
            [e.actor for e in envelopes],
            [e.causation_id for e in envelopes],
            [e.correlation_id for e in envelopes],
            [dumps(e.payload).decode() for e in envelopes],
            [e.prev_hash for e in envelopes],
            [e.hash for e in envelopes],
            stream_id,
            expected.version,
            expected.hash,
        ]
        statement = _APPEND[names is not None, request is not None]
        if names is not None:
            args += [names.claim, names.retire, names.release_all]
        if request is not None:
            args += [request.key, request.request_hash]
        async with self._driver() as conn:
            try:
                inserted = await conn.fetch(statement, *args)
            except asyncpg.UniqueViolationError as error:
                if error.constraint_name == "model_names_held" and names is not None:
                    raise NameTaken(names.claim or "") from error
                if error.constraint_name == "events_event_id_unique":
                    return await self._already_stored(conn, stream_id, expected, envelopes)
                if error.constraint_name != "events_stream_version_unique":
                    raise
                # A concurrent append of these same events can surface as a version conflict
                # (whichever unique index is checked first): then this append is a retry.
                if await conn.fetchval(_SELECT_BY_IDS, [envelopes[0].event_id]) is None:
                    raise ConcurrencyConflict(
                        f"stream {stream_id} moved past version {expected.version}"
                    ) from error
                inserted = []
            if not inserted:
                return await self._already_stored(conn, stream_id, expected, envelopes)
        positions = {row["event_id"]: row["position"] for row in inserted}
        return [e.model_copy(update={"position": positions[e.event_id]}) for e in envelopes]

    async def _already_stored(
        self,
        conn: asyncpg.Connection,
        stream_id: str,
        expected: StreamHead,
        envelopes: list[Envelope],
    ) -> list[Envelope]:
        """Nothing was inserted: the events were stored before (a retry), or the head is wrong.

        A retry returns what was stored then: all the events of the same cause (command) when
        the append's events share one, else the stored events with these ids."""
        rows = await conn.fetch(_SELECT_BY_IDS, [e.event_id for e in envelopes])
        if not rows:
            raise ConcurrencyConflict(
                f"stream {stream_id} has no version {expected.version} with hash"
                f" {expected.hash}: reload it and decide again"
            )
        causes = {e.causation_id for e in envelopes}
        cause = causes.pop() if len(causes) == 1 else None
        if cause is not None:
            rows = await conn.fetch(_SELECT_BY_CAUSE, cause)
        stored = [envelope_from_row(row) for row in rows]
        if any(e.stream_id != stream_id for e in stored):
            raise EventIdsTaken(
                "the event ids of this append belong to another stream's events: was a command id"
                " (Idempotency-Key) reused for a different command?"
            )
        return stored

    async def request_hash_of(self, key: UUID) -> str | None:
        """The fingerprint of the request a caller-chosen command id was first used for."""
        async with self._driver() as conn:
            return await conn.fetchval(  # type: ignore[no-any-return]
                "SELECT request_hash FROM idempotency_keys WHERE key = $1", key
            )

    async def events_caused_by(self, command_id: UUID) -> list[Envelope]:
        """The events a command appended (their causation id), in order; [] if it appended none."""
        async with self._driver() as conn:
            return [
                envelope_from_row(row) for row in await conn.fetch(_SELECT_BY_CAUSE, command_id)
            ]

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        async with self._driver() as conn:
            return [
                envelope_from_row(row)
                for row in await conn.fetch(_READ_STREAM, stream_id, after_version)
            ]

    async def read_all(self, after: Checkpoint = START, limit: int = 1000) -> list[RecordedEvent]:
        """Committed events after `after`, in commit order: (transaction id, position).

        Position order alone would skip events: positions are drawn before commit, so a
        transaction can commit position 10 after position 11 was already read. Commit order
        never does: the reader stops below the oldest transaction still running.
        Within one stream, commit order is version order.
        """
        async with self._driver() as conn:
            rows = await conn.fetch(_READ_ALL, str(after.transaction_id), after.position, limit)
        return [
            RecordedEvent(
                envelope_from_row(row), Checkpoint(row["transaction_id"], row["position"])
            )
            for row in rows
        ]

    async def checkpoint_of(self, position: int) -> Checkpoint | None:
        """The commit-order checkpoint of the event at `position`, if it is stored."""
        async with self._driver() as conn:
            transaction_id = await conn.fetchval(_CHECKPOINT_OF, position)
        return None if transaction_id is None else Checkpoint(transaction_id, position)

    async def stream_version_at(self, position: int) -> tuple[str, int] | None:
        """(stream id, stream version) of the event at `position`, if it is stored."""
        async with self._driver() as conn:
            row = await conn.fetchrow(_STREAM_VERSION_AT, position)
        return None if row is None else (row["stream_id"], row["stream_version"])

    async def last_of_types_up_to(
        self, position: int, types: Sequence[str]
    ) -> tuple[str, int] | None:
        """(stream id, stream version) of the newest event of one of `types` at or before
        `position`, if there is one."""
        async with self._driver() as conn:
            row = await conn.fetchrow(_LAST_OF_TYPES_UP_TO, position, list(types))
        return None if row is None else (row["stream_id"], row["stream_version"])

    async def resolve_name(self, name: str, at: datetime | None = None) -> str | None:
        """The stream `name` means: its live holder, else the last stream that held it; with
        `at`, the stream that held it at that instant if one did (else as without)."""
        async with self._driver() as conn:
            if at is not None:
                held = await conn.fetchval(_HOLDER_OF_NAME_AT, name, at)
                if held is not None:
                    return held  # type: ignore[no-any-return]
            return await conn.fetchval(_HOLDER_OF_NAME, name)  # type: ignore[no-any-return]

    async def holders_of_name(self, name: str) -> list[str]:
        """Every stream that ever held `name`, the first holder first."""
        async with self._driver() as conn:
            rows = await conn.fetch(
                "SELECT stream_id FROM model_names WHERE name = $1 ORDER BY claimed_at", name
            )
        return [row["stream_id"] for row in rows]

    async def read_stream_by_name(
        self, name: str, known: tuple[str, int] | None = None
    ) -> tuple[str | None, list[Envelope]]:
        """The stream that holds or once held `name`, and, if it is `known` = (stream id, version),
        its events after that version (else no events: load that stream afresh)."""
        known_stream, known_version = known or ("", 0)
        async with self._driver() as conn:
            rows = await conn.fetch(_READ_BY_NAME, name, known_stream, known_version)
        if not rows:
            return None, []
        return rows[0]["resolved"], [
            envelope_from_row(row) for row in rows if row["event_id"] is not None
        ]

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        async with self._driver() as conn:
            row = await conn.fetchrow(_LOAD_SNAPSHOT, stream_id)
        if row is None:
            return None
        state = row["state"]
        return Snapshot(
            row["stream_id"],
            row["stream_version"],
            row["head_hash"],
            row["head_position"],
            row["state_schema"],
            loads(state) if isinstance(state, (str, bytes)) else state,
        )

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the newest snapshot of a stream (an older one never replaces a newer one)."""
        async with self._driver() as conn:
            await conn.execute(
                _SAVE_SNAPSHOT,
                snapshot.stream_id,
                snapshot.stream_version,
                snapshot.head_hash,
                snapshot.head_position,
                snapshot.state_schema,
                dumps(snapshot.state).decode(),
            )
