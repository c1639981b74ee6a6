"""What a read model has still to apply of a delivered batch: its model streams' events, grouped by
stream; and of each stream, those after the version it recorded, with any gap (a redelivery after
a rebalance, a relay that started over) filled from the event store, the truth."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from registrar.contracts.envelope import Envelope
from registrar.contracts.events import EVENT_TYPES
from registrar.projections.ports import EventSource


def by_model_stream(events: Iterable[Envelope]) -> dict[str, list[Envelope]]:
    """The model streams' events of `events`, by stream, in order (other stream kinds left out)."""
    by_stream: dict[str, list[Envelope]] = {}
    for envelope in events:
        if envelope.type in EVENT_TYPES:
            by_stream.setdefault(envelope.stream_id, []).append(envelope)
    return by_stream


async def unapplied_events(
    store: EventSource, delivered: Sequence[Envelope], applied_version: int
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
