"""Rollbacks, pure: which version a stage or alias goes back to (its previous holder, from the
model's own stream), the request that asks for it, and the moves that apply it.

A rollback is a transition request flagged as one: governed by the document's rollback rule for
its target when there is one, else by the target's promotion rule, and applied in the decision
that completes it. Applied to a stage, the version rolled back to enters it and the holder rolled
back from is archived in the same decision; if the earlier version still holds the stage beside
it, the holder rolled back from only leaves. Either way the holders after the version rolled back
to are dropped from the stage's (or alias's) history, so a second rollback goes further back."""

from __future__ import annotations

from registrar.contracts.commands import RequestRollback
from registrar.contracts.events import AliasSet, Event, StageChanged, TransitionRequested
from registrar.contracts.policies import Rollback, TransitionAuthorization
from registrar.contracts.values import Stage
from registrar.domain.approvals import (
    DecisionContext,
    RequestDecision,
    applying,
    latest_request,
    refuse_unless_mover_where_ungoverned,
)
from registrar.domain.errors import Conflict, Invalid
from registrar.domain.state import HELD_STAGES, ModelState
from registrar.domain.transition_requests import TransitionRequest


def _target(stage: Stage | None, alias: str | None) -> str:
    return f"stage {stage.value}" if stage is not None else f"alias {alias!r}"


def _history(model: ModelState, stage: Stage | None, alias: str | None) -> tuple[int, ...]:
    if alias is not None:
        return model.alias_holders.get(alias, ())
    assert stage is not None
    return model.stage_holders.get(stage, ())


def current_holder(model: ModelState, stage: Stage | None, alias: str | None) -> int | None:
    """The version holding the alias; for a stage, the one that entered it last of those in it
    now (several versions may share a stage)."""
    if alias is not None:
        return model.aliases.get(alias)
    for number in reversed(_history(model, stage, alias)):
        version = model.live_version(number)
        if version is not None and version.stage == stage:
            return number
    return None


def earlier_holders(model: ModelState, stage: Stage | None, alias: str | None) -> list[int]:
    """The live versions that held the stage or alias before its current holder took it, the
    most recent first: the first is the previous holder."""
    current = current_holder(model, stage, alias)
    history = _history(model, stage, alias)
    if current in history:
        history = history[: len(history) - 1 - history[::-1].index(current)]
    earlier: list[int] = []
    for number in reversed(history):
        if number != current and number not in earlier and model.live_version(number):
            earlier.append(number)
    return earlier


def request_rollback(
    command: RequestRollback, model: ModelState, context: DecisionContext
) -> RequestDecision:
    """A new pending rollback request (applied at once when nothing is missing), or the one
    pending for the same rollback, looked at again. Refused when there is nothing to go back to."""
    stage, alias = command.stage, command.alias
    target = _target(stage, alias)
    if stage is not None and stage not in HELD_STAGES:
        raise Invalid(
            f"only {' and '.join(s.value for s in HELD_STAGES)} are rolled back, not {stage.value}"
        )
    current = current_holder(model, stage, alias)
    if current is None:
        raise Conflict(
            f"no version of model {model.name!r} holds {target}: there is nothing to roll back;"
            " move a version there instead"
        )
    earlier = earlier_holders(model, stage, alias)
    if command.to_version is None and not earlier:
        raise Conflict(
            f"{target} of model {model.name!r} has no previous holder to roll back to: version"
            f" {current} is the first live version that held it"
        )
    to_version = earlier[0] if command.to_version is None else command.to_version
    if to_version not in earlier:
        held = ", ".join(map(str, earlier)) or "none"
        raise Conflict(
            f"version {to_version} of model {model.name!r} is not a live earlier holder of"
            f" {target} (version {current} holds it; earlier holders, latest first: {held})"
        )
    refuse_unless_mover_where_ungoverned(command, model, context)
    pending = latest_request(model, to_version, stage, alias, rollback=True)
    if pending is not None and pending.state == "pending":
        return RequestDecision([], applying(pending, model, context))
    if not context.new_request_id:
        raise ValueError("RequestRollback needs the new request's id")
    requested = TransitionRequested(
        request_id=context.new_request_id,
        version=to_version,
        stage=stage,
        alias=alias,
        requested_by=context.actor,
        rollback=Rollback(reason=command.reason, from_version=current, to_version=to_version),
    )
    request = TransitionRequest.opened_by(requested, context.now)
    return RequestDecision([requested], applying(request, model, context))


def rollback_moves(
    request: TransitionRequest, authorization: TransitionAuthorization, model: ModelState
) -> list[Event]:
    """The moves a complete rollback request makes now, the first carrying `authorization`.
    Refused if its target changed hands since it was asked for, or its version is gone."""
    rollback = request.rollback
    assert rollback is not None
    target = _target(request.stage, request.alias)
    current = current_holder(model, request.stage, request.alias)
    if current != rollback.from_version:
        now = f"version {current} holds it now" if current is not None else "none holds it now"
        raise Conflict(
            f"rollback request {request.request_id} was made while version"
            f" {rollback.from_version} held {target}, and {now}: cancel it and roll back again"
        )
    version = model.live_version(request.version)
    if version is None:
        raise Conflict(
            f"version {request.version} of model {model.name!r} was deleted; cancel rollback"
            f" request {request.request_id}"
        )
    if request.alias is not None:
        return [
            AliasSet(
                alias=request.alias,
                version=request.version,
                previous_version=current,
                authorization=authorization,
            )
        ]
    stage = request.stage
    assert stage is not None and current is not None
    if version.stage == stage:  # it holds the stage beside the current holder: that one leaves
        return [
            StageChanged(
                version=current,
                from_stage=stage,
                to_stage=Stage.ARCHIVED,
                authorization=authorization,
            )
        ]
    return [
        StageChanged(
            version=request.version,
            from_stage=version.stage,
            to_stage=stage,
            authorization=authorization,
        ),
        StageChanged(
            version=current,
            from_stage=stage,
            to_stage=Stage.ARCHIVED,
            reason="archived_by",
            archived_by_version=request.version,
        ),
    ]
