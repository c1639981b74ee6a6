"""The one settings object: everything Registrar reads from its environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    """Where `registrar up` keeps its embedded PostgreSQL data ($REGISTRAR_HOME, ./.registrar)."""
    database_url: str | None
    """An existing PostgreSQL server ($REGISTRAR_DATABASE_URL); None means the embedded one."""
    kafka_bootstrap: str | None
    """An existing Kafka cluster ($REGISTRAR_KAFKA_BOOTSTRAP, host:port[,host:port]); None: `up`
    starts an embedded broker, `serve` runs without a bus."""
    host: str
    port: int
    log_level: str
    query_wait_seconds: float
    """How long a projection query waits for the projection to reach the client's last write."""
    auth: str = ""
    """$REGISTRAR_AUTH: "required" turns authentication on even on loopback (off the loopback
    it is always on); "" or "optional" leaves it to the address."""
    ingest_user: str = "training-ingest"
    """$REGISTRAR_INGEST_USER: the service principal that records `training.completed` runs (and
    the versions they register); never the message's own say."""
    ingest_role: str = "contributor"
    """$REGISTRAR_INGEST_ROLE: that principal's role."""

    VARIABLES = (
        "REGISTRAR_HOME",
        "REGISTRAR_DATABASE_URL",
        "REGISTRAR_KAFKA_BOOTSTRAP",
        "REGISTRAR_HOST",
        "REGISTRAR_PORT",
        "REGISTRAR_LOG_LEVEL",
        "REGISTRAR_QUERY_WAIT_SECONDS",
        "REGISTRAR_AUTH",
        "REGISTRAR_INGEST_USER",
        "REGISTRAR_INGEST_ROLE",
    )
    """Every environment variable Registrar reads (compose.yaml and README may use no other)."""

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            home=Path(env.get("REGISTRAR_HOME", ".registrar")).absolute(),
            database_url=env.get("REGISTRAR_DATABASE_URL") or None,
            kafka_bootstrap=env.get("REGISTRAR_KAFKA_BOOTSTRAP") or None,
            host=env.get("REGISTRAR_HOST", "127.0.0.1"),
            port=int(env.get("REGISTRAR_PORT", "8080")),
            log_level=env.get("REGISTRAR_LOG_LEVEL", "info"),
            query_wait_seconds=float(env.get("REGISTRAR_QUERY_WAIT_SECONDS", "10")),
            auth=env.get("REGISTRAR_AUTH", "").strip().lower(),
            ingest_user=env.get("REGISTRAR_INGEST_USER", "training-ingest"),
            ingest_role=env.get("REGISTRAR_INGEST_ROLE", "contributor").strip().lower(),
        )
