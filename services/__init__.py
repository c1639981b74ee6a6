"""Registrar, an event-sourced ML model registry.

`from registrar import Client, AsyncClient` is the Python client. The rest of the package is the
system itself: `registrar.contracts` (the wire), `registrar.domain` (the pure rules),
`registrar.projections` (the read models) and the services that run them (`registrar.store`,
`registrar.bus`, `registrar.projector`, `registrar.commands`, `registrar.api`, `registrar.access`,
`registrar.cli`)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("registrar")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
