"""The FastAPI application: routes, error handlers, health, and the registry's lifecycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from fastapi import FastAPI, Request
from sqlalchemy import text

from registrar.access.guard import AccessGuard
from registrar.api import (
    admin_routes,
    approval_routes,
    artifact_routes,
    audit_routes,
    card_routes,
    deployment_routes,
    evaluation_routes,
    governance_routes,
    history_routes,
    lineage_routes,
    model_routes,
    run_routes,
    version_routes,
    webhook_routes,
)
from registrar.api.access_log import AccessLog
from registrar.api.auth import AccessControl
from registrar.api.body_limit import BodyLimit
from registrar.api.context import document_headers, registry_of
from registrar.api.docs_pages import install_docs
from registrar.api.errors import install_error_handlers
from registrar.api.mlflow import routes as mlflow_routes
from registrar.api.openapi_document import DESCRIPTION, completed
from registrar.api.responses import JSON
from registrar.artifacts.artifact_store import ArtifactStore
from registrar.artifacts.blobs import BlobStore
from registrar.contracts.api_answers import ChainReport, Health, ProjectionsStatus
from registrar.projector.status import status
from registrar.registry import Registry
from registrar.store.chain_verification import verify_chains
from registrar.ui.site import install_ui


def create_app(
    registry: Registry | str,
    *,
    run_projector: bool = True,
    query_wait_seconds: float = 10.0,
    auth_required: bool = False,
    blobs: BlobStore | None = None,
) -> FastAPI:
    """The API on a running `registry`, or on the PostgreSQL server at that URL: then the app
    opens (and migrates) the registry at start-up, runs its projector, and closes it at the end.
    `auth_required`: every request but health needs a bearer token (services/api/auth.py).
    `blobs`: where the artifact store keeps files (None: the artifact routes answer 503)."""
    guard = AccessGuard() if auth_required else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(registry, Registry):
            app.state.registry = registry
            app.state.artifacts = ArtifactStore(blobs, registry) if blobs else None
            async with _access_control(guard, registry):
                yield
            return
        opened = await Registry.open(registry)
        opened.query_wait_seconds = query_wait_seconds
        if run_projector:
            opened.start_projectors()
        app.state.registry = opened
        app.state.artifacts = ArtifactStore(blobs, opened) if blobs else None
        try:
            async with _access_control(guard, opened):
                yield
        finally:
            await opened.close()

    app = FastAPI(
        title="Registrar",
        version="0.1.0",
        summary="An event-sourced ML model registry",
        description=DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JSON,
        docs_url=None,  # install_docs serves them, without a CDN
        redoc_url=None,
    )
    install_error_handlers(app)
    app.state.access_guard = guard
    if guard is not None:
        app.add_middleware(AccessControl, guard=guard)
    install_ui(app, guard)  # the web UI under /ui/: its session door runs before access control
    app.add_middleware(BodyLimit)  # before anything reads the body
    app.add_middleware(AccessLog)  # outermost: a line for every request, refused ones too
    app.include_router(admin_routes.router)
    app.include_router(model_routes.router)
    app.include_router(version_routes.router)
    app.include_router(run_routes.router)
    app.include_router(mlflow_routes.router)
    app.include_router(lineage_routes.router)
    app.include_router(audit_routes.router)
    app.include_router(history_routes.router)
    app.include_router(approval_routes.router)
    app.include_router(artifact_routes.router)
    app.include_router(evaluation_routes.router)
    app.include_router(governance_routes.router)
    app.include_router(card_routes.router)
    app.include_router(deployment_routes.router)
    app.include_router(webhook_routes.router)
    install_docs(app)

    @app.get(
        "/healthz",
        tags=["health"],
        response_model=Health,
        summary="200 once the registry can serve requests",
    )
    async def healthz(request: Request) -> JSON:
        async with registry_of(request).engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return JSON({"status": "ok"})

    @app.get(
        "/v1/projections",
        tags=["health"],
        response_model=ProjectionsStatus,
        summary="Each projection's and the relay's position, and their lag behind the store",
    )
    async def projections(request: Request) -> JSON:
        async with registry_of(request).engine.connect() as conn:
            return JSON(await status(conn))

    @app.get(
        "/v1/audit/verify",
        tags=["audit"],
        response_model=ChainReport,
        summary="Recompute every stream's hash chain; name the first broken link of each",
    )
    async def audit_verify(request: Request) -> JSON:
        report = await verify_chains(registry_of(request).store)
        return JSON(report.as_json())

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = completed(document_headers(FastAPI.openapi(app)))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _access_control(
    guard: AccessGuard | None, registry: Registry
) -> AbstractAsyncContextManager[None]:
    return guard.running(registry) if guard is not None else nullcontext()
