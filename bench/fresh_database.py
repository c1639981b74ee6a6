"""A fresh database for one benchmark run, created on a PostgreSQL server and dropped after."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
from sqlalchemy.engine import make_url

T = TypeVar("T")


def plain(url: str, database: str | None = None) -> str:
    """`url` as asyncpg takes it (postgresql://), optionally naming another database."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


async def with_fresh_database(server: str, body: Callable[[str], Awaitable[T]]) -> T:
    """Run `body` with the URL of a new database on `server`, then drop that database."""
    name = f"registrar_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(plain(server))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        return await body(plain(server, name))
    finally:
        conn = await asyncpg.connect(plain(server))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
