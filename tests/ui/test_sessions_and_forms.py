"""The web UI over HTTP, in process (no browser): the root's redirect, the dev user when
authentication is off, sessions (sealed, ended by sign-out and by revoking the token, a forged one
refused and recorded), CSRF on every form, escaping, the security headers, and the UI's entries in
the permission table."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from uuid import uuid4

import httpx
import pytest
from sqlalchemy import text

from registrar.access.administration import AccessAdministration
from registrar.access.guard import AccessGuard
from registrar.access.permissions import Action, requirement
from registrar.api.app import create_app
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role
from registrar.registry import Registry

pytestmark = pytest.mark.asyncio(loop_scope="session")

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
POLICY = {"stages": {"Production": {"approvals": 1, "approver_role": "approver"}}}


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


async def pending_request(api: httpx.AsyncClient, headers: dict[str, str]) -> tuple[str, str]:
    """A new model whose version 1 waits for one approval to reach Production: (model, id)."""
    name = f"ui-{uuid4().hex[:8]}"
    description = "<script>alert('x')</script> & friends"
    made = await api.post(
        "/v1/models", json={"name": name, "description": description}, headers=headers
    )
    assert made.status_code == 201, made.text
    version = await api.post(
        f"/v1/models/{name}/versions", json={"source": "s3://m"}, headers=headers
    )
    assert version.status_code == 201, version.text
    assert (await api.put("/v1/policies", json=POLICY, headers=headers)).status_code == 200
    asked = await api.post(
        f"/v1/models/{name}/versions/1/transition-requests",
        json={"stage": "Production"},
        headers={**headers, "X-Registrar-Actor": "carl"},
    )
    assert asked.status_code == 201, asked.text
    return name, asked.json()["request_id"]


# Authentication off (loopback dev mode) ----------------------------------------------------------


async def test_the_root_leads_to_the_ui(api: httpx.AsyncClient) -> None:
    answer = await api.get("/")
    assert answer.status_code == 307 and answer.headers["location"] == "/ui/"


async def test_without_authentication_the_ui_acts_as_the_dev_user(api: httpx.AsyncClient) -> None:
    page = await api.get("/ui/")
    assert page.status_code == 200
    assert 'data-field="user">anonymous<' in page.text and 'data-field="role">admin<' in page.text
    cookie = page.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is Secure


async def test_a_form_without_its_csrf_token_changes_nothing(api: httpx.AsyncClient) -> None:
    name, request_id = await pending_request(api, {})
    async with httpx.AsyncClient(transport=api._transport, base_url=str(api.base_url)) as browser:
        inbox = await browser.get("/ui/approvals")
        forged = await browser.post(
            f"/ui/approvals/{request_id}/approve", data={"comment": "no token"}
        )
        assert forged.status_code == 403 and "CSRF" in forged.text
        wrong = await browser.post(
            f"/ui/approvals/{request_id}/approve", data={"csrf_token": "guess", "comment": "x"}
        )
        assert wrong.status_code == 403
        assert (await api.get(f"/v1/transition-requests/{request_id}")).json()["approvals"] == []

        done = await browser.post(
            f"/ui/approvals/{request_id}/approve", data={"csrf_token": csrf_of(inbox)}
        )
        assert done.status_code == 303
    applied = (await api.get(f"/v1/transition-requests/{request_id}")).json()
    assert applied["state"] == "applied" and applied["approvals"][0]["by"] == "anonymous"
    version = (await api.get(f"/v1/models/{name}/versions/1")).json()
    assert version["stage"] == "Production"


async def test_pages_escape_what_users_wrote_and_load_no_script(api: httpx.AsyncClient) -> None:
    name, _ = await pending_request(api, {})
    for path in ("/ui/", f"/ui/models/{name}", "/ui/approvals", f"/ui/audit?model={name}"):
        page = await api.get(path)
        assert page.status_code == 200, path
        assert "<script" not in page.text.lower(), path
    model_page = await api.get(f"/ui/models/{name}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; friends" in model_page.text


async def test_every_page_sends_a_strict_content_security_policy(api: httpx.AsyncClient) -> None:
    for path in ("/ui/", "/ui/board", "/ui/login", "/ui/models/no-such-model"):
        headers = (await api.get(path)).headers
        assert "script-src 'none'" in headers["content-security-policy"], path
        assert "default-src 'self'" in headers["content-security-policy"], path
        assert headers["x-frame-options"] == "DENY"


async def test_a_refusal_is_a_page_saying_what_was_wrong(api: httpx.AsyncClient) -> None:
    missing = await api.get("/ui/models/no-such-model")
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert "no model named &#39;no-such-model&#39;" in missing.text
    unknown = await api.get("/ui/no/such/page")
    assert unknown.status_code == 404 and "there is no page /ui/no/such/page" in unknown.text
    bad = await api.get("/ui/board?as_of=yesterday")
    assert bad.status_code == 422 and "as_of" in bad.text and "RFC 3339" in bad.text


async def test_the_ui_paths_are_in_the_permission_table() -> None:
    assert requirement("GET", "/") is None
    assert requirement("GET", "/ui/login") is None and requirement("POST", "/ui/login") is None
    assert requirement("GET", "/ui/static/ui.css") is None
    for path in ("/ui/", "/ui/board", "/ui/models/m/versions/1", "/ui/audit/export"):
        assert requirement("GET", path).action is Action.READ  # type: ignore[union-attr]
    approve = requirement("POST", "/ui/approvals/r-1/approve")
    assert approve is not None and approve.action is Action.CONTRIBUTE
    assert requirement("POST", "/ui/approvals/r-1/reject").action is Action.CONTRIBUTE  # type: ignore[union-attr]
    assert requirement("POST", "/ui/anything-else").action is Action.ADMINISTER  # type: ignore[union-attr]


# Authentication on -------------------------------------------------------------------------------


@dataclass
class Secured:
    registry: Registry
    guard: AccessGuard
    client: httpx.AsyncClient
    admin: str


@pytest.fixture(scope="module")
async def secured(database_url: str) -> AsyncIterator[Secured]:
    app = create_app(database_url, auth_required=True)
    guard: AccessGuard = app.state.access_guard
    async with app.router.lifespan_context(app):
        registry: Registry = app.state.registry
        first = await AccessAdministration(registry.store).issue_token(
            "root", Role.ADMIN, CommandMeta("cli:test")
        )
        await guard.cache.reload()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            yield Secured(registry, guard, client, first.token)


async def _token(secured: Secured, user: str, role: Role) -> tuple[str, str]:
    made = await secured.client.post(
        "/v1/admin/tokens",
        json={"user": user, "role": role.value},
        headers={"Authorization": f"Bearer {secured.admin}"},
    )
    assert made.status_code == 201, made.text
    return made.json()["token"], made.json()["token_id"]


async def _signed_in(secured: Secured, token: str, next_page: str = "/ui/") -> httpx.AsyncClient:
    browser = httpx.AsyncClient(transport=secured.client._transport, base_url="http://registrar")
    form = await browser.get("/ui/login")
    answer = await browser.post(
        "/ui/login", data={"csrf_token": csrf_of(form), "token": token, "next": next_page}
    )
    assert answer.status_code == 303, answer.text
    return browser


async def _refusals(secured: Secured) -> list[dict[str, object]]:
    await secured.guard.refusals.flush()
    async with secured.registry.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT payload::jsonb AS p FROM events WHERE type = 'AccessRefused'")
        )
        return [r.p for r in rows]


async def test_without_a_session_a_page_sends_the_browser_to_sign_in(secured: Secured) -> None:
    answer = await secured.client.get("/ui/board?as_of=2026-01-01T00:00")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fboard%3Fas_of%3D2026-01-01T00%3A00"
    assert (await secured.client.get("/ui/static/ui.css")).status_code == 200
    assert (await secured.client.get("/ui/login")).status_code == 200


async def test_the_session_cookie_never_reaches_the_api(secured: Secured) -> None:
    token, _ = await _token(secured, "vic", Role.VIEWER)
    browser = await _signed_in(secured, token)
    (cookie,) = browser.cookies.jar
    assert cookie.path == "/ui" and token not in (cookie.value or "")
    assert (await browser.get("/ui/")).status_code == 200
    # Even sent by hand to the API, a session cookie authenticates nothing there.
    api_call = await secured.client.get(
        "/v1/models", headers={"Cookie": f"registrar_session={cookie.value}"}
    )
    assert api_call.status_code == 401
    await browser.aclose()


async def test_signing_in_goes_back_only_to_a_page_of_the_ui(secured: Secured) -> None:
    token, _ = await _token(secured, "val", Role.VIEWER)
    for wanted, landing in (
        ("/ui/board", "/ui/board"),
        ("https://elsewhere.example/", "/ui/"),
        ("//elsewhere.example/ui/", "/ui/"),
        ("/v1/models", "/ui/"),
    ):
        browser = httpx.AsyncClient(transport=secured.client._transport, base_url="http://r")
        form = await browser.get("/ui/login")
        answer = await browser.post(
            "/ui/login", data={"csrf_token": csrf_of(form), "token": token, "next": wanted}
        )
        assert answer.headers["location"] == landing, wanted
        await browser.aclose()


async def test_a_wrong_token_is_refused_and_recorded(secured: Secured) -> None:
    browser = httpx.AsyncClient(transport=secured.client._transport, base_url="http://r")
    form = await browser.get("/ui/login")
    answer = await browser.post(
        "/ui/login", data={"csrf_token": csrf_of(form), "token": "rgt_wrong", "next": "/ui/"}
    )
    assert answer.status_code == 401 and "unknown or revoked" in answer.text
    assert any(r["path"] == "/ui/login" for r in await _refusals(secured))
    await browser.aclose()


async def test_revoking_the_token_ends_its_sessions(secured: Secured) -> None:
    token, token_id = await _token(secured, "rita", Role.APPROVER)
    browser = await _signed_in(secured, token)
    assert (await browser.get("/ui/approvals")).status_code == 200
    revoked = await secured.client.delete(
        f"/v1/admin/tokens/{token_id}", headers={"Authorization": f"Bearer {secured.admin}"}
    )
    assert revoked.status_code in (200, 204), revoked.text
    answer = await browser.get("/ui/approvals")
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
    await browser.aclose()


async def test_signing_out_ends_the_session_here_at_once(secured: Secured) -> None:
    token, _ = await _token(secured, "sam", Role.VIEWER)
    browser = await _signed_in(secured, token)
    page = await browser.get("/ui/")
    (cookie,) = browser.cookies.jar
    kept = cookie.value
    out = await browser.post("/ui/logout", data={"csrf_token": csrf_of(page)})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    # A copy of the old cookie, replayed, opens nothing.
    replayed = await secured.client.get("/ui/", headers={"Cookie": f"registrar_session={kept}"})
    assert replayed.status_code == 303
    await browser.aclose()


async def test_a_forged_session_cookie_is_refused_and_recorded(secured: Secured) -> None:
    answer = await secured.client.get(
        "/ui/approvals", headers={"Cookie": "registrar_session=gAAAAABforged"}
    )
    assert answer.status_code == 303
    assert any(
        r["path"] == "/ui/approvals" and r["status"] == 401 for r in await _refusals(secured)
    )


async def test_a_viewer_is_refused_a_decision_with_a_page_and_a_record(secured: Secured) -> None:
    token, _ = await _token(secured, "vince", Role.VIEWER)
    browser = await _signed_in(secured, token)
    page = await browser.get("/ui/approvals")
    answer = await browser.post(
        "/ui/approvals/any-request/approve", data={"csrf_token": csrf_of(page)}
    )
    assert answer.status_code == 403 and "text/html" in answer.headers["content-type"]
    assert "contribute needs the contributor role; vince has viewer" in answer.text
    assert any(r["actor"] == "vince" and r["status"] == 403 for r in await _refusals(secured))
    await browser.aclose()


async def test_the_board_as_of_an_earlier_time_shows_the_requests_pending_then(
    api: httpx.AsyncClient,
) -> None:
    name = f"board-{uuid4().hex[:8]}"
    await api.post("/v1/models", json={"name": name})
    await api.post(f"/v1/models/{name}/versions", json={"source": "s3://m/1"})
    await api.put("/v1/policies", json={"stages": {"Production": {"approvals": 1}}})
    try:
        request = await api.post(
            f"/v1/models/{name}/versions/1/transition-requests",
            json={"stage": "Production"},
            headers={"X-Registrar-Actor": "rita"},
        )
        pending_then = request.json()["updated_at"]
        approved = await api.post(
            f"/v1/transition-requests/{request.json()['request_id']}/approve",
            json={},
            headers={"X-Registrar-Actor": "ann"},
        )
        assert approved.json()["state"] == "applied"
        caught_up = {"min_position": approved.json()["position"]}
        assert (await api.get("/v1/approvals", params=caught_up)).status_code == 200

        then = await api.get("/ui/board", params={"as_of": pending_then})
        now = await api.get("/ui/board")

        marker = f'data-field="pending" data-model="{name}"'
        assert marker in then.text and marker not in now.text
    finally:
        await api.put("/v1/policies", json={})
