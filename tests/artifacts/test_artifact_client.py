"""The Python client's artifact transfers against a real `registrar serve` (PostgreSQL, a local-disk
store), each test once per flavour (Client, AsyncClient): a directory pushed and sealed, pulled
back byte for byte by number or alias, sealed versions kept shut, and damaged files refused."""

from __future__ import annotations

import hashlib
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from registrar_process import registrar_env, running_registrar

from registrar import AsyncClient, Client, Conflict, NotFound
from registrar.client.artifact_transfers import (
    ArtifactMismatch,
    landings,
    local_files,
    parse_version_or_alias,
)
from registrar.contracts.artifacts import ManifestFile, manifest_digest

AnyClient = Client | AsyncClient


@pytest.fixture(scope="module")
def registrar_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("artifact-client-home"))


@pytest.fixture(scope="module")
def registrar_url(database_url: str, registrar_home: Path) -> Iterator[str]:
    """`registrar serve` on the module's fresh database, its files under REGISTRAR_HOME."""
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(registrar_home))
    with running_registrar("serve", "--port", "0", env=env, cwd=registrar_home) as (url, _):
        yield url


@pytest.fixture(params=["sync", "async"])
async def client(request: pytest.FixtureRequest, registrar_url: str) -> AsyncIterator[AnyClient]:
    if request.param == "sync":
        with Client(registrar_url) as sync_client:
            yield sync_client
    else:
        async with AsyncClient(registrar_url) as async_client:
            yield async_client


async def done(answer: Any) -> Any:
    """What a client method answered: awaited when the flavour is async."""
    return await answer if inspect.isawaitable(answer) else answer


async def new_model(client: AnyClient) -> str:
    name = f"model-{uuid.uuid4().hex[:8]}"
    await done(client.create_model(name))
    return name


async def every(items: Any) -> list[Any]:
    """Every item of a list method's iterator, sync or async."""
    if hasattr(items, "__aiter__"):
        return [item async for item in items]
    return list(items)


def model_directory(root: Path) -> dict[str, bytes]:
    """A model's files, nested, one of them empty, all unique to this call; written under root."""
    files = {
        "MLmodel": b"flavors:\n  sklearn: {}\n" + uuid.uuid4().bytes,
        "model.pkl": os.urandom(300_000),
        "meta/requirements.txt": b"scikit-learn\n" + uuid.uuid4().bytes,
        "meta/deep/empty": b"",
        "name with spaces #1.txt": uuid.uuid4().bytes,
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return files


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree(root: Path) -> dict[str, bytes]:
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
    }


def blob_path(home: Path, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    return home / "artifacts" / "blobs" / "sha256" / hexdigest[:2] / hexdigest


# Pushing ------------------------------------------------------------------------------------------


async def test_a_pushed_directory_is_sealed_with_every_file_and_its_sha256(
    client: AnyClient, tmp_path: Path
) -> None:
    name = await new_model(client)
    files = model_directory(tmp_path)
    moved: list[tuple[int, int]] = []

    manifest = await done(
        client.upload_artifacts(name, tmp_path, progress=lambda d, t: moved.append((d, t)))
    )

    expected = [
        ManifestFile(path=path, size=len(data), digest=sha256(data))
        for path, data in sorted(files.items())
    ]
    assert manifest.sealed and (manifest.model, manifest.version) == (name, 1)
    assert manifest.files == expected
    assert manifest.file_count == len(files)
    assert manifest.bytes == sum(len(data) for data in files.values())
    assert manifest.manifest_digest == manifest_digest(expected)
    total = manifest.bytes
    assert moved[0] == (0, total) and moved[-1] == (total, total)
    version = await done(client.get_version(name, 1))
    assert version.source.startswith("mlflow-artifacts:/registry/")
    assert version.artifacts is not None
    assert version.artifacts.manifest_digest == manifest.manifest_digest


async def test_a_list_read_after_a_push_sees_the_sealed_files(
    client: AnyClient, tmp_path: Path
) -> None:
    name = await new_model(client)
    model_directory(tmp_path)
    before = client.position
    manifest = await done(client.upload_artifacts(name, tmp_path))
    assert client.position > before  # the seal's position, sent as min_position from now on
    [listed] = await every(client.list_versions(name))
    assert listed.artifacts is not None
    assert listed.artifacts.manifest_digest == manifest.manifest_digest


async def test_the_same_directory_pushed_twice_gives_the_same_manifest_digest(
    client: AnyClient, tmp_path: Path
) -> None:
    name = await new_model(client)
    model_directory(tmp_path)
    first = await done(client.upload_artifacts(name, tmp_path))
    second = await done(client.upload_artifacts(name, tmp_path))
    assert (first.version, second.version) == (1, 2)
    assert first.manifest_digest == second.manifest_digest


async def test_pushing_into_a_sealed_version_is_a_conflict(
    client: AnyClient, tmp_path: Path
) -> None:
    name = await new_model(client)
    model_directory(tmp_path)
    sealed = await done(client.upload_artifacts(name, tmp_path))
    with pytest.raises(Conflict, match="is sealed"):
        await done(client.upload_artifacts(name, tmp_path, sealed.version))


async def test_a_registered_unsealed_version_is_filled_and_sealed(
    client: AnyClient, tmp_path: Path
) -> None:
    name = await new_model(client)
    registered = await done(client.register_version(name, ""))
    files = model_directory(tmp_path)
    manifest = await done(client.upload_artifacts(name, tmp_path, registered.version))
    assert manifest.sealed and manifest.version == registered.version
    assert [f.path for f in manifest.files] == sorted(files)


async def test_an_empty_directory_is_refused_before_any_version_is_registered(
    client: AnyClient, tmp_path: Path
) -> None:
    name = await new_model(client)
    (tmp_path / "only-folders" / "inside").mkdir(parents=True)
    with pytest.raises(ValueError, match="holds no files"):
        await done(client.upload_artifacts(name, tmp_path))
    assert (await done(client.get_model(name))).latest_version == 0


async def test_pushing_to_a_model_that_does_not_exist_is_not_found(
    client: AnyClient, tmp_path: Path
) -> None:
    model_directory(tmp_path)
    with pytest.raises(NotFound):
        await done(client.upload_artifacts(f"absent-{uuid.uuid4().hex[:8]}", tmp_path))


# Pulling ------------------------------------------------------------------------------------------


async def test_a_pulled_version_has_the_very_bytes_pushed(
    client: AnyClient, tmp_path: Path
) -> None:
    name = await new_model(client)
    files = model_directory(tmp_path / "pushed")
    pushed = await done(client.upload_artifacts(name, tmp_path / "pushed"))
    moved: list[tuple[int, int]] = []

    pulled = await done(
        client.download_artifacts(
            name, pushed.version, tmp_path / "pulled", progress=lambda d, t: moved.append((d, t))
        )
    )

    assert pulled == pushed
    assert tree(tmp_path / "pulled") == files  # no .part file left over either
    assert moved[-1] == (pushed.bytes, pushed.bytes)


async def test_a_version_is_pulled_by_its_alias(client: AnyClient, tmp_path: Path) -> None:
    name = await new_model(client)
    model_directory(tmp_path / "one")
    files = model_directory(tmp_path / "two")
    await done(client.upload_artifacts(name, tmp_path / "one"))
    second = await done(client.upload_artifacts(name, tmp_path / "two"))
    await done(client.set_alias(name, "champion", second.version))

    pulled = await done(client.download_artifacts(name, "@champion", tmp_path / "pulled"))

    assert pulled.version == second.version
    assert tree(tmp_path / "pulled") == files


async def test_a_version_not_sealed_yet_is_not_pulled(client: AnyClient, tmp_path: Path) -> None:
    name = await new_model(client)
    registered = await done(client.register_version(name, ""))
    with pytest.raises(Conflict, match="not sealed"):
        await done(client.download_artifacts(name, str(registered.version), tmp_path / "pulled"))
    assert not (tmp_path / "pulled").exists()


async def test_a_corrupted_file_is_refused_and_nothing_is_left_in_dest(
    client: AnyClient, tmp_path: Path, registrar_home: Path
) -> None:
    name = await new_model(client)
    files = model_directory(tmp_path / "pushed")
    pushed = await done(client.upload_artifacts(name, tmp_path / "pushed"))
    stored = blob_path(registrar_home, sha256(files["meta/requirements.txt"]))
    damaged = bytearray(stored.read_bytes())
    damaged[0] ^= 0xFF  # same length, different bytes
    stored.write_bytes(bytes(damaged))

    dest = tmp_path / "pulled"
    with pytest.raises(ArtifactMismatch, match="meta/requirements.txt"):
        await done(client.download_artifacts(name, pushed.version, dest))

    assert not dest.exists() or list(dest.rglob("*")) == []


# What both flavours share -------------------------------------------------------------------------


def test_a_directory_is_walked_into_sorted_posix_paths(tmp_path: Path) -> None:
    files = model_directory(tmp_path / "model")
    (tmp_path / "model" / "loop").symlink_to(tmp_path / "model")  # a link back up: not followed
    (tmp_path / "elsewhere.txt").write_bytes(b"linked")
    (tmp_path / "model" / "linked.txt").symlink_to(tmp_path / "elsewhere.txt")

    walked = local_files(tmp_path / "model")

    assert [f.path for f in walked] == sorted([*files, "linked.txt"])
    assert {f.path: f.size for f in walked}["linked.txt"] == len(b"linked")


def test_version_numbers_and_aliases_are_told_apart() -> None:
    assert parse_version_or_alias(3) == 3
    assert parse_version_or_alias("12") == 12
    assert parse_version_or_alias("@champion") == "champion"
    for wrong in ("champion", "@", "0", "-1", "³", True):
        with pytest.raises(ValueError):
            parse_version_or_alias(wrong)


def test_a_manifest_path_leaving_dest_is_refused(tmp_path: Path) -> None:
    def manifest_of(*paths: str) -> list[ManifestFile]:
        return [ManifestFile(path=p, size=0, digest=sha256(b"")) for p in paths]

    with pytest.raises(ArtifactMismatch, match="unsafe"):
        landings(tmp_path, manifest_of("../escape"))
    with pytest.raises(ArtifactMismatch, match="unsafe"):
        landings(tmp_path, manifest_of("/etc/passwd"))
    (tmp_path / "out").symlink_to(tmp_path.parent)
    with pytest.raises(ArtifactMismatch, match="outside"):
        landings(tmp_path, manifest_of("out/escape"))
    with pytest.raises(ArtifactMismatch, match="inside it"):
        landings(tmp_path, manifest_of("a", "a/b"))
    planned = landings(tmp_path, manifest_of("x", "x.part"))
    assert [(p.target.name, p.part.name) for p in planned] == [
        ("x", "x.part"),
        ("x.part", "x.part.part"),
    ]


# A server that misbehaves (an httpx mock transport) -----------------------------------------------


def unsealed_manifest(name: str) -> dict[str, Any]:
    return {
        "model": name,
        "version": 1,
        "sealed": False,
        "manifest_digest": None,
        "sealed_at": None,
        "file_count": 0,
        "bytes": 0,
        "files": [],
    }


@pytest.fixture(params=["sync", "async"])
async def misbehaving(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """Make a client of either flavour whose requests `answer` handles."""
    made: list[AnyClient] = []

    def make(answer: Any) -> AnyClient:
        transport = httpx.MockTransport(answer)
        flavour = Client if request.param == "sync" else AsyncClient
        made.append(flavour("http://registrar", transport=transport, retries=0))
        return made[-1]

    yield make
    for client in made:
        await client.aclose() if isinstance(client, AsyncClient) else client.close()


async def test_an_upload_stored_with_another_digest_is_refused(
    misbehaving: Any, tmp_path: Path
) -> None:
    (tmp_path / "weights.bin").write_bytes(b"the real bytes")

    def answer(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(200, json=unsealed_manifest("m"))
        assert request.content == b"the real bytes"
        wrong = {
            "path": "weights.bin",
            "size": 14,
            "digest": sha256(b"other"),
            "stored_before": False,
        }
        return httpx.Response(201, json=wrong)

    with pytest.raises(ArtifactMismatch, match="but Registrar stored"):
        await done(misbehaving(answer).upload_artifacts("m", tmp_path, 1))


async def test_a_download_whose_bytes_differ_from_the_manifest_leaves_nothing(
    misbehaving: Any, tmp_path: Path
) -> None:
    files = [
        {"path": "a/first.txt", "size": 5, "digest": sha256(b"first")},
        {"path": "b/second.txt", "size": 6, "digest": sha256(b"second")},
    ]
    sealed = {
        **unsealed_manifest("m"),
        "sealed": True,
        "manifest_digest": manifest_digest([ManifestFile(**f) for f in files]),
        "file_count": 2,
        "bytes": 11,
        "files": files,
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/artifacts"):
            return httpx.Response(200, json=sealed)
        served = b"first" if request.url.path.endswith("first.txt") else b"SECOND"
        return httpx.Response(200, content=served)

    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "mine.txt").write_bytes(b"kept")
    with pytest.raises(ArtifactMismatch, match="b/second.txt: the bytes received hash to"):
        await done(misbehaving(answer).download_artifacts("m", 1, dest))
    assert tree(dest) == {"mine.txt": b"kept"}
    assert sorted(p.name for p in dest.iterdir()) == ["mine.txt"]  # its folders are gone too
