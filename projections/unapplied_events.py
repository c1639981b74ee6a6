"""What a projection has still to apply of one stream's delivered events: those after the version
it recorded, with any gap (a redelivery after a rebalance, a relay that started over) filled from
the event store, the truth."""

from __future__ import annotations

from collections.abc import Sequence

from contracts.envelope import Envelope
from services.event_store import PostgresEventStore


async def unapplied_events(
    store: PostgresEventStore, delivered: Sequence[Envelope], applied_version: int
) -> list[Envelope]:
    """`delivered` (one stream's events, in order) after `applied_version`, gapless: read from the
    store up to the last delivered version when they do not follow on."""
    fresh = [e for e in delivered if e.stream_version > applied_version]
    if not fresh:
        return []
    expected = range(applied_version + 1, applied_version + 1 + len(fresh))
    if all(e.stream_version == v for e, v in zip(fresh, expected, strict=True)):
        return fresh
    last = fresh[-1].stream_version
    stored = await store.read_stream(fresh[0].stream_id, applied_version)
    return [e for e in stored if e.stream_version <= last]
