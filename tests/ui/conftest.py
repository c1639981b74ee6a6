"""Fixtures of the browser tests: the seeded API on this module's fresh database, and headless
Chromium (tests/ui/browser_support.py says how)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser_support import CHROMIUM, SCREENSHOTS, Served, require_chromium, seed, served_registry
from playwright.sync_api import Browser, Playwright, sync_playwright


@pytest.fixture(scope="module")
def served(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    require_chromium()
    with served_registry(database_url, tmp_path_factory.mktemp("ui-home")) as running:
        running.facts = seed(running)
        yield running


@pytest.fixture(scope="module")
def playwright(served: Served) -> Iterator[Playwright]:
    """Started after the module's registry: Playwright's sync API keeps an event loop running in
    this thread, and the database fixtures (asyncio.run) must come and go outside it."""
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
    )
    yield launched
    launched.close()


@pytest.fixture(scope="session")
def screenshots() -> Any:
    SCREENSHOTS.mkdir(exist_ok=True)
    return SCREENSHOTS
