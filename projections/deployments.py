"""Deployments: each version's status in each environment over time, as validity intervals
[valid_from, valid_to) in recorded time (valid_to NULL: still so), from the DeploymentReported
events of the models' streams. Answers what runs where at any instant, a model's or a version's
deployments, and drift: each environment whose serving version is not the one its stage or alias
names (the stage and alias side is read from the stage_history read model's intervals).

Intervals are keyed by the model's stream id, so a rename keeps the history; `deployment_models`
records each model stream's current name and last applied version (a redelivered event is
skipped). A deleted model's deployments end at its deletion, as its stages do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.deployments import Environment
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import (
    DeploymentReported,
    ModelDeleted,
    ModelRegistered,
    ModelRenamed,
    event_from_payload,
)
from registrar.domain.deployments import Span, checks_drift, drift_at
from registrar.projections.ports import EventSource, stream_applied
from registrar.projections.unapplied_events import by_model_stream, unapplied_events

NAME = "deployments"

Key = tuple[str, int]
"""(environment, version): one version's status in one environment."""


@dataclass
class _Interval:
    stream_id: str
    environment: str
    version: int
    status: str
    status_since: datetime
    endpoint: str
    deployer: str
    message: str
    report_id: str
    replaced_by: int | None
    actor: str
    valid_from: datetime
    from_position: int
    stored: bool = False  # already a row (else inserted at the end of the batch)
    valid_to: datetime | None = None
    to_position: int | None = None
    ended_by: str | None = None

    @property
    def key(self) -> Key:
        return self.environment, self.version

    def row(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _COLUMNS}


_COLUMNS = (
    "stream_id",
    "environment",
    "version",
    "status",
    "status_since",
    "endpoint",
    "deployer",
    "message",
    "report_id",
    "replaced_by",
    "actor",
    "valid_from",
    "valid_to",
    "from_position",
    "to_position",
    "ended_by",
)


@dataclass
class _Stream:
    """A model stream's open intervals while a batch is applied, and what the batch changed."""

    name: str
    deleted: bool
    open: dict[Key, _Interval] = field(default_factory=dict)
    opened: list[_Interval] = field(default_factory=list)
    ended: list[_Interval] = field(default_factory=list)

    def close(self, key: Key, envelope: Envelope) -> _Interval | None:
        interval = self.open.pop(key, None)
        if interval is not None:
            # A clock that stepped back must not make an interval end before it starts.
            interval.valid_to = max(envelope.recorded_at, interval.valid_from)
            interval.to_position = envelope.position
            interval.ended_by = envelope.type
            self.ended.append(interval)
        return interval

    def start(self, envelope: Envelope, report: DeploymentReported, **status: Any) -> None:
        at = envelope.recorded_at
        interval = _Interval(
            stream_id=envelope.stream_id,
            environment=report.environment,
            actor=envelope.actor,
            valid_from=at,
            from_position=envelope.position or 0,
            deployer=report.deployer,
            report_id=report.report_id,
            **status,
        )
        self.open[interval.key] = interval
        self.opened.append(interval)

    def apply(self, envelope: Envelope) -> None:
        match event_from_payload(envelope.type, envelope.payload):
            case ModelRegistered(name=name) | ModelRenamed(new_name=name):
                self.name = name
            case ModelDeleted():
                self.deleted = True
                for key in list(self.open):
                    self.close(key, envelope)
            case DeploymentReported() as report:
                at = envelope.recorded_at
                before = self.close((report.environment, report.version), envelope)
                kept = before is not None and before.status == report.status
                self.start(
                    envelope,
                    report,
                    version=report.version,
                    status=report.status,
                    status_since=before.status_since if before is not None and kept else at,
                    endpoint=report.endpoint,
                    message=report.message,
                    replaced_by=None,
                )
                if report.replaced_version is not None:
                    was = self.close((report.environment, report.replaced_version), envelope)
                    self.start(
                        envelope,
                        report,
                        version=report.replaced_version,
                        status="retired",
                        status_since=at,
                        endpoint=was.endpoint if was is not None else "",
                        message="",
                        replaced_by=report.version,
                    )


def _named(events: Sequence[Envelope]) -> tuple[set[Key], bool]:
    """The (environment, version) pairs `events` report on, and whether they delete the model."""
    keys: set[Key] = set()
    for envelope in events:
        if envelope.type == "ModelDeleted":
            return keys, True
        if envelope.type == "DeploymentReported":
            where = envelope.payload["environment"]
            keys.add((where, envelope.payload["version"]))
            if envelope.payload.get("replaced_version") is not None:
                keys.add((where, envelope.payload["replaced_version"]))
    return keys, False


_SELECT = ", ".join(_COLUMNS)
_OPEN = text(
    f"SELECT {', '.join('h.' + c for c in _COLUMNS)}"
    " FROM unnest(CAST(:ids AS text[]), CAST(:environments AS text[]),"
    " CAST(:versions AS integer[])) AS w(stream_id, environment, version)"
    " JOIN deployment_history h ON h.stream_id = w.stream_id"
    " AND h.environment = w.environment AND h.version = w.version"
    " WHERE h.to_position IS NULL"
    f" UNION ALL SELECT {_SELECT} FROM deployment_history"
    " WHERE stream_id = ANY(:whole) AND to_position IS NULL"
)
_INSERT = text(
    f"INSERT INTO deployment_history ({_SELECT})"
    f" VALUES ({', '.join(':' + c for c in _COLUMNS)}) ON CONFLICT DO NOTHING"
)
_END = text(
    "UPDATE deployment_history SET valid_to = :valid_to, to_position = :to_position,"
    " ended_by = :ended_by WHERE stream_id = :stream_id AND environment = :environment"
    " AND version = :version AND from_position = :from_position"
)
_UPSERT_MODELS = text(
    "INSERT INTO deployment_models (stream_id, name, deleted, stream_version)"
    " VALUES (:stream_id, :name, :deleted, :stream_version) ON CONFLICT (stream_id) DO UPDATE"
    " SET name = excluded.name, deleted = excluded.deleted,"
    " stream_version = excluded.stream_version"
)


class DeploymentsProjection:
    name = NAME
    tables = ("deployment_models", "deployment_history")

    def __init__(self, store: EventSource) -> None:
        self.store = store

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        by_stream = by_model_stream(events)
        if not by_stream:
            return
        rows = await conn.execute(
            text(
                "SELECT stream_id, name, deleted, stream_version FROM deployment_models"
                " WHERE stream_id = ANY(:ids)"
            ),
            {"ids": list(by_stream)},
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
                    _Stream(known.name, known.deleted) if known else _Stream("", False)
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
                }
            )
        inserts = [i.row() for s in streams.values() for i in s.opened]
        ends = [i.row() for s in streams.values() for i in s.ended if i.stored]
        for statement, params in ((_INSERT, inserts), (_END, ends), (_UPSERT_MODELS, models)):
            if params:
                await conn.execute(statement, params)

    @staticmethod
    async def _load_open_intervals(
        conn: AsyncConnection, streams: dict[str, _Stream], fresh: dict[str, list[Envelope]]
    ) -> None:
        ids: list[str] = []
        environments: list[str] = []
        versions: list[int] = []
        whole: list[str] = []
        for stream_id, events in fresh.items():
            keys, deleted = _named(events)
            if deleted:
                whole.append(stream_id)
                continue
            for where, version in keys:
                ids.append(stream_id)
                environments.append(where)
                versions.append(version)
        if not ids and not whole:
            return
        params = {"ids": ids, "environments": environments, "versions": versions, "whole": whole}
        for row in await conn.execute(_OPEN, params):
            interval = _Interval(**{c: getattr(row, c) for c in _COLUMNS}, stored=True)
            streams[row.stream_id].open[interval.key] = interval

    def forget(self) -> None:
        """Nothing is kept in memory between batches."""


# Queries -----------------------------------------------------------------------------------------

APPLIED = stream_applied("deployment_models")
"""Has the read model applied version :version of stream :stream (or passed :position)?"""

_AT = text(
    "SELECT m.name AS model, h.environment, h.version, h.status, h.status_since AS since,"
    " h.valid_from AS reported_at, h.deployer, h.endpoint, h.message, h.report_id,"
    " h.replaced_by, h.actor"
    " FROM deployment_history h JOIN deployment_models m ON m.stream_id = h.stream_id"
    " WHERE h.valid_from <= :at AND (h.valid_to IS NULL OR h.valid_to > :at)"
    " AND (CAST(:environment AS text) IS NULL OR h.environment = :environment)"
    " AND (CAST(:stream AS text) IS NULL OR h.stream_id = :stream)"
    " AND (CAST(:version AS integer) IS NULL OR h.version = :version)"
    " AND (:retired OR h.status <> 'retired')"
)


async def deployments_at(
    conn: AsyncConnection,
    at: datetime,
    *,
    environment: str | None = None,
    stream_id: str | None = None,
    version: int | None = None,
    retired: bool = False,
) -> list[dict[str, Any]]:
    """Each version's status in each environment at `at` (retired ones only if `retired`), by
    environment, model (current name, code point order) and version."""
    params = {
        "at": at,
        "environment": environment,
        "stream": stream_id,
        "version": version,
        "retired": retired,
    }
    rows = [dict(row._mapping) for row in await conn.execute(_AT, params)]
    return sorted(rows, key=lambda r: (r["environment"], r["model"], r["version"]))


_SERVING = text(
    "SELECT stream_id, version, valid_from, valid_to FROM deployment_history"
    " WHERE environment = :environment AND status = 'serving' AND valid_from <= :at"
    " AND (CAST(:stream AS text) IS NULL OR stream_id = :stream)"
)
_STAGE_HOLDERS_THEN = text(
    "SELECT DISTINCT stream_id FROM stage_history WHERE stage = :stage"
    " AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)"
    " AND (CAST(:stream AS text) IS NULL OR stream_id = :stream)"
)
_ALIAS_HOLDERS_THEN = text(
    "SELECT DISTINCT stream_id FROM alias_history WHERE alias = :alias"
    " AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)"
    " AND (CAST(:stream AS text) IS NULL OR stream_id = :stream)"
)
_STAGE_SPANS = text(
    "SELECT stream_id, version, valid_from, valid_to FROM stage_history"
    " WHERE stage = :stage AND stream_id = ANY(:ids) AND valid_from <= :at"
)
_ALIAS_SPANS = text(
    "SELECT stream_id, version, valid_from, valid_to FROM alias_history"
    " WHERE alias = :alias AND stream_id = ANY(:ids) AND valid_from <= :at"
)
_NAMES = text(
    # The current name as either read model knows it (a model may have reached one first),
    # this one's last: it wins.
    "SELECT stream_id, name FROM history_models WHERE stream_id = ANY(:ids)"
    " UNION ALL SELECT stream_id, name FROM deployment_models WHERE stream_id = ANY(:ids)"
)


def _spans(rows: Any) -> dict[str, list[Span]]:
    spans: dict[str, list[Span]] = {}
    for row in rows:
        spans.setdefault(row.stream_id, []).append(Span(row.version, row.valid_from, row.valid_to))
    return spans


async def drift(
    conn: AsyncConnection,
    environments: dict[str, Environment],
    at: datetime,
    *,
    environment: str | None = None,
    stream_id: str | None = None,
) -> list[dict[str, Any]]:
    """Each (environment, model) whose serving version at `at` is not the version the stage or
    alias the environment follows names then, with since when, by environment and model: of
    `environments` (the governance document's at `at`), the one named, or all; of one model
    (`stream_id`), or all that serve there or hold its target."""
    found = []
    for where, declared in sorted(environments.items()):
        follows = declared.follows
        if (environment is not None and where != environment) or follows is None:
            continue
        base = {"at": at, "stream": stream_id}
        serving = _spans(await conn.execute(_SERVING, {**base, "environment": where}))
        if follows.stage is not None:
            holders = _STAGE_HOLDERS_THEN, _STAGE_SPANS, {"stage": follows.stage.value}
        else:
            holders = _ALIAS_HOLDERS_THEN, _ALIAS_SPANS, {"alias": follows.alias}
        held_then, spans_of, target_param = holders
        candidates = set((await conn.execute(held_then, {**base, **target_param})).scalars())
        candidates |= {s for s, spans in serving.items() if any(x.covers(at) for x in spans)}
        if not candidates:
            continue
        ids = sorted(candidates)
        target = _spans(await conn.execute(spans_of, {**target_param, "ids": ids, "at": at}))
        names = {r.stream_id: r.name for r in await conn.execute(_NAMES, {"ids": ids})}
        shown = {"stage": follows.stage.value} if follows.stage else {"alias": follows.alias}
        for candidate in ids:
            model = names.get(candidate, "")
            if not checks_drift(declared, model):
                continue
            differs = drift_at(serving.get(candidate, []), target.get(candidate, []), at)
            if differs is None:
                continue
            found.append(
                {
                    "environment": where,
                    "model": model,
                    "follows": shown,
                    "expected_version": differs.expected,
                    "serving_version": differs.serving,
                    "reason": differs.reason,
                    "since": differs.since,
                    "lag_seconds": (at - differs.since).total_seconds(),
                }
            )
    return sorted(found, key=lambda d: (d["environment"], d["model"]))
