"""The web UI's door, with authentication on: an ASGI middleware just outside the API's access
control that, on the UI's paths only, takes the session cookie in place of a bearer token. The
cookie's token hash is looked up in the AccessGuard's token cache (a revoked token ends its
sessions), and what the request needs comes from the one permission table; a browser without a
session is sent to the sign-in page, and a refusal is an HTML page, recorded like the API's.
Access control then checks the same principal again, as for any request."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from registrar.access.guard import AccessGuard
from registrar.access.permissions import Requirement, requirement
from registrar.access.principal import ANONYMOUS, PRINCIPAL_SCOPE_KEY
from registrar.ui.rendering import error_page
from registrar.ui.sessions import COOKIE, SESSION_SCOPE_KEY, SessionBox

UI_PREFIX = "/ui"


def is_ui_path(path: str) -> bool:
    return path == UI_PREFIX or path.startswith(UI_PREFIX + "/")


def sign_in_url(scope: Scope) -> str:
    """The sign-in page, sending the browser back to the page it asked for (a GET) afterwards."""
    if scope["method"] != "GET":
        return "/ui/login"
    wanted = scope["path"]
    if scope.get("query_string"):
        wanted += "?" + scope["query_string"].decode("latin-1")
    return "/ui/login?" + urlencode({"next": wanted})


class SessionDoor:
    def __init__(self, app: ASGIApp, guard: AccessGuard, box: SessionBox) -> None:
        self.app = app
        self.guard = guard
        self.box = box

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_ui_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        need = requirement(scope["method"], scope["path"])
        if need is None:  # the sign-in page and the style sheet
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        cookie = request.cookies.get(COOKIE)
        session = self.box.open(cookie)
        principal = None
        if session is not None and session.token_hash is not None:
            principal = self.guard.cache.principal(session.token_hash)
        if principal is None:
            if cookie and (session is None or session.signed_in):
                # A session that was (forged, expired, signed out of, or its token revoked);
                # a browser that never signed in is only shown the way to.
                reason = "the UI session is invalid or has ended (sign in again)"
                self._record(scope, ANONYMOUS, need, reason, 401)
            await RedirectResponse(sign_in_url(scope), status_code=303)(scope, receive, send)
            return
        decision = await self.guard.authorize(principal, need)
        scope[SESSION_SCOPE_KEY] = session
        if not decision.allowed:
            self._record(scope, principal.user, need, decision.reason, 403)
            scope[PRINCIPAL_SCOPE_KEY] = principal  # the refusal page says who is signed in
            await error_page(request, 403, decision.reason)(scope, receive, send)
            return
        scope[PRINCIPAL_SCOPE_KEY] = principal
        await self.app(scope, receive, send)

    def _record(
        self, scope: Scope, actor: str, need: Requirement, reason: str, status: int
    ) -> None:
        self.guard.record_refusal(actor, need, reason, scope["method"], scope["path"], status)
