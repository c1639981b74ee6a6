"""The approval workflow's rules, pure: request a transition, approve, reject, cancel; what a
request still needs under the policy in force; and when it is complete, what allowed it.

A request lives in its model's stream, so the model's optimistic concurrency serializes every
decision about it (two approvers at once cannot both be "the last one"). Approvals count only
from distinct people holding the policy's approver role, never the requester's own unless the
policy allows it, and only those given since the version last changed in a way gates read:
new metrics or model-card fields make a pending request stale (its approvals are dropped, it
must be approved again). Gates are checked when the request completes, on the version as it is
then, and recorded, each with the value it saw, on the event that applies the move."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

from registrar.contracts.commands import (
    ApproveTransition,
    CancelTransition,
    RejectTransition,
    RequestRollback,
    RequestTransition,
    SetAlias,
    TransitionStage,
)
from registrar.contracts.events import (
    Event,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    TransitionRequestStale,
)
from registrar.contracts.policies import ApprovalRecord, GateCheck, TransitionAuthorization
from registrar.contracts.values import Role, Stage
from registrar.domain.errors import Conflict, Forbidden, Invalid, NotFound
from registrar.domain.policies import NO_POLICIES, Policy, PolicySet
from registrar.domain.state import ModelState
from registrar.domain.transition_requests import Approval, TransitionRequest

_ARCHIVABLE_TARGETS = (Stage.STAGING, Stage.PRODUCTION)
MOVER_ROLE = Role.APPROVER
"""The role a move needs when no policy governs its target: a direct stage change or alias move,
or a request that would apply at once. (Access control's PROMOTE action uses the same.)"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """What a decision knows besides the model: who asks (from their token), the policy in
    force, the id a new request gets, and the time an approval given now is recorded with."""

    actor: str = "anonymous"
    role: Role = Role.ADMIN
    policies: PolicySet = NO_POLICIES
    new_request_id: str = ""
    now: datetime = _EPOCH


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a request stands under a policy: the approvals that count, each gate as it is now,
    and in words what is still missing (nothing: the move can apply)."""

    counted: tuple[Approval, ...]
    required: int
    approver_role: Role
    checks: list[GateCheck]
    missing: list[str]
    scope: str | None = None
    rollback_rule: bool = False
    """The document's rollback rule applied (a rollback request whose target it names)."""

    @property
    def complete(self) -> bool:
        return not self.missing


@dataclass(frozen=True, slots=True)
class Application:
    """A complete request: the move to make now, and what allowed it."""

    request: TransitionRequest
    authorization: TransitionAuthorization


@dataclass(frozen=True, slots=True)
class RequestDecision:
    events: list[Event]
    applying: Application | None = None


def policy_for(
    policies: PolicySet,
    model: ModelState,
    stage: Stage | None,
    alias: str | None,
    rollback: bool = False,
) -> Policy | None:
    return policies.rule_for(model, stage, alias, rollback)


def _policy_of(request: TransitionRequest, model: ModelState, policies: PolicySet) -> Policy | None:
    return policy_for(policies, model, request.stage, request.alias, request.rollback is not None)


def governs(command: TransitionStage | SetAlias, model: ModelState, policies: PolicySet) -> bool:
    """Whether a direct move must go through a request: a policy governs its target, and it
    would change something."""
    if isinstance(command, TransitionStage):
        version = model.live_version(command.version)
        moves = version is None or version.stage != command.stage
        return moves and policies.for_stage(command.stage, model) is not None
    moves = model.aliases.get(command.alias) != command.version
    return moves and policies.for_alias(command.alias, model) is not None


def as_request(command: TransitionStage | SetAlias) -> RequestTransition:
    """A direct move to a governed target, as the request it becomes."""
    if isinstance(command, TransitionStage):
        return RequestTransition(
            name=command.name,
            version=command.version,
            stage=command.stage,
            archive_existing=command.archive_existing,
        )
    return RequestTransition(name=command.name, version=command.version, alias=command.alias)


def standing(request: TransitionRequest, model: ModelState, policies: PolicySet) -> Standing:
    policy = _policy_of(request, model, policies)
    if policy is None:  # no policy (any more): nothing to wait for
        return Standing(request.approvals, 0, MOVER_ROLE, [], [])
    rule = policy.rule
    counted = tuple(
        a for a in request.approvals if rule.allow_self_approval or a.by != request.requested_by
    )
    missing = []
    if len(counted) < rule.approvals:
        more = rule.approvals - len(counted)
        missing.append(
            f"{more} more approval{'s' if more > 1 else ''} from role {rule.approver_role.value}"
            f" ({len(counted)} of {rule.approvals})"
        )
    version = model.live_version(request.version)
    checks = policy.check(policies.target(model, version)) if version is not None else []
    under = f" under scope {policy.scope}" if policy.scope else ""
    under = " under the rollback rule" if policy.rollback else under
    missing += [f"gate {c.gate}{under} (saw {_shown(c.seen)})" for c in checks if not c.passed]
    return Standing(
        counted, rule.approvals, rule.approver_role, checks, missing, policy.scope, policy.rollback
    )


def _shown(seen: int | float | str | None) -> str:
    return "nothing" if seen is None else repr(seen) if isinstance(seen, str) else f"{seen:g}"


def applying(
    request: TransitionRequest, model: ModelState, context: DecisionContext
) -> Application | None:
    """The move `request` makes now, with what allows it; None while something is missing."""
    now = standing(request, model, context.policies)
    if not now.complete:
        return None
    return Application(
        request,
        TransitionAuthorization(
            request_id=request.request_id,
            requested_by=request.requested_by,
            policy_version=context.policies.version,
            approvals_required=now.required,
            approver_role=now.approver_role,
            gates=now.checks,
            approvals=[ApprovalRecord(by=a.by, at=a.at, comment=a.comment) for a in now.counted],
            scope=now.scope,
            rollback=request.rollback,
            rollback_rule=now.rollback_rule,
        ),
    )


def latest_request(
    model: ModelState, version: int, stage: Stage | None, alias: str | None, rollback: bool = False
) -> TransitionRequest | None:
    """The newest request for that move, or rollback (requests are kept in the order they were
    made)."""
    found = [r for r in model.requests.values() if r.aims_at(version, stage, alias, rollback)]
    return found[-1] if found else None


def request_transition(
    command: RequestTransition, model: ModelState, context: DecisionContext
) -> RequestDecision:
    """A new pending request (applied at once when nothing is missing); or, when one for the
    same move is pending already, that one looked at again (applied if it is complete now)."""
    version = model.live_version(command.version)
    if version is None:
        raise NotFound(f"model {model.name!r} has no live version {command.version}")
    if command.stage is not None:
        if version.stage == command.stage:
            raise Conflict(f"version {command.version} is already in stage {command.stage.value}")
        if command.archive_existing and command.stage not in _ARCHIVABLE_TARGETS:
            raise Invalid(
                "archive_existing is only valid when moving to Staging or Production,"
                f" not {command.stage.value}"
            )
    elif model.aliases.get(command.alias or "") == command.version:
        raise Conflict(f"alias {command.alias!r} already points to version {command.version}")
    refuse_unless_mover_where_ungoverned(command, model, context)
    pending = latest_request(model, command.version, command.stage, command.alias)
    if pending is not None and pending.state == "pending":
        return RequestDecision([], applying(pending, model, context))
    if not context.new_request_id:
        raise ValueError("RequestTransition needs the new request's id")
    requested = TransitionRequested(
        request_id=context.new_request_id,
        version=command.version,
        stage=command.stage,
        alias=command.alias,
        archive_existing=command.archive_existing,
        requested_by=context.actor,
        comment=command.comment,
    )
    request = TransitionRequest.opened_by(requested, context.now)
    return RequestDecision([requested], applying(request, model, context))


def refuse_unless_mover_where_ungoverned(
    command: RequestTransition | RequestRollback, model: ModelState, context: DecisionContext
) -> None:
    """A request for a target no policy governs applies at once, so it needs what the direct move
    needs: a request never does more than its requester could do."""
    rollback = isinstance(command, RequestRollback)
    if policy_for(context.policies, model, command.stage, command.alias, rollback) is not None:
        return
    if context.role.includes(MOVER_ROLE):
        return
    target = f"stage {command.stage.value}" if command.stage else f"alias {command.alias!r}"
    raise Forbidden(
        f"no policy governs {target}, so this request would apply at once, and moving a version"
        f" there needs the {MOVER_ROLE.value} role; {context.actor} holds {context.role.value}."
        f" Ask someone with that role to make the move, or an admin to set a policy for {target}"
    )


def _pending(model: ModelState, request_id: str) -> TransitionRequest:
    request = model.requests.get(request_id)
    if request is None:
        raise NotFound(f"model {model.name!r} has no transition request {request_id!r}")
    if request.state != "pending":
        raise Conflict(f"transition request {request_id} is {request.state}: it is closed")
    return request


def _approver_role(request: TransitionRequest, model: ModelState, policies: PolicySet) -> Role:
    policy = _policy_of(request, model, policies)
    return policy.rule.approver_role if policy is not None else MOVER_ROLE


def approve(
    command: ApproveTransition, model: ModelState, context: DecisionContext
) -> RequestDecision:
    request = _pending(model, command.request_id)
    needed = _approver_role(request, model, context.policies)
    if not context.role.includes(needed):
        raise Forbidden(
            f"approving a move to {request.target} needs the {needed.value} role;"
            f" {context.actor} holds {context.role.value}"
        )
    policy = _policy_of(request, model, context.policies)
    own = context.actor == request.requested_by
    if own and not (policy is not None and policy.rule.allow_self_approval):
        raise Forbidden(
            f"{context.actor} requested transition {request.request_id} and may not approve it:"
            " the policy needs approvals from other people"
        )
    if any(a.by == context.actor for a in request.approvals):
        raise Conflict(
            f"{context.actor} has already approved transition request {request.request_id};"
            " approvals must come from distinct people"
        )
    if model.live_version(request.version) is None:
        raise Conflict(
            f"version {request.version} of model {model.name!r} was deleted; cancel request"
            f" {request.request_id}"
        )
    approval = Approval(context.actor, context.now, command.comment)
    approved = replace(request, approvals=(*request.approvals, approval))
    event = TransitionApproved(
        request_id=request.request_id, by=context.actor, comment=approval.comment
    )
    return RequestDecision([event], applying(approved, model, context))


def reject(command: RejectTransition, model: ModelState, context: DecisionContext) -> list[Event]:
    request = _pending(model, command.request_id)
    if context.actor == request.requested_by:
        raise Invalid(
            f"{context.actor} requested transition {request.request_id}: cancel it rather than"
            " reject it"
        )
    needed = _approver_role(request, model, context.policies)
    if not context.role.includes(needed):
        raise Forbidden(
            f"rejecting a move to {request.target} needs the {needed.value} role;"
            f" {context.actor} holds {context.role.value}"
        )
    return [
        TransitionRejected(request_id=request.request_id, by=context.actor, comment=command.comment)
    ]


def cancel(command: CancelTransition, model: ModelState, context: DecisionContext) -> list[Event]:
    request = _pending(model, command.request_id)
    if context.actor != request.requested_by and not context.role.includes(Role.ADMIN):
        raise Forbidden(
            f"only {request.requested_by} (who requested it) or an admin may cancel transition"
            f" request {request.request_id}"
        )
    return [
        TransitionCancelled(
            request_id=request.request_id, by=context.actor, comment=command.comment
        )
    ]


def stale_requests(model: ModelState, version: int, reason: str) -> list[Event]:
    """The pending requests of `version` whose approvals stop counting because `reason`."""
    return [
        TransitionRequestStale(
            request_id=r.request_id, reason=reason, dropped=[a.by for a in r.approvals]
        )
        for r in model.requests.values()
        if r.version == version and r.state == "pending" and r.approvals
    ]


def refuse_if_held(
    command: TransitionStage | SetAlias, model: ModelState, context: DecisionContext
) -> None:
    """After a direct move to a governed target: refuse it (the request stays pending) naming
    the request and what it still needs, unless the move has applied."""
    stage = command.stage if isinstance(command, TransitionStage) else None
    alias = command.alias if isinstance(command, SetAlias) else None
    if policy_for(context.policies, model, stage, alias) is None:
        return
    request = latest_request(model, command.version, stage, alias)
    if request is None or request.state != "pending":
        return
    needs = "; ".join(standing(request, model, context.policies).missing)
    raise Conflict(
        f"moving version {command.version} of model {model.name!r} to {request.target} needs"
        f" approval under the promotion policy: transition request {request.request_id} is"
        f" pending and still needs {needs}."
        f" Approve it with POST /v1/transition-requests/{request.request_id}/approve"
    )
