"""Promotion policies: what a move to a stage or an alias needs (approvals from a role, gates on
the version), the event that applies a policy, and the record of what allowed a transition.

Policy events live in their own stream (`policy`), folded apart from model streams, so they are
not part of contracts.events.Event. A gate is kept as the text it was written in; the domain
(registrar.domain.policies) parses it, and refuses a policy holding a gate it cannot parse."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from registrar.contracts.values import AliasName, Frozen, Role, StageName

POLICY_STREAM_ID = "policy"
"""The one stream holding every PolicyApplied (model streams have UUID ids, so no clash)."""

MAX_GATES = 100

Gate = Annotated[str, Field(min_length=1, max_length=500)]


class PolicyRule(Frozen):
    """What a move to one stage, or of one protected alias, needs."""

    approvals: Annotated[int, Field(ge=0, le=100)] = Field(
        default=0, description="Distinct approvers needed, each holding approver_role"
    )
    approver_role: Role = Role.APPROVER
    allow_self_approval: bool = Field(
        default=False, description="Whether the requester's own approval counts"
    )
    gates: Annotated[list[Gate], Field(max_length=MAX_GATES)] = Field(
        default_factory=list,
        description='Checked at the moment of transition, e.g. "metrics.auc >= 0.85"',
    )


class PolicyDocument(Frozen):
    """The whole promotion policy: applying one replaces the one before (a stage or alias it
    does not name is not governed: transitions to it apply directly)."""

    stages: dict[StageName, PolicyRule] = Field(default_factory=dict)
    aliases: dict[AliasName, PolicyRule] = Field(default_factory=dict)


class PolicyApplied(PolicyDocument):
    """A policy became the one in force; `version` counts the policies applied so far."""

    type: Literal["PolicyApplied"] = "PolicyApplied"
    version: Annotated[int, Field(ge=1)]


POLICY_EVENT_TYPES: dict[str, type[PolicyApplied]] = {"PolicyApplied": PolicyApplied}

POLICY_SCHEMA_VERSION = 1


def policy_event_from_payload(event_type: str, payload: dict[str, object]) -> PolicyApplied:
    cls = POLICY_EVENT_TYPES.get(event_type)
    if cls is None:
        raise ValueError(f"unknown policy event type {event_type!r}")
    return cls.model_validate({"type": event_type, **payload})


class GateCheck(Frozen):
    """One gate as evaluated at the moment of transition, with the value it saw."""

    gate: str
    passed: bool
    seen: int | float | str | None = Field(
        description="The value the gate read; null if it was absent"
    )


class ApprovalRecord(Frozen):
    by: str
    at: datetime
    comment: str = ""


class TransitionAuthorization(Frozen):
    """What allowed a governed transition: the request, the policy version, every gate with the
    value it saw, and the approvals that counted."""

    request_id: str
    requested_by: str
    policy_version: int
    approvals_required: int
    approver_role: Role
    gates: list[GateCheck] = Field(default_factory=list)
    approvals: list[ApprovalRecord] = Field(default_factory=list)
