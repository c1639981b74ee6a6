"""The shape of the code, checked so it stays true: one import package (`registrar`) mapped from
the design's top-level folders, dependencies that point one way (contracts <- domain <-
projections <- services), every package shipped, and no module over 600 lines."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from source_tree import copy_sources

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PACKAGE_DIRS: dict[str, str] = PYPROJECT["tool"]["setuptools"]["package-dir"]
"""Import package → the folder it is mapped from ("registrar" → "services", ...)."""

PARTS = ("contracts", "domain", "projections", "services")
"""The parts, innermost first: each may import itself and the parts before it, nothing after."""
MAY_IMPORT = {part: set(PARTS[: i + 1]) for i, part in enumerate(PARTS)}
OLD_TOP_LEVEL = {"services", "contracts", "projections", "domain"}

BENCHMARKS_USING_INTERNALS = {
    # Each builds or times one internal component directly (a history of a million events written
    # straight into the store, a read model's query over it), which no public door can do at
    # that scale; every other benchmark drives the system from outside.
    "as_of_query.py",
    "history_generator.py",
    "lineage_impact.py",
    "stream_load.py",
    "relay_backlog.py",
    "access_control.py",
    "fresh_database.py",
    "rebuild.py",
}


def _module_name(path: Path) -> str:
    """The importable name of a source file under its mapped package."""
    folder, *rest = path.relative_to(ROOT).with_suffix("").parts
    package = next(pkg for pkg, src in PACKAGE_DIRS.items() if src == folder)
    names = [package, *rest]
    return ".".join(names[:-1] if names[-1] == "__init__" else names)


def _part_of(module: str) -> str | None:
    """Which part a `registrar...` module belongs to (None: not one of ours)."""
    if module != "registrar" and not module.startswith("registrar."):
        return None
    second = module.split(".")[1] if "." in module else ""
    return second if second in ("contracts", "domain", "projections") else "services"


def _imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in a file, relative ones resolved, TYPE_CHECKING included."""
    tree = ast.parse(path.read_text(), str(path))
    here = _module_name(path) if path.relative_to(ROOT).parts[0] in PARTS else ""
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:  # `from registrar import contracts` imports a part
                yield node.lineno, f"{module}.{alias.name}"


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_each_part_imports_only_itself_and_the_parts_beneath_it() -> None:
    wrong = []
    for part in PARTS:
        for path in _sources(part):
            for line, module in _imports(path):
                target = _part_of(module)
                if target is not None and target not in MAY_IMPORT[part]:
                    wrong.append(f"{path.relative_to(ROOT)}:{line}: {part} imports {module}")
    rule = "dependencies must point contracts <- domain <- projections <- services"
    assert not wrong, rule + ":\n" + "\n".join(wrong)


def test_nothing_imports_the_folders_by_their_old_top_level_names() -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: import {module}"
        for path in _sources(*PARTS, "tests", "bench")
        for line, module in _imports(path)
        if module.split(".")[0] in OLD_TOP_LEVEL
    ]
    assert not wrong, "import these as registrar.<part>:\n" + "\n".join(wrong)


def _root_exports() -> set[str]:
    """The names `registrar` itself offers (its __all__): the client and its errors."""
    tree = ast.parse((ROOT / PACKAGE_DIRS["registrar"] / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            return set(ast.literal_eval(node.value))
    return set()


def _is_public(module: str) -> bool:
    parts = module.split(".")
    return (
        module == "registrar"
        or parts[:2] == ["registrar", "contracts"]
        or (len(parts) == 2 and parts[1] in _root_exports())
    )


def test_benchmarks_drive_the_system_from_outside() -> None:
    """A benchmark may use the client, the contracts (message shapes) and test helpers; the few
    that time one component directly are named in BENCHMARKS_USING_INTERNALS, with the reason."""
    wrong = [
        f"bench/{path.name}:{line}: import {module}"
        for path in _sources("bench")
        if path.name not in BENCHMARKS_USING_INTERNALS
        for line, module in _imports(path)
        if _part_of(module) is not None and not _is_public(module)
    ]
    assert not wrong, "\n".join(wrong)


def test_every_package_folder_is_shipped() -> None:
    """A package folder missing from pyproject's list would work in an editable install and be
    absent from a real one."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    found = {_module_name(init) for init in _sources(*PARTS) if init.name == "__init__.py"}
    assert found == listed


def test_no_module_is_over_600_lines() -> None:
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for path in _sources(*PARTS)
        if (n := len(path.read_text().splitlines())) > 600
    ]
    assert not long, "split these by concept:\n" + "\n".join(long)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The distribution as `pip install .` builds it."""
    source = copy_sources(tmp_path_factory.mktemp("source"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    return next(out.glob("registrar-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel's files as a non-editable install lays them out."""
    target = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def test_the_distribution_installs_one_top_level_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
        assert "registrar/store/migrations/0001_event_store.sql" in archive.namelist()
    assert {top for top in tops if not top.endswith(".dist-info")} == {"registrar"}


def test_after_a_real_install_only_registrar_is_importable(installed: Path) -> None:
    """Run outside the checkout with the editable install's finder off (-S: no .pth files), the
    installed tree first, the dependencies after it."""
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    probe = (
        "import importlib.util, sys;"
        f"sys.path[:0] = [{str(installed)!r}]; sys.path.append({site_packages!r});"
        "import registrar, registrar.contracts.events, registrar.domain.decider;"
        "import registrar.projections.catalogue, registrar.store.schema_migrations as m;"
        "assert m.migration_files(), 'migrations missing';"
        f"assert registrar.__file__.startswith({str(installed)!r}), registrar.__file__;"
        "print(registrar.__version__);"
        "print(*[n for n in ('services', 'contracts', 'projections', 'domain')"
        " if importlib.util.find_spec(n) is not None])"
    )
    result = subprocess.run(
        [sys.executable, "-S", "-c", probe],
        cwd=installed.parent,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    version, importable = result.stdout.splitlines()
    assert version == PYPROJECT["project"]["version"]
    assert importable == ""


def test_contracts_pass_mypy_strict(installed: Path) -> None:
    """mypy reads the installed tree: an editable install maps folders with an import hook, which
    static checkers do not run."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "-p", "registrar.contracts"],
        cwd=ROOT,
        env={**os.environ, "MYPYPATH": str(installed)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
