"""/v1/models/{name}/versions/{v}/artifacts: upload a version's files (streamed), seal them, read
the manifest, download one file (ranges too) or all of them as a tar; /v1/artifacts: verify the
whole store and collect its garbage (admins)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import Response, StreamingResponse

from registrar.api.context import command_meta
from registrar.api.model_routes import NamePath
from registrar.api.openapi_document import refusals
from registrar.api.responses import JSON, with_position
from registrar.api.version_routes import VersionPath
from registrar.artifacts.artifact_store import DEFAULT_GRACE, ArtifactStore
from registrar.artifacts.downloads import tar_archive, verified
from registrar.contracts.artifacts import (
    CollectionReport,
    Manifest,
    ManifestFile,
    UploadedFile,
    VerifyReport,
)
from registrar.contracts.values import check_digest
from registrar.domain.errors import Unavailable

router = APIRouter(tags=["artifacts"])

DIGEST_HEADER = "X-Artifact-Digest"
"""On an upload, the file's digest if the client knows it (checked: a mismatch stores nothing);
on a download, the digest the served bytes are checked against."""
_VERSION = "/v1/models/{name}/versions/{version}"
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def _binary(media_type: str, description: str) -> dict[int | str, dict[str, object]]:
    schema = {"type": "string", "format": "binary"}
    return {200: {"description": description, "content": {media_type: {"schema": schema}}}}


FilePath = Annotated[
    str, Path(description="The file's path inside the version, e.g. model/MLmodel")
]


def artifact_store(request: Request) -> ArtifactStore:
    store: ArtifactStore | None = request.app.state.artifacts
    if store is None:
        raise Unavailable("this server runs without an artifact store")
    return store


@router.put(
    _VERSION + "/artifacts/{path:path}",
    status_code=201,
    response_model=UploadedFile,
    summary="Upload one file into a version that is not sealed yet (the body is the file)",
    responses=refusals(404, 409),
)
async def upload_file(
    name: NamePath, version: VersionPath, path: FilePath, request: Request
) -> JSON:
    expected = request.headers.get(DIGEST_HEADER)
    if expected is not None:
        try:
            check_digest(expected)
        except ValueError as bad:
            raise HTTPException(422, f"header {DIGEST_HEADER}: {bad}") from None
    file, existed = await artifact_store(request).upload(
        name, version, path, request.stream(), command_meta(request), expected or None
    )
    return JSON({**file.model_dump(), "stored_before": existed}, status_code=201)


@router.delete(
    _VERSION + "/artifacts/{path:path}",
    status_code=204,
    response_class=Response,
    summary="Drop a file uploaded into a version that is not sealed yet (no event: not sealed)",
    responses=refusals(404, 409),
)
async def delete_file(
    name: NamePath, version: VersionPath, path: FilePath, request: Request
) -> Response:
    await artifact_store(request).unstage(name, version, path)
    return Response(status_code=204)


@router.post(
    _VERSION + "/artifacts/seal",
    response_model=Manifest,
    summary="Seal the uploaded files: record their manifest; the files never change again",
    responses=refusals(404, 409),
)
async def seal(name: NamePath, version: VersionPath, request: Request) -> JSON:
    outcome, manifest = await artifact_store(request).seal(name, version, command_meta(request))
    return with_position(manifest.model_dump(mode="json"), outcome.position)


@router.get(
    _VERSION + "/artifacts",
    response_model=Manifest,
    summary="The version's manifest (sealed), or the files uploaded so far",
    responses=refusals(404, 503),
)
async def manifest(name: NamePath, version: VersionPath, request: Request) -> JSON:
    files = await artifact_store(request).version_files(name, version)
    return JSON(files.manifest().model_dump(mode="json"))


@router.get(
    _VERSION + "/artifacts.tar",
    response_class=StreamingResponse,
    summary="Every file of a sealed version as one tar archive, each file checked as it streams",
    responses={**_binary("application/x-tar", "A tar archive"), **refusals(404, 409, 503)},
)
async def archive(name: NamePath, version: VersionPath, request: Request) -> StreamingResponse:
    store = artifact_store(request)
    files = await store.version_files(name, version)
    if not files.sealed:
        raise HTTPException(409, f"version {version} of model {name!r} is not sealed yet")
    return StreamingResponse(
        tar_archive(store.blobs, files.files),
        media_type="application/x-tar",
        headers={
            DIGEST_HEADER: files.version.manifest_digest,
            "Content-Disposition": f'attachment; filename="{_safe(name)}-{version}.tar"',
        },
    )


@router.get(
    _VERSION + "/artifacts/{path:path}",
    response_class=StreamingResponse,
    summary="Download one file (Range supported); its digest is in X-Artifact-Digest",
    responses={
        **_binary("application/octet-stream", "The file (206: the range asked for)"),
        **refusals(404, 416, 503),
    },
)
async def download_file(
    name: NamePath, version: VersionPath, path: FilePath, request: Request
) -> StreamingResponse:
    store = artifact_store(request)
    file = (await store.version_files(name, version)).file(path)
    return file_response(store, file, request.headers.get("range"))


def file_response(
    store: ArtifactStore, file: ManifestFile, range_header: str | None
) -> StreamingResponse:
    """One stored file as a response: the whole file, or the single byte range asked for."""
    headers = {
        DIGEST_HEADER: file.digest,
        "ETag": f'"{file.digest}"',
        "Accept-Ranges": "bytes",
    }
    start, end, status = 0, file.size, 200
    if range_header is not None:
        start, end = _byte_range(range_header, file.size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(
        verified(store.blobs, file, start, end),
        status_code=status,
        media_type="application/octet-stream",
        headers=headers,
    )


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """[start, end) of a single-range `Range: bytes=a-b` (or `a-`, or `-suffix`) header."""
    match = _RANGE.fullmatch(header.strip())
    if match is None or not any(match.groups()):
        raise HTTPException(416, f"Range {header!r}: one range, bytes=START-END, is supported")
    first, last = match.groups()
    if not first:
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = min(int(last) + 1, size) if last else size
    if start >= size or start >= end:
        raise HTTPException(
            416,
            f"Range {header!r} lies outside the file's {size} bytes",
        )
    return start, end


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]", "_", name)


@router.get(
    "/v1/artifacts/verify",
    response_model=VerifyReport,
    summary="Re-read every stored file the sealed manifests name and check its digest (admins)",
    responses=refusals(404),
)
async def verify(
    request: Request,
    model: Annotated[str | None, Query(description="Only this model's versions")] = None,
    version: Annotated[int | None, Query(ge=1, description="Only this version")] = None,
) -> JSON:
    if version is not None and model is None:
        raise HTTPException(422, "version needs model")
    report = await artifact_store(request).verify(model, version)
    return JSON(report.model_dump(mode="json"))


@router.post(
    "/v1/artifacts/gc",
    response_model=CollectionReport,
    summary="Delete stored blobs no manifest or upload references, older than a grace period",
)
async def collect_garbage(
    request: Request,
    dry_run: Annotated[bool, Query(description="Count what would go; delete nothing")] = False,
    grace_seconds: Annotated[
        float, Query(ge=0, le=365 * 86400, description="Keep blobs younger than this")
    ] = DEFAULT_GRACE.total_seconds(),
) -> JSON:
    report = await artifact_store(request).collect_garbage(
        dry_run=dry_run, grace=timedelta(seconds=grace_seconds)
    )
    return JSON(report.model_dump(mode="json"))
