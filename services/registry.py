"""One running registry: the engine, event store, command handler and current-state projector,
opened on a PostgreSQL URL and closed together. The API, the CLI and the tests all start here."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from projections.current_state import CurrentStateProjection
from services.command_handler import CommandHandler
from services.database import create_engine
from services.event_store import PostgresEventStore
from services.projector import Projector
from services.schema_migrations import migrate


@dataclass
class Registry:
    engine: AsyncEngine
    store: PostgresEventStore
    commands: CommandHandler
    projector: Projector
    query_wait_seconds: float = 5.0
    """How long a projection query waits for the projection to reach the caller's last write."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, database_url: str, *, apply_migrations: bool = True) -> Registry:
        engine = create_engine(database_url)
        if apply_migrations:
            await migrate(engine)
        store = PostgresEventStore(engine)
        projector = Projector(store, CurrentStateProjection(store))
        commands = CommandHandler(store, on_append=projector.wake)
        return cls(engine, store, commands, projector)

    def start_projector(self) -> None:
        """Run the current-state projector in this process, following the store."""
        self._tasks.append(asyncio.create_task(self.projector.run(), name="projector"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.engine.dispose()
