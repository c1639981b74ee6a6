"""The /v1 HTTP API's answers about transition requests, promotion policies, lineage, the audit
trail and point-in-time history, as pydantic models that ignore fields they do not know (see
registrar.contracts.api for the models and versions themselves)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import ConfigDict, Field, WithJsonSchema

from registrar.contracts.api import Answer
from registrar.contracts.evaluations import Evaluation
from registrar.contracts.policies import GateCheck, PolicyRule, Rollback

VersionAsText = Annotated[
    int,
    WithJsonSchema({"type": "string", "pattern": "^[0-9]+$", "description": "A version number"}),
]
"""A version number the history routes write as text ("3"): read as the number it is."""

# Transition requests and policies ----------------------------------------------------------------


class ApprovalOut(Answer):
    by: str
    at: datetime
    comment: str = ""


class GateOut(Answer):
    """One gate of the policy as the version stands now, with the value it read."""

    gate: str
    passed: bool
    seen: int | float | str | None = None


class TransitionRequestOut(Answer):
    """A request to move a version to a stage or an alias. Read by id or answered to a command, it
    also says what it still needs (`missing`, `gates`) under the policy in force; in the
    approvals list those are left empty."""

    request_id: str
    model: str
    version: int
    stage: str | None
    alias: str | None
    archive_existing: bool
    state: str = Field(description="pending, applied, rejected or cancelled")
    requested_by: str
    comment: str
    approvals: list[ApprovalOut]
    closed_by: str
    closed_comment: str
    created_at: datetime
    updated_at: datetime
    missing: list[str] = Field(default_factory=list, description="What it needs, in words")
    gates: list[GateOut] = Field(default_factory=list)
    policy_version: int | None = None
    stale_reasons: list[str] = Field(default_factory=list)
    rollback: Rollback | None = Field(
        default=None, description="For a rollback: its reason, and the versions from and to"
    )
    position: int | None = None


class RequestPage(Answer):
    requests: list[TransitionRequestOut]
    next_page_token: str | None


class PolicyOut(Answer):
    """The promotion policy in force (version 0: none)."""

    version: int
    stages: dict[str, PolicyRule] = Field(default_factory=dict)
    aliases: dict[str, PolicyRule] = Field(default_factory=dict)
    changed: bool | None = Field(default=None, description="Whether applying it changed anything")
    position: int | None = None


# Lineage -----------------------------------------------------------------------------------------


class LineageNode(Answer):
    """A dataset, run, commit, version or deployment. A version's fields are named here; the
    other kinds carry their own (a dataset's name and version, a run's run_id, ...), kept as
    extra fields: `node.model_extra`."""

    model_config = ConfigDict(extra="allow")

    id: str = Field(description="e.g. dataset:NAME@VERSION or version:MODEL/VERSION")
    kind: str
    recorded: bool = Field(description="False: only known as something else's input so far")
    model: str | None = None
    model_id: str | None = None
    version: int | str | None = None
    stage: str | None = None
    aliases: list[str] = Field(default_factory=list)
    deleted: bool = False


class LineageEdge(Answer):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    from_: str = Field(alias="from", description="The node that was made from `to`")
    to: str
    kind: str = Field(description="e.g. trained_on, produced_by, derived_from")
    relation: str | None = None


class LineageGraph(Answer):
    node: str
    direction: str
    depth: int
    truncated: bool = Field(description="Whether there were more edges than max_edges")
    nodes: list[LineageNode]
    edges: list[LineageEdge]


class Impact(Answer):
    """Every version (and deployment) descending from a node, and which versions matter now."""

    node: str
    versions: list[LineageNode]
    in_production: list[str]
    holding_aliases: list[str]
    deployments: list[LineageNode]


# Audit trail -------------------------------------------------------------------------------------


class AuditRow(Answer):
    """One event or refused attempt, with who did it, when, and a one-line summary."""

    position: int
    recorded_at: datetime
    actor: str
    action: str
    model: str | None = None
    model_id: str | None = None
    version: int | None = None
    summary: str
    reason: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    event_id: str
    stream_id: str
    stream_version: int


class AuditPage(Answer):
    events: list[AuditRow]
    next_page_token: str | None


# Point-in-time history ---------------------------------------------------------------------------


class StageHolder(Answer):
    """A model's version in a stage at an instant, and when it entered that stage."""

    model: str
    version: VersionAsText
    since: datetime


class TimelineEntry(Answer):
    """A stage the version was in, or an alias it held, from `valid_from` until `valid_to`."""

    kind: str = Field(description="stage or alias")
    stage: str | None = None
    alias: str | None = None
    valid_from: datetime
    valid_to: datetime | None
    position: int
    actor: str
    ended_by: str | None = None


class Timeline(Answer):
    model: str
    version: VersionAsText
    timeline: list[TimelineEntry]


StagesAt = dict[str, list[VersionAsText]]
"""A model's versions in each stage at an instant: {"Production": [3], "Staging": [], ...}."""

AliasesAt = dict[str, VersionAsText]
"""A model's aliases at an instant and the version each named: {"champion": 3}."""


# Health, projections and the hash chains --------------------------------------------------------


class Health(Answer):
    status: str = Field(description='"ok": the registry can serve requests')


class Halt(Answer):
    """Why a projection stopped: the event it cannot apply."""

    at: datetime
    reason: str
    position: int


class ProjectionPosition(Answer):
    name: str
    position: int = Field(description="The highest global position it applied")
    lag: int = Field(description="How far behind the store's head it is (0: caught up)")
    updated_at: datetime
    events_applied: int
    halted: Halt | None = None


class RelayPosition(Answer):
    name: str
    position: int = Field(description="The highest global position it published")
    lag: int
    updated_at: datetime
    broker_resets: int | None = Field(
        default=None,
        description="How often it started over because the broker had lost what it published",
    )


class ProjectionsStatus(Answer):
    store_position: int = Field(description="The store's head: its newest event's position")
    projections: list[ProjectionPosition]
    relays: list[RelayPosition]


class BrokenLink(Answer):
    stream_id: str
    version: int
    problem: str


class ChainReport(Answer):
    """Every stream's hash chain recomputed: whether all are intact, and each first broken link."""

    intact: bool
    streams: int
    events: int
    broken: list[BrokenLink]
    heads_digest: str = Field(
        description="One sha256 over every stream's head: anchor it outside the database"
    )


# Evaluations -------------------------------------------------------------------------------------


class EvaluationOut(Evaluation):
    """An evaluation as recorded, with its version and when (the answer ignores fields it does
    not know, as every answer does)."""

    model_config = ConfigDict(frozen=False, extra="ignore")

    model: str
    version: int
    recorded_at: datetime
    position: int | None = Field(default=None, description="Of the event, when just recorded")


class EvaluationList(Answer):
    evaluations: list[EvaluationOut] = Field(description="Newest first")


# Governance: risk, compliance, dry runs -----------------------------------------------------------


class RiskAssessmentOut(Answer):
    model: str
    tier: str | None = Field(description="null: never assessed")
    method: str | None = Field(default=None, description='"questionnaire" or "direct"')
    answers: dict[str, str] = Field(default_factory=dict)
    rationale: str = ""
    assessed_by: str | None = None
    assessed_at: datetime | None = None
    policy_version: int | None = None
    position: int | None = None


class Evidence(Answer):
    event_id: str
    position: int | None
    type: str
    recorded_at: datetime
    actor: str


class RequirementResult(Answer):
    id: str
    title: str
    check: str
    met: bool
    seen: int | float | str | None
    evidence: list[Evidence] = Field(description="The event that established what was seen")


class ComplianceReport(Answer):
    profile: str
    model: str
    version: int
    policy_version: int
    met: bool
    requirements: list[RequirementResult]
    as_of: datetime


class MoveValidation(Answer):
    """What a move would need now: nothing is recorded."""

    model: str
    version: int
    stage: str | None
    alias: str | None
    governed: bool
    scope: str | None = Field(description="The scope whose rule applies (null: the default)")
    policy_version: int
    approvals_required: int
    approver_role: str
    gates: list[GateCheck]
    missing: list[str]
    blocked: str | None = Field(
        description="Why the model's risk tier forbids the move, if it does"
    )
