"""The webhook rules without a database: names as MLflow checks them, which events each format
carries, what a change records, when Registrar disables, MLflow's payload shapes and signature,
and which addresses are public."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

import pytest
from mlflow.entities.webhook import WebhookAction, WebhookEntity
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import _validate_webhook_name
from mlflow.webhooks.delivery import _generate_hmac_signature
from mlflow.webhooks.types import EVENT_TO_PAYLOAD_CLASS

from registrar.access.permissions import Action, requirement
from registrar.contracts.webhooks import WebhookDisabled, WebhookUpdated
from registrar.domain import webhooks as rules
from registrar.domain.errors import Invalid, NotFound
from registrar.domain.webhook_payloads import (
    MLFLOW_EVENT_OF,
    MLFLOW_EXAMPLES,
    mlflow_body,
    mlflow_data,
)
from registrar.webhooks.signing import signature, verify
from registrar.webhooks.targets import is_public

PAYLOADS = {
    "ModelRegistered": {"model_id": "m", "name": "churn", "tags": {"a": "b"}, "description": ""},
    "VersionRegistered": {"version": 2, "source": "s3://x", "run_id": "r1", "tags": {}},
    "VersionTagSet": {"version": 2, "key": "k", "value": "v"},
    "VersionTagDeleted": {"version": 2, "key": "k"},
    "AliasSet": {"alias": "champion", "version": 2, "previous_version": 1},
    "AliasDeleted": {"alias": "champion", "version": 2},
}


def hook(**changes: object) -> rules.WebhookState:
    created = rules.create("w1", "n", "http://h/x", ["StageChanged"], "registrar", has_secret=True)
    state = rules.evolve(None, created)
    assert state is not None
    return rules.evolve(state, WebhookUpdated(webhook_id="w1", **changes)) or state  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["a", "ci-notifier", "A.b_c-1", "x" * 63, "x" * 64, "-a", "a-", "has space", "é", ""]
)
def test_webhook_names_are_checked_as_mlflow_checks_them(name: str) -> None:
    try:
        _validate_webhook_name(name)
        mlflow_accepts = True
    except MlflowException:
        mlflow_accepts = False
    try:
        rules.check_name(name)
        accepted = True
    except Invalid:
        accepted = False
    assert accepted == mlflow_accepts


def test_each_format_carries_its_own_events() -> None:
    assert rules.check_events(["model_version.created"] * 2, "mlflow") == ["model_version.created"]
    with pytest.raises(Invalid, match="no prompt registry"):
        rules.check_events(["prompt.created"], "mlflow")
    with pytest.raises(Invalid, match="expected one of"):
        rules.check_events(["StageChanged"], "mlflow")
    # Any well-formed event type, including ones added after the webhook was made.
    assert rules.check_events(["*", "StageChanged", "DeploymentReported"], "registrar") == [
        "*",
        "StageChanged",
        "DeploymentReported",
    ]
    with pytest.raises(Invalid, match="an MLflow event name"):
        rules.check_events(["model_version.created"], "registrar")
    with pytest.raises(Invalid, match="cannot be empty"):
        rules.check_events([], "registrar")


def test_a_change_records_only_what_differs() -> None:
    state = hook()
    assert rules.update(state, "w1", name="n", events=["StageChanged"]) == []
    (changed,) = rules.update(state, "w1", name="renamed", url="http://h/x")
    assert changed == WebhookUpdated(webhook_id="w1", name="renamed")
    (rotated,) = rules.update(state, "w1", has_secret=True)
    assert isinstance(rotated, WebhookUpdated) and rotated.secret_changed and rotated.has_secret
    with pytest.raises(NotFound):
        rules.update(rules.evolve(state, rules.delete(state, "w1")[0]), "w1", name="x")


def test_registrar_disables_only_an_active_webhook_and_enabling_clears_the_reason() -> None:
    (disabled,) = rules.disable(
        hook(), "w1", consecutive_failures=20, last_status_code=503, last_error=""
    )
    assert isinstance(disabled, WebhookDisabled)
    assert disabled.reason == "20 consecutive delivery attempts failed; the last: HTTP 503"
    state = rules.evolve(hook(), disabled)
    assert state is not None and state.disabled_reason and not state.active
    assert (
        rules.disable(state, "w1", consecutive_failures=21, last_status_code=None, last_error="x")
        == []
    )
    enabled = hook(status="ACTIVE")
    assert enabled.active and enabled.disabled_reason is None


def test_subscriptions_match_event_types_or_everything() -> None:
    assert hook().subscribes_to("StageChanged") and not hook().subscribes_to("AliasSet")
    assert hook(events=["*"]).subscribes_to("AnythingAtAll")


@pytest.mark.parametrize("event_type", list(MLFLOW_EVENT_OF))
def test_mlflow_payloads_have_exactly_mlflows_fields(event_type: str) -> None:
    name = MLFLOW_EVENT_OF[event_type]
    data = mlflow_data(event_type, PAYLOADS[event_type], "churn")
    assert data is not None and data["name"] == "churn"
    entity, _, action = name.partition(".")
    shape = EVENT_TO_PAYLOAD_CLASS[(WebhookEntity(entity), WebhookAction(action))]
    assert set(data) == shape.__required_keys__ | shape.__optional_keys__
    assert MLFLOW_EXAMPLES[name] == shape.example()
    if "version" in data:
        assert data["version"] == "2"  # a string, as in MLflow
    body = mlflow_body(name, data, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert body == {
        "entity": entity,
        "action": action,
        "timestamp": "2026-01-02T03:04:05+00:00",
        "data": data,
    }


def test_events_mlflow_has_no_webhook_for_give_no_mlflow_payload() -> None:
    assert mlflow_data("StageChanged", {"version": 1}, "churn") is None


def test_signatures_are_mlflows_and_verify_only_fresh() -> None:
    body = b'{"entity": "model_version", "data": {"name": "caf\xc3\xa9"}}'
    signed = signature("s3cret", "d-1", "1700000000", body)
    assert signed == _generate_hmac_signature("s3cret", "d-1", "1700000000", body.decode())
    assert verify("s3cret", "d-1", "1700000000", body, signed, now=1700000100)
    assert not verify("s3cret", "d-1", "1700000000", body, signed, now=1700001000)  # stale
    assert not verify("other", "d-1", "1700000000", body, signed, now=1700000100)
    assert not verify("s3cret", "d-2", "1700000000", body, signed, now=1700000100)


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:2800:220:1:248:1893:25c8:1946", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("224.0.0.1", False),
        ("0.0.0.0", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::a00:1", False),
        ("2002:a00:1::", False),
    ],
)
def test_only_globally_routable_unicast_addresses_are_public(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/webhooks"),
        ("POST", "/v1/webhooks"),
        ("GET", "/v1/webhooks/w1/deliveries"),
        ("PATCH", "/v1/webhooks/w1"),
        ("GET", "/api/2.0/mlflow/webhooks"),
        ("GET", "/ajax-api/2.0/mlflow/webhooks/w1"),
        ("POST", "/api/2.0/mlflow/webhooks/w1/test"),
        ("DELETE", "/api/2.0/mlflow/webhooks/w1"),
    ],
)
def test_webhooks_are_for_admins_reads_too_as_in_mlflow(method: str, path: str) -> None:
    need = requirement(method, path)
    assert need is not None and need.action == Action.ADMINISTER
