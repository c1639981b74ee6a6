"""The blob store's contract, run against each backend: local disk and S3 (a real SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import obstore
import pytest
from obstore.store import LocalStore, S3Store
from s3_server import S3Server

from registrar.artifacts.blobs import (
    BlobMissing,
    BlobStore,
    DigestMismatch,
    open_blob_store,
)

MiB = 1024 * 1024
UNKNOWN = "0" * 64


@pytest.fixture(params=["local", "s3"])
def location(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """Where the test's blobs live, as the URI `registrar` is given: a fresh directory, or a
    fresh prefix in the session's S3 bucket (the server starts only when a test asks)."""
    if request.param == "local":
        yield (tmp_path / "artifacts").as_uri()
        return
    server: S3Server = request.getfixturevalue("s3_server")
    env = server.environment(f"test-{uuid4().hex}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield env["REGISTRAR_ARTIFACTS_URI"]


@pytest.fixture
def blob_store(location: str, tmp_path: Path) -> BlobStore:
    return open_blob_store(location, tmp_path)


@pytest.fixture
def raw_store(location: str, blob_store: BlobStore) -> LocalStore | S3Store:
    """The same place as `blob_store`, without the blob store: to leave things behind in it."""
    if location.startswith("file:"):
        return LocalStore(Path(location.removeprefix("file://")))
    return S3Store.from_url(location, client_options={"allow_http": True})


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def read_all(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def listed(blob_store: BlobStore) -> dict[str, int]:
    return {info.sha256: info.size async for info in blob_store.blobs()}


async def test_a_stored_blob_reads_back_whole_under_its_digest(blob_store: BlobStore) -> None:
    data = b"weights " * 1000
    stored = await blob_store.put(chunks_of(data[:10], data[10:]), expected_sha256=sha256_of(data))
    assert (stored.sha256, stored.size, stored.existed) == (sha256_of(data), len(data), False)

    info = await blob_store.stat(stored.sha256)
    assert info is not None
    assert (info.sha256, info.size) == (stored.sha256, len(data))
    assert info.last_modified.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - info.last_modified) < timedelta(minutes=1)
    assert await read_all(blob_store.read(stored.sha256)) == data
    assert await blob_store.read_bytes(stored.sha256) == data


async def test_an_empty_blob_is_a_blob(blob_store: BlobStore) -> None:
    stored = await blob_store.put(chunks_of())
    assert (stored.sha256, stored.size) == (sha256_of(b""), 0)
    assert await read_all(blob_store.read(stored.sha256)) == b""


async def test_identical_content_is_stored_once(blob_store: BlobStore) -> None:
    first = await blob_store.put(chunks_of(b"same bytes"))
    again = await blob_store.put(chunks_of(b"same ", b"bytes"))
    from_memory = await blob_store.put_bytes(b"same bytes")

    assert not first.existed
    assert again.existed and from_memory.existed
    assert first.sha256 == again.sha256 == from_memory.sha256
    assert await listed(blob_store) == {first.sha256: 10}


async def test_a_digest_mismatch_stores_nothing(blob_store: BlobStore) -> None:
    with pytest.raises(DigestMismatch) as refused:
        await blob_store.put(chunks_of(b"not what was promised"), expected_sha256=UNKNOWN)

    assert UNKNOWN in str(refused.value)
    assert sha256_of(b"not what was promised") in str(refused.value)
    assert await listed(blob_store) == {}
    assert await _uploads(blob_store) == []


async def test_a_broken_stream_stores_nothing(blob_store: BlobStore) -> None:
    async def breaks_after_a_part() -> AsyncIterator[bytes]:
        yield b"x" * (9 * MiB)
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await blob_store.put(breaks_after_a_part())

    assert await listed(blob_store) == {}
    assert await _uploads(blob_store) == []


async def test_a_ranged_read_returns_exactly_those_bytes(blob_store: BlobStore) -> None:
    data = bytes(range(256)) * 4
    sha256 = (await blob_store.put_bytes(data)).sha256

    for start, end in [(0, 1), (5, 17), (1000, 1024), (1023, None), (100, None), (0, None)]:
        got = await read_all(blob_store.read(sha256, start=start, end=end))
        assert got == data[start:end], (start, end)
    assert await read_all(blob_store.read(sha256, start=1000, end=5000)) == data[1000:]
    assert await read_all(blob_store.read(sha256, start=1024)) == b""
    assert await read_all(blob_store.read(sha256, start=7, end=7)) == b""
    with pytest.raises(ValueError, match="past the end"):
        await read_all(blob_store.read(sha256, start=1025))
    with pytest.raises(ValueError, match="not a byte range"):
        blob_store.read(sha256, start=10, end=5)


async def test_an_unknown_digest_is_missing(blob_store: BlobStore) -> None:
    assert await blob_store.stat(UNKNOWN) is None
    with pytest.raises(BlobMissing, match=UNKNOWN):
        await read_all(blob_store.read(UNKNOWN))
    with pytest.raises(BlobMissing, match=UNKNOWN):
        await read_all(blob_store.read(UNKNOWN, start=3, end=10))
    with pytest.raises(BlobMissing, match=UNKNOWN):
        await blob_store.read_bytes(UNKNOWN)


async def test_a_deleted_blob_is_gone(blob_store: BlobStore) -> None:
    kept = await blob_store.put_bytes(b"kept")
    deleted = await blob_store.put_bytes(b"deleted")

    await blob_store.delete(deleted.sha256)

    assert await blob_store.stat(deleted.sha256) is None
    assert await listed(blob_store) == {kept.sha256: 4}
    await blob_store.delete(deleted.sha256)  # deleting again is not an error
    assert (await blob_store.put_bytes(b"deleted")).existed is False


async def test_blobs_lists_every_blob_with_its_size(blob_store: BlobStore) -> None:
    contents = [b"", b"a", b"bb" * 50, os.urandom(3000)]
    for data in contents:
        await blob_store.put(chunks_of(data))

    assert await listed(blob_store) == {sha256_of(data): len(data) for data in contents}
    assert await _uploads(blob_store) == []  # finished uploads leave nothing behind


async def test_an_upload_left_behind_is_found_once_old_enough(
    blob_store: BlobStore, raw_store: LocalStore | S3Store
) -> None:
    left = f"uploads/{uuid4().hex}"
    await obstore.put_async(raw_store, left, b"half a model")
    now = datetime.now(UTC)

    assert [key async for key in blob_store.abandoned_uploads(now - timedelta(hours=1))] == []
    assert [key async for key in blob_store.abandoned_uploads(now + timedelta(minutes=1))] == [left]
    await blob_store.delete_upload(left)
    assert await _uploads(blob_store) == []
    with pytest.raises(ValueError, match="not an upload key"):
        await blob_store.delete_upload(f"blobs/sha256/00/{UNKNOWN}")


async def test_a_large_upload_streams_through_in_parts(blob_store: BlobStore) -> None:
    block = os.urandom(MiB)
    digest = hashlib.sha256()

    async def forty_mebibytes() -> AsyncIterator[bytes]:
        for i in range(40):
            chunk = i.to_bytes(4, "big") + block[4:]
            digest.update(chunk)
            yield chunk

    stored = await blob_store.put(forty_mebibytes())
    assert (stored.sha256, stored.size) == (digest.hexdigest(), 40 * MiB)

    read_back = hashlib.sha256()
    async for chunk in blob_store.read(stored.sha256):
        read_back.update(chunk)
    assert read_back.hexdigest() == stored.sha256
    # A range across the boundary of two multipart parts (8 MiB each).
    across = await read_all(blob_store.read(stored.sha256, start=8 * MiB - 2, end=8 * MiB + 6))
    assert across == block[-2:] + (8).to_bytes(4, "big") + block[4:6]


@pytest.mark.parametrize(
    "bad", [f"sha256:{UNKNOWN}", UNKNOWN.upper().replace("0", "A"), UNKNOWN[:63], "", "../x"]
)
async def test_a_malformed_digest_is_refused(blob_store: BlobStore, bad: str) -> None:
    with pytest.raises(ValueError, match="64 lowercase hex"):
        await blob_store.stat(bad)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        blob_store.read(bad)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        await blob_store.read_bytes(bad)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        await blob_store.delete(bad)
    with pytest.raises(ValueError, match="64 lowercase hex"):
        await blob_store.put(chunks_of(b"x"), expected_sha256=bad)


async def _uploads(blob_store: BlobStore) -> list[str]:
    far_future = datetime.now(UTC) + timedelta(days=1)
    return [key async for key in blob_store.abandoned_uploads(far_future)]


def test_no_uri_means_local_disk_under_the_home(tmp_path: Path) -> None:
    store = open_blob_store(None, tmp_path)
    assert store.description == f"local disk {tmp_path.resolve() / 'artifacts'}"
    assert (tmp_path / "artifacts").is_dir()


def test_a_file_uri_means_local_disk_there(tmp_path: Path) -> None:
    there = tmp_path / "elsewhere" / "blobs"
    store = open_blob_store(there.as_uri(), tmp_path / "home")
    assert store.description == f"local disk {there.resolve()}"
    assert there.is_dir()


def test_an_s3_uri_means_that_bucket_and_prefix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert open_blob_store("s3://models/team-a/", tmp_path).description == "s3://models/team-a"
    assert open_blob_store("s3://models", tmp_path).description == "s3://models"


@pytest.mark.parametrize(
    "uri", ["artifacts", "/abs/path", "file://relative/path", "ftp://host/x", "s3://", "gs://b/p"]
)
def test_an_unsupported_uri_is_refused_with_the_forms_that_work(uri: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"file:///absolute/path.*s3://bucket/prefix"):
        open_blob_store(uri, tmp_path)
