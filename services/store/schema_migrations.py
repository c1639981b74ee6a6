"""Schema migrations: ordered SQL files in services/store/migrations, each applied once, in one
transaction, under an advisory lock so that two processes starting together do not race."""

from __future__ import annotations

from importlib import resources

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_LOCK_KEY = 0x5265_6769_7374  # "Regist": one advisory lock id for migrations


def migration_files() -> list[tuple[str, str]]:
    """(name, sql) of every migration, in the order they apply."""
    folder = resources.files("registrar.store") / "migrations"
    files = sorted(f for f in folder.iterdir() if f.name.endswith(".sql"))
    return [(f.name.removesuffix(".sql"), f.read_text(encoding="utf-8")) for f in files]


async def migrate(engine: AsyncEngine) -> list[str]:
    """Apply the migrations this database has not seen; return the names applied now."""
    applied_now: list[str] = []
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
        )
        done = set((await conn.execute(text("SELECT name FROM schema_migrations"))).scalars())
        for name, sql in migration_files():
            if name in done:
                continue
            # The file may hold several statements and $$-quoted bodies: asyncpg's simple-query
            # path (execute without arguments) runs them as one script, inside our transaction.
            raw = await conn.get_raw_connection()
            await raw.driver_connection.execute(sql)  # type: ignore[union-attr]
            await conn.execute(
                text("INSERT INTO schema_migrations (name) VALUES (:name)"),
                {"name": name},
            )
            applied_now.append(name)
    return applied_now
