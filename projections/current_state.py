"""Current state: every model and version as it is now, for the list and search endpoints.

`apply` folds each touched stream with the domain's own `evolve`, so the projection can never
disagree with the rules, and writes the rows that changed. It records each model's last applied
stream version in the same transaction, so a redelivered event is skipped.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.codec import dumps, loads
from contracts.envelope import Envelope
from contracts.events import EVENT_TYPES
from services.domain.state import ModelState, VersionState, fold
from services.event_store import PostgresEventStore
from services.stream_states import StreamStates

NAME = "current_state"


def model_view(state: ModelState) -> dict[str, Any]:
    """The JSON shape of a model, the same whether read from a stream or from this projection."""
    return {
        "id": state.model_id,
        "name": state.name,
        "description": state.description,
        "tags": state.tags,
        "aliases": dict(sorted(state.aliases.items())),
        "latest_version": state.last_version,
        "created_at": state.created_at,
        "updated_at": state.updated_at,
        "deleted": state.deleted,
    }


def version_view(state: ModelState, version: VersionState) -> dict[str, Any]:
    """The JSON shape of a model version, from a stream or from this projection."""
    return {
        "model": state.name,
        "version": version.version,
        "source": version.source,
        "run_id": version.run_id,
        "digest": version.digest,
        "size": version.size,
        "stage": version.stage.value,
        "aliases": state.aliases_of(version.version),
        "tags": version.tags,
        "metrics": version.metrics,
        "params": version.params,
        "datasets": [d.model_dump() for d in version.datasets],
        "parents": [p.model_dump() for p in version.parents],
        "description": version.description,
        "created_at": version.created_at,
        "updated_at": version.updated_at,
        "deleted": version.deleted or state.deleted,
    }


_UPSERT_MODEL = text(
    """
    INSERT INTO cs_models (stream_id, name, description, tags, aliases, latest_version,
                           created_at, updated_at, deleted, stream_version)
    VALUES (:stream_id, :name, :description, CAST(:tags AS jsonb), CAST(:aliases AS jsonb),
            :latest_version, :created_at, :updated_at, :deleted, :stream_version)
    ON CONFLICT (stream_id) DO UPDATE SET
        name = excluded.name, description = excluded.description, tags = excluded.tags,
        aliases = excluded.aliases, latest_version = excluded.latest_version,
        updated_at = excluded.updated_at, deleted = excluded.deleted,
        stream_version = excluded.stream_version
    """
)
_UPSERT_VERSION = text(
    """
    INSERT INTO cs_versions (stream_id, version, model_name, source, run_id, digest, size, stage,
                             aliases, tags, metrics, params, datasets, parents, description,
                             created_at, updated_at, deleted)
    VALUES (:stream_id, :version, :model, :source, :run_id, :digest, :size, :stage,
            :aliases, CAST(:tags AS jsonb), CAST(:metrics AS jsonb), CAST(:params AS jsonb),
            CAST(:datasets AS jsonb), CAST(:parents AS jsonb), :description,
            :created_at, :updated_at, :deleted)
    ON CONFLICT (stream_id, version) DO UPDATE SET
        model_name = excluded.model_name, stage = excluded.stage, aliases = excluded.aliases,
        tags = excluded.tags, metrics = excluded.metrics, description = excluded.description,
        updated_at = excluded.updated_at, deleted = excluded.deleted
    """
)
_JSON_COLUMNS = ("tags", "metrics", "params", "datasets", "parents")


def _changed_versions(before: ModelState | None, after: ModelState) -> list[int]:
    if before is None or before.name != after.name or before.deleted != after.deleted:
        return sorted(after.versions)
    changed = {n for n, v in after.versions.items() if before.versions.get(n) is not v}
    for alias in before.aliases.keys() | after.aliases.keys():
        old, new = before.aliases.get(alias), after.aliases.get(alias)
        if old != new:
            changed.update(n for n in (old, new) if n is not None)
    return sorted(changed)


class CurrentStateProjection:
    name = NAME
    tables = ("cs_models", "cs_versions")

    def __init__(self, store: PostgresEventStore, cache_size: int = 10_000) -> None:
        self.store = store
        self.states = StreamStates(store, cache_size)
        """Each model's state as of its last applied version, to fold its next events onto."""

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        """Apply `events` (any order across streams, in order within each) in `conn`'s transaction.

        Events at or below a model's recorded stream version are skipped: applying twice is a no-op.
        """
        by_stream: dict[str, list[Envelope]] = {}
        for envelope in events:
            if envelope.type in EVENT_TYPES:  # model streams only: runs are another stream kind
                by_stream.setdefault(envelope.stream_id, []).append(envelope)
        rows = await conn.execute(
            text("SELECT stream_id, stream_version FROM cs_models WHERE stream_id = ANY(:ids)"),
            {"ids": list(by_stream)},
        )
        applied_versions = {row.stream_id: row.stream_version for row in rows}
        model_rows: list[dict[str, Any]] = []
        version_rows: list[dict[str, Any]] = []
        for stream_id, stream_events in by_stream.items():
            done = applied_versions.get(stream_id, 0)
            fresh = [e for e in stream_events if e.stream_version > done]
            if not fresh:
                continue
            before = await self.states.state_at(stream_id, done)
            if fresh[0].stream_version != done + 1 or _has_gap(fresh):
                # Delivered out of order: take the missing events from the store, the truth.
                fresh = await self.store.read_stream(stream_id, done)
                fresh = [e for e in fresh if e.stream_version <= stream_events[-1].stream_version]
            after = fold(before, fresh)
            if after is None:
                continue
            new_version = fresh[-1].stream_version
            model_rows.append(self._model_row(stream_id, after, new_version))
            version_rows.extend(
                self._version_row(stream_id, after, after.versions[n])
                for n in _changed_versions(before, after)
            )
            self.states.remember(stream_id, new_version, after)
        if model_rows:
            await conn.execute(_UPSERT_MODEL, model_rows)
        if version_rows:
            await conn.execute(_UPSERT_VERSION, version_rows)

    def forget(self) -> None:
        """Drop the in-memory states (after a rolled back transaction they may be ahead)."""
        self.states.forget()

    @staticmethod
    def _model_row(stream_id: str, state: ModelState, stream_version: int) -> dict[str, Any]:
        view = model_view(state)
        return {
            **{k: view[k] for k in ("name", "description", "latest_version", "created_at")},
            **{k: view[k] for k in ("updated_at", "deleted")},
            "stream_id": stream_id,
            "tags": dumps(view["tags"]).decode(),
            "aliases": dumps(view["aliases"]).decode(),
            "stream_version": stream_version,
        }

    @staticmethod
    def _version_row(stream_id: str, state: ModelState, version: VersionState) -> dict[str, Any]:
        row = version_view(state, version)
        row["stream_id"] = stream_id
        for column in _JSON_COLUMNS:
            row[column] = dumps(row[column]).decode()
        return row


def _has_gap(events: list[Envelope]) -> bool:
    pairs = zip(events, events[1:], strict=False)
    return any(b.stream_version != a.stream_version + 1 for a, b in pairs)


# Queries -----------------------------------------------------------------------------------------


class BadPageToken(ValueError):
    pass


def encode_page_token(key: Iterable[Any]) -> str:
    return base64.urlsafe_b64encode(dumps(list(key))).decode().rstrip("=")


def decode_page_token(token: str, arity: int) -> list[Any]:
    try:
        key = loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except Exception:
        key = None
    if not isinstance(key, list) or len(key) != arity:
        raise BadPageToken("page_token is not one this API issued; use next_page_token as given")
    return key


def glob_to_like(pattern: str) -> str:
    """`churn*` → `churn%`: * and ? are wildcards, everything else is literal."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


# The select lists give each row the keys and order of model_view / version_view, so a listed
# model or version is the same JSON as one read from its stream.
_MODEL_COLUMNS = (
    "stream_id AS id, name, description, tags, aliases, latest_version, created_at, updated_at,"
    " deleted"
)
_VERSION_COLUMNS = (
    "model_name AS model, version, source, run_id, digest, size, stage,"
    " array(SELECT unnest(aliases) ORDER BY 1) AS aliases, tags, metrics, params, datasets,"
    " parents, description, created_at, updated_at, deleted"
)


async def _page(
    conn: AsyncConnection,
    select: str,
    where: list[str],
    params: dict[str, Any],
    sort_key: dict[str, str],
    page_size: int,
    page_token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `select ... WHERE where`, by keyset on `sort_key` (table column → its key in
    the row): the token holds the last row's sort key, so pages never repeat or skip a row."""
    columns = ", ".join(sort_key)
    if page_token:
        after = decode_page_token(page_token, len(sort_key))
        placeholders = ", ".join(f":after_{i}" for i in range(len(sort_key)))
        where = [*where, f"({columns}) > ({placeholders})"]
        params = {**params, **{f"after_{i}": value for i, value in enumerate(after)}}
    condition = " AND ".join(where) or "true"
    sql = f"{select} WHERE {condition} ORDER BY {columns} LIMIT :limit"
    rows = (await conn.execute(text(sql), {**params, "limit": page_size + 1})).all()
    page = [dict(row._mapping) for row in rows[:page_size]]
    if len(rows) <= page_size:
        return page, None
    last = page[-1]
    return page, encode_page_token(last[key] for key in sort_key.values())


async def list_models(
    conn: AsyncConnection,
    *,
    name: str | None = None,
    tags: dict[str, str] | None = None,
    include_deleted: bool = False,
    page_size: int = 100,
    page_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Models ordered by name, filtered by a name glob and exact tag values; one page of them."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if name is not None:
        where.append("name LIKE :name")
        params["name"] = glob_to_like(name)
    if tags:
        where.append("tags @> CAST(:tags AS jsonb)")
        params["tags"] = dumps(tags).decode()
    if not include_deleted:
        where.append("NOT deleted")
    select = f"SELECT {_MODEL_COLUMNS} FROM cs_models"
    sort_key = {"name": "name"}
    return await _page(conn, select, where, params, sort_key, page_size, page_token)


async def list_versions(
    conn: AsyncConnection,
    *,
    model: str | None = None,
    stage: str | None = None,
    alias: str | None = None,
    run_id: str | None = None,
    tags: dict[str, str] | None = None,
    include_deleted: bool = False,
    page_size: int = 100,
    page_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Versions ordered by (model, version), filtered; one page of them."""
    where: list[str] = []
    params: dict[str, Any] = {}
    for column, value in (("model_name", model), ("stage", stage), ("run_id", run_id)):
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    if alias is not None:
        where.append("aliases @> ARRAY[CAST(:alias AS text)]")
        params["alias"] = alias
    if tags:
        where.append("tags @> CAST(:tags AS jsonb)")
        params["tags"] = dumps(tags).decode()
    if not include_deleted:
        where.append("NOT deleted")
    select = f"SELECT {_VERSION_COLUMNS} FROM cs_versions"
    sort_key = {"model_name": "model", "version": "version"}
    return await _page(conn, select, where, params, sort_key, page_size, page_token)
