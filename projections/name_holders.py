"""Which model held a name at an instant, for read models that meet models by name (a run's
model, a refused attempt's, a version's parent): asked of the store, remembered, and forgotten
whenever a rename or a deletion lets a name go (another model may then take it)."""

from __future__ import annotations

from datetime import datetime

from registrar.contracts.envelope import Envelope
from registrar.projections.ports import EventSource

RELEASING = frozenset({"ModelRenamed", "ModelDeleted"})
"""The events after which a name may pass to another model."""


class NameHolders:
    def __init__(self, store: EventSource, limit: int = 100_000) -> None:
        self.store = store
        self.limit = limit
        self._held: dict[str, str] = {}

    async def at(self, name: str, at: datetime) -> str | None:
        """The stream of the model that held `name` at `at` (else the name's last holder)."""
        known = self._held.get(name)
        if known is None:
            known = await self.store.resolve_name(name, at)
            if known is not None:
                if len(self._held) >= self.limit:
                    self._held.clear()
                self._held[name] = known
        return known

    def seen(self, envelope: Envelope) -> None:
        """Call for each model event applied: one that lets a name go empties the memory."""
        if envelope.type in RELEASING:
            self._held.clear()
