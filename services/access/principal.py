"""The caller of a request, as access control established it."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from registrar.contracts.values import Role

ANONYMOUS = "anonymous"
"""The actor of a request that named nobody (and a name no token can be issued to)."""


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    role: Role
    token_id: UUID | None = None
    """The token it authenticated with; None when authentication is off."""


PRINCIPAL_SCOPE_KEY = "registrar.principal"
"""Where access control leaves the authenticated caller in the ASGI scope of a request."""
