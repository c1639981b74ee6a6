"""The Python client's tests: each runs once per flavour (Client and AsyncClient) against a real
`registrar serve` process, through helpers that await what the async flavour returns."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from registrar_process import registrar_env, running_registrar

from registrar import AsyncClient, Client

from .support import AnyClient, MakeClient, Recorder


@pytest.fixture(scope="module")
def registrar_url(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`registrar serve` on the module's fresh database (authentication off: loopback)."""
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    cwd = Path(tmp_path_factory.mktemp("client-serve"))
    with running_registrar("serve", "--port", "0", env=env, cwd=cwd) as (url, _):
        yield url


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_client(flavour: str, request: pytest.FixtureRequest) -> AsyncIterator[MakeClient]:
    """Make clients of the test's flavour (on the module's server unless told otherwise: the
    server starts only for a module that needs one); they are closed after the test."""
    made: list[AnyClient] = []

    def make(**options: Any) -> AnyClient:
        if "base_url" not in options:
            options["base_url"] = request.getfixturevalue("registrar_url")
        client = Client(**options) if flavour == "sync" else AsyncClient(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        if isinstance(client, AsyncClient):
            await client.aclose()
        else:
            client.close()


@pytest.fixture
def client(make_client: MakeClient) -> AnyClient:
    return make_client()


@pytest.fixture
def recorder(flavour: str) -> Recorder:
    return Recorder(flavour)
