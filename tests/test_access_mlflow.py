"""The real MLflow client against `registrar serve --auth`: MLFLOW_TRACKING_TOKEN is the bearer
token, basic auth works with the token as password, and refusals arrive as MLflow's
UNAUTHENTICATED / PERMISSION_DENIED."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

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
