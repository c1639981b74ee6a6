"""Blobs keyed by the SHA-256 of their bytes, on local disk or S3 behind one obstore store:
streamed in while hashed, stored once per digest, streamed out in byte ranges."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit
from uuid import uuid4

import obstore
from obstore.exceptions import AlreadyExistsError, GenericError, NotFoundError, NotSupportedError
from obstore.store import LocalStore, S3Store

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import ClientConfig, ObjectStore

BLOBS = "blobs/sha256/"
UPLOADS = "uploads/"
PART_SIZE = 8 * 1024 * 1024  # times PARTS_IN_FLIGHT: what an upload holds in memory
PARTS_IN_FLIGHT = 4
READ_CHUNK = 1024 * 1024  # soon sent on, yet large enough to hash fast
TRANSFER_TIMEOUT = "24h"  # a whole S3 request's; obstore's 30 s would cut a large read short

_DIGEST = re.compile(r"[0-9a-f]{64}")
_UPLOAD_KEY = re.compile(re.escape(UPLOADS) + r"[0-9a-f]{32}")
_MISSING = (FileNotFoundError, NotFoundError)  # obstore raises the former for a missing object


@dataclass(frozen=True, slots=True)
class BlobInfo:
    sha256: str
    size: int
    last_modified: datetime


@dataclass(frozen=True, slots=True)
class StoredBlob:
    sha256: str
    size: int
    existed: bool
    """True when an identical blob was already stored (this upload was dropped)."""


class DigestMismatch(Exception):
    """The bytes sent do not hash to the digest the sender promised; nothing was stored."""

    def __init__(self, expected: str, found: str, size: int) -> None:
        super().__init__(
            f"the {size} bytes sent have sha256 {found}, not the expected {expected}; nothing "
            "was stored: send the blob again, or check the digest you computed"
        )
        self.expected = expected
        self.found = found


class BlobMissing(Exception):
    """No blob is stored under the digest asked for."""

    def __init__(self, sha256: str, store: str) -> None:
        super().__init__(f"no blob with sha256 {sha256} in {store}")
        self.sha256 = sha256


def _blob_key(sha256: str) -> str:
    if not _DIGEST.fullmatch(sha256):
        raise ValueError(
            f"not a sha256 digest: {sha256!r}; expected 64 lowercase hex characters, "
            'without a "sha256:" prefix'
        )
    return f"{BLOBS}{sha256[:2]}/{sha256}"


class BlobStore:
    """Blobs keyed by their SHA-256, over one obstore store (LocalStore or S3Store)."""

    def __init__(self, store: ObjectStore, *, description: str) -> None:
        self._store = store
        self.description = description

    async def put(
        self, chunks: AsyncIterable[bytes], *, expected_sha256: str | None = None
    ) -> StoredBlob:
        """Store the streamed bytes under their digest, which must be `expected_sha256` if given."""
        if expected_sha256 is not None:
            _blob_key(expected_sha256)
        digest = hashlib.sha256()
        size = 0
        stream = aiter(chunks)
        first: list[bytes] = []
        # Read up to one part first: a blob that fits goes up in one request instead of a
        # multipart upload's three (models carry many small files).
        async for chunk in stream:
            digest.update(chunk)
            size += len(chunk)
            first.append(chunk)
            if size >= PART_SIZE:
                break
        else:
            upload = await self._upload(b"".join(first))
            return await self._settle(upload, digest.hexdigest(), size, expected_sha256)

        async def all_chunks() -> AsyncIterator[bytes]:
            nonlocal size
            yield b"".join(first)
            first.clear()
            async for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        upload = f"{UPLOADS}{uuid4().hex}"
        try:
            await obstore.put_async(
                self._store,
                upload,
                all_chunks(),
                chunk_size=PART_SIZE,
                max_concurrency=PARTS_IN_FLIGHT,
            )
        except BaseException:
            # Best effort: a failed multipart upload leaves no object, and abandoned_uploads
            # finds what this misses.
            with suppress(Exception):
                await self.delete_upload(upload)
            raise
        return await self._settle(upload, digest.hexdigest(), size, expected_sha256)

    async def put_bytes(self, data: bytes) -> StoredBlob:
        """Store a small blob held in memory (a manifest)."""
        sha256 = hashlib.sha256(data).hexdigest()
        if await self.stat(sha256) is not None:
            return StoredBlob(sha256, len(data), existed=True)
        return await self._settle(await self._upload(data), sha256, len(data), None)

    async def _upload(self, data: bytes) -> str:
        upload = f"{UPLOADS}{uuid4().hex}"
        await obstore.put_async(self._store, upload, data, use_multipart=False)
        return upload

    async def _settle(self, upload: str, found: str, size: int, expected: str | None) -> StoredBlob:
        """Move a finished upload to its blob's key, or drop it: wrong digest, or already stored."""
        if expected is not None and found != expected:
            await self.delete_upload(upload)
            raise DigestMismatch(expected, found, size)
        if await self.stat(found) is not None:
            await self.delete_upload(upload)
            return StoredBlob(found, size, existed=True)
        try:
            await obstore.rename_async(self._store, upload, _blob_key(found), overwrite=False)
        except AlreadyExistsError:
            await self.delete_upload(upload)
            return StoredBlob(found, size, existed=True)
        except NotSupportedError:
            # Plain S3 cannot copy only-if-absent (AWS_COPY_IF_NOT_EXISTS=multipart enables it
            # where the server supports it). The check above found no blob, and a writer racing
            # this one holds the same bytes under the same key, so overwriting changes nothing.
            await obstore.rename_async(self._store, upload, _blob_key(found))
        return StoredBlob(found, size, existed=False)

    async def stat(self, sha256: str) -> BlobInfo | None:
        try:
            meta = await obstore.head_async(self._store, _blob_key(sha256))
        except _MISSING:
            return None
        return BlobInfo(sha256, meta["size"], meta["last_modified"])

    def read(self, sha256: str, *, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The blob's bytes [start, end) as a stream, unchecked: the reader hashes what it needs.
        An `end` past the blob's end stops at the end; raises BlobMissing when first iterated."""
        key = _blob_key(sha256)
        if start < 0 or (end is not None and end < start):
            raise ValueError(f"not a byte range: [{start}, {end}); want 0 <= start <= end")
        return self._stream(sha256, key, start, end)

    async def _stream(
        self, sha256: str, key: str, start: int, end: int | None
    ) -> AsyncIterator[bytes]:
        if end == start:  # the stores refuse an empty range; there is nothing to fetch
            await self._at_the_end(sha256, start)
            return
        options: GetOptions = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(self._store, key, options=options)
        except _MISSING:
            raise BlobMissing(sha256, self.description) from None
        except GenericError:
            if await self._at_the_end(sha256, start):  # refused as a range past the end (416)
                return
            raise
        async for chunk in result.stream(min_chunk_size=READ_CHUNK):
            yield chunk

    async def _at_the_end(self, sha256: str, start: int) -> bool:
        """Whether `start` is the blob's end; raises when the blob is missing or ends before."""
        info = await self.stat(sha256)
        if info is None:
            raise BlobMissing(sha256, self.description)
        if start > info.size:
            raise ValueError(
                f"range starts at byte {start}, past the end of blob {sha256} ({info.size} bytes)"
            )
        return start == info.size

    async def read_bytes(self, sha256: str) -> bytes:
        """A small blob's bytes (a manifest), whole."""
        try:
            result = await obstore.get_async(self._store, _blob_key(sha256))
            return bytes(await result.bytes_async())
        except _MISSING:
            raise BlobMissing(sha256, self.description) from None

    async def delete(self, sha256: str) -> None:
        """Remove the blob; removing one that is not there is not an error."""
        with suppress(*_MISSING):
            await obstore.delete_async(self._store, _blob_key(sha256))

    async def blobs(self) -> AsyncIterator[BlobInfo]:
        async for batch in obstore.list(self._store, BLOBS, chunk_size=1000):
            for meta in batch:
                name = meta["path"].rpartition("/")[2]
                if _DIGEST.fullmatch(name):  # anything else under blobs/ is not ours
                    yield BlobInfo(name, meta["size"], meta["last_modified"])

    async def abandoned_uploads(self, older_than: datetime) -> AsyncIterator[str]:
        """Keys of uploads started before `older_than` (aware) and never finished."""
        if older_than.tzinfo is None:
            raise ValueError("older_than must be timezone-aware (e.g. datetime.now(UTC))")
        async for batch in obstore.list(self._store, UPLOADS, chunk_size=1000):
            for meta in batch:
                if meta["last_modified"] < older_than:
                    yield meta["path"]

    async def delete_upload(self, key: str) -> None:
        if not _UPLOAD_KEY.fullmatch(key):
            raise ValueError(f"not an upload key: {key!r}; expected {UPLOADS}<32 hex>")
        with suppress(*_MISSING):
            await obstore.delete_async(self._store, key)


def open_blob_store(uri: str | None, home: Path) -> BlobStore:
    """None -> local disk under home / "artifacts"; "file:///abs/path" -> local disk there;
    "s3://bucket/prefix" -> S3, configured by the usual AWS_* environment variables."""
    if uri is None:
        return _on_disk(home / "artifacts")
    parts = urlsplit(uri)
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return _on_disk(Path(unquote(parts.path)))
    if parts.scheme == "s3" and parts.netloc and not (parts.query or parts.fragment):
        store = S3Store.from_url(uri, client_options=_s3_client_options())
        where = f"s3://{parts.netloc}/{parts.path.strip('/')}".rstrip("/")
        return BlobStore(store, description=where)
    raise ValueError(
        f"unsupported artifact store {uri!r}: use file:///absolute/path for a local directory, "
        "or s3://bucket/prefix for S3 (endpoint, keys and region from AWS_ENDPOINT_URL, "
        "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION)"
    )


def _on_disk(root: Path) -> BlobStore:
    root = root.expanduser().resolve()
    return BlobStore(LocalStore(root, mkdir=True), description=f"local disk {root}")


def _s3_client_options() -> ClientConfig:
    """obstore reads the AWS_* variables itself (AWS_ENDPOINT_URL included) but refuses plain
    HTTP unless told: a local S3 server (SeaweedFS, MinIO) is usually http://."""
    options: ClientConfig = {"timeout": TRANSFER_TIMEOUT}
    for variable in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"):
        if os.environ.get(variable):
            options["allow_http"] = os.environ[variable].startswith("http://")
            break
    return options
