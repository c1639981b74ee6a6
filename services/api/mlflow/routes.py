"""Every MLflow endpoint Registrar serves, under both of MLflow's prefixes, answering refusals
and unknown endpoints the way the MLflow client expects."""

from __future__ import annotations

from fastapi import APIRouter, Request

from registrar.api.mlflow import artifact_proxy, registry_routes, tracking_routes, webhook_routes
from registrar.api.mlflow.answers import ANSWERS
from registrar.api.mlflow.errors import ENDPOINT_NOT_FOUND, MlflowError, MlflowRoute
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON

API_PREFIXES = ("/api/2.0", "/ajax-api/2.0")

router = APIRouter(route_class=MlflowRoute, tags=["mlflow"])


async def endpoint_not_found(request: Request) -> JSON:
    # JSON with MLflow's code: a plain 404 would also read as ENDPOINT_NOT_FOUND, but say which.
    raise MlflowError(
        ENDPOINT_NOT_FOUND,
        f"Registrar does not serve {request.method} {request.url.path}: it speaks MLflow's model"
        " registry API, runs/get and the artifact listing of recorded runs",
    )


for _prefix in API_PREFIXES:
    router.include_router(
        artifact_proxy.router, prefix=_prefix, include_in_schema=_prefix == API_PREFIXES[0]
    )
    router.include_router(
        webhook_routes.router, prefix=_prefix, include_in_schema=_prefix == API_PREFIXES[0]
    )
    _services = (
        ("mlflow", [*registry_routes.ENDPOINTS, *tracking_routes.ENDPOINTS]),
        ("mlflow-artifacts", tracking_routes.ARTIFACT_ENDPOINTS),
    )
    for _service, _endpoints in _services:
        for _method, _path, _endpoint in _endpoints:
            _answer, _refusals = ANSWERS[(_method, _path)]  # for /openapi.json
            router.add_api_route(
                f"{_prefix}/{_service}/{_path}",
                _endpoint,
                methods=[_method],
                response_model=_answer,
                responses=refusals(*_refusals),
                include_in_schema=_prefix == API_PREFIXES[0],
                summary=f"MLflow {_method} {_service}/{_path}",
                operation_id=f"mlflow_{_prefix}_{_service}_{_path}_{_method}".replace("/", "_"),
            )
        router.add_api_route(
            f"{_prefix}/{_service}/{{rest:path}}",
            endpoint_not_found,
            methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
            include_in_schema=False,
        )
