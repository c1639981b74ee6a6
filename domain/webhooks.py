"""The webhook decider: a webhook's state folded from its stream, the events a change makes (or a
domain error saying why not), and which events a webhook subscribes to. Pure: the shell
(registrar.webhooks.registrations) loads, decides and appends; the dispatcher matches."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from registrar.contracts.webhooks import (
    ACTIVE,
    ALL_EVENTS,
    DISABLED,
    MLFLOW_EVENTS,
    WebhookCreated,
    WebhookDeleted,
    WebhookDisabled,
    WebhookEvent,
    WebhookFormat,
    WebhookStatus,
    WebhookUpdated,
)
from registrar.domain.errors import Invalid, NotFound

_NAME = re.compile(r"(?=.{1,63}$)[a-z0-9]([a-z0-9._-]*[a-z0-9])?", re.IGNORECASE)
"""MLflow's webhook names (mlflow/utils/validation.py _WEBHOOK_NAME_REGEX)."""
_EVENT_TYPE = re.compile(r"[A-Z][A-Za-z0-9]{0,127}")
_MLFLOW_ELSEWHERE = ("prompt", "prompt_version", "prompt_tag", "prompt_version_tag", "prompt_alias")
SCHEMES = ("http", "https")


@dataclass(frozen=True, slots=True)
class WebhookState:
    webhook_id: str
    name: str
    description: str
    url: str
    events: tuple[str, ...]
    format: WebhookFormat
    status: WebhookStatus
    has_secret: bool
    disabled_reason: str | None = None
    deleted: bool = False

    @property
    def active(self) -> bool:
        return self.status == ACTIVE and not self.deleted

    def subscribes_to(self, event_name: str) -> bool:
        """Whether it wants `event_name`: a Registrar event type for the registrar format, an
        MLflow event name for the mlflow one."""
        return event_name in self.events or (
            self.format == "registrar" and ALL_EVENTS in self.events
        )


def evolve(state: WebhookState | None, event: WebhookEvent) -> WebhookState | None:
    match event:
        case WebhookCreated():
            return WebhookState(
                event.webhook_id,
                event.name,
                event.description,
                event.url,
                tuple(event.events),
                event.format,
                event.status,
                event.has_secret,
            )
        case _ if state is None:
            return None
        case WebhookUpdated():
            status = event.status or state.status
            return replace(
                state,
                name=event.name if event.name is not None else state.name,
                description=event.description
                if event.description is not None
                else state.description,
                url=event.url if event.url is not None else state.url,
                events=tuple(event.events) if event.events is not None else state.events,
                status=status,
                has_secret=event.has_secret if event.has_secret is not None else state.has_secret,
                disabled_reason=None if status == ACTIVE else state.disabled_reason,
            )
        case WebhookDisabled():
            return replace(state, status=DISABLED, disabled_reason=event.reason)
        case WebhookDeleted():
            return replace(state, deleted=True)
    return state


def fold(events: Iterable[WebhookEvent]) -> WebhookState | None:
    state: WebhookState | None = None
    for event in events:
        state = evolve(state, event)
    return state


# Checks --------------------------------------------------------------------------------------


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise Invalid(
            f"Webhook name {name!r} is invalid. It must start and end with a letter or digit, be"
            " less than 63 characters long, and contain only letters, digits, dots (.),"
            " underscores (_), and hyphens (-)."
        )
    return name


def check_events(events: Sequence[str], format: WebhookFormat) -> list[str]:
    """The subscription, duplicates dropped; Invalid naming any event the format cannot carry."""
    if not events:
        raise Invalid("Webhook events cannot be empty: name at least one event")
    unique = list(dict.fromkeys(events))
    for name in unique:
        if format == "mlflow":
            _check_mlflow_event(name)
        elif name != ALL_EVENTS and not _EVENT_TYPE.fullmatch(name):
            hint = (
                ' (an MLflow event name: create the webhook with format "mlflow")'
                if name in MLFLOW_EVENTS
                else ""
            )
            raise Invalid(
                f"event {name!r} is not a Registrar event type{hint}: name event types as they"
                ' are recorded ("VersionRegistered", "StageChanged", "AliasSet", ...) or "*" for'
                " every event"
            )
    return unique


def _check_mlflow_event(name: str) -> None:
    if name in MLFLOW_EVENTS:
        return
    entity = name.partition(".")[0]
    if entity in _MLFLOW_ELSEWHERE:
        raise Invalid(
            f"event {name!r}: Registrar is a model registry and has no prompt registry, so no"
            " prompt events; subscribe to " + ", ".join(MLFLOW_EVENTS)
        )
    raise Invalid(
        f"Invalid webhook event {name!r}: expected one of {', '.join(MLFLOW_EVENTS)}"
        ' (or use format "registrar" for any Registrar event type)'
    )


def check_url_shape(url: str) -> str:
    """An http(s) URL with a host and no credentials (they would be recorded in the webhook's
    events: authenticate deliveries with the signing secret instead); where it points is the
    shell's to check (registrar.webhooks.targets), since that needs DNS."""
    if url != url.strip() or not url:
        raise Invalid(f"Webhook URL {url!r} is empty or has surrounding whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise Invalid(f"Invalid webhook URL {url!r}: {error}") from None
    if parts.scheme not in SCHEMES:
        raise Invalid(
            f"Invalid webhook URL scheme: {parts.scheme!r}. Allowed schemes are: http, https."
        )
    if not parts.hostname:
        raise Invalid(f"Webhook URL must include a hostname: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise Invalid(
            "a webhook URL may not carry credentials (user:password@host): they would be kept in"
            " the webhook's events; receivers authenticate deliveries by their signature"
        )
    if port == 0:
        raise Invalid(f"Webhook URL {url!r}: port 0 is no port")
    host = parts.hostname
    if ":" in host or host.replace(".", "").isdigit():
        try:  # 127.1 or 0177.0.0.1 reach other addresses than a reader would think
            ipaddress.ip_address(host)
        except ValueError:
            raise Invalid(f"Webhook URL host {host!r} is not a canonical IP address") from None
    return url


# Decisions -----------------------------------------------------------------------------------


def _live(state: WebhookState | None, webhook_id: str) -> WebhookState:
    if state is None or state.deleted:
        raise NotFound(f"Webhook with ID {webhook_id} not found.")
    return state


def create(
    webhook_id: str,
    name: str,
    url: str,
    events: Sequence[str],
    format: WebhookFormat,
    *,
    description: str = "",
    status: WebhookStatus = ACTIVE,
    has_secret: bool,
) -> WebhookCreated:
    return WebhookCreated(
        webhook_id=webhook_id,
        name=check_name(name),
        description=description,
        url=check_url_shape(url),
        events=check_events(events, format),
        format=format,
        status=status,
        has_secret=has_secret,
    )


def update(
    state: WebhookState | None,
    webhook_id: str,
    *,
    name: str | None = None,
    description: str | None = None,
    url: str | None = None,
    events: Sequence[str] | None = None,
    status: WebhookStatus | None = None,
    has_secret: bool | None = None,
) -> list[WebhookEvent]:
    """The change, with only the fields that differ; none if nothing does. `has_secret`: the
    secret was set (True) or removed (False), so the change is recorded even when every other
    field stays."""
    live = _live(state, webhook_id)
    changes = {
        "name": check_name(name) if name is not None else None,
        "description": description,
        "url": check_url_shape(url) if url is not None else None,
        "events": check_events(events, live.format) if events is not None else None,
        "status": status,
    }
    current = {
        "name": live.name,
        "description": live.description,
        "url": live.url,
        "events": list(live.events),
        "status": live.status,
    }
    differ = {k: v for k, v in changes.items() if v is not None and v != current[k]}
    if not differ and has_secret is None:
        return []
    return [
        WebhookUpdated(
            webhook_id=webhook_id,
            secret_changed=has_secret is not None,
            has_secret=has_secret,
            **differ,
        )
    ]


def disable(
    state: WebhookState | None,
    webhook_id: str,
    *,
    consecutive_failures: int,
    last_status_code: int | None,
    last_error: str,
) -> list[WebhookEvent]:
    """Registrar disables a webhook whose deliveries keep failing; nothing if it is no longer
    active (disabled or deleted meanwhile)."""
    if state is None or not state.active:
        return []
    reason = (
        f"{consecutive_failures} consecutive delivery attempts failed; the last:"
        f" {last_error or f'HTTP {last_status_code}'}"
    )
    return [
        WebhookDisabled(
            webhook_id=webhook_id,
            reason=reason[:1000],
            consecutive_failures=consecutive_failures,
            last_status_code=last_status_code,
            last_error=last_error[:1000],
        )
    ]


def delete(state: WebhookState | None, webhook_id: str) -> list[WebhookEvent]:
    _live(state, webhook_id)
    return [WebhookDeleted(webhook_id=webhook_id)]
