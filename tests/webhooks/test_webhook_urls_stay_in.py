"""A webhook's URL is often a capability (a chat hook's URL carries its token): it never leaves
the store on the bus, and the audit trail names the webhook without it."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from registrar.contracts.envelope import GENESIS_HASH, Envelope
from registrar.contracts.events import REDACTED, redacted
from registrar.projections.audit_trail import summary_of

URL = "https://hooks.example.com/services/T000/B000/XXXXSECRETXXXX"


def envelope(kind: str, payload: dict[str, object]) -> Envelope:
    return Envelope(
        event_id=uuid4(),
        stream_id="webhook:w-1",
        stream_version=1,
        position=1,
        type=kind,
        recorded_at=datetime.now(UTC),
        actor="admin",
        payload=payload,
        prev_hash=GENESIS_HASH,
        hash="0" * 64,
    )


def test_a_webhooks_url_is_redacted_on_its_way_out_and_absent_from_the_audit_row() -> None:
    created = {
        "webhook_id": "w-1",
        "name": "deploy-hook",
        "url": URL,
        "events": ["model_version.created"],
        "format": "mlflow",
        "has_secret": True,
    }
    updated = {"webhook_id": "w-1", "url": URL, "secret_changed": False}

    for kind, payload in (("WebhookCreated", created), ("WebhookUpdated", updated)):
        assert redacted(envelope(kind, payload)).payload["url"] == REDACTED
        assert URL not in summary_of(kind, payload)
    assert summary_of("WebhookCreated", created) == (
        "created webhook deploy-hook (w-1) for model_version.created"
    )
