"""Signing in and out of the web UI: /ui/login takes a bearer token (the one the API and the CLI
use) and opens a session on it; /ui/logout ends it. `/` and `/ui` lead to the catalogue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse
from starlette.responses import Response

from registrar.access.guard import AccessGuard, NotAuthenticated
from registrar.access.permissions import Action, Requirement
from registrar.access.principal import ANONYMOUS, PRINCIPAL_SCOPE_KEY
from registrar.access.tokens import token_hash
from registrar.ui.forms import checked_form
from registrar.ui.rendering import UiRoute, page
from registrar.ui.sessions import (
    drop_cookie,
    session_box,
    session_of,
    set_cookie,
)

router = APIRouter(route_class=UiRoute, include_in_schema=False)

HOME = "/ui/"


def safe_next(wanted: str | None) -> str:
    """Where to go after signing in: a page of this UI, never another site."""
    if (
        wanted
        and (wanted == "/ui" or wanted.startswith("/ui/"))
        and "//" not in wanted
        and "\\" not in wanted
        and not any(ord(c) < 32 for c in wanted)
    ):
        return wanted
    return HOME


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=307)


@router.get("/ui")
async def ui_root() -> RedirectResponse:
    return RedirectResponse(HOME, status_code=307)


@router.get("/ui/login")
async def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=4000)] = None
) -> Response:
    session = session_of(request)
    guard: AccessGuard | None = request.app.state.access_guard
    signed_in_as = None
    if guard is not None and session is not None and session.token_hash is not None:
        principal = guard.cache.principal(session.token_hash)
        signed_in_as = principal.user if principal is not None else None
    context = {"next": safe_next(next), "error": "", "signed_in_as": signed_in_as}
    return page(request, "login.html", {**context, "section": "login"})


@router.post("/ui/login")
async def login(request: Request) -> Response:
    fields = await checked_form(request)
    guard: AccessGuard | None = request.app.state.access_guard
    destination = safe_next(fields.get("next"))
    if guard is None:  # authentication is off: there is nothing to sign in to
        return RedirectResponse(destination, status_code=303)
    token = fields.get("token", "").strip()
    try:
        principal = guard.authenticate(f"Bearer {token}" if token else None)
    except NotAuthenticated as refused:
        reason = "no token given" if not token else refused.reason
        guard.record_refusal(ANONYMOUS, Requirement(Action.READ), reason, "POST", "/ui/login", 401)
        context = {"next": destination, "error": f"Not signed in: {reason}.", "signed_in_as": None}
        return page(request, "login.html", {**context, "section": "login"}, status=401)
    session = session_box(request).new(token_hash(token))
    request.scope[PRINCIPAL_SCOPE_KEY] = principal
    response = RedirectResponse(destination, status_code=303)
    set_cookie(request, response, session)
    return response


@router.post("/ui/logout")
async def logout(request: Request) -> Response:
    await checked_form(request)
    session = session_of(request)
    if session is not None:
        session_box(request).end(session)
    response = RedirectResponse("/ui/login", status_code=303)
    drop_cookie(request, response)
    return response
