"""Keyset paging for every read model's list queries: opaque page tokens holding the last row's
sort key, so pages never repeat or skip a row while new rows arrive."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.codec import dumps, loads


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


async def keyset_page(
    conn: AsyncConnection,
    select: str,
    where: list[str],
    params: dict[str, Any],
    sort_key: dict[str, str],
    page_size: int,
    page_token: str | None,
    descending: frozenset[str] = frozenset(),
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `select ... WHERE where`, by keyset on `sort_key` (table column → its key in
    the row; the columns in `descending` sort downwards): the token holds the last row's sort
    key, so pages never repeat or skip a row."""
    if page_token:
        after = decode_page_token(page_token, len(sort_key))
        placeholders = [f":after_{i}" for i in range(len(sort_key))]
        where = [*where, _after_key(list(sort_key), placeholders, descending)]
        params = {**params, **{f"after_{i}": value for i, value in enumerate(after)}}
    condition = " AND ".join(where) or "true"
    order = ", ".join(f"{c} DESC" if c in descending else c for c in sort_key)
    sql = f"{select} WHERE {condition} ORDER BY {order} LIMIT :limit"
    rows = (await conn.execute(text(sql), {**params, "limit": page_size + 1})).all()
    page = [dict(row._mapping) for row in rows[:page_size]]
    if len(rows) <= page_size:
        return page, None
    last = page[-1]
    return page, encode_page_token(last[key] for key in sort_key.values())


def _after_key(columns: list[str], values: list[str], descending: frozenset[str]) -> str:
    """The rows after `values` in the order of `columns` (a row comparison when all ascend)."""
    if not descending:
        return f"({', '.join(columns)}) > ({', '.join(values)})"
    alternatives = []
    for i, column in enumerate(columns):
        equal = [f"{c} = {v}" for c, v in zip(columns[:i], values[:i], strict=True)]
        beyond = f"{column} {'<' if column in descending else '>'} {values[i]}"
        alternatives.append("(" + " AND ".join([*equal, beyond]) + ")")
    return "(" + " OR ".join(alternatives) + ")"
