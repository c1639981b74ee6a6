"""Every active token of the registry, in memory, by its hash: authenticating a request is a dict
lookup, so a flood of bad tokens never reaches the database.

The cache reloads the token table (kept by the events themselves, migration 0009) as soon as any
process issues or revokes a token: the trigger's NOTIFY registrar_access arrives when that
transaction commits, a few milliseconds later. It also reloads every `refresh_seconds` whatever
happens, so a notification lost with a dropped connection delays a revocation by that much at
most. If the database cannot be reached the cache keeps what it had and tries again."""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from uuid import UUID

import asyncpg
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.access.principal import Principal
from registrar.contracts.values import Role
from registrar.projector.wake_signal import WakeSignal

log = logging.getLogger("registrar.access")

CHANNEL = "registrar_access"
_ACTIVE_TOKENS = (
    "SELECT token_hash, token_id, user_name, role FROM access_tokens WHERE revoked_at IS NULL"
)


class TokenCache:
    def __init__(self, engine: AsyncEngine, refresh_seconds: float = 5.0) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self.reloads = 0
        self._by_hash: dict[str, Principal] = {}
        self._wake = WakeSignal()
        self._loaded = asyncio.Event()

    def principal(self, token_hash: str) -> Principal | None:
        return self._by_hash.get(token_hash)

    def accept(self, token_hash: str, principal: Principal) -> None:
        """Accept a token at once in this process (the API that issued it)."""
        self._by_hash = {**self._by_hash, token_hash: principal}

    def forget(self, token_id: UUID) -> None:
        """Stop accepting a token at once in this process (the API that revoked it)."""
        self._by_hash = {h: p for h, p in self._by_hash.items() if p.token_id != token_id}

    async def reload(self) -> None:
        async with self.engine.connect() as conn:
            raw = await conn.get_raw_connection()
            rows = await raw.driver_connection.fetch(_ACTIVE_TOKENS)  # type: ignore[union-attr]
        self._by_hash = {
            row["token_hash"]: Principal(row["user_name"], Role(row["role"]), row["token_id"])
            for row in rows
        }
        self.reloads += 1
        self._loaded.set()

    async def loaded(self) -> None:
        """Wait until the first load is done (requests before it would all be refused)."""
        await self._loaded.wait()

    async def run(self) -> None:
        """Listen for token changes and reload on each (and every `refresh_seconds`), until
        cancelled. Listening starts before each load, so no change falls between the two."""
        while True:
            listener = await self._listen()
            try:
                while True:
                    try:
                        await self.reload()
                    except (OSError, asyncpg.PostgresError) as error:
                        log.warning("could not reload the access tokens (kept the old): %s", error)
                    await self._wake.sleep(self.refresh_seconds)
                    if listener is None or listener.is_closed():
                        break  # connect again, so that notifications arrive again
            finally:
                if listener is not None:
                    listener.terminate()  # at once: this runs when cancelled, too

    async def _listen(self) -> asyncpg.Connection | None:
        url = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            listener = await asyncpg.connect(url)
            await listener.add_listener(CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError) as error:
            log.warning("cannot listen for token changes (polling instead): %s", error)
            return None
        return listener

    def _notified(self, *_: Any) -> None:
        self._wake.wake()
