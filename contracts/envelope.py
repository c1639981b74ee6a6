"""The event envelope: identity, order, time, actor, causality and hash chain around a payload."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import Field

from registrar.contracts.codec import canonical
from registrar.contracts.values import Frozen

GENESIS_HASH = "0" * 64
"""The `prev_hash` of a stream's first event."""


class Envelope(Frozen):
    event_id: UUID = Field(description="UUIDv7: unique, time-ordered; appends are idempotent on it")
    stream_id: str = Field(description="The model's stream id (stable across renames)")
    stream_version: int = Field(ge=1, description="1, 2, 3... within the stream, gapless")
    position: int | None = Field(
        default=None, description="Global position, assigned by the store when appended"
    )
    type: str
    schema_version: int = 1
    recorded_at: datetime
    actor: str
    causation_id: UUID | None = None
    correlation_id: UUID | None = None
    payload: dict[str, Any]
    prev_hash: str = Field(description="hash of the stream's previous event, GENESIS_HASH first")
    hash: str = Field(description="sha256(prev_hash || canonical bytes of this event), hex")

    def hashed_fields(self) -> dict[str, Any]:
        """The fields the chain covers: everything but the store-assigned position and the hash."""
        return self.model_dump(mode="json", exclude={"position", "hash", "prev_hash"})


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """hash = sha256(prev_hash || canonical(fields)), as lowercase hex."""
    digest = hashlib.sha256(bytes.fromhex(prev_hash))
    digest.update(canonical(fields))
    return digest.hexdigest()
