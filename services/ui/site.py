"""Installing the web UI into the API's application: its pages, its style sheet and icons (shipped
in the package: nothing is loaded from another origin), its session box, and, with
authentication on, the session door just outside access control."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from registrar.access.guard import AccessGuard
from registrar.settings import Settings
from registrar.ui import (
    approval_pages,
    audit_pages,
    catalogue_pages,
    lineage_pages,
    login_routes,
    model_pages,
)
from registrar.ui.rendering import UiRoute
from registrar.ui.session_door import SessionDoor
from registrar.ui.sessions import SessionBox

STATIC = Path(__file__).parent / "static"

unknown = APIRouter(route_class=UiRoute, include_in_schema=False)


@unknown.api_route("/ui/{anything:path}", methods=["GET", "POST"])
async def unknown_page(anything: str) -> Response:
    """Any other address under /ui/: a page saying so, not the API's JSON (routed last)."""
    raise HTTPException(404, f"there is no page /ui/{anything}: start from the catalogue")


def install_ui(app: FastAPI, guard: AccessGuard | None) -> None:
    """Serve the UI from `app`. Call after access control's middleware is added: the door must
    run before it (Starlette runs the middleware added last first)."""
    box = SessionBox.from_settings(Settings.from_env())
    app.state.ui_sessions = box
    if guard is not None:
        app.add_middleware(SessionDoor, guard=guard, box=box)
    for module in (
        login_routes,
        catalogue_pages,
        model_pages,
        approval_pages,
        lineage_pages,
        audit_pages,
    ):
        app.include_router(module.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="ui-static")
    app.include_router(unknown)
