"""The client against a Registrar that requires tokens, once per flavour: the token goes as a
bearer token (given, or from REGISTRAR_TOKEN with REGISTRAR_URL), and a missing or unknown token
and a role too low are raised as Unauthorized and Forbidden with the server's reason."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from registrar_process import BIN, registrar_env, running_registrar

from registrar import ClientError, Forbidden, Unauthorized

from .support import MakeClient, done, unique


@pytest.fixture(scope="module")
def registrar_env_vars(database_url: str) -> dict[str, str]:
    return registrar_env(REGISTRAR_DATABASE_URL=database_url)


@pytest.fixture(scope="module")
def registrar_url(
    registrar_env_vars: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`registrar serve --auth`: every request needs a bearer token."""
    cwd = Path(tmp_path_factory.mktemp("client-auth"))
    with running_registrar("serve", "--auth", "--port", "0", env=registrar_env_vars, cwd=cwd) as (
        url,
        _,
    ):
        yield url


def create_token(env: dict[str, str], user: str, role: str) -> str:
    """A token made the operator's way; it is alone on the command's last line."""
    created = subprocess.run(
        [str(BIN / "registrar"), "token", "create", "--user", user, "--role", role],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return created.stdout.splitlines()[-1]


@pytest.fixture(scope="module")
def admin_token(registrar_url: str, registrar_env_vars: dict[str, str]) -> str:
    return create_token(registrar_env_vars, "u", "admin")


@pytest.fixture(scope="module")
def viewer_token(registrar_url: str, registrar_env_vars: dict[str, str]) -> str:
    return create_token(registrar_env_vars, "vera", "viewer")


async def test_a_token_is_sent_as_bearer(make_client: MakeClient, admin_token: str) -> None:
    me = await done(make_client(token=admin_token).whoami())
    assert (me.user, me.role, me.authenticated) == ("u", "admin", True)
    assert me.token_id is not None


async def test_the_url_and_token_come_from_the_environment(
    make_client: MakeClient,
    admin_token: str,
    registrar_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REGISTRAR_URL", registrar_url)
    monkeypatch.setenv("REGISTRAR_TOKEN", admin_token)
    client = make_client(base_url=None)
    assert client.base_url == registrar_url
    assert (await done(client.whoami())).user == "u"


async def test_no_token_raises_unauthorized_with_the_servers_reason(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REGISTRAR_TOKEN", raising=False)
    with pytest.raises(Unauthorized) as refused:
        await done(make_client().get_model("anything"))
    assert isinstance(refused.value, ClientError)
    assert refused.value.status == 401 and refused.value.code == "unauthenticated"
    assert refused.value.message.startswith("no token: send 'Authorization: Bearer <token>'")


async def test_an_unknown_token_raises_unauthorized(make_client: MakeClient) -> None:
    with pytest.raises(Unauthorized) as refused:
        await done(make_client(token="rgt_not-a-token").whoami())
    assert refused.value.status == 401 and "unknown or revoked" in refused.value.message


async def test_a_viewer_reads_but_its_writes_raise_forbidden(
    make_client: MakeClient, admin_token: str, viewer_token: str
) -> None:
    name = unique("guarded")
    await done(make_client(token=admin_token).create_model(name))
    viewer = make_client(token=viewer_token)
    assert (await done(viewer.get_model(name))).name == name
    with pytest.raises(Forbidden) as refused:
        await done(viewer.register_version(name, "s3://x"))
    assert refused.value.status == 403 and refused.value.code == "permission_denied"
    assert "contributor" in refused.value.message
