"""A webhook dispatcher for a test, in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

from registrar.registry import Registry
from registrar.webhooks.config import WebhookConfig
from registrar.webhooks.dispatcher import WebhookDispatcher


@contextlib.asynccontextmanager
async def dispatching(
    registry: Registry, config: WebhookConfig, **changes: object
) -> AsyncIterator[WebhookDispatcher]:
    """A dispatcher delivering `registry`'s webhooks until the block ends (a stop like a
    process's: whatever it had not recorded is sent again by the next one)."""
    dispatcher = WebhookDispatcher(registry.store, replace(config, **changes))  # type: ignore[arg-type]
    registry.on_append.append(dispatcher.wake)
    task = asyncio.create_task(dispatcher.run())
    try:
        while not dispatcher.is_leader:
            await asyncio.sleep(0.01)
        yield dispatcher
    finally:
        registry.on_append.remove(dispatcher.wake)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
