"""Time-ordered identifiers (UUIDv7, RFC 9562) for events, commands and model streams."""

from __future__ import annotations

import hashlib
import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A UUIDv7: 48 bits of Unix milliseconds, then random bits, so ids sort by creation time."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return uuid.UUID(int=value)


def derived_event_id(command_id: uuid.UUID, index: int) -> uuid.UUID:
    """The id of the `index`-th event a command produces: deterministic, so a retried command
    (same command id) yields the same event ids and the store's idempotent append writes it once;
    and still time-ordered, since it keeps the command id's UUIDv7 timestamp."""
    digest = int.from_bytes(
        hashlib.sha256(command_id.bytes + index.to_bytes(4, "big")).digest()[:10], "big"
    )
    value = (command_id.int >> 80) << 80  # the 48-bit timestamp
    value |= 0x7 << 76
    value |= ((digest >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= digest & ((1 << 62) - 1)
    return uuid.UUID(int=value)
