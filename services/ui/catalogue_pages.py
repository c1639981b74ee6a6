"""The catalogue (/ui/: models found by name and tag, paged, each with its latest version per
stage, aliases, owners and risk tier) and the stage board (/ui/board: a column per stage and per
protected alias), now or as of any instant."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from registrar.api.context import registry_of
from registrar.contracts.values import Stage
from registrar.domain.policies import PolicySet
from registrar.projections.registry_overview import (
    alias_column,
    catalogue_page,
    pending_moves,
    stage_column,
)
from registrar.ui.rendering import UiRoute, page
from registrar.ui.time_travel import time_travel

router = APIRouter(route_class=UiRoute, include_in_schema=False)

PAGE_SIZE = 25
COLUMN_SIZE = 60
"""Versions shown per board column (the count says how many there are in all)."""
STAGE_ORDER = (Stage.NONE, Stage.STAGING, Stage.PRODUCTION, Stage.ARCHIVED)

Text = Annotated[str, Query(max_length=256)]
AsOf = Annotated[str | None, Query(max_length=64)]
Token = Annotated[str | None, Query(max_length=2000)]


def _tag_filter(tag: str) -> tuple[str, str | None]:
    """`key=value` (that value) or `key` (any value)."""
    key, sep, value = tag.strip().partition("=")
    return key.strip(), (value.strip() if sep else None)


@router.get("/ui/")
async def catalogue(
    request: Request,
    q: Text = "",
    tag: Text = "",
    as_of: AsOf = None,
    page_token: Token = None,
) -> Response:
    travel = time_travel(as_of)
    registry = registry_of(request)
    if not travel.past:
        await registry.wait_until_projected()  # this process's own writes are in the list
    tag_key, tag_value = _tag_filter(tag)
    async with registry.engine.connect() as conn:
        models, token = await catalogue_page(
            conn,
            name=q.strip(),
            tag_key=tag_key,
            tag_value=tag_value,
            at=travel.at,
            page_size=PAGE_SIZE,
            page_token=page_token,
        )
    context = {
        "section": "catalogue",
        "travel": travel,
        "models": models,
        "q": q,
        "tag": tag,
        "next_token": token,
        "first_page": page_token is None,
        "stages": STAGE_ORDER,
    }
    return page(request, "catalogue.html", context)


def protected_aliases(policies: PolicySet) -> list[str]:
    """Every alias a rule of the governance document governs (by default or in a scope)."""
    names = set(policies.aliases) | set(policies.rollback_aliases)
    for scoped in policies.scopes:
        names |= set(scoped.aliases)
    return sorted(names)


def _column(
    kind: str, name: str, cards: list[dict[str, Any]], total: int, governed: bool
) -> dict[str, Any]:
    return {
        "kind": kind,
        "name": name,
        "cards": cards,
        "total": total,
        "governed": governed,
        "pending": [],
    }


@router.get("/ui/board")
async def board(request: Request, as_of: AsOf = None) -> Response:
    travel = time_travel(as_of)
    registry = registry_of(request)
    if not travel.past:
        await registry.wait_until_projected()
    policies = await registry.commands.policies.as_of(travel.instant)
    aliases = protected_aliases(policies)
    columns: list[dict[str, Any]] = []
    async with registry.engine.connect() as conn:
        for stage in STAGE_ORDER:
            cards, total = await stage_column(conn, stage, travel.at, COLUMN_SIZE)
            governed = policies.for_stage(stage) is not None
            columns.append(_column("stage", stage.value, cards, total, governed))
        for alias in aliases:
            cards, total = await alias_column(conn, alias, travel.at, COLUMN_SIZE)
            columns.append(_column("alias", alias, cards, total, True))
        pending = await pending_moves(conn, at=travel.instant if travel.past else None)
    by_target = {(c["kind"], c["name"]): c for c in columns}
    waiting: set[tuple[str, int]] = set()
    for request_row in pending:
        kind, name = (
            ("stage", request_row["stage"])
            if request_row["stage"]
            else ("alias", request_row["alias"])
        )
        column = by_target.get((kind, name))
        if column is None:  # an alias no rule protects (applied at once, or since unprotected)
            column = _column(kind, name, [], 0, False)
            columns.append(column)
            by_target[(kind, name)] = column
        column["pending"].append(request_row)
        waiting.add((request_row["model"], request_row["version"]))
    context = {"section": "board", "travel": travel, "columns": columns, "waiting": waiting}
    return page(request, "board.html", context)
