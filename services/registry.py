"""One running registry: the engine, event store, command handler and current-state projector,
opened on a PostgreSQL URL and closed together. The API, the CLI and the tests all start here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from registrar.commands.command_handler import CommandHandler, LoadedStream
from registrar.contracts.envelope import Envelope
from registrar.domain.errors import ModelNotFound
from registrar.domain.state import ModelState, fold
from registrar.projections.catalogue import READ_MODELS, read_model
from registrar.projections.current_state import NAME as CURRENT_STATE
from registrar.projector.halts import halted_reason
from registrar.projector.runner import Projector
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore
from registrar.store.schema_migrations import migrate

_NOT_YET_PROJECTED = text(
    "SELECT w.stream_id FROM unnest(CAST(:streams AS text[]), CAST(:versions AS int[]))"
    " AS w(stream_id, version) LEFT JOIN cs_models m USING (stream_id)"
    " WHERE coalesce(m.stream_version, 0) < w.version"
)


BACKGROUND_POLL_SECONDS = 0.1
"""How often the read models that queries do not wait for by default look for new events."""


@dataclass
class Registry:
    engine: AsyncEngine
    store: PostgresEventStore
    commands: CommandHandler
    projectors: list[Projector]
    """One per read model, run in this process when no Kafka broker feeds projector services."""
    query_wait_seconds: float = 10.0
    """How long a projection query waits for the projection to reach the caller's last write."""
    unconfirmed_writes: dict[str, int] = field(default_factory=dict)
    """stream id → the newest version this process wrote that the projection may not show yet."""
    on_append: list[Callable[[], None]] = field(default_factory=list)
    """Called after each append: wakes the in-process projector and relay at once."""
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _following: Projector | None = None
    """The current-state projector, when it runs in this process (queries wait on it)."""

    @classmethod
    async def open(cls, database_url: str, *, apply_migrations: bool = True) -> Registry:
        engine = create_engine(database_url)
        if apply_migrations:
            await migrate(engine)
        store = PostgresEventStore(engine)
        projectors = [Projector(store, read_model(name, store)) for name in READ_MODELS]
        commands = CommandHandler(store)
        registry = cls(engine, store, commands, projectors)
        commands.on_append = registry._appended
        return registry

    async def live_model(self, name: str) -> ModelState:
        """The model named `name` now, from its stream (strongly consistent), or ModelNotFound
        saying why (never one, renamed away, deleted)."""
        loaded = await self.commands.load(name)
        state = loaded.state if loaded else None
        if state is None:
            raise ModelNotFound(f"no model named {name!r}", name)
        if state.name != name:
            raise ModelNotFound(f"model {name!r} was renamed to {state.name!r}", name)
        if state.deleted:
            raise ModelNotFound(f"model {name!r} was deleted", name)
        return state

    async def model_as_of(self, name: str, at: datetime) -> tuple[ModelState, list[Envelope]]:
        """The model now named `name` as it stood at `at` (its stream folded up to then), and
        those events; ModelNotFound if it did not exist yet."""
        stream_id = (await self.live_model(name)).model_id
        envelopes = [e for e in await self.store.read_stream(stream_id) if e.recorded_at <= at]
        state = fold(None, envelopes)
        if state is None:
            raise ModelNotFound(f"model {name!r} did not exist at {at.isoformat()}", name)
        return state, envelopes

    def _appended(self, stream: LoadedStream) -> None:
        self.unconfirmed_writes[stream.stream_id] = stream.version
        for wake in self.on_append:
            wake()

    async def wait_until_projected(
        self, also: dict[str, int] | None = None, timeout: float | None = None
    ) -> bool:
        """Wait until the current-state projection shows every write this process made (and the
        stream versions in `also`); False if it has not within `timeout` seconds.

        The projection records each model's applied stream version in the same transaction as
        its rows, wherever it runs (in this process, or a projector service fed by Kafka), so
        "has it applied my write" is a question about those versions, not about bus offsets."""
        wanted = {**self.unconfirmed_writes}
        for stream_id, version in (also or {}).items():
            wanted[stream_id] = max(version, wanted.get(stream_id, 0))
        deadline = time.monotonic() + (self.query_wait_seconds if timeout is None else timeout)
        following = self._following if self._following and self._following.following else None
        while wanted:
            seen = following.batches if following else 0
            async with self.engine.connect() as conn:
                rows = await conn.execute(
                    _NOT_YET_PROJECTED, {"streams": list(wanted), "versions": list(wanted.values())}
                )
                behind = {row.stream_id for row in rows}
            for stream_id in set(wanted) - behind:
                if self.unconfirmed_writes.get(stream_id) == wanted[stream_id]:
                    del self.unconfirmed_writes[stream_id]
                del wanted[stream_id]
            if not wanted:
                break
            if time.monotonic() >= deadline or (following is not None and following.halted):
                return False
            if following is None:  # a projector service elsewhere: look again shortly
                await asyncio.sleep(0.005)
            else:  # this process's projector: look again when it has applied a batch
                await following.applied_since(seen, timeout=0.05)
        return True

    async def halted(self, name: str) -> str | None:
        """Why read model `name` stopped for good, wherever it runs; None if it has not."""
        async with self.engine.connect() as conn:
            return await halted_reason(conn, name)

    def start_projectors(self, names: Iterable[str] = READ_MODELS) -> list[asyncio.Task[None]]:
        """Run the projectors of read models `names` in this process, following the store (when
        no Kafka broker feeds projector services); return their tasks.

        Only the current-state projector is woken by each append: list queries wait for it
        (read-your-writes), so it must follow at once. The others poll, and so apply the events
        of a busy moment in one batch: waking four more projectors per command, each for a
        transaction of one event, cost more CPU than the command itself."""
        names = set(names)
        unknown = names - set(READ_MODELS)
        if unknown:
            raise ValueError(f"unknown read models {sorted(unknown)}: choose from {READ_MODELS}")
        started = []
        for projector in self.projectors:
            if projector.projection.name not in names:
                continue
            if projector.projection.name == CURRENT_STATE:
                self.on_append.append(projector.wake)
                self._following = projector
            else:
                projector.idle_poll_seconds = BACKGROUND_POLL_SECONDS
            started.append(
                asyncio.create_task(projector.run(), name=f"projector {projector.projection.name}")
            )
        self._tasks += started
        return started

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        await self.engine.dispose()
