"""What a webhook delivery says about an event: MLflow 3's payload for the registry events MLflow
has webhooks for (mlflow/webhooks/types.py, mlflow/webhooks/delivery.py), or, in Registrar's own
format, the event as registry.events carries it plus the model's name. Pure: the dispatcher
serializes and signs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from registrar.contracts.webhooks import MLFLOW_EVENTS

MLFLOW_EVENT_OF = {
    "ModelRegistered": "registered_model.created",
    "VersionRegistered": "model_version.created",
    "VersionTagSet": "model_version_tag.set",
    "VersionTagDeleted": "model_version_tag.deleted",
    "AliasSet": "model_version_alias.created",
    "AliasDeleted": "model_version_alias.deleted",
}
"""Registrar's event type → the MLflow webhook event it is. MLflow fires
model_version_alias.created on every set of an alias, a move included, as AliasSet is."""
assert set(MLFLOW_EVENT_OF.values()) == set(MLFLOW_EVENTS)


def mlflow_data(event_type: str, payload: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The `data` of the MLflow delivery for a Registrar event on model `model`; None if MLflow
    has no webhook event for it."""
    match event_type:
        case "ModelRegistered":
            return {
                "name": payload.get("name", model),
                "tags": dict(payload.get("tags") or {}),
                "description": payload.get("description") or None,
            }
        case "VersionRegistered":
            return {
                "name": model,
                "version": str(payload["version"]),
                "source": payload.get("source", ""),
                "run_id": payload.get("run_id") or None,
                "tags": dict(payload.get("tags") or {}),
                "description": payload.get("description") or None,
            }
        case "VersionTagSet":
            return {
                "name": model,
                "version": str(payload["version"]),
                "key": payload["key"],
                "value": payload["value"],
            }
        case "VersionTagDeleted":
            return {"name": model, "version": str(payload["version"]), "key": payload["key"]}
        case "AliasSet":
            return {"name": model, "alias": payload["alias"], "version": str(payload["version"])}
        case "AliasDeleted":
            return {"name": model, "alias": payload["alias"]}
    return None


def mlflow_body(event_name: str, data: dict[str, Any], timestamp: datetime) -> dict[str, Any]:
    """The JSON object MLflow POSTs: entity, action, an ISO 8601 timestamp, and the data. The
    timestamp is the event's (MLflow's is its sending time): every attempt sends the same body."""
    entity, _, action = event_name.partition(".")
    return {"entity": entity, "action": action, "timestamp": timestamp.isoformat(), "data": data}


def native_body(event: dict[str, Any], model: str | None) -> dict[str, Any]:
    """A native delivery: the event as registry.events publishes it (secrets redacted), and the
    name of the model it concerns, if it concerns one."""
    return {**event, "model": model}


MLFLOW_EXAMPLES: dict[str, dict[str, Any]] = {
    "registered_model.created": {
        "name": "example_model",
        "tags": {"example_key": "example_value"},
        "description": "An example registered model",
    },
    "model_version.created": {
        "name": "example_model",
        "version": "1",
        "source": "models:/123",
        "run_id": "abcd1234abcd5678",
        "tags": {"example_key": "example_value"},
        "description": "An example model version",
    },
    "model_version_tag.set": {
        "name": "example_model",
        "version": "1",
        "key": "example_key",
        "value": "example_value",
    },
    "model_version_tag.deleted": {"name": "example_model", "version": "1", "key": "example_key"},
    "model_version_alias.created": {
        "name": "example_model",
        "alias": "example_alias",
        "version": "1",
    },
    "model_version_alias.deleted": {"name": "example_model", "alias": "example_alias"},
}
"""What MLflow's test_webhook sends for each event (the payload classes' example())."""


def native_example(event_type: str, recorded_at: datetime) -> dict[str, Any]:
    """A test delivery in Registrar's format: shaped like an event, marked as a test."""
    return native_body(
        {
            "event_id": "00000000-0000-0000-0000-000000000000",
            "stream_id": "example",
            "stream_version": 1,
            "position": 0,
            "type": event_type,
            "schema_version": 1,
            "recorded_at": recorded_at.isoformat(),
            "actor": "registrar:webhook-test",
            "causation_id": None,
            "correlation_id": None,
            "payload": {},
            "prev_hash": "",
            "hash": "",
            "test": True,
        },
        "example_model",
    )
