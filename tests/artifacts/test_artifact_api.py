"""The artifact routes over HTTP (in-process ASGI, authentication on) on a real PostgreSQL, with
the store on local disk and on a real S3 server (SeaweedFS): upload, seal, manifest, downloads
with ranges and archives, digests checked on the way out, verification, garbage collection,
roles, the audit trail and lineage."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

import httpx
import obstore
import pytest
from conftest import create_database, drop_database
from s3_server import S3Server

from registrar.access.administration import AccessAdministration
from registrar.api.app import create_app
from registrar.artifacts.blobs import BlobStore, open_blob_store
from registrar.artifacts.downloads import CorruptBlob
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role

pytestmark = pytest.mark.asyncio(loop_scope="session")

FILES = {
    "MLmodel": b"flavors:\n  sklearn: {}\n",
    "model.pkl": os.urandom(300_000),
    "meta/requirements.txt": b"scikit-learn\n",
    "meta/empty": b"",
}


@dataclass
class Served:
    client: httpx.AsyncClient
    tokens: dict[Role, str]
    blobs: BlobStore

    def as_(self, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def overwrite_blob(self, digest: str, content: bytes) -> None:
        """Write a blob behind Registrar's back, as a failing disk or a careless admin would."""
        hexdigest = digest.removeprefix("sha256:")
        key = f"blobs/sha256/{hexdigest[:2]}/{hexdigest}"
        await obstore.put_async(self.blobs._store, key, content)

    async def has_blob(self, digest: str) -> bool:
        return await self.blobs.stat(digest.removeprefix("sha256:")) is not None

    async def blobs_stored(self) -> int:
        return len([blob async for blob in self.blobs.blobs()])


@pytest.fixture(scope="module", params=["local", "s3"])
def backend(
    request: pytest.FixtureRequest, server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, BlobStore]]:
    """A fresh database and a store (on local disk, or on SeaweedFS): a database of its own per
    store, since one store does not hold the manifests the other sealed."""
    database_url, database = create_database(server_url)
    if request.param == "local":
        blobs = open_blob_store(None, tmp_path_factory.mktemp("home"))
    else:
        s3: S3Server = request.getfixturevalue("s3_server")
        with pytest.MonkeyPatch.context() as env:
            for variable, value in s3.environment(f"api-{uuid4().hex[:8]}").items():
                env.setenv(variable, value)
            blobs = open_blob_store(os.environ["REGISTRAR_ARTIFACTS_URI"], Path("."))
    yield database_url, blobs
    drop_database(server_url, database)


@pytest.fixture(scope="module")
async def served(backend: tuple[str, BlobStore]) -> AsyncIterator[Served]:
    database_url, blobs = backend
    app = create_app(database_url, auth_required=True, blobs=blobs)
    async with app.router.lifespan_context(app):
        first = await AccessAdministration(app.state.registry.store).issue_token(
            "admin", Role.ADMIN, CommandMeta("cli:test")
        )
        await app.state.access_guard.cache.reload()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registrar") as client:
            tokens = {Role.ADMIN: first.token}
            for role in (Role.VIEWER, Role.CONTRIBUTOR):
                made = await client.post(
                    "/v1/admin/tokens",
                    json={"user": role.value, "role": role.value},
                    headers={"Authorization": f"Bearer {first.token}"},
                )
                tokens[role] = made.json()["token"]
            yield Served(client, tokens, blobs)


async def new_version(served: Served, files: dict[str, bytes] | None = None) -> tuple[str, str]:
    """A new model with version 1 registered without a source; `files` uploaded into it.
    Its name and its versions' URL."""
    name = f"model-{uuid4().hex[:8]}"
    admin = served.as_(Role.ADMIN)
    assert (await served.client.post("/v1/models", json={"name": name}, headers=admin)).is_success
    registered = await served.client.post(f"/v1/models/{name}/versions", json={}, headers=admin)
    assert registered.status_code == 201, registered.text
    url = f"/v1/models/{name}/versions/1"
    for path, content in (files or {}).items():
        put = await served.client.put(f"{url}/artifacts/{path}", content=content, headers=admin)
        assert put.status_code == 201, put.text
    return name, url


def sha256(content: bytes) -> str:
    return "sha256:" + hashlib.sha256(content).hexdigest()


def expected_manifest_digest(files: dict[str, bytes]) -> str:
    """The manifest digest as README defines it, computed here without Registrar's code."""
    entries = [
        {"digest": sha256(content), "path": path, "size": len(content)}
        for path, content in sorted(files.items())
    ]
    canonical = json.dumps({"files": entries, "format": 1}, sort_keys=True, separators=(",", ":"))
    return sha256(canonical.encode())


async def test_sealing_records_a_manifest_whose_digest_becomes_the_versions_digest(
    served: Served,
) -> None:
    name, url = await new_version(served, FILES)
    admin = served.as_(Role.ADMIN)
    staged = (await served.client.get(f"{url}/artifacts", headers=admin)).json()
    assert staged["sealed"] is False and staged["file_count"] == len(FILES)

    sealed = await served.client.post(f"{url}/artifacts/seal", headers=admin)

    assert sealed.status_code == 200, sealed.text
    manifest = sealed.json()
    assert manifest["manifest_digest"] == expected_manifest_digest(FILES)
    assert {f["path"]: f["digest"] for f in manifest["files"]} == {
        path: sha256(content) for path, content in FILES.items()
    }
    assert manifest["bytes"] == sum(len(c) for c in FILES.values())
    version = (await served.client.get(url, headers=admin)).json()
    assert version["source"].startswith("mlflow-artifacts:/registry/")
    assert version["digest"] == manifest["manifest_digest"]
    assert version["artifacts"]["files"] == len(FILES)


async def test_a_sealed_version_refuses_uploads_and_a_second_seal_changes_nothing(
    served: Served,
) -> None:
    name, url = await new_version(served, {"a.txt": b"a"})
    admin = served.as_(Role.ADMIN)
    first = await served.client.post(f"{url}/artifacts/seal", headers=admin)

    again = await served.client.post(f"{url}/artifacts/seal", headers=admin)
    upload = await served.client.put(f"{url}/artifacts/b.txt", content=b"b", headers=admin)
    replace = await served.client.put(f"{url}/artifacts/a.txt", content=b"z", headers=admin)

    assert again.status_code == 200
    assert again.json()["manifest_digest"] == first.json()["manifest_digest"]
    assert again.json()["position"] == first.json()["position"]  # no new event
    assert (upload.status_code, replace.status_code) == (409, 409)
    assert "sealed" in upload.json()["error"]["message"]
    download = await served.client.get(f"{url}/artifacts/a.txt", headers=admin)
    assert download.content == b"a"


async def test_a_staged_file_can_be_dropped_before_sealing_not_after(served: Served) -> None:
    _, url = await new_version(served, {"keep": b"k", "mistake": b"m"})
    admin = served.as_(Role.ADMIN)

    dropped = await served.client.delete(f"{url}/artifacts/mistake", headers=admin)
    again = await served.client.delete(f"{url}/artifacts/mistake", headers=admin)
    sealed = await served.client.post(f"{url}/artifacts/seal", headers=admin)
    after = await served.client.delete(f"{url}/artifacts/keep", headers=admin)

    assert (dropped.status_code, again.status_code, after.status_code) == (204, 404, 409)
    assert [f["path"] for f in sealed.json()["files"]] == ["keep"]


async def test_sealing_a_version_with_no_files_is_refused(served: Served) -> None:
    _, url = await new_version(served)

    refused = await served.client.post(f"{url}/artifacts/seal", headers=served.as_(Role.ADMIN))

    assert refused.status_code == 422
    assert "no uploaded files" in refused.json()["error"]["message"]


async def test_identical_files_are_stored_once_across_versions(served: Served) -> None:
    content = os.urandom(10_000)
    before = await served.blobs_stored()
    first = await served.client.put(
        f"{(await new_version(served))[1]}/artifacts/weights.bin",
        content=content,
        headers=served.as_(Role.ADMIN),
    )
    second = await served.client.put(
        f"{(await new_version(served))[1]}/artifacts/other/name.bin",
        content=content,
        headers=served.as_(Role.ADMIN),
    )

    assert (first.json()["stored_before"], second.json()["stored_before"]) == (False, True)
    assert await served.blobs_stored() == before + 1


async def test_an_upload_whose_bytes_do_not_match_its_digest_header_stores_nothing(
    served: Served,
) -> None:
    _, url = await new_version(served)
    headers = {**served.as_(Role.ADMIN), "X-Artifact-Digest": sha256(b"something else")}

    refused = await served.client.put(f"{url}/artifacts/x.bin", content=b"x", headers=headers)
    malformed = await served.client.put(
        f"{url}/artifacts/x.bin",
        content=b"x",
        headers={**served.as_(Role.ADMIN), "X-Artifact-Digest": "md5:abc"},
    )

    assert refused.status_code == 422 and "nothing was stored" in refused.text
    assert malformed.status_code == 422 and "sha256" in malformed.text
    staged = await served.client.get(f"{url}/artifacts", headers=served.as_(Role.ADMIN))
    assert staged.json()["files"] == []


@pytest.mark.parametrize(
    "path", ["a/%2e%2e/b", "a%5cb", "a//b", "%2e", "a/%00b", "%2e/a", "x/" + "y/" * 40]
)
async def test_file_paths_that_could_escape_the_version_are_refused(
    served: Served, path: str
) -> None:
    _, url = await new_version(served)

    refused = await served.client.put(
        f"{url}/artifacts/{path}", content=b"x", headers=served.as_(Role.ADMIN)
    )

    assert refused.status_code in (404, 422), refused.text
    staged = await served.client.get(f"{url}/artifacts", headers=served.as_(Role.ADMIN))
    assert staged.json()["files"] == []


async def test_a_download_carries_its_digest_and_serves_byte_ranges(served: Served) -> None:
    _, url = await new_version(served, FILES)
    admin = served.as_(Role.ADMIN)
    await served.client.post(f"{url}/artifacts/seal", headers=admin)
    content = FILES["model.pkl"]

    whole = await served.client.get(f"{url}/artifacts/model.pkl", headers=admin)
    middle = await served.client.get(
        f"{url}/artifacts/model.pkl", headers={**admin, "Range": "bytes=100-199"}
    )
    tail = await served.client.get(
        f"{url}/artifacts/model.pkl", headers={**admin, "Range": "bytes=-10"}
    )
    outside = await served.client.get(
        f"{url}/artifacts/model.pkl", headers={**admin, "Range": f"bytes={len(content)}-"}
    )
    missing = await served.client.get(f"{url}/artifacts/nope", headers=admin)

    assert whole.content == content
    assert whole.headers["x-artifact-digest"] == sha256(content)
    assert (middle.status_code, middle.content) == (206, content[100:200])
    assert middle.headers["content-range"] == f"bytes 100-199/{len(content)}"
    assert (tail.status_code, tail.content) == (206, content[-10:])
    assert outside.status_code == 416
    assert missing.status_code == 404


async def test_the_archive_holds_every_file_of_the_version(served: Served) -> None:
    _, url = await new_version(served, FILES)
    admin = served.as_(Role.ADMIN)
    await served.client.post(f"{url}/artifacts/seal", headers=admin)

    archive = await served.client.get(f"{url}/artifacts.tar", headers=admin)

    assert archive.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(archive.content)) as tar:
        unpacked = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert unpacked == FILES


async def test_an_archive_of_a_version_not_sealed_is_refused(served: Served) -> None:
    _, url = await new_version(served, {"a": b"a"})

    refused = await served.client.get(f"{url}/artifacts.tar", headers=served.as_(Role.ADMIN))

    assert refused.status_code == 409


async def test_a_corrupted_blob_is_cut_short_never_served(served: Served) -> None:
    content = os.urandom(200_000)
    _, url = await new_version(served, {"weights.bin": content})
    admin = served.as_(Role.ADMIN)
    await served.client.post(f"{url}/artifacts/seal", headers=admin)
    await served.overwrite_blob(sha256(content), os.urandom(len(content)))  # only a hash can tell

    with pytest.raises(CorruptBlob):
        await served.client.get(f"{url}/artifacts/weights.bin", headers=admin)
    # A range cannot be hashed alone: it is served, and the digest header tells the client.
    part = await served.client.get(
        f"{url}/artifacts/weights.bin", headers={**admin, "Range": "bytes=0-9"}
    )
    assert part.status_code == 206

    report = await served.client.get("/v1/artifacts/verify", headers=admin)
    problems = report.json()["problems"]
    assert [(p["path"], p["expected"]) for p in problems if p["path"] == "weights.bin"] == [
        ("weights.bin", sha256(content))
    ]
    assert all(p["found"] != p["expected"] for p in problems)


async def test_garbage_collection_deletes_only_unreferenced_blobs_past_the_grace(
    served: Served,
) -> None:
    admin = served.as_(Role.ADMIN)
    kept_staged = os.urandom(1000)
    _, url = await new_version(served, {"staged.bin": kept_staged})
    orphan = os.urandom(1000)
    await served.overwrite_blob(sha256(orphan), orphan)  # stored, and no manifest names it

    young = await served.client.post("/v1/artifacts/gc", headers=admin)
    dry = await served.client.post("/v1/artifacts/gc?dry_run=true&grace_seconds=0", headers=admin)
    assert await served.has_blob(sha256(orphan))
    wet = await served.client.post("/v1/artifacts/gc?grace_seconds=0", headers=admin)

    assert young.json()["deleted"] == 0  # everything is younger than a day
    assert dry.json()["dry_run"] is True and dry.json()["deleted"] >= 1
    assert wet.json()["deleted"] == dry.json()["deleted"]
    assert not await served.has_blob(sha256(orphan))
    assert await served.has_blob(sha256(kept_staged))
    download = await served.client.get(f"{url}/artifacts/staged.bin", headers=admin)
    assert download.content == kept_staged


async def test_contributors_upload_viewers_download_only_admins_verify(served: Served) -> None:
    name, url = await new_version(served)
    contributor, viewer = served.as_(Role.CONTRIBUTOR), served.as_(Role.VIEWER)

    by_viewer = await served.client.put(f"{url}/artifacts/a", content=b"a", headers=viewer)
    by_contributor = await served.client.put(
        f"{url}/artifacts/a", content=b"a", headers=contributor
    )
    viewer_seal = await served.client.post(f"{url}/artifacts/seal", headers=viewer)
    sealed = await served.client.post(f"{url}/artifacts/seal", headers=contributor)
    read = await served.client.get(f"{url}/artifacts/a", headers=viewer)
    verify = await served.client.get("/v1/artifacts/verify", headers=contributor)
    gc = await served.client.post("/v1/artifacts/gc?dry_run=true", headers=contributor)
    anonymous = await served.client.get(f"{url}/artifacts/a")

    assert (by_viewer.status_code, by_contributor.status_code) == (403, 201)
    assert (viewer_seal.status_code, sealed.status_code) == (403, 200)
    assert read.content == b"a"
    assert (verify.status_code, gc.status_code, anonymous.status_code) == (403, 403, 401)


async def test_sealing_shows_in_the_audit_trail_and_on_the_lineage_node(served: Served) -> None:
    name, url = await new_version(served, {"a": b"a"})
    admin = served.as_(Role.ADMIN)
    sealed = (await served.client.post(f"{url}/artifacts/seal", headers=admin)).json()
    position = sealed["position"]

    audit = await served.client.get(
        "/v1/audit",
        params={"model": name, "action": "ArtifactsSealed", "min_position": position},
        headers=admin,
    )
    lineage = await served.client.get(
        "/v1/lineage",
        params={"node": f"version:{name}/1", "depth": 1, "min_position": position},
        headers=admin,
    )

    rows = audit.json()["events"]
    assert len(rows) == 1 and rows[0]["actor"] == "admin"
    assert sealed["manifest_digest"] in rows[0]["summary"] and "1 files" in rows[0]["summary"]
    node = next(n for n in lineage.json()["nodes"] if n["id"] == f"version:{name}/1")
    assert node["manifest_digest"] == sealed["manifest_digest"]
