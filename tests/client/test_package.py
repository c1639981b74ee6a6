"""The client as a package: exported from `registrar` but loaded only when used, built on the
contracts alone, and typed so that a checker sees each flavour's results (mypy --strict)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import registrar
from registrar import client as client_package

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "services" / "client"


def test_registrar_exports_the_client_and_its_errors() -> None:
    assert registrar.Client is client_package.Client
    assert registrar.AsyncClient is client_package.AsyncClient
    for name in ("Conflict", "Forbidden", "InvalidRequest", "NotFound", "Unauthorized"):
        assert issubclass(getattr(registrar, name), registrar.ClientError), name
    assert issubclass(registrar.Unavailable, registrar.ClientError)
    assert set(registrar.__all__) >= set(client_package.__all__)


def test_importing_registrar_and_its_contracts_loads_neither_the_client_nor_httpx() -> None:
    probe = (
        "import sys, registrar, registrar.contracts.api, registrar.contracts.api_answers;"
        "print(sorted(m for m in ('registrar.client', 'httpx') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_client_imports_nothing_of_registrar_but_itself_and_the_contracts() -> None:
    wrong = []
    for path in sorted(CLIENT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                ours = name == "registrar" or name.startswith("registrar.")
                allowed = name.startswith(("registrar.client", "registrar.contracts"))
                if ours and not allowed:
                    wrong.append(f"{path.name}: {name}")
    assert not wrong, "the client is installed into jobs that run no server:\n" + "\n".join(wrong)


TYPED_USE = """
from collections.abc import AsyncIterator, Iterator

from registrar import AsyncClient, Client
from registrar.contracts.api import ModelOut
from registrar.contracts.api_answers import AuditRow


def blocking(client: Client) -> int:
    model: ModelOut = client.get_model("m")
    rows: Iterator[AuditRow] = client.audit(model=model.name)
    return client.register_version("m", "s3://x", metrics={"auc": 0.9}).version


async def awaiting(client: AsyncClient) -> int:
    model: ModelOut = await client.get_model("m")
    rows: AsyncIterator[AuditRow] = client.audit(model=model.name)
    return (await client.register_version("m", "s3://x")).version


def mistaken(client: AsyncClient, blocking: Client) -> None:
    model: ModelOut = client.get_model("m")
    blocking.get_version("m", "1")
"""


def _source_tree(tmp_path: Path) -> Path:
    """`registrar` laid out as installed (symlinks): checkers do not run the editable install's
    import hook, which maps the package from several folders."""
    package = tmp_path / "tree" / "registrar"
    package.mkdir(parents=True)
    for entry in (ROOT / "services").iterdir():
        (package / entry.name).symlink_to(entry)
    for part in ("contracts", "domain", "projections"):
        (package / part).symlink_to(ROOT / part)
    return package.parent


def test_each_flavour_is_typed_for_what_it_returns(tmp_path: Path) -> None:
    use = tmp_path / "use.py"
    use.write_text(TYPED_USE)
    command = [sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run(
        [*command, str(use)],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(_source_tree(tmp_path))},
        capture_output=True,
        text=True,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[:2] for line in errors] == [[str(use), "22"], [str(use), "23"]], (
        result.stdout
    )
    assert 'has type "Coroutine[Any, Any, ModelOut]"' in errors[0]
    assert 'Argument 2 has incompatible type "str"; expected "int"' in errors[1]
