"""The real MLflow client loads models whose files Registrar's artifact store holds: a version's
files pushed through /v1 and sealed are served by MLflow's artifact proxy API, so `models:/NAME/N`
and `models:/NAME@ALIAS` work with only MLFLOW_TRACKING_URI pointing at Registrar."""

from __future__ import annotations

import filecmp
import hashlib
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import mlflow.artifacts
import numpy as np
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from registrar_process import registrar_env, running_registrar

HEADERS = {"X-Registrar-Actor": "mlflow-user"}
PROXY = "/api/2.0/mlflow-artifacts/artifacts"
X = np.arange(40, dtype=float).reshape(20, 2)
Y = (X[:, 0] > 20).astype(int)


@dataclass(frozen=True)
class Server:
    url: str
    home: Path


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    home = tmp_path_factory.mktemp("registrar-home")
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(home))
    cwd = tmp_path_factory.mktemp("artifact-proxy-serve")
    with running_registrar("serve", "--port", "0", env=env, cwd=cwd) as (url, _):
        yield Server(url, home)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[MlflowClient]:
    """MLflow's tracking and registry URIs set to Registrar, nothing else; both as they were
    afterwards (this server stops with the module)."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", server.url)
    mp.setenv("MLFLOW_REGISTRY_URI", server.url)
    mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a failure fails the test at once
    mp.setenv("MLFLOW_ALLOW_MODEL_CODE_EXECUTION", "true")  # our own pickle, made just now
    with _use_tracking_uri(server.url):
        yield MlflowClient()
    mp.undo()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """A tiny scikit-learn model saved in MLflow's format (cloudpickle: skops is not installed),
    with one extra file in a nested directory; and its predictions on X."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    model = LogisticRegression().fit(X, Y)
    path = tmp_path_factory.mktemp("saved") / "model"
    mlflow.sklearn.save_model(model, path, serialization_format="cloudpickle")
    (path / "notes" / "deep").mkdir(parents=True)
    (path / "notes" / "deep" / "readme.txt").write_text("trained on 20 rows\n")
    return path, model.predict(X)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def files_under(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def push(url: str, name: str, directory: Path, *, source: str | None = None) -> int:
    """Register a version of `name` (and the model if needed), upload every file under
    `directory` into it with plain HTTP against /v1, and seal it; its number."""
    with httpx.Client(base_url=url, headers=HEADERS, timeout=30) as http:
        if http.get(f"/v1/models/{name}").status_code == 404:
            http.post("/v1/models", json={"name": name}).raise_for_status()
        body = {} if source is None else {"source": source}
        created = http.post(f"/v1/models/{name}/versions", json=body)
        created.raise_for_status()
        number = int(created.json()["version"])
        for relative in files_under(directory):
            http.put(
                f"/v1/models/{name}/versions/{number}/artifacts/{relative}",
                content=(directory / relative).read_bytes(),
            ).raise_for_status()
        http.post(f"/v1/models/{name}/versions/{number}/artifacts/seal").raise_for_status()
    return number


def set_alias(url: str, name: str, alias: str, number: int) -> None:
    httpx.put(
        f"{url}/v1/models/{name}/aliases/{alias}", json={"version": number}, headers=HEADERS
    ).raise_for_status()


def model_id_of(client: MlflowClient, name: str, number: int) -> str:
    uri = client.get_model_version_download_uri(name, str(number))
    return uri.removeprefix("mlflow-artifacts:/registry/").split("/")[0]


@pytest.fixture(scope="module")
def pushed(server: Server, client: MlflowClient, saved_model: tuple[Path, np.ndarray]) -> str:
    """A model whose version 1 holds the saved model, sealed, aliased `champion`."""
    name = unique("iris")
    assert push(server.url, name, saved_model[0]) == 1
    set_alias(server.url, name, "champion", 1)
    return name


def test_the_download_uri_of_a_sealed_version_is_registrars_artifact_proxy(
    client: MlflowClient, pushed: str
) -> None:
    uri = client.get_model_version_download_uri(pushed, "1")
    model_id = uri.removeprefix("mlflow-artifacts:/registry/").split("/")[0]
    assert uri == f"mlflow-artifacts:/registry/{model_id}/1"
    uuid.UUID(model_id)


def test_pyfunc_loads_a_model_by_alias_and_predicts_as_the_original(
    client: MlflowClient, pushed: str, saved_model: tuple[Path, np.ndarray]
) -> None:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(f"models:/{pushed}@champion")
    assert np.array_equal(np.asarray(loaded.predict(X)), saved_model[1])


def test_sklearn_loads_a_model_by_version_number(
    client: MlflowClient, pushed: str, saved_model: tuple[Path, np.ndarray]
) -> None:
    import mlflow.sklearn

    model = mlflow.sklearn.load_model(f"models:/{pushed}/1")
    assert np.array_equal(model.predict(X), saved_model[1])


def test_downloaded_artifacts_are_the_pushed_files_byte_for_byte(
    client: MlflowClient, pushed: str, saved_model: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{pushed}/1", dst_path=str(tmp_path)))
    original = saved_model[0]
    assert files_under(local) == files_under(original)
    _, mismatch, errors = filecmp.cmpfiles(original, local, files_under(original), shallow=False)
    assert (mismatch, errors) == ([], [])

    (tmp_path / "one").mkdir()
    one = mlflow.artifacts.download_artifacts(
        f"models:/{pushed}/1/MLmodel", dst_path=str(tmp_path / "one")
    )
    assert Path(one).read_bytes() == (original / "MLmodel").read_bytes()


def test_listing_answers_the_direct_children_by_base_name_as_mlflow_server_does(
    server: Server, client: MlflowClient, pushed: str, saved_model: tuple[Path, np.ndarray]
) -> None:
    root = f"registry/{model_id_of(client, pushed, 1)}/1"
    original = saved_model[0]
    for prefix in ("/api/2.0", "/ajax-api/2.0"):
        listed = httpx.get(
            f"{server.url}{prefix}/mlflow-artifacts/artifacts", params={"path": root}
        ).json()["files"]
        assert {
            "path": "MLmodel",
            "is_dir": False,
            "file_size": (original / "MLmodel").stat().st_size,
        } in listed
        assert {"path": "notes", "is_dir": True} in listed
        assert [f["path"] for f in listed] == sorted(f["path"] for f in listed)
    deep = httpx.get(f"{server.url}{PROXY}", params={"path": f"{root}/notes"}).json()
    assert deep == {"files": [{"path": "deep", "is_dir": True}]}
    # A file, or a directory that holds nothing: no children (how the client tells a file).
    for empty in (f"{root}/MLmodel", f"{root}/nothing/here"):
        assert httpx.get(f"{server.url}{PROXY}", params={"path": empty}).json() == {"files": []}


def test_unknown_models_versions_and_files_are_resource_does_not_exist(
    server: Server, client: MlflowClient, pushed: str
) -> None:
    model_id = model_id_of(client, pushed, 1)
    for path in (
        f"registry/{uuid.uuid4()}/1",
        f"registry/{model_id}/9",
        "registry/not-a-model-id/1",
        "registry/run:abc/1",
        "registry",
    ):
        answer = httpx.get(f"{server.url}{PROXY}", params={"path": path})
        assert answer.status_code == 404, path
        assert answer.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", path
        download = httpx.get(f"{server.url}{PROXY}/{path}/MLmodel")
        assert download.status_code == 404, path
        assert download.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST", path
    missing = httpx.get(f"{server.url}{PROXY}/registry/{model_id}/1/no/such/file")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
    assert "no file 'no/such/file'" in missing.json()["message"]
    # The MLflow client raises the proxy's refusal as requests' HTTPError, message and all.
    with pytest.raises(requests.HTTPError, match="RESOURCE_DOES_NOT_EXIST.*has no version 9"):
        mlflow.artifacts.download_artifacts(f"mlflow-artifacts:/registry/{model_id}/9")


def test_a_version_not_sealed_keeps_its_source_and_is_not_served(
    server: Server, client: MlflowClient
) -> None:
    name = unique("unsealed")
    with httpx.Client(base_url=server.url, headers=HEADERS) as http:
        http.post("/v1/models", json={"name": name}).raise_for_status()
        http.post(f"/v1/models/{name}/versions", json={}).raise_for_status()
        http.put(
            f"/v1/models/{name}/versions/1/artifacts/MLmodel", content=b"flavors: {}\n"
        ).raise_for_status()
    uri = client.get_model_version_download_uri(name, "1")
    assert uri.startswith("mlflow-artifacts:/registry/")  # its source, as registered
    path = uri.removeprefix("mlflow-artifacts:/")
    answer = httpx.get(f"{server.url}{PROXY}", params={"path": path})
    assert answer.status_code == 404
    assert "no sealed files" in answer.json()["message"]
    assert httpx.get(f"{server.url}{PROXY}/{path}/MLmodel").status_code == 404

    other = unique("external")
    httpx.post(f"{server.url}/v1/models", json={"name": other}, headers=HEADERS)
    httpx.post(
        f"{server.url}/v1/models/{other}/versions",
        json={"source": "s3://bucket/churn/model"},
        headers=HEADERS,
    ).raise_for_status()
    assert client.get_model_version_download_uri(other, "1") == "s3://bucket/churn/model"


def test_a_version_with_an_external_source_filled_and_sealed_later_is_served_from_registrar(
    server: Server, client: MlflowClient, saved_model: tuple[Path, np.ndarray]
) -> None:
    import mlflow.sklearn

    name = unique("filled")
    number = push(server.url, name, saved_model[0], source="s3://bucket/elsewhere/model")
    assert client.get_model_version(name, str(number)).source == "s3://bucket/elsewhere/model"
    assert client.get_model_version_download_uri(name, str(number)).startswith(
        "mlflow-artifacts:/registry/"
    )
    model = mlflow.sklearn.load_model(f"models:/{name}/{number}")
    assert np.array_equal(model.predict(X), saved_model[1])


def test_a_deleted_version_is_no_longer_served(
    server: Server, client: MlflowClient, saved_model: tuple[Path, np.ndarray]
) -> None:
    name = unique("deleted")
    push(server.url, name, saved_model[0])
    path = f"registry/{model_id_of(client, name, 1)}/1"
    assert httpx.get(f"{server.url}{PROXY}/{path}/MLmodel").status_code == 200
    client.delete_model_version(name, "1")
    assert httpx.get(f"{server.url}{PROXY}/{path}/MLmodel").status_code == 404
    assert httpx.get(f"{server.url}{PROXY}", params={"path": path}).status_code == 404


def test_uploads_and_deletes_through_the_proxy_are_refused(
    server: Server,
    client: MlflowClient,
    pushed: str,
    saved_model: tuple[Path, np.ndarray],
    tmp_path: Path,
) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    uri = client.get_model_version_download_uri(pushed, "1")
    local = tmp_path / "MLmodel"
    local.write_text("flavors: {}\n")
    with pytest.raises(Exception, match="read-only") as refused:
        get_artifact_repository(uri).log_artifact(str(local))  # type: ignore[no-untyped-call]
    assert "403" in str(refused.value)
    path = uri.removeprefix("mlflow-artifacts:/")
    for method in ("PUT", "POST", "DELETE"):
        answer = httpx.request(method, f"{server.url}{PROXY}/{path}/MLmodel", content=b"x")
        assert answer.status_code == 403, method
        assert answer.json()["error_code"] == "PERMISSION_DENIED", method
        assert "registrar artifacts push" in answer.json()["message"]
    served = httpx.get(f"{server.url}{PROXY}/{path}/MLmodel").content
    assert served == (saved_model[0] / "MLmodel").read_bytes()


def test_a_corrupted_blob_fails_the_download_instead_of_serving_wrong_bytes(
    server: Server, client: MlflowClient, saved_model: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    directory = Path(shutil.copytree(saved_model[0], tmp_path / "model"))
    unique_bytes = uuid.uuid4().bytes * 64  # a blob no other test shares
    (directory / "weights.bin").write_bytes(unique_bytes)
    name = unique("corrupted")
    push(server.url, name, directory)

    digest = hashlib.sha256(unique_bytes).hexdigest()
    blob = server.home / "artifacts" / "blobs" / "sha256" / digest[:2] / digest
    assert blob.read_bytes() == unique_bytes
    blob.write_bytes(bytes(len(unique_bytes)))  # same size, other bytes

    (tmp_path / "out").mkdir()
    with pytest.raises(MlflowException) as failed:
        mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=str(tmp_path / "out"))
    assert "weights.bin" in str(failed.value)
    served = tmp_path / "out" / "weights.bin"
    assert not served.exists() or served.read_bytes() != bytes(len(unique_bytes))
