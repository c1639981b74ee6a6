"""The MLflow front door obeys promotion policies: on a governed stage, MLflow's transition-stage
creates the transition request and answers a 4xx naming it and what it still needs; approving it
through the native API then moves the version, which the MLflow client sees."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from registrar_process import registrar_env, running_registrar

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated

POLICY = {"stages": {"Staging": {"approvals": 1, "approver_role": "approver"}}}


@pytest.fixture(scope="module")
def registrar_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    cwd = Path(tmp_path_factory.mktemp("mlflow-policies"))
    with running_registrar("serve", "--port", "0", env=env, cwd=cwd) as (url, _):
        applied = httpx.put(f"{url}/v1/policies", json=POLICY, headers={"X-Registrar-Actor": "ada"})
        assert applied.status_code == 200, applied.text
        yield url


@pytest.fixture
def client(registrar_url: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return MlflowClient(tracking_uri=registrar_url, registry_uri=registrar_url)


def test_a_governed_transition_through_mlflow_creates_the_request_and_names_it(
    client: MlflowClient, registrar_url: str
) -> None:
    name = f"governed-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(name, "s3://bucket/model").version

    with pytest.raises(MlflowException) as refused:
        client.transition_model_version_stage(name, version, "Staging")

    pending = httpx.get(
        f"{registrar_url}/v1/approvals", params={"state": "pending", "model": name}
    ).json()["requests"]
    assert len(pending) == 1 and pending[0]["stage"] == "Staging"
    request_id = pending[0]["request_id"]
    assert refused.value.get_http_status_code() == 409
    assert refused.value.error_code == "RESOURCE_CONFLICT"
    assert f"transition request {request_id} is pending" in refused.value.message
    assert "1 more approval from role approver" in refused.value.message
    assert client.get_model_version(name, version).current_stage == "None"

    approved = httpx.post(
        f"{registrar_url}/v1/transition-requests/{request_id}/approve",
        json={"comment": "checked"},
        headers={"X-Registrar-Actor": "bob"},
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "applied"
    assert client.get_model_version(name, version).current_stage == "Staging"
