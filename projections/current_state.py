"""Current state: every model and version as it is now, for the list and search endpoints.

`apply` folds each touched stream with the domain's own `evolve`, so the projection can never
disagree with the rules, and writes the rows that changed. It records each model's last applied
stream version in the same transaction, so a redelivered event is skipped.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from contracts.codec import dumps, loads
from contracts.envelope import Envelope
from services.domain.state import ModelState, VersionState, fold
from services.event_store import PostgresEventStore

NAME = "current_state"


@dataclass(frozen=True, slots=True)
class _Applied:
    version: int
    state: ModelState | None


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

    def __init__(self, store: PostgresEventStore, cache_size: int = 10_000) -> None:
        self.store = store
        self.cache_size = cache_size
        self._applied: OrderedDict[str, _Applied] = OrderedDict()

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        """Apply `events` (any order across streams, in order within each) in `conn`'s transaction.

        Events at or below a model's recorded stream version are skipped: applying twice is a no-op.
        """
        by_stream: dict[str, list[Envelope]] = {}
        for envelope in events:
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
            before = await self._state_at(stream_id, done)
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
            self._remember(stream_id, _Applied(new_version, after))
        if model_rows:
            await conn.execute(_UPSERT_MODEL, model_rows)
        if version_rows:
            await conn.execute(_UPSERT_VERSION, version_rows)

    def forget(self) -> None:
        """Drop the in-memory states (after a rolled back transaction they may be ahead)."""
        self._applied.clear()

    async def _state_at(self, stream_id: str, version: int) -> ModelState | None:
        if version == 0:
            return None
        cached = self._applied.get(stream_id)
        if cached is not None and cached.version == version:
            return cached.state
        events = await self.store.read_stream(stream_id)
        return fold(None, (e for e in events if e.stream_version <= version))

    def _remember(self, stream_id: str, applied: _Applied) -> None:
        self._applied[stream_id] = applied
        self._applied.move_to_end(stream_id)
        while len(self._applied) > self.cache_size:
            self._applied.popitem(last=False)

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


def _model_from_row(row: Any) -> dict[str, Any]:
    return {
        "id": row.stream_id,
        "name": row.name,
        "description": row.description,
        "tags": row.tags,
        "aliases": row.aliases,
        "latest_version": row.latest_version,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "deleted": row.deleted,
    }


def _version_from_row(row: Any) -> dict[str, Any]:
    return {
        "model": row.model_name,
        "version": row.version,
        "source": row.source,
        "run_id": row.run_id,
        "digest": row.digest,
        "size": row.size,
        "stage": row.stage,
        "aliases": sorted(row.aliases),
        "tags": row.tags,
        "metrics": row.metrics,
        "params": row.params,
        "datasets": row.datasets,
        "parents": row.parents,
        "description": row.description,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
        "deleted": row.deleted,
    }


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
    where, params = ["true"], {"limit": page_size + 1}  # type: ignore[dict-item]
    if name is not None:
        where.append("name LIKE :name")
        params["name"] = glob_to_like(name)
    if tags:
        where.append("tags @> CAST(:tags AS jsonb)")
        params["tags"] = dumps(tags).decode()
    if not include_deleted:
        where.append("NOT deleted")
    if page_token:
        (after,) = decode_page_token(page_token, 1)
        where.append("name > :after")
        params["after"] = after
    rows = (
        await conn.execute(
            text(f"SELECT * FROM cs_models WHERE {' AND '.join(where)} ORDER BY name LIMIT :limit"),
            params,
        )
    ).all()
    page = [_model_from_row(r) for r in rows[:page_size]]
    more = len(rows) > page_size
    return page, encode_page_token([page[-1]["name"]]) if more else None


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
    where, params = ["true"], {"limit": page_size + 1}  # type: ignore[dict-item]
    if model is not None:
        where.append("model_name = :model")
        params["model"] = model
    if stage is not None:
        where.append("stage = :stage")
        params["stage"] = stage
    if alias is not None:
        where.append("aliases @> ARRAY[CAST(:alias AS text)]")
        params["alias"] = alias
    if run_id is not None:
        where.append("run_id = :run_id")
        params["run_id"] = run_id
    if tags:
        where.append("tags @> CAST(:tags AS jsonb)")
        params["tags"] = dumps(tags).decode()
    if not include_deleted:
        where.append("NOT deleted")
    if page_token:
        after_model, after_version = decode_page_token(page_token, 2)
        where.append("(model_name, version) > (:after_model, :after_version)")
        params["after_model"], params["after_version"] = after_model, after_version
    rows = (
        await conn.execute(
            text(
                f"SELECT * FROM cs_versions WHERE {' AND '.join(where)}"
                " ORDER BY model_name, version LIMIT :limit"
            ),
            params,
        )
    ).all()
    page = [_version_from_row(r) for r in rows[:page_size]]
    more = len(rows) > page_size
    token = encode_page_token([page[-1]["model"], page[-1]["version"]]) if more else None
    return page, token
