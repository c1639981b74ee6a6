"""The project's sources as a build sees them, copied out of the checkout: building in the
checkout would leave a build/ folder whose stale files (a module since moved) a later build would
ship. The same files the Dockerfile copies."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = ("contracts", "domain", "projections", "services")


def copy_sources(destination: Path) -> Path:
    """Copy what a build needs into `destination` (made if missing); return it."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, destination / name)
    for part in PARTS:
        shutil.copytree(
            ROOT / part, destination / part, ignore=shutil.ignore_patterns("__pycache__")
        )
    return destination
