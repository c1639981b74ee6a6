"""Registrar's runnable services: the command handling core, the event store, the HTTP API, the CLI."""
