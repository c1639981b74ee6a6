"""The HTTP API (FastAPI): the native resource API under /v1."""
