"""Registrar's runnable services: command handling, the event store, the HTTP API, the CLI."""
