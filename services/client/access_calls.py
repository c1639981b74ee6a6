"""The client's access endpoint: who the registry takes the caller to be."""

from __future__ import annotations

from registrar.client.calls import Call, read
from registrar.contracts.api import Whoami


def whoami() -> Call[Whoami]:
    """The caller's user and role, and whether a token said so (with authentication off, every
    caller is an unauthenticated admin)."""
    return read("/v1/whoami", Whoami.model_validate)
