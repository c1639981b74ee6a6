"""How webhooks behave, from the one settings object (REGISTRAR_WEBHOOKS_*)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from registrar.settings import Settings

KEY_FILE = "webhook-secret.key"


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    allow_private: bool = False
    """Targets on loopback, private, link-local and other non-public addresses are allowed."""
    secret_key: str | None = None
    """The Fernet key secrets are encrypted with; None: the one in `key_file` (made if need be)."""
    key_file: Path = Path(".registrar") / KEY_FILE
    max_failures: int = 20
    """Consecutive failed attempts after which Registrar disables a webhook."""
    max_attempts: int = 30
    """Attempts of one delivery before it is given up (status "failed")."""
    timeout_seconds: float = 10.0
    max_in_flight: int = 4
    """Deliveries of one webhook sent at once (each webhook has its own connections)."""
    retry_first_seconds: float = 1.0
    retry_max_seconds: float = 600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookConfig:
        key = settings.webhooks_secret_key
        return cls(
            allow_private=settings.webhooks_allow_private,
            secret_key=key.get_secret_value() if key is not None else None,
            key_file=settings.home / KEY_FILE,
            max_failures=settings.webhooks_max_failures,
            max_attempts=settings.webhooks_max_attempts,
            timeout_seconds=settings.webhooks_timeout_seconds,
            max_in_flight=settings.webhooks_max_in_flight,
            retry_max_seconds=settings.webhooks_retry_max_seconds,
        )

    @classmethod
    def from_env(cls) -> WebhookConfig:
        return cls.from_settings(Settings.from_env())
