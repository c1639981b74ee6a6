"""The web UI's sessions: an encrypted, expiring cookie (Fernet: AES and HMAC-SHA256, with its
issue time) holding a session id, the session's CSRF token, and, once signed in, the sha256 of
the bearer token it was opened with (never the token itself). Each request maps that hash to its
Principal through the AccessGuard's token cache, so revoking the token ends its sessions at once,
in every API process; signing out ends the session in this process at once, and everywhere when
its cookie expires (SESSION_SECONDS).

A session without a token hash is anonymous: it only carries a CSRF token, for the sign-in form
and, with authentication off, for every form (the UI then acts as the dev user, as the API does).

The key is $REGISTRAR_UI_SESSION_KEY (a Fernet key, shared by API replicas), or one made for
this process: its sessions then end when it stops."""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from starlette.requests import Request
from starlette.responses import Response

from registrar.contracts.codec import dumps, loads
from registrar.settings import Settings

COOKIE = "registrar_session"
COOKIE_PATH = "/ui"
"""The cookie goes to the UI's paths only: the API (/v1, MLflow's) never sees it, so it can
never authenticate an API call."""
SESSION_SECONDS = 8 * 3600
"""A signed-in session lasts a working day; then the UI asks for the token again."""
ANONYMOUS_SECONDS = 24 * 3600
SESSION_SCOPE_KEY = "registrar.ui.session"
"""Where the session read for a request is kept in its ASGI scope."""
CSRF_FIELD = "csrf_token"
"""The hidden field every form that changes something carries."""


@dataclass(frozen=True, slots=True)
class Session:
    session_id: str
    csrf: str
    expires_at: float
    token_hash: str | None = None
    """None: anonymous (not signed in)."""

    @property
    def signed_in(self) -> bool:
        return self.token_hash is not None


class SessionBox:
    """Seals sessions into cookie values and opens them again; remembers the sessions signed
    out of in this process until they would have expired anyway."""

    def __init__(self, key: str | bytes | None = None) -> None:
        try:
            self._fernet = Fernet(key or Fernet.generate_key())
        except (ValueError, TypeError):
            raise ValueError(
                "REGISTRAR_UI_SESSION_KEY must be a Fernet key: 32 bytes in URL-safe base64"
                ' (python -c "from cryptography.fernet import Fernet;'
                ' print(Fernet.generate_key().decode())")'
            ) from None
        self._ended: dict[str, float] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SessionBox:
        key = settings.ui_session_key
        return cls(key.get_secret_value() if key is not None else None)

    def new(self, token_hash: str | None = None) -> Session:
        """A new session (a new id and CSRF token: signing in never keeps the old ones)."""
        lasts = SESSION_SECONDS if token_hash is not None else ANONYMOUS_SECONDS
        return Session(
            session_id=secrets.token_urlsafe(16),
            csrf=secrets.token_urlsafe(32),
            expires_at=time.time() + lasts,
            token_hash=token_hash,
        )

    def seal(self, session: Session) -> str:
        fields = {
            "id": session.session_id,
            "csrf": session.csrf,
            "exp": session.expires_at,
            "token": session.token_hash,
        }
        return self._fernet.encrypt(dumps(fields)).decode()

    def open(self, cookie: str | None) -> Session | None:
        """The session a cookie holds; None when there is none, or it is forged, expired or
        signed out of."""
        if not cookie:
            return None
        try:
            fields: dict[str, Any] = loads(self._fernet.decrypt(cookie.encode()))
            session = Session(
                session_id=str(fields["id"]),
                csrf=str(fields["csrf"]),
                expires_at=float(fields["exp"]),
                token_hash=fields["token"],
            )
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None
        if session.expires_at <= time.time() or session.session_id in self._ended:
            return None
        return session

    def end(self, session: Session) -> None:
        """Sign out of `session` in this process (its cookie is dropped by the browser too)."""
        now = time.time()
        self._ended = {s: t for s, t in self._ended.items() if t > now}
        self._ended[session.session_id] = session.expires_at


def session_box(request: Request) -> SessionBox:
    return request.app.state.ui_sessions  # type: ignore[no-any-return]


def session_of(request: Request) -> Session | None:
    """The request's session (as access control read it, or from its cookie)."""
    found: Session | None = request.scope.get(SESSION_SCOPE_KEY)
    if found is None:
        found = session_box(request).open(request.cookies.get(COOKIE))
        if found is not None:
            request.scope[SESSION_SCOPE_KEY] = found
    return found


def set_cookie(request: Request, response: Response, session: Session) -> None:
    """Give the browser `session`: HttpOnly (no script reads it), SameSite=Strict (no other site's
    page sends it), Secure when served over TLS, for the UI's paths only, until it expires."""
    response.set_cookie(
        COOKIE,
        session_box(request).seal(session),
        max_age=max(0, int(session.expires_at - time.time())),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def drop_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def csrf_matches(session: Session | None, submitted: str | None) -> bool:
    """Whether a form's CSRF token is its session's (compared in constant time)."""
    if session is None or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())
