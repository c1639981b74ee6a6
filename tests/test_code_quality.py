"""The checks STYLE.md asks for, run with the tests so they cannot drift: ruff (errors, imports,
pyupgrade, bugbear) on all the code. (mypy --strict on the contracts runs in test_layout, on the
installed tree.)"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PARTS = ("contracts", "domain", "projections", "services")


def test_the_code_passes_ruff() -> None:
    result = subprocess.run(
        [str(BIN / "ruff"), "check", *PARTS, "tests", "bench"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
