"""The client's approval endpoints: request a move of a version to a stage or an alias, or a
rollback, approve, reject or cancel a request, list requests, and read or apply the promotion
policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from registrar.client.calls import Call, Paged, fields, paged, query, read, segment, write
from registrar.client.model_calls import MODELS
from registrar.contracts.api_answers import PolicyOut, RequestPage, TransitionRequestOut
from registrar.contracts.policies import PolicyDocument

REQUESTS = "/v1/transition-requests"


def request_transition(
    model: str,
    version: int,
    stage: str | None = None,
    comment: str | None = None,
    *,
    alias: str | None = None,
    archive_existing: bool = False,
    idempotency_key: str | UUID | None = None,
) -> Call[TransitionRequestOut]:
    """Ask to move the version to `stage`, or to point `alias` at it (name one of the two). It
    applies at once when the policy in force asks for nothing more (`state` "applied");
    otherwise it stays "pending" and `missing` says what it needs."""
    body = fields(stage=stage, alias=alias, comment=comment)
    if archive_existing:
        body["archive_existing"] = True
    path = f"{MODELS}/{segment(model)}/versions/{segment(version)}/transition-requests"
    return write("POST", path, TransitionRequestOut.model_validate, body, idempotency_key)


def rollback(
    model: str,
    reason: str,
    *,
    stage: str | None = None,
    alias: str | None = None,
    to_version: int | None = None,
    idempotency_key: str | UUID | None = None,
) -> Call[TransitionRequestOut]:
    """Ask to move `stage` or `alias` (name one) back to its previous holder, or to `to_version`
    (an earlier holder), for `reason`: a request under the policy's rollback rule (else the
    target's own rule), applied at once when nothing is missing; `rollback` says from and to."""
    body = fields(stage=stage, alias=alias, reason=reason, to_version=to_version)
    path = f"{MODELS}/{segment(model)}/rollback"
    return write("POST", path, TransitionRequestOut.model_validate, body, idempotency_key)


def get_request(request_id: str) -> Call[TransitionRequestOut]:
    """A transition request as it stands now (strongly consistent)."""
    return read(f"{REQUESTS}/{segment(request_id)}", TransitionRequestOut.model_validate)


def _decide(request_id: str, decision: str, comment: str | None) -> Call[TransitionRequestOut]:
    path = f"{REQUESTS}/{segment(request_id)}/{decision}"
    return write("POST", path, TransitionRequestOut.model_validate, fields(comment=comment))


def approve(request_id: str, comment: str | None = None) -> Call[TransitionRequestOut]:
    """Approve a request: the last approval it needs applies the move (if its gates pass)."""
    return _decide(request_id, "approve", comment)


def reject(request_id: str, comment: str | None = None) -> Call[TransitionRequestOut]:
    """Reject a request (an approver, not the requester): it is closed."""
    return _decide(request_id, "reject", comment)


def cancel(request_id: str, comment: str | None = None) -> Call[TransitionRequestOut]:
    """Cancel a request (the requester, or an admin): it is closed."""
    return _decide(request_id, "cancel", comment)


def approvals(
    state: str | None = None, *, model: str | None = None, page_size: int = 100
) -> Paged[TransitionRequestOut]:
    """Every transition request, oldest first: those in `state` (pending, applied, rejected or
    cancelled) and of `model`, when given."""
    params = query(state=state, model=model, page_size=page_size)
    return paged("/v1/approvals", RequestPage.model_validate, lambda page: page.requests, params)


def policy() -> Call[PolicyOut]:
    """The promotion policy in force (version 0: none)."""
    return read("/v1/policies", PolicyOut.model_validate)


def apply_policy(document: PolicyDocument | Mapping[str, Any]) -> Call[PolicyOut]:
    """Put a promotion policy in force (admins only), replacing the one before; `{}`: none."""
    body = document.model_dump(mode="json") if isinstance(document, PolicyDocument) else document
    # The policy has a stream of its own, which the model read models never apply: waiting for
    # its position there would wait in vain.
    return write("PUT", "/v1/policies", PolicyOut.model_validate, dict(body), advances=False)
