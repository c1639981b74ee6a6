"""Session-level PostgreSQL advisory locks: "only one process does this at a time" (one replay of
a read model, one process following the store for a read model), held on a connection of their
own outside any transaction, and released when they are left or their session ends."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine


class LockHeld(Exception):
    """Another session holds the lock."""


class LockLost(Exception):
    """The session that held the lock is gone (the server restarted, the connection dropped):
    another process may hold it now."""


class HeldLock:
    def __init__(self, driver: Any) -> None:
        self._driver = driver

    async def check(self) -> None:
        """Raise LockLost unless the session holding the lock still answers."""
        try:
            await self._driver.fetchval("SELECT 1")
        except Exception as gone:
            raise LockLost(str(gone)) from gone


def lock_key(purpose: str) -> int:
    """A stable 64-bit signed lock id for `purpose` (e.g. "registrar.replay.lineage")."""
    key = int.from_bytes(hashlib.sha256(purpose.encode()).digest()[:8], "big")
    return key - (1 << 64) if key >= 1 << 63 else key


@contextlib.asynccontextmanager
async def session_lock(
    engine: AsyncEngine,
    key: int,
    *,
    waiting: Callable[[], None] | None = None,
    retry_seconds: float = 1.0,
) -> AsyncIterator[HeldLock]:
    """Hold advisory lock `key` while inside. Held elsewhere: without `waiting`, raise LockHeld at
    once; with it, call `waiting()` once and try again every `retry_seconds` until it is free.
    The connection is autocommit: holding the lock holds no transaction open."""
    pooled = await engine.raw_connection()
    try:
        driver = pooled.driver_connection
        assert driver is not None
        announced = False
        while not await driver.fetchval("SELECT pg_try_advisory_lock($1)", key):
            if waiting is None:
                raise LockHeld
            if not announced:
                waiting()
                announced = True
            await asyncio.sleep(retry_seconds)
        try:
            yield HeldLock(driver)
        finally:
            with contextlib.suppress(Exception):  # a lost session holds nothing to release
                await driver.execute("SELECT pg_advisory_unlock($1)", key)
    except BaseException:
        pooled.invalidate()  # cancelled mid-statement maybe: close the session, freeing the lock
        raise
    else:
        pooled.close()
