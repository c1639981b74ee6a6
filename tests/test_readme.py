"""README.md cannot drift: its two opening commands are the ones CI runs, and every example in it
that terminates is executed here, in order, against a running `registrar up`."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from registrar_process import registrar_env, running_registrar
from source_tree import copy_sources

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
BLOCKS = [(info.strip(), code) for info, code in FENCE.findall(README)]
RUNNABLE = [(i, info, code) for i, (info, code) in enumerate(BLOCKS) if info in ("sh", "python")]


def test_readme_opens_with_the_run_command_and_the_test_command() -> None:
    first, second = BLOCKS[0], BLOCKS[1]
    assert first[0] == second[0] == "sh no-run"
    assert "registrar up" in first[1] and "pip install ." in first[1]
    assert "pytest" in second[1] and "pip install" in second[1]
    before_first = README[: README.index("```")]
    assert before_first.count("\n## ") == 0, "nothing but the title and intro before the commands"


def test_ci_runs_the_readme_test_command() -> None:
    test_command = BLOCKS[1][1].strip()
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_readme_has_runnable_examples_of_both_kinds() -> None:
    kinds = {info for _, info, _ in RUNNABLE}
    assert kinds == {"sh", "python"}


BUS = re.compile(r"Bus: .* at (\S+?)\.?$", re.MULTILINE)


INSTALL = ".venv/bin/pip install ."
MLFLOW_EXTRA = ".venv/bin/pip install '.[mlflow]'"


@pytest.fixture(scope="module")
def readme_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv made the README's way (its install line, plus the MLflow extra its MLflow section
    asks for), not the test venv: every example must work with what a user has installed.
    Its bin folder."""
    assert INSTALL in BLOCKS[0][1] and MLFLOW_EXTRA in README
    venv = tmp_path_factory.mktemp("readme-venv") / ".venv"
    source = copy_sources(tmp_path_factory.mktemp("readme-source"))
    base_python = getattr(sys, "_base_executable", sys.executable)
    for command in (
        [base_python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", f"{source}[mlflow]"],
    ):
        made = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert made.returncode == 0, made.stdout + made.stderr
    return venv / "bin"


@pytest.fixture(scope="module")
def registrar(
    database_url: str, tmp_path_factory: pytest.TempPathFactory, readme_venv: Path
) -> Iterator[tuple[str, str]]:
    """`registrar up` from the README's venv on a fresh database, with the Kafka-compatible
    broker it starts itself (a broker of its own: the session's shared one carries other test
    databases' events). Yields its URL and its broker's address."""
    workdir = tmp_path_factory.mktemp("readme")
    env = registrar_env(
        bin_dir=readme_venv,
        REGISTRAR_DATABASE_URL=database_url,
        REGISTRAR_HOME=str(workdir / "home"),
    )
    with running_registrar("up", "--port", "0", env=env, cwd=workdir, bin_dir=readme_venv) as (
        url,
        lines,
    ):
        bus = BUS.search("".join(lines))
        assert bus is not None, "registrar up did not say where its broker is:\n" + "".join(lines)
        yield url, bus.group(1)


@pytest.mark.parametrize(
    ("index", "info", "code"), RUNNABLE, ids=[f"block{i}" for i, _, _ in RUNNABLE]
)
def test_readme_example_runs(
    index: int,
    info: str,
    code: str,
    registrar: tuple[str, str],
    readme_venv: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url, bootstrap = registrar
    code = code.replace("http://localhost:8080", url).replace("localhost:8080", url)
    cwd = tmp_path_factory.mktemp(f"block{index}")
    if info == "python":
        command = [str(readme_venv / "python"), "-c", code]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    env = registrar_env(bin_dir=readme_venv, REGISTRAR_KAFKA_BOOTSTRAP=bootstrap)
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (
        f"README block {index} failed:\n{code}\n{result.stdout}\n{result.stderr}"
    )
