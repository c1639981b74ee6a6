"""Reading files back out of the store as streams that check what they serve: a whole file is
hashed on the way out and its last chunk is held back until the hash matches the manifest, so a
corrupted blob ends the download with an error instead of being served silently. An archive of a
version is a tar stream built from such files."""

from __future__ import annotations

import hashlib
import tarfile
import time
from collections.abc import AsyncIterator

from registrar.artifacts.blobs import BlobStore
from registrar.contracts.artifacts import ManifestFile

_TAR_BLOCK = 512


class CorruptBlob(Exception):
    """The stored bytes do not match the manifest: the download was cut short."""


async def verified(
    blobs: BlobStore, file: ManifestFile, start: int = 0, end: int | None = None
) -> AsyncIterator[bytes]:
    """The bytes [start, end) of `file`. A whole file is checked against its digest before its
    last chunk leaves; a range (which cannot be hashed alone) against its length."""
    end = file.size if end is None else end
    whole = start == 0 and end == file.size
    hasher = hashlib.sha256()
    held: bytes | None = None
    served = 0
    async for chunk in blobs.read(file.digest.removeprefix("sha256:"), start=start, end=end):
        if not chunk:
            continue
        served += len(chunk)
        if served > end - start:
            break
        if whole:
            hasher.update(chunk)
        if held is not None:
            yield held
        held = chunk
    if served != end - start:
        raise CorruptBlob(
            f"{file.path}: the store holds {'more' if served > end - start else 'fewer'} bytes"
            f" than the manifest's {file.size}"
        )
    if whole and "sha256:" + hasher.hexdigest() != file.digest:
        raise CorruptBlob(
            f"{file.path}: the stored bytes hash to sha256:{hasher.hexdigest()}, the manifest"
            f" says {file.digest}"
        )
    if held is not None:
        yield held


def _tar_header(file: ManifestFile, mtime: float) -> bytes:
    info = tarfile.TarInfo(file.path)
    info.size = file.size
    info.mtime = int(mtime)
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


async def tar_archive(
    blobs: BlobStore, files: list[ManifestFile], mtime: float | None = None
) -> AsyncIterator[bytes]:
    """A tar archive of `files`, streamed: each file verified as it goes (see `verified`)."""
    mtime = time.time() if mtime is None else mtime
    for file in sorted(files, key=lambda f: f.path):
        yield _tar_header(file, mtime)
        async for chunk in verified(blobs, file):
            yield chunk
        if padding := -file.size % _TAR_BLOCK:
            yield bytes(padding)
    yield bytes(2 * _TAR_BLOCK)
