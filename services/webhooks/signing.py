"""Signing a delivery as MLflow does (mlflow/webhooks/delivery.py `_generate_hmac_signature`):
HMAC-SHA256 with the webhook's secret over "{delivery_id}.{timestamp}.{body}", base64, prefixed
with the scheme's version ("v1,"). Native deliveries are signed the same way."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

from registrar.contracts.webhooks import (
    ATTEMPT_HEADER,
    EVENT_TYPE_HEADER,
    MLFLOW_HEADERS,
    REGISTRAR_HEADERS,
    SIGNATURE_VERSION,
    WebhookFormat,
)

TOLERANCE_SECONDS = 300
"""How old a signed timestamp a receiver should still accept (replays beyond are refused)."""


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify(
    secret: str,
    delivery_id: str,
    timestamp: str,
    body: bytes,
    signed: str,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE_SECONDS,
) -> bool:
    """What a receiver checks: the signature is the secret's, and its timestamp is recent."""
    try:
        age = abs((time.time() if now is None else now) - int(timestamp))
    except ValueError:
        return False
    expected = signature(secret, delivery_id, timestamp, body)
    return age <= tolerance and hmac.compare_digest(expected, signed)


def delivery_headers(
    format: WebhookFormat,
    *,
    delivery_id: str,
    body: bytes,
    secret: str | None,
    event_type: str,
    attempt: int,
    timestamp: int | None = None,
) -> list[tuple[bytes, bytes]]:
    """The headers of one attempt: its own timestamp (and so signature), the same delivery id."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    id_header, time_header, signature_header = (
        MLFLOW_HEADERS if format == "mlflow" else REGISTRAR_HEADERS
    )
    headers = [
        (b"Content-Type", b"application/json"),
        (b"User-Agent", b"Registrar-Webhooks/1"),
        (id_header.encode(), delivery_id.encode()),
        (time_header.encode(), stamp.encode()),
    ]
    if secret:
        headers.append(
            (signature_header.encode(), signature(secret, delivery_id, stamp, body).encode())
        )
    if format == "registrar":
        headers.append((EVENT_TYPE_HEADER.encode(), event_type.encode()))
        headers.append((ATTEMPT_HEADER.encode(), str(attempt).encode()))
    return headers
