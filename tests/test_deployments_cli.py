"""`registrar deployments [--environment E] [--drift]` as an operator runs it, against a real
`registrar serve` on PostgreSQL; and `registrar token create --role deployer` for a deployer."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from registrar_process import BIN, registrar_env, running_registrar

from registrar import Client


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`registrar serve` on the module's fresh database, prod and staging declared; its URL."""
    home = Path(tmp_path_factory.mktemp("deployments-cli-home"))
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(home))
    with running_registrar("serve", "--port", "0", env=env, cwd=home) as (url, _):
        with Client(url) as client:
            client.apply_policy(
                {
                    "environments": {
                        "prod": {"follows": {"stage": "Production"}},
                        "staging": {"follows": {"stage": "Staging"}},
                    }
                }
            )
        yield url


@pytest.fixture(scope="module")
def lagging(server: str) -> str:
    """A model whose version 1 serves in prod, and whose version 2 was promoted since."""
    name = f"churn-{uuid.uuid4().hex[:8]}"
    with Client(server) as client:
        client.create_model(name)
        for number in (1, 2):
            client.register_version(name, f"s3://models/{name}/{number}")
        client.set_stage(name, 1, "Production")
        client.report_deployment(
            name, 1, "prod", "serving", deployer="argo-cd", endpoint="https://a"
        )
        client.report_deployment(name, 2, "staging", "serving", deployer="argo-cd")
        client.set_stage(name, 2, "Production", archive_existing=True)
        client.drift(model=name)  # read its own writes: the read models have caught up
    return name


def registrar(url: str, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`registrar ARGS` as a shell would run it, with REGISTRAR_URL pointing at `url`."""
    return subprocess.run(
        [str(BIN / "registrar"), *args],
        env=registrar_env(REGISTRAR_URL=url, **env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deployments_prints_what_runs_where(server: str, lagging: str, tmp_path: Path) -> None:
    shown = registrar(server, "deployments", "--model", lagging, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.splitlines()
    assert header.split() == [
        "ENVIRONMENT",
        "MODEL",
        "VERSION",
        "STATUS",
        "SINCE",
        "DEPLOYER",
        "ENDPOINT",
    ]
    cells = [row.split() for row in rows]
    assert [(c[0], c[1], c[2], c[3], c[5], c[6]) for c in cells] == [
        ("prod", lagging, "1", "serving", "argo-cd", "https://a"),
        ("staging", lagging, "2", "serving", "argo-cd", "-"),
    ]
    only_prod = registrar(server, "deployments", "--environment", "prod", cwd=tmp_path)
    assert lagging in only_prod.stdout and "staging" not in only_prod.stdout


def test_deployments_drift_names_the_environment_lagging_and_for_how_long(
    server: str, lagging: str, tmp_path: Path
) -> None:
    shown = registrar(server, "deployments", "--drift", "--model", lagging, cwd=tmp_path)

    assert shown.returncode == 0, shown.stderr
    header, *rows = shown.stdout.splitlines()
    assert header.split()[:6] == [
        "ENVIRONMENT",
        "MODEL",
        "FOLLOWS",
        "EXPECTED",
        "SERVING",
        "REASON",
    ]
    prod, staging = (row.split() for row in rows)
    assert prod[:7] == ["prod", lagging, "stage", "Production", "2", "1", "promoted"]
    assert prod[-1].endswith("s")  # the lag, e.g. 3s
    # Version 2 left Staging for Production: staging serves what its stage no longer names.
    assert staging[:7] == ["staging", lagging, "stage", "Staging", "-", "2", "demoted"]
    as_json = registrar(
        server, "deployments", "--drift", "--model", lagging, "--json", cwd=tmp_path
    )
    drifts = json.loads(as_json.stdout)["drift"]
    assert [(d["expected_version"], d["serving_version"]) for d in drifts] == [(2, 1), (None, 2)]


def test_a_bad_instant_or_an_unreachable_server_is_told_on_stderr(
    server: str, tmp_path: Path
) -> None:
    bad = registrar(server, "deployments", "--as-of", "yesterday", cwd=tmp_path)
    assert bad.returncode == 1 and "RFC 3339" in bad.stderr
    gone = registrar("http://127.0.0.1:9", "deployments", cwd=tmp_path)
    assert gone.returncode == 1 and gone.stderr.startswith("registrar deployments:")


def test_a_deployer_token_is_made_from_the_shell(
    server: str, database_url: str, tmp_path: Path
) -> None:
    made = registrar(
        server,
        "token",
        "create",
        "--user",
        "argo-cd",
        "--role",
        "deployer",
        cwd=tmp_path,
        REGISTRAR_DATABASE_URL=database_url,
    )

    assert made.returncode == 0, made.stderr
    listed = registrar(
        server,
        "token",
        "list",
        "--user",
        "argo-cd",
        cwd=tmp_path,
        REGISTRAR_DATABASE_URL=database_url,
    )
    assert "argo-cd  deployer" in listed.stdout
