"""The one settings object: everything Registrar reads from its environment (REGISTRAR_*), read
and checked once by pydantic-settings, so a bad value is one clear line, not a traceback later."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from registrar.contracts.values import Role

PREFIX = "REGISTRAR_"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, env_ignore_empty=True, frozen=True, extra="ignore"
    )

    home: Path = Path(".registrar")
    """Where `registrar up` keeps its embedded PostgreSQL data ($REGISTRAR_HOME, ./.registrar)."""
    database_url: str | None = None
    """An existing PostgreSQL server ($REGISTRAR_DATABASE_URL); None means the embedded one."""
    kafka_bootstrap: str | None = None
    """An existing Kafka cluster ($REGISTRAR_KAFKA_BOOTSTRAP, host:port[,host:port]); None: `up`
    starts an embedded broker, `serve` runs without a bus."""
    artifacts_uri: str | None = None
    """Where the artifact store keeps files ($REGISTRAR_ARTIFACTS_URI): s3://bucket/prefix (with
    the usual AWS_* variables), file:///absolute/path, or None: $REGISTRAR_HOME/artifacts."""
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8080
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    log_format: Literal["text", "json"] = "text"
    """$REGISTRAR_LOG_FORMAT: "text" lines for people, "json" (one object a line) for machines;
    the `--log-format` option wins over it."""
    query_wait_seconds: Annotated[float, Field(gt=0, le=3600)] = 10.0
    """How long a projection query waits for the projection to reach the client's last write."""
    auth: Literal["", "required", "optional"] = ""
    """$REGISTRAR_AUTH: "required" turns authentication on even on loopback (off the loopback
    it is always on); "" or "optional" leaves it to the address."""
    ingest_user: Annotated[str, Field(min_length=1, max_length=256)] = "training-ingest"
    """$REGISTRAR_INGEST_USER: the service principal that records `training.completed` runs (and
    the versions they register) and `evaluation.completed` evaluations; never the message's own
    say."""
    ingest_role: Role = Role.CONTRIBUTOR
    """$REGISTRAR_INGEST_ROLE: that principal's role, contributor or above."""
    topic_prefix: str = ""
    """$REGISTRAR_TOPIC_PREFIX, e.g. "team-a.": put as is before every topic's name and every
    consumer group's id, so several registries share one Kafka cluster."""
    webhooks_allow_private: bool = False
    """$REGISTRAR_WEBHOOKS_ALLOW_PRIVATE: webhooks may target loopback, private, link-local and
    other non-public addresses (refused otherwise, when created and at every delivery)."""
    webhooks_secret_key: SecretStr | None = None
    """$REGISTRAR_WEBHOOKS_SECRET_KEY: the Fernet key webhook secrets are encrypted with; unset,
    one is made in $REGISTRAR_HOME/webhook-secret.key (API replicas must share one key)."""
    webhooks_max_failures: Annotated[int, Field(ge=1, le=10_000)] = 20
    """$REGISTRAR_WEBHOOKS_MAX_FAILURES: consecutive failed attempts that disable a webhook."""
    webhooks_max_attempts: Annotated[int, Field(ge=1, le=1000)] = 30
    """$REGISTRAR_WEBHOOKS_MAX_ATTEMPTS: attempts of one delivery before it is given up."""
    webhooks_timeout_seconds: Annotated[float, Field(gt=0, le=300)] = 10.0
    """$REGISTRAR_WEBHOOKS_TIMEOUT_SECONDS: how long a receiver has to answer an attempt."""
    webhooks_max_in_flight: Annotated[int, Field(ge=1, le=64)] = 4
    """$REGISTRAR_WEBHOOKS_MAX_IN_FLIGHT: deliveries of one webhook sent at once."""
    webhooks_retry_max_seconds: Annotated[float, Field(ge=1, le=86_400)] = 600.0
    """$REGISTRAR_WEBHOOKS_RETRY_MAX_SECONDS: the longest pause between retries (from 1 s,
    doubling, with jitter)."""
    ui_session_key: SecretStr | None = None
    """$REGISTRAR_UI_SESSION_KEY: the Fernet key the web UI's session cookies are sealed with
    (API replicas must share one); unset, each process makes its own, and its sessions end with
    it."""

    @field_validator("home")
    @classmethod
    def _absolute(cls, home: Path) -> Path:
        return home.absolute()

    @field_validator("log_level", "log_format", "auth", "ingest_role", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("database_url")
    @classmethod
    def _postgresql(cls, url: str | None) -> str | None:
        if url is None:
            return None
        try:
            backend = make_url(url).get_backend_name()
        except ArgumentError:
            backend = ""
        if backend != "postgresql":
            raise ValueError("must be a PostgreSQL URL, e.g. postgresql://user@host:5432/db")
        return url

    @field_validator("ingest_role")
    @classmethod
    def _records(cls, role: Role) -> Role:
        if not role.includes(Role.CONTRIBUTOR):
            raise ValueError("must be contributor or above: the ingest registers versions")
        return role

    @field_validator("topic_prefix")
    @classmethod
    def _topic_characters(cls, prefix: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9._-]{0,100}", prefix):
            raise ValueError(
                "use at most 100 letters, digits, '.', '_' and '-' (the characters of Kafka topic"
                " names), e.g. team-a."
            )
        return prefix

    @classmethod
    def from_env(cls) -> Settings:
        """The settings of this process's environment; SettingsError says what is wrong."""
        try:
            return cls()
        except ValidationError as invalid:
            problems = "; ".join(
                f"{PREFIX}{str(error['loc'][0]).upper()}:"
                f" {error['msg'].removeprefix('Value error, ')} (got {error['input']!r})"
                for error in invalid.errors(include_url=False)
            )
            raise SettingsError(problems) from None


class SettingsError(ValueError):
    """The environment holds a value Registrar cannot use."""


VARIABLES = tuple(f"{PREFIX}{name.upper()}" for name in Settings.model_fields)
"""Every environment variable Registrar reads (compose.yaml and README may use no other)."""
