"""The `registrar` command as a user runs it: a real process, a real (embedded) PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import create_database, drop_database
from registrar_process import BIN, registrar_env, running_registrar

from registrar.contracts.schemas import contract_models


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "registrar"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_up_runs_on_embedded_postgres_keeps_data_across_restarts_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    env = registrar_env(REGISTRAR_HOME=str(tmp_path / "home"))
    with running_registrar("up", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        created = httpx.post(f"{url}/v1/models", json={"name": "kept"})
        assert created.status_code == 201
    assert any("embedded PostgreSQL" in line for line in lines), lines
    assert "Registrar stopped." in "".join(lines)
    assert lines[-1] == "[exit code 0]\n"
    assert (tmp_path / "home" / "postgres" / "PG_VERSION").exists()

    with running_registrar("up", "--port", "0", env=env, cwd=tmp_path) as (url, _):
        again = httpx.get(f"{url}/v1/models/kept")
        assert again.status_code == 200
        assert again.json()["name"] == "kept"


@pytest.mark.parametrize("command", [["relay"], ["ingest"], ["project", "lineage"]])
def test_a_role_joining_a_registry_without_a_database_url_says_what_to_do(
    tmp_path: Path, command: list[str]
) -> None:
    result = run(*command, env=registrar_env(), cwd=tmp_path)
    assert result.returncode == 2
    assert "REGISTRAR_DATABASE_URL" in result.stderr


def test_read_models_can_follow_the_store_in_a_process_of_their_own(
    server_url: str, tmp_path: Path
) -> None:
    url, name = create_database(server_url)
    env = registrar_env(REGISTRAR_DATABASE_URL=url, REGISTRAR_QUERY_WAIT_SECONDS="2")
    audit_of_split = {"model": "split", "action": "ModelRegistered"}
    try:
        serve = ("serve", "--port", "0", "--read-models", "current_state")
        with running_registrar(*serve, env=env, cwd=tmp_path) as (api, lines):
            assert "read model current_state" in "".join(lines)
            created = httpx.post(f"{api}/v1/models", json={"name": "split"})
            assert created.status_code == 201
            wanted = {**audit_of_split, "min_position": created.json()["position"]}
            # Current state follows in the API's process: the model is listed at once...
            assert [m["name"] for m in httpx.get(f"{api}/v1/models").json()["models"]] == ["split"]
            # ...but nothing keeps the audit trail until a projector process does.
            unkept = httpx.get(f"{api}/v1/audit", params=wanted, timeout=10)
            assert unkept.status_code == 503, unkept.text
            assert "audit_trail read model has not reached" in unkept.json()["error"]["message"]

            project = ("project", "audit_trail", "stage_history")
            with running_registrar(*project, env=env, cwd=tmp_path, api=False) as (_, said):
                assert "read model audit_trail, read model stage_history" in "".join(said)
                kept = httpx.get(f"{api}/v1/audit", params=wanted, timeout=10)
                assert kept.status_code == 200, kept.text
                assert [(e["actor"], e["model"]) for e in kept.json()["events"]] == [
                    ("anonymous", "split")
                ]
            assert said[-1] == "[exit code 0]\n"
    finally:
        drop_database(server_url, name)


def test_the_promotions_projector_needs_kafka(tmp_path: Path) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL="postgresql://nowhere/none")
    result = run("project", "promotions", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "promotions projector publishes to Kafka" in result.stderr
    both = registrar_env(
        REGISTRAR_DATABASE_URL="postgresql://nowhere/none", REGISTRAR_KAFKA_BOOTSTRAP="nowhere:9"
    )
    result = run("serve", "--read-models", "lineage", env=both, cwd=tmp_path)
    assert result.returncode == 2
    assert "--read-models is for running without Kafka" in result.stderr


def test_migrate_applies_the_schema_once(database_url: str, tmp_path: Path) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    first = run("migrate", env=env, cwd=tmp_path)
    second = run("migrate", env=env, cwd=tmp_path)
    assert first.returncode == second.returncode == 0
    assert "0001_event_store" in first.stdout
    assert "up to date" in second.stdout


def test_contracts_export_writes_a_json_schema_per_contract(tmp_path: Path) -> None:
    result = run(
        "contracts", "export", str(tmp_path / "schemas"), env=registrar_env(), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "schemas").glob("*.schema.json"))
    assert [p.name.removesuffix(".schema.json") for p in written] == sorted(contract_models())
    envelope = json.loads((tmp_path / "schemas" / "Envelope.schema.json").read_text())
    assert {"event_id", "stream_id", "stream_version", "prev_hash", "hash"} <= set(
        envelope["properties"]
    )
    register = json.loads((tmp_path / "schemas" / "RegisterVersion.schema.json").read_text())
    # Without a source, Registrar's artifact store holds the version's files.
    assert register["required"] == ["name"]
    assert register["properties"]["digest"]["pattern"] == "^(sha256:[0-9a-f]{64})?$"


def _postmaster_pid(pgdata: Path) -> int | None:
    pid_file = pgdata / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def _gone(pid: int, within: float = 30) -> bool:
    """Whether `pid` has stopped running (a zombie counts as stopped) within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def _up_process() -> psutil.Process:
    """The running `registrar up --port 0` (a process that ends while listed has no cmdline)."""
    return next(
        p
        for p in psutil.process_iter(["cmdline"])
        if (p.info["cmdline"] or [])[-3:] == ["up", "--port", "0"]
    )


def _companion_of(up: psutil.Process) -> psutil.Process:
    """`up`'s second process, the one running its projectors and ingest consumers."""
    return next(p for p in up.children() if "spawn_main" in " ".join(p.cmdline()))


def test_a_killed_up_leaves_no_server_behind_and_the_next_up_starts_and_stops_cleanly(
    tmp_path: Path,
) -> None:
    env = registrar_env(REGISTRAR_HOME=str(tmp_path / "home"))
    pgdata = tmp_path / "home" / "postgres"
    with running_registrar("up", "--port", "0", env=env, cwd=tmp_path) as (url, _):
        assert httpx.post(f"{url}/v1/models", json={"name": "survives"}).status_code == 201
        up = _up_process()
        broker = next(p for p in up.children() if "tansu" in " ".join(p.cmdline()))
        companion = _companion_of(up)
        postmaster = _postmaster_pid(pgdata)
        assert postmaster is not None
        up.kill()  # SIGKILL: no clean-up of its own
        assert _gone(postmaster), "the embedded PostgreSQL outlived a killed `registrar up`"
        assert _gone(broker.pid), "the embedded broker outlived a killed `registrar up`"
        assert _gone(companion.pid), "the projector process outlived a killed `registrar up`"

    with running_registrar("up", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        assert httpx.get(f"{url}/v1/models/survives").status_code == 200
        postmaster = _postmaster_pid(pgdata)
    assert lines[-1] == "[exit code 0]\n"
    assert postmaster is not None and _gone(postmaster), "a clean stop left PostgreSQL running"


def test_up_runs_its_consumers_in_a_second_process_and_stops_when_that_process_dies(
    tmp_path: Path,
) -> None:
    env = registrar_env(REGISTRAR_HOME=str(tmp_path / "home"))
    with running_registrar("up", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        up = _up_process()
        companion = _companion_of(up)
        # Read models are kept by the second process: a write shows in them.
        assert httpx.post(f"{url}/v1/models", json={"name": "split"}).status_code == 201
        listed = httpx.get(f"{url}/v1/models", timeout=30)
        assert [m["name"] for m in listed.json()["models"]] == ["split"]
        companion.kill()
        assert _gone(up.pid), "`registrar up` went on without its projectors"
    assert any("the projector process" in line for line in lines)


def test_registrar_version_names_the_installed_version(tmp_path: Path) -> None:
    result = run("--version", env=registrar_env(), cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("registrar 0.")


@pytest.mark.parametrize("command", [["token", "list"], ["policy", "show"], ["migrate"]])
def test_a_tool_finding_no_registry_database_makes_none_and_says_where_it_looked(
    tmp_path: Path, command: list[str]
) -> None:
    home = tmp_path / "home"
    result = run(*command, env=registrar_env(REGISTRAR_HOME=str(home)), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{home / 'postgres'} holds no embedded database" in result.stderr
    assert "REGISTRAR_DATABASE_URL" in result.stderr
    assert not home.exists() and not (tmp_path / ".registrar").exists()


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ({"REGISTRAR_PORT": "abc"}, "REGISTRAR_PORT: Input should be a valid integer"),
        ({"REGISTRAR_DATABASE_URL": "mysql://x/y"}, "must be a PostgreSQL URL"),
        ({"REGISTRAR_DATABASE_URL": "postgresql://u@127.0.0.1:1/x"}, "cannot use the PostgreSQL"),
        ({"REGISTRAR_LOG_LEVEL": "loud"}, "REGISTRAR_LOG_LEVEL: Input should be"),
        ({"REGISTRAR_INGEST_ROLE": "viewer"}, "must be contributor or above"),
    ],
)
def test_a_bad_setting_or_an_unreachable_database_is_one_line_and_exit_code_2(
    tmp_path: Path, setting: dict[str, str], said: str
) -> None:
    for command in (["migrate"], ["token", "list"], ["serve", "--port", "0"]):
        result = run(*command, env=registrar_env(**setting), cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert said in result.stderr, (command, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serve_with_auth_runs_on_the_embedded_database_as_up_does(tmp_path: Path) -> None:
    env = registrar_env(REGISTRAR_HOME=str(tmp_path / "home"))
    with running_registrar("serve", "--auth", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        assert "Authentication: required (--auth)" in "".join(lines)
        assert httpx.get(f"{url}/v1/models").status_code == 401
    made = run("token", "create", "--user", "ops", "--role", "admin", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
