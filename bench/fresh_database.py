"""A fresh database for one benchmark run, created on a PostgreSQL server and dropped after."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
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


async def create_database(server: str) -> str:
    """A new, empty database on `server`; its URL (asyncpg's form)."""
    name = f"registrar_bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(plain(server))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return plain(server, name)


async def drop_database(server: str, url: str) -> None:
    """Drop the database of `url` (made by create_database) from `server`."""
    conn = await asyncpg.connect(plain(server))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    finally:
        await conn.close()


async def with_fresh_database(server: str, body: Callable[[str], Awaitable[T]]) -> T:
    """Run `body` with the URL of a new database on `server`, then drop that database."""
    url = await create_database(server)
    try:
        return await body(url)
    finally:
        await drop_database(server, url)


def run_on_a_fresh_database(body: Callable[[str], Awaitable[T]]) -> T:
    """Run `body` on a fresh database of REGISTRAR_DATABASE_URL's server if it is set, else of an
    embedded PostgreSQL started (and stopped) for this run."""
    from registrar.store.database import start_embedded_postgres

    configured = os.environ.get("REGISTRAR_DATABASE_URL") or None
    if configured:
        print("server: REGISTRAR_DATABASE_URL")
        return asyncio.run(with_fresh_database(configured, body))
    with tempfile.TemporaryDirectory(prefix="registrar-bench-", ignore_cleanup_errors=True) as home:
        server, handle = start_embedded_postgres(Path(home) / "data", database="postgres")
        try:
            print("server: embedded PostgreSQL")
            return asyncio.run(with_fresh_database(server, body))
        finally:
            handle.cleanup()  # stop it before its data directory is removed
