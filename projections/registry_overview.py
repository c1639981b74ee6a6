"""Queries the web UI's catalogue and stage board make across read models: current state (now),
stage and alias history (as of an instant), approvals and model owners. Read-only: no table of its
own; each answer is a page or a column of rows shaped for one screen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.values import Stage
from registrar.projections.current_state import latest_versions_per_stage
from registrar.projections.paging import keyset_page

_MODELS = (
    "SELECT stream_id AS id, name, description, tags, aliases, latest_version, created_at,"
    " updated_at, risk_tier FROM cs_models"
)


def _contains(text_: str) -> str:
    """`text_` as an ILIKE pattern that finds it anywhere, its own % and _ taken literally."""
    escaped = text_.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


async def catalogue_page(
    conn: AsyncConnection,
    *,
    name: str = "",
    tag_key: str = "",
    tag_value: str | None = None,
    at: datetime | None = None,
    page_size: int = 25,
    page_token: str | None = None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Models by name whose name contains `name` (any case) and that carry tag `tag_key` (with
    `tag_value`, when given), one page; each with its owners, the latest version in each stage
    and its aliases. `at`: the models that existed then, with their stages and aliases of then
    (names, tags and risk tiers are today's)."""
    where: list[str] = []
    params: dict[str, Any] = {}
    if name:
        where.append("name ILIKE :name")
        params["name"] = _contains(name)
    if tag_key and tag_value is not None:
        where.append("tags @> jsonb_build_object(CAST(:tag_key AS text), CAST(:tag_value AS text))")
        params.update(tag_key=tag_key, tag_value=tag_value)
    elif tag_key:
        where.append("tags ? :tag_key")
        params["tag_key"] = tag_key
    if at is None:
        where.append("NOT deleted")
    else:
        # A deleted model changes no more after its deletion: its updated_at is when it went.
        where.append("created_at <= :at AND (NOT deleted OR updated_at > :at)")
        params["at"] = at
    sort_key = {"name": "name", "stream_id": "id"}
    models, token = await keyset_page(conn, _MODELS, where, params, sort_key, page_size, page_token)
    ids = [m["id"] for m in models]
    owners = await owners_of(conn, ids)
    if at is None:
        latest = {
            stream_id: {v["stage"]: v["version"] for v in versions}
            for stream_id, versions in (await latest_versions_per_stage(conn, ids)).items()
        }
        aliases = {m["id"]: {a: int(v) for a, v in m["aliases"].items()} for m in models}
    else:
        latest = await _latest_per_stage_at(conn, ids, at)
        aliases = await _aliases_at(conn, ids, at)
    for model in models:
        model["owners"] = owners.get(model["id"], [])
        model["latest"] = latest.get(model["id"], {})
        model["aliases"] = dict(sorted(aliases.get(model["id"], {}).items()))
    return models, token


async def owners_of(conn: AsyncConnection, stream_ids: Sequence[str]) -> dict[str, list[str]]:
    """Each model's owners (who registered it and who was granted it), by stream id."""
    rows = await conn.execute(
        text(
            "SELECT model_id, user_name FROM access_owners WHERE model_id = ANY(:ids)"
            " ORDER BY model_id, since, user_name"
        ),
        {"ids": list(stream_ids)},
    )
    owners: dict[str, list[str]] = {}
    for row in rows:
        owners.setdefault(row.model_id, []).append(row.user_name)
    return owners


async def _latest_per_stage_at(
    conn: AsyncConnection, stream_ids: Sequence[str], at: datetime
) -> dict[str, dict[str, int]]:
    rows = await conn.execute(
        text(
            "SELECT DISTINCT ON (stream_id, stage) stream_id, stage, version FROM stage_history"
            " WHERE stream_id = ANY(:ids) AND valid_from <= :at"
            " AND (valid_to IS NULL OR valid_to > :at) ORDER BY stream_id, stage, version DESC"
        ),
        {"ids": list(stream_ids), "at": at},
    )
    latest: dict[str, dict[str, int]] = {}
    for row in rows:
        latest.setdefault(row.stream_id, {})[row.stage] = row.version
    return latest


async def _aliases_at(
    conn: AsyncConnection, stream_ids: Sequence[str], at: datetime
) -> dict[str, dict[str, int]]:
    rows = await conn.execute(
        text(
            "SELECT stream_id, alias, version FROM alias_history WHERE stream_id = ANY(:ids)"
            " AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)"
        ),
        {"ids": list(stream_ids), "at": at},
    )
    aliases: dict[str, dict[str, int]] = {}
    for row in rows:
        aliases.setdefault(row.stream_id, {})[row.alias] = row.version
    return aliases


# The stage board ---------------------------------------------------------------------------------


async def stage_column(
    conn: AsyncConnection, stage: Stage, at: datetime | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The versions in `stage` (now, or at `at`), by model name and version: the first `limit`
    of them, and how many there are in all."""
    if at is None:
        where = "FROM cs_versions WHERE stage = :stage AND NOT deleted"
        rows = await conn.execute(
            text(
                f"SELECT model_name AS model, version, aliases {where}"
                " ORDER BY model_name, version LIMIT :limit"
            ),
            {"stage": stage.value, "limit": limit},
        )
        total = await conn.execute(text(f"SELECT count(*) {where}"), {"stage": stage.value})
    else:
        # The stage as a literal (a Stage value, never the caller's text): each stage has its
        # own partial index, which the planner uses only when it can see the stage.
        where = (
            f"FROM stage_history WHERE stage = '{stage.value}'"
            " AND valid @> CAST(:at AS timestamptz)"
        )
        rows = await conn.execute(
            text(
                f"SELECT model, version, lower(valid) AS since {where}"
                " ORDER BY model, version LIMIT :limit"
            ),
            {"at": at, "limit": limit},
        )
        total = await conn.execute(text(f"SELECT count(*) {where}"), {"at": at})
    found = [{"aliases": [], "since": None, **row._mapping} for row in rows]
    return found, int(total.scalar() or 0)


async def alias_column(
    conn: AsyncConnection, alias: str, at: datetime | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The versions `alias` names in each model (now, or at `at`), by model name: the first
    `limit`, and how many in all."""
    if at is None:
        rows = await conn.execute(
            text(
                "SELECT model_name AS model, version, stage FROM cs_versions"
                " WHERE aliases @> ARRAY[CAST(:alias AS text)] AND NOT deleted"
                " ORDER BY model_name, version"
            ),
            {"alias": alias},
        )
    else:
        rows = await conn.execute(
            text(
                "SELECT m.name AS model, a.version, a.valid_from AS since FROM alias_history a"
                " JOIN history_models m ON m.stream_id = a.stream_id"
                " WHERE a.alias = :alias AND a.valid_from <= :at"
                " AND (a.valid_to IS NULL OR a.valid_to > :at) ORDER BY m.name, a.version"
            ),
            {"alias": alias, "at": at},
        )
    found = [{"aliases": [], "since": None, **row._mapping} for row in rows]
    return found[:limit], len(found)


async def pending_moves(
    conn: AsyncConnection, limit: int = 500, at: datetime | None = None
) -> list[dict[str, Any]]:
    """The transition requests pending now, or (`at`) then (at most `limit`, oldest first): what
    each asks to move where, who asked, and the approvals it had. A request closes with its last
    change, so one closed after `at` was still open at `at`."""
    when = (
        "state = 'pending'"
        if at is None
        else ("created_at <= :at AND (state = 'pending' OR updated_at > :at)")
    )
    rows = await conn.execute(
        text(
            "SELECT request_id, model_name AS model, version, stage, alias, requested_by,"
            f" approvals, created_at FROM ap_requests WHERE {when}"
            " ORDER BY request_id LIMIT :limit"
        ),
        {"limit": limit, "at": at},
    )
    found = [dict(row._mapping) for row in rows]
    if at is not None:  # the approvals given by then
        for request in found:
            request["approvals"] = [
                a for a in request["approvals"] if datetime.fromisoformat(a["at"]) <= at
            ]
    return found


async def decided_requests(conn: AsyncConnection, limit: int) -> list[dict[str, Any]]:
    """The `limit` transition requests decided last (applied, rejected or cancelled), newest
    first."""
    rows = await conn.execute(
        text(
            "SELECT request_id, model_name AS model, version, state, updated_at FROM ap_requests"
            " WHERE state <> 'pending' ORDER BY updated_at DESC, request_id DESC LIMIT :limit"
        ),
        {"limit": limit},
    )
    return [dict(row._mapping) for row in rows]
