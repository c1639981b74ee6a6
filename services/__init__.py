"""Registrar, an event-sourced ML model registry.

`from registrar import Client, AsyncClient` is the Python client. The rest of the package is the
system itself: `registrar.contracts` (the wire), `registrar.domain` (the pure rules),
`registrar.projections` (the read models) and the services that run them (`registrar.store`,
`registrar.bus`, `registrar.projector`, `registrar.commands`, `registrar.api`, `registrar.access`,
`registrar.cli`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registrar.client import (
        AsyncClient,
        Client,
        ClientError,
        Conflict,
        Forbidden,
        InvalidRequest,
        NotFound,
        Unauthorized,
        Unavailable,
    )

try:
    __version__ = version("registrar")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    "AsyncClient",
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidRequest",
    "NotFound",
    "Unauthorized",
    "Unavailable",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The client is imported on first use, so that the server's processes, which import
    # registrar.<part> and never the client, do not load it (nor httpx) for nothing.
    if name in __all__:
        from registrar import client

        return getattr(client, name)
    raise AttributeError(f"module 'registrar' has no attribute {name!r}")
