"""Promotion policies: what a move to a stage or an alias needs (approvals from a role, gates on
the version), the event that applies a policy, and the record of what allowed a transition.

Policy events live in their own stream (`policy`), folded apart from model streams, so they are
not part of contracts.events.Event. A gate is kept as the text it was written in; the domain
(registrar.domain.policies) parses it, and refuses a policy holding a gate it cannot parse."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from registrar.contracts.deployments import Environment, EnvironmentName
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


Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$")]
EU_AI_ACT_TIERS = ("minimal", "limited", "high", "unacceptable")


class ScopeMatch(Frozen):
    """Which models a scope covers: every criterion given must hold (within one, any value)."""

    names: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, description='Model-name globs, e.g. "credit-*"'
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Model tags, exact values")
    risk_tier: list[str] = Field(default_factory=list, description="The model's assessed tier")


class Scope(Frozen):
    """Rules that replace the defaults for the models `match` covers, for the stages and aliases
    it names (others keep the default rule)."""

    name: Name
    match: ScopeMatch = Field(default_factory=ScopeMatch)
    stages: dict[StageName, PolicyRule] = Field(default_factory=dict)
    aliases: dict[AliasName, PolicyRule] = Field(default_factory=dict)


class Requirement(Frozen):
    id: Name
    title: Annotated[str, Field(min_length=1, max_length=500)]
    check: Gate = Field(description="A gate, e.g. lineage.datasets >= 1")


class ComplianceProfile(Frozen):
    name: Name
    description: Annotated[str, Field(max_length=10_000)] = ""
    requirements: Annotated[list[Requirement], Field(min_length=1, max_length=MAX_GATES)]


class ComplianceSettings(Frozen):
    profiles: list[ComplianceProfile] = Field(default_factory=list, max_length=100)


class RiskQuestion(Frozen):
    id: Name
    text: Annotated[str, Field(min_length=1, max_length=2000)]
    answers: list[Annotated[str, Field(min_length=1, max_length=256)]] = Field(
        default_factory=list, description="The answers allowed (empty: any)"
    )


class RiskRule(Frozen):
    """Answers that put a model in a tier: every question named must have one of its answers."""

    when: dict[str, list[str]]
    tier: str


class RiskSettings(Frozen):
    """The risk tiers (lowest first), which of them block every promotion, who may set a tier
    directly, and the questionnaire whose answers map to a tier (the highest rule matched; the
    lowest tier when none does)."""

    tiers: list[Name] = Field(default_factory=lambda: list(EU_AI_ACT_TIERS), min_length=1)
    blocking: list[str] = Field(default_factory=lambda: ["unacceptable"])
    assessor_role: Role = Field(
        default=Role.APPROVER, description="Who may set a tier without the questionnaire"
    )
    questions: list[RiskQuestion] = Field(default_factory=list, max_length=200)
    rules: list[RiskRule] = Field(default_factory=list, max_length=500)


class RollbackRules(Frozen):
    """The rules of rollbacks, for every model (scopes do not apply to them): a rollback of a
    stage or alias named here needs its rule here; one not named, the target's promotion rule."""

    stages: dict[StageName, PolicyRule] = Field(
        default_factory=dict, description="Staging and Production only: the stages rolled back"
    )
    aliases: dict[AliasName, PolicyRule] = Field(default_factory=dict)


class PolicyDocument(Frozen):
    """The governance document: promotion rules (the defaults, and scopes that override them for
    the models they match), rollback rules, compliance profiles, and risk tiers. Applying one
    replaces the one before (a stage or alias no rule names is not governed: transitions to it
    apply directly)."""

    stages: dict[StageName, PolicyRule] = Field(default_factory=dict)
    aliases: dict[AliasName, PolicyRule] = Field(default_factory=dict)
    scopes: list[Scope] = Field(
        default_factory=list,
        max_length=100,
        description="Tried in order: the first that matches the model and names the target wins",
    )
    compliance: ComplianceSettings = Field(default_factory=ComplianceSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    rollbacks: RollbackRules = Field(default_factory=RollbackRules)
    environments: dict[EnvironmentName, Environment] = Field(
        default_factory=dict,
        max_length=100,
        description="Where deployers report, and the stage or alias each follows (drift)",
    )


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


class Rollback(Frozen):
    """What makes a transition a rollback: its stage or alias goes back from the version holding
    it to an earlier holder, and why."""

    reason: Annotated[str, Field(min_length=1, max_length=10_000)]
    from_version: int = Field(description="The version that held the stage or alias")
    to_version: int = Field(description="The earlier holder it goes back to")


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
    scope: str | None = Field(default=None, description="The scope whose rule applied, if any")
    rollback: Rollback | None = Field(default=None, description="Set when it was a rollback")
    rollback_rule: bool = Field(
        default=False,
        description="Whether the document's rollback rule applied (else the target's own rule)",
    )
