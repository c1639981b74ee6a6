"""Access control as an operator meets it: `registrar token create / revoke / list` as real
processes against the database a running `registrar` uses, and which mode `up` / `serve` run in."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from registrar_process import registrar_env, running_registrar
from test_cli import run


def _status(url: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/v1/whoami", headers=headers, timeout=10).status_code


def test_up_with_auth_says_so_and_the_first_admin_token_comes_from_the_shell(
    tmp_path: Path,
) -> None:
    env = registrar_env(REGISTRAR_HOME=str(tmp_path / "home"))
    with running_registrar("up", "--auth", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        assert any("Authentication: required (--auth)" in line for line in lines), lines
        assert _status(url, None) == 401

        created = run("token", "create", "--user", "ops", "--role", "admin", env=env, cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        token = created.stdout.splitlines()[-1]
        assert token.startswith("rgt_") and " " not in token
        me = httpx.get(f"{url}/v1/whoami", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text
        assert me.json()["user"] == "ops" and me.json()["role"] == "admin"

        listed = run("token", "list", env=env, cwd=tmp_path)
        assert "ops  admin" in listed.stdout and token not in listed.stdout

        revoked = run("token", "revoke", token, env=env, cwd=tmp_path)
        assert revoked.returncode == 0, revoked.stderr
        deadline = time.monotonic() + 10
        while _status(url, token) != 401 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _status(url, token) == 401

        again = run("token", "revoke", token, env=env, cwd=tmp_path)
        assert again.returncode == 1 and "already revoked" in again.stderr
        history = run("token", "list", "--all", env=env, cwd=tmp_path)
        assert "revoked" in history.stdout


def test_serve_on_loopback_is_open_and_says_how_to_require_tokens(
    database_url: str, tmp_path: Path
) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    with running_registrar("serve", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        assert any("Authentication: off" in line and "--auth" in line for line in lines), lines
        me = httpx.get(f"{url}/v1/whoami", headers={"X-Registrar-Actor": "dev"})
        assert me.json() == {
            "user": "dev",
            "role": "admin",
            "authenticated": False,
            "token_id": None,
        }


def test_serve_beyond_loopback_requires_tokens_whatever_the_settings(
    database_url: str, tmp_path: Path
) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_AUTH="optional")
    with running_registrar("serve", "--host", "0.0.0.0", "--port", "0", env=env, cwd=tmp_path) as (
        url,
        lines,
    ):
        assert any("Authentication: required (listening on 0.0.0.0" in line for line in lines)
        assert _status(url, None) == 401
        assert httpx.get(f"{url}/healthz").status_code == 200


def test_registrar_auth_required_turns_authentication_on_on_loopback(
    database_url: str, tmp_path: Path
) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_AUTH="required")
    with running_registrar("serve", "--port", "0", env=env, cwd=tmp_path) as (url, lines):
        assert any("Authentication: required (REGISTRAR_AUTH=required)" in line for line in lines)
        assert _status(url, None) == 401


def test_a_bad_auth_setting_or_role_is_refused_with_the_reason(
    database_url: str, tmp_path: Path
) -> None:
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_AUTH="yes")
    refused = run("serve", "--port", "0", env=env, cwd=tmp_path)
    assert refused.returncode == 2 and "REGISTRAR_AUTH: Input should be" in refused.stderr
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url)
    bad_role = run("token", "create", "--user", "x", "--role", "root", env=env, cwd=tmp_path)
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr
    bad_user = run("token", "create", "--user", "a b", "--role", "viewer", env=env, cwd=tmp_path)
    assert bad_user.returncode == 1 and "user name" in bad_user.stderr
