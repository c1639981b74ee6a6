"""Bearer tokens: made from 32 random bytes, kept only as their sha256, and read from an
Authorization header (Bearer, or Basic with the user as username and the token as password, the
way MLflow's client sends MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass

TOKEN_PREFIX = "rgt_"
"""Makes a leaked token recognisable to secret scanners."""


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """sha256 of the token, hex. Enough on its own: the token has 256 random bits, so there is
    nothing to brute-force and a salt or a slow hash would add nothing but cost."""
    return hashlib.sha256(token.encode()).hexdigest()


class BadCredentials(Exception):
    """An Authorization header that is not a bearer token or basic credentials."""


@dataclass(frozen=True, slots=True)
class Credentials:
    token: str
    claimed_user: str | None = None
    """The basic-auth username: then the token must be that user's."""


def credentials_from(authorization: str | None) -> Credentials | None:
    """The credentials of an Authorization header; None if there is none. Raises BadCredentials."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return Credentials(value)
    if scheme.lower() == "basic" and value:
        user, password = basic_user_and_password(value)
        if not password:
            raise BadCredentials("basic auth needs the token as the password")
        return Credentials(password, user)
    raise BadCredentials("the Authorization header must be 'Bearer <token>' or basic auth")


def basic_user_and_password(value: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(value, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise BadCredentials("basic auth credentials are not base64 of 'user:token'") from None
    user, _, password = decoded.partition(":")
    return user, password


def basic_user(authorization: str | None) -> str | None:
    """The username of basic credentials, if that is what the header holds."""
    if not authorization:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return basic_user_and_password(value.strip())[0] or None
    except BadCredentials:
        return None
