"""The real MLflow client, unmodified, against a running Registrar over HTTP: registering from a
recorded run, stages, aliases, searches across pages, renames, deletes and every error code."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from registrar_process import registrar_env, running_registrar

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated

ACTOR = "mlflow-user"


@pytest.fixture(scope="module")
def registrar_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    cwd = Path(tmp_path_factory.mktemp("mlflow-serve"))
    with running_registrar("serve", "--port", "0", env=env, cwd=cwd) as (url, _):
        yield url


@pytest.fixture(scope="module")
def mlflow_at(registrar_url: str) -> Iterator[str]:
    """The MLflow client's tracking (and so registry) URI set to Registrar; every request carries
    the caller's name, as an MLflow request-header plugin would add it."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", registrar_url)
    mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a failure fails the test at once
    import mlflow
    from mlflow.tracking.request_header.abstract_request_header_provider import (
        RequestHeaderProvider,
    )
    from mlflow.tracking.request_header.registry import _request_header_provider_registry

    class CallerName(RequestHeaderProvider):  # type: ignore[misc]
        def in_context(self) -> bool:
            return True

        def request_headers(self) -> dict[str, str]:
            return {"X-Registrar-Actor": ACTOR}

    registered = _request_header_provider_registry._registry
    registered.append(CallerName())
    mlflow.set_tracking_uri(registrar_url)
    yield registrar_url
    registered.remove(next(p for p in registered if isinstance(p, CallerName)))
    mp.undo()


@pytest.fixture(scope="module")
def client(mlflow_at: str) -> MlflowClient:
    return MlflowClient()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def record_run(url: str, run_id: str, **extra: Any) -> None:
    message = {
        "message_id": str(uuid.uuid4()),
        "run_id": run_id,
        "experiment": "churn",
        "artifact": {
            "uri": f"s3://models/churn/{run_id}/model",
            "digest": "sha256:" + "ab" * 32,
            "size": 1234,
        },
        "metrics": {"auc": 0.91},
        "params": {"depth": "6"},
        "finished_at": "2026-11-26T11:00:00Z",
        **extra,
    }
    httpx.post(f"{url}/v1/training-runs", json=message).raise_for_status()


def error_code(call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(MlflowException) as raised:
        call(*args, **kwargs)
    return raised.value.error_code


def events_of(database_url: str, model: str) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        conn = await asyncpg.connect(database_url.replace("+asyncpg", ""))
        try:
            rows = await conn.fetch(
                "SELECT type, actor FROM events WHERE stream_id ="
                " (SELECT stream_id FROM model_names WHERE name = $1) ORDER BY stream_version",
                model,
            )
        finally:
            await conn.close()
        return [(row["type"], row["actor"]) for row in rows]

    return asyncio.run(read())


def test_register_describe_tag_and_promote_a_version_from_a_recorded_run(
    client: MlflowClient, mlflow_at: str, database_url: str
) -> None:
    name, run_id = unique("churn"), unique("run")
    record_run(mlflow_at, run_id)

    version = mlflow.register_model(f"runs:/{run_id}/model", name)
    assert (version.name, version.version, version.status) == (name, "1", "READY")
    assert version.source == f"s3://models/churn/{run_id}/model"
    assert version.run_id == run_id and version.current_stage == "None"

    client.update_model_version(name, "1", description="first cut")
    client.set_model_version_tag(name, "1", "validated", "yes")
    client.transition_model_version_stage(name, "1", "staging")
    promoted = client.transition_model_version_stage(name, "1", "Production")
    assert promoted.current_stage == "Production"

    got = client.get_model_version(name, "1")
    assert got.description == "first cut" and got.tags == {"validated": "yes"}
    assert client.get_model_version_download_uri(name, "1") == version.source

    native = httpx.get(f"{mlflow_at}/v1/models/{name}/versions/1").json()
    assert native["stage"] == "Production" and native["run_id"] == run_id
    assert native["metrics"] == {"auc": 0.91} and native["digest"] == "sha256:" + "ab" * 32
    events = events_of(database_url, name)
    assert [t for t, _ in events] == [
        "ModelRegistered",
        "VersionRegistered",
        "VersionDescriptionUpdated",
        "VersionTagSet",
        "StageChanged",
        "StageChanged",
    ]
    assert {actor for _, actor in events} == {ACTOR}


def test_archive_existing_versions_and_the_latest_version_per_stage(
    client: MlflowClient,
) -> None:
    name = unique("fraud")
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, "s3://models/fraud", run_id="")
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Staging")
    client.transition_model_version_stage(name, "3", "Production", archive_existing_versions=True)

    stages = {v.version: v.current_stage for v in client.search_model_versions(f"name='{name}'")}
    assert stages == {"1": "Archived", "2": "Staging", "3": "Production"}
    assert [v.version for v in client.get_latest_versions(name, ["production"])] == ["3"]
    latest = client.get_latest_versions(name)
    assert sorted((v.current_stage, v.version) for v in latest) == [
        ("Archived", "1"),
        ("Production", "3"),
        ("Staging", "2"),
    ]
    model = client.get_registered_model(name)
    assert {v.current_stage: v.version for v in model.latest_versions} == {
        "Archived": "1",
        "Staging": "2",
        "Production": "3",
    }


def test_aliases_move_are_read_and_deleted(client: MlflowClient) -> None:
    name = unique("ranker")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, "s3://models/ranker")
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "champion", "2")  # setting it again moves it

    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_model_version_by_alias(name, "latest").version == "2"
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    assert client.get_model_version(name, "2").aliases == ["champion"]

    for reserved in ("latest", "v1", "bad alias!"):
        assert (
            error_code(client.set_registered_model_alias, name, reserved, "1")
            == "INVALID_PARAMETER_VALUE"
        )
    assert (
        error_code(client.set_registered_model_alias, name, "ghost", "9")
        == "RESOURCE_DOES_NOT_EXIST"
    )
    client.delete_registered_model_alias(name, "champion")
    client.delete_registered_model_alias(name, "champion")  # MLflow: deleting again is fine
    assert (
        error_code(client.get_model_version_by_alias, name, "champion")
        == "INVALID_PARAMETER_VALUE"  # what MLflow answers for an unknown alias
    )


def test_search_filters_and_pages_through_more_than_one_page(client: MlflowClient) -> None:
    prefix = unique("pager")
    names = [f"{prefix}-{i}" for i in range(7)]
    for i, name in enumerate(names):
        tags = {"team": "growth" if i % 2 == 0 else "risk"}
        client.create_registered_model(name, tags=tags)  # searched at once: no sleep
        client.create_model_version(name, f"s3://models/{name}", run_id=f"{prefix}-run-{i % 3}")

    pages, token = [], None
    while True:
        page = client.search_registered_models(f"name LIKE '{prefix}-%'", 3, page_token=token)
        pages.append([m.name for m in page])
        token = page.token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [n for p in pages for n in p] == names

    growth = client.search_registered_models(
        f"name ILIKE '{prefix.upper()}-%' AND tags.team = 'growth'"
    )
    assert [m.name for m in growth] == names[0::2]
    not_risk = client.search_registered_models(
        f"name IN ('{names[0]}', '{names[1]}') AND tag.`team` != 'risk'"
    )
    assert [m.name for m in not_risk] == [names[0]]
    assert all(m.latest_versions[0].version == "1" for m in growth)
    newest_first = client.search_registered_models(
        f"name LIKE '{prefix}-%'", order_by=["last_updated_timestamp DESC"]
    )
    assert [m.name for m in newest_first] == names[::-1]

    runs = f"('{prefix}-run-0', '{prefix}-run-2')"
    versions, token = [], None
    while True:
        page = client.search_model_versions(
            f"run_id IN {runs}", max_results=2, order_by=["name ASC"], page_token=token
        )
        versions += [v.name for v in page]
        token = page.token
        if not token:
            break
    assert versions == [n for i, n in enumerate(names) if i % 3 in (0, 2)]
    numbered = client.search_model_versions(f"name = '{names[0]}' AND version_number >= 1")
    assert [(v.name, v.version) for v in numbered] == [(names[0], "1")]


def test_default_version_order_is_newest_update_first(client: MlflowClient) -> None:
    name = unique("ordered")
    client.create_registered_model(name)
    for _ in range(3):
        client.create_model_version(name, "s3://m")
    client.update_model_version(name, "2", description="touched last")
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["2", "3", "1"]


def test_a_renamed_model_answers_to_its_new_name_only(client: MlflowClient) -> None:
    old, new, other = unique("old"), unique("new"), unique("other")
    client.create_registered_model(old)
    client.create_registered_model(other)
    client.create_model_version(old, "s3://m")
    client.rename_registered_model(old, new)  # the client drops the answer: read it back
    assert client.get_registered_model(new).name == new
    assert client.get_model_version(new, "1").name == new
    assert [v.name for v in client.search_model_versions(f"name = '{new}'")] == [new]
    assert error_code(client.get_registered_model, old) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(client.rename_registered_model, new, other) == "RESOURCE_ALREADY_EXISTS"
    # The old name is free again: another model may take it, by creation or by a rename.
    client.rename_registered_model(other, old)
    assert client.get_registered_model(old).latest_versions == []
    assert client.get_model_version(new, "1").name == new


def test_deletes_are_soft_and_numbers_never_reused(client: MlflowClient) -> None:
    name = unique("deleted")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, "s3://m")
    client.set_registered_model_alias(name, "champion", "2")
    client.delete_model_version(name, "2")
    assert error_code(client.get_model_version, name, "2") == "RESOURCE_DOES_NOT_EXIST"
    assert client.get_registered_model(name).aliases == {}  # its alias went with it
    assert [v.version for v in client.search_model_versions(f"name = '{name}'")] == ["1"]
    again: ModelVersion = client.create_model_version(name, "s3://m")
    assert again.version == "3"

    client.delete_registered_model(name)
    assert error_code(client.get_registered_model, name) == "RESOURCE_DOES_NOT_EXIST"
    assert client.search_registered_models(f"name = '{name}'") == []
    assert client.search_model_versions(f"name = '{name}'") == []


def test_a_deleted_models_name_can_be_created_again_as_a_new_model(client: MlflowClient) -> None:
    # As with an MLflow server: delete, then create the same name (notebooks and CI do this).
    name = unique("again")
    client.create_registered_model(name, tags={"round": "1"})
    for _ in range(2):
        client.create_model_version(name, "s3://first")
    client.delete_registered_model(name)
    created = client.create_registered_model(name, tags={"round": "2"})
    assert created.name == name
    model = client.get_registered_model(name)
    assert model.tags == {"round": "2"} and model.latest_versions == []
    assert client.create_model_version(name, "s3://second").version == "1"
    assert [v.source for v in client.search_model_versions(f"name = '{name}'")] == ["s3://second"]
    assert error_code(client.create_registered_model, name) == "RESOURCE_ALREADY_EXISTS"


def test_each_error_code(client: MlflowClient) -> None:
    name = unique("errors")
    client.create_registered_model(name)
    client.create_model_version(name, "s3://m")
    assert error_code(client.create_registered_model, name) == "RESOURCE_ALREADY_EXISTS"
    assert error_code(client.get_registered_model, unique("nope")) == "RESOURCE_DOES_NOT_EXIST"
    assert error_code(client.get_model_version, name, "7") == "RESOURCE_DOES_NOT_EXIST"
    invalid = [
        (client.create_registered_model, ("a/b",)),
        (client.create_model_version, (name, "")),
        (client.set_registered_model_tag, (name, "bad key!", "v")),
        (client.transition_model_version_stage, (name, "1", "Shipped")),
        (client.transition_model_version_stage, (name, "1", "Archived", True)),
        (client.search_registered_models, ("name = 'a' OR name = 'b'",)),
        (client.search_model_versions, ("metric.auc > 1",)),
        (client.search_registered_models, (None, 5000)),
        (client.search_registered_models, (None, 10, None, "not-a-token")),
    ]
    for call, args in invalid:
        assert error_code(call, *args) == "INVALID_PARAMETER_VALUE", (call.__name__, args)
    assert error_code(client.get_run, "never-recorded") == "RESOURCE_DOES_NOT_EXIST"
    assert (
        error_code(mlflow.register_model, "runs:/never-recorded/model", name)
        == "RESOURCE_DOES_NOT_EXIST"
    )


@pytest.mark.parametrize("prefix", ["/api/2.0", "/ajax-api/2.0"])
def test_errors_carry_mlflows_shape_and_http_status(mlflow_at: str, prefix: str) -> None:
    base = f"{mlflow_at}{prefix}/mlflow"
    name = unique("shape")
    created = httpx.post(f"{base}/registered-models/create", json={"name": name})
    assert created.status_code == 200
    again = httpx.post(f"{base}/registered-models/create", json={"name": name})
    assert (again.status_code, again.json()["error_code"]) == (400, "RESOURCE_ALREADY_EXISTS")
    missing = httpx.get(f"{base}/registered-models/get", params={"name": unique("no")})
    assert (missing.status_code, missing.json()["error_code"]) == (404, "RESOURCE_DOES_NOT_EXIST")
    no_name = httpx.post(f"{base}/registered-models/create", json={})
    assert (no_name.status_code, no_name.json()["error_code"]) == (400, "INVALID_PARAMETER_VALUE")
    assert "'name'" in no_name.json()["message"]
    bad_json = httpx.post(f"{base}/registered-models/create", content=b"{nope")
    assert (bad_json.status_code, bad_json.json()["error_code"]) == (
        400,
        "INVALID_PARAMETER_VALUE",
    )
    bad_version = httpx.get(f"{base}/model-versions/get", params={"name": name, "version": "x"})
    assert bad_version.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    unknown = httpx.get(f"{base}/experiments/list")
    assert (unknown.status_code, unknown.json()["error_code"]) == (404, "ENDPOINT_NOT_FOUND")
    for answer in (again, missing, no_name, bad_json, bad_version, unknown):
        assert set(answer.json()) == {"error_code", "message"}


def test_versions_registered_either_way_are_one_registry(
    client: MlflowClient, mlflow_at: str
) -> None:
    name = unique("both")
    httpx.post(f"{mlflow_at}/v1/models", json={"name": name}).raise_for_status()
    client.create_model_version(name, "s3://via-mlflow", tags={"door": "mlflow"})
    httpx.post(
        f"{mlflow_at}/v1/models/{name}/versions", json={"source": "s3://via-v1"}
    ).raise_for_status()
    native = httpx.get(f"{mlflow_at}/v1/versions", params={"model": name}).json()["versions"]
    assert [(v["version"], v["source"]) for v in native] == [
        (1, "s3://via-mlflow"),
        (2, "s3://via-v1"),
    ]
    seen = client.search_model_versions(f"name = '{name}' AND tags.door = 'mlflow'")
    assert [v.version for v in seen] == ["1"]
