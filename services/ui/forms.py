"""The UI's forms as they arrive: URL-encoded fields, accepted only with the session's CSRF
token (SameSite=Strict cookies already keep other sites' forms from carrying the session; the
token also stops a form posted from a page that is not this UI's)."""

from __future__ import annotations

from urllib.parse import parse_qs

from fastapi import HTTPException, Request

from registrar.ui.sessions import CSRF_FIELD, csrf_matches, session_of

MAX_FORM_BYTES = 64 * 1024


async def form_fields(request: Request) -> dict[str, str]:
    """The form's fields (the last value of each), whatever its CSRF token."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise HTTPException(422, "send the form as application/x-www-form-urlencoded")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(422, f"a form is at most {MAX_FORM_BYTES // 1024} KiB")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in fields.items()}


async def checked_form(request: Request) -> dict[str, str]:
    """The form's fields, once its CSRF token is found to be the session's; 403 otherwise."""
    fields = await form_fields(request)
    if not csrf_matches(session_of(request), fields.get(CSRF_FIELD)):
        raise HTTPException(
            403,
            "this form's CSRF token is not your session's (it may have expired, or the form came"
            " from another page): reload the page and submit it again",
        )
    return fields
