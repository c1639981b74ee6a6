"""What runs in one process: any of the API, the relay, the projector services and the ingest
consumers, on one registry and one Kafka connection, started in order and stopped together.
`registrar up` runs them all; production runs one role per process (see compose.yaml)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from faststream.kafka import KafkaBroker

from registrar.access.guard import AccessGuard
from registrar.access.principal import Principal
from registrar.api.app import create_app
from registrar.artifacts.blobs import BlobStore
from registrar.bus.kafka_broker import ensure_topics, wait_for_broker
from registrar.bus.kafka_projector import attach_projection
from registrar.bus.relay import Relay
from registrar.bus.training_ingest import INGEST_PRINCIPAL
from registrar.logs import CONSUMERS_LOGGER
from registrar.projections.catalogue import READ_MODELS, read_model
from registrar.registry import Registry
from registrar.webhooks.dispatcher import start_dispatcher

log = logging.getLogger("registrar.runtime")
consumers_log = logging.getLogger(CONSUMERS_LOGGER)

STOP_SECONDS = 3.0
"""How long a stop waits for each part (requests in flight, Kafka clients leaving their groups)
before it goes on without them."""

PROJECTIONS = (*READ_MODELS, "promotions")
"""The projector services `registrar project` can run (all of them by default): every read model,
and the promotions publisher."""


@dataclass(frozen=True)
class Roles:
    api: bool = False
    relay: bool = False
    projections: tuple[str, ...] = ()
    """Projector services fed by Kafka."""
    ingest: bool = False
    follow: tuple[str, ...] = ()
    """Read models whose projectors follow the store in this process (no Kafka)."""

    @classmethod
    def everything(cls) -> Roles:
        return cls(api=True, relay=True, projections=PROJECTIONS, ingest=True)


@dataclass
class Process:
    """The running parts of one process, for `run` to start and stop."""

    registry: Registry
    consumers: list[KafkaBroker] = field(default_factory=list)
    server: uvicorn.Server | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: `run` owns Ctrl-C and SIGTERM for every role."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _consumers(
    bootstrap: str,
    registry: Registry,
    roles: Roles,
    guard: AccessGuard | None,
    ingest_as: Principal,
    prefix: str = "",
) -> list[KafkaBroker]:
    """One Kafka connection per consumer: FastStream starts a connection's subscribers one after
    another, each waiting for its group to settle (seconds), so separate ones start together.
    `guard`: authentication is on for commands; `ingest_as`: who records training runs and
    evaluations; `prefix`: REGISTRAR_TOPIC_PREFIX, for every topic and consumer group."""
    store = registry.store
    attachers: list[Callable[[KafkaBroker], None]] = []
    for name in roles.projections:
        if name == "promotions":
            from registrar.bus.promotions import attach_promotions

            attachers.append(lambda kafka: attach_promotions(kafka, store, prefix=prefix))
        elif name in READ_MODELS:
            projection = read_model(name, store)
            attachers.append(
                lambda kafka, p=projection: attach_projection(kafka, store, p, prefix=prefix)
            )
        else:
            raise ValueError(f"unknown projection {name!r}: choose from {', '.join(PROJECTIONS)}")
    if roles.ingest:
        from registrar.bus.command_bus import attach_command_bus
        from registrar.bus.deployment_ingest import attach_deployment_ingest
        from registrar.bus.evaluation_ingest import attach_evaluation_ingest
        from registrar.bus.training_ingest import attach_training_ingest

        attachers.append(
            lambda kafka: attach_training_ingest(kafka, registry, caller=ingest_as, prefix=prefix)
        )
        attachers.append(
            lambda kafka: attach_evaluation_ingest(kafka, registry, caller=ingest_as, prefix=prefix)
        )
        attachers.append(
            lambda kafka: attach_command_bus(kafka, registry, guard=guard, prefix=prefix)
        )
        # As its own service principal (deployer), not `ingest_as`: see deployment_ingest.
        attachers.append(lambda kafka: attach_deployment_ingest(kafka, registry, prefix=prefix))
    consumers = []
    for attach in attachers:
        kafka = KafkaBroker(bootstrap, client_id="registrar", logger=consumers_log)
        attach(kafka)
        consumers.append(kafka)
    return consumers


async def run(
    roles: Roles,
    database_url: str,
    kafka_bootstrap: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    query_wait_seconds: float = 10.0,
    auth_required: bool = False,
    ingest_as: Principal = INGEST_PRINCIPAL,
    on_started: Callable[[Process], None] = lambda _: None,
    beside: Sequence[Coroutine[Any, Any, None]] = (),
    blobs: BlobStore | None = None,
    topic_prefix: str = "",
) -> None:
    """Run `roles` until SIGINT or SIGTERM, then stop them all, newest first. `auth_required`:
    the API and the Kafka command bus need tokens; `ingest_as`: the service principal that
    records training runs and evaluations; `beside`: more work that runs until the stop (one
    that ends, ends the process, as a role would); `blobs`: the artifact store's files, for the
    API; `topic_prefix`: REGISTRAR_TOPIC_PREFIX, before every topic and consumer group."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    registry = await Registry.open(database_url)
    registry.query_wait_seconds = query_wait_seconds
    process = Process(registry)
    process.tasks += [asyncio.create_task(work, name="beside") for work in beside]
    access = contextlib.AsyncExitStack()
    try:
        guard = None
        if auth_required and roles.ingest and kafka_bootstrap:
            guard = AccessGuard()
            await access.enter_async_context(guard.running(registry))
        if kafka_bootstrap:
            await wait_for_broker(kafka_bootstrap)
            await ensure_topics(kafka_bootstrap, prefix=topic_prefix)
            if roles.relay:
                relay = Relay(registry.store, kafka_bootstrap, topic_prefix=topic_prefix)
                registry.on_append.append(relay.wake)
                process.tasks.append(asyncio.create_task(relay.run(), name="relay"))
            process.consumers = _consumers(
                kafka_bootstrap, registry, roles, guard, ingest_as, topic_prefix
            )
        else:  # no bus: these read models follow the store in this process
            process.tasks += registry.start_projectors(roles.follow)
        if process.consumers:
            # Started beside the API, not before it: joining consumer groups takes seconds, and
            # queries wait for the projection anyway.
            starting = asyncio.gather(*(kafka.start() for kafka in process.consumers))
            process.tasks.append(asyncio.ensure_future(_started(starting)))
        if roles.api:  # webhooks are delivered beside every API; by one at a time (a lock)
            process.tasks.append(start_dispatcher(registry))
            config = uvicorn.Config(
                create_app(registry, auth_required=auth_required, blobs=blobs),
                host=host,
                port=port,
                # No formatters of its own: its records reach the root handler in Registrar's
                # format (registrar.logs), and the API's access log writes one line a request.
                log_config=None,
                log_level=logging.getLogger().level,
                access_log=False,
                http="httptools",  # the C parser: h11's pure-Python one cost ~15% of a request
                # A stop waits this long for requests in flight, not for idle keep-alive
                # clients to hang up: Ctrl-C must stop the whole system within seconds.
                timeout_graceful_shutdown=STOP_SECONDS,
            )
            process.server = _Server(config)
            serving = asyncio.create_task(process.server.serve(), name="api")
            process.tasks.append(serving)
            while not process.server.started and not serving.done():
                await asyncio.sleep(0.02)
            if serving.done():
                await serving  # it failed to start (e.g. the port is taken): say why
        on_started(process)
        await _until_stopped(stop, process.tasks)
    finally:
        if process.server is not None:
            process.server.should_exit = True
        for task in reversed(process.tasks):
            if task.get_name() != "api":
                task.cancel()
        for task in reversed(process.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await asyncio.gather(
            *(stop_within(kafka, seconds=STOP_SECONDS) for kafka in process.consumers)
        )
        await access.aclose()
        await registry.close()


async def _started(starting: asyncio.Future[list[None]]) -> None:
    """Start the consumers, then stay pending like the other roles (ending means failing)."""
    await starting
    await asyncio.Event().wait()


async def stop_within(kafka: KafkaBroker, seconds: float) -> None:
    """Stop the Kafka clients, but not forever: with the broker gone, leaving the consumer group
    retries without end, and a process asked to stop must stop."""
    try:
        await asyncio.wait_for(kafka.stop(), seconds)
    except TimeoutError:
        log.warning("the Kafka clients did not stop within %gs; leaving anyway", seconds)


async def _until_stopped(stop: asyncio.Event, tasks: list[asyncio.Task[None]]) -> None:
    """Wait for a stop signal; a role that ends by itself ends the process too (loudly)."""
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    for task in done:
        if task is not stopping and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


def tune_garbage_collector() -> None:
    """Collect young objects 70x less often, and leave start-up objects out of collections.

    A request allocates thousands of short-lived objects; at the default threshold (700) the
    collector ran every few requests and its older generations walked every cached model state,
    pausing the event loop: p99 at 16 clients fell from 78 ms to 30 ms and throughput rose 30%
    with this setting (bench/http_load.py). Cycles are still collected, just in larger batches.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where it exists (a faster event loop), else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
