"""MLflow's transition_model_version_stage under a promotion policy, with the real MlflowClient
against `registrar serve`: a move to a governed stage opens a transition request (or looks again
at the one pending for that move) and is refused as RESOURCE_CONFLICT naming it, what it still
needs and how to approve it; once it applies, the MLflow client sees the version moved. A move
that needs nothing more applies at once and is answered as usual; ungoverned stages are as
before."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import create_database, drop_database
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from registrar_process import registrar_env, running_registrar

from registrar.access.administration import AccessAdministration
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated

POLICY = {
    "stages": {
        "Production": {"approvals": 1, "approver_role": "approver"},
        # A governed stage that needs no approval, only a gate: its moves can apply at once.
        "Archived": {"approvals": 0, "gates": ["metrics.auc >= 0.8"]},
    }
}
_NAMED_REQUEST = re.compile(r"transition request (\S+) is pending")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def held(move: Callable[[], object]) -> tuple[MlflowException, str]:
    """The refusal of a move held for approval, and the request id its message names."""
    with pytest.raises(MlflowException) as refused:
        move()
    found = _NAMED_REQUEST.search(refused.value.message)
    assert found is not None, refused.value.message
    return refused.value, found.group(1)


def transition_request(url: str, request_id: str, **headers: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/v1/transition-requests/{request_id}", headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def requests_of(url: str, model: str, state: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/v1/approvals", params={"state": state, "model": model})
    assert answer.status_code == 200, answer.text
    return answer.json()["requests"]  # type: ignore[no-any-return]


# Authentication off: every caller is admin and names itself ------------------------------------


@pytest.fixture(scope="module")
def registrar_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    cwd = Path(tmp_path_factory.mktemp("governed-transitions"))
    with running_registrar("serve", "--port", "0", env=env, cwd=cwd) as (url, _):
        applied = httpx.put(f"{url}/v1/policies", json=POLICY, headers={"X-Registrar-Actor": "ada"})
        assert applied.status_code == 200, applied.text
        yield url


@pytest.fixture
def client(registrar_url: str, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    """An MLflow client acting as carol (basic auth names the actor when authentication is off)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "carol")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "unused")
    return MlflowClient(tracking_uri=registrar_url, registry_uri=registrar_url)


def a_version(client: MlflowClient, prefix: str) -> tuple[str, str]:
    name = unique(prefix)
    client.create_registered_model(name)
    return name, client.create_model_version(name, "s3://bucket/model").version


def test_a_governed_move_opens_a_request_and_is_refused_naming_it(
    client: MlflowClient, registrar_url: str
) -> None:
    name, version = a_version(client, "governed")

    refused, request_id = held(
        lambda: client.transition_model_version_stage(name, version, "Production")
    )

    assert refused.error_code == "RESOURCE_CONFLICT"
    assert refused.get_http_status_code() == 409
    assert "1 more approval from role approver (0 of 1)" in refused.message
    assert f"POST /v1/transition-requests/{request_id}/approve" in refused.message
    request = transition_request(registrar_url, request_id)
    assert request["state"] == "pending"
    assert (request["model"], request["version"], request["stage"]) == (name, 1, "Production")
    assert request["requested_by"] == "carol"
    assert request["missing"] == ["1 more approval from role approver (0 of 1)"]
    assert client.get_model_version(name, version).current_stage == "None"


def test_approving_the_request_moves_the_version_the_mlflow_client_sees(
    client: MlflowClient, registrar_url: str
) -> None:
    name, version = a_version(client, "approved")
    _, request_id = held(lambda: client.transition_model_version_stage(name, version, "Production"))

    approved = httpx.post(
        f"{registrar_url}/v1/transition-requests/{request_id}/approve",
        json={"comment": "reviewed"},
        headers={"X-Registrar-Actor": "bob"},
    )

    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "applied"
    assert client.get_model_version(name, version).current_stage == "Production"
    latest = client.get_latest_versions(name, stages=["Production"])
    assert [v.version for v in latest] == [version]
    # Now there, the same call changes nothing and is answered as the version it is.
    again = client.transition_model_version_stage(name, version, "Production")
    assert again.current_stage == "Production"


def test_the_requester_may_not_approve_their_own_request(
    client: MlflowClient, registrar_url: str
) -> None:
    name, version = a_version(client, "own")
    _, request_id = held(lambda: client.transition_model_version_stage(name, version, "Production"))

    own = httpx.post(
        f"{registrar_url}/v1/transition-requests/{request_id}/approve",
        headers={"X-Registrar-Actor": "carol"},
    )

    assert own.status_code == 403, own.text
    assert transition_request(registrar_url, request_id)["state"] == "pending"


def test_repeating_the_governed_move_names_the_same_request_and_opens_no_other(
    client: MlflowClient, registrar_url: str
) -> None:
    name, version = a_version(client, "repeated")

    _, first = held(lambda: client.transition_model_version_stage(name, version, "Production"))
    _, second = held(lambda: client.transition_model_version_stage(name, version, "production"))

    assert second == first
    assert [r["request_id"] for r in requests_of(registrar_url, name, "pending")] == [first]


def test_an_ungoverned_stage_still_moves_at_once(client: MlflowClient, registrar_url: str) -> None:
    name, version = a_version(client, "ungoverned")

    moved = client.transition_model_version_stage(name, version, "Staging")

    assert moved.current_stage == "Staging"
    assert client.get_model_version(name, version).current_stage == "Staging"
    assert requests_of(registrar_url, name, "pending") == []
    assert requests_of(registrar_url, name, "applied") == []


def _record_auc(url: str, name: str, version: str, auc: float) -> None:
    recorded = httpx.patch(
        f"{url}/v1/models/{name}/versions/{version}",
        json={"metrics": {"auc": auc}},
        headers={"X-Registrar-Actor": "carol"},
    )
    assert recorded.status_code == 200, recorded.text


def test_a_governed_move_that_needs_nothing_more_applies_at_once_and_answers_the_version(
    client: MlflowClient, registrar_url: str
) -> None:
    name, version = a_version(client, "complete")
    _record_auc(registrar_url, name, version, 0.9)

    moved = client.transition_model_version_stage(name, version, "Archived")

    assert moved.current_stage == "Archived"
    applied = requests_of(registrar_url, name, "applied")
    assert [(r["stage"], r["requested_by"]) for r in applied] == [("Archived", "carol")]


def test_a_move_held_by_a_gate_applies_when_repeated_once_the_gate_passes(
    client: MlflowClient, registrar_url: str
) -> None:
    name, version = a_version(client, "gated")

    refused, request_id = held(
        lambda: client.transition_model_version_stage(name, version, "Archived")
    )
    assert "gate metrics.auc >= 0.8 (saw nothing)" in refused.message

    _record_auc(registrar_url, name, version, 0.9)
    moved = client.transition_model_version_stage(name, version, "Archived")

    assert moved.current_stage == "Archived"
    assert transition_request(registrar_url, request_id)["state"] == "applied"


# Authentication on: tokens say who asks and with what role -------------------------------------


@pytest.fixture(scope="module")
def secured(server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """`registrar serve --auth` on a database of its own: (its URL, its database's URL)."""
    database_url, database = create_database(server_url)
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    cwd = Path(tmp_path_factory.mktemp("governed-transitions-auth"))
    try:
        with running_registrar("serve", "--auth", "--port", "0", env=env, cwd=cwd) as (url, _):
            yield url, database_url
    finally:
        drop_database(server_url, database)


@pytest.fixture(scope="module")
def tokens(secured: tuple[str, str]) -> dict[Role, str]:
    """A token per role, for a user named after the role, issued as another process would; and
    the policy applied with the admin's."""
    url, database_url = secured

    async def issue() -> dict[Role, str]:
        engine = create_engine(database_url, pool_size=1)
        try:
            administration = AccessAdministration(PostgresEventStore(engine))
            return {
                role: (await administration.issue_token(role.value, role, CommandMeta("t"))).token
                for role in Role
            }
        finally:
            await engine.dispose()

    issued = asyncio.run(issue())
    applied = httpx.put(f"{url}/v1/policies", json=POLICY, headers=_bearer(issued[Role.ADMIN]))
    assert applied.status_code == 200, applied.text
    return issued


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def as_role(
    secured: tuple[str, str], tokens: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> Callable[[Role], MlflowClient]:
    url = secured[0]
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def client(role: Role) -> MlflowClient:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens[role])
        return MlflowClient(tracking_uri=url, registry_uri=url)

    return client


def test_with_authentication_an_approver_requests_through_mlflow_and_another_approves(
    as_role: Callable[[Role], MlflowClient], secured: tuple[str, str], tokens: dict[Role, str]
) -> None:
    url = secured[0]
    name, version = a_version(as_role(Role.CONTRIBUTOR), "secured")

    approver = as_role(Role.APPROVER)
    refused, request_id = held(
        lambda: approver.transition_model_version_stage(name, version, "Production")
    )
    assert refused.error_code == "RESOURCE_CONFLICT"
    request = transition_request(url, request_id, **_bearer(tokens[Role.VIEWER]))
    assert (request["state"], request["requested_by"]) == ("pending", "approver")

    approved = httpx.post(
        f"{url}/v1/transition-requests/{request_id}/approve", headers=_bearer(tokens[Role.ADMIN])
    )

    assert approved.status_code == 200, approved.text
    assert approver.get_model_version(name, version).current_stage == "Production"


def test_with_authentication_a_contributor_requests_a_governed_move_through_mlflow(
    as_role: Callable[[Role], MlflowClient], secured: tuple[str, str], tokens: dict[Role, str]
) -> None:
    contributor = as_role(Role.CONTRIBUTOR)
    name, version = a_version(contributor, "contributed")

    refused, request_id = held(
        lambda: contributor.transition_model_version_stage(name, version, "Production")
    )

    assert refused.error_code == "RESOURCE_CONFLICT"
    request = transition_request(secured[0], request_id, **_bearer(tokens[Role.VIEWER]))
    assert (request["state"], request["requested_by"]) == ("pending", "contributor")
