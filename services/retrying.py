"""One way to try again, so a fault behaves the same on every path: how long to pause before the
next try (exponential and capped; spread at random where writers contend), and the loop every
writer that appends to a stream outside the command handler runs (read, decide, append, and on a
concurrent append, again)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from registrar.domain.errors import Conflict
from registrar.store.event_store import ConcurrencyConflict

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float
    """Seconds before the second try."""
    cap: float
    """No pause is longer."""
    spread: bool = False
    """Pause a random time up to the delay (full jitter), so contending writers do not collide
    again at the same instant."""

    def pause(self, attempt: int) -> float:
        """Seconds to wait after try number `attempt` (from 1) failed."""
        delay = min(self.cap, self.first * 2 ** max(0, attempt - 1))
        return random.uniform(0, delay) if self.spread else delay


CONTENTION = Backoff(first=0.002, cap=0.1, spread=True)
"""Another writer appended to the same stream first: read what it wrote and decide again soon."""
OUTAGE = Backoff(first=0.5, cap=30.0)
"""The database or the broker is away, or a batch failed: look again, less and less often."""
MAX_APPEND_ATTEMPTS = 20


async def appended_with_retries(
    try_once: Callable[[], Awaitable[T]],
    *,
    what: str,
    log: logging.Logger,
    attempts: int = MAX_APPEND_ATTEMPTS,
) -> T:
    """Run `try_once` (read, decide, append) until it is not refused by a concurrent append to
    the same stream, pausing CONTENTION between tries; after `attempts`, refuse with Conflict."""
    for attempt in range(1, attempts + 1):
        try:
            return await try_once()
        except ConcurrencyConflict:
            log.debug("%s: a concurrent append came first (try %d); trying again", what, attempt)
            if attempt < attempts:
                await asyncio.sleep(CONTENTION.pause(attempt))
    raise Conflict(
        f"{what} is being changed by many writers at once; gave up after {attempts}"
        " tries, retry later"
    )
