"""The web UI driven in headless Chromium, as its users would: sign in with a token, find a model,
open a version and see its card and fairness chart, approve a request as one approver and see the
stage change after the second, a viewer who cannot approve, the board as of an earlier time, and
the audit trail exported. Each page visited leaves a screenshot in tests/ui/screenshots/.

The tests share one seeded registry and run in file order, as one story: the request is pending
until the two approvers' test, and the board's past view is checked after it has moved."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import HOSTILE, Served
from playwright.sync_api import Browser, BrowserContext, Page, expect

from registrar.contracts.card_document import CARD_SECTIONS

VERSION = "/ui/models/credit-scoring/versions/1"


def sign_in(context: BrowserContext, served: Served, user: str, to: str = "/ui/") -> Page:
    page = context.new_page()
    page.goto(served.url + to)
    expect(page).to_have_url(f"{served.url}/ui/login?next={to.replace('/', '%2F')}")
    page.get_by_label("Access token").fill(served.tokens[user])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-field=user]")).to_have_text(user)
    return page


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    made = browser.new_context(viewport={"width": 1366, "height": 900})
    yield made
    made.close()


def shoot(page: Page, screenshots: Path, name: str) -> None:
    page.screenshot(path=screenshots / f"{name}.png", full_page=True)


def test_signing_in_opens_an_http_only_strict_session_that_expires(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = context.new_page()
    page.goto(served.url + "/")
    expect(page).to_have_url(served.url + "/ui/login?next=%2Fui%2F")
    page.get_by_label("Access token").fill("rgt_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("[data-field=error]")).to_contain_text("unknown or revoked")
    shoot(page, screenshots, "login")
    page.get_by_label("Access token").fill(served.tokens["vera"])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(served.url + "/ui/")
    expect(page.locator("[data-field=role]")).to_have_text("viewer")

    (cookie,) = [c for c in context.cookies() if c["name"] == "registrar_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/ui"
    assert time.time() < cookie["expires"] <= time.time() + 8 * 3600 + 60
    assert served.tokens["vera"] not in cookie["value"]  # sealed: the token is not in it

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(served.url + "/ui/login")
    page.goto(served.url + "/ui/board")
    expect(page).to_have_url(served.url + "/ui/login?next=%2Fui%2Fboard")


def test_finding_a_model_by_name_and_by_tag(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = sign_in(context, served, "vera")
    rows = page.locator("table.catalogue tbody tr[data-model]")
    expect(rows).to_have_count(3)
    shoot(page, screenshots, "catalogue")

    page.get_by_label("Name contains").fill("CREDIT")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_have_attribute("data-model", "credit-scoring")
    expect(row.locator("[data-stage=Staging]")).to_contain_text("v1")
    expect(row.locator("[data-field=owner]")).to_have_text("root")

    page.get_by_label("Name contains").fill("")
    page.get_by_label("Tag").fill("team=payments")
    page.get_by_role("button", name="Search").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-model", "fraud-detector")
    expect(rows.first.locator("[data-field=aliases]")).to_have_text("—")


def test_a_version_page_shows_its_card_chart_artifacts_and_lineage(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = sign_in(context, served, "vera")
    page.get_by_role("link", name="credit-scoring", exact=True).click()
    page.get_by_role("link", name="credit-scoring v1").first.click()
    expect(page).to_have_url(served.url + VERSION)
    expect(page.locator(".summary-bar [data-field=stage]")).to_have_text("Staging")
    expect(page.locator("[data-card-section]")).to_have_count(len(CARD_SECTIONS))
    expect(page.locator("#card-intended_use")).to_contain_text("Pre-screening")
    chart = page.locator("svg[data-field=fairness-chart]")
    expect(chart).to_be_visible()
    expect(chart.locator("rect[fill]")).to_have_count(3 + 2 * 3)  # the legend, then 2 groups
    expect(chart.locator("title").first).to_have_text("Rates by sex")
    expect(
        page.locator("[data-field=lineage-graph] [data-node='dataset:applications@v7']")
    ).to_have_count(1)
    expect(page.locator("[data-profile=documented] [data-field=compliance-status]")).to_have_text(
        "met"
    )
    expect(page.locator("[data-field=pending-request]")).to_contain_text("stage Production")
    shoot(page, screenshots, "version")

    with page.expect_download() as downloading:
        page.get_by_role("link", name="model/MLmodel").click()
    assert Path(downloading.value.path()).read_bytes() == b"flavors: {}\n"


def test_a_description_holding_a_script_renders_as_text(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = sign_in(context, served, "vera", "/ui/models/credit-scoring")
    expect(page.locator("[data-field=description]")).to_have_text(HOSTILE)
    assert page.evaluate("window.pwned") is None
    assert (
        page.locator("[data-field=description] script, [data-field=description] img").count() == 0
    )
    shoot(page, screenshots, "model")


def test_a_viewer_sees_no_decision_and_the_server_refuses_one_anyway(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = sign_in(context, served, "vera", "/ui/approvals")
    request = page.locator(f"[data-request='{served.facts['request_id']}']")
    expect(request.locator("[data-field=request-state]")).to_have_text("pending")
    expect(request.locator("[data-field=approvals]")).to_contain_text("0 of 2")
    expect(request.get_by_role("button")).to_have_count(0)
    expect(request.locator("[data-field=why-not]")).to_contain_text("contributor role")
    shoot(page, screenshots, "approvals-viewer")

    token = page.locator("input[name=csrf_token]").first.get_attribute("value")
    forged = page.request.post(
        f"{served.url}/ui/approvals/{served.facts['request_id']}/approve",
        form={"csrf_token": token or "", "comment": "let me"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert "viewer" in forged.text()
    with served.client() as root:
        still = root.get(f"/v1/transition-requests/{served.facts['request_id']}").json()
        assert still["approvals"] == []
        assert refusal_recorded(root, "vera", "/approve")


def refusal_recorded(client: httpx.Client, actor: str, path_part: str) -> bool:
    """Whether the audit trail shows `actor` refused on a path holding `path_part` (refusals are
    recorded off the request's path: wait a little for them)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = client.get("/v1/audit", params={"actor": actor, "action": "AccessRefused"})
        if any(path_part in row["summary"] for row in answer.json()["events"]):
            return True
        time.sleep(0.2)
    return False


def test_a_form_without_the_sessions_csrf_token_is_refused(
    context: BrowserContext, served: Served
) -> None:
    page = sign_in(context, served, "alice", "/ui/approvals")
    forged = page.request.post(
        f"{served.url}/ui/approvals/{served.facts['request_id']}/approve",
        form={"comment": "no token"},
        max_redirects=0,
    )
    assert forged.status == 403 and "CSRF" in forged.text()
    with served.client() as root:
        assert (
            root.get(f"/v1/transition-requests/{served.facts['request_id']}").json()["approvals"]
            == []
        )


def test_a_contributor_sees_why_they_cannot_decide(context: BrowserContext, served: Served) -> None:
    page = sign_in(context, served, "carl", "/ui/approvals")
    request = page.locator(f"[data-request='{served.facts['request_id']}']")
    expect(request.locator("[data-field=why-not]")).to_contain_text("needs the approver role")
    expect(request.get_by_role("button")).to_have_count(0)


def test_two_approvers_approve_and_the_version_moves_to_production(
    browser: Browser, served: Served, screenshots: Path
) -> None:
    request_id = served.facts["request_id"]
    for approver, after in (("alice", "1 of 2"), ("bob", "applied")):
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        page = sign_in(context, served, approver, "/ui/approvals")
        request = page.locator(f"[data-request='{request_id}']")
        expect(request.locator("table.gates")).to_contain_text("metrics.auc >= 0.8")
        request.get_by_label("Comment").fill(f"Looks right to {approver}.")
        if approver == "alice":
            shoot(page, screenshots, "approvals")
        request.get_by_role("button", name="Approve").click()
        expect(page.locator("[data-field=notice]")).to_contain_text(after)
        page.goto(served.url + VERSION)
        stage = "Staging" if approver == "alice" else "Production"
        expect(page.locator(".summary-bar [data-field=stage]")).to_have_text(stage)
        context.close()

    with served.client() as root:
        applied = root.get(f"/v1/transition-requests/{request_id}").json()
    assert applied["state"] == "applied"
    assert [a["by"] for a in applied["approvals"]] == ["alice", "bob"]


def test_the_board_as_of_an_earlier_time_shows_the_old_stage(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = sign_in(context, served, "vera", "/ui/board")
    production = page.locator("[data-column='stage:Production']")
    card = "[data-model=credit-scoring][data-version='1']"
    expect(production.locator(card)).to_have_count(1)
    shoot(page, screenshots, "board")

    before = served.facts["before_request"].strftime("%Y-%m-%dT%H:%M:%S")
    page.get_by_label("View as of").fill(before)
    page.get_by_role("button", name="View", exact=True).click()
    expect(page.locator("[data-field=as-of]")).to_be_visible()
    expect(page.locator(".past-banner")).to_contain_text("Past view")
    expect(production.locator(card)).to_have_count(0)
    expect(page.locator("[data-column='stage:Staging']").locator(card)).to_have_count(1)
    shoot(page, screenshots, "board-past")

    page.locator(".past-banner").get_by_role("link", name="Back to now").click()
    expect(production.locator(card)).to_have_count(1)
    page.goto(f"{served.url}{VERSION}?as_of={before}")
    expect(page.locator(".summary-bar [data-field=stage]")).to_have_text("Staging")


def test_the_audit_trail_filters_verifies_and_exports(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = sign_in(context, served, "vera", "/ui/audit")
    page.get_by_label("Actor").fill("alice")
    page.get_by_role("button", name="Filter").click()
    rows = page.locator("table.audit tbody tr[data-position]")
    expect(rows.first).to_be_visible()
    assert set(rows.evaluate_all("rows => rows.map(r => r.children[2].textContent)")) == {"alice"}
    page.get_by_role("button", name="Verify now").click()
    expect(page.locator("[data-field=chain-status]")).to_have_attribute("data-intact", "yes")
    shoot(page, screenshots, "audit")

    with page.expect_download() as downloading:
        page.locator("[data-field=export-csv]").click()
    exported = list(csv.DictReader(io.StringIO(Path(downloading.value.path()).read_text())))
    assert exported and {row["actor"] for row in exported} == {"alice"}
    assert "TransitionApproved" in {row["action"] for row in exported}


def test_the_lineage_explorer_shows_a_datasets_graph_and_impact(
    context: BrowserContext, served: Served, screenshots: Path
) -> None:
    page = sign_in(context, served, "vera", "/ui/lineage")
    page.get_by_label("Node", exact=True).fill("dataset:applications@v7")
    page.get_by_label("Direction").select_option("downstream")
    page.get_by_role("button", name="Show").click()
    graph = page.locator("svg[data-field=lineage-graph]")
    expect(graph.locator("[data-node='version:credit-scoring/1']")).to_have_count(1)
    expect(page.locator("[data-field=impact]")).to_contain_text("credit-scoring v1")
    expect(page.locator("[data-field=in-production]")).to_have_text("1")
    shoot(page, screenshots, "lineage")
    graph.locator("[data-node='version:credit-scoring/1']").click()
    expect(page.locator("[data-field=node]")).to_have_text("version:credit-scoring/1")
