"""A version's files in the artifact store: staging uploads into a version, sealing them into a
manifest (an event on the version's stream), reading the manifest back, and the store-wide
verification and garbage collection. The HTTP routes, the MLflow artifact proxy and the CLI (over
HTTP) all come here, so every door follows the same rules."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import AsyncIterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.artifacts.blobs import BlobMissing, BlobStore, DigestMismatch
from registrar.commands.command_handler import CommandMeta, Outcome
from registrar.contracts.artifacts import (
    MAX_FILES,
    BlobProblem,
    CollectionReport,
    Manifest,
    ManifestFile,
    VerifyReport,
    check_artifact_path,
    manifest_bytes,
)
from registrar.contracts.codec import loads
from registrar.contracts.commands import SealArtifacts
from registrar.domain.errors import Conflict, Invalid, NotFound, Unavailable, VersionNotFound
from registrar.domain.state import ModelState, VersionState
from registrar.registry import Registry
from registrar.store.advisory_locks import lock_key

_COLLECTING = lock_key("registrar.artifacts.collect")
"""Held exclusively by garbage collection, shared by an upload's last step: a blob an upload
finds already stored cannot be collected between the upload's check and its staging row."""
DEFAULT_GRACE = timedelta(hours=24)


def _version_lock(stream_id: str, number: int) -> int:
    return lock_key(f"registrar.artifacts.{stream_id}.{number}")


def _hex(digest: str) -> str:
    return digest.removeprefix("sha256:")


@dataclass(frozen=True, slots=True)
class VersionFiles:
    """Where a version's files are: its state, and its manifest (sealed) or staged uploads."""

    model: ModelState
    version: VersionState
    files: list[ManifestFile]

    @property
    def sealed(self) -> bool:
        return bool(self.version.manifest_digest)

    def file(self, path: str) -> ManifestFile:
        for candidate in self.files:
            if candidate.path == path:
                return candidate
        raise NotFound(
            f"version {self.version.version} of model {self.model.name!r} has no file {path!r}"
        )

    def manifest(self) -> Manifest:
        return Manifest(
            model=self.model.name,
            version=self.version.version,
            sealed=self.sealed,
            manifest_digest=self.version.manifest_digest or None,
            sealed_at=self.version.sealed_at,
            file_count=len(self.files),
            bytes=sum(f.size for f in self.files),
            files=sorted(self.files, key=lambda f: f.path),
        )


class ArtifactStore:
    def __init__(self, blobs: BlobStore, registry: Registry, manifests_cached: int = 256) -> None:
        self.blobs = blobs
        self.registry = registry
        self._manifests: OrderedDict[str, list[ManifestFile]] = OrderedDict()
        self._manifests_cached = manifests_cached

    # Reading ---------------------------------------------------------------------------------

    async def _version(self, name: str, number: int) -> tuple[ModelState, VersionState]:
        model = await self.registry.live_model(name)
        version = model.live_version(number)
        if version is None:
            raise VersionNotFound(f"model {name!r} has no version {number}", name, number)
        return model, version

    async def version_files(self, name: str, number: int) -> VersionFiles:
        model, version = await self._version(name, number)
        return await self.files_of(model, version)

    async def files_of(self, model: ModelState, version: VersionState) -> VersionFiles:
        if version.manifest_digest:
            return VersionFiles(model, version, await self.manifest_files(version.manifest_digest))
        async with self.registry.engine.connect() as conn:
            return VersionFiles(
                model, version, await _staged(conn, model.model_id, version.version)
            )

    async def manifest_files(self, digest: str) -> list[ManifestFile]:
        """The files of the manifest stored under `digest`, checked against it."""
        cached = self._manifests.get(digest)
        if cached is not None:
            self._manifests.move_to_end(digest)
            return cached
        try:
            data = await self.blobs.read_bytes(_hex(digest))
        except BlobMissing:
            raise Unavailable(
                f"the manifest {digest} is missing from the artifact store"
                " (see `registrar artifacts verify`)"
            ) from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            raise Unavailable(f"the manifest {digest} in the artifact store is corrupted")
        files = [ManifestFile.model_validate(f) for f in loads(data)["files"]]
        self._manifests[digest] = files
        if len(self._manifests) > self._manifests_cached:
            self._manifests.popitem(last=False)
        return files

    # Writing ---------------------------------------------------------------------------------

    async def upload(
        self,
        name: str,
        number: int,
        path: str,
        chunks: AsyncIterable[bytes],
        meta: CommandMeta,
        expected_digest: str | None = None,
    ) -> tuple[ManifestFile, bool]:
        """Store one file of an unsealed version (replacing an earlier upload of that path);
        the file, and whether an identical blob was stored before."""
        try:
            check_artifact_path(path)
        except ValueError as bad:
            raise Invalid(str(bad)) from None
        model, version = await self._version(name, number)
        _refuse_sealed(model, version)
        try:
            stored = await self.blobs.put(
                chunks, expected_sha256=_hex(expected_digest) if expected_digest else None
            )
        except DigestMismatch as mismatch:
            raise Invalid(f"{path}: {mismatch}") from None
        file = ManifestFile(path=path, size=stored.size, digest="sha256:" + stored.sha256)
        async with self.registry.engine.begin() as conn:
            await _lock(conn, _COLLECTING, shared=True)
            await _lock(conn, _version_lock(model.model_id, number))
            model, version = await self._version(name, number)  # sealed meanwhile?
            _refuse_sealed(model, version)
            # Under the lock gc takes: a blob found here stays until the staging row names it.
            if await self.blobs.stat(stored.sha256) is None:
                raise Unavailable(
                    "garbage collection removed the stored copy of this file during the upload:"
                    " upload it again"
                )
            await _stage(conn, model.model_id, number, file, meta.actor)
        return file, stored.existed

    async def unstage(self, name: str, number: int, path: str) -> None:
        """Drop a file uploaded into a version that is not sealed yet (its blob stays until gc)."""
        model, _ = await self._version(name, number)
        async with self.registry.engine.begin() as conn:
            await _lock(conn, _version_lock(model.model_id, number))
            model, version = await self._version(name, number)
            _refuse_sealed(model, version)
            deleted = await conn.execute(
                text(
                    "DELETE FROM artifact_uploads WHERE stream_id = :s AND version = :v"
                    " AND path = :p"
                ),
                {"s": model.model_id, "v": number, "p": path},
            )
        if not deleted.rowcount:
            raise NotFound(f"version {number} of model {name!r} has no uploaded file {path!r}")

    async def seal(self, name: str, number: int, meta: CommandMeta) -> tuple[Outcome, Manifest]:
        """Seal the files uploaded into a version: store their manifest, record ArtifactsSealed.
        Sealing a sealed version again with no new uploads answers its manifest."""
        model, version = await self._version(name, number)
        async with self.registry.engine.begin() as conn:
            await _lock(conn, _version_lock(model.model_id, number))
            model, version = await self._version(name, number)
            files = await _staged(conn, model.model_id, number)
            if version.manifest_digest and not files:
                outcome = await self.registry.commands.handle(
                    SealArtifacts(
                        name=name,
                        version=number,
                        manifest_digest=version.manifest_digest,
                        files=version.artifact_files,
                        bytes=version.artifact_bytes,
                    ),
                    meta,
                )
                return outcome, (await self.files_of(model, version)).manifest()
            if not files:
                raise Invalid(
                    f"version {number} of model {name!r} has no uploaded files to seal:"
                    " upload them first (PUT .../artifacts/PATH)"
                )
            stored = await self.blobs.put_bytes(manifest_bytes(files))
            digest = "sha256:" + stored.sha256
            command = SealArtifacts(
                name=name,
                version=number,
                manifest_digest=digest,
                files=len(files),
                bytes=sum(f.size for f in files),
            )
            outcome = await self.registry.commands.handle(command, meta)
            await conn.execute(
                text("DELETE FROM artifact_uploads WHERE stream_id = :s AND version = :v"),
                {"s": model.model_id, "v": number},
            )
        sealed = outcome.state.versions[number]
        return outcome, (await self.files_of(outcome.state, sealed)).manifest()

    # The whole store -------------------------------------------------------------------------

    async def sealed_versions(
        self, name: str | None = None, number: int | None = None
    ) -> list[tuple[str, int, str]]:
        """(model name, version, manifest digest) of every sealed version, or those of `name`
        (and `number`), from the event store itself: a read model that lags would hide some."""
        stream = None
        if name is not None:
            stream = (await self.registry.live_model(name)).model_id
        async with self.registry.store.reading() as conn:
            rows = await conn.fetch(
                "SELECT e.stream_id, (e.payload->>'version')::int AS version,"
                " e.payload->>'manifest_digest' AS digest, coalesce(m.name, e.stream_id) AS name"
                " FROM events e LEFT JOIN cs_models m USING (stream_id)"
                " WHERE e.type = 'ArtifactsSealed' AND ($1::text IS NULL OR e.stream_id = $1)"
                " AND ($2::int IS NULL OR (e.payload->>'version')::int = $2)"
                " ORDER BY e.position",
                stream,
                number,
            )
        return [(row["name"], row["version"], row["digest"]) for row in rows]

    async def verify(self, name: str | None = None, number: int | None = None) -> VerifyReport:
        """Re-read every blob the sealed manifests name and check its SHA-256."""
        problems: list[BlobProblem] = []
        versions = files_checked = total = 0
        for model, version, digest in await self.sealed_versions(name, number):
            versions += 1
            try:
                files = await self.manifest_files(digest)
            except Unavailable as lost:
                problems.append(
                    BlobProblem(
                        model=model,
                        version=version,
                        path="(manifest)",
                        expected=digest,
                        found=str(lost),
                    )
                )
                continue
            for file in files:
                files_checked += 1
                found = await self._digest_of_blob(_hex(file.digest))
                total += file.size
                if found != file.digest:
                    problems.append(
                        BlobProblem(
                            model=model,
                            version=version,
                            path=file.path,
                            expected=file.digest,
                            found=found,
                        )
                    )
        return VerifyReport(versions=versions, files=files_checked, bytes=total, problems=problems)

    async def _digest_of_blob(self, sha256: str) -> str:
        hasher = hashlib.sha256()
        try:
            async for chunk in self.blobs.read(sha256):
                hasher.update(chunk)
        except BlobMissing:
            return "missing"
        return "sha256:" + hasher.hexdigest()

    async def collect_garbage(
        self, *, dry_run: bool, grace: timedelta = DEFAULT_GRACE
    ) -> CollectionReport:
        """Delete blobs that no manifest and no staged upload references, older than `grace`
        (an upload in progress, or one staged a moment ago, is never collected)."""
        cutoff = datetime.now(UTC) - grace
        deleted = deleted_bytes = kept = abandoned = 0
        async with self.registry.engine.begin() as conn:
            await _lock(conn, _COLLECTING)
            referenced = {
                row.sha256
                for row in await conn.execute(text("SELECT DISTINCT sha256 FROM artifact_uploads"))
            }
            for _, _, digest in await self.sealed_versions():
                referenced.add(_hex(digest))
                referenced.update(_hex(f.digest) for f in await self.manifest_files(digest))
            async for blob in self.blobs.blobs():
                if blob.sha256 in referenced or blob.last_modified > cutoff:
                    kept += 1
                    continue
                deleted += 1
                deleted_bytes += blob.size
                if not dry_run:
                    await self.blobs.delete(blob.sha256)
            async for key in self.blobs.abandoned_uploads(cutoff):
                abandoned += 1
                if not dry_run:
                    await self.blobs.delete_upload(key)
        return CollectionReport(
            dry_run=dry_run,
            grace_seconds=grace.total_seconds(),
            deleted=deleted,
            deleted_bytes=deleted_bytes,
            kept=kept,
            abandoned_uploads=abandoned,
        )


def _refuse_sealed(model: ModelState, version: VersionState) -> None:
    if version.manifest_digest:
        raise Conflict(
            f"version {version.version} of model {model.name!r} is sealed (manifest"
            f" {version.manifest_digest}): its files can no longer change; register a new version"
        )


async def _lock(conn: AsyncConnection, key: int, *, shared: bool = False) -> None:
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    await conn.execute(text(f"SELECT {function}(:key)"), {"key": key})


async def _staged(conn: AsyncConnection, stream_id: str, number: int) -> list[ManifestFile]:
    rows = await conn.execute(
        text(
            "SELECT path, size, sha256 FROM artifact_uploads"
            " WHERE stream_id = :s AND version = :v ORDER BY path"
        ),
        {"s": stream_id, "v": number},
    )
    return [ManifestFile(path=r.path, size=r.size, digest="sha256:" + r.sha256) for r in rows]


async def _stage(
    conn: AsyncConnection, stream_id: str, number: int, file: ManifestFile, actor: str
) -> None:
    count = await conn.scalar(
        text(
            "SELECT count(*) FROM artifact_uploads WHERE stream_id = :s AND version = :v"
            " AND path <> :p"
        ),
        {"s": stream_id, "v": number, "p": file.path},
    )
    if count is not None and count >= MAX_FILES:
        raise Invalid(f"a version holds at most {MAX_FILES:,} files")
    await conn.execute(
        text(
            "INSERT INTO artifact_uploads"
            " (stream_id, version, path, sha256, size, uploaded_by, uploaded_at)"
            " VALUES (:s, :v, :p, :h, :n, :a, now())"
            " ON CONFLICT (stream_id, version, path) DO UPDATE SET sha256 = excluded.sha256,"
            " size = excluded.size, uploaded_by = excluded.uploaded_by, uploaded_at = now()"
        ),
        {
            "s": stream_id,
            "v": number,
            "p": file.path,
            "h": _hex(file.digest),
            "n": file.size,
            "a": actor,
        },
    )
