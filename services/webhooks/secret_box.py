"""Webhook signing secrets at rest: encrypted with a Fernet key (AES-128-CBC and HMAC-SHA256) that
is not in the database, each with the id of the key that sealed it. HMAC signing needs the secret
itself, so it cannot be hashed like a token."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from registrar.webhooks.config import WebhookConfig

_STORE = text(
    "INSERT INTO webhook_secrets (webhook_id, ciphertext, key_id) VALUES (:id, :ciphertext, :key)"
    " ON CONFLICT (webhook_id) DO UPDATE SET ciphertext = excluded.ciphertext,"
    " key_id = excluded.key_id, set_at = now()"
)


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with this process's key."""


def generated_secret() -> str:
    """A new signing secret: 32 random bytes, URL-safe base64, with a recognisable prefix."""
    return "whsec_" + secrets.token_urlsafe(32)


def _key_from_file(path: Path) -> bytes:
    """The key in `path`, made (readable by its owner only) if there is none yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as made:
            made.write(Fernet.generate_key())
    return path.read_bytes().strip()


class SecretBox:
    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except ValueError:
            raise ValueError(
                "REGISTRAR_WEBHOOKS_SECRET_KEY must be a Fernet key: 32 bytes in URL-safe base64"
                ' (python -c "from cryptography.fernet import Fernet;'
                ' print(Fernet.generate_key().decode())")'
            ) from None
        self.key_id = hashlib.sha256(key).hexdigest()[:16]

    @classmethod
    def from_config(cls, config: WebhookConfig) -> SecretBox:
        if config.secret_key:
            return cls(config.secret_key.encode())
        return cls(_key_from_file(config.key_file))

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, ciphertext: str, key_id: str) -> str:
        if key_id != self.key_id:
            raise SecretUnreadable(
                f"the webhook's secret was encrypted with another key (id {key_id}, this process"
                f" has {self.key_id}): give every Registrar process the same"
                " REGISTRAR_WEBHOOKS_SECRET_KEY, or set the webhook's secret again"
            )
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretUnreadable("the webhook's stored secret does not decrypt") from None

    async def store(self, conn: AsyncConnection, webhook_id: str, secret: str) -> None:
        await conn.execute(
            _STORE, {"id": webhook_id, "ciphertext": self.seal(secret), "key": self.key_id}
        )

    async def remove(self, conn: AsyncConnection, webhook_id: str) -> None:
        await conn.execute(
            text("DELETE FROM webhook_secrets WHERE webhook_id = :id"), {"id": webhook_id}
        )

    async def load(self, conn: AsyncConnection, webhook_id: str) -> str | None:
        """The webhook's secret, None if it has none; SecretUnreadable if it cannot be read."""
        row = (
            await conn.execute(
                text("SELECT ciphertext, key_id FROM webhook_secrets WHERE webhook_id = :id"),
                {"id": webhook_id},
            )
        ).first()
        return None if row is None else self.open(row.ciphertext, row.key_id)
