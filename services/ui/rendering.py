"""Rendering the web UI's pages: one Jinja2 environment over templates/ (autoescaped: every value
a user wrote is text), the context every page shares (who is signed in, the session's CSRF token,
the time-travel control), the security headers of every page, and the route class that turns a
refusal into an HTML page instead of the API's JSON error."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.responses import Response

from registrar.access.principal import ANONYMOUS, PRINCIPAL_SCOPE_KEY, Principal
from registrar.api.card_rendering import shown
from registrar.contracts.values import Role
from registrar.domain.errors import Conflict, DomainError, Forbidden, NotFound, Unavailable
from registrar.projections.paging import BadPageToken
from registrar.ui.sessions import Session, session_box, session_of, set_cookie

SECURITY_HEADERS = {
    # Nothing from another origin, and no script at all: the UI is plain HTML and forms.
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none';"
    " img-src 'self' data:; style-src 'self'; form-action 'self'; frame-ancestors 'none';"
    " base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_STATUS_OF = {NotFound: 404, Conflict: 409, Forbidden: 403, Unavailable: 503}
_PAST_ONLY = frozenset({"as_of", "page_token"})
"""Dropped from a page's address to show it as it is now."""
_TITLES = {
    400: "Bad request",
    403: "Not allowed",
    404: "Not found",
    409: "Conflict",
    422: "Not understood",
    503: "Unavailable",
}


def when(value: datetime | None) -> str:
    """A time as people read it here: UTC, to the second."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def size(value: int | None) -> str:
    if value is None:
        return "—"
    amount = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "B" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} B"


def segment(value: Any) -> str:
    """A value as one URL path segment (a model name may hold spaces, '#' or '?')."""
    return quote(str(value), safe="")


def query(path: str, **params: Any) -> str:
    """`path` with the parameters that have a value as its query string."""
    kept = {k: v for k, v in params.items() if v not in (None, "")}
    return f"{path}?{urlencode(kept)}" if kept else path


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=select_autoescape(enabled_extensions=("html", "svg"), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(shown=shown, when=when, iso=iso, size=size, segment=segment)
    env.globals.update(query=query)
    return env


@dataclass(frozen=True, slots=True)
class Viewer:
    """Who the page is for, as access control established it."""

    user: str
    role: Role
    signed_in: bool
    auth_required: bool
    csrf: str


def viewer_principal(request: Request) -> Principal:
    """The signed-in user; with authentication off, the dev user (admin), as the API has it."""
    principal: Principal | None = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return principal if principal is not None else Principal(ANONYMOUS, Role.ADMIN)


def auth_required(request: Request) -> bool:
    return request.app.state.access_guard is not None


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    status: int = 200,
    session: Session | None = None,
) -> HTMLResponse:
    """`template` rendered with `context` and what every page shows; the session's cookie is
    (re)issued when the request had none (every form needs its CSRF token)."""
    current = session or session_of(request)
    fresh = current is None or session is not None
    if current is None:
        current = session_box(request).new()
    principal = viewer_principal(request)
    viewer = Viewer(
        user=principal.user,
        role=principal.role,
        signed_in=current.signed_in,
        auth_required=auth_required(request),
        csrf=current.csrf,
    )
    now_params = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAST_ONLY]
    now_url = request.url.path + (f"?{urlencode(now_params)}" if now_params else "")
    body = (
        environment()
        .get_template(template)
        .render({"ui": viewer, "travel": None, "section": "", "now_url": now_url, **context})
    )
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    if fresh:
        set_cookie(request, response, current)
    return response


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    title = _TITLES.get(status, "Something went wrong")
    context = {"status": status, "title": title, "message": message}
    return page(request, "error.html", context, status)


def status_of(error: DomainError) -> int:
    return next((_STATUS_OF[kind] for kind in type(error).__mro__ if kind in _STATUS_OF), 422)


class UiRoute(APIRoute):
    """A UI route: a refusal (a domain error, a bad parameter) is an HTML page with its status,
    saying what was wrong, not the API's JSON body."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except DomainError as refused:
                return error_page(request, status_of(refused), refused.message)
            except HTTPException as refused:
                return error_page(request, refused.status_code, str(refused.detail))
            except RequestValidationError as invalid:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.get('loc', ())[1:]) or 'input'}: {e.get('msg')}"
                    for e in invalid.errors()
                )
                return error_page(request, 422, problems)
            except BadPageToken as bad:
                return error_page(request, 422, str(bad))

        return handle
