"""Every page of the web UI checked by axe-core (vendored from npm) in headless Chromium: no
serious or critical violation, signed out and signed in, now and in a past view; usable from the
keyboard; nothing loaded from another origin; and laid out for a laptop and for a phone. Each page
leaves a screenshot (laptop and phone) in tests/ui/screenshots/, and axe's findings in
axe-report.json beside them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import AXE, Served
from playwright.sync_api import Browser, BrowserContext, Page, expect

LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
SEVERE = ("serious", "critical")
FOCUSED = (
    "(e => e.tagName + ':' + (e.tagName === 'BUTTON' ? e.textContent : e.name))"
    "(document.activeElement)"
)
"""What has the keyboard focus, e.g. BUTTON:Approve or TEXTAREA:comment."""


def pages(served: Served) -> dict[str, str]:
    before = served.facts["before_request"].strftime("%Y-%m-%dT%H:%M:%S")
    version = "/ui/models/credit-scoring/versions/1"
    return {
        "catalogue": "/ui/",
        "catalogue-search": "/ui/?q=fraud&tag=team",
        "catalogue-past": f"/ui/?as_of={before}",
        "board": "/ui/board",
        "board-past": f"/ui/board?as_of={before}",
        "model": "/ui/models/credit-scoring",
        "version": version,
        "version-past": f"{version}?as_of={before}",
        "approvals": "/ui/approvals",
        "lineage-empty": "/ui/lineage",
        "lineage": "/ui/lineage?node=dataset%3Aapplications%40v7&depth=3",
        "audit": "/ui/audit?verify=true",
        "not-found": "/ui/models/no-such-model",
    }


@pytest.fixture(scope="module")
def signed_in(browser: Browser, served: Served) -> Iterator[BrowserContext]:
    """An approver's session (they see every control: the decision forms too); CSP bypassed so
    that axe can be injected into the page."""
    context = browser.new_context(viewport=LAPTOP, bypass_csp=True)
    page = context.new_page()
    page.goto(served.url + "/ui/login")
    page.get_by_label("Access token").fill(served.tokens["alice"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-field=user]")).to_have_text("alice")
    page.close()
    yield context
    context.close()


@pytest.fixture(scope="module")
def report(screenshots: Path) -> Iterator[dict[str, Any]]:
    found: dict[str, Any] = {}
    yield found
    (screenshots / "axe-report.json").write_text(json.dumps(found, indent=2, sort_keys=True))


def axe(page: Page) -> list[dict[str, Any]]:
    """axe-core's violations on `page` (WCAG 2.x A and AA rules, and best practices)."""
    page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
    ]


def _check(page: Page, name: str, report: dict[str, Any], screenshots: Path) -> None:
    violations = axe(page)
    report[name] = {"violations": violations}
    page.screenshot(path=screenshots / f"{name}.png", full_page=True)
    severe = [v for v in violations if v["impact"] in SEVERE]
    assert not severe, json.dumps(severe, indent=2)


@pytest.mark.parametrize(
    "name",
    [
        "catalogue",
        "catalogue-search",
        "catalogue-past",
        "board",
        "board-past",
        "model",
        "version",
        "version-past",
        "approvals",
        "lineage-empty",
        "lineage",
        "audit",
        "not-found",
    ],
)
def test_axe_finds_no_serious_or_critical_violation(
    name: str,
    signed_in: BrowserContext,
    served: Served,
    report: dict[str, Any],
    screenshots: Path,
) -> None:
    page = signed_in.new_page()
    response = page.goto(served.url + pages(served)[name])
    assert response is not None and response.status == (404 if name == "not-found" else 200)
    _check(page, name, report, screenshots)
    page.close()


def test_the_sign_in_page_passes_axe(
    browser: Browser, served: Served, report: dict[str, Any], screenshots: Path
) -> None:
    context = browser.new_context(viewport=LAPTOP, bypass_csp=True)
    page = context.new_page()
    page.goto(served.url + "/ui/login")
    _check(page, "login-signed-out", report, screenshots)
    context.close()


def test_every_page_loads_nothing_from_another_origin(
    browser: Browser, signed_in: BrowserContext, served: Served
) -> None:
    fetched: list[str] = []
    page = signed_in.new_page()
    page.on("request", lambda request: fetched.append(request.url))
    for path in pages(served).values():
        page.goto(served.url + path)
    page.close()
    foreign = [url for url in fetched if not url.startswith(served.url)]
    assert not foreign and any(url.endswith("/ui/static/ui.css") for url in fetched)


def test_the_pages_work_from_the_keyboard(signed_in: BrowserContext, served: Served) -> None:
    page = signed_in.new_page()
    page.goto(served.url + "/ui/approvals")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    # From the main content, Tab reaches the decision form's fields and buttons in order.
    reached = []
    for _ in range(12):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(FOCUSED))
    assert any(r.startswith("TEXTAREA") for r in reached)
    assert "BUTTON:Approve" in reached and "BUTTON:Reject" in reached
    page.close()


@pytest.mark.parametrize("name", ["catalogue", "board", "version", "approvals", "audit"])
def test_a_phone_screen_shows_each_page_without_sideways_scrolling(
    name: str, browser: Browser, signed_in: BrowserContext, served: Served, screenshots: Path
) -> None:
    context = browser.new_context(
        viewport=PHONE, storage_state=signed_in.storage_state(), is_mobile=True
    )
    page = context.new_page()
    page.goto(served.url + pages(served)[name])
    page.screenshot(path=screenshots / f"phone-{name}.png", full_page=True)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{name} is {width}px wide on a {PHONE['width']}px screen"
    context.close()
