"""`registrar artifacts push | pull | verify | gc` as an operator runs them: the real console script
against a real `registrar serve` (PostgreSQL, a local-disk store under REGISTRAR_HOME)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from registrar_process import registrar_env, running_registrar

from registrar.cli.artifacts import TransferBar

BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Server:
    url: str
    home: Path


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`registrar serve` on the module's fresh database, its files under REGISTRAR_HOME."""
    home = Path(tmp_path_factory.mktemp("artifact-cli-home"))
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(home))
    with running_registrar("serve", "--port", "0", env=env, cwd=home) as (url, _):
        yield Server(url, home)


def registrar(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`registrar ARGS` as a shell would run it, with REGISTRAR_URL pointing at `url` only."""
    return subprocess.run(
        [str(BIN / "registrar"), *args],
        env=registrar_env(REGISTRAR_URL=url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def new_model(server: Server) -> str:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    httpx.post(f"{server.url}/v1/models", json={"name": name}).raise_for_status()
    return name


def model_directory(root: Path) -> dict[str, bytes]:
    files = {
        "MLmodel": b"flavors: {}\n" + uuid.uuid4().bytes,
        "weights/model.bin": os.urandom(100_000),
        "weights/empty": b"",
    }
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return files


def pushed(server: Server, name: str, directory: Path) -> dict[str, object]:
    result = registrar(server.url, "artifacts", "push", name, str(directory), cwd=directory)
    assert result.returncode == 0, result.stderr
    answer: dict[str, object] = json.loads(result.stdout.splitlines()[-1])
    return answer


def blob_path(home: Path, digest: str) -> Path:
    hexdigest = digest.removeprefix("sha256:")
    return home / "artifacts" / "blobs" / "sha256" / hexdigest[:2] / hexdigest


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_push_prints_the_model_version_and_manifest_digest_as_its_last_line(
    server: Server, tmp_path: Path
) -> None:
    name = new_model(server)
    model_directory(tmp_path)

    answer = pushed(server, name, tmp_path)

    assert list(answer) == ["model", "version", "manifest_digest"]
    assert (answer["model"], answer["version"]) == (name, 1)
    manifest = httpx.get(f"{server.url}/v1/models/{name}/versions/1/artifacts").json()
    assert manifest["sealed"] and manifest["manifest_digest"] == answer["manifest_digest"]


def test_pull_writes_every_file_and_says_what_it_checked(server: Server, tmp_path: Path) -> None:
    name = new_model(server)
    files = model_directory(tmp_path / "model")
    answer = pushed(server, name, tmp_path / "model")

    result = registrar(server.url, "artifacts", "pull", name, "1", "pulled", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "3 files" in result.stdout and str(answer["manifest_digest"]) in result.stdout
    for path, data in files.items():
        assert (tmp_path / "pulled" / path).read_bytes() == data


def test_push_into_a_sealed_version_fails_with_the_servers_reason(
    server: Server, tmp_path: Path
) -> None:
    name = new_model(server)
    model_directory(tmp_path)
    pushed(server, name, tmp_path)

    result = registrar(
        server.url, "artifacts", "push", name, str(tmp_path), "--version", "1", cwd=tmp_path
    )

    assert result.returncode == 1 and "is sealed" in result.stderr
    assert result.stdout == ""


def test_an_unknown_model_or_an_empty_directory_fails_with_a_message(
    server: Server, tmp_path: Path
) -> None:
    model_directory(tmp_path / "model")
    (tmp_path / "empty").mkdir()
    unknown = registrar(server.url, "artifacts", "push", "no-such-model", "model", cwd=tmp_path)
    assert unknown.returncode == 1 and "no-such-model" in unknown.stderr
    empty = registrar(server.url, "artifacts", "push", new_model(server), "empty", cwd=tmp_path)
    assert empty.returncode == 1 and "holds no files" in empty.stderr


def test_usage_errors_exit_2_and_an_unreachable_server_exits_1_naming_it(tmp_path: Path) -> None:
    assert registrar("http://127.0.0.1:9", "artifacts", "pull", "x", cwd=tmp_path).returncode == 2
    result = registrar("http://127.0.0.1:9", "artifacts", "verify", cwd=tmp_path)
    assert result.returncode == 1 and "http://127.0.0.1:9" in result.stderr


def test_verify_passes_then_names_the_damaged_file(server: Server, tmp_path: Path) -> None:
    name = new_model(server)
    files = model_directory(tmp_path)
    answer = pushed(server, name, tmp_path)

    intact = registrar(server.url, "artifacts", "verify", cwd=tmp_path)
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert re.search(r"checked \d+ versions, \d+ files, [\d,]+ bytes: all intact", intact.stdout)

    stored = blob_path(server.home, sha256(files["weights/model.bin"]))
    damaged = bytes(b ^ 0xFF for b in stored.read_bytes()[:16]) + stored.read_bytes()[16:]
    stored.write_bytes(damaged)

    broken = registrar(server.url, "artifacts", "verify", name, cwd=tmp_path)
    assert broken.returncode == 1
    [line] = [line for line in broken.stdout.splitlines() if line.startswith("PROBLEM")]
    version = answer["version"]
    assert f"{name} version {version} weights/model.bin" in line
    assert sha256(files["weights/model.bin"]) in line and sha256(damaged) in line
    assert "1 problems" in broken.stdout

    pull = registrar(server.url, "artifacts", "pull", name, str(version), "pulled", cwd=tmp_path)
    assert pull.returncode == 1 and "weights/model.bin" in pull.stderr
    assert not (tmp_path / "pulled" / "weights" / "model.bin").exists()


def test_gc_deletes_only_unreferenced_files_and_a_dry_run_nothing(
    server: Server, tmp_path: Path
) -> None:
    name = new_model(server)
    model_directory(tmp_path / "model")
    pushed(server, name, tmp_path / "model")
    # A file staged in a version not sealed yet is referenced too.
    staged = uuid.uuid4().bytes
    unsealed = httpx.post(f"{server.url}/v1/models/{name}/versions", json={}).json()["version"]
    httpx.put(
        f"{server.url}/v1/models/{name}/versions/{unsealed}/artifacts/staged.bin", content=staged
    ).raise_for_status()
    orphan = b"no version refers to me " + uuid.uuid4().bytes
    orphan_path = blob_path(server.home, sha256(orphan))
    orphan_path.parent.mkdir(parents=True, exist_ok=True)
    orphan_path.write_bytes(orphan)

    graced = registrar(server.url, "artifacts", "gc", "--dry-run", cwd=tmp_path)
    assert graced.returncode == 0, graced.stderr
    assert "would delete 0 files" in graced.stdout and "grace 86400 s" in graced.stdout

    dry = registrar(server.url, "artifacts", "gc", "--dry-run", "--grace", "0", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert f"would delete 1 files ({len(orphan)} bytes)" in dry.stdout
    assert orphan_path.exists()

    collected = registrar(server.url, "artifacts", "gc", "--grace", "0", cwd=tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert f"deleted 1 files ({len(orphan)} bytes)" in collected.stdout
    assert not orphan_path.exists()
    assert blob_path(server.home, sha256(staged)).exists()
    pull = registrar(server.url, "artifacts", "pull", name, "1", "pulled", cwd=tmp_path)
    assert pull.returncode == 0, pull.stderr


def test_the_progress_bar_shows_share_and_rate_on_one_line() -> None:
    stream = io.StringIO()
    bar = TransferBar("push", stream)
    bar(0, 20_000_000)
    bar(20_000_000, 20_000_000)
    drawn = stream.getvalue()
    assert drawn.startswith("\rpush [") and drawn.endswith("\n")
    assert " 100%" in drawn and "20.0/20.0 MB" in drawn and "MB/s" in drawn
