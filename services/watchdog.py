"""The embedded servers outlive nobody: `registrar up` starts this watchdog in a session of its
own, and when `up` dies without stopping what it started (SIGKILL, the OOM killer), the watchdog
stops them: the embedded PostgreSQL (unless another live process still uses it) and the broker.
On a clean stop `up` has done that already, and the watchdog finds nothing left to do.

Run as `python -m registrar.watchdog --parent PID --pgdata DIR [--user U] [--kill PID ...]`."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from registrar.store.database import is_running, live_handles, stop_postgres

POLL_SECONDS = 0.2


def _kill(pid: int, started: float) -> None:
    """SIGKILL `pid` if it is still the process that started at `started` (not a reused pid)."""
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        if abs(process.create_time() - started) < 0.01:
            process.send_signal(signal.SIGKILL)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="registrar.watchdog")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--pgdata", type=Path)
    parser.add_argument("--user", default=None, help="the system user the server runs as")
    parser.add_argument("--kill", action="append", default=[], help="PID:CREATE_TIME")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for `up`; this outlives it
    while is_running(args.parent):
        time.sleep(POLL_SECONDS)
    for entry in args.kill:
        pid, _, started = entry.partition(":")
        _kill(int(pid), float(started))
    if args.pgdata is not None and not live_handles(args.pgdata):
        stop_postgres(args.pgdata, args.user)
    return 0


def start_watchdog(
    pgdata: Path | None, user: str | None, kill: list[int]
) -> subprocess.Popen[bytes]:
    """Watch this process; on its death, stop the server in `pgdata` and kill `kill`."""
    command = [sys.executable, "-m", "registrar.watchdog", "--parent", str(os.getpid())]
    if pgdata is not None:
        command += ["--pgdata", str(pgdata)]
    if user is not None:
        command += ["--user", user]
    for pid in kill:
        command += ["--kill", f"{pid}:{psutil.Process(pid).create_time()}"]
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


if __name__ == "__main__":
    sys.exit(main())
