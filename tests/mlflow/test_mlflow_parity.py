"""Where MLflow clients depend on the server's exact behaviour: sources MLflow refuses are
refused (path traversal, NUL, local paths, a runs:/ URI of another run) with MLflow's code and
words, at both doors; a deleted version is not found; missing models and versions are named in
MLflow's wording."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import httpx
import pytest

MLFLOW = "/api/2.0/mlflow"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid4().hex[:8]}"


@pytest.fixture
async def model(api: httpx.AsyncClient) -> str:
    name = unique("parity")
    created = await api.post(f"{MLFLOW}/registered-models/create", json={"name": name})
    assert created.status_code == 200, created.text
    return name


REFUSED_SOURCES = [
    ("/tmp/model", ""),
    ("file:///etc/passwd", ""),
    ("not a uri", ""),
    ("s3://bucket/models/../../secrets", ""),
    ("s3://bucket/%2e%2e%2f%2e%2e%2fsecrets", ""),
    ("https://host/api/2.0/mlflow-artifacts/artifacts%00", ""),
    ("s3://bucket/./model", ""),
    ("runs:/abc123/model", "other-run"),
    ("runs:/abc123/model", ""),
    ("models://host/m/1", ""),
]


@pytest.mark.parametrize(("source", "run_id"), REFUSED_SOURCES)
async def test_sources_mlflow_refuses_are_refused_at_both_doors(
    api: httpx.AsyncClient, model: str, source: str, run_id: str
) -> None:
    answer = await api.post(
        f"{MLFLOW}/model-versions/create", json={"name": model, "source": source, "run_id": run_id}
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert answer.json()["message"].startswith(f"Invalid model version source: '{source}'")
    native = await api.post(
        f"/v1/models/{model}/versions", json={"source": source, "run_id": run_id}
    )
    assert native.status_code == 422, native.text
    listed = await api.get(f"{MLFLOW}/registered-models/get", params={"name": model})
    assert listed.json()["registered_model"].get("latest_versions", []) == []


@pytest.mark.parametrize(
    ("source", "run_id"),
    [("runs:/abc123/model", "abc123"), ("s3://bucket/models/m/1", ""), ("models:/m/1", "")],
)
async def test_sources_mlflow_accepts_are_accepted(
    api: httpx.AsyncClient, model: str, source: str, run_id: str
) -> None:
    answer = await api.post(
        f"{MLFLOW}/model-versions/create", json={"name": model, "source": source, "run_id": run_id}
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"]["source"] == source


async def test_a_deleted_version_is_not_found_for_a_stage_transition(
    api: httpx.AsyncClient, model: str
) -> None:
    for _ in range(2):
        made = await api.post(
            f"{MLFLOW}/model-versions/create", json={"name": model, "source": "s3://b/m"}
        )
        assert made.status_code == 200
    deleted = await api.request(
        "DELETE", f"{MLFLOW}/model-versions/delete", json={"name": model, "version": "2"}
    )
    assert deleted.status_code == 200
    moved = await api.post(
        f"{MLFLOW}/model-versions/transition-stage",
        json={"name": model, "version": "2", "stage": "Staging"},
    )
    assert moved.status_code == 404, moved.text
    assert moved.json() == {
        "error_code": "RESOURCE_DOES_NOT_EXIST",
        "message": f"Model Version (name={model}, version=2) not found",
    }


async def test_missing_models_and_versions_are_named_in_mlflows_words(
    api: httpx.AsyncClient, model: str
) -> None:
    missing = unique("missing")
    answer = await api.get(f"{MLFLOW}/registered-models/get", params={"name": missing})
    assert answer.status_code == 404
    assert answer.json()["message"] == f"Registered Model with name={missing} not found"
    tagged = await api.post(
        f"{MLFLOW}/model-versions/set-tag",
        json={"name": model, "version": "7", "key": "k", "value": "v"},
    )
    assert tagged.status_code == 404
    assert tagged.json()["message"] == f"Model Version (name={model}, version=7) not found"


async def test_a_copied_versions_download_uri_is_where_the_original_is_stored(
    api: httpx.AsyncClient, model: str
) -> None:
    """MlflowClient.copy_model_version registers the copy with the original's models:/ URI as
    its source; downloading the copy must reach the original's files."""
    original = await api.post(
        f"{MLFLOW}/model-versions/create", json={"name": model, "source": "s3://bucket/original"}
    )
    assert original.status_code == 200
    await api.post(
        f"{MLFLOW}/registered-models/alias", json={"name": model, "alias": "gold", "version": "1"}
    )
    copies = unique("copies")
    await api.post(f"{MLFLOW}/registered-models/create", json={"name": copies})
    for source in (f"models:/{model}/1", f"models:/{model}@gold", f"models:/{copies}/1"):
        made = await api.post(
            f"{MLFLOW}/model-versions/create", json={"name": copies, "source": source}
        )
        assert made.status_code == 200, made.text
        number = made.json()["model_version"]["version"]
        uri = await api.get(
            f"{MLFLOW}/model-versions/get-download-uri", params={"name": copies, "version": number}
        )
        assert uri.json() == {"artifact_uri": "s3://bucket/original"}, source


async def _last_updated(api: httpx.AsyncClient, name: str) -> tuple[int, int]:
    """The model's last_updated_timestamp read by name (its stream) and by search (the read
    model)."""
    got = await api.get(f"{MLFLOW}/registered-models/get", params={"name": name})
    found = await api.get(
        f"{MLFLOW}/registered-models/search", params={"filter": f"name = '{name}'"}
    )
    (searched,) = found.json()["registered_models"]
    return (
        got.json()["registered_model"]["last_updated_timestamp"],
        searched["last_updated_timestamp"],
    )


async def test_a_registered_models_last_update_counts_only_the_model_itself(
    api: httpx.AsyncClient, model: str
) -> None:
    async def step(method: str, endpoint: str, body: dict[str, object]) -> None:
        await asyncio.sleep(0.005)  # a later millisecond than the step before
        answer = await api.request(method, f"{MLFLOW}/{endpoint}", json={"name": model, **body})
        assert answer.status_code == 200, answer.text

    await step("POST", "model-versions/create", {"source": "s3://b/m"})
    registered = await _last_updated(api, model)
    assert registered[0] == registered[1]
    for method, endpoint, body in (
        ("POST", "registered-models/set-tag", {"key": "team", "value": "a"}),
        ("POST", "model-versions/set-tag", {"version": "1", "key": "k", "value": "v"}),
        ("PATCH", "model-versions/update", {"version": "1", "description": "about"}),
        ("POST", "registered-models/alias", {"alias": "gold", "version": "1"}),
        ("DELETE", "registered-models/delete-tag", {"key": "team"}),
    ):
        await step(method, endpoint, body)
        assert await _last_updated(api, model) == registered, endpoint
    for method, endpoint, body in (
        ("POST", "model-versions/transition-stage", {"version": "1", "stage": "Staging"}),
        ("PATCH", "registered-models/update", {"description": "now described"}),
        ("POST", "model-versions/create", {"source": "s3://b/m2"}),
    ):
        before = await _last_updated(api, model)
        await step(method, endpoint, body)
        after = await _last_updated(api, model)
        assert after[0] == after[1] > before[0], endpoint
