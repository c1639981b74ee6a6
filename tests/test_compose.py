"""compose.yaml cannot be run here (no Docker engine); what can be checked is that every service
runs a `registrar` command that exists and reads only environment variables Registrar knows."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from registrar.cli.arguments import parser
from registrar.settings import VARIABLES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
REGISTRAR_SERVICES = {
    name: spec for name, spec in COMPOSE["services"].items() if spec.get("build") == "."
}


def test_the_image_runs_registrar() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["registrar"]' in dockerfile
    assert REGISTRAR_SERVICES, "compose.yaml runs no registrar service"


@pytest.mark.parametrize("service", sorted(REGISTRAR_SERVICES))
def test_each_service_command_is_a_registrar_command(service: str) -> None:
    command = REGISTRAR_SERVICES[service]["command"]
    parsed = parser().parse_args(command)  # exits (SystemExit) on an unknown command or flag
    assert parsed.command == command[0]


@pytest.mark.parametrize("service", sorted(REGISTRAR_SERVICES))
def test_each_service_sets_only_variables_registrar_reads(service: str) -> None:
    environment = REGISTRAR_SERVICES[service].get("environment", {})
    assert set(environment) <= set(VARIABLES)


def test_the_database_url_names_the_compose_postgres() -> None:
    postgres = COMPOSE["services"]["postgres"]["environment"]
    expected = (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    for spec in REGISTRAR_SERVICES.values():
        assert spec["environment"]["REGISTRAR_DATABASE_URL"] == expected


def test_every_registrar_service_finds_kafka_and_kafka_is_the_official_image() -> None:
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name, spec in REGISTRAR_SERVICES.items():
        if spec["command"][0] in ("serve", "relay", "project", "ingest"):
            bootstrap = spec["environment"]["REGISTRAR_KAFKA_BOOTSTRAP"]
            assert f"PLAINTEXT://{bootstrap}" in advertised, name


def test_every_role_runs_in_some_service() -> None:
    commands = {spec["command"][0] for spec in REGISTRAR_SERVICES.values()}
    assert {"migrate", "serve", "relay", "project", "ingest"} <= commands


def test_readme_documents_every_variable() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(REGISTRAR_[A-Z_]+)`", readme))
    assert set(VARIABLES) <= documented
