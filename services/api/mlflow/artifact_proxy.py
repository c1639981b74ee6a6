"""MLflow's artifact proxy (`mlflow server --serve-artifacts`) over the versions sealed in
Registrar's artifact store, at `registry/<model_id>/<version>/<path>`: the `artifact_uri` that
get-download-uri gives for them, so `models:/NAME/N` and `models:/NAME@ALIAS` load through here.
Read-only: a version's files go in through /v1 (upload, then seal), where the rules are kept."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from registrar.api.artifact_routes import artifact_store, file_response
from registrar.api.context import registry_of
from registrar.api.mlflow import tracking_routes
from registrar.api.mlflow.errors import PERMISSION_DENIED, MlflowError, MlflowRoute, not_found
from registrar.api.mlflow.fields import Fields
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON
from registrar.artifacts.artifact_store import ArtifactStore, VersionFiles
from registrar.contracts.artifacts import ManifestFile
from registrar.domain.sources import registry_location

router = APIRouter(route_class=MlflowRoute, tags=["mlflow"])

ARTIFACTS = "/mlflow-artifacts/artifacts"
"""Under each of MLflow's prefixes (services/api/mlflow/routes.py includes this router twice)."""
REGISTRY_ROOT = "registry"
READ_ONLY = (
    "Registrar's artifact proxy is read-only: upload a version's files with `registrar artifacts"
    " push` or PUT /v1/models/{name}/versions/{v}/artifacts/{path}"
)


def _missing_version(where: str, why: str) -> MlflowError:
    return not_found(f"no artifacts at {where!r}: {why}")


async def _sealed_files(
    request: Request, store: ArtifactStore, model_id: str, number: int
) -> VersionFiles:
    """The files of version `number` of the model whose stream is `model_id`, if it is live and
    its files are sealed in the artifact store; RESOURCE_DOES_NOT_EXIST otherwise."""
    where = f"{REGISTRY_ROOT}/{model_id}/{number}"
    try:
        # Model streams are named by a UUID: anything else (a run's stream) is no model.
        known = str(uuid.UUID(model_id)) == model_id
    except ValueError:
        known = False
    model = (await registry_of(request).commands.load_stream(model_id)).state if known else None
    if model is None:
        raise _missing_version(where, f"no model has the id {model_id!r}")
    if model.deleted:
        raise _missing_version(where, f"model {model.name!r} was deleted")
    version = model.live_version(number)
    if version is None:
        raise _missing_version(where, f"model {model.name!r} has no version {number}")
    if not version.manifest_digest:
        raise _missing_version(
            where,
            f"version {number} of model {model.name!r} has no sealed files in Registrar's"
            f" artifact store (its source is {version.source!r}); upload its files and seal them"
            f" (POST /v1/models/{model.name}/versions/{number}/artifacts/seal) to serve them here",
        )
    return await store.files_of(model, version)


def _children(files: list[ManifestFile], directory: str) -> list[dict[str, object]]:
    """MLflow's FileInfo of each file and directory directly under `directory`, by base name
    (as mlflow/server/handlers.py `_list_artifacts_mlflow_artifacts` answers): nothing for a
    file or a directory that holds none, so the client tells a file from a directory."""
    prefix = f"{directory}/" if directory else ""
    listed: dict[str, dict[str, object]] = {}
    for file in files:
        if not file.path.startswith(prefix):
            continue
        head, below, _ = file.path[len(prefix) :].partition("/")
        if below:
            listed[head] = {"path": head, "is_dir": True}
        else:
            listed.setdefault(head, {"path": head, "is_dir": False, "file_size": file.size})
    return [listed[name] for name in sorted(listed)]


@router.get(ARTIFACTS, include_in_schema=False)  # documented by tracking_routes' twin
async def list_artifacts(request: Request) -> JSON:
    """`GET .../artifacts?path=DIR`: a sealed version's files under `registry/`, or (anywhere
    else) the recorded runs' artifacts that tracking_routes lists."""
    path = ((await Fields.of(request)).text("path") or "").strip("/")
    if path.partition("/")[0] != REGISTRY_ROOT:
        return await tracking_routes.list_artifacts(request)
    location = registry_location(path)
    if location is None:
        raise _missing_version(
            path, f"Registrar serves a version's files under {REGISTRY_ROOT}/<model_id>/<version>"
        )
    model_id, number, directory = location
    files = await _sealed_files(request, artifact_store(request), model_id, number)
    return JSON({"files": _children(files.files, directory.strip("/"))})


@router.get(
    ARTIFACTS + "/{path:path}",
    response_class=StreamingResponse,
    summary="MLflow GET mlflow-artifacts/artifacts/PATH: one file of a version sealed in"
    " Registrar, checked against its digest as it streams (Range supported)",
    responses={
        200: {
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            }
        },
        **refusals(400, 404),  # a bad Range is INVALID_PARAMETER_VALUE, as MLflow words it
    },
)
async def download_artifact(path: str, request: Request) -> StreamingResponse:
    location = registry_location(path)
    if location is None:
        raise not_found(
            f"no artifact at {path!r}: Registrar's artifact proxy serves the files of versions"
            f" sealed in its artifact store, under {REGISTRY_ROOT}/<model_id>/<version>/<path>"
        )
    model_id, number, inside = location
    store = artifact_store(request)
    files = await _sealed_files(request, store, model_id, number)
    return file_response(store, files.file(inside), request.headers.get("range"))


async def refuse_change(request: Request) -> JSON:
    raise MlflowError(PERMISSION_DENIED, READ_ONLY)


for _path in (ARTIFACTS, ARTIFACTS + "/{path:path}", "/mlflow-artifacts/mpu/{path:path}"):
    router.add_api_route(
        _path, refuse_change, methods=["PUT", "POST", "DELETE"], include_in_schema=False
    )
