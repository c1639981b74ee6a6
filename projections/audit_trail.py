"""The audit trail: one row per event of every stream — who did what to which model and version,
when, in words — and the refused attempts; filtered, paged by position, exported as JSONL or CSV.

Rows are keyed by the event's global position. Each stream's last applied version is recorded in
`audit_streams` in the same transaction, so a redelivered event is skipped; a model stream's name
is kept there too, so each row carries the name the model had when the event was recorded, and
its stream id (`model_id`), which filtering by model uses: a name finds every model that ever
had it (a deleted model's name, or a former one, may be taken by another model), each with all
of its events, under every name it had.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from registrar.contracts.codec import dumps, loads
from registrar.contracts.envelope import Envelope
from registrar.contracts.events import EVENT_TYPES
from registrar.projections.name_holders import NameHolders
from registrar.projections.paging import keyset_page
from registrar.projections.ports import EventSource
from registrar.projections.unapplied_events import unapplied_events

NAME = "audit_trail"

COLUMNS = (
    "position",
    "recorded_at",
    "actor",
    "action",
    "model",
    "model_id",
    "version",
    "summary",
    "reason",
    "correlation_id",
    "causation_id",
    "event_id",
    "stream_id",
    "stream_version",
)
"""An audit row's keys, in order: the API's JSON, the JSONL export and the CSV header."""


# Summaries: pure, from the event's type and payload. Payloads are read defensively (any stream
# kind passes by, and a newer writer may add types): an unknown type gets a generic summary.


def _scalars(payload: dict[str, Any]) -> str:
    parts = [
        f"{key}={value}"
        for key, value in sorted(payload.items())
        if isinstance(value, str | int | float | bool)
    ]
    return ", ".join(parts)


def _pairs(values: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in values.items()) if isinstance(values, dict) else ""


def _allowed_by(authorization: Any) -> str:
    """What allowed a governed move, in words: the request, policy version and scope, each gate
    with the value it saw, and who approved."""
    if not isinstance(authorization, dict):
        return ""
    scope = authorization.get("scope")
    under = f"policy v{authorization.get('policy_version')}" + (f" scope {scope}" if scope else "")
    under += " rollback rule" if authorization.get("rollback_rule") else ""
    gates = "; ".join(
        f"{g.get('gate')} saw {g.get('seen')!r}" for g in authorization.get("gates") or []
    )
    approvers = ", ".join(a.get("by", "?") for a in authorization.get("approvals") or [])
    return (
        f", under {under} (request {authorization.get('request_id')})"
        + (f", gates: {gates}" if gates else "")
        + (f", approved by {approvers}" if approvers else "")
    )


def _rollback_of(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The rollback a move or request was (its reason, from and to versions), if it was one."""
    authorization = payload.get("authorization")
    found = authorization.get("rollback") if isinstance(authorization, dict) else None
    found = payload.get("rollback") if found is None else found
    return found if isinstance(found, dict) else None


def _rolled_back(kind: str, p: dict[str, Any], rollback: dict[str, Any]) -> str:
    """A rollback's move (or request) in words: what went back to which version, from which."""
    to = rollback.get("to_version")
    if p.get("alias"):
        target = f"alias {p['alias']}"
    elif kind == "StageChanged" and p.get("version") != to:  # the holder left, the earlier stayed
        target = str(p.get("from_stage"))
    else:
        target = str(p.get("to_stage") or p.get("stage"))
    was, reason = rollback.get("from_version"), rollback.get("reason")
    said = f"{target} to version {to} (was {was}): {reason}"
    if kind == "TransitionRequested":
        return f"requested rolling back {said} (request {p.get('request_id')})"
    return f"rolled back {said}" + _allowed_by(p.get("authorization"))


def _model_summary(kind: str, p: dict[str, Any]) -> str | None:
    version = p.get("version")
    rollback = _rollback_of(p)
    match kind:
        case "StageChanged" | "AliasSet" | "TransitionRequested" if rollback is not None:
            return _rolled_back(kind, p, rollback)
        case "ModelRegistered":
            return f"registered model {p.get('name')}"
        case "ModelDescriptionUpdated":
            return "updated the model's description"
        case "ModelTagSet":
            return f"set tag {p.get('key')}={p.get('value')}"
        case "ModelTagDeleted":
            return f"deleted tag {p.get('key')}"
        case "ModelRenamed":
            return f"renamed {p.get('old_name')} → {p.get('new_name')}"
        case "ModelDeleted":
            return f"deleted model {p.get('name')}"
        case "VersionRegistered":
            run = f" (run {p['run_id']})" if p.get("run_id") else ""
            return f"registered version {version} from {p.get('source')}{run}"
        case "VersionDescriptionUpdated":
            return f"updated version {version}'s description"
        case "VersionTagSet":
            return f"set tag {p.get('key')}={p.get('value')} on version {version}"
        case "VersionTagDeleted":
            return f"deleted tag {p.get('key')} from version {version}"
        case "MetricsRecorded":
            return f"recorded metrics {_pairs(p.get('metrics'))} on version {version}"
        case "StageChanged" if p.get("reason") == "archived_by":
            by = p.get("archived_by_version")
            return f"archived {version} (was {p.get('from_stage')}), replaced by {by}"
        case "StageChanged":
            moved = f"moved {version} from {p.get('from_stage')} to {p.get('to_stage')}"
            return moved + _allowed_by(p.get("authorization"))
        case "AliasSet":
            was = p.get("previous_version")
            moved = f"set alias {p.get('alias')} → {version}" + (f" (was {was})" if was else "")
            return moved + _allowed_by(p.get("authorization"))
        case "AliasDeleted":
            return f"removed alias {p.get('alias')} (was {version})"
        case "VersionDeleted":
            return f"deleted version {version}"
        case "ModelCardUpdated":
            return f"updated the model card of version {version}: {_pairs(p.get('card'))}"
        case "EvaluationRecorded":
            figures = p.get("fairness") or p.get("metrics") or {}
            shown = {
                k: v if isinstance(v, bool) else format(v, ".4g")
                for k, v in figures.items()
                if isinstance(v, int | float)
            }
            return (
                f"recorded a {p.get('kind')} evaluation of version {version}"
                f" ({p.get('evaluation_id')}): {_pairs(shown)}"
            )
        case "ArtifactsSealed":
            return (
                f"sealed the files of version {version}: {p.get('files')} files,"
                f" {p.get('bytes')} bytes, manifest {p.get('manifest_digest')}"
            )
        case "DeploymentReported":
            was = p.get("replaced_version")
            replacing = f", replacing {was}" if was is not None else ""
            return (
                f"{p.get('deployer')} reported {version} {p.get('status')} in"
                f" {p.get('environment')}{replacing} (report {p.get('report_id')})"
            )
        case "TransitionRequested" if p.get("alias"):
            return f"requested alias {p['alias']} → {version} (request {p.get('request_id')})"
        case "TransitionRequested":
            archive = ", archiving the current holders" if p.get("archive_existing") else ""
            to = f"moving {version} to {p.get('stage')}{archive}"
            return f"requested {to} (request {p.get('request_id')})"
        case "TransitionApproved" | "TransitionRejected" | "TransitionCancelled":
            verb = kind.removeprefix("Transition").lower()
            comment = f": {p['comment']}" if p.get("comment") else ""
            return f"{verb} request {p.get('request_id')}{comment}"
        case "TransitionRequestStale":
            return f"request {p.get('request_id')} needs approving again: {p.get('reason')}"
    return None


def _other_summary(kind: str, p: dict[str, Any]) -> str | None:
    match kind:
        case "RunRecorded":
            model = f" for model {p['model_name']}" if p.get("model_name") else ""
            return f"recorded run {p.get('run_id')}{model}"
        case "AccessRefused":
            return (
                f"refused {p.get('action')} ({p.get('method')} {p.get('path')}): {p.get('reason')}"
            )
        case "AccessRefusalsDropped":
            return f"{p.get('count')} refused attempts came too fast to record one by one"
        case "TokenIssued":
            return f"issued a {p.get('role')} token to {p.get('user')}"
        case "TokenRevoked":
            return f"revoked a token of {p.get('user')}"
        case "OwnershipGranted":
            return f"made {p.get('user')} an owner of {p.get('model_name')}"
        case "OwnershipRevoked":
            return f"removed {p.get('user')} as an owner of {p.get('model_name')}"
        # A webhook's URL may carry a token: the audit row names the webhook, never its URL.
        case "WebhookCreated":
            events = ", ".join(p.get("events") or [])
            return f"created webhook {p.get('name')} ({p.get('webhook_id')}) for {events}"
        case "WebhookUpdated":
            changed = sorted(
                k for k, v in p.items() if v is not None and k not in ("webhook_id", "has_secret")
            )
            return f"updated webhook {p.get('webhook_id')}: {', '.join(changed) or 'nothing'}"
        case "WebhookDisabled":
            return f"disabled webhook {p.get('webhook_id')}: {p.get('reason')}"
        case "WebhookDeleted":
            return f"deleted webhook {p.get('webhook_id')}"
    return None


def summary_of(kind: str, payload: dict[str, Any]) -> str:
    """A one-line account of an event, e.g. "set alias champion → 3 (was 2)"."""
    try:
        known = _model_summary(kind, payload) or _other_summary(kind, payload)
    except Exception:  # a payload of an unexpected shape: say what we can rather than fail
        known = None
    if known is not None:
        return known
    details = _scalars(payload)
    return f"{kind}: {details}" if details else kind


def _archived_note(summary: str, archived: Any) -> str:
    """The requested move's summary, also naming a version its archive-existing moved aside."""
    if ", archived " in summary:
        return f"{summary}, {archived}"
    return f"{summary}, archived {archived}"


def _rollback_reason(payload: dict[str, Any]) -> Any:
    rollback = _rollback_of(payload)
    return rollback.get("reason") if rollback is not None else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def audit_row(envelope: Envelope, model: str | None, model_id: str | None) -> dict[str, Any]:
    """The audit row of one event; `model` / `model_id` name the model it concerns, if any."""
    payload = envelope.payload
    refused = envelope.type == "AccessRefused"
    return {
        "position": envelope.position,
        "recorded_at": envelope.recorded_at,
        "actor": (_str_or_none(payload.get("actor")) if refused else None) or envelope.actor,
        "action": envelope.type,
        "model": model,
        "model_id": model_id,
        "version": _int_or_none(payload.get("version")),
        "summary": summary_of(envelope.type, payload),
        "reason": _str_or_none(payload.get("reason") if refused else _rollback_reason(payload)),
        "correlation_id": envelope.correlation_id,
        "causation_id": envelope.causation_id,
        "event_id": envelope.event_id,
        "stream_id": envelope.stream_id,
        "stream_version": envelope.stream_version,
    }


def _named_model(envelope: Envelope) -> str | None:
    """The model a non-model event names (a run's model, a refused attempt's), if any."""
    payload = envelope.payload
    for key in ("model_name", "model"):
        name = _str_or_none(payload.get(key))
        if name is not None:
            return name
    return None


# The projection ----------------------------------------------------------------------------------

_INSERT_ROWS = text(
    f"INSERT INTO audit_trail ({', '.join(COLUMNS)})"
    f" VALUES ({', '.join(':' + c for c in COLUMNS)}) ON CONFLICT DO NOTHING"
)
_UPSERT_STREAMS = text(
    "INSERT INTO audit_streams (stream_id, stream_version, model)"
    " VALUES (:stream_id, :stream_version, :model) ON CONFLICT (stream_id) DO UPDATE"
    " SET stream_version = excluded.stream_version, model = excluded.model"
)
# A requested move whose archive-existing events came in a later batch: name them on its row.
_NOTE_ARCHIVED = text(
    "UPDATE audit_trail SET summary = :summary"
    " WHERE stream_id = :stream_id AND stream_version = :stream_version"
)
_REQUESTED_MOVE = text(
    "SELECT stream_version, summary FROM audit_trail"
    " WHERE stream_id = :stream_id AND causation_id = :causation_id AND action = 'StageChanged'"
    " AND version = :version AND stream_version < :before"
    " ORDER BY stream_version DESC LIMIT 1"
)


class AuditTrailProjection:
    name = NAME
    tables = ("audit_trail", "audit_streams")

    def __init__(self, store: EventSource) -> None:
        self.store = store
        self._holders = NameHolders(store)
        """The model a run or a refused attempt names, as of the event."""

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        by_stream: dict[str, list[Envelope]] = {}
        for envelope in events:
            by_stream.setdefault(envelope.stream_id, []).append(envelope)
        rows = await conn.execute(
            text(
                "SELECT stream_id, stream_version, model FROM audit_streams"
                " WHERE stream_id = ANY(:ids)"
            ),
            {"ids": list(by_stream)},
        )
        applied = {row.stream_id: (row.stream_version, row.model) for row in rows}
        new_rows: list[dict[str, Any]] = []
        streams: list[dict[str, Any]] = []
        for stream_id, delivered in by_stream.items():
            done, model = applied.get(stream_id, (0, None))
            fresh = await unapplied_events(self.store, delivered, done)
            if not fresh:
                continue
            if fresh[0].type in EVENT_TYPES or model is not None:
                model = await self._model_rows(conn, fresh, model, new_rows)
            else:
                for envelope in fresh:
                    name = _named_model(envelope)
                    held_by = None
                    if name is not None:
                        held_by = await self._holders.at(name, envelope.recorded_at)
                    new_rows.append(audit_row(envelope, name, held_by))
            streams.append(
                {"stream_id": stream_id, "stream_version": fresh[-1].stream_version, "model": model}
            )
        if new_rows:
            await conn.execute(_INSERT_ROWS, new_rows)
        if streams:
            await conn.execute(_UPSERT_STREAMS, streams)

    async def _model_rows(
        self,
        conn: AsyncConnection,
        fresh: list[Envelope],
        model: str | None,
        new_rows: list[dict[str, Any]],
    ) -> str | None:
        """Rows of a model stream's events; returns the model's name after them."""
        for envelope in fresh:
            payload = envelope.payload
            if envelope.type == "ModelRegistered":
                model = _str_or_none(payload.get("name")) or model
            elif envelope.type == "ModelRenamed":
                model = _str_or_none(payload.get("new_name")) or model
            self._holders.seen(envelope)
            row = audit_row(envelope, model, envelope.stream_id)
            new_rows.append(row)
            if envelope.type == "StageChanged" and payload.get("reason") == "archived_by":
                await self._note_archived(conn, envelope, new_rows)
        return model

    async def _note_archived(
        self, conn: AsyncConnection, archived: Envelope, new_rows: list[dict[str, Any]]
    ) -> None:
        """Name the version archive-existing moved aside on the requested move's row."""
        by = archived.payload.get("archived_by_version")
        version = archived.payload.get("version")
        for row in reversed(new_rows):
            if (
                row["stream_id"] == archived.stream_id
                and row["causation_id"] == archived.causation_id
                and row["action"] == "StageChanged"
                and row["version"] == by
            ):
                row["summary"] = _archived_note(row["summary"], version)
                return
        found = (
            await conn.execute(
                _REQUESTED_MOVE,
                {
                    "stream_id": archived.stream_id,
                    "causation_id": archived.causation_id,
                    "version": by,
                    "before": archived.stream_version,
                },
            )
        ).first()
        if found is not None:
            await conn.execute(
                _NOTE_ARCHIVED,
                {
                    "summary": _archived_note(found.summary, version),
                    "stream_id": archived.stream_id,
                    "stream_version": found.stream_version,
                },
            )

    def forget(self) -> None:
        """Nothing in memory can be ahead of the tables: the name cache holds facts (which model
        held a name), forgotten whenever a name may have changed hands."""


# Queries -----------------------------------------------------------------------------------------

APPLIED = text(
    "SELECT coalesce((SELECT stream_version FROM audit_streams WHERE stream_id = :stream), 0)"
    " >= :version"
)
"""Has the audit trail applied version :version of stream :stream (every stream gets a row)?"""


@dataclass(frozen=True)
class AuditFilter:
    """Which rows to return. `model_ids`: the streams of every model that ever held the name
    `model`; `since` is inclusive, `until` exclusive."""

    actor: str | None = None
    model: str | None = None
    model_ids: tuple[str, ...] = ()
    version: int | None = None
    actions: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise ValueError(
                f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})"
            )

    def conditions(self) -> tuple[list[str], dict[str, Any]]:
        where: list[str] = []
        params: dict[str, Any] = {}
        if self.actor is not None:
            where.append("actor = :actor")
            params["actor"] = self.actor
        if self.model_ids:
            # The models' own events by their stream ids; runs and refusals that named one before
            # the projection could resolve the name, by the name asked for.
            where.append("(model_id = ANY(:model_ids) OR (model_id IS NULL AND model = :model))")
            params.update(model_ids=list(self.model_ids), model=self.model)
        elif self.model is not None:
            where.append("model_id IS NULL AND model = :model")
            params["model"] = self.model
        if self.version is not None:
            where.append("version = :version")
            params["version"] = self.version
        if self.actions:
            where.append("action = ANY(:actions)")
            params["actions"] = list(self.actions)
        if self.since is not None:
            where.append("recorded_at >= :since")
            params["since"] = self.since
        if self.until is not None:
            where.append("recorded_at < :until")
            params["until"] = self.until
        return where, params


async def resolved(audit_filter: AuditFilter, store: EventSource) -> AuditFilter:
    """`audit_filter` with the stream ids of every model that ever held the name it asks for."""
    if audit_filter.model is None:
        return audit_filter
    return replace(audit_filter, model_ids=tuple(await store.holders_of_name(audit_filter.model)))


_SELECT = f"SELECT {', '.join(COLUMNS)} FROM audit_trail"


async def audit_page(
    conn: AsyncConnection,
    audit_filter: AuditFilter,
    page_size: int = 100,
    page_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of matching rows in position order; the token resumes after the page's last row,
    so paging never repeats or skips a row while new events arrive (they come after it)."""
    where, params = audit_filter.conditions()
    return await keyset_page(
        conn, _SELECT, where, params, {"position": "position"}, page_size, page_token
    )


async def audit_rows(
    engine: AsyncEngine, audit_filter: AuditFilter, chunk: int = 1000
) -> AsyncIterator[dict[str, Any]]:
    """Every matching row in position order, `chunk` at a time: memory stays flat however many
    rows match, and no transaction is held open between chunks."""
    token: str | None = None
    while True:
        async with engine.connect() as conn:
            rows, token = await audit_page(conn, audit_filter, chunk, token)
        for row in rows:
            yield row
        if token is None:
            return


# Export ------------------------------------------------------------------------------------------

EXPORT_FORMATS = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8"}


def jsonl_line(row: dict[str, Any]) -> bytes:
    return dumps(row) + b"\n"


def csv_line(values: Iterable[Any]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue().encode()


def csv_header() -> bytes:
    return csv_line(COLUMNS)


def csv_row(row: dict[str, Any]) -> bytes:
    """A row as CSV cells: each value as it reads in the JSON (times RFC 3339), none as empty."""
    plain = loads(dumps(row))
    return csv_line("" if plain[c] is None else plain[c] for c in COLUMNS)


async def exported(
    engine: AsyncEngine, audit_filter: AuditFilter, export_format: str
) -> AsyncIterator[bytes]:
    """The matching rows as JSONL or CSV (with a header), streamed chunk by chunk."""
    if export_format not in EXPORT_FORMATS:
        raise ValueError(f"format {export_format!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if export_format == "csv":
        yield csv_header()
    encode = csv_row if export_format == "csv" else jsonl_line
    async for row in audit_rows(engine, audit_filter):
        yield exported_row(encode, row)


def exported_row(encode: Callable[[dict[str, Any]], bytes], row: dict[str, Any]) -> bytes:
    """`row` encoded; a row that cannot be as it is (text no encoding can carry, such as an
    unpaired surrogate) with such text replaced by U+FFFD, so that an export never stops half
    way through, its 200 long sent."""
    try:
        return encode(row)
    except (TypeError, ValueError):
        return encode({key: _encodable(value) for key, value in row.items()})


def _encodable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    if isinstance(value, int | float | bool | datetime) or value is None:
        return value
    return _encodable(str(value))
