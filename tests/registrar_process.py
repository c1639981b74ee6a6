"""Running `registrar` as a real process in tests: start it, learn its URL, stop it with Ctrl-C."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent
_UP = re.compile(r"Registrar is up at (http://\S+)")


def registrar_env(*, bin_dir: Path = BIN, **overrides: str | None) -> dict[str, str]:
    """The environment a user's shell would give `registrar`: none of this process's REGISTRAR_
    settings, `bin_dir` (the venv's) first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRAR_")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["REGISTRAR_LOG_LEVEL"] = "warning"
    for key, value in overrides.items():
        if value is not None:
            env[key] = value
    return env


@contextmanager
def running_registrar(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    startup_seconds: float = 60,
    api: bool = True,
    bin_dir: Path = BIN,
) -> Iterator[tuple[str, list[str]]]:
    """Start `registrar ARGS` and yield (its URL, the lines it printed so far); Ctrl-C at exit.
    `api=False`: a command that serves no API (its URL is then "")."""
    proc = subprocess.Popen(
        [str(bin_dir / "registrar"), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    url = None
    deadline = time.monotonic() + startup_seconds
    try:
        assert proc.stdout is not None
        announced = False  # `registrar up` says where it runs, then "Ctrl-C stops it."
        while not announced and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            lines.append(line)
            found = _UP.search(line)
            if found:
                url = found.group(1)
            announced = "Ctrl-C stops it." in line
        if not api:
            assert announced and proc.poll() is None, "registrar stopped:\n" + "".join(lines)
            yield "", lines
            return
        assert url is not None, "registrar did not start:\n" + "".join(lines)
        assert httpx.get(f"{url}/healthz", timeout=10).status_code == 200
        yield url, lines
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            # read() and not communicate(): readline() above may hold buffered lines.
            lines.extend(proc.stdout.read().splitlines(keepends=True))
            proc.stdout.close()
        lines.append(f"[exit code {proc.returncode}]\n")
