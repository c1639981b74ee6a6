"""The event store on PostgreSQL: append with an expected stream version, idempotent on event id,
hash-chained per stream; read a stream; read everything in commit order; names; snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from contracts.codec import dumps, loads
from contracts.envelope import GENESIS_HASH, Envelope, chain_hash


class ConcurrencyConflict(Exception):
    """Another writer appended to the stream since it was loaded: reload, decide again, retry."""


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
class NameChange:
    """Names an append takes (RegisterModel, RenameModel) or stops being current under (rename)."""

    claim: str
    retire: str | None = None


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

_INSERT = text(
    """
    INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, recorded_at,
                        actor, causation_id, correlation_id, payload, prev_hash, hash)
    SELECT * FROM unnest(
        CAST(:event_ids AS uuid[]), CAST(:stream_ids AS text[]), CAST(:versions AS int[]),
        CAST(:types AS text[]), CAST(:schema_versions AS int[]),
        CAST(:recorded_ats AS timestamptz[]), CAST(:actors AS text[]),
        CAST(:causation_ids AS uuid[]), CAST(:correlation_ids AS uuid[]),
        CAST(:payloads AS json[]), CAST(:prev_hashes AS text[]), CAST(:hashes AS text[]))
    -- The unique stream version catches a stale head; this catches a head the stream never had
    -- (a gap, or a chain linked to a hash that is not the stream's): then nothing is inserted.
    WHERE CAST(:head_version AS int) = 0 OR EXISTS (
        SELECT 1 FROM events WHERE stream_id = :head_stream
        AND stream_version = :head_version AND hash = :head_hash)
    ON CONFLICT (event_id) DO NOTHING
    RETURNING position, event_id, transaction_id::text::bigint AS transaction_id
    """
)
_SELECT_BY_IDS = text(f"SELECT {_COLUMNS} FROM events WHERE event_id = ANY(:ids) ORDER BY position")
_READ_STREAM = text(
    f"SELECT {_COLUMNS} FROM events WHERE stream_id = :stream_id AND stream_version > :after"
    " ORDER BY stream_version"
)
# Rows of transactions below the oldest still-running transaction (pg_snapshot_xmin) can no longer
# change; anything committed later has a transaction id at or above it, so after our checkpoint.
_READ_ALL = text(
    f"SELECT {_COLUMNS}, transaction_id::text::bigint AS transaction_id FROM events"
    " WHERE (transaction_id, position) > (CAST(CAST(:tx AS text) AS xid8), :pos)"
    "   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY transaction_id, position LIMIT :limit"
)
_CLAIM_NAME = text(
    "INSERT INTO model_names (name, stream_id, is_current) VALUES (:name, :stream_id, true)"
)
_RETIRE_NAME = text(
    "UPDATE model_names SET is_current = false WHERE name = :name AND stream_id = :stream_id"
)


def _envelope(row: Any) -> Envelope:
    payload = row.payload if isinstance(row.payload, dict) else loads(row.payload)
    return Envelope.model_construct(
        event_id=row.event_id,
        stream_id=row.stream_id,
        stream_version=row.stream_version,
        position=row.position,
        type=row.type,
        schema_version=row.schema_version,
        recorded_at=row.recorded_at,
        actor=row.actor,
        causation_id=row.causation_id,
        correlation_id=row.correlation_id,
        payload=payload,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def _violated_constraint(error: IntegrityError) -> str:
    cause = getattr(error.orig, "__cause__", None)
    return str(getattr(cause, "constraint_name", "") or "")


def _as_stored(at: datetime) -> datetime:
    """The time as a timestamptz reads back: the same instant, in UTC (a naive time is UTC, as in
    the codec). Hashing anything else would make the stored hash unverifiable from the row."""
    return at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at.astimezone(timezone.utc)


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
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.last_checkpoint = START
        """The commit-order checkpoint of the newest event this process appended: a projection
        that has reached it shows every write this process made (read-your-writes)."""

    async def append(
        self,
        stream_id: str,
        expected: StreamHead,
        events: Sequence[NewEvent],
        names: NameChange | None = None,
    ) -> list[Envelope]:
        """Append `events` after `expected`, atomically, with any name change.

        Raises ConcurrencyConflict if the stream moved on, NameTaken if the claimed name is held.
        Appending events whose ids are already stored writes nothing and returns the stored ones.
        """
        if not events:
            return []
        envelopes = chain(stream_id, expected, events)
        params = {
            "event_ids": [e.event_id for e in envelopes],
            "stream_ids": [stream_id] * len(envelopes),
            "versions": [e.stream_version for e in envelopes],
            "types": [e.type for e in envelopes],
            "schema_versions": [e.schema_version for e in envelopes],
            "recorded_ats": [e.recorded_at for e in envelopes],
            "actors": [e.actor for e in envelopes],
            "causation_ids": [e.causation_id for e in envelopes],
            "correlation_ids": [e.correlation_id for e in envelopes],
            "payloads": [dumps(e.payload).decode() for e in envelopes],
            "prev_hashes": [e.prev_hash for e in envelopes],
            "hashes": [e.hash for e in envelopes],
            "head_stream": stream_id,
            "head_version": expected.version,
            "head_hash": expected.hash,
        }
        try:
            async with self.engine.begin() as conn:
                inserted = (await conn.execute(_INSERT, params)).all()
                if not inserted:
                    return await self._already_stored(conn, stream_id, expected, envelopes)
                if len(inserted) != len(envelopes):
                    raise ValueError("an append mixed new events with already stored ones")
                if names is not None:
                    await conn.execute(_CLAIM_NAME, {"name": names.claim, "stream_id": stream_id})
                    if names.retire is not None:
                        await conn.execute(
                            _RETIRE_NAME, {"name": names.retire, "stream_id": stream_id}
                        )
        except IntegrityError as error:
            constraint = _violated_constraint(error)
            if constraint == "events_stream_version_unique":
                # ON CONFLICT (event_id) does not cover every race: a concurrent append of these
                # same events can surface as a version conflict. Then this append is a retry.
                async with self.engine.connect() as conn:
                    first_id = {"ids": [envelopes[0].event_id]}
                    if (await conn.execute(_SELECT_BY_IDS, first_id)).first() is not None:
                        return await self._already_stored(conn, stream_id, expected, envelopes)
                raise ConcurrencyConflict(
                    f"stream {stream_id} moved past version {expected.version}"
                ) from error
            if constraint == "model_names_pkey" and names is not None:
                raise NameTaken(names.claim) from error
            raise
        positions = {row.event_id: row.position for row in inserted}
        self.last_checkpoint = max(
            self.last_checkpoint, *(Checkpoint(r.transaction_id, r.position) for r in inserted)
        )
        return [e.model_copy(update={"position": positions[e.event_id]}) for e in envelopes]

    async def _already_stored(
        self,
        conn: AsyncConnection,
        stream_id: str,
        expected: StreamHead,
        envelopes: list[Envelope],
    ) -> list[Envelope]:
        """Nothing was inserted: the events were stored before (a retry), or the head is wrong."""
        rows = (await conn.execute(_SELECT_BY_IDS, {"ids": [e.event_id for e in envelopes]})).all()
        if not rows:
            raise ConcurrencyConflict(
                f"stream {stream_id} has no version {expected.version} with hash"
                f" {expected.hash}: reload it and decide again"
            )
        stored = [_envelope(row) for row in rows]
        if len(stored) != len(envelopes) or any(e.stream_id != stream_id for e in stored):
            raise ValueError(
                "the event ids of this append belong to other stored events: was a command id"
                " (Idempotency-Key) reused for a different command?"
            )
        return stored

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        async with self.engine.connect() as conn:
            result = await conn.execute(
                _READ_STREAM, {"stream_id": stream_id, "after": after_version}
            )
            return [_envelope(row) for row in result]

    async def read_all(self, after: Checkpoint = START, limit: int = 1000) -> list[RecordedEvent]:
        """Committed events after `after`, in commit order: (transaction id, position).

        Position order alone would skip events: positions are drawn before commit, so a
        transaction can commit position 10 after position 11 was already read. Commit order
        never does: the reader stops below the oldest transaction still running.
        Within one stream, commit order is version order.
        """
        async with self.engine.connect() as conn:
            result = await conn.execute(
                _READ_ALL, {"tx": str(after.transaction_id), "pos": after.position, "limit": limit}
            )
            return [
                RecordedEvent(_envelope(row), Checkpoint(row.transaction_id, row.position))
                for row in result
            ]

    async def checkpoint_of(self, position: int) -> Checkpoint | None:
        """The commit-order checkpoint of the event at `position`, if it is stored."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT transaction_id::text::bigint AS tx FROM events"
                        " WHERE position = :position"
                    ),
                    {"position": position},
                )
            ).first()
        return None if row is None else Checkpoint(row.tx, position)

    async def resolve_name(self, name: str) -> str | None:
        """The stream that holds or once held `name`, if any."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text("SELECT stream_id FROM model_names WHERE name = :name"), {"name": name}
            )
            return result.scalar_one_or_none()

    async def load_snapshot(self, stream_id: str) -> Snapshot | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT stream_id, stream_version, head_hash, head_position, state_schema,"
                        " state FROM snapshots WHERE stream_id = :stream_id"
                    ),
                    {"stream_id": stream_id},
                )
            ).first()
        if row is None:
            return None
        state = row.state if not isinstance(row.state, (str, bytes)) else loads(row.state)
        return Snapshot(
            row.stream_id,
            row.stream_version,
            row.head_hash,
            row.head_position,
            row.state_schema,
            state,
        )

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Keep the newest snapshot of a stream (an older one never replaces a newer one)."""
        async with self.engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO snapshots (stream_id, stream_version, head_hash, head_position,"
                    " state_schema, state)"
                    " VALUES (:stream_id, :version, :head_hash, :head_position, :schema,"
                    " CAST(:state AS jsonb))"
                    " ON CONFLICT (stream_id) DO UPDATE SET stream_version = excluded.stream_version,"
                    " head_hash = excluded.head_hash, head_position = excluded.head_position,"
                    " state_schema = excluded.state_schema, state = excluded.state, taken_at = now()"
                    " WHERE snapshots.stream_version < excluded.stream_version"
                    " OR snapshots.state_schema <> excluded.state_schema"
                ),
                {
                    "stream_id": snapshot.stream_id,
                    "version": snapshot.stream_version,
                    "head_hash": snapshot.head_hash,
                    "head_position": snapshot.head_position,
                    "schema": snapshot.state_schema,
                    "state": dumps(snapshot.state).decode(),
                },
            )
