"""The checks STYLE.md asks for, run with the tests so they cannot drift: mypy --strict on the
public contracts, and ruff (errors, imports, pyupgrade, bugbear) on all the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def test_contracts_pass_mypy_strict() -> None:
    result = subprocess.run(
        [str(BIN / "mypy"), "--strict", "contracts"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_code_passes_ruff() -> None:
    result = subprocess.run(
        [str(BIN / "ruff"), "check", "contracts", "services", "projections", "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
