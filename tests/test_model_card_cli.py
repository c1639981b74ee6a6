"""`registrar card NAME VERSION` as an operator runs it, and `Client.model_card`: the real console
script and the Python client against a real `registrar serve` on PostgreSQL."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from registrar_process import BIN, registrar_env, running_registrar

from registrar import Client
from registrar.contracts.card_document import CARD_SECTIONS, NOT_RECORDED, ModelCardDocument

TITLES = [title for _, title in CARD_SECTIONS]


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`registrar serve` on the module's fresh database; its URL."""
    home = Path(tmp_path_factory.mktemp("card-cli-home"))
    env = registrar_env(REGISTRAR_DATABASE_URL=database_url, REGISTRAR_HOME=str(home))
    with running_registrar("serve", "--port", "0", env=env, cwd=home) as (url, _):
        yield url


@pytest.fixture(scope="module")
def documented(server: str) -> str:
    """A model whose version 1 has a type, a framework, metrics and an intended use."""
    name = f"card-{uuid.uuid4().hex[:8]}"
    with Client(server) as client:
        client.create_model(name)
        client.register_version(
            name,
            "s3://models/card/1",
            model_type="logistic regression",
            framework="scikit-learn 1.5",
            metrics={"auc": 0.87},
        )
        client.update_model_card(name, 1, {"intended_use": "Ranking support tickets."})
    return name


def registrar(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`registrar ARGS` as a shell would run it, with REGISTRAR_URL pointing at `url` only."""
    return subprocess.run(
        [str(BIN / "registrar"), *args],
        env=registrar_env(REGISTRAR_URL=url),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_card_prints_the_markdown_card_with_every_section(
    server: str, documented: str, tmp_path: Path
) -> None:
    result = registrar(server, "card", documented, "1", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"# Model card: {documented} version 1\n")
    for title in TITLES:
        assert f"\n## {title}\n" in result.stdout, title
    for shown in ("logistic regression", "scikit-learn 1.5", "0.87", "Ranking support tickets."):
        assert shown in result.stdout, shown


def test_card_as_of_an_instant_before_the_version_is_refused_saying_so(
    server: str, documented: str, tmp_path: Path
) -> None:
    result = registrar(
        server, "card", documented, "1", "--as-of", "2000-01-01T00:00:00Z", cwd=tmp_path
    )

    assert result.returncode == 1
    assert (
        result.stderr.startswith("registrar card: ")
        and "did not exist at 2000-01-01" in result.stderr
    )


def test_card_prints_html_and_json_too(server: str, documented: str, tmp_path: Path) -> None:
    html = registrar(server, "card", documented, "1", "--format", "html", cwd=tmp_path)
    json = registrar(server, "card", documented, "1", "--format", "json", cwd=tmp_path)

    assert html.returncode == 0 and html.stdout.startswith("<!DOCTYPE html>"), html.stderr
    assert json.returncode == 0, json.stderr
    document = ModelCardDocument.model_validate_json(json.stdout)
    assert [s.title for s in document.sections] == TITLES


def test_the_client_reads_the_card_as_a_document_or_as_text(server: str, documented: str) -> None:
    with Client(server) as client:
        document = client.model_card(documented, 1)
        markdown = client.model_card(documented, 1, format="markdown")
        html = client.model_card(documented, 1, format="html")

    assert isinstance(document, ModelCardDocument)
    assert [s.title for s in document.sections] == TITLES
    assert document.sections[TITLES.index("Risk")].note == NOT_RECORDED
    assert isinstance(markdown, str) and markdown.startswith("# Model card: ")
    assert isinstance(html, str) and '<h2 id="risk-title">Risk</h2>' in html
    answer = httpx.get(f"{server}/v1/models/{documented}/versions/1/card", params={"format": "md"})
    assert answer.status_code == 422
