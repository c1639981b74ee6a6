"""Point-in-time history: every version's stages and every alias's holder, as validity intervals
[valid_from, valid_to) in the events' recorded time (valid_to NULL: still so). Answers "what was
in Production at T", "which version did `champion` name at T", and a version's timeline.

Intervals are keyed by the model's stream id, so a rename keeps its history: a query by the
current name (or any former one) sees the model's whole past. `history_models` records each
model stream's last applied version (a redelivered event is skipped) and its current name; each
stage interval carries that name too (rewritten on rename), so that "every model in Production
at T" is one index-only scan (migration 0011).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.envelope import Envelope
from registrar.contracts.events import (
    AliasDeleted,
    AliasSet,
    ModelDeleted,
    ModelRegistered,
    ModelRenamed,
    StageChanged,
    VersionDeleted,
    VersionRegistered,
    event_from_payload,
)
from registrar.contracts.values import Stage
from registrar.projections.ports import EventSource, stream_applied
from registrar.projections.unapplied_events import by_model_stream, unapplied_events

NAME = "stage_history"

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def parse_instant(value: str) -> datetime:
    """An RFC 3339 time (date, time and zone offset: 2026-03-03T14:00:00Z), else ValueError."""
    if not _RFC3339.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an RFC 3339 time: give a date, a time and a zone offset,"
            " e.g. 2026-03-03T14:00:00Z or 2026-03-03T15:00:00.5+01:00"
        )
    # Python reads at most microseconds: drop finer digits rather than refuse them.
    trimmed = re.sub(r"(\.\d{6})\d+", r"\1", value)
    try:
        return datetime.fromisoformat(trimmed.replace("z", "Z"))
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid time: {exc}") from None


@dataclass
class Interval:
    """One stage of a version, or one alias's holder, from an event to the event that ended it."""

    stream_id: str
    key: int | str  # the version (stage intervals) or the alias (alias intervals)
    value: str | int  # the stage, or the version the alias names
    valid_from: datetime
    from_position: int
    actor: str
    stored: bool = False  # already a row (else inserted at the end of the batch)
    valid_to: datetime | None = None
    to_position: int | None = None
    ended_by: str | None = None

    def end(self, envelope: Envelope, at: datetime) -> None:
        # A clock that stepped back must not make an interval end before it starts.
        self.valid_to = max(at, self.valid_from)
        self.to_position = envelope.position
        self.ended_by = envelope.type


@dataclass
class _Stream:
    """A model stream's open intervals while a batch is applied, and what the batch changed."""

    name: str
    deleted: bool
    stored_name: str | None = None
    """The name its stored rows carry (None: a model new to this read model)."""
    causation_id: UUID | None = None
    """The command of the last event applied, and the time of its first event: every event of
    one command takes that time, so one command's moves happen at one instant (the store records
    each event's own time, microseconds apart: archive-existing must not leave two versions in
    Production for those microseconds)."""
    command_at: datetime | None = None
    stages: dict[int, Interval] = field(default_factory=dict)
    aliases: dict[str, Interval] = field(default_factory=dict)
    ended: list[Interval] = field(default_factory=list)
    opened: list[Interval] = field(default_factory=list)

    def open(self, opened: dict[Any, Interval], interval: Interval) -> None:
        opened[interval.key] = interval
        self.opened.append(interval)

    def close(self, opened: dict[Any, Interval], key: Any, envelope: Envelope) -> None:
        interval = opened.pop(key, None)
        if interval is not None:
            interval.end(envelope, self.instant_of(envelope))
            self.ended.append(interval)

    def instant_of(self, envelope: Envelope) -> datetime:
        """When `envelope` took effect: the time of its command's first event."""
        if envelope.causation_id is None or envelope.causation_id != self.causation_id:
            self.causation_id, self.command_at = envelope.causation_id, envelope.recorded_at
        return self.command_at or envelope.recorded_at

    def apply(self, envelope: Envelope) -> None:
        def opened(key: int | str, value: str | int) -> Interval:
            at, position = self.instant_of(envelope), envelope.position or 0
            return Interval(envelope.stream_id, key, value, at, position, envelope.actor)

        self.instant_of(envelope)

        match event_from_payload(envelope.type, envelope.payload):
            case ModelRegistered(name=name) | ModelRenamed(new_name=name):
                self.name = name
            case ModelDeleted():
                self.deleted = True
                for held in (self.stages, self.aliases):
                    for key in list(held):
                        self.close(held, key, envelope)
            case VersionRegistered(version=version):
                self.open(self.stages, opened(version, Stage.NONE.value))
            case StageChanged(version=version, to_stage=stage):
                self.close(self.stages, version, envelope)
                self.open(self.stages, opened(version, stage.value))
            case VersionDeleted(version=version):
                self.close(self.stages, version, envelope)
            case AliasSet(alias=alias, version=version):
                self.close(self.aliases, alias, envelope)
                self.open(self.aliases, opened(alias, version))
            case AliasDeleted(alias=alias):
                self.close(self.aliases, alias, envelope)


_INTERVAL_COLUMNS = "valid_from, valid_to, from_position, to_position, actor, ended_by"
_INSERT_STAGES = text(
    f"INSERT INTO stage_history (stream_id, version, stage, model, {_INTERVAL_COLUMNS})"
    " VALUES (:stream_id, :key, :value, :model, :valid_from, :valid_to, :from_position,"
    " :to_position, :actor, :ended_by) ON CONFLICT DO NOTHING"
)
_INSERT_ALIASES = text(
    f"INSERT INTO alias_history (stream_id, alias, version, {_INTERVAL_COLUMNS})"
    " VALUES (:stream_id, :key, :value, :valid_from, :valid_to, :from_position, :to_position,"
    " :actor, :ended_by) ON CONFLICT DO NOTHING"
)
_END_STAGES = text(
    "UPDATE stage_history SET valid_to = :valid_to, to_position = :to_position,"
    " ended_by = :ended_by"
    " WHERE stream_id = :stream_id AND version = :key AND from_position = :from_position"
)
_RENAME_STAGES = text("UPDATE stage_history SET model = :model WHERE stream_id = :stream_id")
_END_ALIASES = text(
    "UPDATE alias_history SET valid_to = :valid_to, to_position = :to_position,"
    " ended_by = :ended_by"
    " WHERE stream_id = :stream_id AND alias = :key AND from_position = :from_position"
)
_UPSERT_MODELS = text(
    "INSERT INTO history_models (stream_id, name, deleted, stream_version, causation_id,"
    " command_at) VALUES (:stream_id, :name, :deleted, :stream_version, :causation_id,"
    " :command_at) ON CONFLICT (stream_id) DO UPDATE"
    " SET name = excluded.name, deleted = excluded.deleted,"
    " stream_version = excluded.stream_version, causation_id = excluded.causation_id,"
    " command_at = excluded.command_at"
)
# The open intervals a batch can close: those of the (model, version) and (model, alias) pairs its
# events name, and every one of a model it deletes. Exact pairs, joined to the primary key: all
# of a model's open intervals per batch cost a model with thousands of versions thousands of rows
# per event, and "stream in (...) and version in (...)" made the planner scan the whole table.
_OPEN_STAGES = text(
    f"SELECT h.stream_id, h.version AS key, h.stage AS value, {_INTERVAL_COLUMNS}"
    " FROM unnest(CAST(:ids AS text[]), CAST(:keys AS integer[])) AS w(stream_id, version)"
    " JOIN stage_history h ON h.stream_id = w.stream_id AND h.version = w.version"
    " WHERE h.to_position IS NULL"
    f" UNION ALL SELECT stream_id, version, stage, {_INTERVAL_COLUMNS} FROM stage_history"
    " WHERE stream_id = ANY(:whole) AND to_position IS NULL"
)
_OPEN_ALIASES = text(
    f"SELECT h.stream_id, h.alias AS key, h.version AS value, {_INTERVAL_COLUMNS}"
    " FROM unnest(CAST(:ids AS text[]), CAST(:keys AS text[])) AS w(stream_id, alias)"
    " JOIN alias_history h ON h.stream_id = w.stream_id AND h.alias = w.alias"
    " WHERE h.to_position IS NULL"
    f" UNION ALL SELECT stream_id, alias, version, {_INTERVAL_COLUMNS} FROM alias_history"
    " WHERE stream_id = ANY(:whole) AND to_position IS NULL"
)


def _named(events: Iterable[Envelope]) -> tuple[set[int], set[str], bool]:
    """The versions and aliases `events` name, and whether they delete their model."""
    versions: set[int] = set()
    aliases: set[str] = set()
    for envelope in events:
        payload = envelope.payload
        if envelope.type == "ModelDeleted":
            return versions, aliases, True
        if isinstance(payload.get("version"), int):
            versions.add(payload["version"])
        if isinstance(payload.get("alias"), str):
            aliases.add(payload["alias"])
    return versions, aliases, False


def _row(interval: Interval, model: str) -> dict[str, Any]:
    return {
        "stream_id": interval.stream_id,
        "model": model,
        "key": interval.key,
        "value": interval.value,
        "valid_from": interval.valid_from,
        "valid_to": interval.valid_to,
        "from_position": interval.from_position,
        "to_position": interval.to_position,
        "actor": interval.actor,
        "ended_by": interval.ended_by,
    }


class StageHistoryProjection:
    name = NAME
    tables = ("history_models", "stage_history", "alias_history")

    def __init__(self, store: EventSource) -> None:
        self.store = store

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        by_stream = by_model_stream(events)
        if not by_stream:
            return
        ids = {"ids": list(by_stream)}
        rows = await conn.execute(
            text(
                "SELECT stream_id, name, deleted, stream_version, causation_id, command_at"
                " FROM history_models"
                " WHERE stream_id = ANY(:ids)"
            ),
            ids,
        )
        applied = {row.stream_id: row for row in rows}
        streams: dict[str, _Stream] = {}
        fresh_by_stream: dict[str, list[Envelope]] = {}
        for stream_id, delivered in by_stream.items():
            known = applied.get(stream_id)
            fresh = await unapplied_events(
                self.store, delivered, known.stream_version if known else 0
            )
            if fresh:
                fresh_by_stream[stream_id] = fresh
                streams[stream_id] = (
                    _Stream(
                        known.name, known.deleted, known.name, known.causation_id, known.command_at
                    )
                    if known
                    else _Stream("", deleted=False)
                )
        await self._load_open_intervals(conn, streams, fresh_by_stream)
        models = []
        for stream_id, fresh in fresh_by_stream.items():
            stream = streams[stream_id]
            for envelope in fresh:
                stream.apply(envelope)
            models.append(
                {
                    "stream_id": stream_id,
                    "name": stream.name,
                    "deleted": stream.deleted,
                    "stream_version": fresh[-1].stream_version,
                    "causation_id": stream.causation_id,
                    "command_at": stream.command_at,
                }
            )
        await self._write(conn, streams)
        if models:
            await conn.execute(_UPSERT_MODELS, models)

    @staticmethod
    async def _load_open_intervals(
        conn: AsyncConnection, streams: dict[str, _Stream], fresh: dict[str, list[Envelope]]
    ) -> None:
        if not streams:
            return
        whole: list[str] = []
        named: dict[str, tuple[list[str], list[Any]]] = {"stages": ([], []), "aliases": ([], [])}
        for stream_id, events in fresh.items():
            versions, aliases, deleted = _named(events)
            if deleted:
                whole.append(stream_id)
                continue
            for attribute, keys in (("stages", versions), ("aliases", aliases)):
                named[attribute][0].extend([stream_id] * len(keys))
                named[attribute][1].extend(keys)
        for query, attribute in ((_OPEN_STAGES, "stages"), (_OPEN_ALIASES, "aliases")):
            ids, keys = named[attribute]
            params = {"ids": ids, "keys": keys, "whole": whole}
            for row in await conn.execute(query, params):
                interval = Interval(
                    row.stream_id,
                    row.key,
                    row.value,
                    row.valid_from,
                    row.from_position,
                    row.actor,
                    stored=True,
                )
                getattr(streams[row.stream_id], attribute)[row.key] = interval

    @staticmethod
    async def _write(conn: AsyncConnection, streams: dict[str, _Stream]) -> None:
        inserts: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        ends: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
        renames = []
        for stream_id, stream in streams.items():
            for interval in stream.opened:
                inserts[isinstance(interval.key, int)].append(_row(interval, stream.name))
            for interval in stream.ended:
                if interval.stored:
                    ends[isinstance(interval.key, int)].append(_row(interval, stream.name))
            if stream.stored_name is not None and stream.stored_name != stream.name:
                renames.append({"stream_id": stream_id, "model": stream.name})
        for statement, rows in (
            (_INSERT_STAGES, inserts[True]),
            (_INSERT_ALIASES, inserts[False]),
            (_END_STAGES, ends[True]),
            (_END_ALIASES, ends[False]),
            (_RENAME_STAGES, renames),
        ):
            if rows:
                await conn.execute(statement, rows)

    def forget(self) -> None:
        """Nothing is kept in memory between batches."""


# Queries -----------------------------------------------------------------------------------------

APPLIED = stream_applied("history_models")
"""Has the history applied version :version of stream :stream (or passed :position)?"""


async def stages_at(conn: AsyncConnection, stream_id: str, at: datetime) -> dict[str, list[str]]:
    """Each stage's versions of one model at `at`: {"None": [...], "Staging": [...], ...}."""
    rows = await conn.execute(
        text(
            "SELECT stage, version FROM stage_history WHERE stream_id = :stream_id"
            " AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at) ORDER BY version"
        ),
        {"stream_id": stream_id, "at": at},
    )
    stages: dict[str, list[str]] = {stage.value: [] for stage in Stage}
    for row in rows:
        stages.setdefault(row.stage, []).append(str(row.version))
    return stages


async def aliases_at(conn: AsyncConnection, stream_id: str, at: datetime) -> dict[str, str]:
    """Each alias of one model at `at` and the version it named: {"champion": "3"}."""
    rows = await conn.execute(
        text(
            "SELECT alias, version FROM alias_history WHERE stream_id = :stream_id"
            " AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at) ORDER BY alias"
        ),
        {"stream_id": stream_id, "at": at},
    )
    return {row.alias: str(row.version) for row in rows}


STAGE_HOLDERS = {
    # The stage as a literal (a Stage value, never the caller's text): each stage has its own
    # partial range index, which the planner uses only when it can see the stage. One row of
    # three arrays (one aggregation keeps them aligned): thousands of rows decoded as arrays
    # cost a third of what as many result rows cost.
    stage: text(
        "SELECT array_agg(model), array_agg(version), array_agg(lower(valid))"
        f" FROM stage_history WHERE stage = '{stage.value}' AND valid @> CAST(:at AS timestamptz)"
    )
    for stage in Stage
}


async def stage_holders_at(
    conn: AsyncConnection, stage: Stage, at: datetime
) -> list[dict[str, Any]]:
    """Every model's versions in `stage` at `at`, by model name (current names; in code point
    order, whatever the database's collation) and version, with the time each entered it."""
    models, versions, since = (await conn.execute(STAGE_HOLDERS[stage], {"at": at})).one()
    return [
        {"model": model, "version": str(version), "since": entered}
        for model, version, entered in sorted(
            zip(models or (), versions or (), since or (), strict=True)
        )
    ]


async def version_timeline(
    conn: AsyncConnection, stream_id: str, version: int
) -> list[dict[str, Any]] | None:
    """A version's stages and aliases over time, oldest first; None if it never existed."""
    rows = await conn.execute(
        text(
            "SELECT 'stage' AS kind, stage AS name, valid_from, valid_to, from_position,"
            " actor, ended_by FROM stage_history"
            " WHERE stream_id = :stream_id AND version = :version"
            " UNION ALL"
            " SELECT 'alias', alias, valid_from, valid_to, from_position, actor, ended_by"
            " FROM alias_history WHERE stream_id = :stream_id AND version = :version"
            " ORDER BY from_position, kind DESC"
        ),
        {"stream_id": stream_id, "version": version},
    )
    entries = [
        {
            "kind": row.kind,
            row.kind: row.name,
            "valid_from": row.valid_from,
            "valid_to": row.valid_to,
            "position": row.from_position,
            "actor": row.actor,
            "ended_by": row.ended_by,
        }
        for row in rows
    ]
    return entries or None


async def history_model(conn: AsyncConnection, stream_id: str) -> dict[str, Any] | None:
    """The model's current name and whether it is deleted, as this read model knows it."""
    row = (
        await conn.execute(
            text("SELECT name, deleted FROM history_models WHERE stream_id = :stream_id"),
            {"stream_id": stream_id},
        )
    ).first()
    return None if row is None else {"name": row.name, "deleted": row.deleted}
