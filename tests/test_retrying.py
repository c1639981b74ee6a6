"""The one way to try again: pauses grow to a cap, contention pauses are spread at random, and the
append loop tries again after a concurrent append and gives up with a Conflict that says so."""

from __future__ import annotations

import logging

import pytest

from registrar.domain.errors import Conflict
from registrar.retrying import CONTENTION, OUTAGE, Backoff, appended_with_retries
from registrar.store.event_store import ConcurrencyConflict

log = logging.getLogger("test")


def test_an_outage_pause_doubles_up_to_its_cap() -> None:
    pauses = [OUTAGE.pause(attempt) for attempt in range(1, 12)]
    assert pauses[:4] == [0.5, 1.0, 2.0, 4.0]
    assert max(pauses) == OUTAGE.cap == pauses[-1]


def test_a_contention_pause_is_spread_below_its_delay() -> None:
    pauses = [CONTENTION.pause(3) for _ in range(200)]
    assert all(0 <= pause <= 0.008 for pause in pauses)
    assert len(set(pauses)) > 100, "spread at random, so writers do not collide again"
    assert Backoff(first=1.0, cap=2.0, spread=True).pause(10) <= 2.0


async def test_an_append_refused_by_a_concurrent_one_is_tried_again() -> None:
    tries = []

    async def once() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise ConcurrencyConflict("moved on")
        return "appended"

    assert await appended_with_retries(once, what="stream s", log=log) == "appended"
    assert len(tries) == 3


async def test_an_append_always_refused_gives_up_with_a_conflict_saying_so() -> None:
    tries = []

    async def once() -> None:
        tries.append(1)
        raise ConcurrencyConflict("moved on")

    with pytest.raises(Conflict, match="stream s is being changed by many writers at once"):
        await appended_with_retries(once, what="stream s", log=log, attempts=4)
    assert len(tries) == 4
