"""The real MLflow client against `registrar serve --auth`: MLFLOW_TRACKING_TOKEN is the bearer
token, basic auth works with the token as password, and refusals arrive as MLflow's
UNAUTHENTICATED / PERMISSION_DENIED."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from registrar_process import registrar_env, running_registrar

from registrar.access.administration import AccessAdministration
from registrar.commands.command_handler import CommandMeta
from registrar.contracts.values import Role
from registrar.store.database import create_engine
from registrar.store.event_store import PostgresEventStore

ClientAs = Callable[[Role | None], MlflowClient]
"""An MLflow client sending the token of a role (None: no token)."""

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # stages are deprecated


@pytest.fixture(scope="module")
def secured_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    cwd = Path(tmp_path_factory.mktemp("mlflow-auth"))
    with running_registrar("serve", "--auth", "--port", "0", env=env, cwd=cwd) as (url, _):
        yield url


@pytest.fixture(scope="module")
def tokens(database_url: str, secured_url: str) -> dict[Role, str]:
    """A token per role, for users named after the role, issued as another process would."""

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

    return asyncio.run(issue())


@pytest.fixture
def as_role(
    secured_url: str, tokens: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[ClientAs]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", secured_url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    def client(role: Role | None) -> MlflowClient:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        if role is not None:
            monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tokens[role])
        return MlflowClient(tracking_uri=secured_url)

    yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def refused_code(call: Callable[[], object]) -> str:
    with pytest.raises(MlflowException) as refused:
        call()
    return str(refused.value.error_code)


def test_without_a_token_the_client_is_told_unauthenticated(as_role: ClientAs) -> None:
    client = as_role(None)
    assert refused_code(lambda: client.search_registered_models()) == "UNAUTHENTICATED"
    assert refused_code(lambda: client.create_registered_model(unique("m"))) == "UNAUTHENTICATED"


def test_a_viewer_token_reads_but_may_not_register(as_role: ClientAs) -> None:
    name = unique("viewed")
    as_role(Role.CONTRIBUTOR).create_registered_model(name)
    viewer = as_role(Role.VIEWER)
    assert viewer.get_registered_model(name).name == name
    assert refused_code(lambda: viewer.create_registered_model(unique("m"))) == "PERMISSION_DENIED"


def test_a_contributor_registers_and_manages_its_own_model_but_may_not_promote(
    as_role: ClientAs,
) -> None:
    contributor = as_role(Role.CONTRIBUTOR)
    name = unique("mine")
    contributor.create_registered_model(name)
    version = contributor.create_model_version(name, "s3://bucket/model")
    contributor.set_registered_model_tag(name, "team", "growth")
    assert contributor.get_registered_model(name).tags == {"team": "growth"}
    promote = lambda: contributor.transition_model_version_stage(  # noqa: E731
        name, version.version, "Production"
    )
    assert refused_code(promote) == "PERMISSION_DENIED"
    approver = as_role(Role.APPROVER)
    moved = approver.transition_model_version_stage(name, version.version, "Production")
    assert moved.current_stage == "Production"


def test_a_contributor_may_not_manage_a_model_it_does_not_own(as_role: ClientAs) -> None:
    name = unique("theirs")
    as_role(Role.ADMIN).create_registered_model(name)
    contributor = as_role(Role.CONTRIBUTOR)
    tag = lambda: contributor.set_registered_model_tag(name, "k", "v")  # noqa: E731
    assert refused_code(tag) == "PERMISSION_DENIED"
    assert refused_code(lambda: contributor.delete_registered_model(name)) == "PERMISSION_DENIED"


def test_basic_auth_with_the_token_as_password_works(
    secured_url: str, tokens: dict[Role, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "contributor")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", tokens[Role.CONTRIBUTOR])
    name = unique("basic")
    MlflowClient(tracking_uri=secured_url).create_registered_model(name)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "someone-else")
    create = lambda: MlflowClient(tracking_uri=secured_url).create_registered_model(unique("x"))  # noqa: E731
    assert refused_code(create) == "UNAUTHENTICATED"


# The target of an MLflow write, wherever the request names it --------------------------------

MLFLOW = "/api/2.0/mlflow/"
MANAGE_ROUTES = [
    ("PATCH", "registered-models/update", {"description": "hijacked"}),
    ("POST", "registered-models/rename", {"new_name": "hijacked-{uid}"}),
    ("DELETE", "registered-models/delete", {}),
    ("POST", "registered-models/set-tag", {"key": "owner", "value": "mallory"}),
    ("DELETE", "registered-models/delete-tag", {"key": "team"}),
    ("DELETE", "model-versions/delete", {"version": "1"}),
]
"""The writes only a model's owners (or an admin) may make."""
OTHER_WRITES = [
    ("POST", "model-versions/create", {"source": "s3://bucket/other"}),
    ("PATCH", "model-versions/update", {"version": "1", "description": "changed"}),
    ("POST", "model-versions/set-tag", {"version": "1", "key": "k", "value": "v"}),
    ("DELETE", "model-versions/delete-tag", {"version": "1", "key": "team"}),
    ("POST", "model-versions/transition-stage", {"version": "1", "stage": "Staging"}),
    ("POST", "registered-models/alias", {"alias": "champion", "version": "1"}),
    ("DELETE", "registered-models/alias", {"alias": "champion"}),
    ("POST", "registered-models/create", {}),
]
"""Writes a role allows on any model: there the point is that both places agree."""
PROMOTIONS = {"model-versions/transition-stage", "registered-models/alias"}
"""Of those, the ones that need the approver role."""


def _model_as_admin(url: str, admin: str, name: str) -> object:
    """Everything the MLflow API says of a model and its first version."""
    headers = {"Authorization": f"Bearer {admin}"}
    model = httpx.get(f"{url}{MLFLOW}registered-models/get", params={"name": name}, headers=headers)
    version = httpx.get(
        f"{url}{MLFLOW}model-versions/get", params={"name": name, "version": "1"}, headers=headers
    )
    return model.status_code, model.json(), version.status_code, version.json()


def _seeded(url: str, tokens: dict[Role, str], owner: Role) -> str:
    """A model registered by `owner` (so owned by it), tagged, version 1 aliased champion."""
    name = unique(f"{owner.value}-model")
    token = {"Authorization": f"Bearer {tokens[owner]}"}
    admin = {"Authorization": f"Bearer {tokens[Role.ADMIN]}"}
    for path, body, headers in (
        (
            "registered-models/create",
            {"name": name, "tags": [{"key": "team", "value": "a"}]},
            token,
        ),
        ("model-versions/create", {"name": name, "source": "s3://bucket/m"}, token),
        (
            "model-versions/set-tag",
            {"name": name, "version": "1", "key": "team", "value": "a"},
            token,
        ),
        ("registered-models/alias", {"name": name, "alias": "champion", "version": "1"}, admin),
    ):
        httpx.post(f"{url}{MLFLOW}{path}", json=body, headers=headers).raise_for_status()
    return name


def _send(
    url: str, token: str, method: str, endpoint: str, query: dict, body: dict
) -> httpx.Response:
    uid = uuid.uuid4().hex[:8]
    body = {k: v.format(uid=uid) if isinstance(v, str) else v for k, v in body.items()}
    return httpx.request(
        method,
        f"{url}{MLFLOW}{endpoint}",
        params=query,
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.mark.parametrize("place", ["body", "query"])
@pytest.mark.parametrize(("method", "endpoint", "fields"), MANAGE_ROUTES)
def test_a_contributor_may_not_manage_another_users_model_wherever_it_names_it(
    secured_url: str, tokens: dict[Role, str], method: str, endpoint: str, fields: dict, place: str
) -> None:
    victim = _seeded(secured_url, tokens, Role.ADMIN)
    before = _model_as_admin(secured_url, tokens[Role.ADMIN], victim)
    query, body = (
        ({"name": victim}, dict(fields)) if place == "query" else ({}, {**fields, "name": victim})
    )
    answer = _send(secured_url, tokens[Role.CONTRIBUTOR], method, endpoint, query, body)
    assert answer.status_code == 403, answer.text
    assert answer.json()["error_code"] == "PERMISSION_DENIED"
    assert _model_as_admin(secured_url, tokens[Role.ADMIN], victim) == before


@pytest.mark.parametrize("owned_in", ["query", "body"])
@pytest.mark.parametrize(("method", "endpoint", "fields"), MANAGE_ROUTES + OTHER_WRITES)
def test_a_write_naming_two_models_is_refused_and_changes_neither(
    secured_url: str,
    tokens: dict[Role, str],
    method: str,
    endpoint: str,
    fields: dict,
    owned_in: str,
) -> None:
    """The contributor's own model in one place, someone else's in the other: whichever the
    permission check would read, the handler must not act on the other."""
    own = _seeded(secured_url, tokens, Role.CONTRIBUTOR)
    victim = _seeded(secured_url, tokens, Role.ADMIN)
    before = [_model_as_admin(secured_url, tokens[Role.ADMIN], n) for n in (own, victim)]
    query = {"name": own if owned_in == "query" else victim}
    body = {**fields, "name": victim if owned_in == "query" else own}
    writer = Role.APPROVER if endpoint in PROMOTIONS else Role.CONTRIBUTOR
    answer = _send(secured_url, tokens[writer], method, endpoint, query, body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "'name' is given twice" in answer.json()["message"]
    assert [_model_as_admin(secured_url, tokens[Role.ADMIN], n) for n in (own, victim)] == before


def test_a_field_given_twice_with_the_same_value_is_accepted(
    secured_url: str, tokens: dict[Role, str]
) -> None:
    own = _seeded(secured_url, tokens, Role.CONTRIBUTOR)
    answer = _send(
        secured_url,
        tokens[Role.CONTRIBUTOR],
        "POST",
        "registered-models/set-tag",
        {"name": own},
        {"name": own, "key": "stage", "value": "beta"},
    )
    assert answer.status_code == 200, answer.text
    assert _model_as_admin(secured_url, tokens[Role.ADMIN], own)[1]["registered_model"]["tags"] == [
        {"key": "team", "value": "a"},
        {"key": "stage", "value": "beta"},
    ]
