"""Transition requests as a model stream holds them: asked for, approved, rejected, cancelled,
gone stale, applied. `evolve_requests` is the pure fold of the request events; the rules that
decide them are in registrar.domain.approvals."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from registrar.contracts.events import (
    AliasSet,
    StageChanged,
    TransitionApproved,
    TransitionCancelled,
    TransitionRejected,
    TransitionRequested,
    TransitionRequestStale,
)
from registrar.contracts.policies import Rollback, TransitionAuthorization
from registrar.contracts.values import Stage

RequestState = Literal["pending", "applied", "rejected", "cancelled"]

REQUEST_EVENTS = (
    TransitionRequested,
    TransitionApproved,
    TransitionRejected,
    TransitionCancelled,
    TransitionRequestStale,
)


@dataclass(frozen=True, slots=True)
class Approval:
    by: str
    at: datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class TransitionRequest:
    request_id: str
    version: int
    stage: Stage | None
    alias: str | None
    archive_existing: bool
    requested_by: str
    comment: str
    created_at: datetime
    updated_at: datetime
    state: RequestState = "pending"
    approvals: tuple[Approval, ...] = ()
    """The approvals that count: those given since the request last went stale."""
    closed_by: str = ""
    closed_comment: str = ""
    stale_reasons: tuple[str, ...] = ()
    authorization: TransitionAuthorization | None = None
    """Once applied: what allowed it (policy version, every gate with the value it saw)."""
    rollback: Rollback | None = None
    """Set for a rollback (registrar.domain.rollbacks): from which holder, and why."""

    @property
    def target(self) -> str:
        return f"stage {self.stage.value}" if self.stage is not None else f"alias {self.alias!r}"

    def aims_at(
        self, version: int, stage: Stage | None, alias: str | None, rollback: bool = False
    ) -> bool:
        """Whether it asks for that move (a rollback, or a promotion: never both)."""
        moves = (self.version, self.stage, self.alias) == (version, stage, alias)
        return moves and (self.rollback is not None) == rollback

    @classmethod
    def opened_by(cls, event: TransitionRequested, at: datetime) -> TransitionRequest:
        """The pending request `event` opens at `at`."""
        return cls(
            request_id=event.request_id,
            version=event.version,
            stage=event.stage,
            alias=event.alias,
            archive_existing=event.archive_existing,
            requested_by=event.requested_by,
            comment=event.comment,
            created_at=at,
            updated_at=at,
            rollback=event.rollback,
        )


Requests = dict[str, TransitionRequest]


def request_fields(request: TransitionRequest) -> dict[str, Any]:
    """A request's own fields as JSON values: the API's view and the approvals read model."""
    return {
        "request_id": request.request_id,
        "version": request.version,
        "stage": request.stage.value if request.stage is not None else None,
        "alias": request.alias,
        "archive_existing": request.archive_existing,
        "state": request.state,
        "requested_by": request.requested_by,
        "comment": request.comment,
        "approvals": [{"by": a.by, "at": a.at, "comment": a.comment} for a in request.approvals],
        "closed_by": request.closed_by,
        "closed_comment": request.closed_comment,
        "created_at": request.created_at,
        "updated_at": request.updated_at,
    }


def evolve_requests(
    requests: Requests,
    event: TransitionRequested
    | TransitionApproved
    | TransitionRejected
    | TransitionCancelled
    | TransitionRequestStale
    | StageChanged
    | AliasSet,
    at: datetime,
) -> Requests:
    """The requests after `event` (a request event, or a move that applied a request)."""
    if isinstance(event, TransitionRequested):
        return {**requests, event.request_id: TransitionRequest.opened_by(event, at)}
    if isinstance(event, StageChanged | AliasSet):
        if event.authorization is None:
            return requests
        request_id = event.authorization.request_id
        return {
            **requests,
            request_id: replace(
                requests[request_id],
                state="applied",
                authorization=event.authorization,
                updated_at=at,
            ),
        }
    current = requests[event.request_id]
    match event:
        case TransitionApproved(by=by, comment=comment):
            approvals = (*current.approvals, Approval(by, at, comment))
            changed = replace(current, approvals=approvals, updated_at=at)
        case TransitionRejected(by=by, comment=comment):
            changed = replace(
                current, state="rejected", closed_by=by, closed_comment=comment, updated_at=at
            )
        case TransitionCancelled(by=by, comment=comment):
            changed = replace(
                current, state="cancelled", closed_by=by, closed_comment=comment, updated_at=at
            )
        case TransitionRequestStale(reason=reason):
            reasons = (*current.stale_reasons, reason)
            changed = replace(current, approvals=(), stale_reasons=reasons, updated_at=at)
    return {**requests, changed.request_id: changed}
