"""The two seams of a read model: what a projection is to the runners that feed it (`Projection`),
and the little it may ask of the event store, the truth (`EventSource`); and the one query
read-your-writes waits on (`stream_applied`). The store in
registrar.store implements `EventSource`; the projector, the Kafka projector services and replay
drive `Projection`s. Read models know neither."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.contracts.envelope import Envelope


class EventSource(Protocol):
    """The event store as a read model sees it: one stream's events, and who held a name."""

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[Envelope]:
        """The stream's events after `after_version`, in order."""
        ...

    async def resolve_name(self, name: str, at: datetime | None = None) -> str | None:
        """The stream `name` means: its live holder, else its last; with `at`, its holder then."""
        ...

    async def holders_of_name(self, name: str) -> list[str]:
        """Every stream that ever held `name`, the first holder first."""
        ...


class Projection(Protocol):
    name: str
    tables: tuple[str, ...]
    """The tables this read model owns and writes, and nothing else does."""

    async def apply(self, conn: AsyncConnection, events: Sequence[Envelope]) -> None:
        """Apply a batch in the caller's transaction, skipping what was already applied."""
        ...

    def forget(self) -> None:
        """Drop anything remembered between batches (the caller's transaction rolled back)."""
        ...


def stream_applied(models_table: str, first: str = "") -> TextClause:
    """The query read-your-writes waits on: has the read model applied version :version of
    stream :stream? A stream `models_table` keeps a row for (`stream_id`, `stream_version`) is
    compared there; any other (a model not applied yet, the policy stream, access, webhooks)
    leaves no row, so how far the read model has got (:position) is all there is to compare.
    `first`: WHEN clauses tried before those (e.g. lineage's runs)."""
    return text(
        f"SELECT CASE{first}"
        f" WHEN EXISTS (SELECT 1 FROM {models_table} WHERE stream_id = :stream)"
        f" THEN (SELECT stream_version FROM {models_table} WHERE stream_id = :stream) >= :version"
        " ELSE coalesce((SELECT position >= :position FROM projection_progress"
        "   WHERE projection = :projection), false) END"
    )
