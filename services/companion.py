"""`registrar up`'s second process: the projectors and the ingest consumers run beside the API's
process, so the system uses two cores rather than one event loop's.

One event loop held the API, the relay, five projectors, the promotions publisher and the ingest
consumers: under load it was busy all the time while the second core idled (bench/http_load.py,
../shared/PERF-NOTES.md). The companion is started with `multiprocessing`'s spawn (a fresh
interpreter, no inherited event loop) and lives exactly as long as its parent: it stops with it,
it dies with it (the kernel signals it when the parent dies, even by SIGKILL), and if it ends by
itself the parent ends too, loudly, as when any role fails."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
from dataclasses import asdict, dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from registrar.runtime import STOP_SECONDS, Roles

PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class CompanionConfig:
    """What the companion needs to run its roles: plain values (they cross a process boundary)."""

    roles: Roles
    database_url: str
    kafka_bootstrap: str
    auth_required: bool
    ingest_user: str
    ingest_role: str
    log_level: str
    log_format: str
    topic_prefix: str = ""


def start_companion(config: CompanionConfig) -> BaseProcess:
    """Start the companion process running `config.roles`; stop it with `stop_companion`."""
    process = multiprocessing.get_context("spawn").Process(
        target=_main, args=(asdict(config), os.getpid()), name="registrar-companion", daemon=False
    )
    process.start()
    return process


async def until_ended(process: BaseProcess) -> None:
    """Return when `process` has ended, without polling: its sentinel becomes readable then."""
    loop = asyncio.get_running_loop()
    ended = loop.create_future()
    loop.add_reader(process.sentinel, lambda: ended.done() or ended.set_result(None))
    try:
        await ended
    finally:
        loop.remove_reader(process.sentinel)
    raise RuntimeError(
        f"the projector process ({process.pid}) ended with exit code {process.exitcode}"
    )


def stop_companion(process: BaseProcess) -> None:
    """Ask it to stop (SIGTERM), wait for its own bounded stop, then kill it if it has not."""
    if process.is_alive():
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid or 0, signal.SIGTERM)
    process.join(STOP_SECONDS * 2 + 1)
    if process.is_alive():
        process.kill()
        process.join(5)


def _die_with(parent: int) -> None:
    """Have the kernel send SIGTERM here when the parent dies (Linux); checked once after, for a
    parent that died before the request was made."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        sys.exit(1)


def _main(fields: dict[str, Any], parent: int) -> None:
    _die_with(parent)
    from registrar.access.principal import Principal
    from registrar.contracts.values import Role
    from registrar.logs import configure_logging
    from registrar.runtime import run, run_event_loop, tune_garbage_collector

    config = CompanionConfig(**{**fields, "roles": Roles(**fields["roles"])})
    configure_logging(config.log_level, config.log_format)  # type: ignore[arg-type]
    tune_garbage_collector()
    run_event_loop(
        run(
            config.roles,
            config.database_url,
            config.kafka_bootstrap,
            auth_required=config.auth_required,
            ingest_as=Principal(config.ingest_user, Role(config.ingest_role)),
            topic_prefix=config.topic_prefix,
        )
    )
