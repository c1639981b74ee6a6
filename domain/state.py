"""A model stream's state, and `evolve`: the pure fold of events into that state."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import immutables
from pydantic import TypeAdapter

from registrar.contracts.envelope import Envelope
from registrar.contracts.evaluations import Evaluation
from registrar.contracts.events import (
    AliasDeleted,
    AliasSet,
    ArtifactsSealed,
    DeploymentReported,
    EvaluationRecorded,
    Event,
    MetricsRecorded,
    ModelCardUpdated,
    ModelDeleted,
    ModelDescriptionUpdated,
    ModelRegistered,
    ModelRenamed,
    ModelTagDeleted,
    ModelTagSet,
    RiskAssessed,
    StageChanged,
    VersionDeleted,
    VersionDescriptionUpdated,
    VersionRegistered,
    VersionTagDeleted,
    VersionTagSet,
    event_from_payload,
)
from registrar.contracts.model_card import CARD_FIELDS
from registrar.contracts.policies import Rollback
from registrar.contracts.values import DatasetRef, ParentRef, Stage
from registrar.domain.transition_requests import REQUEST_EVENTS, Requests, evolve_requests


@dataclass(frozen=True, slots=True)
class VersionState:
    version: int
    source: str
    run_id: str
    digest: str
    size: int | None
    metrics: dict[str, float]
    params: dict[str, str]
    datasets: tuple[DatasetRef, ...]
    parents: tuple[ParentRef, ...]
    tags: dict[str, str]
    description: str
    stage: Stage
    created_at: datetime
    updated_at: datetime
    deleted: bool = False
    card: dict[str, str] = field(default_factory=dict)
    """Model-card fields that are filled in (registrar.contracts.model_card.CARD_FIELDS)."""
    manifest_digest: str = ""
    """Set when the version's files are sealed in the artifact store; `digest` is then this."""
    artifact_files: int = 0
    artifact_bytes: int = 0
    sealed_at: datetime | None = None
    evaluations: tuple[RecordedEvaluation, ...] = ()
    """Oldest first; gates read the newest of a kind."""
    model_type: str = ""
    framework: str = ""
    """What kind of model it is and what built it, as registered ("" when not said)."""
    deployments: dict[str, Deployment] = field(default_factory=dict)
    """By environment: this version's status there, as last reported."""

    def newest_evaluation(self, kind: str) -> RecordedEvaluation | None:
        for evaluation in reversed(self.evaluations):
            if evaluation.kind == kind:
                return evaluation
        return None


@dataclass(frozen=True, slots=True)
class Deployment:
    """A version's status in one environment, as last reported; `since`: when it entered that
    status there (a report repeating the status keeps it)."""

    status: str
    since: datetime
    reported_at: datetime
    deployer: str
    report_id: str
    endpoint: str = ""
    message: str = ""
    replaced_by: int | None = None
    """Retired because this version began serving there."""


@dataclass(frozen=True, slots=True)
class RecordedEvaluation:
    """An evaluation and when it was recorded (its event's time)."""

    evaluation: Evaluation
    recorded_at: datetime

    @property
    def evaluation_id(self) -> str:
        return self.evaluation.evaluation_id

    @property
    def kind(self) -> str:
        return self.evaluation.kind


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    tier: str
    method: str
    rationale: str
    answers: dict[str, str]
    assessed_by: str
    assessed_at: datetime
    policy_version: int


@dataclass(frozen=True, slots=True)
class ModelState:
    model_id: str
    name: str
    description: str
    tags: dict[str, str]
    created_at: datetime
    updated_at: datetime
    deleted: bool = False
    last_version: int = 0
    versions: Mapping[int, VersionState] = field(default_factory=immutables.Map)
    """By number: a persistent map, so an event's new state shares every other version with the
    old one (copying a dict of thousands of versions per event made a busy model's writes
    slower with every version it gained)."""
    aliases: dict[str, int] = field(default_factory=dict)
    requests: Requests = field(default_factory=dict)
    """Transition requests by id, open and closed (registrar.domain.transition_requests)."""
    risk: RiskAssessment | None = None
    """The newest risk assessment (its history is in the stream)."""
    changed_at: datetime | None = None
    """When the model itself last changed, as MLflow counts for a registered model's
    last_updated_timestamp: registered, described, renamed, deleted, or a version of it
    registered, moved between stages or deleted; tags, aliases and a version's own details do
    not count. (None: as `updated_at`, for a state folded before this was kept.)"""
    stage_holders: dict[Stage, tuple[int, ...]] = field(default_factory=dict)
    """Per stage of HELD_STAGES, the versions that entered it, oldest first; a rollback drops
    those after the version it goes back to (registrar.domain.rollbacks reads these)."""
    alias_holders: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Per alias, the versions it was set to, oldest first; likewise cut back by a rollback."""
    serving: dict[str, int] = field(default_factory=dict)
    """By environment: the version serving there, as reported (one at most)."""

    def live_version(self, number: int) -> VersionState | None:
        found = self.versions.get(number)
        return found if found is not None and not found.deleted else None

    def latest_live_version(self) -> int | None:
        """The highest version number not deleted (what the alias `latest` names)."""
        for number in range(self.last_version, 0, -1):  # the newest first: nearly always it
            found = self.versions.get(number)
            if found is not None and not found.deleted:
                return number
        return None

    def aliases_of(self, number: int) -> list[str]:
        return sorted(alias for alias, held_by in self.aliases.items() if held_by == number)


_MODEL_CHANGES = (
    ModelDescriptionUpdated,
    ModelRenamed,
    ModelDeleted,
    VersionRegistered,
    StageChanged,
    VersionDeleted,
)
"""The events that change the model itself (ModelState.changed_at)."""


def _with_version(state: ModelState, version: VersionState, at: datetime) -> ModelState:
    versions = state.versions
    if not isinstance(versions, immutables.Map):
        versions = immutables.Map(versions)
    return replace(state, versions=versions.set(version.version, version), updated_at=at)


def evolve(state: ModelState | None, event: Event, at: datetime) -> ModelState | None:
    """The state after `event`, recorded at `at`. Pure: never mutates `state`."""
    if isinstance(event, ModelRegistered):
        return ModelState(
            model_id=event.model_id,
            name=event.name,
            description=event.description,
            tags=dict(event.tags),
            created_at=at,
            updated_at=at,
            changed_at=at,
        )
    if state is None:
        raise ValueError(f"{event.type} cannot come before ModelRegistered")
    if isinstance(event, _MODEL_CHANGES):
        state = replace(state, changed_at=at)
    match event:
        case ModelDescriptionUpdated(description=description):
            return replace(state, description=description, updated_at=at)
        case ModelTagSet(key=key, value=value):
            return replace(state, tags={**state.tags, key: value}, updated_at=at)
        case ModelTagDeleted(key=key):
            tags = {k: v for k, v in state.tags.items() if k != key}
            return replace(state, tags=tags, updated_at=at)
        case ModelRenamed(new_name=new_name):
            return replace(state, name=new_name, updated_at=at)
        case ModelDeleted():
            return replace(state, deleted=True, updated_at=at)
        case RiskAssessed():
            risk = RiskAssessment(
                tier=event.tier,
                method=event.method,
                rationale=event.rationale,
                answers=dict(event.answers),
                assessed_by=event.assessed_by,
                assessed_at=at,
                policy_version=event.policy_version,
            )
            return replace(state, risk=risk, updated_at=at)
        case VersionRegistered():
            version = VersionState(
                version=event.version,
                source=event.source,
                run_id=event.run_id,
                digest=event.digest,
                size=event.size,
                metrics=dict(event.metrics),
                params=dict(event.params),
                datasets=tuple(event.datasets),
                parents=tuple(event.parents),
                tags=dict(event.tags),
                description=event.description,
                model_type=event.model_type,
                framework=event.framework,
                stage=Stage.NONE,
                created_at=at,
                updated_at=at,
            )
            state = replace(state, last_version=event.version)
            return _with_version(state, version, at)
    if isinstance(event, DeploymentReported):
        return _with_deployment(state, event, at)
    if isinstance(event, REQUEST_EVENTS):
        return replace(state, requests=evolve_requests(state.requests, event, at), updated_at=at)
    if isinstance(event, StageChanged | AliasSet) and event.authorization is not None:
        state = replace(state, requests=evolve_requests(state.requests, event, at))
    if isinstance(event, StageChanged | AliasSet):
        state = _with_holders(state, event)
    # Every remaining event concerns one existing version.
    current = state.versions[event.version]  # type: ignore[union-attr]
    match event:
        case VersionDescriptionUpdated(description=description):
            changed = replace(current, description=description, updated_at=at)
        case VersionTagSet(key=key, value=value):
            changed = replace(current, tags={**current.tags, key: value}, updated_at=at)
        case VersionTagDeleted(key=key):
            tags = {k: v for k, v in current.tags.items() if k != key}
            changed = replace(current, tags=tags, updated_at=at)
        case MetricsRecorded(metrics=metrics):
            changed = replace(current, metrics={**current.metrics, **metrics}, updated_at=at)
        case ModelCardUpdated(card=card):
            # Fields no longer on the card (a free-text risk_tier) stay in the events only.
            filled = {k: v for k, v in {**current.card, **card}.items() if v and k in CARD_FIELDS}
            changed = replace(current, card=filled, updated_at=at)
        case StageChanged(to_stage=to_stage):
            changed = replace(current, stage=to_stage, updated_at=at)
        case EvaluationRecorded():
            facts = event.model_dump(exclude={"type", "version"})
            recorded = RecordedEvaluation(Evaluation.model_validate(facts), at)
            changed = replace(current, evaluations=(*current.evaluations, recorded), updated_at=at)
        case ArtifactsSealed():
            changed = replace(
                current,
                digest=event.manifest_digest,
                manifest_digest=event.manifest_digest,
                artifact_files=event.files,
                artifact_bytes=event.bytes,
                sealed_at=at,
                updated_at=at,
            )
        case AliasSet(alias=alias, version=number):
            return replace(state, aliases={**state.aliases, alias: number}, updated_at=at)
        case AliasDeleted(alias=alias):
            aliases = {a: v for a, v in state.aliases.items() if a != alias}
            return replace(state, aliases=aliases, updated_at=at)
        case VersionDeleted():
            changed = replace(current, deleted=True, updated_at=at)
        case _:
            raise ValueError(f"evolve does not know event type {event.type!r}")
    return _with_version(state, changed, at)


def _with_deployment(state: ModelState, event: DeploymentReported, at: datetime) -> ModelState:
    """The state after a deployment report: the version's status in the environment, the
    environment's serving version, and the version it replaced there retired."""
    where, serving = event.environment, dict(state.serving)
    changed: list[VersionState] = []
    reported = state.versions[event.version]
    before = reported.deployments.get(where)
    since = before.since if before is not None and before.status == event.status else at
    status = Deployment(
        event.status, since, at, event.deployer, event.report_id, event.endpoint, event.message
    )
    changed.append(replace(reported, deployments={**reported.deployments, where: status}))
    replaced = state.versions.get(event.replaced_version or 0)
    if replaced is not None:
        was = replaced.deployments.get(where)
        endpoint = was.endpoint if was is not None else ""
        retired = Deployment("retired", at, at, event.deployer, event.report_id, endpoint)
        retired = replace(retired, replaced_by=event.version)
        changed.append(replace(replaced, deployments={**replaced.deployments, where: retired}))
    if event.status == "serving":
        serving[where] = event.version
    elif serving.get(where) == event.version:
        del serving[where]
    state = replace(state, serving=serving)
    for version in changed:  # a version's own updated_at (MLflow's) is not a deployment's
        state = _with_version(state, version, at)
    return state


HELD_STAGES = (Stage.STAGING, Stage.PRODUCTION)
"""The stages whose past holders are kept (ModelState.stage_holders): those rolled back."""


def _with_holders(state: ModelState, event: StageChanged | AliasSet) -> ModelState:
    """The holder histories after `event`: the version it moves in joins its stage's or alias's;
    a rollback instead cuts the history back to the version it returns to."""
    rollback = event.authorization.rollback if event.authorization is not None else None
    if isinstance(event, AliasSet):
        history = _held(state.alias_holders.get(event.alias, ()), event.version, rollback)
        return replace(state, alias_holders={**state.alias_holders, event.alias: history})
    stage = event.to_stage
    if rollback is not None and event.version != rollback.to_version:
        # The rollback took the current holder out of a stage the earlier one still held.
        stage = event.from_stage
    if stage not in HELD_STAGES:
        return state
    history = _held(state.stage_holders.get(stage, ()), event.version, rollback)
    return replace(state, stage_holders={**state.stage_holders, stage: history})


def _held(history: tuple[int, ...], version: int, rollback: Rollback | None) -> tuple[int, ...]:
    if rollback is not None and rollback.to_version in history:
        last = len(history) - 1 - history[::-1].index(rollback.to_version)
        return history[: last + 1]
    return (*history, version) if rollback is None or version == rollback.to_version else history


STATE_SCHEMA = 11
"""Version of ModelState's shape; snapshots of another shape are ignored and rebuilt."""

_state_adapter: TypeAdapter[ModelState] = TypeAdapter(ModelState)


def state_to_json(state: ModelState) -> Any:
    return _state_adapter.dump_python(replace(state, versions=dict(state.versions)), mode="json")


def state_from_json(data: Any) -> ModelState:
    state = _state_adapter.validate_python(data)
    return replace(state, versions=immutables.Map(state.versions))


def touched_versions(
    before: ModelState | None, after: ModelState, events: Iterable[Envelope]
) -> list[int]:
    """The versions that may differ between `before` and `after` (`before` folded with
    `events`), themselves or in the aliases they hold: those the events name (every event that
    changes a version names it), and those an alias left or joined. Read models update these
    rows, not every version of the model: a model with thousands of versions would otherwise
    cost thousands of rows per batch."""
    touched = {n for e in events if isinstance(n := e.payload.get("version"), int)}
    held_before = before.aliases if before is not None else {}
    for alias in held_before.keys() | after.aliases.keys():
        was, now = held_before.get(alias), after.aliases.get(alias)
        if was != now:
            touched.update(n for n in (was, now) if n is not None)
    return sorted(n for n in touched if n in after.versions)


def fold(state: ModelState | None, envelopes: Iterable[Envelope]) -> ModelState | None:
    """The state after every event in `envelopes`, in order."""
    for envelope in envelopes:
        event = event_from_payload(envelope.type, envelope.payload)
        state = evolve(state, event, envelope.recorded_at)
    return state
