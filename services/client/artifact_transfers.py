"""A version's files through the client: a directory streamed up into Registrar's artifact store
and sealed, a sealed version streamed down into a directory, every file hashed on the way; and the
store's other calls (manifest, seal, verify, garbage collection), in both flavours."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import httpx

from registrar.client.binding import endpoint
from registrar.client.calls import Call, query, read, segment, write
from registrar.client.errors import ClientError, Conflict, error_for
from registrar.client.model_calls import MODELS, get_alias
from registrar.client.sessions import AsyncSession, SyncSession
from registrar.contracts.api import VersionOut
from registrar.contracts.artifacts import (
    CollectionReport,
    Manifest,
    ManifestFile,
    UploadedFile,
    VerifyReport,
    check_artifact_path,
)
from registrar.contracts.codec import loads

T = TypeVar("T")

CHUNK = 1024 * 1024
"""Bytes read from disk per chunk of an upload: what one file in flight holds in memory."""
DEFAULT_GRACE_SECONDS = 86400.0

Progress = Callable[[int, int], None]
"""Called as bytes move: (bytes moved so far, bytes the whole transfer moves)."""


class ArtifactMismatch(ClientError):
    """What moved is not what it should be: a file whose size or SHA-256 differs from the one
    sent or from the manifest, a download cut short, or a manifest path that would land outside
    the destination. A download that raises it keeps none of its files."""

    def __init__(self, message: str) -> None:
        super().__init__(None, message, "artifact_mismatch")


# Building the requests ---------------------------------------------------------------------------


def _artifacts(model: str, version: int) -> str:
    return f"{MODELS}/{segment(model)}/versions/{segment(version)}/artifacts"


def _file_url(model: str, version: int, path: str) -> str:
    # Each segment quoted (a file may be named "a b#1.txt"); the "/" between them kept.
    return f"{_artifacts(model, version)}/" + "/".join(segment(part) for part in path.split("/"))


def get_artifacts(model: str, version: int) -> Call[Manifest]:
    """The version's manifest (sealed), or the files uploaded into it so far (`sealed` false)."""
    return read(_artifacts(model, version), Manifest.model_validate)


def seal_artifacts(model: str, version: int) -> Call[Manifest]:
    """Seal the files uploaded into the version: its manifest is recorded and never changes."""
    return write("POST", f"{_artifacts(model, version)}/seal", Manifest.model_validate)


def _new_version(model: str) -> Call[VersionOut]:
    """A version without a source: Registrar keeps its files (mlflow-artifacts:/registry/...)."""
    return write("POST", f"{MODELS}/{segment(model)}/versions", VersionOut.model_validate, {})


def _verify(model: str | None, version: int | None) -> Call[VerifyReport]:
    if version is not None and model is None:
        raise ValueError("verifying one version needs its model's name too")
    params = query(model=model, version=version)
    return read("/v1/artifacts/verify", VerifyReport.model_validate, params)


def _collect(dry_run: bool, grace_seconds: float) -> Call[CollectionReport]:
    call = write("POST", "/v1/artifacts/gc", CollectionReport.model_validate, advances=False)
    return replace(call, query=query(dry_run=dry_run, grace_seconds=grace_seconds))


def _refusal(response: httpx.Response) -> ClientError:
    """The error for a refused transfer whose body has been read."""
    try:
        body = loads(response.content) if response.content else None
    except ValueError:
        body = None
    return error_for(response.status_code, body, response.text[:500] or response.reason_phrase)


def _unbounded_read(timeout: httpx.Timeout) -> httpx.Timeout:
    """The session's timeouts without the read one: verify and gc answer once the whole store
    has been read, which may take minutes, and retrying them would only start over."""
    return httpx.Timeout(connect=timeout.connect, read=None, write=timeout.write, pool=timeout.pool)


# What both flavours share ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file to upload: its path in the version ("/"-separated), where it is, its size."""

    path: str
    source: Path
    size: int


def local_files(directory: str | os.PathLike[str]) -> list[LocalFile]:
    """Every file under `directory`, by path. Symbolic links to files are followed; links to
    directories are not (a link back up would never end), so their files are left out."""
    root = Path(directory)
    if not root.is_dir():
        raise ValueError(f"{root} is not a directory: give the directory holding the files")

    def unreadable(error: OSError) -> None:
        raise ValueError(f"cannot read {error.filename}: {error.strerror}") from error

    found: list[LocalFile] = []
    for folder, _subfolders, names in os.walk(root, onerror=unreadable, followlinks=False):
        for name in names:
            source = Path(folder, name)
            path = source.relative_to(root).as_posix()
            try:
                check_artifact_path(path)
            except ValueError as bad:
                raise ValueError(f"{source}: {bad}; rename it to upload it") from None
            try:
                found_stat = source.stat()
            except OSError as error:
                raise ValueError(
                    f"cannot read {source}: {error.strerror} (a broken symbolic link?)"
                ) from None
            if not stat.S_ISREG(found_stat.st_mode):
                raise ValueError(f"{source} is not a regular file: only files can be uploaded")
            found.append(LocalFile(path, source, found_stat.st_size))
    if not found:
        raise ValueError(f"{root} holds no files: there is nothing to upload")
    return sorted(found, key=lambda file: file.path)


def parse_version_or_alias(value: int | str) -> int | str:
    """A version number (an int, or a string of digits), or an alias's name (given as "@name")."""
    if isinstance(value, str) and value.startswith("@") and len(value) > 1:
        return value[1:]
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise ValueError(
            f"{value!r} is neither a version number nor an alias: give e.g. 3, or @champion"
        )
    if number < 1:
        raise ValueError(f"versions are numbered from 1, got {number}")
    return number


class Tally:
    """Bytes moved across a whole transfer, reported to `progress` as they move."""

    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total = total
        self.done = 0
        self._progress = progress
        if progress is not None:
            progress(0, total)

    def add(self, count: int) -> None:
        self.done += count
        if self._progress is not None:
            self._progress(self.done, self.total)


class Sha256Reader:
    """The SHA-256 and size of one file's bytes, taken chunk by chunk as they pass."""

    def __init__(self, tally: Tally) -> None:
        self._hash = hashlib.sha256()
        self._tally = tally
        self.size = 0

    def take(self, chunk: bytes) -> bytes:
        self._hash.update(chunk)
        self.size += len(chunk)
        self._tally.add(len(chunk))
        return chunk

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


def checked_upload(file: LocalFile, sent: Sha256Reader, answer: UploadedFile) -> UploadedFile:
    """The server's answer to an upload, if it stored exactly the bytes sent."""
    if (answer.digest, answer.size) != (sent.digest, sent.size):
        raise ArtifactMismatch(
            f"{file.source}: sent {sent.size} bytes with {sent.digest}, but Registrar stored"
            f" {answer.size} bytes with {answer.digest} as {file.path!r}: upload it again (the"
            " version is not sealed)"
        )
    return answer


def refuse_sealed(manifest: Manifest) -> None:
    if manifest.sealed:
        raise Conflict(
            None,
            f"version {manifest.version} of model {manifest.model!r} is sealed (manifest"
            f" {manifest.manifest_digest}): its files can no longer change; upload into a new"
            " version (leave out the version)",
            "sealed",
        )


def require_sealed(manifest: Manifest) -> None:
    if not manifest.sealed:
        raise Conflict(
            None,
            f"version {manifest.version} of model {manifest.model!r} is not sealed: its files"
            " may still change, so there is no manifest to check them against; seal it first",
            "not_sealed",
        )


@dataclass(frozen=True, slots=True)
class Landing:
    """Where one manifest file lands: `part` while it streams in, `target` once checked."""

    file: ManifestFile
    target: Path
    part: Path


def landings(dest: str | os.PathLike[str], files: list[ManifestFile]) -> list[Landing]:
    """Where each file goes under `dest`, by path; refused if any would land outside it (a
    hostile manifest, or a symbolic link in `dest` pointing elsewhere)."""
    root = Path(dest).resolve()
    paths = {file.path for file in files}
    planned: list[Landing] = []
    for file in sorted(files, key=lambda f: f.path):
        try:
            check_artifact_path(file.path)
        except ValueError as bad:
            raise ArtifactMismatch(f"the manifest names an unsafe file path: {bad}") from None
        parts = file.path.split("/")
        for depth in range(1, len(parts)):
            if (folder := "/".join(parts[:depth])) in paths:
                raise ArtifactMismatch(
                    f"the manifest names both a file {folder!r} and a file {file.path!r} inside it"
                )
        target = root.joinpath(*parts)
        if not target.resolve().is_relative_to(root):
            raise ArtifactMismatch(f"{file.path!r} would land outside {root} (a symbolic link?)")
        planned.append(Landing(file, target, target.with_name(target.name + ".part")))
    return planned


def checked_download(landing: Landing, received: Sha256Reader) -> None:
    file = landing.file
    if received.size != file.size:
        raise ArtifactMismatch(
            f"{file.path}: received {received.size} bytes, the manifest says {file.size}; the"
            " stored file may be damaged (`registrar artifacts verify` checks the store)"
        )
    if received.digest != file.digest:
        raise ArtifactMismatch(
            f"{file.path}: the bytes received hash to {received.digest}, the manifest says"
            f" {file.digest}; the stored file may be damaged (`registrar artifacts verify`)"
        )


def cut_short(landing: Landing, received: Sha256Reader) -> ArtifactMismatch:
    return ArtifactMismatch(
        f"{landing.file.path}: Registrar ended the download after {received.size} of"
        f" {landing.file.size} bytes; it does so when the stored bytes do not match the"
        " manifest (run `registrar artifacts verify`)"
    )


class Destination:
    """The directories a download makes, so that a failed one can leave `dest` as it found it."""

    def __init__(self) -> None:
        self._made: list[Path] = []

    def make(self, directory: Path) -> None:
        missing = [d for d in (directory, *directory.parents) if not d.exists()]
        directory.mkdir(parents=True, exist_ok=True)
        self._made.extend(reversed(missing))

    def settle(self, planned: list[Landing]) -> None:
        # By path: "x" moves from x.part before "x.part" moves from x.part.part.
        for landing in planned:
            landing.part.replace(landing.target)

    def discard(self, planned: list[Landing]) -> None:
        for landing in planned:
            landing.part.unlink(missing_ok=True)
        for directory in reversed(self._made):  # deepest first
            try:
                directory.rmdir()
            except OSError:
                pass  # not empty: it holds files of someone else's


_PUT_HEADERS = {"Content-Type": "application/octet-stream"}
_GET_HEADERS = {"Accept": "application/octet-stream"}


class ArtifactSurface:
    """The artifact store's JSON endpoints, for either flavour (see registrar.client.binding)."""

    get_artifacts = endpoint(get_artifacts)
    seal_artifacts = endpoint(seal_artifacts)


def _note_unsealed(error: ClientError, name: str, number: int, created: bool) -> None:
    if created:
        error.add_note(
            f"version {number} of {name!r} was registered and stays unsealed: upload into it"
            f" again with version={number} (`--version {number}`)"
        )


# The blocking flavour ----------------------------------------------------------------------------


def _file_chunks(source: Path, reader: Sha256Reader) -> Iterator[bytes]:
    with source.open("rb") as stream:
        while chunk := stream.read(CHUNK):
            yield reader.take(chunk)


class SyncArtifactTransfers(SyncSession, ArtifactSurface):
    """Uploading and downloading a version's files, blocking (part of `Client`)."""

    def upload_artifacts(
        self,
        name: str,
        directory: str | os.PathLike[str],
        version: int | None = None,
        *,
        progress: Progress | None = None,
    ) -> Manifest:
        """Upload every file under `directory` into a new version of `name` (or into its
        unsealed `version`), then seal them; the sealed manifest. Each file streams from disk,
        hashed as it goes, and Registrar must have stored exactly what was sent. Files uploaded
        into `version` before and not replaced are sealed with them. ValueError for a directory
        without files; Conflict for a sealed `version`."""
        files = local_files(directory)
        number = version
        if number is None:
            number = self.send(_new_version(name)).version
        else:
            refuse_sealed(self.get_artifacts(name, number))
        tally = Tally(sum(file.size for file in files), progress)
        try:
            for file in files:
                self._upload_file(name, number, file, tally)
            return self.seal_artifacts(name, number)
        except ClientError as failed:
            _note_unsealed(failed, name, number, version is None)
            raise

    def _upload_file(self, name: str, number: int, file: LocalFile, tally: Tally) -> UploadedFile:
        reader = Sha256Reader(tally)
        try:
            response = self._http.put(
                _file_url(name, number, file.path),
                content=_file_chunks(file.source, reader),
                headers=_PUT_HEADERS,
            )
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        if response.status_code >= 400:
            raise _refusal(response)
        return checked_upload(file, reader, UploadedFile.model_validate(loads(response.content)))

    def download_artifacts(
        self,
        name: str,
        version_or_alias: int | str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> Manifest:
        """Download every file of a sealed version into `dest` (made if need be; files there by
        the same paths are replaced); its manifest. `version_or_alias`: a number (3 or "3") or
        "@alias". Each file's size and SHA-256 must match the manifest: otherwise
        ArtifactMismatch, and none of the version's files is left in `dest`."""
        number = self._resolve(name, version_or_alias)
        manifest = self.get_artifacts(name, number)
        require_sealed(manifest)
        planned = landings(dest, manifest.files)
        tally = Tally(manifest.bytes, progress)
        destination = Destination()
        try:
            for landing in planned:
                destination.make(landing.part.parent)
                self._download_file(name, number, landing, tally)
            destination.settle(planned)
        except BaseException:
            destination.discard(planned)
            raise
        return manifest

    def _resolve(self, name: str, version_or_alias: int | str) -> int:
        wanted = parse_version_or_alias(version_or_alias)
        if isinstance(wanted, int):
            return wanted
        return self.send(get_alias(name, wanted)).version

    def _download_file(self, name: str, number: int, landing: Landing, tally: Tally) -> None:
        received = Sha256Reader(tally)
        landing.part.unlink(missing_ok=True)  # a link left there must not be written through
        url = _file_url(name, number, landing.file.path)
        try:
            with self._http.stream("GET", url, headers=_GET_HEADERS) as response:
                if response.status_code >= 400:
                    response.read()
                    raise _refusal(response)
                with landing.part.open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(received.take(chunk))
                        if received.size > landing.file.size:
                            break
        except httpx.RemoteProtocolError as error:
            raise cut_short(landing, received) from error
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        checked_download(landing, received)

    def verify_artifacts(
        self, model: str | None = None, version: int | None = None
    ) -> VerifyReport:
        """Have Registrar re-read every stored file the sealed manifests name (of `model`, and
        its `version`, when given) and check its SHA-256 (admins); `problems` lists each
        mismatch. It takes as long as reading the store does: no read timeout applies."""
        return self._unhurried(_verify(model, version))

    def collect_artifact_garbage(
        self, *, dry_run: bool = False, grace_seconds: float = DEFAULT_GRACE_SECONDS
    ) -> CollectionReport:
        """Delete stored files no manifest and no upload references, older than
        `grace_seconds` (admins); `dry_run`: only count them."""
        return self._unhurried(_collect(dry_run, grace_seconds))

    def _unhurried(self, call: Call[T]) -> T:
        timeout = _unbounded_read(self._http.timeout)
        try:
            response = self._http.request(**self._request(call), timeout=timeout)
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        return self._answer(call, response)


# The asyncio flavour -----------------------------------------------------------------------------


async def _file_chunks_async(source: Path, reader: Sha256Reader) -> AsyncIterator[bytes]:
    with source.open("rb") as stream:
        # Disk reads in a thread: a slow disk must not stall the event loop.
        while chunk := await asyncio.to_thread(stream.read, CHUNK):
            yield reader.take(chunk)


class AsyncArtifactTransfers(AsyncSession, ArtifactSurface):
    """Uploading and downloading a version's files, for asyncio (part of `AsyncClient`)."""

    async def upload_artifacts(
        self,
        name: str,
        directory: str | os.PathLike[str],
        version: int | None = None,
        *,
        progress: Progress | None = None,
    ) -> Manifest:
        """Upload every file under `directory` into a new version of `name` (or into its
        unsealed `version`), then seal them: as Client.upload_artifacts."""
        files = local_files(directory)
        number = version
        if number is None:
            number = (await self.send(_new_version(name))).version
        else:
            refuse_sealed(await self.get_artifacts(name, number))
        tally = Tally(sum(file.size for file in files), progress)
        try:
            for file in files:
                await self._upload_file(name, number, file, tally)
            return await self.seal_artifacts(name, number)
        except ClientError as failed:
            _note_unsealed(failed, name, number, version is None)
            raise

    async def _upload_file(
        self, name: str, number: int, file: LocalFile, tally: Tally
    ) -> UploadedFile:
        reader = Sha256Reader(tally)
        try:
            response = await self._http.put(
                _file_url(name, number, file.path),
                content=_file_chunks_async(file.source, reader),
                headers=_PUT_HEADERS,
            )
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        if response.status_code >= 400:
            raise _refusal(response)
        return checked_upload(file, reader, UploadedFile.model_validate(loads(response.content)))

    async def download_artifacts(
        self,
        name: str,
        version_or_alias: int | str,
        dest: str | os.PathLike[str],
        *,
        progress: Progress | None = None,
    ) -> Manifest:
        """Download every file of a sealed version into `dest`, each checked against the
        manifest: as Client.download_artifacts."""
        number = await self._resolve(name, version_or_alias)
        manifest = await self.get_artifacts(name, number)
        require_sealed(manifest)
        planned = landings(dest, manifest.files)
        tally = Tally(manifest.bytes, progress)
        destination = Destination()
        try:
            for landing in planned:
                destination.make(landing.part.parent)
                await self._download_file(name, number, landing, tally)
            destination.settle(planned)
        except BaseException:
            destination.discard(planned)
            raise
        return manifest

    async def _resolve(self, name: str, version_or_alias: int | str) -> int:
        wanted = parse_version_or_alias(version_or_alias)
        if isinstance(wanted, int):
            return wanted
        return (await self.send(get_alias(name, wanted))).version

    async def _download_file(self, name: str, number: int, landing: Landing, tally: Tally) -> None:
        received = Sha256Reader(tally)
        landing.part.unlink(missing_ok=True)  # a link left there must not be written through
        url = _file_url(name, number, landing.file.path)
        try:
            async with self._http.stream("GET", url, headers=_GET_HEADERS) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise _refusal(response)
                with landing.part.open("wb") as out:
                    async for chunk in response.aiter_bytes():
                        await asyncio.to_thread(out.write, received.take(chunk))
                        if received.size > landing.file.size:
                            break
        except httpx.RemoteProtocolError as error:
            raise cut_short(landing, received) from error
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        checked_download(landing, received)

    async def verify_artifacts(
        self, model: str | None = None, version: int | None = None
    ) -> VerifyReport:
        """Have Registrar re-read and check every stored file: as Client.verify_artifacts."""
        return await self._unhurried(_verify(model, version))

    async def collect_artifact_garbage(
        self, *, dry_run: bool = False, grace_seconds: float = DEFAULT_GRACE_SECONDS
    ) -> CollectionReport:
        """Delete unreferenced stored files: as Client.collect_artifact_garbage."""
        return await self._unhurried(_collect(dry_run, grace_seconds))

    async def _unhurried(self, call: Call[T]) -> T:
        timeout = _unbounded_read(self._http.timeout)
        try:
            response = await self._http.request(**self._request(call), timeout=timeout)
        except httpx.TransportError as error:
            raise self._unreachable(error) from error
        return self._answer(call, response)
