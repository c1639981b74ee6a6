"""`decide`: the pure rules of the registry. Given a model stream's state and a command, the
events that record what the command changes, or a DomainError that says why it is refused."""

from __future__ import annotations

from registrar.contracts.commands import (
    ApproveTransition,
    AssessRisk,
    CancelTransition,
    Command,
    DeleteAlias,
    DeleteModel,
    DeleteModelTag,
    DeleteVersion,
    DeleteVersionTag,
    RecordEvaluation,
    RecordMetrics,
    RegisterModel,
    RegisterVersion,
    RejectTransition,
    RenameModel,
    ReportDeployment,
    RequestRollback,
    RequestTransition,
    SealArtifacts,
    SetAlias,
    SetModelTag,
    SetVersionTag,
    TransitionStage,
    UpdateModelCard,
    UpdateModelDescription,
    UpdateVersionDescription,
)
from registrar.contracts.events import (
    AliasDeleted,
    AliasSet,
    ArtifactsSealed,
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
    StageChanged,
    VersionDeleted,
    VersionDescriptionUpdated,
    VersionRegistered,
    VersionTagDeleted,
    VersionTagSet,
)
from registrar.contracts.values import Stage
from registrar.domain.approvals import (
    MOVER_ROLE,
    DecisionContext,
    RequestDecision,
    approve,
    as_request,
    cancel,
    governs,
    reject,
    request_transition,
    stale_requests,
)
from registrar.domain.deployments import report_deployment
from registrar.domain.errors import (
    Conflict,
    Forbidden,
    Invalid,
    ModelNotFound,
    NotFound,
    VersionNotFound,
)
from registrar.domain.fairness import group_figures, summary
from registrar.domain.risk import assess_risk, refuse_if_blocked
from registrar.domain.rollbacks import request_rollback, rollback_moves
from registrar.domain.sources import registry_source, source_problem
from registrar.domain.state import ModelState, VersionState

_ARCHIVABLE_TARGETS = (Stage.STAGING, Stage.PRODUCTION)
_NO_CONTEXT = DecisionContext()


def decide(
    command: Command,
    state: ModelState | None,
    new_model_id: str = "",
    context: DecisionContext = _NO_CONTEXT,
) -> list[Event]:
    """The events `command` produces against `state` (None: no model holds that name).

    `new_model_id` is the stream id a RegisterModel gives the new model; the caller makes it.
    `context`: who asks, the promotion policy in force, a new request's id (the caller's too).
    An empty list means the command changes nothing (e.g. setting a tag to its current value).
    """
    if isinstance(command, RegisterModel):
        return _register_model(command, state, new_model_id)
    model = _existing_model(command.name, state)
    if isinstance(command, TransitionStage | SetAlias | RequestTransition | RequestRollback):
        stage = None if isinstance(command, SetAlias) else command.stage
        alias = None if isinstance(command, TransitionStage) else command.alias
        refuse_if_blocked(model, context.policies.risk, stage, alias)
    match command:
        case UpdateModelDescription(description=description):
            if description == model.description:
                return []
            return [ModelDescriptionUpdated(description=description)]
        case SetModelTag(key=key, value=value):
            if model.tags.get(key) == value:
                return []
            return [ModelTagSet(key=key, value=value)]
        case DeleteModelTag(key=key):
            return [ModelTagDeleted(key=key)] if key in model.tags else []
        case RenameModel(new_name=new_name):
            if new_name == model.name:
                return []
            return [ModelRenamed(old_name=model.name, new_name=new_name)]
        case DeleteModel():
            return [ModelDeleted(name=model.name)]
        case RegisterVersion():
            return [_register_version(command, model)]
        case UpdateVersionDescription(version=number, description=description):
            version = _live_version(model, number)
            if description == version.description:
                return []
            return [VersionDescriptionUpdated(version=number, description=description)]
        case SetVersionTag(version=number, key=key, value=value):
            version = _live_version(model, number)
            if version.tags.get(key) == value:
                return []
            return [VersionTagSet(version=number, key=key, value=value)]
        case DeleteVersionTag(version=number, key=key):
            version = _live_version(model, number)
            return [VersionTagDeleted(version=number, key=key)] if key in version.tags else []
        case RecordMetrics(version=number, metrics=metrics):
            version = _live_version(model, number)
            if all(version.metrics.get(k) == v for k, v in metrics.items()):
                return []
            changed = ", ".join(
                sorted(k for k, v in metrics.items() if version.metrics.get(k) != v)
            )
            return [
                MetricsRecorded(version=number, metrics=metrics),
                *stale_requests(model, number, f"metrics changed: {changed}"),
            ]
        case UpdateModelCard(version=number, card=card):
            version = _live_version(model, number)
            changes = {k: v for k, v in card.changes().items() if version.card.get(k, "") != v}
            if not changes:
                return []
            return [
                ModelCardUpdated(version=number, card=changes),
                *stale_requests(model, number, f"model card changed: {', '.join(sorted(changes))}"),
            ]
        case SealArtifacts(version=number):
            return _seal(command, model, _live_version(model, number))
        case ReportDeployment():
            environments = context.policies.source.environments
            return [*report_deployment(command, model, environments, context.actor)]
        case AssessRisk():
            return [assess_risk(command, model, context)]
        case RecordEvaluation(version=number):
            _live_version(model, number)
            recorded = _evaluation(command, model, context)
            return [
                recorded,
                *stale_requests(model, number, f"{recorded.kind} evaluation recorded"),
            ]
        case TransitionStage() | SetAlias() if governs(command, model, context.policies):
            return _decided(request_transition(as_request(command), model, context), model, context)
        case RequestTransition():
            return _decided(request_transition(command, model, context), model, context)
        case RequestRollback():
            return _decided(request_rollback(command, model, context), model, context)
        case ApproveTransition():
            return _decided(approve(command, model, context), model, context)
        case RejectTransition():
            return reject(command, model, context)
        case CancelTransition():
            return cancel(command, model, context)
        case TransitionStage():
            if not context.role.includes(MOVER_ROLE):
                # MLflow's transition-stage is open to contributors, for governed stages: they
                # request there; an ungoverned move is the mover role's, as over /v1.
                raise Forbidden(
                    f"moving a version to {command.stage.value} needs the {MOVER_ROLE.value}"
                    f" role; {context.actor} holds {context.role.value}"
                )
            return _transition(command, model)
        case SetAlias(alias=alias, version=number):
            _live_version(model, number)
            previous = model.aliases.get(alias)
            if previous == number:
                return []
            return [AliasSet(alias=alias, version=number, previous_version=previous)]
        case DeleteAlias(alias=alias):
            holder = model.aliases.get(alias)
            if holder is None:
                raise NotFound(f"model {model.name!r} has no alias {alias!r}")
            return [AliasDeleted(alias=alias, version=holder)]
        case DeleteVersion(version=number):
            _live_version(model, number)
            released: list[Event] = [
                AliasDeleted(alias=alias, version=number) for alias in model.aliases_of(number)
            ]
            return [*released, VersionDeleted(version=number)]
    raise Invalid(f"unknown command {type(command).__name__}")


def name_is_free(name: str, holder: ModelState | None) -> bool:
    """Whether a new model, or a rename, may take `name`, given the model it resolves to (its
    live holder, else the last model that held it): free unless a live model is named so. A
    deleted model's names, and a renamed model's former name, are free again, as in MLflow; the
    events keep which model held a name when."""
    return holder is None or holder.deleted or holder.name != name


def _register_model(
    command: RegisterModel, state: ModelState | None, new_model_id: str
) -> list[Event]:
    if state is not None:
        # The command handler gives a released name's last holder as no model at all.
        raise Conflict(f"a model named {command.name!r} already exists")
    if not new_model_id:
        raise ValueError("RegisterModel needs the new model's stream id")
    return [
        ModelRegistered(
            model_id=new_model_id,
            name=command.name,
            description=command.description,
            tags=dict(command.tags),
        )
    ]


def _existing_model(name: str, state: ModelState | None) -> ModelState:
    if state is None:
        raise ModelNotFound(f"no model named {name!r}", name)
    if state.deleted:
        raise ModelNotFound(f"model {name!r} was deleted", name)
    if state.name != name:
        raise ModelNotFound(f"model {name!r} was renamed to {state.name!r}", name)
    return state


def _live_version(model: ModelState, number: int) -> VersionState:
    version = model.versions.get(number)
    if version is None:
        raise VersionNotFound(f"model {model.name!r} has no version {number}", model.name, number)
    if version.deleted:
        raise VersionNotFound(
            f"version {number} of model {model.name!r} was deleted: a deleted version cannot"
            " change",
            model.name,
            number,
        )
    return version


def _register_version(command: RegisterVersion, model: ModelState) -> VersionRegistered:
    number = model.last_version + 1
    if not command.source:
        source = registry_source(model.model_id, number)
        if command.digest:
            raise Invalid(
                "a version whose files Registrar will store takes no digest: sealing its files"
                " computes it (give a source to register files kept elsewhere)"
            )
    else:
        source = command.source
        problem = source_problem(command.source, command.run_id)
        if problem is not None:
            raise Invalid(problem)
    for parent in command.parents:
        if parent.model != model.name:
            continue  # other models' versions are checked by the command handler
        if parent.version >= number or model.live_version(parent.version) is None:
            raise Invalid(f"parent version {parent.version} of model {model.name!r} does not exist")
    return VersionRegistered(
        version=number,
        source=source,
        **command.model_dump(exclude={"type", "name", "source"}),
    )


def _evaluation(
    command: RecordEvaluation, model: ModelState, context: DecisionContext
) -> EvaluationRecorded:
    given = command.evaluation
    if not context.new_request_id:
        raise ValueError("RecordEvaluation needs the new evaluation's id (context.new_request_id)")
    known = {e.evaluation_id: e for v in model.versions.values() for e in v.evaluations}
    for linked in (*given.before, *given.after):
        found = known.get(linked)
        if found is None or found.kind != "fairness":
            raise Invalid(
                f"mitigation links {linked!r}, which is not a fairness evaluation of model"
                f" {model.name!r}: record the fairness evaluations first, then link their ids"
            )
    facts = given.model_dump(exclude={"groups", "dataset"})
    groups: dict[str, dict[str, float]] = {g: dict(v) for g, v in given.groups.items()}
    fairness = None
    if given.kind == "fairness":
        groups = {g: group_figures(c) for g, c in given.counts().items()}
        fairness = summary(given.sensitive_feature, groups)
    return EvaluationRecorded(
        version=command.version,
        evaluation_id=context.new_request_id,
        dataset=given.dataset.model_dump() if given.dataset else None,
        groups=groups,
        fairness=fairness,
        recorded_by=context.actor,
        **facts,
    )


def _seal(command: SealArtifacts, model: ModelState, version: VersionState) -> list[Event]:
    if version.manifest_digest:
        if version.manifest_digest == command.manifest_digest:
            return []  # sealed already with these very files: a retried seal
        raise Conflict(
            f"version {version.version} of model {model.name!r} is sealed with manifest"
            f" {version.manifest_digest}: its files can no longer change (register a new version)"
        )
    return [
        ArtifactsSealed(
            version=version.version,
            manifest_digest=command.manifest_digest,
            files=command.files,
            bytes=command.bytes,
        )
    ]


def _transition(command: TransitionStage, model: ModelState) -> list[Event]:
    number, target = command.version, command.stage
    version = _live_version(model, number)
    if command.archive_existing and target not in _ARCHIVABLE_TARGETS:
        raise Invalid(
            "archive_existing is only valid when moving to Staging or Production,"
            f" not {target.value}"
        )
    events: list[Event] = []
    if version.stage != target:
        events.append(StageChanged(version=number, from_stage=version.stage, to_stage=target))
    if command.archive_existing:
        for other in sorted(model.versions.values(), key=lambda v: v.version):
            if other.version != number and not other.deleted and other.stage == target:
                events.append(
                    StageChanged(
                        version=other.version,
                        from_stage=target,
                        to_stage=Stage.ARCHIVED,
                        reason="archived_by",
                        archived_by_version=number,
                    )
                )
    return events


def _decided(decision: RequestDecision, model: ModelState, context: DecisionContext) -> list[Event]:
    """A request decision's events, and when the request is complete, the move it applies
    (with archive-existing, in the same decision), carrying what allowed it."""
    if decision.applying is None:
        return decision.events
    request, authorization = decision.applying.request, decision.applying.authorization
    refuse_if_blocked(model, context.policies.risk, request.stage, request.alias)
    if request.rollback is not None:
        return [*decision.events, *rollback_moves(request, authorization, model)]
    if request.alias is not None:
        _live_version(model, request.version)
        previous = model.aliases.get(request.alias)
        move: Event = AliasSet(
            alias=request.alias,
            version=request.version,
            previous_version=previous,
            authorization=authorization,
        )
        return [*decision.events, move]
    assert request.stage is not None
    moves = _transition(
        TransitionStage(
            name=model.name,
            version=request.version,
            stage=request.stage,
            archive_existing=request.archive_existing,
        ),
        model,
    )
    if not moves or not isinstance(moves[0], StageChanged) or moves[0].version != request.version:
        raise Conflict(
            f"version {request.version} is already in stage {request.stage.value};"
            f" cancel transition request {request.request_id}"
        )
    moves[0] = moves[0].model_copy(update={"authorization": authorization})
    return [*decision.events, *moves]
