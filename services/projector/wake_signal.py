"""A wake-up call for a polling loop: it sleeps until woken or until its poll interval passes."""

from __future__ import annotations

import asyncio


class WakeSignal:
    def __init__(self) -> None:
        self._event = asyncio.Event()

    def wake(self) -> None:
        self._event.set()

    async def sleep(self, seconds: float) -> None:
        """Return when woken (since the last sleep) or after `seconds`, whichever comes first.

        asyncio.timeout, not asyncio.wait_for: on Python 3.11, wait_for can swallow a
        cancellation that arrives as the wait completes, and the loop then never stops."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            pass
        self._event.clear()
