"""A model's state at a given version of its stream, for consumers of the event feed: folded onto
the state they remembered last when they can, else folded from the event store (the truth)."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from registrar.contracts.envelope import Envelope
from registrar.domain.state import ModelState, fold
from registrar.projections.ports import EventSource


@dataclass(frozen=True, slots=True)
class _Folded:
    version: int
    state: ModelState | None


class StreamStates:
    """The last state folded for each of the `cache_size` most recently used streams."""

    def __init__(self, store: EventSource, cache_size: int = 10_000) -> None:
        self.store = store
        self.cache_size = cache_size
        self._folded: OrderedDict[str, _Folded] = OrderedDict()

    async def state_at(self, stream_id: str, version: int) -> ModelState | None:
        """The state after the stream's first `version` events (None for 0): the remembered one if
        it is at that version, else folded from the store."""
        if version == 0:
            return None
        cached = self._folded.get(stream_id)
        if cached is not None and cached.version == version:
            return cached.state
        events = await self.store.read_stream(stream_id)
        return fold(None, (e for e in events if e.stream_version <= version))

    async def state_after(self, envelope: Envelope) -> ModelState | None:
        """The state with `envelope` applied, remembered for the stream's next event. Events may
        come again or with gaps (a redelivery, a relay that starts over): the store fills in.

        None if the store does not hold the stream's earlier events (an event of another registry
        sharing the topic)."""
        stream_id, version = envelope.stream_id, envelope.stream_version
        cached = self._folded.get(stream_id)
        if cached is not None and cached.version == version:
            return cached.state  # the event the state was last folded with, delivered again
        before = await self.state_at(stream_id, version - 1)
        if before is None and version > 1:
            return None
        after = fold(before, [envelope])
        self.remember(stream_id, version, after)
        return after

    def remember(self, stream_id: str, version: int, state: ModelState | None) -> None:
        self._folded[stream_id] = _Folded(version, state)
        self._folded.move_to_end(stream_id)
        while len(self._folded) > self.cache_size:
            self._folded.popitem(last=False)

    def forget(self) -> None:
        """Drop every remembered state (e.g. after a rolled back transaction they may be ahead)."""
        self._folded.clear()
