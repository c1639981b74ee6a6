"""Current state: every model and version as it is now, for the list and search endpoints.

`apply` folds each touched stream with the domain's own `evolve`, so the projection can never
disagree with the rules, and writes the rows that changed. It records each model's last applied
stream version in the same transaction, so a redelivered event is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.codec import dumps
from registrar.contracts.envelope import Envelope
from registrar.domain.mlflow_search import Clause, SortKey
from registrar.domain.state import ModelState, VersionState, fold, touched_versions
from registrar.projections.paging import keyset_page
from registrar.projections.ports import EventSource
from registrar.projections.stream_states import StreamStates
from registrar.projections.unapplied_events import by_model_stream, unapplied_events

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
        "changed_at": state.changed_at or state.updated_at,
        "deleted": state.deleted,
        "risk_tier": state.risk.tier if state.risk is not None else None,
    }


def artifacts_view(version: VersionState) -> dict[str, Any] | None:
    """A version's sealed files in the artifact store, or None when it holds none (yet)."""
    if not version.manifest_digest:
        return None
    return {
        "manifest_digest": version.manifest_digest,
        "files": version.artifact_files,
        "bytes": version.artifact_bytes,
        "sealed_at": version.sealed_at,
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
        "model_type": version.model_type,
        "framework": version.framework,
        "model_card": version.card,
        "artifacts": artifacts_view(version),
        "created_at": version.created_at,
        "updated_at": version.updated_at,
        "deleted": version.deleted or state.deleted,
    }


# One statement per table and batch, the rows as column arrays (asyncpg encodes each array once):
# a rebuild writes hundreds of thousands of rows, and a statement per row cost most of its time.
_MODEL_COLUMNS_IN = {
    "stream_id": "text",
    "name": "text",
    "description": "text",
    "tags": "jsonb",
    "aliases": "jsonb",
    "latest_version": "int",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "changed_at": "timestamptz",
    "deleted": "bool",
    "risk_tier": "text",
    "stream_version": "int",
}
_VERSION_COLUMNS_IN = {
    "stream_id": "text",
    "version": "int",
    "model_name": "text",
    "source": "text",
    "run_id": "text",
    "digest": "text",
    "size": "bigint",
    "stage": "text",
    "aliases": "text[]",
    "tags": "jsonb",
    "metrics": "jsonb",
    "params": "jsonb",
    "datasets": "jsonb",
    "parents": "jsonb",
    "description": "text",
    "model_type": "text",
    "framework": "text",
    "model_card": "jsonb",
    "artifacts": "jsonb",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "deleted": "bool",
}


def _upsert_from_arrays(table: str, columns: dict[str, str], key: str, updated: str) -> str:
    """INSERT ... SELECT FROM unnest($1::t1[], $2::t2[], ...) ON CONFLICT (key) DO UPDATE SET
    updated. jsonb and text[] columns come as text[] (unnest would flatten an array of arrays):
    JSON text, cast per row."""
    arrays, values = [], []
    for i, (column, kind) in enumerate(columns.items(), start=1):
        arrays.append(f"${i}::{'text' if kind in ('jsonb', 'text[]') else kind}[]")
        if kind == "jsonb":
            values.append(f"CAST({column} AS jsonb)")
        elif kind == "text[]":
            values.append(f"ARRAY(SELECT jsonb_array_elements_text(CAST({column} AS jsonb)))")
        else:
            values.append(column)
    names = ", ".join(columns)
    return (
        f"INSERT INTO {table} ({names}) SELECT {', '.join(values)}"
        f" FROM unnest({', '.join(arrays)}) AS r({names})"
        f" ON CONFLICT ({key}) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in updated.split())
    )


_UPSERT_MODELS = _upsert_from_arrays(
    "cs_models",
    _MODEL_COLUMNS_IN,
    "stream_id",
    "name description tags aliases latest_version updated_at changed_at deleted risk_tier"
    " stream_version",
)
_UPSERT_VERSIONS = _upsert_from_arrays(
    "cs_versions",
    _VERSION_COLUMNS_IN,
    "stream_id, version",
    "model_name digest stage aliases tags metrics description model_card artifacts updated_at"
    " deleted",
)
_JSON_COLUMNS = ("tags", "metrics", "params", "datasets", "parents", "model_card", "artifacts")


def _changed_versions(
    before: ModelState | None, after: ModelState, events: list[Envelope]
) -> list[int]:
    if before is None or before.name != after.name or before.deleted != after.deleted:
        return sorted(after.versions)  # every row holds the model's name and deletion
    return touched_versions(before, after, events)


class CurrentStateProjection:
    name = NAME
    tables = ("cs_models", "cs_versions")

    def __init__(self, store: EventSource, cache_size: int = 10_000) -> None:
        self.store = store
        self.states = StreamStates(store, cache_size)
        """Each model's state as of its last applied version, to fold its next events onto."""

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        """Apply `events` (any order across streams, in order within each) in `conn`'s transaction.

        Events at or below a model's recorded stream version are skipped: applying twice is a no-op.
        """
        by_stream = by_model_stream(events)
        rows = await conn.execute(
            text("SELECT stream_id, stream_version FROM cs_models WHERE stream_id = ANY(:ids)"),
            {"ids": list(by_stream)},
        )
        applied_versions = {row.stream_id: row.stream_version for row in rows}
        model_rows: list[dict[str, Any]] = []
        version_rows: list[dict[str, Any]] = []
        for stream_id, stream_events in by_stream.items():
            done = applied_versions.get(stream_id, 0)
            fresh = await unapplied_events(self.store, stream_events, done)
            if not fresh:
                continue
            before = await self.states.state_at(stream_id, done)
            after = fold(before, fresh)
            if after is None:
                continue
            new_version = fresh[-1].stream_version
            model_rows.append(self._model_row(stream_id, after, new_version))
            version_rows.extend(
                self._version_row(stream_id, after, after.versions[n])
                for n in _changed_versions(before, after, fresh)
            )
            self.states.remember(stream_id, new_version, after)
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        if model_rows:
            await driver.execute(_UPSERT_MODELS, *_as_columns(model_rows, _MODEL_COLUMNS_IN))
        if version_rows:
            await driver.execute(_UPSERT_VERSIONS, *_as_columns(version_rows, _VERSION_COLUMNS_IN))

    def forget(self) -> None:
        """Drop the in-memory states (after a rolled back transaction they may be ahead)."""
        self.states.forget()

    @staticmethod
    def _model_row(stream_id: str, state: ModelState, stream_version: int) -> dict[str, Any]:
        view = model_view(state)
        return {
            **{k: view[k] for k in ("name", "description", "latest_version", "created_at")},
            **{k: view[k] for k in ("updated_at", "changed_at", "deleted", "risk_tier")},
            "stream_id": stream_id,
            "tags": dumps(view["tags"]).decode(),
            "aliases": dumps(view["aliases"]).decode(),
            "stream_version": stream_version,
        }

    @staticmethod
    def _version_row(stream_id: str, state: ModelState, version: VersionState) -> dict[str, Any]:
        row = version_view(state, version)
        row["stream_id"] = stream_id
        row["model_name"] = row["model"]
        for column in (*_JSON_COLUMNS, "aliases"):
            row[column] = dumps(row[column]).decode()
        return row


def _as_columns(rows: list[dict[str, Any]], columns: dict[str, str]) -> list[list[Any]]:
    return [[row[column] for row in rows] for column in columns]


# Queries -----------------------------------------------------------------------------------------


def glob_to_like(pattern: str) -> str:
    """`churn*` → `churn%`: * and ? are wildcards, everything else is literal."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


# The select lists give each row the keys and order of model_view / version_view, so a listed
# model or version is the same JSON as one read from its stream.
_MODEL_COLUMNS = (
    "stream_id AS id, name, description, tags, aliases, latest_version, created_at, updated_at,"
    " changed_at,"
    " deleted, risk_tier"
)
_VERSION_COLUMNS = (
    "model_name AS model, version, source, run_id, digest, size, stage,"
    " array(SELECT unnest(aliases) ORDER BY 1) AS aliases, tags, metrics, params, datasets,"
    " parents, description, model_type, framework, model_card, artifacts, created_at, updated_at,"
    " deleted"
)


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
    # A deleted model and a live one may share a name (a released name taken again).
    sort_key = {"name": "name", "stream_id": "id"}
    return await keyset_page(conn, select, where, params, sort_key, page_size, page_token)


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
    select = f"SELECT {_VERSION_COLUMNS}, stream_id AS model_id FROM cs_versions"
    # A deleted model and a live one may share a name (a released name taken again).
    sort_key = {"model_name": "model", "version": "version", "stream_id": "model_id"}
    page, token = await keyset_page(conn, select, where, params, sort_key, page_size, page_token)
    for row in page:
        del row["model_id"]  # the sort key's last column, not part of a version's view
    return page, token


# MLflow searches: filters parsed by registrar.domain.mlflow_search, translated onto these tables

_MICROS = "floor(extract(epoch FROM {column}) * 1000000)::bigint"
"""A timestamp as whole microseconds: a sort key that survives a JSON page token exactly."""
_TIME_KEYS = (
    f", {_MICROS.format(column='updated_at')} AS updated_us,"
    f" {_MICROS.format(column='created_at')} AS created_us"
)
_TIME_SORTS = {
    "timestamp": (_MICROS.format(column="updated_at"), "updated_us"),
    "last_updated_timestamp": (_MICROS.format(column="updated_at"), "updated_us"),
    "creation_timestamp": (_MICROS.format(column="created_at"), "created_us"),
}
_MODEL_TIME_KEYS = (
    f", {_MICROS.format(column='changed_at')} AS updated_us,"
    f" {_MICROS.format(column='created_at')} AS created_us"
)
_MLFLOW_MODEL_SORTS = {
    "name": ("name", "name"),
    **_TIME_SORTS,
    # A registered model's last update is when the model itself changed, as in MLflow.
    "timestamp": (_MICROS.format(column="changed_at"), "updated_us"),
    "last_updated_timestamp": (_MICROS.format(column="changed_at"), "updated_us"),
}
_MLFLOW_VERSION_SORTS = {
    "name": ("model_name", "model"),
    "version_number": ("version", "version"),
    **_TIME_SORTS,
}


def _mlflow_conditions(
    clauses: Sequence[Clause], columns: dict[str, str]
) -> tuple[list[str], dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    for i, clause in enumerate(clauses):
        if clause.kind == "tag":
            subject = f"(tags ->> :key_{i})"
            params[f"key_{i}"] = clause.key
        else:
            subject = columns[clause.key]
        if isinstance(clause.value, tuple):  # IN, NOT IN
            negated = "NOT " if clause.comparator == "NOT IN" else ""
            condition = f"{negated}({subject} = ANY(:value_{i}))"
            params[f"value_{i}"] = list(clause.value)
        else:
            operator = "<>" if clause.comparator == "!=" else clause.comparator
            condition = f"{subject} {operator} :value_{i}"
            params[f"value_{i}"] = clause.value
        if clause.matches_missing_tag():
            condition = f"coalesce({condition}, true)"  # a missing tag compares as NULL
        where.append(condition)
    return where, params


def _mlflow_sort(
    order: Sequence[SortKey],
    sorts: dict[str, tuple[str, str]],
    tie_breakers: Sequence[SortKey],
) -> tuple[dict[str, str], frozenset[str]]:
    sort_key: dict[str, str] = {}
    descending: set[str] = set()
    for key in [*order, *tie_breakers]:
        column, row_key = sorts[key.key]
        if column in sort_key:
            continue
        sort_key[column] = row_key
        if not key.ascending:
            descending.add(column)
    return sort_key, frozenset(descending)


async def models_matching(
    conn: AsyncConnection,
    clauses: Sequence[Clause],
    order: Sequence[SortKey],
    page_size: int,
    page_token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Live models matching an MLflow filter, in MLflow's order (`order`, then name); one page."""
    where, params = _mlflow_conditions(clauses, {"name": "name"})
    sort_key, descending = _mlflow_sort(order, _MLFLOW_MODEL_SORTS, [SortKey("name", True)])
    select = f"SELECT {_MODEL_COLUMNS}{_MODEL_TIME_KEYS} FROM cs_models"
    where.append("NOT deleted")
    return await keyset_page(
        conn, select, where, params, sort_key, page_size, page_token, descending
    )


async def versions_matching(
    conn: AsyncConnection,
    clauses: Sequence[Clause],
    order: Sequence[SortKey],
    page_size: int,
    page_token: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Live versions matching an MLflow filter, in MLflow's order (`order`, else the newest
    update first; then name, then version downwards); one page."""
    columns = {
        "name": "model_name",
        "run_id": "run_id",
        "source_path": "source",
        "version_number": "version",
    }
    where, params = _mlflow_conditions(clauses, columns)
    order = order or [SortKey("last_updated_timestamp", False)]
    tie_breakers = [SortKey("name", True), SortKey("version_number", False)]
    sort_key, descending = _mlflow_sort(order, _MLFLOW_VERSION_SORTS, tie_breakers)
    select = f"SELECT {_VERSION_COLUMNS}{_TIME_KEYS} FROM cs_versions"
    where.append("NOT deleted")
    return await keyset_page(
        conn, select, where, params, sort_key, page_size, page_token, descending
    )


async def latest_versions_per_stage(
    conn: AsyncConnection, stream_ids: Sequence[str]
) -> dict[str, list[dict[str, Any]]]:
    """For each model stream, its highest live version in each stage."""
    rows = await conn.execute(
        text(
            f"SELECT DISTINCT ON (stream_id, stage) stream_id, {_VERSION_COLUMNS} FROM cs_versions"
            " WHERE stream_id = ANY(:ids) AND NOT deleted"
            " ORDER BY stream_id, stage, version DESC"
        ),
        {"ids": list(stream_ids)},
    )
    latest: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        view = dict(row._mapping)
        latest.setdefault(view.pop("stream_id"), []).append(view)
    return latest
